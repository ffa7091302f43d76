tk_fuzzer(fuzz_tun SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_tun.c LIBS tk_tun tk_core)
