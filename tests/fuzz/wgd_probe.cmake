# wgd/src/probe.c is compiled into the target itself: the daemon's
# directory is not built in the fuzz tree.
tk_fuzzer(fuzz_wgd_probe
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_wgd_probe.c ${PROJECT_SOURCE_DIR}/wgd/src/probe.c
  INCLUDES ${PROJECT_SOURCE_DIR}/wgd/src
  LIBS tk_core)
