# wgd/src/disco.c (with netmap.c for the peers, path.c and stun.c for the UDP
# side) is compiled into the target itself: the daemon's directory is not
# built in the fuzz tree.
tk_fuzzer(fuzz_wgd_disco
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_wgd_disco.c ${PROJECT_SOURCE_DIR}/wgd/src/disco.c
    ${PROJECT_SOURCE_DIR}/wgd/src/netmap.c ${PROJECT_SOURCE_DIR}/wgd/src/path.c
    ${PROJECT_SOURCE_DIR}/wgd/src/path_cands.c ${PROJECT_SOURCE_DIR}/wgd/src/stun.c
  INCLUDES ${PROJECT_SOURCE_DIR}/wgd/src ${PROJECT_SOURCE_DIR}/libs/derp/include
  LIBS tk_disco tk_stun tk_wg tk_bus tk_crypto tk_core tk_proto)
