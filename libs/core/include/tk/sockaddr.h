/*
 * tk_ipport <-> struct sockaddr (kept apart from tk/netaddr.h so its users
 * do not get <sys/socket.h>'s PF_* and AF_* names).
 */
#ifndef TK_SOCKADDR_H
#define TK_SOCKADDR_H

#include <sys/socket.h>

#include "tk/netaddr.h"

/* To a sockaddr_in or sockaddr_in6 in *ss (zeroed first): its length. */
socklen_t tk_ipport_to_sockaddr(const tk_ipport *p, struct sockaddr_storage *ss);
/* From an AF_INET or AF_INET6 address, as is (a v4-mapped IPv6 address
 * stays IPv6: tk_ipaddr_unmap turns it into IPv4). */
void tk_ipport_from_sockaddr(tk_ipport *p, const struct sockaddr_storage *ss);

#endif
