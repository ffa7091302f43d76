# Cross-build for 64-bit ARM Linux with Debian's cross toolchain and the
# multiarch :arm64 development packages (tools/setup_cross.sh installs both).
# Build-time helpers (tk_gen_fields) and ctest run under qemu-user.
#   cmake -S . -B build-aarch64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=tools/cmake/toolchain-aarch64-linux-gnu.cmake
set(TK_CROSS_TRIPLE aarch64-linux-gnu)
set(TK_CROSS_QEMU qemu-aarch64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/cross-debian.cmake)
