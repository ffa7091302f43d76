#!/usr/bin/env bash
# tailkit setup: install what the build and tests need, then configure and
# build the three trees.  Idempotent: a second run only rebuilds what changed.
#
#   build/       Release, -Werror                      (tests, benchmarks)
#   build-asan/  Debug + AddressSanitizer + UBSan      (tests)
#   build-fuzz/  clang + libFuzzer + ASan + UBSan       (fuzz targets only)
#   build-aarch64/, build-armv7/  cross builds, tests under qemu-user
#                (tools/setup_cross.sh; --no-cross leaves them out)
#
# Options: --deps-only (packages only)  --no-interop (skip the Go harness)
#          --no-build  (packages + interop harness, no C builds)
#          --release-only (build only build/, e.g. for the demo; no cross)
#          --no-cross  (no ARM cross builds)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEPS_ONLY=0 INTEROP=1 BUILD=1 RELEASE_ONLY=0 CROSS=1
for a in "$@"; do
	case "$a" in
	--deps-only) DEPS_ONLY=1 ;;
	--no-interop) INTEROP=0 ;;
	--no-build) BUILD=0 ;;
	--release-only) RELEASE_ONLY=1 CROSS=0 ;;
	--no-cross) CROSS=0 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown option '$a' (accepted: --deps-only --no-interop --no-build --release-only --no-cross)" >&2; exit 2 ;;
	esac
done

PACKAGES=(
	build-essential cmake ninja-build pkg-config git
	libsodium-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler
	libsqlite3-dev sqlite3 libgnutls28-dev gnutls-bin libcunit1-dev
	libnghttp2-dev libzstd-dev libjansson-dev liblwip-dev libb2-dev
	clang libclang-rt-14-dev
	wireguard-go wireguard-tools iproute2 iptables iperf3 procps iputils-ping openssl
	python3 python3-pip
	elixir erlang-dev # bindings/elixir (its NIF and ExUnit tests)
	dnsutils curl
	chromium # headless: the screenshot of `tailkit status --web` in the tests
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pytest drives the multi-process and interop tests.
if ! python3 -c 'import pytest' 2>/dev/null; then
	echo "setup: installing pytest"
	python3 -m pip install -q pytest || apt-get install -y -qq python3-pytest >/dev/null
fi

[ "$DEPS_ONLY" -eq 1 ] && exit 0

# lwIP for netstackd: built from Debian's source package with tailkit's own
# lwipopts.h (Debian's liblwip is Hurd-tuned: threads, no hooks,
# predictable ISNs; docs: ../shared/reference/netstack-lwip.md).  The
# source lives outside the repo (never committed); tailkit's fixes in
# netstackd/lwip/*.patch are applied once (a stamp per patch).
# TK_LWIP_SRC overrides where it lives.
LWIP_CACHE=${TK_LWIP_CACHE:-/var/cache/tailkit/lwip}
LWIP_SRC=${TK_LWIP_SRC:-}
lwip_fetch() {
	local SUDO="" d
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	if [ -z "$LWIP_SRC" ]; then
		d=$(find "$LWIP_CACHE" -maxdepth 1 -type d -name 'lwip-*' 2>/dev/null | sort | tail -1 || true)
		if [ -z "$d" ]; then
			# a deb-src entry for the same mirror as the binary entries
			if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
				local uri suites
				uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 | awk '{print $2}')
				suites=$(grep -hE '^Suites:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 | cut -d' ' -f2-)
				if [ -z "$uri" ]; then
					uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
					suites=$(awk '$1=="deb"{print $3; exit}' /etc/apt/sources.list 2>/dev/null)
				fi
				[ -n "$uri" ] || { echo "setup: no Debian mirror found for a deb-src entry" >&2; return 1; }
				echo "setup: adding deb-src for $uri ($suites)"
				printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
					"$uri" "${suites:-bookworm}" | $SUDO tee /etc/apt/sources.list.d/tailkit-src.sources >/dev/null
				$SUDO apt-get update -qq
			fi
			$SUDO mkdir -p "$LWIP_CACHE"
			$SUDO chown "$(id -u):$(id -g)" "$LWIP_CACHE"
			(cd "$LWIP_CACHE" && apt-get source -qq lwip >/dev/null) ||
				{ echo "setup: apt-get source lwip failed" >&2; return 1; }
			d=$(find "$LWIP_CACHE" -maxdepth 1 -type d -name 'lwip-*' | sort | tail -1)
		fi
		LWIP_SRC=$d
	fi
	[ -f "$LWIP_SRC/src/core/tcp_in.c" ] ||
		{ echo "setup: $LWIP_SRC is not an lwIP source tree" >&2; return 1; }
	local pf stamp
	for pf in "$ROOT"/netstackd/lwip/*.patch; do
		[ -f "$pf" ] || continue
		stamp=$LWIP_SRC/.tailkit-$(basename "$pf").applied
		[ -f "$stamp" ] && continue
		if patch -d "$LWIP_SRC" -p1 --dry-run -R -s -f <"$pf" >/dev/null 2>&1; then
			: # already applied (stamp lost)
		else
			patch -d "$LWIP_SRC" -p1 -s -f <"$pf" ||
				{ echo "setup: $pf does not apply to $LWIP_SRC" >&2; return 1; }
		fi
		touch "$stamp"
	done
	echo "setup: lwIP source: $LWIP_SRC"
}
if ! lwip_fetch; then
	echo "setup: WARNING: no lwIP source; netstackd will be skipped" >&2
	LWIP_SRC=""
fi

if [ "$BUILD" -eq 1 ]; then
	JOBS=${TK_JOBS:-$(nproc)}
	configure() { # dir, extra cmake args...
		local dir=$1
		shift
		if [ ! -f "$dir/build.ninja" ]; then
			cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
		fi
		# the lwIP source may have arrived after the first configure
		if [ -n "$LWIP_SRC" ] && ! grep -q "^TK_LWIP_SRC:PATH=$LWIP_SRC\$" "$dir/CMakeCache.txt"; then
			cmake -S "$ROOT" -B "$dir" -DTK_LWIP_SRC="$LWIP_SRC" >/dev/null
		fi
	}
	configure build -DCMAKE_BUILD_TYPE=Release -DTK_WERROR=ON
	configure build-asan -DCMAKE_BUILD_TYPE=Debug -DTK_WERROR=ON -DTK_SANITIZE=ON
	CC=clang configure build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTK_WERROR=ON \
		-DTK_SANITIZE=ON -DTK_FUZZ=ON
	TREES="build build-asan build-fuzz"
	[ "$RELEASE_ONLY" -eq 1 ] && TREES=build
	for d in $TREES; do
		echo "setup: building $d"
		if ! ninja -C "$d" -j "$JOBS" >"$d/ninja.log" 2>&1; then
			grep -E -B2 -A12 'error|FAILED' "$d/ninja.log" | head -80
			echo "setup: build of $d failed (full log: $d/ninja.log)" >&2
			exit 1
		fi
	done
fi

if [ "$BUILD" -eq 1 ] && [ "$CROSS" -eq 1 ]; then
	tools/setup_cross.sh aarch64 armv7
fi

if [ "$INTEROP" -eq 1 ]; then
	# A failed harness build does not stop the C builds; the interop step of
	# tools/check.sh then fails and says what is missing.
	tools/setup_interop.sh || echo "setup: WARNING: interop harness build failed (see above)" >&2
fi
echo "setup: done"
