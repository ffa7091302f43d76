tk_fuzzer(fuzz_noise SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_noise.c LIBS tk_crypto tk_core)
