/*
 * The native node (tailkit.h): settings, start/stop of the node assembly
 * (tk/node.h), and a watcher thread that follows the node's status and
 * queues events behind an eventfd.
 *
 * The watcher polls the in-process LocalAPI status (the same answer Go's
 * `tailscale status --json` gets from tailkitd) every POLL_MS without
 * peers and every PEERS_EVERY-th time with them: the state derives from
 * the live components as everywhere in tailkit, and the poll costs two
 * bus round trips inside the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "embed_int.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topics.h"
#include "tk/buf.h"
#include "tk/err.h"
#include "tk/localapi.h"
#include "tk/log.h"

#define POLL_MS 50
#define PEERS_EVERY 10

static _Thread_local char lasterr[512];

int
tkx_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lasterr, sizeof(lasterr), fmt, ap);
	va_end(ap);
	return -err;
}

const char *
tkx_lasterr(void)
{
	return lasterr;
}

int
tkx_errno(int e)
{
	if ((e & TK_ERANGE_MASK) == TK_ESYS)
		return -(e & TK_ECODE_MASK);
	switch (e) {
	case TK_ENOMEM: return -ENOMEM;
	case TK_EINVAL: return -EINVAL;
	case TK_EAGAIN: return -EAGAIN;
	case TK_ETIMEDOUT: return -ETIMEDOUT;
	case TK_ENOENT: return -ENOENT;
	case TK_EEXIST: return -EEXIST;
	case TK_ESTATE: return -EBUSY;
	case TK_EPERM: return -EPERM;
	case TK_ENOTSUP: return -ENOTSUP;
	default: return -EIO;
	}
}

TKX_API int
tailkit_errmsg(char *buf, size_t len)
{
	if (buf != NULL && len > 0)
		snprintf(buf, len, "%s", lasterr);
	return (int)strlen(lasterr);
}

void
tkx_cred(char out[TKX_CRED_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[TKX_CRED_LEN / 2];

	while (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		;
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[TKX_CRED_LEN] = '\0';
}

/* ---- logging (process-wide) -------------------------------------------- */

static int log_fd = 2;

static void
log_sink(void *arg, int level, const char *subsys, const char *msg)
{
	char line[1200];
	int fd = __atomic_load_n(&log_fd, __ATOMIC_RELAXED);
	int n;

	(void)arg;
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "tailkit %s %s: %s\n",
	    tk_log_level_name(level), subsys, msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	(void)!write(fd, line, (size_t)n);
}

/* ---- the node ------------------------------------------------------------ */

