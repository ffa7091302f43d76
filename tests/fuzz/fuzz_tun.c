/*
 * Fuzz tk_tun's parsers: the GSO split and the GRO coalescer.
 *
 *   mode 0: the input is a frame from a vnet_hdr TUN (virtio_net_hdr +
 *           packet) for tk_tun_gso_split;
 *   mode 1: a well-formed TSO frame built from the input's parameters
 *           (IPv4/IPv6, sizes, flags, options, gso_size up to 64 KiB), then
 *           a few input-chosen bytes overwritten, for tk_tun_gso_split;
 *   mode 2: the input is a sequence of length-prefixed IP packets for the
 *           coalescer;
 *   mode 3: the input describes TCP segments of four flows (continuing,
 *           retransmitted or skipping seq, ID/TTL/window/ack/option changes,
 *           flags, sizes, a corrupted byte) built with valid checksums, for
 *           the coalescer.
 *
 * Invariants (checked with a checksum written here, not the library's):
 * split packets of a GSO frame have valid IPv4 header and TCP checksums,
 * lengths that match their headers, at most gso_size payload each, and
 * together carry exactly the frame's payload; a completed NEEDS_CSUM
 * checksum verifies.  Every coalesced frame splits again into exactly the
 * packets that went in, in order (checksum fields may differ only in the
 * 0x0000/0xffff spelling and must verify), and every packet added comes out
 * exactly once.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/tun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                             \
	do {                                                                 \
		if (!(x))                                                    \
			abort();                                             \
	} while (0)

static uint8_t scratch[TK_TUN_SPLIT_SCRATCH];
static uint8_t fbuf[TK_TUN_VNET_HDR_LEN + TK_TUN_MAX_PKT + 64];
static tk_tun_gro *G;

/* --- reference checksum ---------------------------------------------------- */

static uint32_t
ref_add(uint32_t acc, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		acc += (uint32_t)p[i] << 8;
	while (acc >> 24) /* keep headroom */
		acc = (acc & 0xffff) + (acc >> 16);
	return acc;
}

static uint16_t
ref_fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

static uint32_t
ref_pseudo(const uint8_t *ip, bool v6, uint8_t proto, size_t l4len)
{
	uint32_t acc = v6 ? ref_add(0, ip + 8, 32) : ref_add(0, ip + 12, 8);

	return acc + proto + (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);
}

static bool
ref_tcp_ok(const uint8_t *p, size_t n, size_t l4off, bool v6)
{
	return ref_fold(ref_add(ref_pseudo(p, v6, 6, n - l4off), p + l4off,
		   n - l4off)) == 0xffff;
}

static uint16_t
h16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* --- split checks ------------------------------------------------------------ */

typedef struct splitck {
	const uint8_t *frame; /* vnet header + packet */
	size_t n;
	bool gso;
	bool v6;
	size_t l4off, hlen, gso_size;
	size_t off; /* payload bytes seen so far */
	unsigned k;
} splitck;

static void
on_split(void *arg, uint8_t *p, size_t n)
{
	splitck *c = arg;
	const uint8_t *in = c->frame + TK_TUN_VNET_HDR_LEN;
	size_t pl;

	/* The slack is ours to write (ASan checks the bounds). */
	memset(p - TK_TUN_HEADROOM, 0xa5, TK_TUN_HEADROOM);
	memset(p + n, 0x5a, TK_TUN_TAILROOM);
	if (!c->gso) {
		const uint8_t *fr = c->frame;

		CHECK(c->k == 0 && n == c->n - TK_TUN_VNET_HDR_LEN);
		if (fr[0] & 1) { /* NEEDS_CSUM: sum from csum_start verifies with the seed */
			size_t cs = h16(fr + 6), at = cs + h16(fr + 8);
			uint32_t acc = tk_be16_load(in + at);

			CHECK(at + 2 <= n);
			acc = ref_add(acc, p + cs, n - cs);
			/* An odd csum_offset puts the field across words: no sum verifies. */
			CHECK(ref_fold(acc) == 0xffff || (at - cs) % 2 == 1);
			CHECK(memcmp(p, in, at) == 0);
			CHECK(memcmp(p + at + 2, in + at + 2, n - at - 2) == 0);
		} else {
			CHECK(memcmp(p, in, n) == 0);
		}
		c->k++;
		return;
	}
	CHECK(n >= c->hlen && n <= TK_TUN_MAX_PKT);
	pl = n - c->hlen;
	CHECK(pl <= c->gso_size);
	CHECK(p[0] >> 4 == (c->v6 ? 6 : 4));
	if (c->v6) {
		CHECK(tk_be16_load(p + 4) + 40u == n);
	} else {
		CHECK(tk_be16_load(p + 2) == n);
		CHECK(ref_fold(ref_add(0, p, c->l4off)) == 0xffff);
		CHECK(tk_be16_load(p + 4) == (uint16_t)(tk_be16_load(in + 4) + c->k));
	}
	CHECK(ref_tcp_ok(p, n, c->l4off, c->v6));
	CHECK(tk_be32_load(p + c->l4off + 4) ==
	    tk_be32_load(in + c->l4off + 4) + (uint32_t)c->off);
	CHECK(memcmp(p + c->hlen, in + c->hlen + c->off, pl) == 0);
	/* Ports and options are the frame's. */
	CHECK(memcmp(p + c->l4off, in + c->l4off, 4) == 0);
	CHECK(memcmp(p + c->l4off + 20, in + c->l4off + 20,
	    c->hlen - c->l4off - 20) == 0);
	c->off += pl;
	c->k++;
}

