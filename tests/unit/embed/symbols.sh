#!/bin/sh
# libtailkit.so exports tailscale_* and tailkit_* and nothing else (the
# linker version script); libtailkit.a has the same globals defined (every
# internal symbol localized by objcopy); both carry all 18 libtailscale
# functions.
set -e
so=$1 a=$2
bad=$(nm -D --defined-only "$so" | awk 'NF >= 3 {print $3}' | grep -v -e '^tailscale_' -e '^tailkit_' || true)
if [ -n "$bad" ]; then
	echo "exported beyond the API:"; echo "$bad" | head -20; exit 1
fi
readelf -d "$so" | grep -q 'SONAME.*libtailkit\.so\.0' || { echo "no SONAME"; exit 1; }
bad=$(nm --defined-only "$a" | awk 'NF >= 3 && $2 ~ /^[A-Z]$/ {print $3}' | grep -v -e '^tailscale_' -e '^tailkit_' || true)
if [ -n "$bad" ]; then
	echo "libtailkit.a: globals beyond the API:"; echo "$bad" | head -20; exit 1
fi
for f in new start up close set_dir set_hostname set_authkey set_control_url \
    set_ephemeral set_logfd getips dial listen accept getremoteaddr loopback \
    enable_funnel_to_localhost_plaintext_http1 errmsg; do
	nm -D --defined-only "$so" | grep -q " T tailscale_$f\$" || { echo "missing tailscale_$f in .so"; exit 1; }
	nm --defined-only "$a" | grep -q " T tailscale_$f\$" || { echo "missing tailscale_$f in .a"; exit 1; }
done
echo "ok: $(nm -D --defined-only "$so" | wc -l) symbols, all tailscale_* / tailkit_*"
