# netstackd's protocol modules (netstackd/src/proto.cmake).
if(TARGET netstackd_proto)
  tk_fuzzer(fuzz_ns_dns
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ns_dns.c
            ${PROJECT_SOURCE_DIR}/tests/unit/ns_dns/nm_fixture.c
    LIBS netstackd_proto tk_proto tk_core
    INCLUDES ${PROJECT_SOURCE_DIR}/tests/unit/ns_dns)
  tk_fuzzer(fuzz_ns_socks
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ns_socks.c
    LIBS netstackd_proto tk_core)
  tk_fuzzer(fuzz_ns_hconn
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ns_hconn.c
    LIBS netstackd_proto tk_core)
endif()
