# The LocalAPI's parsers of client input (tools/node/localapi_parse.c):
# chunked bodies, ipn.MaskedPrefs and ipn.Prefs JSON.  Built from the source
# file itself: tk_node (which needs netstackd) is not in the fuzz tree.
tk_fuzzer(fuzz_localapi_parse
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_localapi_parse.c
          ${PROJECT_SOURCE_DIR}/tools/node/localapi_parse.c
  INCLUDES ${PROJECT_SOURCE_DIR}/tools/node ${PROJECT_SOURCE_DIR}/tools/node/include
  LIBS tk_proto tk_bus tk_core PkgConfig::JANSSON)
