#!/usr/bin/env bash
# Cross-builds tailkit for ARM Linux with Debian's cross toolchains and the
# multiarch development packages, and installs qemu-user to run the result.
#
#   tools/setup_cross.sh [aarch64|armv7 ...]    (default: aarch64)
#
# Per target: `dpkg --add-architecture`, apt-get of the cross gcc and the
# :<arch> -dev packages (only what is missing), then build-<target>/ with
# tools/cmake/toolchain-<triple>.cmake (lwIP from the same Debian source as
# the host build).  Idempotent.  Run the unit tests under emulation with
#   ctest --test-dir build-aarch64 -L 'unit|kat'
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(aarch64)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
DEV_PKGS=(libsodium-dev libnng-dev libprotobuf-c-dev libsqlite3-dev libgnutls28-dev
	libcunit1-dev libnghttp2-dev libzstd-dev libjansson-dev libb2-dev)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

for t in "${TARGETS[@]}"; do
	case $t in
	aarch64) arch=arm64 triple=aarch64-linux-gnu opts=() ;;
	# armv7 is built as a small device would be: without netstackd's
	# loopback proxies (docs/EMBEDDED.md), so check.sh tests that link too
	armv7) arch=armhf triple=arm-linux-gnueabihf opts=(-DTK_PROXIES=OFF) ;;
	*) echo "setup_cross: unknown target '$t' (accepted: aarch64 armv7)" >&2; exit 2 ;;
	esac
	want=(gcc-$triple qemu-user)
	for p in "${DEV_PKGS[@]}"; do want+=("$p:$arch"); done
	missing=()
	for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
	if ((${#missing[@]})); then
		echo "setup_cross: installing ${missing[*]}"
		if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
			$SUDO dpkg --add-architecture "$arch"
		fi
		$SUDO apt-get update -qq
		$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	dir=build-$t
	lwip=$(ls -d /var/cache/tailkit/lwip/lwip-*/ 2>/dev/null | head -1 || true)
	if [ ! -f "$dir/build.ninja" ]; then
		cmake -S "$ROOT" -B "$dir" -G Ninja \
			-DCMAKE_TOOLCHAIN_FILE="$ROOT/tools/cmake/toolchain-$triple.cmake" \
			-DCMAKE_BUILD_TYPE=Release -DTK_WERROR=ON "${opts[@]}" \
			${lwip:+-DTK_LWIP_SRC=${lwip%/}} >/dev/null
	fi
	echo "setup_cross: building $dir"
	if ! ninja -C "$dir" -j "${TK_JOBS:-$(nproc)}" >"$dir/ninja.log" 2>&1; then
		grep -E -B2 -A12 'error|FAILED' "$dir/ninja.log" | head -60
		echo "setup_cross: build of $dir failed (full log: $dir/ninja.log)" >&2
		exit 1
	fi
done
