/*
 * Inside the embedding library (tools/embed): the native node (tailkit.c),
 * descriptors from netstackd's local API (tailkit_io.c), the libtailscale
 * API on top (ts_compat.c) and its loopback server (ts_loopback.c).
 */
#ifndef EMBED_INT_H
#define EMBED_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tailkit.h"
#include "tk/node.h"

#define TKX_API __attribute__((visibility("default")))
#define TKX_NEVENTS 256
#define TKX_CRED_LEN 32

struct tailkit {
	pthread_mutex_t mu; /* everything below but the node's use */
	pthread_cond_t cv;  /* state changes, stop */
	/* the node: created by start, read-locked by every user of it,
	 * write-locked to stop it */
	pthread_rwlock_t nl;
	tk_node *node;
	bool started, stopping;
	/* settings (malloc'd strings) */
	char *control_url, *state_dir, *authkey, *hostname, *tags, *ca_file;
	bool ephemeral, derp_plain_http;
	/* SOCKS5 credentials for tailscale_loopback's proxy */
	char proxy_user[8], proxy_pass[TKX_CRED_LEN + 1];
	/* the watcher: polls the node's status, queues events */
	pthread_t watcher;
	bool watching;
	int state;
	char ips[256], login_url[1024];
	uint64_t peers_hash;
	bool ns_ready; /* netstackd has own addresses (watcher only) */
	/* events */
	int evfd;
	tailkit_event ev[TKX_NEVENTS];
	unsigned ev_head, ev_count;
};

/* The calling thread's last error: sets it and returns -err. */
int tkx_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tkx_lasterr(void);
/* A tk error (TK_E*) as a negative errno. */
int tkx_errno(int tk_err);

/* netstackd's API socket of a running node, copied to path (read lock
 * held by the caller or not: the path is a string in the node). */
int tkx_api_path(tailkit *tk, char *path, size_t cap);
/* Hands fd to the node's SOCKS5 proxy (takes fd on 0). */
int tkx_proxy_adopt(tailkit *tk, int fd);
/* A LocalAPI request answered in-process (tk_localapi_handle): 0 and the
 * whole response in *resp (malloc'd), or -errno when no node runs. */
int tkx_localapi(tailkit *tk, const char *req, size_t n, char **resp,
    size_t *resp_len);
/* 32 random characters [0-9a-f] and a NUL. */
void tkx_cred(char out[TKX_CRED_LEN + 1]);

#endif
