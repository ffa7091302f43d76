/*
 * The ctrld instance: the loop thread (state, buses, netmap) and the
 * control thread (ts2021 sessions).  See include/ctrld/ctrld.h.
 */
#include <errno.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "ctlconn.h"
#include "ctrld/ctrld.h"
#include "mapstate.h"
#include "prefs.h"
#include "register.h"
#include "requests.h"
#include "tk/bus_rpc.h"
#include "tk/bus_status.h"
#include "tk/clock.h"
#include "tk/bus_topic.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/state.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"

#define SUBSYS	    "ctrld"
#define VERSION	    "0.1"
#define BACKOFF_MIN 1000
#define BACKOFF_MAX 30000
#define IDLE_MS	    120000 /* Go's map watchdog */

struct ctrld {
	char *url, *auth_key, *state_dir, *ca_file;
	char *pub_url, *rpc_url, *wgd_pub_url, *wgd_rpc_url;
	char *derpd_pub_url, *derpd_rpc_url;
	bool ephemeral;
	const tk_bus_tls *tls;
	ctrldi_url curl;

	tk_loop *loop;
	pthread_t loop_thr, ctl_thr;
	bool running;
	uint64_t started_ms;

	/* shared with the control thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool have_node, have_disco;
	tk_node_pub node_pub, old_node_pub;
	tk_disco_pub disco_pub;
	ctrldi_conn *conn;
	char registered_key[TK_KEY_TEXT_MAX]; /* node key last registered */
	/* lite updates: wgd's endpoints (JSON arrays) and pings to answer */
	char *eps_json, *ept_json;
	char *netinfo_json; /* Hostinfo.NetInfo from derpd's "derp" topic */
	bool working_udp;   /* NetInfo.WorkingUDP: wgd has a STUN endpoint */
	bool eps_dirty;
	char *ping_url;
	bool ping_noise;
	ctrldi_dial_plan dial_plan; /* the last ControlDialPlan */
	int wake; /* eventfd: the control thread has work during the stream */
	bool logout_req, logged_out;
	bool login_req; /* rpc "login": register at the next session */
	/* the effective prefs (prefs.h); the loop thread writes them, the
	 * control thread reads hostname, tags and want_running */
	ctrldi_prefs prefs;
	bool hostinfo_dirty; /* Hostname or tags edited: a lite update */

	/* control thread only */
	bool logged_in;	    /* registered in this run: reconnects only poll */
	uint64_t retry_ms;  /* HTTP 429: wait this long, not the backoff */
	tk_machine_priv mk;
	char log_id[65]; /* Hostinfo.BackendLogID (set once in ctrld_new) */
	tk_machine_pub server;
	bool have_server;
	ctrldi_dial_plan plan_cur; /* this session's copy of dial_plan */

	/* loop thread only */
	ctrldi_prefs prefs_default, prefs_edited; /* command line; user edits */
	unsigned prefs_mask; /* which fields of prefs_edited are set */
	bool prefs_locked;   /* ctrld_config.prefs_locked */
	tk_state *st;
	ctrldi_map *map;
	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *t_netmap;
	tk_topic_sub *keys_sub, *eps_sub, *derp_sub;
	tk_rpc_client *wgd_rpc; /* asks wgd for a new node key */
	bool rotating;
	tk_loop_timer *save_timer, *expiry_timer;
	bool dirty;
	bool expiry_noted; /* the self key's expiry is logged and in health */
	int state; /* tk.bus.v1.BackendState */
	char auth_url[512], last_error[300];
	uint64_t sessions, messages, bad_messages, deltas, saves;
	uint64_t keepalives, pings, lite_updates;
	bool bad_abort; /* the session ended because a message was refused */
};

/* --- loop-side events posted by the control thread ------------------------ */

enum ev_kind {
	EV_STREAM_START,
	EV_MAP,
	EV_ERROR,
	EV_AUTH_URL,
	EV_REGISTERED,
	EV_KEY_EXPIRED, /* register answered NodeKeyExpired; text: that key */
	EV_REFUSED	/* register refused (Error): not logged in */
};

typedef struct ev {
	ctrld *c;
	enum ev_kind kind;
	size_t n;
	char *json; /* EV_MAP: the MapResponse (n bytes), owned */
	char text[]; /* error or URL, NUL-terminated */
} ev;

static void on_event(void *arg);

static void
post(ctrld *c, enum ev_kind kind, const char *text, size_t n)
{
	ev *e = tk_malloc(sizeof(*e) + n + 1);

	if (e == NULL)
		return;
	e->c = c;
	e->kind = kind;
	e->n = n;
	e->json = NULL;
	if (n)
		memcpy(e->text, text, n);
	e->text[n] = '\0';
	if (tk_loop_post(c->loop, on_event, e) != 0)
		tk_free(e);
}

/* A MapResponse to the loop without a copy: the event takes json. */
static void
post_map(ctrld *c, char *json, size_t n)
{
	ev *e = tk_malloc(sizeof(*e) + 1);

	if (e == NULL) {
		tk_free(json);
		return;
	}
	e->c = c;
	e->kind = EV_MAP;
	e->n = n;
	e->json = json;
	e->text[0] = '\0';
	if (tk_loop_post(c->loop, on_event, e) != 0) {
		tk_free(json);
		tk_free(e);
	}
}

static void
abort_session(ctrld *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->conn != NULL)
		ctrldi_conn_abort(c->conn);
	pthread_mutex_unlock(&c->mu);
}

/* The prefs as the loop thread sees them (it is their only writer). */
static const ctrldi_prefs *
prefs_of(const ctrld *c)
{
	return &c->prefs;
}

/* A map-state delta, as the prefs let it through (prefs.h: the view). */
static void
publish_delta(ctrld *c, const tk_buf *d)
{
	tk_buf v;
	bool empty = false;

	tk_buf_init(&v);
	if (!ctrldi_prefs_filtering(prefs_of(c)))
		tk_topic_publish(c->t_netmap, d->data, d->len);
	else if (ctrldi_view_delta(prefs_of(c), d->data, d->len, &v, &empty) == 0 &&
	    !empty)
		tk_topic_publish(c->t_netmap, v.data, v.len);
	tk_buf_fini(&v);
	c->deltas++;
	if (!c->dirty) {
		c->dirty = true;
		tk_loop_timer_arm(c->save_timer, TK_NSEC_PER_SEC, 0);
	}
}

static void
rotated(void *arg, int status, const char *error, const uint8_t *body,
    size_t len)
{
	ctrld *c = arg;

	(void)body, (void)len;
	if (status != 0) {
		c->rotating = false;
		snprintf(c->last_error, sizeof(c->last_error), "node key expired; wgd "
		    "could not rotate it: %s", error ? error : tk_strerror(status));
	}
	/* on success wgd publishes the new key; keys_apply re-registers */
}

/*
 * A new node key after expiry: wgd makes it (its keys topic then brings it
 * here, and the session re-registers with OldNodeKey); standalone, ctrld
 * makes its own.
 */
static void
rotate_node_key(ctrld *c)
{
	if (c->rotating)
		return;
	c->rotating = true;
	if (c->wgd_rpc != NULL) {
		if (tk_rpc_call(c->wgd_rpc, TK_METHOD_ROTATE_NODE_KEY, NULL, 0,
		    5 * TK_NSEC_PER_SEC, rotated, c) != 0)
			c->rotating = false;
		return;
	}
	tk_node_priv nk;
	tk_node_pub np;
	tk_key_generate(nk.b, NULL);
	if (tk_state_put_secret(c->st, "node_private_key", nk.b, 32) != 0) {
		c->rotating = false;
		return;
	}
	tk_node_priv_public(&nk, &np);
	tk_secure_zero(&nk, sizeof(nk));
	pthread_mutex_lock(&c->mu);
	c->old_node_pub = c->node_pub;
	c->node_pub = np;
	if (c->conn != NULL)
		ctrldi_conn_abort(c->conn);
	pthread_mutex_unlock(&c->mu);
	TK_INFO(SUBSYS, "node key rotated; registering the new one");
}

