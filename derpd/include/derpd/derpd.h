/*
 * derpd server mode: a self-hosted DERP relay (cmd/derper's job).
 *
 * One instance = one event-loop thread owning the listeners (HTTP and/or
 * HTTPS for /derp and the probe endpoints, UDP for STUN), every client
 * connection and the routing table.  derpd_server_new validates the config,
 * loads (or creates) the server key and binds the sockets, so a port of 0
 * is resolved before derpd_server_start returns; derpd_server_start runs
 * the loop thread; derpd_server_stop joins it; derpd_server_free closes
 * everything (and stops first).
 *
 * Errors: 0 or a TK_E* code; err (may be NULL) gets a one-line explanation
 * for a bad config.
 */
#ifndef DERPD_DERPD_H
#define DERPD_DERPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/clock.h"
#include "tk/rng.h"

typedef struct derpd_server derpd_server;

typedef struct derpd_server_config {
	/* Listener "HOST:PORT" (derper -a).  HTTPS when cert_dir is set
	 * (--certmode manual), else plain HTTP.  NULL: no DERP listener. */
	const char *addr;
	/* Plain-HTTP port on the same host as addr (derper --http-port):
	 * /generate_204, probes, home page, metrics.  0: none. */
	int http_port;
	/* STUN on UDP HOST:stun_port.  -1: none; 0: an ephemeral port. */
	int stun_port;
	const char *stun_host;	/* default: addr's host */
	/* Manual certificates: cert_dir/hostname.crt and .key. */
	const char *cert_dir;
	const char *hostname;
	/* Server key: state_dir/derpd.db (sqlite, 0600), else key_file (32
	 * bytes hex "privkey:..." or derper's JSON config). */
	const char *state_dir;
	const char *key_file;
	/* Mesh: 32-byte key from a file of 64 hex digits. */
	const char *mesh_psk_file;
	const char *mesh_with; /* comma-separated host[:port] list */
	/* Admission.  verify_clients: ask the local tailscaled (LocalAPI on
	 * tailscaled_socket, default /var/run/tailscale/tailscaled.sock)
	 * whether the key is a peer of its tailnet. */
	bool verify_clients;
	const char *tailscaled_socket;
	const char *verify_client_url; /* http:// only */
	bool verify_client_url_fail_open;
	const char *allowlist_file; /* one nodekey:<hex> per line */
	/* Accept rate limit (conns/s, burst); 0: unlimited. */
	double accept_limit;
	int accept_burst;
	/* derper --rate-config: JSON {"PerClientRateLimitBytesPerSec":N,
	 * "PerClientRateBurstBytes":M}; reloaded by derpd_server_reload. */
	const char *rate_config_file;
	/* Per-frame write timeout in ms (derper --tcp-write-timeout);
	 * 0: the default 2000; negative: none. */
	int write_timeout_ms;
	const tk_clock *clock; /* NULL: system */
	const tk_rng *rng;     /* NULL: system */
} derpd_server_config;

int derpd_server_new(derpd_server **out, const derpd_server_config *cfg,
    char *err, size_t errlen);
int derpd_server_start(derpd_server *s);
/* Re-reads what may change while running (the rate config).  Any thread;
 * the work runs on the server's loop.  A bad file keeps the old values. */
void derpd_server_reload(derpd_server *s);
void derpd_server_stop(derpd_server *s);
void derpd_server_free(derpd_server *s);

/* Bound ports (0 if that listener is off). */
uint16_t derpd_server_port(const derpd_server *s);
uint16_t derpd_server_http_port(const derpd_server *s);
uint16_t derpd_server_stun_port(const derpd_server *s);
/* The server's public key (raw 32 bytes). */
void derpd_server_public_key(const derpd_server *s, uint8_t out[32]);

#endif
