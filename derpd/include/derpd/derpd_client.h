/*
 * derpd client mode: the node's connections to DERP regions (issue 11,
 * ARCHITECTURE.md "Data path").
 *
 * Follows ctrld's "netmap" topic for the DERP map and wgd's "keys" topic
 * for the node key; carries WireGuard/disco datagrams between wgd's packet
 * bus "wgd-derp" (BATCH_KIND_PEER) and DERP servers; keeps one connection
 * per region (the home region for good, others while used); publishes the
 * "derp" topic (DerpState: home region, latencies, connections) and answers
 * "status".  The node key never reaches derpd: wgd seals the ClientInfo
 * ("derp_seal") and opens the ServerInfo ("derp_open").
 */
#ifndef DERPD_CLIENT_H
#define DERPD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "tk/bus.h"

typedef struct derpd_client derpd_client;

typedef struct derpd_client_config {
	const char *pub_url, *rpc_url;		   /* derpd's own: "derp", status */
	const char *ctrld_pub_url, *ctrld_rpc_url; /* netmap (DERP map) */
	const char *wgd_pub_url, *wgd_rpc_url;	   /* keys, derp_seal/open */
	const char *pkt_url;			   /* wgd's "wgd-derp" (dialled) */
	/* Plain HTTP to DERP servers, for tests against a derper without TLS
	 * (Go's TS_DEBUG_USE_DERP_HTTP). */
	bool plain_http;
	const char *ca_file; /* extra CA for DERP servers' certificates */
	/* Pin the home region (0: the lowest measured latency, kept while
	 * healthy). */
	int home_region;
	const tk_bus_tls *tls;
} derpd_client_config;

int derpd_client_new(derpd_client **out, const derpd_client_config *cfg,
    char *err, size_t errlen);
int derpd_client_start(derpd_client *c);
void derpd_client_stop(derpd_client *c);
void derpd_client_free(derpd_client *c);

/* `derpd client ...` (flags, signals); returns the exit code. */
int derpd_client_main(int argc, char **argv);

#endif
