/* Disco (libs/disco): the message parser on anything; whatever it accepts
 * keeps its endpoint lists inside the input, and a Ping, Pong or
 * CallMeMaybe it accepts writes back to bytes that parse to the same
 * fields.  The opener on the same bytes as a sealed packet (a fixed key:
 * nearly always refused, never a crash). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tk/disco.h"
#include "tk/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
rewrite(const tk_disco_msg *m)
{
	uint8_t out[4096];
	size_t n = 0;
	tk_disco_msg r;

	if (m->type == TK_DISCO_PING)
		n = tk_disco_write_ping(out, sizeof(out), m->txid,
		    m->has_node_key ? m->node_key : NULL, m->padding);
	else if (m->type == TK_DISCO_PONG)
		n = tk_disco_write_pong(out, sizeof(out), m->txid, &m->src);
	else if (m->type == TK_DISCO_CALL_ME_MAYBE && m->neps <= 200) {
		tk_disco_ep eps[200];
		for (size_t i = 0; i < m->neps; i++)
			tk_disco_ep_at(m->eps, i, &eps[i]);
		n = tk_disco_write_call_me_maybe(out, sizeof(out), eps, m->neps);
	}
	if (n == 0)
		return;
	if (tk_disco_parse(out, n, &r) != 0 || r.type != m->type ||
	    memcmp(r.txid, m->txid, sizeof(r.txid)) != 0 ||
	    r.has_node_key != m->has_node_key || r.padding != m->padding ||
	    memcmp(&r.src, &m->src, sizeof(r.src)) != 0 || r.neps != m->neps ||
	    (r.neps && memcmp(r.eps, m->eps, r.neps * TK_DISCO_EP_LEN) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_disco_msg m;
	/* an exact-size copy: any read past the end is ASan's */
	uint8_t *p = malloc(size ? size : 1);

	memcpy(p, data, size);
	if (tk_disco_parse(p, size, &m) == 0) {
		if (m.neps && (m.eps < p || m.eps + m.neps * TK_DISCO_EP_LEN > p + size))
			abort();
		if (m.relay.neps && (m.relay.eps < p ||
			m.relay.eps + m.relay.neps * TK_DISCO_EP_LEN > p + size))
			abort();
		rewrite(&m);
	}
	static const uint8_t shared[32] = { 7 };
	uint8_t msg[2048];
	size_t ml;
	int rv = tk_disco_open(p, size, shared, msg, sizeof(msg), &ml);
	if (rv != TK_EPROTO && rv != TK_ECRYPTO && rv != TK_EMSGSIZE && rv != 0)
		abort();
	(void)tk_disco_looks_like(p, size);
	free(p);
	return 0;
}
