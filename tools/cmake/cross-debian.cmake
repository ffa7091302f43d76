# The part of a Debian multiarch cross toolchain file that does not depend
# on the target: TK_CROSS_TRIPLE (e.g. aarch64-linux-gnu) and TK_CROSS_QEMU
# (the qemu-user binary) are set by the toolchain file that includes this.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${TK_CROSS_TRIPLE}-gcc)
# multiarch: headers in /usr/include (arch-specific ones under the triple),
# libraries and pkg-config files in /usr/lib/<triple>
set(CMAKE_LIBRARY_ARCHITECTURE ${TK_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${TK_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)   # protoc-c runs on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${TK_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
# Target programs (the field-number generator, tests) run under qemu-user
# with the multiarch loader and libraries (libc6:<arch>, /lib/<triple>).
# Not `-L /usr/<triple>`: that loader is the cross toolchain's glibc build,
# and mixed with the multiarch libc.so.6 it hangs in pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR ${TK_CROSS_QEMU})
