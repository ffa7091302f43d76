/*
 * The sans-I/O WireGuard device: handshakes, cookies, sessions, timers.
 * Written from the WireGuard whitepaper (§5 messages, §5.4.7 cookies, §6
 * timers) and the constants in wg.h; behaviour details follow wireguard-go
 * where the paper is silent (noted inline).
 */
#include <string.h>

#include "tk/aead.h"
#include "tk/blake2s.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/noise.h"
#include "tk/pkt.h"
#include "tk/wg.h"
#include "tk/wg_aip.h"
#include "tk/wg_replay.h"


static const char WG_IDENTIFIER[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
static const char WG_LABEL_MAC1[] = "mac1----";
static const char WG_LABEL_COOKIE[] = "cookie--";

#define UNDER_LOAD_DEFAULT 1000u
#define RL_SLOTS	   4096u
#define RL_COST		   (TK_NSEC_PER_SEC / 20) /* 20 packets/s per IP */
#define RL_BURST	   (5 * RL_COST)

typedef struct wg_keypair {
	uint8_t kp_send[32], kp_recv[32];
	uint64_t kp_send_counter;
	tk_wg_replay kp_replay;
	uint32_t kp_local, kp_remote;
	uint64_t kp_created;
	bool kp_initiator;
} wg_keypair;

enum { IDX_FREE = 0, IDX_HANDSHAKE = 1, IDX_KEYPAIR = 2, IDX_TOMB = 3 };

typedef struct idx_slot {
	uint32_t is_index;
	uint8_t is_kind;
	tk_wg_peer *is_peer;
	wg_keypair *is_kp;
} idx_slot;

typedef struct rl_slot {
	uint8_t rl_addr[16];
	uint8_t rl_family;
	uint64_t rl_tokens, rl_last;
} rl_slot;

typedef struct staged {
	size_t st_len;
	uint8_t st_data[];
} staged;

enum { T_RETRANSMIT, T_SEND_KEEPALIVE, T_NEW_HANDSHAKE, T_ZERO_KEYS,
	T_PERSISTENT, T_COUNT };

struct tk_wg_peer {
	tk_wg_device *p_dev;
	tk_wg_peer *p_next, *p_prev;
	uint8_t p_pub[32], p_psk[32];
	bool p_has_psk;
	uint8_t p_mac1_key[32];	  /* to compute mac1 of what we send it */
	uint8_t p_cookie_key[32]; /* to open its cookie replies */
	uint8_t p_cookie[16];
	uint64_t p_cookie_time;
	bool p_has_cookie;
	uint8_t p_last_mac1[16];
	bool p_has_last_mac1;
	tk_wg_endpoint p_ep;
	uint16_t p_keepalive;
	wg_keypair *p_prev_kp, *p_cur_kp, *p_next_kp;
	/* handshake in flight (initiator side) */
	bool p_hs_active;
	tk_noise_hs p_hs;
	uint32_t p_hs_index;
	uint64_t p_hs_last_sent;
	uint32_t p_hs_attempts;
	/* responder-side replay/flood protection */
	uint8_t p_last_ts[12];
	uint64_t p_last_init_rx;
	bool p_seen_init;
	staged *p_staged[TK_WG_MAX_STAGED];
	size_t p_nstaged;
	uint64_t p_timer[T_COUNT]; /* 0: off */
	uint64_t p_heap_at; /* earliest deadline queued for it; 0: none */
	bool p_need_another_keepalive;
	bool p_sent_last_minute_hs;
	tk_wg_peer_stats p_stats;
	void *p_user;
};

struct tk_wg_device {
	const tk_clock *d_clock;
	const tk_rng *d_rng;
	tk_wg_callbacks d_cb;
	bool d_has_key;
	uint8_t d_priv[32], d_pub[32];
	uint8_t d_mac1_key[32];	  /* verify mac1 of what we receive */
	uint8_t d_cookie_key[32]; /* seal our cookie replies */
	uint8_t d_cookie_secret[32];
	uint64_t d_cookie_secret_time;
	bool d_has_cookie_secret;
	tk_wg_aip *d_aip;
	tk_wg_peer *d_head, *d_tail;
	size_t d_npeers;
	/* peers by public key: open addressing, power-of-two capacity */
	tk_wg_peer **d_pk;
	size_t d_pk_cap, d_pk_used;
	/* receiver index table */
	idx_slot *d_idx;
	size_t d_idx_cap, d_idx_used;
	/* under-load detection */
	uint64_t d_load_window, d_load_count, d_under_load_until;
	uint32_t d_under_load_per_sec;
	rl_slot *d_rl;
	tk_wg_stats d_stats;
	/*
	 * Timer queue: a min-heap of (deadline, peer) with lazy deletion.  A
	 * peer is queued again only when a timer is armed earlier than its
	 * earliest queued deadline, so entries grow with timer expiries, not
	 * with packets; a popped entry whose peer has nothing due is dropped.
	 * If the heap ever fails to grow, d_heap_scan switches to scanning
	 * every peer (slower, still correct).
	 */
	struct tentry {
		uint64_t at;
		tk_wg_peer *p; /* NULL: the peer was removed */
	} *d_heap;
	size_t d_heap_n, d_heap_cap;
	bool d_heap_scan;
	uint8_t d_buf[TK_WG_DATA_LEN(TK_WG_MAX_INNER) + 16];
};

/* --- small helpers ------------------------------------------------------- */

static uint64_t
now_ns(const tk_wg_device *d)
{
	return tk_clock_mono_ns(d->d_clock);
}

static void
hash_label(uint8_t out[32], const char *label, const uint8_t pub[32])
{
	tk_blake2s_ctx c;

	tk_blake2s_init(&c, 32, NULL, 0);
	tk_blake2s_update(&c, (const uint8_t *)label, 8);
	tk_blake2s_update(&c, pub, 32);
	tk_blake2s_final(&c, out);
}

static void
mac16(uint8_t out[16], const uint8_t *key, size_t keylen, const uint8_t *p,
    size_t n)
{
	tk_blake2s(out, 16, key, keylen, p, n);
}

static uint64_t
jitter(const tk_wg_device *d)
{
	return (uint64_t)tk_rng_uniform(d->d_rng,
	    (uint32_t)(TK_WG_REKEY_JITTER_MAX / TK_NSEC_PER_USEC)) *
	    TK_NSEC_PER_USEC;
}

void
tk_wg_tai64n(uint8_t out[12], uint64_t real_ns)
{
	uint64_t secs = real_ns / TK_NSEC_PER_SEC;
	uint32_t nsec = (uint32_t)(real_ns % TK_NSEC_PER_SEC);

	/* TAI64 label 2^62 + 10 (+ seconds); whitened nanoseconds */
	tk_be64_store(out, 0x400000000000000aull + secs);
	tk_be32_store(out + 8, nsec & ~0xffffffu);
}

int
tk_wg_message_type(const uint8_t *p, size_t n)
{
	if (n < 4 || p[1] != 0 || p[2] != 0 || p[3] != 0)
		return 0;
	switch (p[0]) {
	case TK_WG_MSG_INITIATION:
		return n == TK_WG_INITIATION_LEN ? p[0] : 0;
	case TK_WG_MSG_RESPONSE:
		return n == TK_WG_RESPONSE_LEN ? p[0] : 0;
	case TK_WG_MSG_COOKIE:
		return n == TK_WG_COOKIE_LEN ? p[0] : 0;
	case TK_WG_MSG_DATA:
		return n >= TK_WG_DATA_MIN_LEN ? p[0] : 0;
	}
	return 0;
}

static void
emit(tk_wg_device *d, tk_wg_peer *p, const tk_wg_endpoint *ep,
    const uint8_t *b, size_t n)
{
	d->d_stats.tx_datagrams++;
	if (p)
		p->p_stats.tx_bytes += n;
	if (d->d_cb.send_datagram)
		d->d_cb.send_datagram(d->d_cb.arg, p, ep, b, n);
}

static void
event(tk_wg_device *d, tk_wg_peer *p, int ev)
{
	if (d->d_cb.peer_event)
		d->d_cb.peer_event(d->d_cb.arg, p, ev);
}

/* --- public-key table ---------------------------------------------------- */

static size_t
pk_hash(const uint8_t pub[32])
{
	uint64_t h;

	memcpy(&h, pub + 8, sizeof(h)); /* keys are uniformly random */
	return (size_t)h;
}

static int
pk_grow(tk_wg_device *d)
{
	size_t ncap = d->d_pk_cap ? d->d_pk_cap * 2 : 16;
	tk_wg_peer **n = tk_calloc(ncap, sizeof(*n));

	if (n == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < d->d_pk_cap; i++) {
		tk_wg_peer *p = d->d_pk[i];
		if (p == NULL || p == (tk_wg_peer *)d)
			continue;
		size_t j = pk_hash(p->p_pub) & (ncap - 1);
		while (n[j])
			j = (j + 1) & (ncap - 1);
		n[j] = p;
	}
	tk_free(d->d_pk);
	d->d_pk = n;
	d->d_pk_cap = ncap;
	d->d_pk_used = d->d_npeers;
	return 0;
}

/* Slot holding pub, or NULL.  A tombstone is the device pointer. */
static tk_wg_peer **
pk_slot(const tk_wg_device *d, const uint8_t pub[32])
{
	if (d->d_pk_cap == 0)
		return NULL;
	size_t mask = d->d_pk_cap - 1, j = pk_hash(pub) & mask;
	for (size_t k = 0; k < d->d_pk_cap; k++, j = (j + 1) & mask) {
		tk_wg_peer *p = d->d_pk[j];
		if (p == NULL)
			return NULL;
		if (p != (tk_wg_peer *)d && memcmp(p->p_pub, pub, 32) == 0)
			return &d->d_pk[j];
	}
	return NULL;
}

static int
pk_insert(tk_wg_device *d, tk_wg_peer *p)
{
	if ((d->d_pk_used + 1) * 2 > d->d_pk_cap) {
		int rv = pk_grow(d);
		if (rv != 0)
			return rv;
	}
	size_t mask = d->d_pk_cap - 1, j = pk_hash(p->p_pub) & mask;
	while (d->d_pk[j] != NULL && d->d_pk[j] != (tk_wg_peer *)d)
		j = (j + 1) & mask;
	if (d->d_pk[j] == NULL)
		d->d_pk_used++;
	d->d_pk[j] = p;
	return 0;
}

/* --- receiver-index table ------------------------------------------------ */

static size_t
idx_hash(uint32_t i)
{
	return (size_t)(i * 2654435761u);
}

static idx_slot *
idx_find(const tk_wg_device *d, uint32_t index)
{
	if (d->d_idx_cap == 0)
		return NULL;
	size_t mask = d->d_idx_cap - 1, j = idx_hash(index) & mask;
	for (size_t k = 0; k < d->d_idx_cap; k++, j = (j + 1) & mask) {
		idx_slot *s = &d->d_idx[j];
		if (s->is_kind == IDX_FREE)
			return NULL;
		if (s->is_kind != IDX_TOMB && s->is_index == index)
			return s;
	}
	return NULL;
}

static int
idx_grow(tk_wg_device *d)
{
	size_t ncap = d->d_idx_cap ? d->d_idx_cap * 2 : 64, live = 0;
	idx_slot *n = tk_calloc(ncap, sizeof(*n));

	if (n == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < d->d_idx_cap; i++) {
		idx_slot *s = &d->d_idx[i];
		if (s->is_kind != IDX_HANDSHAKE && s->is_kind != IDX_KEYPAIR)
			continue;
		size_t j = idx_hash(s->is_index) & (ncap - 1);
		while (n[j].is_kind != IDX_FREE)
			j = (j + 1) & (ncap - 1);
		n[j] = *s;
		live++;
	}
	tk_free(d->d_idx);
	d->d_idx = n;
	d->d_idx_cap = ncap;
	d->d_idx_used = live;
	return 0;
}

/* Allocates a fresh random nonzero index. */
static int
idx_new(tk_wg_device *d, uint8_t kind, tk_wg_peer *p, wg_keypair *kp,
    uint32_t *out)
{
	if ((d->d_idx_used + 1) * 2 > d->d_idx_cap) {
		int rv = idx_grow(d);
		if (rv != 0)
			return rv;
	}
	uint32_t index;
	do
		index = tk_rng_u32(d->d_rng);
	while (index == 0 || idx_find(d, index) != NULL);
	size_t mask = d->d_idx_cap - 1, j = idx_hash(index) & mask;
	while (d->d_idx[j].is_kind == IDX_HANDSHAKE ||
	    d->d_idx[j].is_kind == IDX_KEYPAIR)
		j = (j + 1) & mask;
	if (d->d_idx[j].is_kind == IDX_FREE)
		d->d_idx_used++;
	d->d_idx[j] = (idx_slot) { index, kind, p, kp };
	*out = index;
	return 0;
}

static void
idx_del(tk_wg_device *d, uint32_t index)
{
	idx_slot *s = idx_find(d, index);

	if (s)
		*s = (idx_slot) { 0, IDX_TOMB, NULL, NULL };
}

/* --- keypairs and handshake state --------------------------------------- */

static void
kp_free(tk_wg_device *d, wg_keypair *kp)
{
	if (kp == NULL)
		return;
	idx_del(d, kp->kp_local);
	tk_secure_zero(kp, sizeof(*kp));
	tk_free(kp);
}

static void
hs_clear(tk_wg_peer *p)
{
	if (p->p_hs_active) {
		idx_del(p->p_dev, p->p_hs_index);
		tk_noise_hs_wipe(&p->p_hs);
		p->p_hs_active = false;
	}
}

static void
staged_clear(tk_wg_peer *p)
{
	for (size_t i = 0; i < p->p_nstaged; i++)
		tk_free(p->p_staged[i]);
	p->p_nstaged = 0;
}

static void
keys_zero(tk_wg_peer *p)
{
	tk_wg_device *d = p->p_dev;

	kp_free(d, p->p_prev_kp);
	kp_free(d, p->p_cur_kp);
	kp_free(d, p->p_next_kp);
	p->p_prev_kp = p->p_cur_kp = p->p_next_kp = NULL;
	hs_clear(p);
}

static bool
kp_usable_send(const tk_wg_device *d, const wg_keypair *kp, uint64_t now)
{
	return kp != NULL && now - kp->kp_created < TK_WG_REJECT_AFTER_TIME &&
	    kp->kp_send_counter < TK_WG_REJECT_AFTER_MESSAGES && d->d_has_key;
}

/* --- device -------------------------------------------------------------- */

int
tk_wg_device_new(tk_wg_device **out, const tk_wg_device_config *cfg)
{
	tk_wg_device *d = tk_calloc(1, sizeof(*d));
	int rv;

	if (d == NULL)
		return TK_ENOMEM;
	d->d_clock = cfg && cfg->clock ? cfg->clock : tk_clock_system();
	d->d_rng = cfg && cfg->rng ? cfg->rng : tk_rng_system();
	if (cfg)
		d->d_cb = cfg->cb;
	d->d_under_load_per_sec = cfg && cfg->under_load_per_sec ?
	    cfg->under_load_per_sec : UNDER_LOAD_DEFAULT;
	if ((rv = tk_wg_aip_new(&d->d_aip)) != 0 ||
	    (d->d_rl = tk_calloc(RL_SLOTS, sizeof(rl_slot))) == NULL) {
		tk_wg_aip_free(d->d_aip);
		tk_free(d);
		return rv ? rv : TK_ENOMEM;
	}
	*out = d;
	return 0;
}

static void
peer_destroy(tk_wg_device *d, tk_wg_peer *p)
{
	keys_zero(p);
	staged_clear(p);
	tk_wg_aip_remove_peer(d->d_aip, p);
	tk_secure_zero(p, sizeof(*p));
	tk_free(p);
}

void
tk_wg_device_free(tk_wg_device *d)
{
	if (d == NULL)
		return;
	for (tk_wg_peer *p = d->d_head, *n; p; p = n) {
		n = p->p_next;
		peer_destroy(d, p);
	}
	tk_wg_aip_free(d->d_aip);
	tk_free(d->d_pk);
	tk_free(d->d_idx);
	tk_free(d->d_rl);
	tk_free(d->d_heap);
	tk_secure_zero(d, sizeof(*d));
	tk_free(d);
}

int
tk_wg_device_set_private_key(tk_wg_device *d, const uint8_t priv[32])
{
	static const uint8_t base[32] = { 9 };
	uint8_t k[32], pub[32];

	memcpy(k, priv, 32);
	k[0] &= 248; /* clamp, as wg(8) shows keys clamped */
	k[31] = (k[31] & 127) | 64;
	if (tk_x25519(pub, k, base) != 0)
		return TK_EINVAL;
	if (d->d_has_key && memcmp(k, d->d_priv, 32) == 0)
		return 0;
	tk_wg_peer *same = tk_wg_peer_find(d, pub);
	if (same)
		tk_wg_peer_remove(d, same); /* wireguard-go: a peer with our key goes */
	memcpy(d->d_priv, k, 32);
	memcpy(d->d_pub, pub, 32);
	d->d_has_key = true;
	hash_label(d->d_mac1_key, WG_LABEL_MAC1, pub);
	hash_label(d->d_cookie_key, WG_LABEL_COOKIE, pub);
	for (tk_wg_peer *p = d->d_head; p; p = p->p_next) {
		keys_zero(p);
		p->p_has_cookie = false;
	}
	tk_secure_zero(k, sizeof(k));
	return 0;
}

bool
tk_wg_device_public_key(const tk_wg_device *d, uint8_t pub[32])
{
	if (d->d_has_key)
		memcpy(pub, d->d_pub, 32);
	return d->d_has_key;
}

bool
tk_wg_device_private_key(const tk_wg_device *d, uint8_t priv[32])
{
	if (d->d_has_key)
		memcpy(priv, d->d_priv, 32);
	return d->d_has_key;
}

void
tk_wg_device_get_stats(const tk_wg_device *d, tk_wg_stats *st)
{
	*st = d->d_stats;
}

bool
tk_wg_device_under_load(tk_wg_device *d)
{
	return now_ns(d) < d->d_under_load_until;
}

/* --- peers --------------------------------------------------------------- */

int
tk_wg_peer_add(tk_wg_device *d, const uint8_t pub[32], tk_wg_peer **out)
{
	if (d->d_has_key && memcmp(pub, d->d_pub, 32) == 0)
		return TK_EINVAL;
	if (tk_wg_peer_find(d, pub))
		return TK_EEXIST;
	tk_wg_peer *p = tk_calloc(1, sizeof(*p));
	if (p == NULL)
		return TK_ENOMEM;
	p->p_dev = d;
	memcpy(p->p_pub, pub, 32);
	hash_label(p->p_mac1_key, WG_LABEL_MAC1, pub);
	hash_label(p->p_cookie_key, WG_LABEL_COOKIE, pub);
	int rv = pk_insert(d, p);
	if (rv != 0) {
		tk_free(p);
		return rv;
	}
	p->p_prev = d->d_tail;
	if (d->d_tail)
		d->d_tail->p_next = p;
	else
		d->d_head = p;
	d->d_tail = p;
	d->d_npeers++;
	if (out)
		*out = p;
	return 0;
}

void
tk_wg_peer_remove(tk_wg_device *d, tk_wg_peer *p)
{
	tk_wg_peer **slot = pk_slot(d, p->p_pub);

	if (slot)
		*slot = (tk_wg_peer *)d; /* tombstone */
	if (p->p_prev)
		p->p_prev->p_next = p->p_next;
	else
		d->d_head = p->p_next;
	if (p->p_next)
		p->p_next->p_prev = p->p_prev;
	else
		d->d_tail = p->p_prev;
	d->d_npeers--;
	/* its queued timers stay in heap order, marked gone */
	for (size_t i = 0; i < d->d_heap_n; i++)
		if (d->d_heap[i].p == p)
			d->d_heap[i].p = NULL;
	peer_destroy(d, p);
}

tk_wg_peer *
tk_wg_device_route(const tk_wg_device *d, int family, const uint8_t *addr)
{
	if (family != 4 && family != 6)
		return NULL;
	return tk_wg_aip_lookup(d->d_aip, family, addr);
}

tk_wg_peer *
tk_wg_peer_find(const tk_wg_device *d, const uint8_t pub[32])
{
	tk_wg_peer **s = pk_slot(d, pub);

	return s ? *s : NULL;
}

size_t
tk_wg_peer_count(const tk_wg_device *d)
{
	return d->d_npeers;
}

tk_wg_peer *
tk_wg_peer_first(const tk_wg_device *d)
{
	return d->d_head;
}

tk_wg_peer *
tk_wg_peer_next(const tk_wg_peer *p)
{
	return p->p_next;
}

const uint8_t *
tk_wg_peer_public_key(const tk_wg_peer *p)
{
	return p->p_pub;
}

void
tk_wg_peer_set_psk(tk_wg_peer *p, const uint8_t *psk)
{
	static const uint8_t zero[32];

	if (psk == NULL || tk_ct_eq(psk, zero, 32)) {
		memset(p->p_psk, 0, 32);
		p->p_has_psk = false;
	} else {
		memcpy(p->p_psk, psk, 32);
		p->p_has_psk = true;
	}
}

bool
tk_wg_peer_has_psk(const tk_wg_peer *p)
{
	return p->p_has_psk;
}

void
tk_wg_peer_get_psk(const tk_wg_peer *p, uint8_t psk[32])
{
	memcpy(psk, p->p_psk, 32);
}

void
tk_wg_peer_set_endpoint(tk_wg_peer *p, const tk_wg_endpoint *ep)
{
	if (ep)
		p->p_ep = *ep;
	else
		memset(&p->p_ep, 0, sizeof(p->p_ep));
}

void
tk_wg_peer_get_endpoint(const tk_wg_peer *p, tk_wg_endpoint *ep)
{
	*ep = p->p_ep;
}

static void
heap_push(tk_wg_device *d, uint64_t at, tk_wg_peer *p)
{
	struct tentry *h;
	size_t i;

	if (d->d_heap_scan)
		return;
	if (d->d_heap_n == d->d_heap_cap) {
		size_t nc = d->d_heap_cap ? d->d_heap_cap * 2 : 64;
		if (tk_fault_hit("wg_heap") ||
		    (h = tk_realloc(d->d_heap, nc * sizeof(*h))) == NULL) {
			d->d_heap_scan = true; /* fall back to scanning */
			return;
		}
		d->d_heap = h;
		d->d_heap_cap = nc;
	}
	h = d->d_heap;
	i = d->d_heap_n++;
	while (i > 0 && h[(i - 1) / 2].at > at) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i].at = at;
	h[i].p = p;
}

