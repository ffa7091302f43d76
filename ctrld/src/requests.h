/*
 * The JSON bodies ctrld sends to the control server (tailcfg
 * RegisterRequest and MapRequest; control-protocol.md §6, §8), built apart
 * from the session so they can be tested alone (fault-injection sweeps).
 * Bodies are NUL-terminated and freed with tk_free.
 */
#ifndef CTRLD_REQUESTS_H
#define CTRLD_REQUESTS_H

#include <stdbool.h>

#include <jansson.h>

/* Who we are, in the text forms the server expects. */
typedef struct ctrldi_who {
	const char *node_key;	  /* "nodekey:..." */
	const char *old_node_key; /* "nodekey:..." (zero key: none) */
	const char *disco_key;	  /* "discokey:...", or NULL */
	const char *hostname;
	const char *tags; /* comma-separated ACL tags, or NULL */
} ctrldi_who;

/* Hostinfo: Hostname, OS, IPNVersion, RequestTags. */
json_t *ctrldi_hostinfo(const ctrldi_who *w);

/* RegisterRequest; auth_key and followup may be NULL. */
char *ctrldi_req_register(const ctrldi_who *w, bool ephemeral,
    const char *auth_key, const char *followup);
/* RegisterRequest that logs the node out (an expiry in the past). */
char *ctrldi_req_logout(const ctrldi_who *w);
/* MapRequest for the stream (Stream, KeepAlive, zstd). */
char *ctrldi_req_map(const ctrldi_who *w);
/* Lite MapRequest (Stream false, OmitPeers) carrying the endpoints: eps and
 * types are JSON arrays in text. */
char *ctrldi_req_lite(const ctrldi_who *w, const char *eps, const char *types);

#endif
