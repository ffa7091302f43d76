/*
 * The map stream's framing (control-protocol.md §5.3): each MapResponse is
 * a u32 little-endian length and that many bytes, one zstd frame (when the
 * request asked for "zstd") or raw JSON.
 */
#ifndef CTRLD_MAPFRAME_H
#define CTRLD_MAPFRAME_H

#include <stdbool.h>
#include <stddef.h>

#include "ctlconn.h"
#include "tk/buf.h"

/*
 * Hands every whole frame in buf to on_msg (decompressed, NUL-terminated,
 * on_msg's to free: see ctrldi_msg_fn) and consumes it; a partial frame stays in buf for more bytes.  Stops
 * early when on_msg returns non-zero (*cb_rv gets it).  TK_EPROTO for a
 * zero or oversized length, a zstd frame over CTRLD_MAP_MSG_MAX
 * (decompressed), or one that does not decompress
 * to exactly one frame; why says which.  zstd frames may omit the content
 * size (a streaming encoder's), as Go's decoder allows.
 */
int ctrldi_map_frames(tk_buf *buf, bool zstd, ctrldi_msg_fn on_msg, void *arg,
    int *cb_rv, char *why, size_t whylen);

#endif