TKX_API int
tailkit_new(tailkit **out)
{
	tailkit *tk;

	if (out == NULL)
		return tkx_fail(EINVAL, "tailkit_new: out is NULL");
	if ((tk = calloc(1, sizeof(*tk))) == NULL)
		return tkx_fail(ENOMEM, "tailkit_new: out of memory");
	if ((tk->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		int e = errno;
		free(tk);
		return tkx_fail(e, "eventfd: %s", strerror(e));
	}
	pthread_mutex_init(&tk->mu, NULL);
	pthread_cond_init(&tk->cv, NULL);
	pthread_rwlock_init(&tk->nl, NULL);
	tk->state = TAILKIT_STATE_STOPPED;
	snprintf(tk->proxy_user, sizeof(tk->proxy_user), "tsnet");
	tkx_cred(tk->proxy_pass);
	*out = tk;
	return 0;
}

static int
set_str(char **slot, const char *v)
{
	char *c = NULL;

	if (v != NULL && (c = strdup(v)) == NULL)
		return tkx_fail(ENOMEM, "out of memory");
	free(*slot);
	*slot = c;
	return 0;
}

static int
set_bool(bool *slot, const char *key, const char *v)
{
	if (v == NULL || strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		*slot = false;
	else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*slot = true;
	else
		return tkx_fail(EINVAL, "%s: \"%s\": expected \"0\" or \"1\"",
		    key, v);
	return 0;
}

TKX_API int
tailkit_set(tailkit *tk, const char *key, const char *value)
{
	int rv;

	if (tk == NULL || key == NULL)
		return tkx_fail(EINVAL, "tailkit_set: NULL node or key");
	pthread_mutex_lock(&tk->mu);
	if (tk->started) {
		pthread_mutex_unlock(&tk->mu);
		return tkx_fail(EBUSY, "tailkit_set %s: the node runs; settings "
		    "apply before tailkit_start", key);
	}
	if (strcmp(key, "control_url") == 0)
		rv = set_str(&tk->control_url, value);
	else if (strcmp(key, "state_dir") == 0)
		rv = set_str(&tk->state_dir, value);
	else if (strcmp(key, "authkey") == 0)
		rv = set_str(&tk->authkey, value);
	else if (strcmp(key, "hostname") == 0)
		rv = set_str(&tk->hostname, value);
	else if (strcmp(key, "advertise_tags") == 0)
		rv = set_str(&tk->tags, value);
	else if (strcmp(key, "ca_file") == 0)
		rv = set_str(&tk->ca_file, value);
	else if (strcmp(key, "ephemeral") == 0)
		rv = set_bool(&tk->ephemeral, key, value);
	else if (strcmp(key, "derp_plain_http") == 0)
		rv = set_bool(&tk->derp_plain_http, key, value);
	else if (strcmp(key, "log_level") == 0) {
		int l = value ? tk_log_level_parse(value) : TK_LOG_INFO;
		if (l < 0)
			rv = tkx_fail(EINVAL, "log_level \"%s\": expected err, "
			    "warn, info, debug or trace", value);
		else {
			tk_log_set_level(l);
			rv = 0;
		}
	} else
		rv = tkx_fail(EINVAL, "tailkit_set: unknown key \"%s\"; accepted: "
		    "control_url, state_dir, authkey, hostname, ephemeral, "
		    "advertise_tags, ca_file, derp_plain_http, log_level", key);
	pthread_mutex_unlock(&tk->mu);
	return rv;
}

TKX_API int
tailkit_set_logfd(tailkit *tk, int fd)
{
	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_set_logfd: NULL node");
	if (fd < -1 || (fd >= 0 && fcntl(fd, F_GETFD) < 0))
		return tkx_fail(EBADF, "tailkit_set_logfd: %d is not an open "
		    "descriptor (-1 discards the logs)", fd);
	__atomic_store_n(&log_fd, fd, __ATOMIC_RELAXED);
	tk_log_set_sink(log_sink, NULL);
	return 0;
}

static void
ev_push(tailkit *tk, int type, const char *text)
{
	unsigned i;
	uint64_t one = 1;

	if (tk->ev_count == TKX_NEVENTS) { /* drop the oldest */
		tk->ev_head = (tk->ev_head + 1) % TKX_NEVENTS;
		tk->ev_count--;
	}
	i = (tk->ev_head + tk->ev_count) % TKX_NEVENTS;
	tk->ev[i].type = type;
	tk->ev[i].state = tk->state;
	snprintf(tk->ev[i].text, sizeof(tk->ev[i].text), "%s", text ? text : "");
	tk->ev_count++;
	(void)!write(tk->evfd, &one, sizeof(one));
}

TKX_API int
tailkit_event_fd(tailkit *tk)
{
	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_event_fd: NULL node");
	return tk->evfd;
}

TKX_API int
tailkit_next_event(tailkit *tk, tailkit_event *ev)
{
	uint64_t v;

	if (tk == NULL || ev == NULL)
		return tkx_fail(EINVAL, "tailkit_next_event: NULL argument");
	pthread_mutex_lock(&tk->mu);
	if (tk->ev_count == 0) {
		(void)!read(tk->evfd, &v, sizeof(v)); /* not readable any more */
		pthread_mutex_unlock(&tk->mu);
		return 0;
	}
	*ev = tk->ev[tk->ev_head];
	tk->ev_head = (tk->ev_head + 1) % TKX_NEVENTS;
	if (--tk->ev_count == 0)
		(void)!read(tk->evfd, &v, sizeof(v));
	pthread_mutex_unlock(&tk->mu);
	return 1;
}

static const char *const state_names[] = { "NoState", "NeedsLogin",
	"NeedsMachineAuth", "Starting", "Running", "Stopped" };

TKX_API const char *
tailkit_state_name(int state)
{
	if (state < 0 || state > TAILKIT_STATE_STOPPED)
		return "unknown";
	return state_names[state];
}

static int
state_parse(const char *s)
{
	for (int i = 0; s != NULL && i <= TAILKIT_STATE_STOPPED; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return TAILKIT_STATE_NOSTATE;
}

int
tkx_localapi(tailkit *tk, const char *req, size_t n, char **resp,
    size_t *resp_len)
{
	pthread_rwlock_rdlock(&tk->nl);
	if (tk->node == NULL) {
		pthread_rwlock_unlock(&tk->nl);
		return tkx_fail(ENOTCONN, "the node is not started");
	}
	tk_localapi_handle(tk->node, req, n, resp, resp_len);
	pthread_rwlock_unlock(&tk->nl);
	return *resp != NULL ? 0 : tkx_fail(ENOMEM, "out of memory");
}

/* The status body (JSON) of the in-process LocalAPI. */
static json_t *
status_get(tailkit *tk, bool peers)
{
	static const char rq[] = "GET /localapi/v0/status HTTP/1.1\r\n\r\n";
	static const char rq_np[] =
	    "GET /localapi/v0/status?peers=false HTTP/1.1\r\n\r\n";
	char *resp;
	size_t rl;
	json_t *j = NULL;

	if (tkx_localapi(tk, peers ? rq : rq_np, peers ? sizeof(rq) - 1 :
	    sizeof(rq_np) - 1, &resp, &rl) != 0)
		return NULL;
	char *body = strstr(resp, "\r\n\r\n");
	if (body != NULL && strncmp(resp, "HTTP/1.1 200", 12) == 0)
		j = json_loadb(body + 4, rl - (size_t)(body + 4 - resp), 0, NULL);
	free(resp);
	return j;
}

static void
ips_of(json_t *st, char *out, size_t cap)
{
	json_t *a = json_object_get(st, "TailscaleIPs"), *v;
	size_t i, n = 0;

	out[0] = '\0';
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		if (s != NULL && n + strlen(s) + 2 < cap)
			n += (size_t)snprintf(out + n, cap - n, "%s%s",
			    n ? "," : "", s);
	}
}

/* FNV-1a over the peers' keys and addresses: changes when a peer comes,
 * goes or changes address. */
static uint64_t
peers_hash(json_t *st)
{
	uint64_t h = 1469598103934665603ULL;
	const char *k;
	json_t *p;

	json_object_foreach(json_object_get(st, "Peer"), k, p) {
		char *d = json_dumps(json_object_get(p, "TailscaleIPs"), 0);
		for (const char *s = k; *s; s++)
			h = (h ^ (uint8_t)*s) * 1099511628211ULL;
		for (const char *s = d ? d : ""; *s; s++)
			h = (h ^ (uint8_t)*s) * 1099511628211ULL;
		free(d);
	}
	return h;
}

/* Whether netstackd has the node's own addresses: control may say
 * Running a moment before netstackd applied the netmap, and "Running"
 * promises a node that can listen and dial. */
static bool
netstack_ready(tailkit *tk)
{
	Tk__Bus__V1__StatusResponse *r = NULL;
	tk_buf b;
	bool ok = false;

	tk_buf_init(&b);
	pthread_rwlock_rdlock(&tk->nl);
	if (tk->node != NULL && tk_rpc_call_sync(tk_node_bus_url(tk->node,
	    TK_BUS_NETSTACKD_RPC), NULL, TK_METHOD_STATUS, NULL, 0, 2000,
	    &b) == 0)
		r = tk__bus__v1__status_response__unpack(NULL, b.len, b.data);
	pthread_rwlock_unlock(&tk->nl);
	ok = r != NULL && r->self != NULL && r->self->n_addresses > 0;
	if (r != NULL)
		tk__bus__v1__status_response__free_unpacked(r, NULL);
	tk_buf_fini(&b);
	return ok;
}

static void
observe(tailkit *tk, json_t *st, bool peers)
{
	int state = state_parse(json_string_value(json_object_get(st,
	    "BackendState")));

	if (state == TAILKIT_STATE_RUNNING && !tk->ns_ready) {
		if (!netstack_ready(tk))
			state = TAILKIT_STATE_STARTING;
		else
			tk->ns_ready = true; /* only the watcher writes it */
	}
	const char *url = json_string_value(json_object_get(st, "AuthURL"));
	char ips[sizeof(tk->ips)];

	ips_of(st, ips, sizeof(ips));
	pthread_mutex_lock(&tk->mu);
	if (!tk->stopping && state != tk->state) {
		tk->state = state;
		ev_push(tk, TAILKIT_EVENT_STATE, tailkit_state_name(state));
		pthread_cond_broadcast(&tk->cv);
	}
	if (url != NULL && strcmp(url, tk->login_url) != 0) {
		snprintf(tk->login_url, sizeof(tk->login_url), "%s", url);
		if (url[0] != '\0') {
			ev_push(tk, TAILKIT_EVENT_LOGIN_URL, url);
			/* as tsnet logs it: programs on libtailscale's
			 * API have no other way to see it */
			TK_INFO("embed", "To authenticate, visit: %s", url);
		}
	}
	if (strcmp(ips, tk->ips) != 0) {
		snprintf(tk->ips, sizeof(tk->ips), "%s", ips);
		ev_push(tk, TAILKIT_EVENT_IPS, ips);
	}
	if (peers) {
		uint64_t h = peers_hash(st);
		if (h != tk->peers_hash) {
			tk->peers_hash = h;
			ev_push(tk, TAILKIT_EVENT_PEERS, "");
		}
	}
	pthread_mutex_unlock(&tk->mu);
}

static void *
watch(void *arg)
{
	tailkit *tk = arg;
	unsigned round = 0;

	for (;;) {
		bool peers = round++ % PEERS_EVERY == 0;
		json_t *st = status_get(tk, peers);
		if (st != NULL) {
			observe(tk, st, peers);
			json_decref(st);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&tk->mu);
		if (!tk->stopping)
			pthread_cond_timedwait(&tk->cv, &tk->mu, &ts);
		bool stop = tk->stopping;
		pthread_mutex_unlock(&tk->mu);
		if (stop)
			return NULL;
	}
}

TKX_API int
tailkit_start(tailkit *tk)
{
	char err[600] = "";
	sigset_t all, old;
	int rv;

	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_start: NULL node");
	pthread_mutex_lock(&tk->mu);
	if (tk->started) {
		pthread_mutex_unlock(&tk->mu);
		return tkx_fail(EALREADY, "tailkit_start: the node runs already");
	}
	tk_node_config cfg = { .control_url = tk->control_url,
		.state_dir = tk->state_dir, .auth_key = tk->authkey,
		.hostname = tk->hostname, .advertise_tags = tk->tags,
		.ca_file = tk->ca_file, .ephemeral = tk->ephemeral,
		.derp_plain_http = tk->derp_plain_http,
		.proxy_user = tk->proxy_user, .proxy_pass = tk->proxy_pass };
	tk_node *n = NULL;
	/* Threads (ours, the components', nng's pool made on first use)
	 * start with every signal blocked, so signals reach the program's own
	 * threads only. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((rv = tk_node_new(&n, &cfg, err, sizeof(err))) != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_mutex_unlock(&tk->mu);
		if (rv == TK_EEXIST)
			return tkx_fail(EEXIST, "%s: one tailkit node per process "
			    "(stop and free the other first)", err);
		return tkx_fail(-tkx_errno(rv), "%s", err);
	}
	rv = tk_node_start(n, err, sizeof(err));
	if (rv == 0) {
		pthread_rwlock_wrlock(&tk->nl);
		tk->node = n;
		pthread_rwlock_unlock(&tk->nl);
		tk->stopping = false;
		tk->state = TAILKIT_STATE_NOSTATE;
		ev_push(tk, TAILKIT_EVENT_STATE, "NoState");
		tk->login_url[0] = tk->ips[0] = '\0';
		tk->peers_hash = 0;
		tk->ns_ready = false;
		if (pthread_create(&tk->watcher, NULL, watch, tk) == 0)
			tk->watching = true;
		tk->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_unlock(&tk->mu);
	if (rv != 0) {
		tk_node_free(n);
		return tkx_fail(-tkx_errno(rv), "%s", err);
	}
	if (!tk->watching) {
		tailkit_stop(tk);
		return tkx_fail(EAGAIN, "tailkit_start: no thread for the watcher");
	}
	return 0;
}

TKX_API int
tailkit_wait_running(tailkit *tk, int timeout_ms)
{
	struct timespec dl;
	int rv = 0;

	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_wait_running: NULL node");
	clock_gettime(CLOCK_REALTIME, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&tk->mu);
	for (;;) {
		if (!tk->started || tk->stopping) {
			rv = tkx_fail(ECANCELED, "the node was stopped (or never "
			    "started)");
			break;
		}
		if (tk->state == TAILKIT_STATE_RUNNING)
			break;
		int w = timeout_ms >= 0 ?
		    pthread_cond_timedwait(&tk->cv, &tk->mu, &dl) :
		    pthread_cond_wait(&tk->cv, &tk->mu);
		if (w == ETIMEDOUT && tk->state != TAILKIT_STATE_RUNNING) {
			rv = tkx_fail(ETIMEDOUT, "not running after %d ms (state "
			    "%s%s%s)", timeout_ms, tailkit_state_name(tk->state),
			    tk->login_url[0] ? "; log in at " : "", tk->login_url);
			break;
		}
	}
	pthread_mutex_unlock(&tk->mu);
	return rv;
}

TKX_API int
tailkit_stop(tailkit *tk)
{
	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_stop: NULL node");
	pthread_mutex_lock(&tk->mu);
	if (!tk->started || tk->stopping) {
		pthread_mutex_unlock(&tk->mu);
		return 0;
	}
	tk->stopping = true;
	pthread_cond_broadcast(&tk->cv);
	pthread_mutex_unlock(&tk->mu);
	if (tk->watching)
		pthread_join(tk->watcher, NULL);
	tk->watching = false;
	pthread_rwlock_wrlock(&tk->nl);
	tk_node_free(tk->node); /* stops it first */
	tk->node = NULL;
	pthread_rwlock_unlock(&tk->nl);
	pthread_mutex_lock(&tk->mu);
	tk->started = false;
	tk->stopping = false;
	tk->state = TAILKIT_STATE_STOPPED;
	ev_push(tk, TAILKIT_EVENT_STATE, "Stopped");
	pthread_cond_broadcast(&tk->cv);
	pthread_mutex_unlock(&tk->mu);
	return 0;
}

TKX_API void
tailkit_free(tailkit *tk)
{
	if (tk == NULL)
		return;
	tailkit_stop(tk);
	close(tk->evfd);
	free(tk->control_url);
	free(tk->state_dir);
	if (tk->authkey != NULL)
		explicit_bzero(tk->authkey, strlen(tk->authkey));
	free(tk->authkey);
	free(tk->hostname);
	free(tk->tags);
	free(tk->ca_file);
	explicit_bzero(tk->proxy_pass, sizeof(tk->proxy_pass));
	pthread_rwlock_destroy(&tk->nl);
	pthread_cond_destroy(&tk->cv);
	pthread_mutex_destroy(&tk->mu);
	free(tk);
}

TKX_API int
tailkit_state(tailkit *tk)
{
	int s;

	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_state: NULL node");
	pthread_mutex_lock(&tk->mu);
	s = tk->state;
	pthread_mutex_unlock(&tk->mu);
	return s;
}

/* snprintf-like copy: the length, or -ERANGE when it does not fit. */
static int
copy_out(char *buf, size_t len, const char *s, const char *what)
{
	size_t n = strlen(s);

	if (buf == NULL || len == 0)
		return tkx_fail(ERANGE, "%s: no buffer (%zu bytes needed)", what,
		    n + 1);
	snprintf(buf, len, "%s", s);
	if (n >= len)
		return tkx_fail(ERANGE, "%s: %zu bytes needed, %zu given", what,
		    n + 1, len);
	return (int)n;
}

TKX_API int
tailkit_ips(tailkit *tk, char *buf, size_t len)
{
	char ips[sizeof(tk->ips)];

	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_ips: NULL node");
	pthread_mutex_lock(&tk->mu);
	memcpy(ips, tk->ips, sizeof(ips));
	pthread_mutex_unlock(&tk->mu);
	return copy_out(buf, len, ips, "tailkit_ips");
}

TKX_API int
tailkit_status_json(tailkit *tk, char *buf, size_t len)
{
	json_t *st;
	char *s;
	int rv;

	if (tk == NULL)
		return tkx_fail(EINVAL, "tailkit_status_json: NULL node");
	if ((st = status_get(tk, true)) == NULL)
		return tk->node == NULL ? -ENOTCONN :
		    tkx_fail(EIO, "the node's status is not available");
	s = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	if (s == NULL)
		return tkx_fail(ENOMEM, "out of memory");
	rv = copy_out(buf, len, s, "tailkit_status_json");
	free(s);
	return rv;
}

int
tkx_api_path(tailkit *tk, char *path, size_t cap)
{
	const char *p;

	pthread_rwlock_rdlock(&tk->nl);
	p = tk->node ? tk_node_api_path(tk->node) : NULL;
	if (p != NULL)
		snprintf(path, cap, "%s", p);
	pthread_rwlock_unlock(&tk->nl);
	return p != NULL ? 0 : tkx_fail(ENOTCONN, "the node is not started");
}

int
tkx_proxy_adopt(tailkit *tk, int fd)
{
	int rv = TK_ESTATE;

	pthread_rwlock_rdlock(&tk->nl);
	if (tk->node != NULL)
		rv = tk_node_proxy_adopt(tk->node, fd);
	pthread_rwlock_unlock(&tk->nl);
	return rv == 0 ? 0 : tkx_fail(-tkx_errno(rv), "SOCKS5: %s",
	    tk_strerror(rv));
}
