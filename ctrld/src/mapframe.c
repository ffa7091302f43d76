/* The map stream's length-prefixed frames.  See mapframe.h. */
#include <stdio.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "mapframe.h"
#include "tk/endian.h"
#include "tk/err.h"

static const char *
zstd_name(int code)
{
	return ZSTD_getErrorString((ZSTD_ErrorCode)code);
}

__attribute__((constructor)) static void
register_zstd(void)
{
	tk_err_register(TK_EZSTD, zstd_name);
}
#include "tk/mem.h"

/*
 * One zstd frame into a new NUL-terminated buffer.  Frames with a content
 * size (util/zstdframe writes them) decompress in one call; frames
 * without one (a streaming encoder's) through a stream, growing the
 * buffer up to CTRLD_MAP_MSG_MAX, as Go's decoder accepts both.  Exactly
 * one frame: trailing bytes are an error.
 */
static int
unzstd(const uint8_t *p, size_t l, char **out, size_t *n)
{
	unsigned long long sz = ZSTD_getFrameContentSize(p, l);
	size_t cfs = ZSTD_findFrameCompressedSize(p, l);
	char *j;

	if (sz == ZSTD_CONTENTSIZE_ERROR || ZSTD_isError(cfs) || cfs != l)
		return TK_EPROTO;
	if (sz != ZSTD_CONTENTSIZE_UNKNOWN) {
		if (sz > CTRLD_MAP_MSG_MAX)
			return TK_EMSGSIZE;
		if ((j = tk_malloc((size_t)sz + 1)) == NULL)
			return TK_ENOMEM;
		tk_mem_hint_huge(j, (size_t)sz + 1);
		size_t d = ZSTD_decompress(j, (size_t)sz, p, l);
		if (ZSTD_isError(d) || d != sz) {
			tk_free(j);
			return TK_EPROTO;
		}
		j[d] = '\0';
		*out = j;
		*n = d;
		return 0;
	}
	ZSTD_DStream *ds = ZSTD_createDStream();
	size_t cap = l * 8 < 65536 ? 65536 : l * 8, r;
	int rv = 0;
	if (cap > (size_t)CTRLD_MAP_MSG_MAX + 1)
		cap = (size_t)CTRLD_MAP_MSG_MAX + 1;
	if (ds == NULL || (j = tk_malloc(cap)) == NULL) {
		ZSTD_freeDStream(ds);
		return TK_ENOMEM;
	}
	ZSTD_inBuffer in = { p, l, 0 };
	ZSTD_outBuffer ob = { j, cap - 1, 0 }; /* room for the NUL */
	for (;;) {
		r = ZSTD_decompressStream(ds, &ob, &in);
		if (ZSTD_isError(r)) {
			rv = TK_EPROTO;
			break;
		}
		if (r == 0) /* the frame is complete */
			break;
		if (ob.pos < ob.size) {
			if (in.pos == in.size) { /* wants input: truncated */
				rv = TK_EPROTO;
				break;
			}
			continue;
		}
		if (cap > CTRLD_MAP_MSG_MAX) {
			rv = TK_EMSGSIZE;
			break;
		}
		size_t ncap = cap * 2 > (size_t)CTRLD_MAP_MSG_MAX + 1 ?
		    (size_t)CTRLD_MAP_MSG_MAX + 1 : cap * 2;
		char *nj = tk_realloc(j, ncap);
		if (nj == NULL) {
			rv = TK_ENOMEM;
			break;
		}
		j = nj;
		cap = ncap;
		tk_mem_hint_huge(j, cap);
		ob.dst = j;
		ob.size = cap - 1;
	}
	ZSTD_freeDStream(ds);
	if (rv != 0) {
		tk_free(j);
		return rv;
	}
	j[ob.pos] = '\0';
	*out = j;
	*n = ob.pos;
	return 0;
}

int
ctrldi_map_frames(tk_buf *buf, bool zstd, ctrldi_msg_fn on_msg, void *arg,
    int *cb_rv, char *why, size_t whylen)
{
	size_t off = 0;
	int rv = 0;

	while (*cb_rv == 0 && buf->len - off >= 4) {
		uint32_t l = tk_le32_load(buf->data + off);
		if (l == 0 || l > CTRLD_MAP_MSG_MAX) {
			snprintf(why, whylen, "map frame length %u out of range", l);
			rv = TK_EPROTO;
			break;
		}
		if (buf->len - off - 4 < l)
			break;
		const uint8_t *p = buf->data + off + 4;
		if (zstd) {
			char *j = NULL;
			size_t d = 0;
			int zr = unzstd(p, l, &j, &d);
			if (zr != 0) {
				snprintf(why, whylen, "%s", zr == TK_ENOMEM ?
				    "out of memory" : zr == TK_EMSGSIZE ?
				    "zstd frame decompresses to more than the map "
				    "limit" : "zstd frame does not decompress");
				rv = zr == TK_ENOMEM ? TK_ENOMEM : TK_EPROTO;
				break;
			}
			*cb_rv = on_msg(arg, j, d); /* takes j */
		} else {
			char *j = tk_malloc((size_t)l + 1);
			if (j == NULL) {
				snprintf(why, whylen, "out of memory");
				rv = TK_ENOMEM;
				break;
			}
			memcpy(j, p, l);
			j[l] = '\0';
			*cb_rv = on_msg(arg, j, l); /* takes j */
		}
		off += 4 + l;
	}
	tk_buf_consume(buf, off);
	return rv;
}
