/*
 * A subset of Go tailscaled's LocalAPI (ipn/localapi) over a unix socket,
 * so Go's own `tailscale --socket=PATH status` and `derper
 * --verify-clients --socket=PATH` work against a tailkit node.  Answers
 * from the node's buses (ctrld's status and netmap, wgd's status): the
 * state is derived from the live components, never stored.
 *
 *   GET /localapi/v0/status[?peers=false]   ipnstate.Status
 *   GET /localapi/v0/whois?addr=IP[:port]|nodekey:HEX
 *                                            apitype.WhoIsResponse, 404 if
 *                                            no such peer
 *   GET /localapi/v0/prefs                   ipn.Prefs (what tailkit has)
 *   GET /localapi/v0/serve-config            {} (no Serve or Funnel)
 *   POST /localapi/v0/start                  ipn.Options "AuthKey" (and
 *                                            tailkit's "ForceReauth"): log in
 *   POST /localapi/v0/login-interactive      log in; the URL appears in status
 *   POST /localapi/v0/logout                 ctrld's logout
 * Anything else: 404 with a JSON error naming what is served.
 */
#ifndef TK_LOCALAPI_H
#define TK_LOCALAPI_H

#include <stddef.h>

#include "tk/node.h"

typedef struct tk_localapi tk_localapi;

/* Listens on path (created 0600; a stale socket is replaced) and serves on
 * a thread of its own until tk_localapi_free.  The node must outlive it. */
int tk_localapi_new(tk_localapi **out, const tk_node *node, const char *path,
    char *err, size_t errlen);
void tk_localapi_free(tk_localapi *la);

/* One request's answer, without I/O (tests, fuzzing): the HTTP request
 * head req[0..n) in, the whole response (status line, headers, JSON body)
 * appended to *resp (malloc'd).  Always produces a response. */
void tk_localapi_handle(const tk_node *node, const char *req, size_t n,
    char **resp, size_t *resp_len);

#endif