static void
split_and_check(const uint8_t *frame, size_t n)
{
	splitck c = { .frame = frame, .n = n };
	unsigned np = 0;

	if (n > TK_TUN_VNET_HDR_LEN) {
		const uint8_t *in = frame + TK_TUN_VNET_HDR_LEN;

		c.gso = (frame[1] & 0x7f) != 0;
		c.v6 = in[0] >> 4 == 6;
		c.l4off = c.v6 ? 40 : (size_t)(in[0] & 15) * 4;
		c.gso_size = h16(frame + 4);
		if (c.gso && c.l4off + 13 < n - TK_TUN_VNET_HDR_LEN)
			c.hlen = c.l4off + (size_t)(in[c.l4off + 12] >> 4) * 4;
	}
	if (tk_tun_gso_split(frame, n, scratch, on_split, &c, &np) != 0) {
		CHECK(c.k == 0); /* nothing delivered from a refused frame */
		return;
	}
	CHECK(np == c.k && np >= 1);
	if (c.gso)
		CHECK(c.off == n - TK_TUN_VNET_HDR_LEN - c.hlen);
}

/* --- coalescer checks --------------------------------------------------------- */

#define MAXIN 300

static uint8_t inbuf[MAXIN][2100];
static size_t inlen[MAXIN];
static bool used[MAXIN];
static unsigned nin;

typedef struct grock {
	bool merged;
	int last; /* input index matched by the previous packet of the frame */
	unsigned k;
} grock;

/* Equal, except checksum fields of a re-built packet (which must verify). */
static bool
same_pkt(const uint8_t *out, size_t n, const uint8_t *want, size_t wn,
    bool merged)
{
	size_t l4off, ck;

	if (n != wn)
		return false;
	if (!merged)
		return memcmp(out, want, n) == 0;
	l4off = out[0] >> 4 == 6 ? 40 : 20;
	ck = l4off + 16;
	if (out[0] >> 4 == 4 &&
	    (memcmp(out, want, 10) != 0 || memcmp(out + 12, want + 12, ck - 12) != 0))
		return false;
	if (out[0] >> 4 == 6 && memcmp(out, want, ck) != 0)
		return false;
	return memcmp(out + ck + 2, want + ck + 2, n - ck - 2) == 0;
}

static void
on_resplit(void *arg, uint8_t *p, size_t n)
{
	grock *c = arg;
	int j;

	if (c->k == 0) { /* a frame starts with the oldest packet not yet out */
		for (j = 0; j < (int)nin && used[j]; j++)
			;
		CHECK(j < (int)nin);
		CHECK(same_pkt(p, n, inbuf[j], inlen[j], c->merged));
	} else {
		for (j = c->last + 1; j < (int)nin; j++)
			if (!used[j] && same_pkt(p, n, inbuf[j], inlen[j], true))
				break;
		CHECK(j < (int)nin);
	}
	if (c->merged) {
		bool v6 = p[0] >> 4 == 6;

		if (!v6)
			CHECK(ref_fold(ref_add(0, p, 20)) == 0xffff);
		CHECK(ref_tcp_ok(p, n, v6 ? 40 : 20, v6));
	}
	used[j] = true;
	c->last = j;
	c->k++;
}

