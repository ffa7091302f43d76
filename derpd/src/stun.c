/*
 * The STUN server: one UDP socket on the server's loop (cmd/derper
 * serveSTUN).  Parsing and building are pure (stun_int.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "server_int.h"
#include "tk/stun.h"
#include "tk/endian.h"
#include "tk/err.h"

void
derpdi_stun_readable(derpd_server *s)
{
	uint8_t buf[2048], resp[TK_STUN_RESPONSE_MAX], txid[TK_STUN_TXID_LEN];

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t n = recvfrom(s->ufd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&ss, &sl);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error reported: next time */
		if (tk_stun_parse_request(buf, (size_t)n, txid) != 0) {
			s->st.stun_bad++;
			continue;
		}
		s->st.stun_requests++;
		size_t rl;
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&ss;
			rl = tk_stun_response(resp, txid,
			    (const uint8_t *)&a->sin_addr, 4, ntohs(a->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&ss;
			const uint8_t *ip = a->sin6_addr.s6_addr;
			bool mapped = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
			rl = tk_stun_response(resp, txid, mapped ? ip + 12 : ip,
			    mapped ? 4 : 16, ntohs(a->sin6_port));
		} else {
			continue;
		}
		if (sendto(s->ufd, resp, rl, 0, (struct sockaddr *)&ss, sl) ==
		    (ssize_t)rl)
			s->st.stun_responses++;
	}
}
