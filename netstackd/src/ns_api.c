/*
 * The local API codec (netstackd/include/netstackd/ns_api.h): pure
 * functions, shared by netstackd, its clients and fuzz_ns_api.
 */
#include <string.h>

#include "netstackd/ns_api.h"
#include "tk/endian.h"
#include "tk/err.h"

static int
bad(ns_api_req *out, size_t len, size_t *used, const char *why)
{
	out->why = why;
	*used = len;
	return TK_EINVAL;
}

/* A whole frame's length: TK_EAGAIN until it is all in p[0..n),
 * TK_EPROTO for a length out of range. */
static int
frame_len(const uint8_t *p, size_t n, size_t *len)
{
	if (n < 2)
		return TK_EAGAIN;
	*len = tk_be16_load(p);
	if (*len < NS_API_HDR_LEN || *len > NS_API_FRAME_MAX)
		return TK_EPROTO;
	return n < *len ? TK_EAGAIN : 0;
}

int
ns_api_req_parse(const uint8_t *p, size_t n, ns_api_req *out, size_t *used)
{
	size_t len, bl;
	const uint8_t *b;
	int rv;

	if ((rv = frame_len(p, n, &len)) != 0)
		return rv;
	if (p[2] & 0x80)
		return TK_EPROTO; /* a reply type: the peer is not a client */
	memset(out, 0, sizeof(*out));
	out->op = p[2];
	out->id = tk_be32_load(p + 4);
	b = p + NS_API_HDR_LEN;
	bl = len - NS_API_HDR_LEN;
	if (p[3] != 0)
		return bad(out, len, used, "status byte of a request must be 0");
	switch (out->op) {
	case NS_OP_LISTEN_TCP:
	case NS_OP_UNLISTEN_TCP:
	case NS_OP_BIND_UDP:
		if (bl != 2)
			return bad(out, len, used, "body must be a be16 port");
		out->addr.port = tk_be16_load(b);
		if (out->addr.port == 0 && out->op != NS_OP_BIND_UDP)
			return bad(out, len, used, "port must be 1..65535");
		break;
	case NS_OP_DIAL_TCP:
		if (bl < 1 || (b[0] != 4 && b[0] != 6))
			return bad(out, len, used, "family must be 4 or 6");
		if (bl != 1u + (b[0] == 4 ? 4u : 16u) + 2u)
			return bad(out, len, used,
			    "body must be family, 4 or 16 address bytes, be16 port");
		out->addr.family = b[0];
		memcpy(out->addr.addr, b + 1, b[0] == 4 ? 4 : 16);
		out->addr.port = tk_be16_load(b + bl - 2);
		if (out->addr.port == 0)
			return bad(out, len, used, "port must be 1..65535");
		break;
	case NS_OP_DIAL_TCP_NAME:
		if (bl < 1 || b[0] == 0 || bl != 1u + b[0] + 2u)
			return bad(out, len, used,
			    "body must be u8 length, 1..255 name bytes, be16 port");
		memcpy(out->name, b + 1, b[0]);
		out->name[b[0]] = '\0';
		if (strlen(out->name) != b[0])
			return bad(out, len, used, "name contains a NUL byte");
		out->addr.port = tk_be16_load(b + bl - 2);
		if (out->addr.port == 0)
			return bad(out, len, used, "port must be 1..65535");
		break;
	default:
		return bad(out, len, used, "unknown operation (accepted: 1 listen_tcp, "
		    "2 dial_tcp, 3 bind_udp, 4 unlisten_tcp, 5 dial_tcp_name)");
	}
	*used = len;
	return 0;
}

size_t
ns_api_frame_encode(uint8_t *out, size_t cap, uint8_t op, uint8_t status,
    uint32_t id, const uint8_t *body, size_t len)
{
	size_t total = NS_API_HDR_LEN + len;

	if (total > NS_API_FRAME_MAX || total > cap)
		return 0;
	tk_be16_store(out, (uint16_t)total);
	out[2] = op;
	out[3] = status;
	tk_be32_store(out + 4, id);
	if (len)
		memcpy(out + NS_API_HDR_LEN, body, len);
	return total;
}

