tk_fuzzer(fuzz_wg SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_wg.c LIBS tk_wg tk_crypto tk_core)
