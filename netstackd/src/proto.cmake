# netstackd's sans-I/O protocol modules (DNS codec, MagicDNS table, DNS
# forwarder, SOCKS5 and HTTP CONNECT parsers): one static library the
# daemon's core calls, the unit tests and the fuzz targets link.  Private
# headers ns_dns.h and ns_proxy.h stay in netstackd/src.
add_library(netstackd_proto STATIC
  ${CMAKE_CURRENT_LIST_DIR}/ns_dns_msg.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_dns_table.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_dns_fwd.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_dns_server.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_dns_resp.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_socks.c
  ${CMAKE_CURRENT_LIST_DIR}/ns_hconn.c)
target_include_directories(netstackd_proto PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(netstackd_proto PUBLIC tk_core tk_proto)
set_target_properties(netstackd_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
tk_target_flags(netstackd_proto)
