# ctrld's map state: MapResponse JSON sequences, restore of any bytes.
tk_fuzzer(fuzz_ctrld_map
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ctrld_map.c
  LIBS ctrld_internal tk_proto tk_core)