static struct tentry
heap_pop(tk_wg_device *d)
{
	struct tentry *h = d->d_heap, top = h[0], last = h[--d->d_heap_n];
	size_t i = 0, n = d->d_heap_n;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].at < h[c].at)
			c++;
		if (last.at <= h[c].at)
			break;
		h[i] = h[c];
		i = c;
	}
	if (n > 0)
		h[i] = last;
	return top;
}

static uint64_t
peer_due(const tk_wg_peer *p)
{
	uint64_t m = UINT64_MAX;

	for (int t = 0; t < T_COUNT; t++)
		if (p->p_timer[t] && p->p_timer[t] < m)
			m = p->p_timer[t];
	return m;
}

static void
timer_set(tk_wg_peer *p, int t, uint64_t at)
{
	at = at ? at : 1;
	p->p_timer[t] = at;
	if (p->p_heap_at == 0 || at < p->p_heap_at) {
		p->p_heap_at = at;
		heap_push(p->p_dev, at, p);
	}
}

/* Any authenticated packet sent or received: restart persistent keepalive. */
static void
packet_traversal(tk_wg_peer *p, uint64_t now)
{
	if (p->p_keepalive)
		timer_set(p, T_PERSISTENT, now + p->p_keepalive * TK_NSEC_PER_SEC);
}

