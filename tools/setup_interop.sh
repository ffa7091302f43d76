#!/usr/bin/env bash
# Builds the interop harness's Go counterparts into a cache outside the repo:
#   interop-peer, derpclient,     tests/interop/peer (tailscale.com v1.102.3)
#   tsnetbench                    (tsnetbench: tools/bench/embed.py's Go side)
#   derper, tailscale, tailscaled  the same tailscale.com version
#   headscale                      tests/interop/headscale (v0.29.2)
#   wireguard-go-ts                tests/interop/wggo: Tailscale's wireguard-go fork as
#                                  tailscale.com v1.102.3 pins it (the standalone daemon)
# Modules come through the Go module proxy; go.sum files are committed.
# Cached: rebuilds only when the pins, the Go sources or the Go version change.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TAILKIT_CACHE:-/var/cache/tailkit}/interop
BIN=$CACHE/bin
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

if ! command -v go >/dev/null 2>&1; then
	echo "setup_interop: go is not installed; the interop harness needs Go >= 1.26.6" >&2
	exit 1
fi
mkdir -p "$BIN"
stamp=$( (go version; cd "$ROOT/tests/interop" && find peer headscale wggo -type f \
	\( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z |
	xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$CACHE/stamp" ] && [ "$(cat "$CACHE/stamp")" = "$stamp" ] &&
	[ -x "$BIN/interop-peer" ] && [ -x "$BIN/tsnetbench" ] && [ -x "$BIN/headscale" ] && [ -x "$BIN/derpprobe" ] &&
	[ -x "$BIN/wireguard-go-ts" ]; then
	echo "setup_interop: up to date ($BIN)"
	exit 0
fi
t0=$(date +%s)
cd "$ROOT/tests/interop/peer"
echo "setup_interop: building interop-peer, derpclient, tsnetbench, derper, derpprobe, tailscale, tailscaled"
go build -trimpath -o "$BIN/interop-peer" .
go build -trimpath -o "$BIN/derpclient" ./cmd/derpclient
go build -trimpath -o "$BIN/tsnetbench" ./cmd/tsnetbench
go build -trimpath -o "$BIN/derper" tailscale.com/cmd/derper
go build -trimpath -o "$BIN/tailscale" tailscale.com/cmd/tailscale
go build -trimpath -o "$BIN/tailscaled" tailscale.com/cmd/tailscaled
go build -trimpath -o "$BIN/derpprobe" tailscale.com/cmd/derpprobe
cd "$ROOT/tests/interop/headscale"
echo "setup_interop: building headscale"
go build -trimpath -o "$BIN/headscale" github.com/juanfont/headscale/cmd/headscale
cd "$ROOT/tests/interop/wggo"
echo "setup_interop: building wireguard-go-ts"
go build -trimpath -o "$BIN/wireguard-go-ts" github.com/tailscale/wireguard-go
echo "$stamp" >"$CACHE/stamp"
echo "setup_interop: built in $(($(date +%s) - t0)) s into $BIN"
