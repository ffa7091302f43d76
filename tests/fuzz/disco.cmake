# libs/disco: disco messages (over UDP and DERP) and their sealed form.
tk_fuzzer(fuzz_disco SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_disco.c
  LIBS tk_disco tk_crypto tk_core)
