/*
 * ctrld: the control client as an instance.  It registers the node with a
 * control server over ts2021, streams the map, and publishes the resulting
 * netmap on the control bus as topic "netmap" (Netmap snapshot over
 * req/rep, NetmapDelta deltas with sequence numbers).
 *
 * Threads: the instance's loop thread owns the state, the bus and sqlite;
 * a control thread runs the blocking ts2021 session (dial, register, map
 * stream) and posts every MapResponse to the loop.  Failures of any kind
 * end the session and start another after a jittered exponential backoff
 * (1 s doubling to 30 s); a session that streamed for a minute resets it.
 */
#ifndef CTRLD_CTRLD_H
#define CTRLD_CTRLD_H

#include <stdbool.h>
#include <stddef.h>

#include "tk/bus.h"

typedef struct ctrld ctrld;

typedef struct ctrld_config {
	const char *control_url; /* http://host:port or https://host[:port] */
	const char *ca_file;	 /* https: a PEM CA trusted besides the
				    system's; NULL: the system's only */
	const char *auth_key;	 /* pre-auth key; NULL: interactive login */
	const char *hostname;	 /* Hostinfo.Hostname; NULL: the host name */
	bool ephemeral;
	/* Hostinfo.RequestTags, comma-separated ("tag:a,tag:b"); NULL: none */
	const char *advertise_tags;
	/* prefs defaults besides hostname and tags (a user's edits, kept in
	 * the state, win over all of them on later starts): WantRunning
	 * false, CorpDNS false */
	bool start_down, no_accept_dns;
	/* refuse prefs edits (tailkitd --config with a locked config file,
	 * as tailscaled refuses them) */
	bool prefs_locked;
	const char *state_dir;	 /* sqlite: machine key, registration, last
				    netmap; required */
	const char *pub_url, *rpc_url; /* ctrld's publisher and rpc server */
	/* wgd's publisher: ctrld registers with the node key wgd publishes
	 * (topic "keys").  NULL: standalone, ctrld keeps a node key of its
	 * own in its state (debugging a control server without wgd). */
	const char *wgd_pub_url, *wgd_rpc_url;
	/* derpd's publisher (optional): its "derp" topic (home region,
	 * latencies) goes to control as Hostinfo.NetInfo in lite updates, as
	 * Go's client reports netcheck results. */
	const char *derpd_pub_url, *derpd_rpc_url;
	const tk_bus_tls *tls;
} ctrld_config;

int ctrld_new(ctrld **out, const ctrld_config *cfg, char *err, size_t errlen);
int ctrld_start(ctrld *c);
void ctrld_stop(ctrld *c);
void ctrld_free(ctrld *c);

#endif
