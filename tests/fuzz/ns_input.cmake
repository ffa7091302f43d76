# lwIP's input path as netstackd configures it (netstackd/lwip: lwipopts.h
# and tailkit's tcp_in.c fixes, the zero-window ACK hook, the IPv6 guard),
# fed packets from the "packet bus".
if(TARGET ns_lwip)
  tk_fuzzer(fuzz_ns_input SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ns_input.c
    ${PROJECT_SOURCE_DIR}/netstackd/src/ns_zwp.c
    ${PROJECT_SOURCE_DIR}/netstackd/src/ns_ip6guard.c LIBS ns_lwip)
endif()
