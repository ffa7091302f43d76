tk_fuzzer(fuzz_json SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_json.c LIBS tk_json tk_core)
