/* wgd's STUN client: see stun.h. */
#include <arpa/inet.h>
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/stun.h"
#include "path_state.h"
#include "stun.h"

#define ROUND_MIN_NS  (20ull * 1000000000ull)
#define ROUND_SPAN_NS (6ull * 1000000000ull) /* 20-26 s, as Go's ReSTUN */
#define TIMEOUT_NS    (5ull * 1000000000ull)
#define STALE_NS      (60ull * 1000000000ull)

typedef struct server {
	tk_wg_endpoint ep;
	uint8_t txid[TK_STUN_TXID_LEN];
	uint64_t sent;	      /* 0: nothing pending */
	bool have;	      /* mapped is valid */
	tk_wg_endpoint mapped;
	uint64_t answered;    /* when mapped came */
} server;

struct wgdi_stun {
	const tk_clock *clock;
	server sv[WGDI_STUN_MAX_SERVERS];
	size_t n;
	uint64_t next; /* loop time of the next round; 0: at once */
	uint64_t sent, answers, timeouts, unmatched, varies;
};

static uint64_t
now_ns(const wgdi_stun *s)
{
	return tk_clock_mono_ns(s->clock);
}

int
wgdi_stun_new(wgdi_stun **out, const tk_clock *clock)
{
	wgdi_stun *s = tk_calloc(1, sizeof(*s));

	if (s == NULL)
		return TK_ENOMEM;
	s->clock = clock;
	*out = s;
	return 0;
}

void
wgdi_stun_free(wgdi_stun *s)
{
	tk_free(s);
}

bool
wgdi_stun_set_map(wgdi_stun *s, const Tk__Bus__V1__DERPMap *m)
{
	tk_wg_endpoint eps[WGDI_STUN_MAX_SERVERS];
	size_t k = 0;

	for (size_t r = 0; m != NULL && r < m->n_regions; r++) {
		const Tk__Bus__V1__DERPRegion *rg = m->regions[r];
		for (size_t i = 0; rg != NULL && i < rg->n_nodes &&
		    k < WGDI_STUN_MAX_SERVERS; i++) {
			const Tk__Bus__V1__DERPNode *nd = rg->nodes[i];
			struct in_addr a;
			int port;
			if (nd == NULL || nd->ipv4 == NULL ||
			    inet_pton(AF_INET, nd->ipv4, &a) != 1)
				continue; /* "" (DNS), "none", garbage */
			port = nd->has_stun_port ? nd->stun_port : 0;
			if (port < 0 || port > 65535)
				continue; /* -1: no STUN */
			memset(&eps[k], 0, sizeof(eps[k]));
			eps[k].ep_family = 4;
			memcpy(eps[k].ep_addr, &a, 4);
			eps[k].ep_port = (uint16_t)(port ? port : 3478);
			bool dup = false;
			for (size_t j = 0; j < k && !dup; j++)
				dup = wgdi_ep_eq(&eps[j], &eps[k]);
			if (!dup)
				k++;
		}
	}
	bool same = k == s->n;
	for (size_t i = 0; same && i < k; i++)
		same = wgdi_ep_eq(&eps[i], &s->sv[i].ep);
	if (same)
		return false;
	memset(s->sv, 0, sizeof(s->sv));
	for (size_t i = 0; i < k; i++)
		s->sv[i].ep = eps[i];
	s->n = k;
	s->next = 0;
	return true;
}

uint64_t
wgdi_stun_tick(wgdi_stun *s, wgdi_stun_send_fn send, void *arg)
{
	uint64_t now = now_ns(s);

	for (size_t i = 0; i < s->n; i++)
		if (s->sv[i].sent != 0 && now - s->sv[i].sent >= TIMEOUT_NS) {
			s->sv[i].sent = 0;
			s->timeouts++;
		}
	if (s->n == 0 || (s->next != 0 && now < s->next))
		return s->next;
	for (size_t i = 0; i < s->n; i++) {
		uint8_t req[TK_STUN_REQUEST_LEN];
		tk_rng_fill(NULL, s->sv[i].txid, TK_STUN_TXID_LEN);
		tk_stun_request(req, s->sv[i].txid);
		s->sv[i].sent = now;
		send(arg, &s->sv[i].ep, req, sizeof(req));
		s->sent++;
	}
	uint8_t r[2];
	tk_rng_fill(NULL, r, sizeof(r));
	s->next = now + ROUND_MIN_NS +
	    (((uint64_t)r[0] << 8 | r[1]) * ROUND_SPAN_NS) / 65536;
	return s->next;
}

