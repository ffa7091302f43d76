/*
 * The LocalAPI's pieces shared by its handler files (localapi*.c): the
 * node's state as read from its buses, HTTP answers, and the route table.
 * A handler answers one request into *resp (always something: la_respond
 * or la_respond_error).
 */
#ifndef TK_LOCALAPI_INT_H
#define TK_LOCALAPI_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "tk/node.h"
#include "tk/bus/v1/ctrl.pb-c.h"

#define LA_RPC_MS 3000 /* one bus rpc from a handler */

/* What the LocalAPI reads from the node for one answer. */
typedef struct view {
	Tk__Bus__V1__StatusResponse *ctrld, *wgd; /* NULL: did not answer */
	Tk__Bus__V1__Envelope *env;
	Tk__Bus__V1__Netmap *nm; /* ctrld's netmap snapshot, or NULL */
} view;

void la_view_load(view *v, const tk_node *n);
void la_view_fini(view *v);
Tk__Bus__V1__StatusResponse *la_status_of(const tk_node *n, const char *bus);
/* The last message of topic on bus's rpc "snapshot" (NULL: no answer);
 * free with tk__bus__v1__envelope__free_unpacked. */
Tk__Bus__V1__Envelope *la_snapshot(const tk_node *n, const char *bus,
    const char *topic);

/* One parsed request. */
typedef struct la_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* without the query */
	const char *query;  /* after '?', or NULL */
	const char *body;   /* Content-Length bytes after the head, or NULL */
	size_t body_len;
	/* the connection, for streaming handlers (-1: none, answer in *resp):
	 * such a handler writes its own head and body to fd, leaves *resp
	 * NULL, and ends when `stop` is set or the client goes */
	int fd;
	const atomic_bool *stop;
} la_req;

typedef void la_handler(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len);

/* tk_localapi_handle with the connection (fd, stop: see la_req). */
void la_handle_fd(const tk_node *node, const char *req, size_t n, int fd,
    const atomic_bool *stop, char **resp, size_t *resp_len);

/* body is consumed (json_decref'd). */
void la_respond(char **resp, size_t *len, int code, const char *reason,
    json_t *body);
void la_respond_error(char **resp, size_t *len, int code, const char *reason,
    const char *msg);
/* The value of query parameter k (percent-decoded) into out, or false. */
bool la_query_get(const char *q, const char *k, char *out, size_t cap);

/* localapi_diag.c: ping, tailkit/netcheck, tailkit/wg, tailkit/bus */
la_handler la_diag_ping, la_diag_netcheck, la_diag_wg, la_diag_bus;

json_t *la_ip_json(const ProtobufCBinaryData *a);
json_t *la_prefix_json(const Tk__Bus__V1__Prefix *p);
const char *la_state_name(int s); /* ipn.State name of a BackendState */
/* 204 No Content: what Go's client/local wants from start,
 * login-interactive and logout. */
void la_respond_no_content(char **resp, size_t *len);

/*
 * A chunked request body (in[0..n), after the head) into out (at most
 * cap bytes): 0 and *outlen when complete, TK_EAGAIN when more input is
 * needed, TK_EPROTO for garbage, TK_EMSGSIZE past cap.  (localapi_parse.c)
 */
int la_chunked_decode(const char *in, size_t n, char *out, size_t cap,
    size_t *outlen);

/* --- prefs (localapi_parse.c: parsing; localapi_prefs.c: handlers) --- */

/* The ipn.Prefs fields ctrld takes edits of (ctrld/src/prefs.h). */
#define LA_PREFS_EDITABLE 5
extern const char *const la_prefs_editable[LA_PREFS_EDITABLE];

/* A tk.bus.v1.MaskedPrefs parsed from Go's ipn.MaskedPrefs JSON; strings
 * are borrowed from that JSON. */
typedef struct la_masked {
	Tk__Bus__V1__MaskedPrefs mp;
	Tk__Bus__V1__Prefs p;
	char *tags[64];
	Tk__Bus__V1__Prefix routes[64], *routep[64];
	uint8_t route_addr[64][16], exit_ip[16];
} la_masked;

/* 0, or TK_EINVAL with err naming the field and what is accepted. */
int la_masked_prefs_parse(la_masked *m, const json_t *j, char *err,
    size_t errlen);
/* A whole ipn.Prefs against the current one (editable fields may differ,
 * the rest must match or be zero): 0 or TK_EINVAL with err. */
int la_prefs_check(const json_t *want, const json_t *cur, char *err,
    size_t errlen);
json_t *la_prefs_get(const tk_node *node, char *err, size_t errlen);
json_t *la_prefs_edit(const tk_node *node, const la_masked *m, int *code,
    char *err, size_t errlen);
/* Start's ipn.Options.UpdatePrefs: 0, or an HTTP code with err. */
int la_start_prefs(const tk_node *node, const json_t *up, char *err,
    size_t errlen);
la_handler la_h_prefs, la_h_check_prefs;

#endif
