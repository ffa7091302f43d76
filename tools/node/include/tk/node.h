/*
 * The node: ctrld, wgd, derpd (client) and netstackd in one process,
 * linked by buses, started and stopped in order (ARCHITECTURE.md "Modes").
 * tailkitd, the C API and the tests use this; nobody wires the components
 * by hand.  The components still meet only on the buses: this file creates
 * their configurations and nothing else.
 *
 * Buses are inproc://<instance>/<bus> (one process), or ipc://DIR/<bus>
 * when bus_dir is set, so tk-status, tk-snapshot and the other debugging
 * tools can attach to a running node.
 *
 * Start order: wgd (owns the keys, listens on the packet buses), netstackd
 * (dials wgd's packet bus), derpd (dials wgd's DERP bus), ctrld (registers
 * with wgd's key).  Stop: the reverse.  lwIP keeps global state, so there
 * is one node with a netstack per process (TK_EEXIST for a second).
 */
#ifndef TK_NODE_H
#define TK_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tk_node tk_node;

typedef struct tk_node_config {
	const char *control_url; /* required: http://host:port, https://host */
	const char *auth_key;	 /* NULL: interactive login (URL in status) */
	const char *hostname;	 /* NULL: the host's name */
	const char *advertise_tags; /* "tag:a,tag:b" or NULL */
	bool ephemeral;
	const char *state_dir; /* required: <dir>/ctrld, <dir>/wgd (0700) */
	const char *ca_file;   /* extra CA for control and DERP servers */
	/* ipc:// buses in this directory (0700) instead of inproc:// */
	const char *bus_dir;
	/* netstackd's local API socket; NULL: <bus_dir or state_dir>/netstackd.sock */
	const char *api_path;
	bool no_netstack;      /* no netstackd: something else dials wgd-pkt */
	uint16_t listen_port;  /* WireGuard UDP port; 0: the stored one or random */
	bool derp_plain_http;  /* DERP over plain HTTP (tests with derper -dev) */
	int home_region;       /* pin the DERP home region; 0: measured */
	/* prefs defaults (ctrld_config): start down, DNS config not taken;
	 * prefs_locked: edits refused (a locked tailscaled config file) */
	bool start_down, no_accept_dns, prefs_locked;
	/* SOCKS5 credentials for connections handed over with
	 * tk_node_proxy_adopt (both or neither; 1..255 bytes each) */
	const char *proxy_user, *proxy_pass;
} tk_node_config;

/* 0, or TK_EINVAL (err says which setting and what is accepted),
 * TK_EEXIST (a node with a netstack already runs in this process), TK_ENOMEM,
 * or a component's error. */
int tk_node_new(tk_node **out, const tk_node_config *cfg, char *err,
    size_t errlen);
int tk_node_start(tk_node *n, char *err, size_t errlen);
void tk_node_stop(tk_node *n);
void tk_node_free(tk_node *n);

/* The URL of one of the node's buses (names in tk/bus_topics.h), e.g.
 * TK_BUS_CTRLD_RPC for status and snapshots; NULL for an unknown name. */
const char *tk_node_bus_url(const tk_node *n, const char *bus);
/* netstackd's local API socket path (NULL with no_netstack). */
const char *tk_node_api_path(const tk_node *n);

/* Hands a connected loopback socket to netstackd's SOCKS5 proxy (the C
 * API's tailscale_loopback, which sniffs SOCKS5 from HTTP on one port):
 * the node takes fd on 0.  TK_ESTATE with no netstack. */
int tk_node_proxy_adopt(tk_node *n, int fd);

#endif
