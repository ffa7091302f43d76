#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/pkt.h"

int
tk_pkt_new(tk_pkt **out, size_t cap)
{
	tk_pkt *p;
	size_t size;

	if (cap > TK_PKT_MAX)
		return TK_EMSGSIZE;
	size = TK_PKT_HEADROOM + cap + TK_PKT_TAILROOM;
	p = tk_malloc(sizeof(*p) + size);
	if (p == NULL)
		return TK_ENOMEM;
	p->pk_next = NULL;
	p->pk_size = size;
	p->pk_data = p->pk_buf + TK_PKT_HEADROOM;
	p->pk_len = 0;
	p->pk_meta = 0;
	*out = p;
	return 0;
}

void
tk_pkt_free(tk_pkt *p)
{
	tk_free(p);
}

void
tk_pkt_free_list(tk_pkt *p)
{
	while (p != NULL) {
		tk_pkt *n = p->pk_next;

		tk_pkt_free(p);
		p = n;
	}
}

size_t
tk_pkt_headroom(const tk_pkt *p)
{
	return (size_t)(p->pk_data - p->pk_buf);
}

size_t
tk_pkt_tailroom(const tk_pkt *p)
{
	return p->pk_size - tk_pkt_headroom(p) - p->pk_len;
}

int
tk_pkt_push(tk_pkt *p, size_t n, uint8_t **hdr)
{
	if (n > tk_pkt_headroom(p))
		return TK_EMSGSIZE;
	p->pk_data -= n;
	p->pk_len += n;
	if (hdr != NULL)
		*hdr = p->pk_data;
	return 0;
}

int
tk_pkt_pull(tk_pkt *p, size_t n)
{
	if (n > p->pk_len)
		return TK_EINVAL;
	p->pk_data += n;
	p->pk_len -= n;
	return 0;
}

int
tk_pkt_put(tk_pkt *p, size_t n, uint8_t **tail)
{
	if (n > tk_pkt_tailroom(p))
		return TK_EMSGSIZE;
	if (tail != NULL)
		*tail = p->pk_data + p->pk_len;
	p->pk_len += n;
	return 0;
}

int
tk_pkt_trim(tk_pkt *p, size_t len)
{
	if (len > p->pk_len)
		return TK_EINVAL;
	p->pk_len = len;
	return 0;
}

int
tk_pkt_set(tk_pkt *p, const void *data, size_t n)
{
	if (TK_PKT_HEADROOM + n > p->pk_size)
		return TK_EMSGSIZE;
	p->pk_data = p->pk_buf + TK_PKT_HEADROOM;
	memcpy(p->pk_data, data, n);
	p->pk_len = n;
	return 0;
}