static void
check_batch(void)
{
	unsigned nf = tk_tun_gro_frames(G);

	memset(used, 0, sizeof(used));
	for (unsigned f = 0; f < nf; f++) {
		grock c = { 0 };
		unsigned np = 0;
		size_t n = 0;

		CHECK(tk_tun_gro_frame_copy(G, f, fbuf, sizeof(fbuf), &n) == 0);
		c.merged = fbuf[1] != 0;
		CHECK(n > TK_TUN_VNET_HDR_LEN && n - TK_TUN_VNET_HDR_LEN <= TK_TUN_MAX_PKT);
		if (!c.merged) {
			static const uint8_t zero[TK_TUN_VNET_HDR_LEN];

			CHECK(memcmp(fbuf, zero, sizeof(zero)) == 0);
		} else {
			CHECK(fbuf[0] == 1 && h16(fbuf + 8) == 16);
		}
		CHECK(tk_tun_gso_split(fbuf, n, scratch, on_resplit, &c, &np) == 0);
		CHECK(np == c.k);
		CHECK(!c.merged || np >= 2);
		CHECK(np <= TK_TUN_GRO_MAX_SEGS);
	}
	for (unsigned i = 0; i < nin; i++)
		CHECK(used[i]);
	tk_tun_gro_reset(G);
	nin = 0;
}

static void
gro_add(const uint8_t *p, size_t n)
{
	int rv;

	if (n == 0 || n > sizeof(inbuf[0]))
		return;
	if (nin == MAXIN)
		check_batch();
	rv = tk_tun_gro_add(G, p, n);
	if (rv != 0) {
		CHECK(rv == TK_EMSGSIZE);
		check_batch();
		CHECK(tk_tun_gro_add(G, p, n) == 0);
	}
	memcpy(inbuf[nin], p, n);
	inlen[nin++] = n;
}

/* --- structured inputs ---------------------------------------------------------- */

static const uint8_t A4[8] = { 10, 0, 0, 1, 10, 0, 0, 2 };
static const uint8_t A6[32] = { 0xfd, [15] = 1, [16] = 0xfd, [31] = 2 };

typedef struct tcpp {
	bool v6, ts;
	uint16_t sport, id, win;
	uint32_t seq, ack, tsval;
	uint8_t flags, ttl;
	size_t plen;
	uint8_t fill;
} tcpp;

static size_t
build(uint8_t *o, const tcpp *s)
{
	size_t l4 = s->v6 ? 40 : 20, thl = s->ts ? 32 : 20, n = l4 + thl + s->plen;
	uint8_t *t = o + l4;

	memset(o, 0, l4 + thl);
	if (s->v6) {
		o[0] = 0x60;
		tk_be16_store(o + 4, (uint16_t)(n - 40));
		o[6] = 6;
		o[7] = s->ttl;
		memcpy(o + 8, A6, 32);
	} else {
		o[0] = 0x45;
		tk_be16_store(o + 2, (uint16_t)n);
		tk_be16_store(o + 4, s->id);
		o[6] = 0x40;
		o[8] = s->ttl;
		o[9] = 6;
		memcpy(o + 12, A4, 8);
		tk_be16_store(o + 10, (uint16_t)~ref_fold(ref_add(0, o, 20)));
	}
	tk_be16_store(t, s->sport);
	tk_be16_store(t + 2, 443);
	tk_be32_store(t + 4, s->seq);
	tk_be32_store(t + 8, s->ack);
	t[12] = (uint8_t)(thl / 4 << 4);
	t[13] = s->flags;
	tk_be16_store(t + 14, s->win);
	if (s->ts) {
		t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;
		tk_be32_store(t + 24, s->tsval);
	}
	for (size_t i = 0; i < s->plen; i++)
		o[l4 + thl + i] = (uint8_t)(s->fill + i * 31 + (i >> 7));
	tk_be16_store(t + 16, (uint16_t)~ref_fold(ref_add(
	    ref_pseudo(o, s->v6, 6, n - l4), t, n - l4)));
	return n;
}

static const uint8_t FLAGS[8] = { 0x10, 0x10, 0x10, 0x10, 0x18, 0x11, 0x12, 0x90 };