void
tk_wg_peer_set_keepalive(tk_wg_peer *p, uint16_t seconds)
{
	bool was = p->p_keepalive != 0;

	p->p_keepalive = seconds;
	if (seconds == 0)
		p->p_timer[T_PERSISTENT] = 0;
	else if (!was)
		/* wireguard-go sends one right away when it is switched on */
		timer_set(p, T_PERSISTENT, now_ns(p->p_dev));
}

uint16_t
tk_wg_peer_keepalive(const tk_wg_peer *p)
{
	return p->p_keepalive;
}

int
tk_wg_peer_add_allowed_ip(tk_wg_peer *p, int family, const uint8_t *addr,
    unsigned bits)
{
	return tk_wg_aip_insert(p->p_dev->d_aip, family, addr, bits, p);
}

int
tk_wg_peer_remove_allowed_ip(tk_wg_peer *p, int family, const uint8_t *addr,
    unsigned bits)
{
	return tk_wg_aip_remove(p->p_dev->d_aip, family, addr, bits);
}

void
tk_wg_peer_clear_allowed_ips(tk_wg_peer *p)
{
	tk_wg_aip_remove_peer(p->p_dev->d_aip, p);
}

struct prefix_walk {
	tk_wg_prefix_fn fn;
	void *arg;
};

