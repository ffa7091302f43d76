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
			unsigned long long sz = ZSTD_getFrameContentSize(p, l);
			if (sz == ZSTD_CONTENTSIZE_ERROR || sz == ZSTD_CONTENTSIZE_UNKNOWN ||
			    sz > CTRLD_MAP_MSG_MAX) {
				snprintf(why, whylen, "bad zstd frame in the map stream");
				rv = TK_EPROTO;
				break;
			}
			char *j = tk_malloc((size_t)sz + 1);
			if (j == NULL) {
				snprintf(why, whylen, "out of memory");
				rv = TK_ENOMEM;
				break;
			}
			size_t d = ZSTD_decompress(j, (size_t)sz, p, l);
			if (ZSTD_isError(d) || d != sz) {
				tk_free(j);
				snprintf(why, whylen, "zstd frame does not decompress");
				rv = TK_EPROTO;
				break;
			}
			j[d] = '\0';
			*cb_rv = on_msg(arg, j, d);
			tk_free(j);
		} else {
			char *j = tk_malloc((size_t)l + 1);
			if (j == NULL) {
				snprintf(why, whylen, "out of memory");
				rv = TK_ENOMEM;
				break;
			}
			memcpy(j, p, l);
			j[l] = '\0';
			*cb_rv = on_msg(arg, j, l);
			tk_free(j);
		}
		off += 4 + l;
	}
	tk_buf_consume(buf, off);
	return rv;
}