size_t
ns_api_req_encode(uint8_t *out, size_t cap, const ns_api_req *r)
{
	uint8_t b[1 + NS_API_NAME_MAX + 2];
	size_t n = 0, al;

	switch (r->op) {
	case NS_OP_LISTEN_TCP:
	case NS_OP_UNLISTEN_TCP:
	case NS_OP_BIND_UDP:
		tk_be16_store(b, r->addr.port);
		n = 2;
		break;
	case NS_OP_DIAL_TCP:
		if (r->addr.family != 4 && r->addr.family != 6)
			return 0;
		al = r->addr.family == 4 ? 4 : 16;
		b[0] = r->addr.family;
		memcpy(b + 1, r->addr.addr, al);
		tk_be16_store(b + 1 + al, r->addr.port);
		n = 1 + al + 2;
		break;
	case NS_OP_DIAL_TCP_NAME:
		al = strlen(r->name);
		if (al == 0 || al > NS_API_NAME_MAX)
			return 0;
		b[0] = (uint8_t)al;
		memcpy(b + 1, r->name, al);
		tk_be16_store(b + 1 + al, r->addr.port);
		n = 1 + al + 2;
		break;
	default:
		return 0;
	}
	return ns_api_frame_encode(out, cap, r->op, 0, r->id, b, n);
}

int
ns_api_frame_parse(const uint8_t *p, size_t n, ns_api_frame *out,
    size_t *used)
{
	size_t len;
	int rv;

	if ((rv = frame_len(p, n, &len)) != 0)
		return rv;
	out->op = p[2];
	out->status = p[3];
	out->id = tk_be32_load(p + 4);
	out->body = p + NS_API_HDR_LEN;
	out->len = len - NS_API_HDR_LEN;
	*used = len;
	return 0;
}

static uint8_t *
put_addr(uint8_t *w, const ns_api_addr *a)
{
	w[0] = a->family;
	memcpy(w + 1, a->addr, 16);
	tk_be16_store(w + 17, a->port);
	return w + 19;
}

static const uint8_t *
get_addr(const uint8_t *r, ns_api_addr *a)
{
	a->family = r[0];
	memcpy(a->addr, r + 1, 16);
	a->port = tk_be16_load(r + 17);
	return r + 19;
}

static uint8_t *
put_str(uint8_t *w, const char *s)
{
	size_t l = strnlen(s, NS_API_NAME_MAX);

	w[0] = (uint8_t)l;
	memcpy(w + 1, s, l);
	return w + 1 + l;
}

size_t
ns_api_peer_encode(uint8_t *out, size_t cap, const ns_api_peer *pi)
{
	uint8_t *w = out;

	if (cap < NS_API_PEER_MIN + 2 * NS_API_NAME_MAX)
		return 0;
	w = put_addr(w, &pi->remote);
	w = put_addr(w, &pi->local);
	tk_be64_store(w, (uint64_t)pi->node_id);
	tk_be64_store(w + 8, (uint64_t)pi->user_id);
	w += 16;
	w = put_str(w, pi->name);
	w = put_str(w, pi->login);
	return (size_t)(w - out);
}

int
ns_api_peer_decode(const uint8_t *p, size_t n, ns_api_peer *out)
{
	const uint8_t *r = p, *end = p + n;
	ns_api_peer pi;
	size_t l;

	if (n < NS_API_PEER_MIN)
		return TK_EPROTO;
	memset(&pi, 0, sizeof(pi));
	r = get_addr(r, &pi.remote);
	r = get_addr(r, &pi.local);
	pi.node_id = (int64_t)tk_be64_load(r);
	pi.user_id = (int64_t)tk_be64_load(r + 8);
	r += 16;
	l = *r++;
	if ((size_t)(end - r) < l + 1)
		return TK_EPROTO;
	memcpy(pi.name, r, l);
	r += l;
	l = *r++;
	if ((size_t)(end - r) != l)
		return TK_EPROTO;
	memcpy(pi.login, r, l);
	*out = pi;
	return 0;
}

void
ns_udp_hdr_encode(uint8_t out[NS_UDP_HDR_LEN], const ns_api_addr *a)
{
	out[0] = a->family;
	out[1] = 0;
	tk_be16_store(out + 2, a->port);
	memcpy(out + 4, a->addr, 16);
}

int
ns_udp_hdr_decode(const uint8_t *p, size_t n, ns_api_addr *out)
{
	if (n < NS_UDP_HDR_LEN || (p[0] != 4 && p[0] != 6) || p[1] != 0 ||
	    tk_be16_load(p + 2) == 0)
		return TK_EPROTO;
	out->family = p[0];
	out->port = tk_be16_load(p + 2);
	memcpy(out->addr, p + 4, 16);
	return 0;
}
