# libs/json's tape parser (ctrld's MapResponse reader), with jansson as an
# acceptance oracle.
tk_fuzzer(fuzz_json_tape
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_json_tape.c
  LIBS tk_json tk_core)
