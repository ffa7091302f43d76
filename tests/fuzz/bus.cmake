tk_fuzzer(fuzz_batch SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_batch.c LIBS tk_bus tk_core)
