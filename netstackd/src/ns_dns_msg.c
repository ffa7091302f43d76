/*
 * DNS message codec: query parsing, response building, upstream response
 * checks (RFC 1035 §4, RFC 3596, RFC 6891).  Pure functions: ns_dns.h.
 */
#include <stdio.h>
#include <string.h>

#include "ns_dns.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

int
ns_dns_name_read(const uint8_t *msg, size_t n, size_t off,
    uint8_t out[NS_DNS_NAME_MAX], size_t *outlen, size_t *next)
{
	size_t len = 0, end = 0, pos = off;
	int hops = 0;
	bool jumped = false;

	for (;;) {
		if (pos >= n)
			return TK_EPROTO;
		uint8_t c = msg[pos];
		if ((c & 0xc0) == 0xc0) {
			/* RFC 1035 §4.1.4: pointer to an earlier name */
			if (pos + 1 >= n)
				return TK_EPROTO;
			size_t target = (size_t)(tk_be16_load(msg + pos) & 0x3fff);
			/* strictly backwards: every hop moves to a smaller
			 * offset, so a loop cannot last; the hop bound caps
			 * the work anyway */
			if (target >= pos || ++hops > NS_DNS_PTR_HOPS_MAX)
				return TK_EPROTO;
			if (!jumped)
				end = pos + 2;
			jumped = true;
			pos = target;
			continue;
		}
		if ((c & 0xc0) != 0)
			return TK_EPROTO; /* extended label types: RFC 6891 §5 */
		if (len + 1 + c > NS_DNS_NAME_MAX)
			return TK_EPROTO;
		if (pos + 1 + c > n)
			return TK_EPROTO;
		memcpy(out + len, msg + pos, (size_t)c + 1);
		len += (size_t)c + 1;
		pos += (size_t)c + 1;
		if (c == 0)
			break;
	}
	if (!jumped)
		end = pos;
	*outlen = len;
	*next = end;
	return 0;
}

