/*
 * ts2021 wire format (control/controlbase): the Noise IK handshake with
 * Tailscale's prologue and frame headers, and the transport record layer
 * with big-endian nonces.  Sans-I/O: bytes in, bytes out.
 * Facts: ../shared/reference/control-protocol.md §3.
 */
#ifndef CTRLD_TS2021_H
#define CTRLD_TS2021_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/buf.h"
#include "tk/noise.h"
#include "tk/rng.h"

#include "ts2021_wire.h"

typedef struct ts2021 {
	tk_noise_hs hs;
	tk_noise_cs tx, rx;
	uint16_t version;
	bool done, dead;
	/* receive side: undecoded bytes */
	uint8_t in[TS2021_MAX_FRAME];
	size_t inlen;
	uint64_t records_in, records_out;
} ts2021;

/*
 * Starts the handshake as the client: writes the 101-byte initiation into
 * init.  machine_priv: our machine key; server_pub: the control key from
 * /key.  eph_priv (NULL: random) is for known-answer tests.
 */
int ts2021_client_init(ts2021 *c, uint16_t version, const uint8_t machine_priv[32],
    const uint8_t server_pub[32], const uint8_t *eph_priv, const tk_rng *rng,
    uint8_t init[TS2021_INIT_LEN]);

/*
 * Feeds the server's first bytes.  *used gets how many were consumed.
 * 0: handshake done (keys ready); TK_EAGAIN: need more bytes; TK_EPROTO: an
 * error frame (its text, unauthenticated, in err) or a malformed response;
 * TK_ECRYPTO: bad tag.
 */
int ts2021_client_finish(ts2021 *c, const uint8_t *p, size_t n, size_t *used,
    char *err, size_t errlen);

/* Seals plaintext into records (split at 4077 bytes), appended to out. */
int ts2021_seal(ts2021 *c, const uint8_t *p, size_t n, tk_buf *out);

/*
 * Feeds received bytes; decrypted plaintext is appended to out.  Returns 0
 * (maybe with nothing new), TK_EPROTO for a bad frame (wrong type, over
 * 4096 bytes), TK_ECRYPTO for a record that does not authenticate, or
 * TK_ENOMEM (out could not grow; records before it may be in out): the
 * connection is then dead for good and later calls return TK_ESTATE.
 */
int ts2021_open(ts2021 *c, const uint8_t *p, size_t n, tk_buf *out);

void ts2021_wipe(ts2021 *c);

#endif
