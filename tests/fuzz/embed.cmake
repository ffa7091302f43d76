# tailscale_loopback's request checks (tools/embed/src/ts_lbreq.c): any
# local process can send the loopback server anything.
tk_fuzzer(fuzz_embed_lbreq
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_embed_lbreq.c
          ${PROJECT_SOURCE_DIR}/tools/embed/src/ts_lbreq.c
  INCLUDES ${PROJECT_SOURCE_DIR}/tools/embed/src
  LIBS PkgConfig::SODIUM)