static void
prefix_visit(void *arg, int family, const uint8_t *addr, unsigned bits,
    void *peer)
{
	struct prefix_walk *w = arg;

	(void)peer;
	w->fn(w->arg, family, addr, bits);
}

void
tk_wg_peer_allowed_ips(const tk_wg_peer *p, tk_wg_prefix_fn fn, void *arg)
{
	struct prefix_walk w = { fn, arg };

	tk_wg_aip_walk(p->p_dev->d_aip, (void *)p, prefix_visit, &w);
}

void
tk_wg_peer_get_stats(const tk_wg_peer *p, tk_wg_peer_stats *st)
{
	*st = p->p_stats;
}

void
tk_wg_peer_set_user(tk_wg_peer *p, void *user)
{
	p->p_user = user;
}

void *
tk_wg_peer_user(const tk_wg_peer *p)
{
	return p->p_user;
}

bool
tk_wg_peer_has_session(tk_wg_peer *p)
{
	return kp_usable_send(p->p_dev, p->p_cur_kp, now_ns(p->p_dev));
}

/* --- handshake initiation ------------------------------------------------ */

static void
add_macs(tk_wg_peer *p, uint8_t *msg, size_t n)
{
	tk_wg_device *d = p->p_dev;
	uint64_t now = now_ns(d);

	mac16(msg + n - 32, p->p_mac1_key, 32, msg, n - 32);
	memcpy(p->p_last_mac1, msg + n - 32, 16);
	p->p_has_last_mac1 = true;
	if (p->p_has_cookie && now - p->p_cookie_time < TK_WG_COOKIE_REFRESH_TIME)
		mac16(msg + n - 16, p->p_cookie, 16, msg, n - 16);
	else
		memset(msg + n - 16, 0, 16);
}

static void
noise_config(tk_noise_config *c, tk_wg_device *d, tk_wg_peer *p,
    enum tk_noise_role role)
{
	memset(c, 0, sizeof(*c));
	c->protocol_name = TK_NOISE_IKPSK2_NAME;
	c->prologue = (const uint8_t *)WG_IDENTIFIER;
	c->prologue_len = sizeof(WG_IDENTIFIER) - 1;
	c->role = role;
	c->local_static_priv = d->d_priv;
	c->remote_static_pub = p ? p->p_pub : NULL;
	c->psk = p ? p->p_psk : NULL;
	c->rng = d->d_rng;
}

static void
send_initiation(tk_wg_peer *p, bool retry)
{
	tk_wg_device *d = p->p_dev;
	uint64_t now = now_ns(d);
	uint8_t msg[TK_WG_INITIATION_LEN], ts[12];
	tk_noise_config c;
	size_t len;

	if (!d->d_has_key)
		return;
	if (!retry) {
		if (p->p_hs_active &&
		    now - p->p_hs_last_sent < TK_WG_REKEY_TIMEOUT)
			return; /* one is in flight */
		p->p_hs_attempts = 0;
	}
	hs_clear(p);
	noise_config(&c, d, p, TK_NOISE_INITIATOR);
	if (tk_noise_hs_init(&p->p_hs, &c) != 0)
		return;
	if (idx_new(d, IDX_HANDSHAKE, p, NULL, &p->p_hs_index) != 0) {
		tk_noise_hs_wipe(&p->p_hs);
		return;
	}
	p->p_hs_active = true;
	memset(msg, 0, sizeof(msg));
	msg[0] = TK_WG_MSG_INITIATION;
	tk_le32_store(msg + 4, p->p_hs_index);
	tk_wg_tai64n(ts, tk_clock_real_ns(d->d_clock));
	if (tk_noise_hs_write_msg1(&p->p_hs, ts, sizeof(ts), msg + 8, 108,
		&len) != 0 || len != 108) {
		hs_clear(p);
		return;
	}
	add_macs(p, msg, sizeof(msg));
	p->p_hs_last_sent = now;
	timer_set(p, T_RETRANSMIT, now + TK_WG_REKEY_TIMEOUT + jitter(d));
	d->d_stats.tx_handshake++;
	emit(d, p, &p->p_ep, msg, sizeof(msg));
	/* an initiation is an authenticated packet traversal */
	packet_traversal(p, now);
}

