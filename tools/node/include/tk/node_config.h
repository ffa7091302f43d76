/*
 * tailkitd --config FILE: tailscaled's declarative config (ipn.ConfigVAlpha,
 * "Version": "alpha0"), as JSON.  Read: ServerURL (default
 * https://controlplane.tailscale.com), AuthKey (literal, or "file:PATH"),
 * Hostname, Enabled (false: the node starts down), AcceptDNS (false: the
 * tailnet's DNS config is not taken, prefs CorpDNS) and Locked (not false:
 * prefs edits are refused, as tailscaled refuses them).  Any
 * other ipn.ConfigVAlpha field, when set, is refused with its name; an
 * unknown field too.  Field names match case-insensitively, as Go's decoder
 * does.
 */
#ifndef TK_NODE_CONFIG_H
#define TK_NODE_CONFIG_H

#include <stddef.h>

typedef struct tk_node_file {
	char *server_url, *auth_key, *hostname; /* owned; auth_key is a secret */
	int enabled, accept_dns, locked;	/* -1 unset, 0, 1 */
} tk_node_file;

/* 0, or a TK_E* code with err saying what is wrong and what is accepted. */
int tk_node_config_load(tk_node_file *f, const char *path, char *err,
    size_t errlen);
void tk_node_config_fini(tk_node_file *f);

#endif
