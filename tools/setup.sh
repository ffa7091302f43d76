#!/usr/bin/env bash
# tailkit setup: install what the build and tests need, then configure and
# build the three trees.  Idempotent: a second run only rebuilds what changed.
#
#   build/       Release, -Werror                      (tests, benchmarks)
#   build-asan/  Debug + AddressSanitizer + UBSan      (tests)
#   build-fuzz/  clang + libFuzzer + ASan + UBSan       (fuzz targets only)
#
# Options: --deps-only (packages only)  --no-interop (skip the Go harness)
#          --no-build  (packages + interop harness, no C builds)
#          --release-only (build only build/, e.g. for the demo)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEPS_ONLY=0 INTEROP=1 BUILD=1 RELEASE_ONLY=0
for a in "$@"; do
	case "$a" in
	--deps-only) DEPS_ONLY=1 ;;
	--no-interop) INTEROP=0 ;;
	--no-build) BUILD=0 ;;
	--release-only) RELEASE_ONLY=1 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown option '$a' (accepted: --deps-only --no-interop --no-build --release-only)" >&2; exit 2 ;;
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
	dnsutils curl
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

if [ "$BUILD" -eq 1 ]; then
	JOBS=${TK_JOBS:-$(nproc)}
	configure() { # dir, extra cmake args...
		local dir=$1
		shift
		if [ ! -f "$dir/build.ninja" ]; then
			cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
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

if [ "$INTEROP" -eq 1 ]; then
	# A failed harness build does not stop the C builds; the interop step of
	# tools/check.sh then fails and says what is missing.
	tools/setup_interop.sh || echo "setup: WARNING: interop harness build failed (see above)" >&2
fi
echo "setup: done"
