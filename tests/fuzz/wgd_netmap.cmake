# wgd/src/netmap.c is compiled into the target itself: the daemon's
# directory is not built in the fuzz tree.
tk_fuzzer(fuzz_wgd_netmap
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_wgd_netmap.c ${PROJECT_SOURCE_DIR}/wgd/src/netmap.c
    ${PROJECT_SOURCE_DIR}/wgd/src/path_cands.c
  INCLUDES ${PROJECT_SOURCE_DIR}/wgd/src
  LIBS tk_wg tk_crypto tk_core tk_proto)