int
ns_dns_name_to_text(const uint8_t *name, size_t len, char *out, size_t cap)
{
	size_t o = 0, i = 0;

	if (cap < 2)
		return TK_EMSGSIZE;
	while (i < len && name[i] != 0) {
		uint8_t l = name[i++];
		if (i + l > len)
			return TK_EPROTO;
		for (uint8_t k = 0; k < l; k++) {
			uint8_t ch = name[i + k];
			if (o + 5 >= cap)
				return TK_EMSGSIZE;
			if (ch >= 'A' && ch <= 'Z') {
				out[o++] = (char)(ch - 'A' + 'a');
			} else if (ch > ' ' && ch <= '~' && ch != '.' &&
			    ch != '\\') {
				out[o++] = (char)ch;
			} else {
				/* RFC 1035 §5.1 \DDD */
				snprintf(out + o, cap - o, "\\%03u", ch);
				o += 4;
			}
		}
		i += l;
		if (o + 2 >= cap)
			return TK_EMSGSIZE;
		out[o++] = '.';
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return 0;
}

int
ns_dns_name_from_text(const char *text, uint8_t out[NS_DNS_NAME_MAX],
    size_t *outlen)
{
	size_t tl = strlen(text), len = 0, i = 0;

	if (tl == 1 && text[0] == '.') {
		out[0] = 0;
		*outlen = 1;
		return 0;
	}
	if (tl == 0)
		return TK_EINVAL;
	while (i < tl) {
		const char *dot = memchr(text + i, '.', tl - i);
		size_t l = dot ? (size_t)(dot - (text + i)) : tl - i;
		if (l == 0 || l > NS_DNS_LABEL_MAX)
			return TK_EINVAL;
		if (len + 1 + l + 1 > NS_DNS_NAME_MAX)
			return TK_EINVAL;
		out[len++] = (uint8_t)l;
		memcpy(out + len, text + i, l);
		len += l;
		i += l + (dot ? 1 : 0);
	}
	out[len++] = 0;
	*outlen = len;
	return 0;
}

static uint8_t
lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

bool
ns_dns_name_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return false;
	/* label length bytes are <= 63 and compare equal under lower() only
	 * when equal: 'A'..'Z' are 65..90 */
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* Skips one resource record at *off (name, fixed part, RDATA). */
static int
rr_skip(const uint8_t *p, size_t n, size_t *off, uint16_t *type,
    uint16_t *class, uint32_t *ttl, bool *root_name)
{
	uint8_t name[NS_DNS_NAME_MAX];
	size_t nl, next;

	if (ns_dns_name_read(p, n, *off, name, &nl, &next) != 0)
		return TK_EPROTO;
	if (next + 10 > n)
		return TK_EPROTO;
	*type = tk_be16_load(p + next);
	*class = tk_be16_load(p + next + 2);
	*ttl = tk_be32_load(p + next + 4);
	size_t rdlen = tk_be16_load(p + next + 8);
	if (next + 10 + rdlen > n)
		return TK_EPROTO;
	*root_name = nl == 1;
	*off = next + 10 + rdlen;
	return 0;
}

int
ns_dns_query_parse(ns_dns_query *q, const uint8_t *p, size_t n)
{
	size_t off, next;

	if (n < NS_DNS_HDR_LEN)
		return TK_EAGAIN;
	q->id = tk_be16_load(p);
	q->flags = tk_be16_load(p + 2);
	q->has_opt = false;
	q->udp_size = 0;
	q->edns_version = 0;
	q->edns_do = false;
	q->qname_len = 0;
	if (q->flags & NS_DNS_F_QR)
		return TK_EEXIST;
	if (((q->flags & NS_DNS_F_OPCODE) >> 11) != NS_DNS_OPCODE_QUERY)
		return TK_ENOTSUP;
	uint16_t qd = tk_be16_load(p + 4), an = tk_be16_load(p + 6),
		 ns = tk_be16_load(p + 8), ar = tk_be16_load(p + 10);
	if (qd != 1 || an != 0 || ns != 0)
		return TK_EPROTO;
	if (ns_dns_name_read(p, n, NS_DNS_HDR_LEN, q->qname, &q->qname_len,
		&next) != 0)
		return TK_EPROTO;
	if (next + 4 > n)
		return TK_EPROTO;
	q->qtype = tk_be16_load(p + next);
	q->qclass = tk_be16_load(p + next + 2);
	off = next + 4;
	if (ns_dns_name_to_text(q->qname, q->qname_len, q->text,
		sizeof(q->text)) != 0)
		return TK_EPROTO;
	/* additional section: at most one OPT, owned by the root
	 * (RFC 6891 §6.1.1); other records (TSIG...) are skipped */
	for (uint16_t i = 0; i < ar; i++) {
		uint16_t type, class;
		uint32_t ttl;
		bool root;
		if (rr_skip(p, n, &off, &type, &class, &ttl, &root) != 0)
			return TK_EPROTO;
		if (type != NS_DNS_TYPE_OPT)
			continue;
		if (q->has_opt || !root)
			return TK_EPROTO;
		q->has_opt = true;
		/* RFC 6891 §6.2.5: values below 512 are treated as 512 */
		q->udp_size = class < NS_DNS_UDP_MAX ? NS_DNS_UDP_MAX : class;
		q->edns_version = (uint8_t)(ttl >> 16);
		q->edns_do = (ttl & NS_DNS_OPT_DO) != 0;
	}
	/* bytes after the last record are ignored, as most servers do */
	return 0;
}

size_t
ns_dns_size_limit(const ns_dns_query *q, int transport)
{
	if (transport == NS_DNS_TCP)
		return NS_DNS_TCP_MAX;
	if (!q->has_opt)
		return NS_DNS_UDP_MAX;
	return TK_MIN((size_t)q->udp_size, (size_t)NS_DNS_EDNS_PAYLOAD);
}

int
ns_dns_resp_begin(ns_dns_builder *b, uint8_t *buf, size_t cap, size_t limit,
    const ns_dns_query *q, unsigned rcode, bool aa, bool with_question)
{
	if (cap < NS_DNS_UDP_MAX || limit < NS_DNS_UDP_MAX)
		return TK_EINVAL;
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->cap = TK_MIN(cap, limit);
	b->q = q;
	uint16_t f = NS_DNS_F_QR | NS_DNS_F_RA |
	    (q->flags & (NS_DNS_F_OPCODE | NS_DNS_F_RD | NS_DNS_F_CD)) |
	    (aa ? NS_DNS_F_AA : 0) | (uint16_t)(rcode & NS_DNS_F_RCODE);
	tk_be16_store(buf, q->id);
	tk_be16_store(buf + 2, f);
	memset(buf + 4, 0, 8);
	b->len = NS_DNS_HDR_LEN;
	if (with_question && q->qname_len > 0) {
		/* fits: 12 + 255 + 4 < 512 */
		memcpy(buf + b->len, q->qname, q->qname_len);
		b->len += q->qname_len;
		tk_be16_store(buf + b->len, q->qtype);
		tk_be16_store(buf + b->len + 2, q->qclass);
		b->len += 4;
		tk_be16_store(buf + 4, 1);
		b->question = true;
	}
	b->answers_at = b->len;
	/* the extended rcode bits travel in OPT (resp_finish) */
	if (rcode > 15 && !q->has_opt)
		return TK_EINVAL;
	b->ext_rcode = (uint8_t)(rcode >> 4);
	return 0;
}

/* Room left for answers: the OPT record must still fit after them. */
static size_t
room(const ns_dns_builder *b)
{
	size_t reserve = b->q->has_opt ? NS_DNS_OPT_RR_LEN : 0;
	if (b->len + reserve >= b->cap)
		return 0;
	return b->cap - reserve - b->len;
}

static int
add_rr(ns_dns_builder *b, uint16_t type, uint32_t ttl, const uint8_t *rdata,
    size_t rdlen)
{
	if (!b->question)
		return TK_EINVAL;
	if (b->truncated)
		return 0;
	if (room(b) < 2 + 10 + rdlen) {
		/* RFC 2181 §9: drop what was there, set TC */
		b->len = b->answers_at;
		b->ancount = 0;
		b->truncated = true;
		return 0;
	}
	uint8_t *w = b->buf + b->len;
	tk_be16_store(w, 0xc000 | NS_DNS_HDR_LEN); /* the question's name */
	tk_be16_store(w + 2, type);
	tk_be16_store(w + 4, NS_DNS_CLASS_IN);
	tk_be32_store(w + 6, ttl);
	tk_be16_store(w + 10, (uint16_t)rdlen);
	memcpy(w + 12, rdata, rdlen);
	b->len += 12 + rdlen;
	b->ancount++;
	return 0;
}

int
ns_dns_resp_add_addr(ns_dns_builder *b, const tk_ipaddr *ip, uint32_t ttl)
{
	if (ip->family == TK_AF_INET)
		return add_rr(b, NS_DNS_TYPE_A, ttl, ip->addr, 4);
	if (ip->family == TK_AF_INET6)
		return add_rr(b, NS_DNS_TYPE_AAAA, ttl, ip->addr, 16);
	return TK_EINVAL;
}

int
ns_dns_resp_add_ptr(ns_dns_builder *b, const uint8_t *target,
    size_t target_len, uint32_t ttl)
{
	if (target_len == 0 || target_len > NS_DNS_NAME_MAX)
		return TK_EINVAL;
	return add_rr(b, NS_DNS_TYPE_PTR, ttl, target, target_len);
}

int
ns_dns_resp_finish(ns_dns_builder *b, size_t *outlen)
{
	uint8_t *buf = b->buf;

	tk_be16_store(buf + 6, b->ancount);
	if (b->truncated)
		tk_be16_store(buf + 2,
		    (uint16_t)(tk_be16_load(buf + 2) | NS_DNS_F_TC));
	if (b->q->has_opt) {
		/* RFC 6891 §6.1.2: root, OPT, our payload size, extended
		 * rcode | version 0 | DO echoed (RFC 3225 §3), no options */
		uint8_t *w = buf + b->len;
		if (b->len + NS_DNS_OPT_RR_LEN > b->cap)
			return TK_EINTERNAL; /* room() reserved it */
		w[0] = 0;
		tk_be16_store(w + 1, NS_DNS_TYPE_OPT);
		tk_be16_store(w + 3, NS_DNS_EDNS_PAYLOAD);
		w[5] = b->ext_rcode;
		w[6] = 0;
		tk_be16_store(w + 7, b->q->edns_do ? NS_DNS_OPT_DO : 0);
		tk_be16_store(w + 9, 0);
		b->len += NS_DNS_OPT_RR_LEN;
		tk_be16_store(buf + 10, 1);
	}
	*outlen = b->len;
	return 0;
}

int
ns_dns_resp_error(const ns_dns_query *q, int transport, unsigned rcode,
    bool aa, uint8_t *out, size_t cap, size_t *outlen)
{
	ns_dns_builder b;
	int rv = ns_dns_resp_begin(&b, out, cap, ns_dns_size_limit(q, transport),
	    q, rcode, aa, q->qname_len > 0);
	if (rv != 0)
		return rv;
	return ns_dns_resp_finish(&b, outlen);
}

int
ns_dns_response_check(const uint8_t *p, size_t n, uint16_t *id,
    uint8_t qname[NS_DNS_NAME_MAX], size_t *qname_len, uint16_t *qtype,
    uint16_t *qclass)
{
	size_t next;

	if (n < NS_DNS_HDR_LEN)
		return TK_EPROTO;
	uint16_t flags = tk_be16_load(p + 2);
	if (!(flags & NS_DNS_F_QR) || tk_be16_load(p + 4) != 1)
		return TK_EPROTO;
	if (ns_dns_name_read(p, n, NS_DNS_HDR_LEN, qname, qname_len, &next) !=
	    0)
		return TK_EPROTO;
	if (next + 4 > n)
		return TK_EPROTO;
	*id = tk_be16_load(p);
	*qtype = tk_be16_load(p + next);
	*qclass = tk_be16_load(p + next + 2);
	return 0;
}

int
ns_dns_tcp_next(const uint8_t *p, size_t n, const uint8_t **msg, size_t *len,
    size_t *consumed)
{
	if (n < 2)
		return TK_EAGAIN;
	size_t l = tk_be16_load(p);
	if (l == 0)
		return TK_EPROTO;
	if (n < 2 + l)
		return TK_EAGAIN;
	*msg = p + 2;
	*len = l;
	*consumed = 2 + l;
	return 0;
}
