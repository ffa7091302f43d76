/*
 * The node assembly (tk/node.h): four component configurations, one set of
 * bus URLs, start in order, stop in reverse.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctrld/ctrld.h"
#include "derpd/derpd_client.h"
#include "netstackd/netstackd.h"
#include "tk/bus_topics.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/node.h"
#include "wgd/wgd.h"

#define SUBSYS "node"

/* the buses, by name (tk/bus_topics.h) */
static const char *const bus_names[] = {
	TK_BUS_CTRLD_PUB, TK_BUS_CTRLD_RPC, TK_BUS_WGD_PUB, TK_BUS_WGD_RPC,
	TK_BUS_DERPD_PUB, TK_BUS_DERPD_RPC, TK_BUS_WGD_PKT, TK_BUS_WGD_DERP,
	TK_BUS_NETSTACKD_RPC,
};
#define NBUS (sizeof(bus_names) / sizeof(bus_names[0]))

struct tk_node {
	char url[NBUS][600];
	char ctrld_dir[600], wgd_dir[600], api[600];
	bool netstack;
	wgd *w;
	netstackd *ns;
	derpd_client *d;
	ctrld *c;
	bool started;
};

static atomic_bool netstack_taken;
static atomic_uint instances;

const char *
tk_node_bus_url(const tk_node *n, const char *bus)
{
	for (size_t i = 0; i < NBUS; i++)
		if (strcmp(bus_names[i], bus) == 0)
			return n->url[i];
	return NULL;
}

const char *
tk_node_api_path(const tk_node *n)
{
	return n->netstack ? n->api : NULL;
}

static int
subdir(char *out, size_t cap, const char *dir, const char *name, char *err,
    size_t errlen)
{
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap) {
		snprintf(err, errlen, "state directory '%s': longer than %zu "
		    "bytes", dir, cap - 16);
		return TK_EINVAL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "state directory '%s': %s", dir,
		    strerror(errno));
		return tk_err_sys(errno);
	}
	return 0;
}

int
tk_node_new(tk_node **out, const tk_node_config *cfg, char *err, size_t errlen)
{
	tk_node *n;
	char e[400] = "";
	int rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (cfg->control_url == NULL || cfg->state_dir == NULL) {
		snprintf(err, errlen, "a node needs a control URL (http://host:port "
		    "or https://host) and a state directory");
		return TK_EINVAL;
	}
	if ((n = tk_calloc(1, sizeof(*n))) == NULL)
		return TK_ENOMEM;
	n->netstack = !cfg->no_netstack;
	if (n->netstack && atomic_exchange(&netstack_taken, true)) {
		tk_free(n);
		snprintf(err, errlen, "one node with a netstack per process (lwIP "
		    "keeps global state); this process has one already");
		return TK_EEXIST;
	}
	unsigned inst = atomic_fetch_add(&instances, 1);
	for (size_t i = 0; i < NBUS; i++) {
		int k = cfg->bus_dir != NULL ?
		    snprintf(n->url[i], sizeof(n->url[i]), "ipc://%s/%s",
			cfg->bus_dir, bus_names[i]) :
		    snprintf(n->url[i], sizeof(n->url[i]), "inproc://tk%ld-%u/%s",
			(long)getpid(), inst, bus_names[i]);
		if (k < 0 || (size_t)k >= sizeof(n->url[i])) {
			snprintf(err, errlen, "bus directory '%s': too long",
			    cfg->bus_dir);
			rv = TK_EINVAL;
			goto fail;
		}
	}
	if (cfg->bus_dir != NULL && mkdir(cfg->bus_dir, 0700) != 0 &&
	    errno != EEXIST) {
		snprintf(err, errlen, "bus directory '%s': %s", cfg->bus_dir,
		    strerror(errno));
		rv = tk_err_sys(errno);
		goto fail;
	}
	if ((rv = subdir(n->ctrld_dir, sizeof(n->ctrld_dir), cfg->state_dir,
		 "ctrld", err, errlen)) != 0 ||
	    (rv = subdir(n->wgd_dir, sizeof(n->wgd_dir), cfg->state_dir, "wgd",
		 err, errlen)) != 0)
		goto fail;
	if (cfg->api_path != NULL)
		snprintf(n->api, sizeof(n->api), "%s", cfg->api_path);
	else
		snprintf(n->api, sizeof(n->api), "%s/netstackd.sock",
		    cfg->bus_dir ? cfg->bus_dir : cfg->state_dir);

	wgd_config wc = { .state_dir = n->wgd_dir,
		.pub_url = tk_node_bus_url(n, TK_BUS_WGD_PUB),
		.rpc_url = tk_node_bus_url(n, TK_BUS_WGD_RPC),
		.ctrld_pub_url = tk_node_bus_url(n, TK_BUS_CTRLD_PUB),
		.ctrld_rpc_url = tk_node_bus_url(n, TK_BUS_CTRLD_RPC),
		.pkt_url = tk_node_bus_url(n, TK_BUS_WGD_PKT),
		.derp_url = tk_node_bus_url(n, TK_BUS_WGD_DERP),
		.listen_port = cfg->listen_port };
	if ((rv = wgd_new(&n->w, &wc, e, sizeof(e))) != 0) {
		snprintf(err, errlen, "wgd: %s", e);
		goto fail;
	}
	if (n->netstack) {
		ns_config nc = { .pkt_url = tk_node_bus_url(n, TK_BUS_WGD_PKT),
			.ctrld_pub_url = tk_node_bus_url(n, TK_BUS_CTRLD_PUB),
			.ctrld_rpc_url = tk_node_bus_url(n, TK_BUS_CTRLD_RPC),
			.rpc_url = tk_node_bus_url(n, TK_BUS_NETSTACKD_RPC),
			.api_path = n->api, .proxy_user = cfg->proxy_user,
			.proxy_pass = cfg->proxy_pass };
		if ((rv = ns_new(&n->ns, &nc, e, sizeof(e))) != 0) {
			snprintf(err, errlen, "netstackd: %s", e);
			goto fail;
		}
	}
	derpd_client_config dc = {
		.pub_url = tk_node_bus_url(n, TK_BUS_DERPD_PUB),
		.rpc_url = tk_node_bus_url(n, TK_BUS_DERPD_RPC),
		.ctrld_pub_url = tk_node_bus_url(n, TK_BUS_CTRLD_PUB),
		.ctrld_rpc_url = tk_node_bus_url(n, TK_BUS_CTRLD_RPC),
		.wgd_pub_url = tk_node_bus_url(n, TK_BUS_WGD_PUB),
		.wgd_rpc_url = tk_node_bus_url(n, TK_BUS_WGD_RPC),
		.pkt_url = tk_node_bus_url(n, TK_BUS_WGD_DERP),
		.plain_http = cfg->derp_plain_http, .ca_file = cfg->ca_file,
		.home_region = cfg->home_region };
	if ((rv = derpd_client_new(&n->d, &dc, e, sizeof(e))) != 0) {
		snprintf(err, errlen, "derpd: %s", e);
		goto fail;
	}
	ctrld_config cc = { .control_url = cfg->control_url,
		.ca_file = cfg->ca_file, .auth_key = cfg->auth_key,
		.hostname = cfg->hostname, .ephemeral = cfg->ephemeral,
		.advertise_tags = cfg->advertise_tags, .state_dir = n->ctrld_dir,
		.start_down = cfg->start_down, .no_accept_dns = cfg->no_accept_dns,
		.prefs_locked = cfg->prefs_locked,
		.pub_url = tk_node_bus_url(n, TK_BUS_CTRLD_PUB),
		.rpc_url = tk_node_bus_url(n, TK_BUS_CTRLD_RPC),
		.wgd_pub_url = tk_node_bus_url(n, TK_BUS_WGD_PUB),
		.wgd_rpc_url = tk_node_bus_url(n, TK_BUS_WGD_RPC),
		.derpd_pub_url = tk_node_bus_url(n, TK_BUS_DERPD_PUB),
		.derpd_rpc_url = tk_node_bus_url(n, TK_BUS_DERPD_RPC) };
	if ((rv = ctrld_new(&n->c, &cc, e, sizeof(e))) != 0) {
		snprintf(err, errlen, "ctrld: %s", e);
		goto fail;
	}
	*out = n;
	return 0;
fail:
	if (err != NULL && errlen > 0 && err[0] == '\0')
		snprintf(err, errlen, "%s", tk_strerror(rv));
	tk_node_free(n);
	return rv;
}

