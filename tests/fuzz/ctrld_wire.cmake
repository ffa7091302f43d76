tk_fuzzer(fuzz_ctrld_wire SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ctrld_wire.c
  LIBS ctrld_internal)