void
tk_wg_peer_initiate(tk_wg_peer *p)
{
	send_initiation(p, false);
}

/* --- sending data -------------------------------------------------------- */

/*
 * Seals the data message whose n plaintext bytes sit at out + 16, with room
 * behind them for the padding and the tag, where it lies, and emits it.
 */
static void
seal_emit_at(tk_wg_peer *p, wg_keypair *kp, uint8_t *out, size_t n)
{
	tk_wg_device *d = p->p_dev;
	size_t plen = (n + TK_WG_PADDING - 1) / TK_WG_PADDING * TK_WG_PADDING;
	uint64_t now = now_ns(d), counter = kp->kp_send_counter++;

	out[0] = TK_WG_MSG_DATA;
	out[1] = out[2] = out[3] = 0;
	tk_le32_store(out + 4, kp->kp_remote);
	tk_le64_store(out + 8, counter);
	memset(out + 16 + n, 0, plen - n);
	tk_chacha_seal(out + 16, kp->kp_send, counter, TK_NONCE_LE, NULL, 0,
	    out + 16, plen);
	if (n) {
		d->d_stats.tx_data++;
		/* data sent: expect an answer within 15 s or re-handshake */
		if (p->p_timer[T_NEW_HANDSHAKE] == 0)
			timer_set(p, T_NEW_HANDSHAKE, now + TK_WG_KEEPALIVE_TIMEOUT +
			    TK_WG_REKEY_TIMEOUT + jitter(d));
	} else {
		d->d_stats.tx_keepalive++;
	}
	/* anything we send makes a passive keepalive unnecessary */
	p->p_timer[T_SEND_KEEPALIVE] = 0;
	packet_traversal(p, now);
	emit(d, p, &p->p_ep, out, 16 + plen + 16);
	if (kp->kp_initiator && (now - kp->kp_created >= TK_WG_REKEY_AFTER_TIME ||
	    kp->kp_send_counter >= TK_WG_REKEY_AFTER_MESSAGES))
		send_initiation(p, false);
}

static void
seal_and_emit(tk_wg_peer *p, wg_keypair *kp, const uint8_t *ip, size_t n)
{
	uint8_t *out = p->p_dev->d_buf;

	if (n)
		memcpy(out + 16, ip, n);
	seal_emit_at(p, kp, out, n);
}

static int
stage(tk_wg_peer *p, const uint8_t *ip, size_t n)
{
	tk_wg_device *d = p->p_dev;

	if (p->p_nstaged == TK_WG_MAX_STAGED) {
		/* drop the oldest, as wireguard-go does */
		tk_free(p->p_staged[0]);
		memmove(p->p_staged, p->p_staged + 1,
		    (TK_WG_MAX_STAGED - 1) * sizeof(p->p_staged[0]));
		p->p_nstaged--;
		d->d_stats.drop_staged_overflow++;
	}
	staged *s = tk_malloc(sizeof(*s) + n);
	if (s == NULL)
		return TK_ENOMEM;
	s->st_len = n;
	if (n)
		memcpy(s->st_data, ip, n);
	p->p_staged[p->p_nstaged++] = s;
	return 0;
}

static void
flush_staged(tk_wg_peer *p)
{
	tk_wg_device *d = p->p_dev;
	uint64_t now = now_ns(d);
	size_t i;

	for (i = 0; i < p->p_nstaged; i++) {
		if (!kp_usable_send(d, p->p_cur_kp, now))
			break;
		seal_and_emit(p, p->p_cur_kp, p->p_staged[i]->st_data,
		    p->p_staged[i]->st_len);
		tk_free(p->p_staged[i]);
	}
	memmove(p->p_staged, p->p_staged + i,
	    (p->p_nstaged - i) * sizeof(p->p_staged[0]));
	p->p_nstaged -= i;
}

/* pkt: the packet at ip, in a tk_pkt the caller lets us seal in place. */
static int
send_or_stage(tk_wg_peer *p, const uint8_t *ip, size_t n, tk_pkt *pkt)
{
	tk_wg_device *d = p->p_dev;
	uint64_t now = now_ns(d);

	if (n > TK_WG_MAX_INNER)
		return TK_EMSGSIZE;
	if (p->p_nstaged == 0 && kp_usable_send(d, p->p_cur_kp, now)) {
		size_t tail = TK_WG_DATA_LEN(n) - TK_WG_DATA_HDR_LEN - n;
		if (pkt != NULL && tk_pkt_headroom(pkt) >= TK_WG_DATA_HDR_LEN &&
		    tk_pkt_tailroom(pkt) >= tail) {
			/* the datagram is built around the packet: header
			 * pushed in front, padding and tag put behind */
			(void)tk_pkt_push(pkt, TK_WG_DATA_HDR_LEN, NULL);
			(void)tk_pkt_put(pkt, tail, NULL);
			seal_emit_at(p, p->p_cur_kp, pkt->pk_data, n);
		} else {
			seal_and_emit(p, p->p_cur_kp, ip, n);
		}
		return 0;
	}
	int rv = stage(p, ip, n);
	if (rv != 0)
		return rv;
	if (kp_usable_send(d, p->p_cur_kp, now))
		flush_staged(p);
	else
		send_initiation(p, false);
	return 0;
}

int
tk_wg_peer_send(tk_wg_peer *p, const uint8_t *ip, size_t n)
{
	return send_or_stage(p, ip, n, NULL);
}

/* IP version and the offsets of its addresses; 0 for not-IP. */
static int
ip_family(const uint8_t *ip, size_t n)
{
	if (n >= 20 && (ip[0] >> 4) == 4)
		return 4;
	if (n >= 40 && (ip[0] >> 4) == 6)
		return 6;
	return 0;
}

static int
device_send(tk_wg_device *d, const uint8_t *ip, size_t n, tk_pkt *pkt)
{
	int fam = ip_family(ip, n);

	if (fam == 0)
		return TK_EPROTO;
	tk_wg_peer *p = tk_wg_aip_lookup(d->d_aip, fam,
	    fam == 4 ? ip + 16 : ip + 24);
	if (p == NULL) {
		d->d_stats.drop_no_route++;
		return TK_ENOENT;
	}
	return send_or_stage(p, ip, n, pkt);
}

int
tk_wg_device_send(tk_wg_device *d, const uint8_t *ip, size_t n)
{
	return device_send(d, ip, n, NULL);
}

int
tk_wg_device_send_pkt(tk_wg_device *d, tk_pkt *pkt)
{
	return device_send(d, pkt->pk_data, pkt->pk_len, pkt);
}