/*
 * ipnlocal: entering Running resets the login URL (resetAuthURLLocked).
 * nextStateLocked: WantRunning false with a node key and not logged out
 * is Stopped, whatever the map says.
 */
static void
set_state(ctrld *c, int state)
{
	pthread_mutex_lock(&c->mu);
	bool stopped = !c->prefs.want_running && !c->logged_out &&
	    c->registered_key[0] != '\0';
	pthread_mutex_unlock(&c->mu);
	if (stopped)
		state = TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STOPPED;
	if (state == TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING &&
	    c->state != state)
		c->auth_url[0] = '\0';
	c->state = state;
}

/*
 * The state the self node implies (ipnlocal nextStateLocked): an expired
 * key (the server's Expired flag, or KeyExpiry passed by the local clock,
 * as direct.go checks before each login) is NEEDS_LOGIN and gets a new key
 * (registered with OldNodeKey); MachineAuthorized false (device approval)
 * is NEEDS_MACHINE_AUTH; otherwise RUNNING.
 */
static void
evaluate_self(ctrld *c)
{
	ctrldi_self self;

	if (!ctrldi_map_self(c->map, &self))
		return;
	if (self.expired || self.key_expired) {
		if (!c->expiry_noted) {
			c->expiry_noted = true;
			snprintf(c->last_error, sizeof(c->last_error),
			    self.expired ? "node key expired at the control "
			    "server: re-authentication needed" : "node key "
			    "expired (its KeyExpiry has passed): "
			    "re-authentication needed");
			TK_WARN(SUBSYS, "%s", c->last_error);
		}
		set_state(c, TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN);
		pthread_mutex_lock(&c->mu);
		bool current = memcmp(self.key, c->node_pub.b, 32) == 0;
		pthread_mutex_unlock(&c->mu);
		if (current) /* not rotated yet */
			rotate_node_key(c);
		return;
	}
	if (c->expiry_noted) {
		c->expiry_noted = false;
		c->last_error[0] = '\0';
		c->rotating = false;
	}
	set_state(c, self.machine_authorized ?
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING :
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_MACHINE_AUTH);
}

static int64_t
wall_ms(void)
{
	return (int64_t)(tk_clock_real_ns(NULL) / 1000000u);
}

/*
 * Peers' and self's key expiry as time passes (ipnlocal/expiry.go): after
 * every map message and when the next KeyExpiry comes.
 */
static void
run_expiry(ctrld *c)
{
	tk_buf d;
	bool changed = false;
	int64_t next = 0;

	tk_buf_init(&d);
	if (ctrldi_map_expire(c->map, &d, &changed, &next) == 0 && changed) {
		TK_INFO(SUBSYS, "peers past their KeyExpiry expired locally");
		publish_delta(c, &d);
	}
	tk_buf_fini(&d);
	evaluate_self(c);
	if (next > 0) {
		int64_t wait = next - wall_ms() + 10;
		if (wait < 10)
			wait = 10;
		if (wait > 3600 * 1000)
			wait = 3600 * 1000; /* look again in an hour */
		tk_loop_timer_arm(c->expiry_timer, (uint64_t)wait * 1000000u, 0);
	}
}

static void
on_expiry(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop, (void)t;
	run_expiry(arg);
}

static void
on_event(void *arg)
{
	ev *e = arg;
	ctrld *c = e->c;

	switch (e->kind) {
	case EV_STREAM_START:
		c->sessions++;
		ctrldi_map_stream_reset(c->map);
		/* Go stays Running across map reconnects */
		if (c->state == TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NO_STATE ||
		    c->state == TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN)
			set_state(c,
			    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STARTING);
		break;
	case EV_MAP: {
		tk_buf d;
		bool changed = false;
		char err[256] = "";
		c->messages++;
		tk_buf_init(&d);
		ctrldi_map_info info;
		memset(&info, 0, sizeof(info));
		/* the text is freed once decoded: a large netmap's text,
		 * records and delta are never all alive together */
		int rv = ctrldi_map_apply_owned(c->map, e->json, e->n, &d,
		    &changed, &info, err, sizeof(err));
		e->json = NULL;
		if (rv == 0) {
			if (info.keepalive)
				c->keepalives++;
			if (changed)
				publish_delta(c, &d);
			run_expiry(c); /* the state, then the URL it keeps */
			if (info.has_dial_plan) {
				/* direct.go: stored for the next dial */
				pthread_mutex_lock(&c->mu);
				c->dial_plan = info.dial_plan;
				pthread_mutex_unlock(&c->mu);
				TK_INFO(SUBSYS, "control dial plan: %u candidates",
				    info.dial_plan.n);
			}
			if (info.pop_browser_url != NULL) {
				snprintf(c->auth_url, sizeof(c->auth_url), "%s",
				    info.pop_browser_url);
				TK_INFO(SUBSYS, "control asks to open %s",
				    info.pop_browser_url);
			}
			if (info.has_ping && info.ping.types != NULL &&
			    info.ping.types[0] == '\0') {
				/* answered by the control thread (blocking I/O) */
				uint64_t one = 1;
				pthread_mutex_lock(&c->mu);
				tk_free(c->ping_url);
				c->ping_url = tk_strdup(info.ping.url);
				c->ping_noise = info.ping.url_is_noise;
				pthread_mutex_unlock(&c->mu);
				if (write(c->wake, &one, sizeof(one)) < 0)
					(void)0;
				c->pings++;
			}
			ctrldi_map_info_fini(&info);
		}
		if (rv != 0) {
			c->bad_messages++;
			snprintf(c->last_error, sizeof(c->last_error),
			    "bad MapResponse (%zu bytes): %s; session dropped", e->n, err);
			TK_WARN(SUBSYS, "%s", c->last_error);
			c->bad_abort = true;
			abort_session(c); /* the netmap stays as published */
		}
		tk_buf_fini(&d);
		break;
	}
	case EV_ERROR:
		if (c->bad_abort) /* the refused message is the reason */
			c->bad_abort = false;
		else
			snprintf(c->last_error, sizeof(c->last_error), "%s", e->text);
		break;
	case EV_AUTH_URL:
		snprintf(c->auth_url, sizeof(c->auth_url), "%s", e->text);
		set_state(c, TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN);
		break;
	case EV_REGISTERED:
		tk_state_put_text(c->st, "registered_node_key", e->text);
		if (e->text[0] == '\0') { /* logged out */
			set_state(c,
			    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN);
			tk_state_put_int(c->st, "logged_out", 1);
		} else {
			c->auth_url[0] = '\0'; /* the login finished */
		}
		break;
	case EV_REFUSED: /* ipn: not logged in; health says why */
		set_state(c, TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN);
		break;
	case EV_KEY_EXPIRED: {
		/* direct.go: NodeKeyExpired -> mustRegen: a new key, registered
		 * with OldNodeKey, unless that key was rotated already */
		char cur[TK_KEY_TEXT_MAX];
		pthread_mutex_lock(&c->mu);
		tk_key_format(cur, "nodekey:", c->node_pub.b);
		pthread_mutex_unlock(&c->mu);
		snprintf(c->last_error, sizeof(c->last_error), "the control server "
		    "says the node key has expired: re-authentication needed");
		set_state(c, TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN);
		if (strcmp(cur, e->text) == 0) {
			c->rotating = false;
			rotate_node_key(c);
		}
		break;
	}
	}
	tk_free(e->json);
	tk_free(e);
}

