/*
 * Registration with the control server (control-protocol.md §6), sans
 * I/O: this builds each RegisterRequest body, reads each RegisterResponse
 * and says what to do next.  ctrld's session and tk-control both drive it:
 *
 *	ctrldi_reg_init(&r, &cfg);
 *	while ((step = ctrldi_reg_next(&r)) != CTRLDI_REG_DONE &&
 *	    step != CTRLDI_REG_ERROR) {
 *		if (step == CTRLDI_REG_SEND) {
 *			POST r.body to /machine/register within r.timeout_ms;
 *			on a transport error stop (the caller's error);
 *			ctrldi_reg_response(&r, status, body, len);
 *		} else if (step == CTRLDI_REG_LOGIN) {
 *			show r.auth_url; the next request waits for it;
 *		} // CTRLDI_REG_RETRY: r.err says why the auth key goes next
 *	}
 *	ctrldi_reg_fini(&r);
 *
 * The rules (ctrld's since issue 5):
 * - HTTP other than 200, or a body that is not JSON: TK_EPROTO.
 * - Error set: refused (TK_EPERM), unless the request went without the
 *   auth key and there is one: then the next request carries it (the
 *   server forgot us, e.g. a fresh control database).
 * - NodeKeyExpired: TK_ESTATE (the key must be rotated).
 * - AuthURL set: a login is needed (Followup = the URL next), unless the
 *   request went without the auth key and there is one: then it goes next
 *   (the node was deleted at the server).
 *   If the auth key is then refused (Error: used once, expired), the
 *   login offered first is shown instead (Go keeps no key after its first
 *   login, so it shows that URL), and the key is not sent again.
 * - HTTP 429: TK_EAGAIN; the caller waits as ctrldi_retry_after_ms says.
 * - Otherwise: registered.  Either retry stops after 100 rounds.
 * - A logout (an expiry in the past) is one request: HTTP 200 is done.
 */
#ifndef CTRLD_REGISTER_H
#define CTRLD_REGISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "requests.h"

typedef enum ctrldi_reg_step {
	CTRLDI_REG_SEND,  /* send body; then ctrldi_reg_response */
	CTRLDI_REG_RETRY, /* the auth key goes in the next request; err: why */
	CTRLDI_REG_LOGIN, /* show auth_url; the next request waits for it */
	CTRLDI_REG_DONE,  /* registered, or logged out */
	CTRLDI_REG_ERROR  /* rv and err */
} ctrldi_reg_step;

typedef struct ctrldi_reg_config {
	const ctrldi_who *who; /* borrowed until fini */
	bool ephemeral;
	const char *auth_key; /* NULL: none; borrowed */
	bool known;	      /* the server has this node key: no key first */
	bool logout;	      /* log out instead of registering */
} ctrldi_reg_config;

typedef struct ctrldi_reg {
	ctrldi_reg_config cfg;
	int state;	/* internal */
	int round;	/* requests sent so far */
	bool sent_auth; /* the request out (or next) carries the auth key */
	char *body;	/* CTRLDI_REG_SEND: the request; may hold the key */
	size_t body_len;
	int timeout_ms;	      /* CTRLDI_REG_SEND: for the answer */
	const char *auth_url; /* CTRLDI_REG_LOGIN: the URL to show */
	char *followup;
	char *key_login; /* the login offered before the auth key was tried */
	bool key_refused; /* the auth key was refused: it goes no more */
	int rv;		/* CTRLDI_REG_ERROR */
	char err[256];	/* CTRLDI_REG_ERROR, CTRLDI_REG_RETRY */
} ctrldi_reg;

void ctrldi_reg_init(ctrldi_reg *r, const ctrldi_reg_config *cfg);
/* What to do now (builds the body for CTRLDI_REG_SEND). */
ctrldi_reg_step ctrldi_reg_next(ctrldi_reg *r);
/* The answer to the body just sent: status and body (borrowed). */
void ctrldi_reg_response(ctrldi_reg *r, int status, const void *p,
    size_t n);
/* Frees the body (zeroed: it may carry the auth key) and the URL. */
void ctrldi_reg_fini(ctrldi_reg *r);

/*
 * How long to wait after HTTP 429 (direct.go parseRateLimitError): the
 * Retry-After value v (delay-seconds or an HTTP-date, compared with
 * now_unix_ms); when absent, unreadable, <= 0 or over an hour, 5 s plus
 * rnd % 5 s.  Milliseconds.
 */
int64_t ctrldi_retry_after_ms(const char *v, int64_t now_unix_ms,
    uint32_t rnd);

#endif