/* --- cookies and load ---------------------------------------------------- */

static void
cookie_for(tk_wg_device *d, const tk_wg_endpoint *src, uint8_t out[16])
{
	uint64_t now = now_ns(d);
	uint8_t data[18];
	size_t alen = src->ep_family == 4 ? 4 : 16;

	if (!d->d_has_cookie_secret ||
	    now - d->d_cookie_secret_time >= TK_WG_COOKIE_REFRESH_TIME) {
		tk_rng_fill(d->d_rng, d->d_cookie_secret, 32);
		d->d_cookie_secret_time = now;
		d->d_has_cookie_secret = true;
	}
	memcpy(data, src->ep_addr, alen);
	tk_be16_store(data + alen, src->ep_port);
	mac16(out, d->d_cookie_secret, 32, data, alen + 2);
}

static void
send_cookie_reply(tk_wg_device *d, const tk_wg_endpoint *src,
    const uint8_t *msg, size_t n, tk_wg_peer *p)
{
	uint8_t reply[TK_WG_COOKIE_LEN], cookie[16];

	cookie_for(d, src, cookie);
	memset(reply, 0, sizeof(reply));
	reply[0] = TK_WG_MSG_COOKIE;
	memcpy(reply + 4, msg + 4, 4); /* their sender index */
	tk_rng_fill(d->d_rng, reply + 8, 24);
	tk_xchacha_seal(reply + 32, d->d_cookie_key, reply + 8,
	    msg + n - 32, 16, cookie, 16);
	d->d_stats.tx_cookie++;
	emit(d, p, src, reply, sizeof(reply));
}

/* Counts a handshake message; true when the device is under load. */
static bool
load_note(tk_wg_device *d)
{
	uint64_t now = now_ns(d);

	if (now - d->d_load_window >= TK_NSEC_PER_SEC) {
		d->d_load_window = now;
		d->d_load_count = 0;
	}
	if (++d->d_load_count > d->d_under_load_per_sec)
		d->d_under_load_until = now + TK_WG_UNDER_LOAD_HOLD;
	return now < d->d_under_load_until;
}

/* Token bucket per source IP (not port); bounded table, newest wins. */
static bool
ratelimit_allow(tk_wg_device *d, const tk_wg_endpoint *src)
{
	uint64_t now = now_ns(d), h = 1469598103934665603ull;
	size_t alen = src->ep_family == 4 ? 4 : 16;

	for (size_t i = 0; i < alen; i++)
		h = (h ^ src->ep_addr[i]) * 1099511628211ull;
	rl_slot *s = &d->d_rl[h & (RL_SLOTS - 1)];
	if (s->rl_family != src->ep_family ||
	    memcmp(s->rl_addr, src->ep_addr, alen) != 0 ||
	    now - s->rl_last > RL_BURST) {
		s->rl_family = src->ep_family;
		memcpy(s->rl_addr, src->ep_addr, alen);
		s->rl_tokens = RL_BURST;
		s->rl_last = now;
	}
	s->rl_tokens += now - s->rl_last;
	if (s->rl_tokens > RL_BURST)
		s->rl_tokens = RL_BURST;
	s->rl_last = now;
	if (s->rl_tokens < RL_COST)
		return false;
	s->rl_tokens -= RL_COST;
	return true;
}

/*
 * mac1 must be valid; under load mac2 must be too (else a cookie reply
 * goes out), and the source is rate-limited.  0 to proceed.
 */
static int
check_macs(tk_wg_device *d, const tk_wg_endpoint *src, const uint8_t *msg,
    size_t n)
{
	uint8_t mac[16], cookie[16];

	mac16(mac, d->d_mac1_key, 32, msg, n - 32);
	if (!tk_ct_eq(mac, msg + n - 32, 16)) {
		d->d_stats.drop_mac1++;
		return TK_ECRYPTO;
	}
	if (!load_note(d))
		return 0;
	cookie_for(d, src, cookie);
	mac16(mac, cookie, 16, msg, n - 16);
	if (!tk_ct_eq(mac, msg + n - 16, 16)) {
		d->d_stats.drop_mac2++;
		send_cookie_reply(d, src, msg, n, NULL);
		return TK_EAGAIN;
	}
	if (!ratelimit_allow(d, src)) {
		d->d_stats.drop_ratelimit++;
		return TK_EAGAIN;
	}
	return 0;
}

/* --- session establishment ---------------------------------------------- */

/*
 * A session from a finished handshake.  The initiator's session keeps the
 * index its initiation announced (`reuse`); the responder's gets a new one.
 */
static wg_keypair *
kp_new(tk_wg_device *d, tk_wg_peer *p, const tk_noise_hs *hs, bool initiator,
    uint32_t remote, uint32_t reuse)
{
	wg_keypair *kp = tk_calloc(1, sizeof(*kp));

	if (kp == NULL)
		return NULL;
	if (reuse) {
		idx_slot *s = idx_find(d, reuse);
		if (s == NULL) {
			tk_free(kp);
			return NULL;
		}
		s->is_kind = IDX_KEYPAIR;
		s->is_kp = kp;
		kp->kp_local = reuse;
	} else if (idx_new(d, IDX_KEYPAIR, p, kp, &kp->kp_local) != 0) {
		tk_free(kp);
		return NULL;
	}
	tk_noise_hs_split(hs, kp->kp_send, kp->kp_recv);
	kp->kp_remote = remote;
	kp->kp_created = now_ns(d);
	kp->kp_initiator = initiator;
	tk_wg_replay_init(&kp->kp_replay);
	return kp;
}

static void
session_derived(tk_wg_peer *p)
{
	tk_wg_device *d = p->p_dev;

	timer_set(p, T_ZERO_KEYS, now_ns(d) + 3 * TK_WG_REJECT_AFTER_TIME);
	p->p_sent_last_minute_hs = false;
}

static void
handshake_complete(tk_wg_peer *p)
{
	tk_wg_device *d = p->p_dev;

	p->p_timer[T_RETRANSMIT] = 0;
	p->p_hs_attempts = 0;
	p->p_stats.last_handshake_real_ns = tk_clock_real_ns(d->d_clock);
	d->d_stats.handshakes_completed++;
	event(d, p, TK_WG_EV_HANDSHAKE);
}

static void
set_endpoint_from(tk_wg_peer *p, const tk_wg_endpoint *src)
{
	if (src == NULL || src->ep_family == 0)
		return;
	if (memcmp(&p->p_ep, src, sizeof(*src)) != 0) {
		bool had = p->p_ep.ep_family != 0;
		p->p_ep = *src;
		if (had)
			event(p->p_dev, p, TK_WG_EV_ENDPOINT);
	}
}

