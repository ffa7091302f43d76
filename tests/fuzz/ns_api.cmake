# netstackd's local API request parser (netstackd/src/ns_api.c).
tk_fuzzer(fuzz_ns_api SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ns_api.c LIBS ns_api tk_core)
