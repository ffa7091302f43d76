/*
 * derpd_pair: client a on URL_A, client b on URL_B (two servers of one
 * mesh, or the same server), N packets each way; prints one JSON line.
 * For the interop tests (Go derper meshed with derpd), since Go's
 * derpclient takes one URL.  Trust for https comes from $SSL_CERT_FILE.
 *
 *   derpd_pair http[s]://127.0.0.1:PORT/derp http[s]://127.0.0.1:PORT/derp N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tc.h"
#include "tk/core.h"
#include "tk/derp.h"
#include "tk/keys.h"

static int
parse(const char *url, tc_opts *o, uint16_t *port)
{
	const char *p;
	if (strncmp(url, "https://127.0.0.1:", 18) == 0) {
		o->tls = true;
		p = url + 18;
	} else if (strncmp(url, "http://127.0.0.1:", 17) == 0) {
		p = url + 17;
	} else {
		return -1;
	}
	*port = (uint16_t)atoi(p);
	return *port ? 0 : -1;
}

/* Sends from x to y until one arrives (the mesh learns of y in its own
 * time), then the rest; counts what y got. */
static int
one_way(tc *x, tc *y, int n, const char *tag)
{
	uint8_t t, p[512];
	size_t l;
	int got = 0, sent = 0;
	char m[64];

	for (int tries = 0; tries < 50 && got == 0; tries++) {
		snprintf(m, sizeof(m), "%s-probe", tag);
		tc_send(x, y->pub, m, strlen(m));
		for (;;) {
			t = 0;
			if (tc_recv(y, 200, &t, p, sizeof(p), &l) != 0)
				break;
			if (t == TK_DERP_FRAME_RECV_PACKET &&
			    memcmp(p, x->pub, 32) == 0) {
				got = 1;
				break;
			}
		}
	}
	if (!got)
		return 0;
	/* in groups of 8: a Go server's per-client queue holds 32 and drops
	 * the oldest when a burst outruns its writer */
	got = 0;
	for (sent = 0; sent < n;) {
		int batch = n - sent < 8 ? n - sent : 8, want = got + batch;
		for (int i = 0; i < batch; i++, sent++) {
			snprintf(m, sizeof(m), "%s-%d", tag, sent);
			tc_send(x, y->pub, m, strlen(m));
		}
		while (got < want) {
			t = 0;
			if (tc_recv(y, 3000, &t, p, sizeof(p), &l) != 0)
				return got;
			if (t == TK_DERP_FRAME_RECV_PACKET &&
			    memcmp(p, x->pub, 32) == 0 && l > 32 &&
			    memcmp(p + 32, tag, strlen(tag)) == 0 &&
			    memcmp(p + 32 + strlen(tag), "-probe", 6) != 0)
				got++;
		}
	}
	return got;
}

int
main(int argc, char **argv)
{
	tc_opts oa = { 0 }, ob = { 0 };
	uint16_t pa, pb;
	static tc a, b;

	if (argc != 4 || parse(argv[1], &oa, &pa) || parse(argv[2], &ob, &pb)) {
		fprintf(stderr, "usage: derpd_pair URL_A URL_B N (127.0.0.1 only)\n");
		return 2;
	}
	tk_init();
	int n = atoi(argv[3]);
	if (tc_connect(&a, pa, &oa) != 0 || tc_connect(&b, pb, &ob) != 0) {
		printf("{\"ok\":false,\"error\":\"connect\"}\n");
		return 1;
	}
	int ab = one_way(&a, &b, n, "ab");
	int ba = one_way(&b, &a, n, "ba");
	char ka[TK_KEY_TEXT_MAX], kb[TK_KEY_TEXT_MAX];
	tk_key_format(ka, TK_PREFIX_NODE_PUB, a.server_pub);
	tk_key_format(kb, TK_PREFIX_NODE_PUB, b.server_pub);
	printf("{\"ok\":%s,\"a_to_b\":%d,\"b_to_a\":%d,\"server_a\":\"%s\",\"server_b\":\"%s\"}\n",
	    ab == n && ba == n ? "true" : "false", ab, ba, ka, kb);
	tc_close(&a);
	tc_close(&b);
	return ab == n && ba == n ? 0 : 1;
}
