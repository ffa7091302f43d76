tk_fuzzer(fuzz_wg_filter SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_wg_filter.c LIBS tk_wg tk_crypto tk_core)