bool
wgdi_stun_looks_like(const uint8_t *p, size_t n)
{
	return n >= TK_STUN_HDR_LEN && (p[0] & 0xc0) == 0 && p[1] == 0x01 &&
	    p[4] == 0x21 && p[5] == 0x12 && p[6] == 0xa4 && p[7] == 0x42;
}

/* The distinct mappings answered lately and how often each was seen. */
static size_t
mappings(wgdi_stun *s, tk_wg_endpoint *out, unsigned *count, size_t cap)
{
	uint64_t now = now_ns(s);
	size_t k = 0;

	for (size_t i = 0; i < s->n; i++) {
		server *v = &s->sv[i];
		size_t j;
		if (!v->have || now - v->answered >= STALE_NS)
			continue;
		for (j = 0; j < k; j++)
			if (wgdi_ep_eq(&out[j], &v->mapped))
				break;
		if (j < k) {
			count[j]++;
		} else if (k < cap) {
			out[k] = v->mapped;
			count[k++] = 1;
		}
	}
	/* most common first (a stable insertion sort: few entries) */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && count[j] > count[j - 1]; j--) {
			tk_wg_endpoint t = out[j];
			unsigned c = count[j];
			out[j] = out[j - 1], count[j] = count[j - 1];
			out[j - 1] = t, count[j - 1] = c;
		}
	return k;
}

bool
wgdi_stun_rx(wgdi_stun *s, const tk_wg_endpoint *src, const uint8_t *p,
    size_t n, bool *changed)
{
	tk_wg_endpoint before[WGDI_STUN_MAX_SERVERS], after[WGDI_STUN_MAX_SERVERS];
	unsigned cb[WGDI_STUN_MAX_SERVERS], ca[WGDI_STUN_MAX_SERVERS];
	size_t nb, na;

	*changed = false;
	for (size_t i = 0; i < s->n; i++) {
		server *v = &s->sv[i];
		uint8_t ip[16];
		size_t iplen;
		uint16_t port;
		if (v->sent == 0 || !wgdi_ep_eq(&v->ep, src))
			continue;
		if (tk_stun_parse_response(p, n, v->txid, ip, &iplen, &port) != 0)
			continue;
		nb = mappings(s, before, cb, WGDI_STUN_MAX_SERVERS);
		v->sent = 0;
		v->have = true;
		v->answered = now_ns(s);
		memset(&v->mapped, 0, sizeof(v->mapped));
		v->mapped.ep_family = iplen == 4 ? 4 : 6;
		memcpy(v->mapped.ep_addr, ip, iplen);
		v->mapped.ep_port = port;
		s->answers++;
		na = mappings(s, after, ca, WGDI_STUN_MAX_SERVERS);
		*changed = na != nb ||
		    memcmp(before, after, na * sizeof(after[0])) != 0;
		if (na > 1 && *changed)
			s->varies++;
		return true;
	}
	s->unmatched++; /* not ours, late, or malformed */
	return false;
}

size_t
wgdi_stun_endpoints(wgdi_stun *s, tk_wg_endpoint *out, size_t cap)
{
	unsigned c[WGDI_STUN_MAX_SERVERS];
	tk_wg_endpoint all[WGDI_STUN_MAX_SERVERS];
	size_t k = mappings(s, all, c, WGDI_STUN_MAX_SERVERS);

	if (k > cap)
		k = cap;
	memcpy(out, all, k * sizeof(out[0]));
	return k;
}

void
wgdi_stun_counters(const wgdi_stun *s, tk_status_counters *cs)
{
	tk_status_counter(cs, "stun_servers", s->n);
	tk_status_counter(cs, "stun_sent", s->sent);
	tk_status_counter(cs, "stun_answers", s->answers);
	tk_status_counter(cs, "stun_timeouts", s->timeouts);
	tk_status_counter(cs, "stun_unmatched", s->unmatched);
	tk_status_counter(cs, "stun_mapping_varies", s->varies);
}
