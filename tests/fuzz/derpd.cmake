if(TARGET derpd_server)
  tk_fuzzer(fuzz_derp_server_frames
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_derp_server_frames.c
    LIBS derpd_server tk_derp tk_core
    INCLUDES ${PROJECT_SOURCE_DIR}/derpd/src)
endif()
tk_fuzzer(fuzz_stun
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_stun.c
  LIBS tk_stun tk_core)