static void
on_save(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	ctrld *c = arg;
	tk_buf b;

	(void)loop, (void)t;
	c->dirty = false;
	tk_buf_init(&b);
	if (ctrldi_map_snapshot(c->map, &b) == 0 &&
	    tk_state_put_blob(c->st, "netmap", b.data, b.len) == 0)
		c->saves++;
	tk_buf_fini(&b);
}

/* --- bus ------------------------------------------------------------------- */

/* The map state's netmap as the prefs let it through. */
static int
view_snapshot(ctrld *c, tk_buf *out)
{
	tk_buf b;
	int rv;

	if (!ctrldi_prefs_filtering(prefs_of(c)))
		return ctrldi_map_snapshot(c->map, out);
	tk_buf_init(&b);
	if ((rv = ctrldi_map_snapshot(c->map, &b)) == 0)
		rv = ctrldi_view_netmap(prefs_of(c), b.data, b.len, out);
	tk_buf_fini(&b);
	return rv;
}

static int
netmap_snapshot(void *arg, tk_buf *out)
{
	return view_snapshot(arg, out);
}

static int
keys_apply(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	ctrld *c = arg;
	Tk__Bus__V1__Keys *k = tk__bus__v1__keys__unpack(NULL, len, body);
	bool changed = false;

	(void)seq;
	if (k == NULL)
		return TK_EPROTO;
	pthread_mutex_lock(&c->mu);
	if (k->has_node_key && k->node_key.len == 32) {
		if (c->have_node && memcmp(c->node_pub.b, k->node_key.data, 32) != 0) {
			c->old_node_pub = c->node_pub; /* rotation: OldNodeKey */
			changed = true;
		}
		memcpy(c->node_pub.b, k->node_key.data, 32);
		c->have_node = true;
	}
	if (k->has_disco_key && k->disco_key.len == 32) {
		memcpy(c->disco_pub.b, k->disco_key.data, 32);
		c->have_disco = true;
	}
	pthread_cond_broadcast(&c->cv);
	if (changed && c->conn != NULL)
		ctrldi_conn_abort(c->conn); /* register the new key */
	pthread_mutex_unlock(&c->mu);
	tk__bus__v1__keys__free_unpacked(k, NULL);
	return 0;
}

/* wgd's endpoints: reported to control with a lite map update. */
static int
eps_apply(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	ctrld *c = arg;
	Tk__Bus__V1__Endpoints *e = tk__bus__v1__endpoints__unpack(NULL, len, body);
	json_t *eps, *types;
	uint64_t one = 1;

	(void)seq;
	if (e == NULL)
		return TK_EPROTO;
	char *eps_txt = NULL, *ept_txt = NULL;
	bool stun = false;
	int rv = 0;
	eps = json_array();
	types = json_array();
	if (eps == NULL || types == NULL)
		rv = TK_ENOMEM;
	for (size_t i = 0; rv == 0 && i < e->n_endpoints; i++) {
		const Tk__Bus__V1__AddrPort *a = e->endpoints[i]->addr;
		char ip[64], txt[80];
		if (a == NULL || (a->addr.len != 4 && a->addr.len != 16))
			continue;
		tk_ipaddr x = { .family = a->addr.len == 4 ? TK_AF_INET : TK_AF_INET6 };
		memcpy(x.addr, a->addr.data, a->addr.len);
		tk_ipaddr_format(&x, ip);
		stun = stun || e->endpoints[i]->type ==
		    TK__BUS__V1__ENDPOINT_TYPE__ENDPOINT_TYPE_STUN;
		snprintf(txt, sizeof(txt), a->addr.len == 4 ? "%s:%u" : "[%s]:%u", ip,
		    a->port);
		/* json_array_append_new releases its value, also on failure */
		json_t *s = json_string(txt), *t = json_integer(e->endpoints[i]->type);
		if (s == NULL || t == NULL) {
			json_decref(s);
			json_decref(t);
			rv = TK_ENOMEM;
		} else if (json_array_append_new(eps, s) != 0) {
			json_decref(t);
			rv = TK_ENOMEM;
		} else if (json_array_append_new(types, t) != 0) {
			rv = TK_ENOMEM;
		}
	}
	tk__bus__v1__endpoints__free_unpacked(e, NULL);
	if (rv == 0 && (rv = tk_json_dump(eps, &eps_txt, NULL)) == 0)
		rv = tk_json_dump(types, &ept_txt, NULL);
	json_decref(eps);
	json_decref(types);
	if (rv != 0) { /* the last endpoints stay */
		tk_free(eps_txt);
		return rv;
	}
	pthread_mutex_lock(&c->mu);
	tk_free(c->eps_json);
	tk_free(c->ept_json);
	c->eps_json = eps_txt;
	c->ept_json = ept_txt;
	c->working_udp = stun;
	c->eps_dirty = true;
	pthread_mutex_unlock(&c->mu);
	if (write(c->wake, &one, sizeof(one)) < 0)
		(void)0;
	return 0;
}

/*
 * derpd's "derp" topic: the home region and latencies become
 * Hostinfo.NetInfo (tailcfg.NetInfo: PreferredDERP, DERPLatency keyed
 * "<region>-v4"/"-v6" in seconds), sent in a lite update, so control tells
 * peers where this node is reachable (testcontrol and headscale set the
 * node's HomeDERP from PreferredDERP).
 */