int
tk_node_start(tk_node *n, char *err, size_t errlen)
{
	int rv;

	if (n->started)
		return TK_ESTATE;
	if ((rv = wgd_start(n->w)) != 0) {
		snprintf(err, errlen, "wgd: %s", tk_strerror(rv));
		return rv;
	}
	if (n->ns != NULL && (rv = ns_start(n->ns)) != 0) {
		snprintf(err, errlen, "netstackd: %s", tk_strerror(rv));
		goto fail_w;
	}
	if ((rv = derpd_client_start(n->d)) != 0) {
		snprintf(err, errlen, "derpd: %s", tk_strerror(rv));
		goto fail_ns;
	}
	if ((rv = ctrld_start(n->c)) != 0) {
		snprintf(err, errlen, "ctrld: %s", tk_strerror(rv));
		goto fail_d;
	}
	n->started = true;
	TK_INFO(SUBSYS, "up: wgd, %sderpd, ctrld on %s", n->ns ? "netstackd, " : "",
	    n->url[0]);
	return 0;
fail_d:
	derpd_client_stop(n->d);
fail_ns:
	if (n->ns != NULL)
		ns_stop(n->ns);
fail_w:
	wgd_stop(n->w);
	return rv;
}

int
tk_node_proxy_adopt(tk_node *n, int fd)
{
	if (n == NULL || n->ns == NULL || !n->started)
		return TK_ESTATE;
	return ns_proxy_adopt_socks5(n->ns, fd);
}

void
tk_node_stop(tk_node *n)
{
	if (n == NULL || !n->started)
		return;
	ctrld_stop(n->c);
	derpd_client_stop(n->d);
	if (n->ns != NULL)
		ns_stop(n->ns);
	wgd_stop(n->w);
	n->started = false;
}

void
tk_node_free(tk_node *n)
{
	if (n == NULL)
		return;
	tk_node_stop(n);
	ctrld_free(n->c);
	derpd_client_free(n->d);
	ns_free(n->ns);
	wgd_free(n->w);
	if (n->netstack)
		atomic_store(&netstack_taken, false);
	tk_free(n);
}