static int
recv_initiation(tk_wg_device *d, const tk_wg_endpoint *src, uint8_t *msg,
    size_t n)
{
	tk_noise_hs hs;
	tk_noise_config c;
	uint8_t ts[12], resp[TK_WG_RESPONSE_LEN];
	size_t len;
	int rv;

	if (!d->d_has_key) {
		d->d_stats.drop_unknown_peer++;
		return TK_ENOENT;
	}
	if ((rv = check_macs(d, src, msg, n)) != 0)
		return rv;
	noise_config(&c, d, NULL, TK_NOISE_RESPONDER);
	if (tk_noise_hs_init(&hs, &c) != 0)
		return TK_EINTERNAL;
	if (tk_noise_hs_read_msg1(&hs, msg + 8, 108, ts, sizeof(ts), &len) != 0 ||
	    len != 12) {
		tk_noise_hs_wipe(&hs);
		d->d_stats.drop_decrypt++;
		return TK_ECRYPTO;
	}
	tk_wg_peer *p = tk_wg_peer_find(d, hs.hs_rs);
	if (p == NULL) {
		tk_noise_hs_wipe(&hs);
		d->d_stats.drop_unknown_peer++;
		return TK_ENOENT;
	}
	uint64_t now = now_ns(d);
	if (p->p_seen_init && memcmp(ts, p->p_last_ts, 12) <= 0) {
		tk_noise_hs_wipe(&hs);
		d->d_stats.drop_timestamp++;
		return TK_ESTATE;
	}
	if (p->p_seen_init && now - p->p_last_init_rx < TK_WG_HANDSHAKE_MIN_GAP) {
		tk_noise_hs_wipe(&hs);
		d->d_stats.drop_ratelimit++;
		return TK_EAGAIN;
	}
	tk_noise_hs_set_psk(&hs, p->p_psk);
	memset(resp, 0, sizeof(resp));
	resp[0] = TK_WG_MSG_RESPONSE;
	memcpy(resp + 8, msg + 4, 4); /* receiver = their sender index */
	if (tk_noise_hs_write_msg2(&hs, NULL, 0, resp + 12, 48, &len) != 0 ||
	    len != 48) {
		tk_noise_hs_wipe(&hs);
		return TK_EINTERNAL;
	}
	wg_keypair *kp = kp_new(d, p, &hs, false, tk_le32_load(msg + 4), 0);
	tk_noise_hs_wipe(&hs);
	if (kp == NULL)
		return TK_ENOMEM;
	tk_le32_store(resp + 4, kp->kp_local);
	memcpy(p->p_last_ts, ts, 12);
	p->p_last_init_rx = now;
	p->p_seen_init = true;
	/* the responder's session waits in "next" until the initiator
	 * confirms it with its first transport message */
	kp_free(d, p->p_next_kp);
	p->p_next_kp = kp;
	set_endpoint_from(p, src);
	session_derived(p);
	p->p_stats.rx_bytes += n;
	d->d_stats.rx_handshake++;
	d->d_stats.tx_handshake++;
	add_macs(p, resp, sizeof(resp));
	emit(d, p, &p->p_ep, resp, sizeof(resp));
	packet_traversal(p, now);
	return 0;
}

static int
recv_response(tk_wg_device *d, const tk_wg_endpoint *src, uint8_t *msg,
    size_t n)
{
	int rv;
	size_t len;

	if ((rv = check_macs(d, src, msg, n)) != 0)
		return rv;
	idx_slot *s = idx_find(d, tk_le32_load(msg + 8));
	if (s == NULL || s->is_kind != IDX_HANDSHAKE) {
		d->d_stats.drop_unknown_index++;
		return TK_ENOENT;
	}
	tk_wg_peer *p = s->is_peer;
	tk_noise_hs hs = p->p_hs; /* read into a copy: commit on success */
	if (tk_noise_hs_read_msg2(&hs, msg + 12, 48, NULL, 0, &len) != 0 ||
	    len != 0) {
		tk_noise_hs_wipe(&hs);
		d->d_stats.drop_decrypt++;
		return TK_ECRYPTO;
	}
	wg_keypair *kp = kp_new(d, p, &hs, true, tk_le32_load(msg + 4),
	    p->p_hs_index);
	tk_noise_hs_wipe(&hs);
	if (kp == NULL)
		return TK_ENOMEM;
	/* the handshake's index now belongs to the session */
	tk_noise_hs_wipe(&p->p_hs);
	p->p_hs_active = false;
	/* rotate: the old current (or an unconfirmed next) becomes previous */
	kp_free(d, p->p_prev_kp);
	if (p->p_next_kp) {
		p->p_prev_kp = p->p_next_kp;
		p->p_next_kp = NULL;
		kp_free(d, p->p_cur_kp);
	} else {
		p->p_prev_kp = p->p_cur_kp;
	}
	p->p_cur_kp = kp;
	set_endpoint_from(p, src);
	p->p_stats.rx_bytes += n;
	d->d_stats.rx_handshake++;
	p->p_timer[T_NEW_HANDSHAKE] = 0;
	handshake_complete(p);
	session_derived(p);
	if (p->p_nstaged)
		flush_staged(p);
	else
		seal_and_emit(p, kp, NULL, 0); /* confirm with a keepalive */
	return 0;
}

static int
recv_cookie(tk_wg_device *d, uint8_t *msg, size_t n)
{
	uint8_t cookie[16];

	(void)n;
	idx_slot *s = idx_find(d, tk_le32_load(msg + 4));
	if (s == NULL) {
		d->d_stats.drop_unknown_index++;
		return TK_ENOENT;
	}
	tk_wg_peer *p = s->is_peer;
	if (!p->p_has_last_mac1 ||
	    tk_xchacha_open(cookie, p->p_cookie_key, msg + 8, p->p_last_mac1, 16,
		msg + 32, 32) != 0) {
		d->d_stats.drop_decrypt++;
		return TK_ECRYPTO;
	}
	memcpy(p->p_cookie, cookie, 16);
	p->p_cookie_time = now_ns(d);
	p->p_has_cookie = true;
	p->p_has_last_mac1 = false; /* one cookie per message */
	d->d_stats.rx_cookie++;
	return 0;
}

