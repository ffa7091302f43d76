tk_fuzzer(fuzz_enc SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_enc.c LIBS tk_core)
