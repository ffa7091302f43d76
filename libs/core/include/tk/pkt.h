/*
 * Packet buffers: one allocation holding the struct, fixed headroom, the
 * payload and 16 bytes of tailroom, so headers are prepended by moving the
 * data pointer and AEAD tags are appended in place (lwIP pbuf / nng chunk
 * style).
 *
 * Headroom budget (TK_PKT_HEADROOM = 64): WireGuard data header 16, DERP frame
 * header 5 + key 32, bus batch record header 4, rounded up.
 */
#ifndef TK_PKT_H
#define TK_PKT_H

#include <stddef.h>
#include <stdint.h>

#define TK_PKT_HEADROOM 64
#define TK_PKT_TAILROOM 16
#define TK_PKT_MAX	65535 /* largest payload: an IP packet */

typedef struct tk_pkt tk_pkt;
struct tk_pkt {
	tk_pkt *pk_next; /* for caller-owned lists/batches */
	uint8_t *pk_data;
	size_t pk_len;
	size_t pk_size; /* bytes of storage after the struct */
	uint64_t pk_meta; /* caller's use (e.g. peer id) */
	uint8_t pk_buf[];
};

/*
 * A packet able to hold `cap` payload bytes, with TK_PKT_HEADROOM in front and
 * TK_PKT_TAILROOM behind.  Starts empty (pk_len 0) at the headroom mark.
 */
int tk_pkt_new(tk_pkt **out, size_t cap);
void tk_pkt_free(tk_pkt *p);
/* Frees a pk_next-linked list. */
void tk_pkt_free_list(tk_pkt *p);

size_t tk_pkt_headroom(const tk_pkt *p);
size_t tk_pkt_tailroom(const tk_pkt *p);

/* Prepends n bytes (TK_EMSGSIZE if headroom is short); *hdr points at them. */
int tk_pkt_push(tk_pkt *p, size_t n, uint8_t **hdr);
/* Strips n bytes from the front (TK_EINVAL if n > len). */
int tk_pkt_pull(tk_pkt *p, size_t n);
/* Appends n bytes at the tail (TK_EMSGSIZE if tailroom is short). */
int tk_pkt_put(tk_pkt *p, size_t n, uint8_t **tail);
/* Shortens to len bytes (TK_EINVAL if longer than now). */
int tk_pkt_trim(tk_pkt *p, size_t len);
/* Copies n bytes in as the payload, reset to the headroom mark. */
int tk_pkt_set(tk_pkt *p, const void *data, size_t n);

#endif