static int
derp_apply(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	ctrld *c = arg;
	Tk__Bus__V1__DerpState *s = tk__bus__v1__derp_state__unpack(NULL, len,
	    body);
	uint64_t one = 1;
	char *js;

	(void)seq;
	if (s == NULL)
		return TK_EPROTO;
	json_t *ni = json_object(), *lat = json_object();
	if (ni == NULL || lat == NULL) {
		json_decref(ni);
		json_decref(lat);
		tk__bus__v1__derp_state__free_unpacked(s, NULL);
		return TK_ENOMEM;
	}
	if (s->has_home_region && s->home_region > 0)
		json_object_set_new(ni, "PreferredDERP",
		    json_integer(s->home_region));
	for (size_t i = 0; i < s->n_latencies; i++) {
		const Tk__Bus__V1__RegionLatency *l = s->latencies[i];
		char k[32];
		if (!l->has_region_id)
			continue;
		if (l->has_latency_v4_us) {
			snprintf(k, sizeof(k), "%d-v4", l->region_id);
			json_object_set_new(lat, k,
			    json_real(l->latency_v4_us / 1e6));
		}
		if (l->has_latency_v6_us) {
			snprintf(k, sizeof(k), "%d-v6", l->region_id);
			json_object_set_new(lat, k,
			    json_real(l->latency_v6_us / 1e6));
		}
	}
	if (json_object_size(lat))
		json_object_set_new(ni, "DERPLatency", lat);
	else
		json_decref(lat);
	tk__bus__v1__derp_state__free_unpacked(s, NULL);
	js = json_dumps(ni, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(ni);
	if (js == NULL)
		return TK_ENOMEM;
	pthread_mutex_lock(&c->mu);
	bool changed = c->netinfo_json == NULL || strcmp(c->netinfo_json, js) != 0;
	if (changed) {
		tk_free(c->netinfo_json);
		c->netinfo_json = js;
		c->eps_dirty = true;
	} else {
		tk_free(js);
	}
	pthread_mutex_unlock(&c->mu);
	if (changed && write(c->wake, &one, sizeof(one)) < 0)
		(void)0;
	return 0;
}

/* --- prefs (prefs.h) ------------------------------------------------------- */

/* The edits kept in ctrld.db over the command line's values. */
static void
prefs_load(ctrld *c)
{
	tk_buf b;

	tk_buf_init(&b);
	if (tk_state_get_blob(c->st, "prefs", &b) == 0 && b.len > 0 &&
	    ctrldi_prefs_unpack_edits(&c->prefs_edited, &c->prefs_mask, b.data,
		b.len) != 0)
		TK_WARN(SUBSYS, "stored prefs unreadable; using the command line's");
	tk_buf_fini(&b);
	ctrldi_prefs_overlay(&c->prefs, &c->prefs_default, &c->prefs_edited,
	    c->prefs_mask);
	set_state(c, c->state);
	if (!c->prefs.want_running)
		TK_INFO(SUBSYS, "prefs: WantRunning is false (down): no map poll "
		    "until it is set again (up)");
}

static int
rpc_get_prefs(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	ctrld *c = arg;

	(void)body, (void)len;
	return ctrldi_prefs_pack(prefs_of(c), c->url, reply);
}

/* Subscribers move from the old view to the new one in one delta. */
static int
publish_switch(ctrld *c, const ctrldi_prefs *old, const ctrldi_prefs *eff)
{
	tk_buf nm, d;
	int rv;

	tk_buf_init(&nm);
	tk_buf_init(&d);
	if ((rv = ctrldi_map_snapshot(c->map, &nm)) == 0 &&
	    (rv = ctrldi_view_switch(old, eff, nm.data, nm.len, &d)) == 0) {
		tk_topic_publish(c->t_netmap, d.data, d.len);
		c->deltas++;
	}
	tk_buf_fini(&nm);
	tk_buf_fini(&d);
	return rv;
}

/*
 * rpc "edit_prefs" (MaskedPrefs -> Prefs): checked, kept in ctrld.db, then
 * applied at once, as ipnlocal's EditPrefs does: WantRunning stops or
 * resumes the map poll (and the view takes the peers away or brings them
 * back), Hostname and AdvertiseTags go to control in a lite map update's
 * Hostinfo (control decides about tags: testcontrol and Tailscale's
 * server retag the node or expire its key to force a re-login), CorpDNS
 * and ShieldsUp change the published DNS config and packet filter.
 */
static int
rpc_edit_prefs(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	ctrld *c = arg;
	Tk__Bus__V1__MaskedPrefs *mp = tk__bus__v1__masked_prefs__unpack(NULL,
	    len, body);
	ctrldi_prefs edited = c->prefs_edited, old = c->prefs, eff;
	unsigned mask = c->prefs_mask;
	char err[300];
	tk_buf b;
	int rv;

	if (mp == NULL)
		return TK_EPROTO;
	if (c->prefs_locked) { /* ipnlocal checkPrefsLocked */
		tk__bus__v1__masked_prefs__free_unpacked(mp, NULL);
		tk_buf_append_str(reply, "can't reconfigure tailkitd when using a "
		    "config file; config file is locked (\"Locked\": false in it "
		    "allows edits)");
		return TK_EPERM;
	}
	rv = ctrldi_prefs_edit(&edited, &mask, NULL, mp, c->url, err,
	    sizeof(err));
	tk__bus__v1__masked_prefs__free_unpacked(mp, NULL);
	if (rv != 0) {
		tk_buf_append_str(reply, err);
		return rv;
	}
	ctrldi_prefs_overlay(&eff, &c->prefs_default, &edited, mask);
	tk_buf_init(&b);
	if ((rv = ctrldi_prefs_pack_edits(&edited, mask, &b)) == 0)
		rv = tk_state_put_blob(c->st, "prefs", b.data, b.len);
	tk_buf_fini(&b);
	if (rv != 0) {
		tk_buf_printf(reply, "prefs not saved (%s); nothing changed",
		    tk_strerror(rv));
		return rv;
	}
	c->prefs_edited = edited;
	c->prefs_mask = mask;
	bool run = eff.want_running != old.want_running;
	bool hi = strcmp(eff.hostname, old.hostname) != 0 ||
	    strcmp(eff.tags, old.tags) != 0;
	if (run || eff.shields_up != old.shields_up ||
	    eff.corp_dns != old.corp_dns)
		publish_switch(c, &old, &eff);
	pthread_mutex_lock(&c->mu);
	c->prefs = eff;
	if (hi)
		c->hostinfo_dirty = c->eps_dirty = true;
	if (run) {
		pthread_cond_broadcast(&c->cv);
		if (!eff.want_running && c->conn != NULL)
			ctrldi_conn_abort(c->conn);
	}
	pthread_mutex_unlock(&c->mu);
	if (hi) {
		uint64_t one = 1;
		if (write(c->wake, &one, sizeof(one)) < 0)
			(void)0;
	}
	if (run && eff.want_running &&
	    c->state == TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STOPPED)
		set_state(c, TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STARTING);
	else if (run)
		set_state(c, c->state);
	TK_INFO(SUBSYS, "prefs: want_running=%d hostname=%s corp_dns=%d "
	    "shields_up=%d tags=%s", eff.want_running, eff.hostname,
	    eff.corp_dns, eff.shields_up, eff.tags[0] ? eff.tags : "-");
	return ctrldi_prefs_pack(&eff, c->url, reply);
}

static int
rpc_status(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	ctrld *c = arg;
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	tk_status_counters cs = { .n = 0 };
	Tk__Bus__V1__PeerStatus *ps = NULL, **pp = NULL;
	Tk__Bus__V1__Netmap *nm = NULL;
	char *health[1];
	tk_buf snap;
	int rv;

	(void)body, (void)len;
	r.component = "ctrld";
	r.version = VERSION;
	r.has_state = true;
	r.state = c->state;
	if (c->auth_url[0])
		r.auth_url = c->auth_url;
	r.has_uptime_ms = true;
	r.uptime_ms = (int64_t)(tk_loop_now(c->loop) / 1000000 - c->started_ms);
	tk_status_counter(&cs, "sessions", c->sessions);
	tk_status_counter(&cs, "map_messages", c->messages);
	tk_status_counter(&cs, "bad_messages", c->bad_messages);
	tk_status_counter(&cs, "netmap_deltas", c->deltas);
	tk_status_counter(&cs, "netmap_seq", tk_topic_seq(c->t_netmap));
	tk_status_counter(&cs, "cache_saves", c->saves);
	tk_status_counter(&cs, "keepalives", c->keepalives);
	tk_status_counter(&cs, "pings", c->pings);
	tk_status_counter(&cs, "lite_updates",
	    __atomic_load_n(&c->lite_updates, __ATOMIC_RELAXED));
	tk_status_counters_set(&r, &cs);
	if (c->last_error[0]) {
		health[0] = c->last_error;
		r.health = health;
		r.n_health = 1;
	}
	tk_buf_init(&snap);
	if (view_snapshot(c, &snap) == 0 && snap.len > 0)
		nm = tk__bus__v1__netmap__unpack(NULL, snap.len, snap.data);
	if (nm != NULL) {
		r.self = nm->self;
		ps = tk_calloc(nm->n_peers + 1, sizeof(*ps));
		pp = tk_calloc(nm->n_peers + 1, sizeof(*pp));
		if (ps == NULL || pp == NULL) {
			rv = TK_ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < nm->n_peers; i++) {
			Tk__Bus__V1__Node *n = nm->peers[i];
			tk__bus__v1__peer_status__init(&ps[i]);
			ps[i].has_id = n->has_id;
			ps[i].id = n->id;
			ps[i].has_node_key = n->has_key;
			ps[i].node_key = n->key;
			ps[i].name = n->name;
			ps[i].addresses = n->addresses;
			ps[i].n_addresses = n->n_addresses;
			ps[i].has_online = n->has_online;
			ps[i].online = n->online;
			pp[i] = &ps[i];
		}
		r.peers = pp;
		r.n_peers = nm->n_peers;
	}
	rv = tk_bus_pb_pack(&r.base, reply);
out:
	tk_free(ps);
	tk_free(pp);
	if (nm)
		tk__bus__v1__netmap__free_unpacked(nm, NULL);
	tk_buf_fini(&snap);
	return rv;
}

/*
 * rpc "logout": the control thread sends the past-expiry registration
 * (Go's TryLogout), forgets the registration and stays logged out until
 * ctrld is restarted with an auth key or asked to log in again.
 */
static int
rpc_logout(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	ctrld *c = arg;

	(void)body, (void)len, (void)reply;
	pthread_mutex_lock(&c->mu);
	c->logout_req = true;
	pthread_cond_broadcast(&c->cv);
	if (c->conn != NULL)
		ctrldi_conn_abort(c->conn);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/*
 * rpc "login" (LoginRequest): log in again, with the auth key given (kept
 * for later sessions, as --authkey is), or the one ctrld has, or
 * interactively; clears a log-out.  force_reauth makes a new node key
 * first (tailscale up --force-reauth).
 */
static int
rpc_login(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	ctrld *c = arg;
	Tk__Bus__V1__LoginRequest *rq = tk__bus__v1__login_request__unpack(NULL,
	    len, body);
	char *key = NULL;
	bool force;

	(void)reply;
	if (rq == NULL)
		return TK_EPROTO;
	if (rq->auth_key != NULL && *rq->auth_key != '\0') {
		if (strncmp(rq->auth_key, "tskey-client-", 13) == 0) {
			tk__bus__v1__login_request__free_unpacked(rq, NULL);
			return TK_EINVAL; /* OAuth secrets: see ctrld_new */
		}
		if ((key = tk_strdup(rq->auth_key)) == NULL) {
			tk__bus__v1__login_request__free_unpacked(rq, NULL);
			return TK_ENOMEM;
		}
	}
	force = rq->has_force_reauth && rq->force_reauth;
	bool eph = rq->has_ephemeral && rq->ephemeral;
	tk__bus__v1__login_request__free_unpacked(rq, NULL);
	pthread_mutex_lock(&c->mu);
	if (eph)
		c->ephemeral = true;
	if (key != NULL) {
		if (c->auth_key != NULL)
			tk_free_secret(c->auth_key, strlen(c->auth_key) + 1);
		c->auth_key = key;
	}
	c->logged_out = false;
	c->logout_req = false;
	c->login_req = true;
	pthread_cond_broadcast(&c->cv);
	if (c->conn != NULL)
		ctrldi_conn_abort(c->conn);
	pthread_mutex_unlock(&c->mu);
	tk_state_put_int(c->st, "logged_out", 0);
	TK_INFO(SUBSYS, "login requested%s%s", key ? " with a new auth key" : "",
	    force ? ", with a new node key" : "");
	if (force) {
		c->rotating = false;
		rotate_node_key(c);
	}
	return 0;
}

/* --- control thread --------------------------------------------------------- */

static uint64_t
mono_ms(void)
{
	return tk_clock_mono_ns(NULL) / 1000000;
}

/* Sleeps ms or until stop; true if stopping. */
static bool
nap(ctrld *c, uint64_t ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->mu);
	while (!c->stop &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

/* Lite update (Stream false, OmitPeers true) with the current endpoints. */
static void
lite_update(ctrld *c, ctrldi_conn *conn, const char *nkt, const char *dkt,
    bool have_disco)
{
	char *eps = NULL, *ept = NULL, *ni = NULL;
	bool working_udp;

	char hn[CTRLDI_HOSTNAME_MAX], tags[CTRLDI_TAGS_MAX];

	pthread_mutex_lock(&c->mu);
	working_udp = c->working_udp;
	memcpy(hn, c->prefs.hostname, sizeof(hn));
	memcpy(tags, c->prefs.tags, sizeof(tags));
	if (c->eps_dirty && (c->eps_json || c->netinfo_json ||
	    c->hostinfo_dirty)) {
		/* NetInfo alone (no endpoints from wgd yet): no endpoints */
		eps = tk_strdup(c->eps_json ? c->eps_json : "[]");
		ept = tk_strdup(c->ept_json ? c->ept_json : "[]");
		if (c->netinfo_json != NULL &&
		    (ni = tk_strdup(c->netinfo_json)) == NULL) {
			tk_free(eps);
			eps = NULL;
		}
		if (eps != NULL && ept != NULL)
			c->eps_dirty = c->hostinfo_dirty = false;
	}
	pthread_mutex_unlock(&c->mu);
	if (eps == NULL || ept == NULL) {
		tk_free(eps);
		tk_free(ept);
		tk_free(ni);
		return;
	}
	ctrldi_who who = { .node_key = nkt, .disco_key = have_disco ? dkt : NULL,
		.hostname = hn, .tags = tags[0] ? tags : NULL, .netinfo = ni,
		.working_udp = working_udp,
		.backend_log_id = c->log_id };
	char *body = NULL;
	int rv = ctrldi_req_lite(&body, &who, eps, ept);
	if (rv != 0) {
		/* not sent: try again on the next wake-up */
		TK_WARN(SUBSYS, "lite update: %s building the request",
		    tk_strerror(rv));
		pthread_mutex_lock(&c->mu);
		c->eps_dirty = true;
		pthread_mutex_unlock(&c->mu);
	} else if (ctrldi_conn_submit(conn, "POST", "/machine/map", body,
	    strlen(body)) == 0) {
		__atomic_add_fetch(&c->lite_updates, 1, __ATOMIC_RELAXED);
	}
	tk_free(body);
	tk_free(eps);
	tk_free(ept);
	tk_free(ni);
}

typedef struct wake_ctx {
	ctrld *c;
	const char *nkt, *dkt;
	bool have_disco;
} wake_ctx;

static void
on_wake(void *arg, ctrldi_conn *conn)
{
	wake_ctx *w = arg;
	ctrld *c = w->c;
	char *url;
	bool noise;

	lite_update(c, conn, w->nkt, w->dkt, w->have_disco);
	pthread_mutex_lock(&c->mu);
	url = c->ping_url;
	noise = c->ping_noise;
	c->ping_url = NULL;
	pthread_mutex_unlock(&c->mu);
	if (url == NULL)
		return;
	/* PingRequest with no Types: HEAD the URL (over Noise if asked) */
	if (noise) {
		const char *path = strchr(url + (strncmp(url, "https://", 8) ? 7 : 8), '/');
		ctrldi_conn_submit(conn, "HEAD", path ? path : "/", NULL, 0);
	} else {
		int st = 0;
		int rv = ctrldi_http_head(url, 5000, &st);
		TK_DEBUG(SUBSYS, "ping %s: %s %d", url, tk_strerror(rv), st);
	}
	tk_free(url);
}

static int
on_map_msg(void *arg, char *json, size_t n)
{
	ctrld *c = arg;

	post_map(c, json, n);
	return c->stop ? TK_ECLOSED : 0;
}

/* One session: register, then stream the map until it ends. */
static int
session(ctrld *c, char *err, size_t errlen)
{
	tk_node_pub nk, old;
	tk_disco_pub dk;
	bool have_disco;
	char nkt[TK_KEY_TEXT_MAX], oldt[TK_KEY_TEXT_MAX], dkt[TK_KEY_TEXT_MAX];
	ctrldi_conn *conn;
	int rv, status = 0;
	char *auth_key = NULL; /* this session's copy (rpc "login" may swap it) */

	char regd[TK_KEY_TEXT_MAX];

	pthread_mutex_lock(&c->mu);
	nk = c->node_pub;
	old = c->old_node_pub;
	dk = c->disco_pub;
	have_disco = c->have_disco;
	snprintf(regd, sizeof(regd), "%s", c->registered_key);
	char hn[CTRLDI_HOSTNAME_MAX], tags[CTRLDI_TAGS_MAX];
	memcpy(hn, c->prefs.hostname, sizeof(hn));
	memcpy(tags, c->prefs.tags, sizeof(tags));
	c->plan_cur = c->dial_plan;
	pthread_mutex_unlock(&c->mu);
	c->curl.plan = &c->plan_cur;
	tk_key_format(nkt, "nodekey:", nk.b);
	tk_key_format(dkt, "discokey:", dk.b);
	/* OldNodeKey: the key last registered, kept in the state, while a new
	 * one is being registered (Go's persist.OldPrivateNodeKey), so a
	 * restart mid-rotation keeps the node; else the key before this one */
	if (regd[0] != '\0' && strcmp(regd, nkt) != 0)
		snprintf(oldt, sizeof(oldt), "%s", regd);
	else
		tk_key_format(oldt, "nodekey:", old.b);
	ctrldi_who who = { .node_key = nkt, .old_node_key = oldt,
		.disco_key = have_disco ? dkt : NULL, .hostname = hn,
		.tags = tags[0] ? tags : NULL, .backend_log_id = c->log_id };
	if (!c->have_server) {
		if ((rv = ctrldi_fetch_server_key(&c->curl, 10000, &c->server, err,
			 errlen)) != 0)
			return rv;
		c->have_server = true;
	}
	if ((rv = ctrldi_conn_dial(&conn, &c->curl, &c->mk, &c->server, 10000, err,
		 errlen)) != 0) {
		c->have_server = false; /* the server may have a new key */
		return rv;
	}
	pthread_mutex_lock(&c->mu);
	c->conn = conn;
	bool stop = c->stop;
	bool known = strcmp(c->registered_key, nkt) == 0;
	pthread_mutex_unlock(&c->mu);
	if (stop)
		goto out;

	pthread_mutex_lock(&c->mu);
	bool logout = c->logout_req;
	if (c->login_req) { /* rpc "login": register now */
		c->login_req = false;
		c->logged_in = false;
	}
	auth_key = c->auth_key ? tk_strdup(c->auth_key) : NULL;
	bool ephemeral = c->ephemeral;
	pthread_mutex_unlock(&c->mu);

	/* auto.go: once logged in, a new session only polls the map; a new
	 * key, a log-out or a new run registers */
	if (c->logged_in && known && !logout)
		goto stream;
	/* register (the server answers with the current state), or log out */
	ctrldi_reg_config rc = { .who = &who, .ephemeral = ephemeral,
		.auth_key = auth_key, .known = known, .logout = logout };
	ctrldi_reg reg;
	ctrldi_reg_step step;
	ctrldi_reg_init(&reg, &rc);
	rv = 0;
	while ((step = ctrldi_reg_next(&reg)) != CTRLDI_REG_DONE &&
	    step != CTRLDI_REG_ERROR) {
		if (step == CTRLDI_REG_RETRY) {
			TK_INFO(SUBSYS, "%s", reg.err);
		} else if (step == CTRLDI_REG_LOGIN) {
			post(c, EV_AUTH_URL, reg.auth_url, strlen(reg.auth_url));
			TK_INFO(SUBSYS, "login needed: %s", reg.auth_url);
		} else {
			tk_buf resp;
			tk_buf_init(&resp);
			rv = ctrldi_conn_request(conn, "/machine/register", reg.body,
			    reg.body_len, reg.timeout_ms, &status, &resp, err, errlen);
			if (rv == 0)
				ctrldi_reg_response(&reg, status, resp.data, resp.len);
			tk_buf_fini(&resp);
			if (rv != 0)
				break;
		}
	}
	if (rv == 0 && step == CTRLDI_REG_ERROR) {
		snprintf(err, errlen, "%s", reg.err);
		rv = reg.rv;
		if (rv == TK_EAGAIN) { /* 429 */
			c->retry_ms = (uint64_t)ctrldi_retry_after_ms(
			    ctrldi_conn_retry_after(conn), wall_ms(),
			    (uint32_t)random());
			size_t k = strlen(err);
			snprintf(err + k, errlen - k, "; retry after %.3g s",
			    (double)c->retry_ms / 1000.0);
		} else if (rv == TK_ESTATE) { /* NodeKeyExpired */
			post(c, EV_KEY_EXPIRED, nkt, strlen(nkt));
		} else if (rv == TK_EPERM) {
			post(c, EV_REFUSED, NULL, 0);
		}
	}
	ctrldi_reg_fini(&reg);
	if (rv == 0 && logout) {
		pthread_mutex_lock(&c->mu);
		c->logout_req = false;
		c->logged_out = true;
		c->registered_key[0] = '\0';
		pthread_mutex_unlock(&c->mu);
		post(c, EV_REGISTERED, "", 0);
		snprintf(err, errlen, "logged out");
		c->logged_in = false;
		rv = TK_ECLOSED;
	}
	if (rv != 0)
		goto out;
	pthread_mutex_lock(&c->mu);
	snprintf(c->registered_key, sizeof(c->registered_key), "%s", nkt);
	pthread_mutex_unlock(&c->mu);
	post(c, EV_REGISTERED, nkt, strlen(nkt));
	c->logged_in = true;
stream:;

	/* the map stream */
	char *body = NULL;
	if ((rv = ctrldi_req_map(&body, &who, true)) != 0) {
		snprintf(err, errlen, "map request: %s building the request",
		    tk_strerror(rv));
		goto out;
	}
	post(c, EV_STREAM_START, NULL, 0);
	/* endpoints first, in a lite update: streaming requests are
	 * read-only for capver >= 68 */
	pthread_mutex_lock(&c->mu);
	if (c->eps_json)
		c->eps_dirty = true;
	pthread_mutex_unlock(&c->mu);
	wake_ctx wc = { c, nkt, dkt, have_disco };
	lite_update(c, conn, nkt, dkt, have_disco);
	ctrldi_conn_set_wake(conn, c->wake, on_wake, &wc);
	status = 0;
	rv = ctrldi_conn_stream(conn, "/machine/map", body, strlen(body), true,
	    IDLE_MS, on_map_msg, c, &status, err, errlen);
	tk_free(body);
	/* Go would poll on; a server that no longer knows the node (4xx)
	 * gets a registration at the next session instead (tailkit's choice:
	 * with the auth key this recovers from a reset control database) */
	if (status >= 400 && status < 500 && status != 429)
		c->logged_in = false;
out:
	if (auth_key != NULL)
		tk_free_secret(auth_key, strlen(auth_key) + 1);
	pthread_mutex_lock(&c->mu);
	c->conn = NULL;
	pthread_mutex_unlock(&c->mu);
	ctrldi_conn_free(conn);
	return rv;
}

static void *
control_thread(void *arg)
{
	ctrld *c = arg;
	uint64_t backoff = BACKOFF_MIN;

	for (;;) {
		char err[400] = "";
		pthread_mutex_lock(&c->mu);
		/* logged out, or down (WantRunning false: no map poll, as
		 * ipnlocal stops the control client) until told otherwise */
		while (!c->stop && !c->logout_req && (!c->have_node ||
		    c->logged_out || !c->prefs.want_running))
			pthread_cond_wait(&c->cv, &c->mu);
		bool stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			break;
		uint64_t t0 = mono_ms();
		int rv = session(c, err, sizeof(err));
		if (c->stop)
			break;
		pthread_mutex_lock(&c->mu);
		bool down = !c->prefs.want_running;
		pthread_mutex_unlock(&c->mu);
		if (down) { /* ended by `down`: not a failure */
			backoff = BACKOFF_MIN;
			continue;
		}
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "session ended: %s", tk_strerror(rv));
		TK_INFO(SUBSYS, "%s", err);
		post(c, EV_ERROR, err, strlen(err));
		if (c->retry_ms > 0) { /* auto.go: Retry-After, not the backoff */
			uint64_t ms = c->retry_ms;
			c->retry_ms = 0;
			if (nap(c, ms))
				break;
			continue;
		}
		if (mono_ms() - t0 > 60000)
			backoff = BACKOFF_MIN; /* it worked for a while */
		/* jitter: between half and all of the backoff */
		uint64_t wait = backoff / 2 + (uint64_t)(random() % (long)(backoff / 2 + 1));
		if (nap(c, wait))
			break;
		backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
	}
	return NULL;
}

/* --- lifecycle ---------------------------------------------------------------- */

static int
dup_str(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL)
		return 0;
	return (*dst = tk_strdup(s)) ? 0 : TK_ENOMEM;
}

/*
 * Hostinfo.BackendLogID: the public form of a logtail private ID kept in
 * the state (types/logid: PublicID = SHA-256 of the PrivateID, in hex), so
 * it is random per node and stable across restarts.  Go's doLogin refuses
 * to register without one; tailkit uploads no logs.
 */
static int
backend_log_id(ctrld *c, char *err, size_t errlen)
{
	uint8_t priv[32], pub[crypto_hash_sha256_BYTES];
	int rv = tk_state_key(c->st, "backend_log_private_id", priv, NULL);

	if (rv != 0) {
		snprintf(err, errlen, "state: backend log ID: %s", tk_strerror(rv));
		return rv;
	}
	crypto_hash_sha256(pub, priv, sizeof(priv));
	sodium_memzero(priv, sizeof(priv));
	sodium_bin2hex(c->log_id, sizeof(c->log_id), pub, sizeof(pub));
	return 0;
}

int
ctrld_new(ctrld **out, const ctrld_config *cfg, char *err, size_t errlen)
{
	ctrld *c;
	int rv;
	char hn[256] = "tailkit";

	if (err && errlen)
		err[0] = '\0';
	if (cfg->control_url == NULL || cfg->state_dir == NULL ||
	    cfg->pub_url == NULL || cfg->rpc_url == NULL) {
		snprintf(err, errlen, "need a control URL, a state directory and the "
		    "pub and rpc URLs");
		return TK_EINVAL;
	}
	if ((cfg->wgd_pub_url == NULL) != (cfg->wgd_rpc_url == NULL)) {
		snprintf(err, errlen, "wgd's pub and rpc URLs go together");
		return TK_EINVAL;
	}
	if (cfg->auth_key != NULL && strncmp(cfg->auth_key, "tskey-client-", 13) == 0) {
		/* Go's feature/oauthkey trades it for an auth key through the
		 * Tailscale API; not sent to control as an auth key */
		snprintf(err, errlen, "auth key tskey-client-...: OAuth client "
		    "secrets are not supported by tailkit (Go's client trades one "
		    "for an auth key through the Tailscale API); create an auth key "
		    "(tskey-auth-...) with the OAuth client or in the admin console "
		    "and pass that");
		return TK_EINVAL;
	}
	for (const char *t = cfg->advertise_tags; t && *t;) {
		size_t n = strcspn(t, ",");
		if (n <= 4 || strncmp(t, "tag:", 4) != 0) {
			snprintf(err, errlen, "tag '%.*s': each tag is tag:<name>, "
			    "comma-separated", (int)n, t);
			return TK_EINVAL;
		}
		t += n + (t[n] == ',');
	}
	if ((c = tk_calloc(1, sizeof(*c))) == NULL)
		return TK_ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wake < 0) {
		tk_free(c);
		return tk_err_sys(errno);
	}
	if (cfg->hostname == NULL)
		gethostname(hn, sizeof(hn) - 1);
	if ((rv = dup_str(&c->url, cfg->control_url)) != 0 ||
	    (rv = dup_str(&c->auth_key, cfg->auth_key)) != 0 ||
	    (rv = dup_str(&c->state_dir, cfg->state_dir)) != 0 ||
	    (rv = dup_str(&c->ca_file, cfg->ca_file)) != 0 ||
	    (rv = dup_str(&c->pub_url, cfg->pub_url)) != 0 ||
	    (rv = dup_str(&c->rpc_url, cfg->rpc_url)) != 0 ||
	    (rv = dup_str(&c->wgd_pub_url, cfg->wgd_pub_url)) != 0 ||
	    (rv = dup_str(&c->wgd_rpc_url, cfg->wgd_rpc_url)) != 0 ||
	    (rv = dup_str(&c->derpd_pub_url, cfg->derpd_pub_url)) != 0 ||
	    (rv = dup_str(&c->derpd_rpc_url, cfg->derpd_rpc_url)) != 0)
		goto fail;
	c->ephemeral = cfg->ephemeral;
	ctrldi_prefs_init(&c->prefs_default);
	if (strlen(cfg->hostname ? cfg->hostname : hn) >=
	    sizeof(c->prefs_default.hostname)) {
		snprintf(err, errlen, "--hostname: more than %zu bytes",
		    sizeof(c->prefs_default.hostname) - 1);
		rv = TK_EINVAL;
		goto fail;
	}
	snprintf(c->prefs_default.hostname, sizeof(c->prefs_default.hostname),
	    "%s", cfg->hostname ? cfg->hostname : hn);
	if (cfg->advertise_tags != NULL &&
	    strlen(cfg->advertise_tags) >= sizeof(c->prefs_default.tags)) {
		snprintf(err, errlen, "--advertise-tags: more than %zu bytes",
		    sizeof(c->prefs_default.tags) - 1);
		rv = TK_EINVAL;
		goto fail;
	}
	snprintf(c->prefs_default.tags, sizeof(c->prefs_default.tags), "%s",
	    cfg->advertise_tags ? cfg->advertise_tags : "");
	c->prefs_default.want_running = !cfg->start_down;
	c->prefs_default.corp_dns = !cfg->no_accept_dns;
	c->prefs_locked = cfg->prefs_locked;
	ctrldi_prefs_init(&c->prefs_edited);
	c->tls = cfg->tls;
	c->state = TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NO_STATE;
	if ((rv = ctrldi_url_parse(&c->curl, c->url, err, errlen)) != 0)
		goto fail;
	c->curl.ca_file = c->ca_file;
	tk_state_config sc = { .dir = c->state_dir, .name = "ctrld.db" };
	if ((rv = tk_state_open(&c->st, &sc, err, errlen)) != 0)
		goto fail;
	if ((rv = tk_state_key(c->st, "machine_private_key", c->mk.b, NULL)) != 0) {
		snprintf(err, errlen, "state: machine key: %s", tk_strerror(rv));
		goto fail;
	}
	if ((rv = backend_log_id(c, err, errlen)) != 0)
		goto fail;
	tk_buf b;
	tk_buf_init(&b);
	if (tk_state_get_text(c->st, "registered_node_key", &b) == 0) {
		const char *s;
		if (tk_buf_cstr(&b, &s) == 0)
			snprintf(c->registered_key, sizeof(c->registered_key), "%s", s);
	}
	tk_buf_fini(&b);
	int64_t lo = 0;
	if (tk_state_get_int(c->st, "logged_out", &lo) == 0 && lo && c->auth_key == NULL)
		c->logged_out = true; /* stays out until given an auth key */
	if (c->auth_key != NULL)
		tk_state_put_int(c->st, "logged_out", 0);
	prefs_load(c);
	if (c->wgd_pub_url == NULL) {
		/* standalone: a node key (and disco key) of our own */
		tk_node_priv nk;
		tk_disco_priv dk;
		if ((rv = tk_state_key(c->st, "node_private_key", nk.b, NULL)) != 0 ||
		    (rv = tk_state_key(c->st, "disco_private_key", dk.b, NULL)) != 0)
			goto fail;
		tk_node_priv_public(&nk, &c->node_pub);
		tk_disco_priv_public(&dk, &c->disco_pub);
		tk_secure_zero(&nk, sizeof(nk));
		tk_secure_zero(&dk, sizeof(dk));
		c->have_node = c->have_disco = true;
	}
	if ((rv = ctrldi_map_new(&c->map)) != 0)
		goto fail;
	/* the last netmap: the data plane comes up on it while control is
	 * unreachable */
	tk_buf_init(&b);
	if (tk_state_get_blob(c->st, "netmap", &b) == 0 && b.len > 0 &&
	    ctrldi_map_restore(c->map, b.data, b.len) != 0)
		TK_WARN(SUBSYS, "cached netmap unreadable; starting empty");
	tk_buf_fini(&b);
	if ((rv = tk_loop_new(&c->loop, NULL)) != 0 ||
	    (rv = tk_loop_timer_new(c->loop, &c->save_timer, on_save, c)) != 0 ||
	    (rv = tk_loop_timer_new(c->loop, &c->expiry_timer, on_expiry,
		c)) != 0)
		goto fail;
	c->started_ms = tk_loop_now(c->loop) / 1000000;
	tk_rpc_server_cfg rc = { .loop = c->loop, .url = c->rpc_url, .tls = c->tls };
	tk_topic_pub_cfg pc = { .loop = c->loop, .url = c->pub_url, .tls = c->tls };
	if ((rv = tk_rpc_server_new(&c->rpc, &rc)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_STATUS, rpc_status, c)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_LOGOUT, rpc_logout, c)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_LOGIN, rpc_login, c)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_GET_PREFS, rpc_get_prefs,
		c)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_EDIT_PREFS, rpc_edit_prefs,
		c)) != 0 ||
	    (pc.rpc = c->rpc, (rv = tk_topic_pub_new(&c->pub, &pc))) != 0 ||
	    (rv = tk_topic_add(c->pub, TK_TOPIC_NETMAP, netmap_snapshot, c,
		&c->t_netmap)) != 0) {
		snprintf(err, errlen, "bus %s / %s: %s", c->pub_url, c->rpc_url,
		    tk_strerror(rv));
		goto fail;
	}
	if (c->wgd_pub_url != NULL) {
		tk_topic_sub_cfg kc = { .loop = c->loop, .url = c->wgd_pub_url,
			.rpc_url = c->wgd_rpc_url, .tls = c->tls, .topic = TK_TOPIC_KEYS,
			.apply_snapshot = keys_apply, .apply_delta = keys_apply,
			.arg = c, .name = "ctrld" };
		tk_rpc_client_cfg rcc = { .loop = c->loop, .url = c->wgd_rpc_url,
			.tls = c->tls, .name = "ctrld" };
		if ((rv = tk_rpc_client_new(&c->wgd_rpc, &rcc)) != 0) {
			snprintf(err, errlen, "wgd rpc %s: %s", c->wgd_rpc_url,
			    tk_strerror(rv));
			goto fail;
		}
		tk_topic_sub_cfg ec = kc;
		ec.topic = TK_TOPIC_ENDPOINTS;
		ec.apply_snapshot = ec.apply_delta = eps_apply;
		if ((rv = tk_topic_sub_new(&c->keys_sub, &kc)) != 0 ||
		    (rv = tk_topic_sub_new(&c->eps_sub, &ec)) != 0) {
			snprintf(err, errlen, "wgd keys %s: %s", c->wgd_pub_url,
			    tk_strerror(rv));
			goto fail;
		}
	}
	if (c->derpd_pub_url != NULL && c->derpd_rpc_url != NULL) {
		tk_topic_sub_cfg dc = { .loop = c->loop, .url = c->derpd_pub_url,
			.rpc_url = c->derpd_rpc_url, .tls = c->tls, .topic = TK_TOPIC_DERP,
			.apply_snapshot = derp_apply, .apply_delta = derp_apply,
			.arg = c, .name = "ctrld" };
		if ((rv = tk_topic_sub_new(&c->derp_sub, &dc)) != 0) {
			snprintf(err, errlen, "derpd topic %s: %s", c->derpd_pub_url,
			    tk_strerror(rv));
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	if (err && errlen && err[0] == '\0')
		snprintf(err, errlen, "%s", tk_strerror(rv));
	ctrld_free(c);
	return rv;
}

static void *
loop_thread(void *arg)
{
	ctrld *c = arg;

	tk_loop_run(c->loop);
	return NULL;
}

int
ctrld_start(ctrld *c)
{
	int e;

	if (c->running)
		return TK_ESTATE;
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	if ((e = pthread_create(&c->loop_thr, NULL, loop_thread, c)) != 0)
		return tk_err_sys(e);
	if ((e = pthread_create(&c->ctl_thr, NULL, control_thread, c)) != 0) {
		tk_loop_stop(c->loop);
		pthread_join(c->loop_thr, NULL);
		return tk_err_sys(e);
	}
	c->running = true;
	TK_INFO(SUBSYS, "up: control %s, netmap on %s", c->url, c->pub_url);
	return 0;
}

void
ctrld_stop(ctrld *c)
{
	if (c == NULL || !c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	if (c->conn)
		ctrldi_conn_abort(c->conn);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->ctl_thr, NULL);
	tk_loop_stop(c->loop);
	pthread_join(c->loop_thr, NULL);
	c->running = false;
	if (c->dirty)
		on_save(c->loop, c->save_timer, c); /* nothing is lost on stop */
}

void
ctrld_free(ctrld *c)
{
	if (c == NULL)
		return;
	ctrld_stop(c);
	/* events the control thread posted last: apply and free them */
	if (c->loop != NULL)
		tk_loop_run_once(c->loop, 0);
	tk_topic_sub_free(c->keys_sub);
	tk_topic_sub_free(c->eps_sub);
	tk_topic_sub_free(c->derp_sub);
	tk_rpc_client_free(c->wgd_rpc);
	tk_topic_pub_free(c->pub);
	tk_rpc_server_free(c->rpc);
	tk_loop_timer_free(c->save_timer);
	tk_loop_timer_free(c->expiry_timer);
	tk_loop_free(c->loop);
	ctrldi_map_free(c->map);
	tk_state_close(c->st);
	tk_secure_zero(&c->mk, sizeof(c->mk));
	tk_free(c->url);
	if (c->auth_key != NULL) /* a credential: zeroed */
		tk_free_secret(c->auth_key, strlen(c->auth_key) + 1);
	tk_free(c->state_dir);
	tk_free(c->ca_file);
	tk_free(c->pub_url);
	tk_free(c->rpc_url);
	tk_free(c->wgd_pub_url);
	tk_free(c->wgd_rpc_url);
	tk_free(c->derpd_pub_url);
	tk_free(c->derpd_rpc_url);
	tk_free(c->netinfo_json);
	tk_free(c->eps_json);
	tk_free(c->ept_json);
	tk_free(c->ping_url);
	close(c->wake);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	tk_free(c);
}
