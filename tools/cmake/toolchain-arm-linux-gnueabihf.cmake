# Cross-build for 32-bit ARM (armv7, hard float) Linux with Debian's cross
# toolchain and the multiarch :armhf packages (tools/setup_cross.sh armhf).
set(TK_CROSS_TRIPLE arm-linux-gnueabihf)
set(TK_CROSS_QEMU qemu-arm)
set(CMAKE_SYSTEM_PROCESSOR armv7)
include(${CMAKE_CURRENT_LIST_DIR}/cross-debian.cmake)
