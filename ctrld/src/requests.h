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
	/* Hostinfo.NetInfo as JSON object text (derpd's home region), or
	 * NULL */
	const char *netinfo;
	/* NetInfo.WorkingUDP: true when wgd has a STUN-learned endpoint (a
	 * STUN server answered its WireGuard socket); false: not claimed */
	bool working_udp;
	/* Hostinfo.BackendLogID: 64 hex digits, kept in the state (or NULL) */
	const char *backend_log_id;
} ctrldi_who;

/*
 * Each builder: 0 and *out a complete body, or TK_ENOMEM (TK_EPROTO for
 * endpoints that are not JSON arrays) and nothing built -- never a body
 * missing a field.
 */
/* Hostinfo: Hostname, OS, IPNVersion, App, BackendLogID, RequestTags,
 * NetInfo. */
int ctrldi_hostinfo(const ctrldi_who *w, json_t **out);

/* RegisterRequest; auth_key and followup may be NULL. */
int ctrldi_req_register(char **out, const ctrldi_who *w, bool ephemeral,
    const char *auth_key, const char *followup);
/* RegisterRequest that logs the node out (an expiry in the past), with
 * Hostinfo as Go sends it. */
int ctrldi_req_logout(char **out, const ctrldi_who *w);
/* MapRequest for the stream (Stream, KeepAlive; Compress "zstd" if zstd). */
int ctrldi_req_map(char **out, const ctrldi_who *w, bool zstd);
/* Lite MapRequest (Stream false, OmitPeers) carrying the endpoints: eps and
 * types are JSON arrays in text. */
int ctrldi_req_lite(char **out, const ctrldi_who *w, const char *eps,
    const char *types);

#endif