static int
recv_data(tk_wg_device *d, const tk_wg_endpoint *src, uint8_t *msg, size_t n)
{
	idx_slot *s = idx_find(d, tk_le32_load(msg + 4));
	uint64_t now = now_ns(d), counter = tk_le64_load(msg + 8);

	if (s == NULL || s->is_kind != IDX_KEYPAIR) {
		d->d_stats.drop_unknown_index++;
		return TK_ENOENT;
	}
	tk_wg_peer *p = s->is_peer;
	wg_keypair *kp = s->is_kp;
	if (now - kp->kp_created >= TK_WG_REJECT_AFTER_TIME ||
	    counter >= TK_WG_REJECT_AFTER_MESSAGES) {
		d->d_stats.drop_expired++;
		return TK_ESTATE;
	}
	if (tk_chacha_open(msg + 16, kp->kp_recv, counter, TK_NONCE_LE, NULL, 0,
		msg + 16, n - 16) != 0) {
		d->d_stats.drop_decrypt++;
		return TK_ECRYPTO;
	}
	if (!tk_wg_replay_check(&kp->kp_replay, counter)) {
		d->d_stats.drop_replay++;
		return TK_ESTATE;
	}
	/* authenticated from here on */
	if (kp == p->p_next_kp) {
		/* the initiator confirmed our responder session */
		kp_free(d, p->p_prev_kp);
		p->p_prev_kp = p->p_cur_kp;
		p->p_cur_kp = kp;
		p->p_next_kp = NULL;
		handshake_complete(p);
		if (p->p_nstaged)
			flush_staged(p);
	}
	set_endpoint_from(p, src);
	p->p_stats.rx_bytes += n;
	p->p_timer[T_NEW_HANDSHAKE] = 0;
	packet_traversal(p, now);
	if (kp == p->p_cur_kp && kp->kp_initiator && !p->p_sent_last_minute_hs &&
	    now - kp->kp_created >= TK_WG_REJECT_AFTER_TIME -
	    TK_WG_KEEPALIVE_TIMEOUT - TK_WG_REKEY_TIMEOUT) {
		p->p_sent_last_minute_hs = true;
		send_initiation(p, false);
	}
	size_t plen = n - 32;
	uint8_t *ip = msg + 16;
	if (plen == 0) {
		d->d_stats.rx_keepalive++;
		return 0;
	}
	/* data received: answer with a keepalive if we stay silent */
	if (p->p_timer[T_SEND_KEEPALIVE] == 0)
		timer_set(p, T_SEND_KEEPALIVE, now + TK_WG_KEEPALIVE_TIMEOUT);
	else
		p->p_need_another_keepalive = true;
	int fam = ip_family(ip, plen);
	size_t len = 0;
	if (fam == 4) {
		size_t ihl = (size_t)(ip[0] & 15) * 4;
		len = tk_be16_load(ip + 2);
		if (ihl < 20 || len < ihl || len > plen)
			fam = 0;
	} else if (fam == 6) {
		len = 40 + (size_t)tk_be16_load(ip + 4);
		if (len > plen)
			fam = 0;
	}
	if (fam == 0) {
		d->d_stats.drop_bad_inner++;
		return TK_EPROTO;
	}
	if (tk_wg_aip_lookup(d->d_aip, fam, fam == 4 ? ip + 12 : ip + 8) != p) {
		d->d_stats.drop_src_ip++;
		return TK_EPERM;
	}
	if (d->d_cb.filter_in && !d->d_cb.filter_in(d->d_cb.arg, p, ip, len)) {
		d->d_stats.rx_filtered++;
		return TK_EPERM;
	}
	d->d_stats.rx_data++;
	if (d->d_cb.deliver)
		d->d_cb.deliver(d->d_cb.arg, p, ip, len);
	return 0;
}

int
tk_wg_device_recv(tk_wg_device *d, const tk_wg_endpoint *src, uint8_t *p,
    size_t n)
{
	d->d_stats.rx_datagrams++;
	if (n < 4) {
		d->d_stats.drop_short++;
		return TK_EPROTO;
	}
	switch (tk_wg_message_type(p, n)) {
	case TK_WG_MSG_INITIATION:
		return recv_initiation(d, src, p, n);
	case TK_WG_MSG_RESPONSE:
		return recv_response(d, src, p, n);
	case TK_WG_MSG_COOKIE:
		return recv_cookie(d, p, n);
	case TK_WG_MSG_DATA:
		return recv_data(d, src, p, n);
	}
	if (p[0] >= 1 && p[0] <= 4 && p[1] == 0 && p[2] == 0 && p[3] == 0)
		d->d_stats.drop_short++; /* a known type with a wrong size */
	else
		d->d_stats.drop_type++;
	return TK_EPROTO;
}

/* --- timers -------------------------------------------------------------- */

static void
send_keepalive(tk_wg_peer *p)
{
	if (p->p_nstaged == 0)
		send_or_stage(p, NULL, 0, NULL);
	else if (kp_usable_send(p->p_dev, p->p_cur_kp, now_ns(p->p_dev)))
		flush_staged(p);
}

static void
peer_tick(tk_wg_peer *p, uint64_t now)
{
	tk_wg_device *d = p->p_dev;

	if (p->p_timer[T_RETRANSMIT] && p->p_timer[T_RETRANSMIT] <= now) {
		p->p_timer[T_RETRANSMIT] = 0;
		if (p->p_hs_attempts >= TK_WG_MAX_TIMER_HANDSHAKES) {
			/* give up: drop what waited, wipe keys later */
			hs_clear(p);
			staged_clear(p);
			if (p->p_timer[T_ZERO_KEYS] == 0)
				timer_set(p, T_ZERO_KEYS,
				    now + 3 * TK_WG_REJECT_AFTER_TIME);
		} else {
			p->p_hs_attempts++;
			p->p_stats.handshake_attempts++;
			send_initiation(p, true);
		}
	}
	if (p->p_timer[T_SEND_KEEPALIVE] && p->p_timer[T_SEND_KEEPALIVE] <= now) {
		p->p_timer[T_SEND_KEEPALIVE] = 0;
		send_keepalive(p);
		if (p->p_need_another_keepalive) {
			p->p_need_another_keepalive = false;
			timer_set(p, T_SEND_KEEPALIVE, now + TK_WG_KEEPALIVE_TIMEOUT);
		}
	}
	if (p->p_timer[T_NEW_HANDSHAKE] && p->p_timer[T_NEW_HANDSHAKE] <= now) {
		p->p_timer[T_NEW_HANDSHAKE] = 0;
		send_initiation(p, false);
	}
	if (p->p_timer[T_ZERO_KEYS] && p->p_timer[T_ZERO_KEYS] <= now) {
		p->p_timer[T_ZERO_KEYS] = 0;
		keys_zero(p);
		p->p_timer[T_RETRANSMIT] = 0;
		p->p_timer[T_SEND_KEEPALIVE] = 0;
		p->p_timer[T_NEW_HANDSHAKE] = 0;
		event(d, p, TK_WG_EV_KEYS_ZEROED);
	}
	if (p->p_timer[T_PERSISTENT] && p->p_timer[T_PERSISTENT] <= now) {
		p->p_timer[T_PERSISTENT] = 0;
		if (p->p_keepalive)
			send_keepalive(p);
	}
}

void
tk_wg_device_tick(tk_wg_device *d)
{
	uint64_t now = now_ns(d);

	if (d->d_heap_scan) {
		for (tk_wg_peer *p = d->d_head; p; p = p->p_next)
			peer_tick(p, now);
		return;
	}
	/* bounded: every pass either drops an entry or fires a due timer */
	for (size_t guard = 4 * d->d_heap_n + 64; d->d_heap_n > 0 && guard > 0;
	    guard--) {
		if (d->d_heap[0].at > now)
			break;
		struct tentry e = heap_pop(d);
		tk_wg_peer *p = e.p;
		if (p == NULL)
			continue;
		if (p->p_heap_at == e.at)
			p->p_heap_at = 0; /* its earliest entry is gone */
		if (peer_due(p) <= now)
			peer_tick(p, now);
		uint64_t m = peer_due(p);
		if (m != UINT64_MAX && (p->p_heap_at == 0 || m < p->p_heap_at)) {
			p->p_heap_at = m;
			heap_push(d, m, p);
		}
		if (d->d_heap_scan) { /* the queue broke: scan from now on */
			tk_wg_device_tick(d);
			return;
		}
	}
}

uint64_t
tk_wg_device_next_deadline(tk_wg_device *d)
{
	uint64_t best = UINT64_MAX;

	if (!d->d_heap_scan) /* may be early (a stale entry): tick drops it */
		return d->d_heap_n ? d->d_heap[0].at : UINT64_MAX;
	for (tk_wg_peer *p = d->d_head; p; p = p->p_next) {
		uint64_t m = peer_due(p);
		if (m < best)
			best = m;
	}
	return best;
}
