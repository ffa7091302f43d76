/* Registration, sans I/O: see register.h. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "register.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/mem.h"

/* ctrld's long poll for a login (Followup) vs a plain register */
#define FIRST_TIMEOUT_MS  30000
#define FOLLOW_TIMEOUT_MS 600000
#define MAX_ROUNDS	  100

enum { S_BUILD, S_WAIT, S_RETRY, S_LOGIN, S_DONE, S_ERROR };

void
ctrldi_reg_init(ctrldi_reg *r, const ctrldi_reg_config *cfg)
{
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	r->sent_auth = cfg->auth_key != NULL && !cfg->known;
	r->state = S_BUILD;
}

static void
drop_body(ctrldi_reg *r)
{
	if (r->body != NULL)
		tk_free_secret(r->body, r->body_len); /* may carry the key */
	r->body = NULL;
	r->body_len = 0;
}

static ctrldi_reg_step
fail(ctrldi_reg *r, int rv)
{
	r->rv = rv;
	r->state = S_ERROR;
	return CTRLDI_REG_ERROR;
}

ctrldi_reg_step
ctrldi_reg_next(ctrldi_reg *r)
{
	int rv;

	switch (r->state) {
	case S_BUILD:
		drop_body(r);
		if (r->cfg.logout)
			rv = ctrldi_req_logout(&r->body, r->cfg.who);
		else
			rv = ctrldi_req_register(&r->body, r->cfg.who,
			    r->cfg.ephemeral,
			    r->sent_auth ? r->cfg.auth_key : NULL, r->followup);
		if (rv != 0) {
			snprintf(r->err, sizeof(r->err),
			    "%s: %s building the request",
			    r->cfg.logout ? "logout" : "register",
			    tk_strerror(rv));
			return fail(r, rv);
		}
		r->body_len = strlen(r->body);
		r->timeout_ms = r->round ? FOLLOW_TIMEOUT_MS : FIRST_TIMEOUT_MS;
		r->state = S_WAIT;
		return CTRLDI_REG_SEND;
	case S_WAIT:
		return CTRLDI_REG_SEND; /* still owed a response */
	case S_RETRY:
		r->state = S_BUILD;
		return CTRLDI_REG_RETRY;
	case S_LOGIN:
		r->state = S_BUILD;
		return CTRLDI_REG_LOGIN;
	case S_DONE:
		return CTRLDI_REG_DONE;
	default:
		return CTRLDI_REG_ERROR;
	}
}

/* *slot = a copy of url (its old value freed); false: out of memory,
 * the registration failed. */
static bool
keep_url(ctrldi_reg *r, char **slot, const char *url)
{
	tk_free(*slot);
	if ((*slot = tk_strdup(url)) != NULL)
		return true;
	snprintf(r->err, sizeof(r->err), "register: out of memory");
	(void)fail(r, TK_ENOMEM);
	return false;
}

void
ctrldi_reg_response(ctrldi_reg *r, int status, const void *p, size_t n)
{
	int round = r->round++;
	bool can_retry = !r->sent_auth && !r->key_refused &&
	    r->cfg.auth_key != NULL && round < MAX_ROUNDS;
	json_t *j = NULL;
	const char *e, *url;

	assert(r->state == S_WAIT);
	drop_body(r);
	if (r->cfg.logout) {
		if (status == 200) {
			r->state = S_DONE;
			return;
		}
		snprintf(r->err, sizeof(r->err), "logout: HTTP %d", status);
		(void)fail(r, TK_EPROTO);
		return;
	}
	if (status == 429) {
		/* direct.go: a rateLimitError; the caller waits Retry-After */
		snprintf(r->err, sizeof(r->err), "register: rate limited: %.*s",
		    (int)(n > 200 ? 200 : n), (const char *)p);
		(void)fail(r, TK_EAGAIN);
		return;
	}
	if (status != 200) {
		snprintf(r->err, sizeof(r->err), "register: HTTP %d: %.*s",
		    status, (int)(n > 200 ? 200 : n), (const char *)p);
		(void)fail(r, TK_EPROTO);
		return;
	}
	if (tk_json_parse(&j, p, n, NULL, NULL, 0) != 0) {
		snprintf(r->err, sizeof(r->err),
		    "register: response is not JSON");
		(void)fail(r, TK_EPROTO);
		return;
	}
	e = json_string_value(json_object_get(j, "Error"));
	url = json_string_value(json_object_get(j, "AuthURL"));
	if (e != NULL && *e && can_retry) {
		snprintf(r->err, sizeof(r->err), "register without auth "
		    "refused (%s); retrying with the auth key", e);
		r->sent_auth = true;
		r->state = S_RETRY;
	} else if (e != NULL && *e && r->sent_auth && r->key_login != NULL) {
		/* the key cannot register this node again (used once, expired)
		 * but the server offered a login: show it, as Go does (its key
		 * is not kept after the first login); the key goes no more */
		snprintf(r->err, sizeof(r->err), "register with the auth key "
		    "refused (%s); login needed", e);
		r->sent_auth = false;
		r->key_refused = true;
		tk_free(r->followup);
		r->followup = r->key_login;
		r->key_login = NULL;
		r->auth_url = r->followup;
		r->state = S_LOGIN;
	} else if (e != NULL && *e) {
		snprintf(r->err, sizeof(r->err), "register refused: %s", e);
		(void)fail(r, TK_EPERM);
	} else if (json_is_true(json_object_get(j, "NodeKeyExpired"))) {
		snprintf(r->err, sizeof(r->err), "register: node key expired "
		    "(NodeKeyExpired); a new key is made");
		(void)fail(r, TK_ESTATE);
	} else if (url != NULL && *url && can_retry) {
		snprintf(r->err, sizeof(r->err), "register without auth asks "
		    "for a login; retrying with the auth key");
		if (keep_url(r, &r->key_login, url)) {
			r->sent_auth = true;
			r->state = S_RETRY;
		}
	} else if (url != NULL && *url && round < MAX_ROUNDS) {
		if (keep_url(r, &r->followup, url)) {
			r->auth_url = r->followup;
			r->state = S_LOGIN;
		}
	} else {
		r->state = S_DONE;
	}
	json_decref(j);
}

void
ctrldi_reg_fini(ctrldi_reg *r)
{
	drop_body(r);
	tk_free(r->followup);
	tk_free(r->key_login);
	r->followup = r->key_login = NULL;
	r->auth_url = NULL;
}

int64_t
ctrldi_retry_after_ms(const char *v, int64_t now_unix_ms, uint32_t rnd)
{
	int64_t ms = -1;
	char *end;

	if (v != NULL && *v >= '0' && *v <= '9') {
		/* delay-seconds (Go: strconv.Atoi) */
		errno = 0;
		long long secs = strtoll(v, &end, 10);
		if (errno == 0 && *end == '\0' && secs <= 3600)
			ms = secs * 1000;
	} else if (v != NULL && *v) {
		/* an HTTP-date in any of the three forms http.ParseTime takes */
		static const char *const fmts[] = {
			"%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
			"%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
			"%a %b %e %H:%M:%S %Y",	     /* asctime */
		};
		for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
			struct tm tm;
			memset(&tm, 0, sizeof(tm));
			end = strptime(v, fmts[i], &tm);
			if (end != NULL && *end == '\0') {
				ms = (int64_t)timegm(&tm) * 1000 - now_unix_ms;
				break;
			}
		}
	}
	/* parseRateLimitError: none, <= 0 or > 1 h: 5 s + rand(5 s) */
	if (ms <= 0 || ms > 3600 * 1000)
		ms = 5000 + (int64_t)(rnd % 5000u);
	return ms;
}
