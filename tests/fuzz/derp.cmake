# libs/derp: a server's byte stream as the node's client reads it (HTTP
# upgrade head, stream reader, client-side decoding, payload parsers), and
# the sealed ClientInfo/ServerInfo JSON.
tk_fuzzer(fuzz_derp_client SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_derp_client.c
  LIBS tk_derp tk_core)
tk_fuzzer(fuzz_derp_info SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_derp_info.c
  LIBS tk_derp tk_core)