static void
mode_tso(const uint8_t *d, size_t n)
{
	tcpp s = { 0 };
	size_t l4, thl, m;
	uint16_t gso, hl;

	if (n < 8)
		return;
	s.v6 = d[0] & 1;
	s.ts = d[0] & 2;
	s.flags = (uint8_t)(FLAGS[d[0] >> 2 & 7] | (d[0] & 0x20 ? 0x09 : 0));
	s.plen = (size_t)tk_be16_load(d + 1);
	gso = tk_be16_load(d + 3);
	s.seq = tk_be32_load(d + 4) ^ 0xfffff000u;
	s.id = (uint16_t)(d[5] << 8 | 0xf0);
	s.ttl = 64;
	s.fill = d[6];
	l4 = s.v6 ? 40 : 20;
	thl = s.ts ? 32 : 20;
	if (l4 + thl + s.plen > TK_TUN_MAX_PKT)
		s.plen = TK_TUN_MAX_PKT - l4 - thl;
	m = build(fbuf + TK_TUN_VNET_HDR_LEN, &s);
	hl = (uint16_t)(l4 + thl);
	/* As the kernel hands it up: partial checksum, host-order header. */
	tk_be16_store(fbuf + TK_TUN_VNET_HDR_LEN + l4 + 16,
	    ref_fold(ref_pseudo(fbuf + TK_TUN_VNET_HDR_LEN, s.v6, 6, m - l4)));
	fbuf[0] = 1;
	fbuf[1] = s.v6 ? 4 : 1;
	memcpy(fbuf + 2, &hl, 2);
	memcpy(fbuf + 4, &gso, 2);
	hl = (uint16_t)l4;
	memcpy(fbuf + 6, &hl, 2);
	hl = 16;
	memcpy(fbuf + 8, &hl, 2);
	m += TK_TUN_VNET_HDR_LEN;
	/* Then overwrite a few bytes of header where the input says. */
	for (size_t i = 8; i + 1 < n; i += 2)
		fbuf[d[i] % TK_MIN(m, 256)] = d[i + 1];
	split_and_check(fbuf, m);
}

static void
mode_flows(const uint8_t *d, size_t n)
{
	tcpp fl[8];
	uint8_t p[2100];

	for (int f = 0; f < 8; f++) {
		memset(&fl[f], 0, sizeof(fl[f]));
		fl[f].v6 = f >= 4;
		fl[f].sport = (uint16_t)(1000 + (f & 3));
		fl[f].seq = 0xffffff00u * (uint32_t)(f & 1);
		fl[f].ack = 5;
		fl[f].id = (uint16_t)(0xfffe + f);
		fl[f].ttl = 64;
		fl[f].win = 100;
		fl[f].ts = true;
		fl[f].tsval = 1;
	}
	for (size_t i = 0; i + 4 <= n; i += 4) {
		uint8_t b0 = d[i], b1 = d[i + 1], b2 = d[i + 2], b3 = d[i + 3];
		tcpp *s = &fl[(b0 & 3) | (b0 & 4)];
		tcpp t;
		size_t m;

		s->flags = FLAGS[b0 >> 4 & 7];
		s->ts = !(b0 & 0x80) || s->v6; /* v4: may drop the option */
		s->plen = b1 == 255 ? 1448 : b1 == 254 ? 0 : (size_t)b1 * 8;
		switch (b2 & 3) {
		case 1: s->seq -= (uint32_t)s->plen; break; /* retransmit */
		case 2: s->seq += 1; break;		     /* a gap */
		case 3: s->seq = (uint32_t)b3 << 24; break;
		}
		switch (b2 >> 2 & 3) {
		case 1: s->id--; break;
		case 2: s->id = (uint16_t)(b3 * 257); break;
		}
		switch (b2 >> 4 & 3) {
		case 1: s->ttl--; break;
		case 2: s->win++; break;
		case 3: s->ack++; break;
		}
		if (b2 & 0x40)
			s->tsval++;
		s->fill = (uint8_t)(s->seq * 3);
		t = *s;
		m = build(p, &t);
		if (b0 & 8) /* corrupt one byte: checksums must keep it apart */
			p[b3 % m] ^= (uint8_t)(b2 | 1);
		gro_add(p, m);
		s->seq += (uint32_t)s->plen;
		s->id++;
	}
	check_batch();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (G == NULL && tk_tun_gro_new(&G) != 0)
		abort();
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		if (size - 1 <= sizeof(fbuf)) {
			uint8_t *f = malloc(size > 1 ? size - 1 : 1); /* exact: ASan sees over-reads */

			memcpy(f, data + 1, size - 1);
			split_and_check(f, size - 1);
			free(f);
		}
		break;
	case 1:
		mode_tso(data + 1, size - 1);
		break;
	case 2:
		for (size_t i = 1; i + 2 <= size;) {
			size_t n = tk_be16_load(data + i) % 2100;

			i += 2;
			if (n > size - i)
				n = size - i;
			gro_add(data + i, n);
			i += n;
		}
		check_batch();
		break;
	case 3:
		mode_flows(data + 1, size - 1);
		break;
	}
	return 0;
}
