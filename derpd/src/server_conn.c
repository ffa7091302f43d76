/*
 * The DERP frame protocol as the server speaks it (derpserver.go), sans
 * I/O: derpdi_derp_input consumes bytes already read into c->ib,
 * derpdi_derp_fill moves queued frames into c->ob.  server.c moves bytes
 * between those buffers and the socket; the fuzz target drives this file
 * with no socket at all.
 */
#include <string.h>

#include "server_int.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"

/* Output bytes above which fill stops pulling queued frames: the rest
 * waits in the bounded queues, where the drop policy applies. */
#define OB_HIGH (128u << 10)
#define GONE_MAX 8192u	    /* pending PeerGone frames per conn */
#define PRES_MAX (1u << 20) /* pending mesh updates per watcher */

static void
drop(derpd_server *s, enum derpdi_drop why, size_t n)
{
	s->st.packets_dropped[why]++;
	s->st.bytes_dropped[why] += n;
}

static void
pkt_free_q(derpd_server *s, derpdi_pktq *q)
{
	while (q->n) {
		derpdi_pkt *p = q->p[q->head];
		drop(s, DROP_GONE_DISCONNECTED, p->len);
		tk_free(p);
		q->head = (q->head + 1) % DERPD_QDEPTH;
		q->n--;
	}
	q->head = 0;
}

void
derpdi_conn_drop_queues(derpdi_conn *c)
{
	pkt_free_q(c->s, &c->q);
	pkt_free_q(c->s, &c->dq);
}

/* --- queues -------------------------------------------------------------- */

static void
queue_gone(derpdi_conn *c, const uint8_t *key, uint8_t reason)
{
	if (c->st != CS_DERP)
		return;
	if (c->ngone == c->capgone) {
		if (c->capgone >= GONE_MAX)
			return; /* a client that reads nothing: the write timeout ends it */
		size_t ncap = c->capgone ? 2 * c->capgone : 8;
		derpdi_gone *ng = tk_realloc(c->gone, ncap * sizeof(*ng));
		if (ng == NULL)
			return;
		c->gone = ng;
		c->capgone = ncap;
	}
	memcpy(c->gone[c->ngone].key, key, TK_DERP_KEY_LEN);
	c->gone[c->ngone].reason = reason;
	c->ngone++;
	derpdi_conn_mark_dirty(c);
}

static void
queue_present(derpdi_conn *w, const derpdi_present *p)
{
	if (w->st != CS_DERP)
		return;
	if (w->npres == w->cappres) {
		if (w->cappres >= PRES_MAX) {
			derpdi_conn_close(w, CLOSE_WRITE_TIMEOUT);
			return;
		}
		size_t ncap = w->cappres ? 2 * w->cappres : 16;
		derpdi_present *np = tk_realloc(w->pres, ncap * sizeof(*np));
		if (np == NULL) {
			derpdi_conn_close(w, CLOSE_NOMEM);
			return;
		}
		w->pres = np;
		w->cappres = ncap;
	}
	w->pres[w->npres++] = *p;
	derpdi_conn_mark_dirty(w);
}

static uint8_t
present_flags(const derpdi_conn *c)
{
	uint8_t f = 0;
	if (c->info.is_prober)
		f |= TK_DERP_PEER_PRESENT_IS_PROBER;
	if (c->can_mesh)
		f |= TK_DERP_PEER_PRESENT_IS_MESH_PEER;
	if (c->not_ideal)
		f |= TK_DERP_PEER_PRESENT_NOT_IDEAL;
	return f ? f : TK_DERP_PEER_PRESENT_IS_REGULAR;
}

static void
broadcast(derpd_server *s, const derpdi_conn *c, bool present)
{
	derpdi_present p = { 0 };

	memcpy(p.key, c->key, TK_DERP_KEY_LEN);
	p.present = present;
	if (present) {
		memcpy(p.ip, c->ip16, 16);
		p.port = c->port;
		p.flags = present_flags(c);
	}
	for (size_t i = 0; i < s->nwatchers; i++)
		queue_present(s->watchers[i], &p);
}

/* derpserver.go notePeerGoneFromRegionLocked: everyone who heard from key
 * learns it is gone. */
void
derpdi_peer_gone_from_region(derpd_server *s, const uint8_t *key)
{
	derpdi_watchers *w = derpdi_map_get(&s->gone_watch, key);
	if (w == NULL)
		return;
	derpdi_map_del(&s->gone_watch, key);
	for (size_t i = 0; i < w->n; i++) {
		derpdi_conn *d = w->c[i];
		derpdi_map_del(&d->saw_src, key);
		queue_gone(d, key, TK_DERP_PEER_GONE_DISCONNECTED);
	}
	tk_free(w->c);
	tk_free(w);
}

/* derpserver.go noteSendFromSrc. */
static void
note_send_from_src(derpdi_conn *c, const uint8_t *src)
{
	derpd_server *s = c->s;

	if (tk_key_is_zero(src) || derpdi_map_get(&c->saw_src, src))
		return;
	derpdi_watchers *w = derpdi_map_get(&s->gone_watch, src);
	if (w == NULL) {
		if ((w = tk_calloc(1, sizeof(*w))) == NULL)
			return;
		if (derpdi_map_put(&s->gone_watch, src, w) != 0) {
			tk_free(w);
			return;
		}
	}
	if (w->n == w->cap) {
		size_t ncap = w->cap ? 2 * w->cap : 4;
		derpdi_conn **nc = tk_realloc(w->c, ncap * sizeof(*nc));
		if (nc == NULL)
			return;
		w->c = nc;
		w->cap = ncap;
	}
	if (derpdi_map_put(&c->saw_src, src, (void *)1) != 0)
		return;
	w->c[w->n++] = c;
}

static void
enqueue(derpdi_conn *src, derpdi_conn *dst, const uint8_t *srckey,
    const uint8_t *pkt, size_t n)
{
	derpd_server *s = src->s;

	if (dst->st != CS_DERP) {
		drop(s, DROP_GONE_DISCONNECTED, n);
		return;
	}
	derpdi_pkt *p = tk_malloc(sizeof(*p) + n);
	if (p == NULL) {
		drop(s, DROP_QUEUE_TAIL, n);
		return;
	}
	memcpy(p->src, srckey, TK_DERP_KEY_LEN);
	p->len = (uint32_t)n;
	memcpy(p->data, pkt, n);
	derpdi_pktq *q = tk_derp_looks_like_disco(pkt, n) ? &dst->dq : &dst->q;
	/* derpserver.go sendPkt: up to 3 tries, dropping the oldest. */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (q->n < DERPD_QDEPTH) {
			q->p[(q->head + q->n) % DERPD_QDEPTH] = p;
			q->n++;
			derpdi_conn_mark_dirty(dst);
			return;
		}
		derpdi_pkt *old = q->p[q->head];
		q->head = (q->head + 1) % DERPD_QDEPTH;
		q->n--;
		drop(s, DROP_QUEUE_HEAD, old->len);
		tk_free(old);
	}
	drop(s, DROP_QUEUE_TAIL, n);
	tk_free(p);
}

/* --- registration ----------------------------------------------------------- */

static int
register_client(derpdi_conn *c)
{
	derpd_server *s = c->s;
	derpdi_set *set = derpdi_map_get(&s->clients, c->key);

	if (set == NULL) {
		if ((set = tk_calloc(1, sizeof(*set))) == NULL)
			return TK_ENOMEM;
		memcpy(set->key, c->key, TK_DERP_KEY_LEN);
		if (derpdi_map_put(&s->clients, c->key, set) != 0) {
			tk_free(set);
			return TK_ENOMEM;
		}
	}
	if (set->n == set->cap) {
		size_t ncap = set->cap ? 2 * set->cap : 1;
		derpdi_conn **nc = tk_realloc(set->conns, ncap * sizeof(*nc));
		if (nc == NULL) {
			if (set->n == 0) {
				derpdi_map_del(&s->clients, c->key);
				tk_free(set->conns);
				tk_free(set);
			}
			return TK_ENOMEM;
		}
		set->conns = nc;
		set->cap = ncap;
	}
	/* derpserver.go registerClient: the newest connection is active;
	 * a second one makes a dup set. */
	if (set->n == 1) {
		set->conns[0]->is_dup = true;
		c->is_dup = true;
		s->st.dup_client_keys++;
		s->st.dup_client_conns += 2;
		s->st.dup_client_conn_total++;
	} else if (set->n > 1) {
		c->is_dup = true;
		s->st.dup_client_conns++;
		s->st.dup_client_conn_total++;
	}
	set->conns[set->n++] = c;
	set->last = c;
	set->active = c;
	c->set = set;
	s->st.cur_clients++;
	broadcast(s, c, true);
	return 0;
}

void
derpdi_derp_unregister(derpdi_conn *c)
{
	derpd_server *s = c->s;
	derpdi_set *set = c->set;

	if (set == NULL)
		return;
	c->set = NULL;
	if (set->n == 1) {
		derpdi_map_del(&s->clients, c->key);
		tk_free(set->conns);
		tk_free(set);
		if (derpdi_map_get(&s->mesh_fwd, c->key) == NULL)
			derpdi_peer_gone_from_region(s, c->key);
		broadcast(s, c, false);
	} else {
		size_t i;
		for (i = 0; i < set->n && set->conns[i] != c; i++)
			;
		if (TK_ALWAYS(i < set->n)) {
			memmove(&set->conns[i], &set->conns[i + 1],
			    (set->n - i - 1) * sizeof(*set->conns));
			set->n--;
		}
		if (set->last == c)
			set->last = NULL;
		s->st.dup_client_conns--;
		if (set->n == 1) {
			derpdi_conn *remain = set->conns[0];
			s->st.dup_client_conns--;
			s->st.dup_client_keys--;
			remain->is_dup = false;
			set->active = remain;
			set->last = remain;
		} else {
			set->active = set->last; /* pickActiveClient */
		}
	}
	if (c->watcher) {
		for (size_t i = 0; i < s->nwatchers; i++) {
			if (s->watchers[i] == c) {
				s->watchers[i] = s->watchers[--s->nwatchers];
				break;
			}
		}
		c->watcher = false;
		s->st.watchers--;
	}
	s->st.cur_clients--;
	if (c->preferred)
		s->st.cur_home_clients--;
	/* forget the peer-gone watches this conn held */
	size_t it = 0;
	derpdi_map_ent *e;
	while ((e = derpdi_map_next(&c->saw_src, &it)) != NULL) {
		derpdi_watchers *w = derpdi_map_get(&s->gone_watch, e->key);
		if (w == NULL)
			continue;
		for (size_t i = 0; i < w->n; i++) {
			if (w->c[i] == c) {
				w->c[i] = w->c[--w->n];
				break;
			}
		}
		if (w->n == 0) {
			derpdi_map_del(&s->gone_watch, e->key);
			tk_free(w->c);
			tk_free(w);
		}
	}
	derpdi_map_fini(&c->saw_src);
}

/* derpserver.go noteClientActivity, lastWriterIsActive policy. */
static void
note_activity(derpdi_conn *c)
{
	if (!c->is_dup || c->set == NULL)
		return;
	c->set->last = c;
	c->set->active = c;
}

/* --- output ------------------------------------------------------------------ */

void
derpdi_derp_begin(derpdi_conn *c)
{
	uint8_t f[TK_DERP_SERVER_KEY_FRAME_LEN];

	tk_derp_build_server_key(f, c->s->pub);
	if (derpdi_out(c, f, sizeof(f)) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	c->st = CS_INFO;
	c->deadline_ns = derpdi_now(c->s) +
	    (uint64_t)TK_DERP_HANDSHAKE_TIMEOUT_MS * TK_NSEC_PER_MSEC;
	derpdi_conn_mark_dirty(c);
}

static int
send_server_info(derpdi_conn *c)
{
	tk_derp_server_info si = { .version = TK_DERP_PROTOCOL_VERSION };
	char js[64];
	size_t jl, bl;
	uint8_t box[TK_DERP_FRAME_HDR_LEN + TK_DERP_SEALED_LEN(sizeof(js))];
	int rc;

	if ((rc = tk_derp_server_info_json(&si, js, sizeof(js), &jl)) != 0)
		return rc;
	rc = tk_derp_box_seal(box + TK_DERP_FRAME_HDR_LEN,
	    sizeof(box) - TK_DERP_FRAME_HDR_LEN, &bl, (const uint8_t *)js, jl,
	    c->key, c->s->priv, c->s->rng);
	if (rc != 0)
		return rc;
	tk_derp_frame_hdr(box, TK_DERP_FRAME_SERVER_INFO, (uint32_t)bl);
	return derpdi_out(c, box, TK_DERP_FRAME_HDR_LEN + bl);
}

static size_t
pending_out(const derpdi_conn *c)
{
	return c->olen - c->ooff + (c->wolen - c->wooff);
}

static int
write_pkt(derpdi_conn *c, derpdi_pkt *p)
{
	uint8_t h[TK_DERP_PACKET_HDR_LEN];
	int rc;

	tk_derp_build_packet_hdr(h, TK_DERP_FRAME_RECV_PACKET, p->src, p->len);
	if ((rc = derpdi_out(c, h, sizeof(h))) != 0 ||
	    (rc = derpdi_out(c, p->data, p->len)) != 0) {
		drop(c->s, DROP_WRITE_ERROR, p->len);
		return rc;
	}
	note_send_from_src(c, p->src);
	c->s->st.packets_sent++;
	c->s->st.bytes_sent += p->len;
	return 0;
}

static derpdi_pkt *
pop(derpdi_pktq *q)
{
	if (q->n == 0)
		return NULL;
	derpdi_pkt *p = q->p[q->head];
	q->head = (q->head + 1) % DERPD_QDEPTH;
	q->n--;
	return p;
}

void
derpdi_derp_fill(derpdi_conn *c)
{
	derpd_server *s = c->s;
	int rc = 0;

	if (c->st != CS_DERP)
		return;
	while (rc == 0 && pending_out(c) < OB_HIGH) {
		if (c->ngone) {
			for (size_t i = 0; i < c->ngone && rc == 0; i++) {
				uint8_t f[TK_DERP_PEER_GONE_FRAME_LEN];
				tk_derp_build_peer_gone(f, c->gone[i].key,
				    c->gone[i].reason);
				if (c->gone[i].reason == TK_DERP_PEER_GONE_NOT_HERE)
					s->st.peer_gone_not_here_frames++;
				else
					s->st.peer_gone_disconnected_frames++;
				rc = derpdi_out(c, f, sizeof(f));
			}
			c->ngone = 0;
			continue;
		}
		if (c->npres) {
			size_t i;
			for (i = 0; i < c->npres && rc == 0 &&
			     pending_out(c) < OB_HIGH; i++) {
				const derpdi_present *p = &c->pres[i];
				if (p->present) {
					uint8_t f[TK_DERP_PEER_PRESENT_FRAME_LEN];
					tk_derp_build_peer_present(f, p->key, p->ip,
					    p->port, p->flags);
					rc = derpdi_out(c, f, sizeof(f));
				} else {
					uint8_t f[TK_DERP_PEER_GONE_FRAME_LEN];
					tk_derp_build_peer_gone(f, p->key,
					    TK_DERP_PEER_GONE_DISCONNECTED);
					s->st.peer_gone_disconnected_frames++;
					rc = derpdi_out(c, f, sizeof(f));
				}
			}
			memmove(c->pres, c->pres + i,
			    (c->npres - i) * sizeof(*c->pres));
			c->npres -= i;
			continue;
		}
		if (c->pong_pending) {
			uint8_t f[TK_DERP_PING_FRAME_LEN];
			tk_derp_build_ping(f, TK_DERP_FRAME_PONG, c->pong);
			c->pong_pending = false;
			s->st.sent_pong++;
			rc = derpdi_out(c, f, sizeof(f));
			continue;
		}
		if (c->ka_pending) {
			uint8_t f[TK_DERP_FRAME_HDR_LEN];
			tk_derp_frame_hdr(f, TK_DERP_FRAME_KEEP_ALIVE, 0);
			c->ka_pending = false;
			rc = derpdi_out(c, f, sizeof(f));
			continue;
		}
		derpdi_pkt *p = pop(&c->dq);
		if (p == NULL)
			p = pop(&c->q);
		if (p == NULL)
			break;
		rc = write_pkt(c, p);
		tk_free(p);
	}
	if (rc != 0)
		derpdi_conn_close(c, CLOSE_NOMEM);
}

void
derpdi_derp_tick(derpdi_conn *c, uint64_t now)
{
	if (c->st == CS_DERP && c->ka_period_ns && now >= c->next_ka_ns) {
		c->ka_pending = true;
		c->next_ka_ns = now + c->ka_period_ns;
		derpdi_conn_mark_dirty(c);
	}
}

/* --- input ------------------------------------------------------------------- */

static void
admit(derpdi_conn *c, bool allow)
{
	derpd_server *s = c->s;

	if (c->st != CS_VERIFY)
		return;
	if (!allow) {
		s->st.admission_denied++;
		derpdi_conn_close(c, CLOSE_NOT_ADMITTED);
		return;
	}
	c->deadline_ns = 0;
	c->st = CS_DERP;
	if (register_client(c) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	if (send_server_info(c) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	c->ka_period_ns = (uint64_t)TK_DERP_KEEPALIVE_MS * TK_NSEC_PER_MSEC +
	    (uint64_t)tk_rng_uniform(s->rng, TK_DERP_KEEPALIVE_JITTER_MS) *
		TK_NSEC_PER_MSEC;
	c->next_ka_ns = derpdi_now(s) + c->ka_period_ns;
	derpdi_conn_mark_dirty(c);
}

/* The asynchronous verdict (server_verify.c): then process the frames
 * that arrived meanwhile. */
void
derpdi_derp_admit(derpdi_conn *c, bool allow)
{
	admit(c, allow);
	if (c->st == CS_DERP)
		derpdi_derp_input(c);
}

static void
handle_client_info(derpdi_conn *c, const uint8_t *p, size_t n)
{
	derpd_server *s = c->s;
	const uint8_t *nb;
	size_t nbl, ml;
	uint8_t pub[TK_DERP_KEY_LEN];

	if (tk_derp_parse_client_info(p, n, pub, &nb, &nbl) != 0 ||
	    nbl < TK_DERP_NONCE_LEN + TK_DERP_BOX_OVERHEAD) {
		derpdi_conn_close(c, nbl < TK_DERP_NONCE_LEN +
		    TK_DERP_BOX_OVERHEAD ? CLOSE_BAD_BOX : CLOSE_BAD_FIRST_FRAME);
		return;
	}
	size_t cap = nbl - TK_DERP_NONCE_LEN - TK_DERP_BOX_OVERHEAD;
	uint8_t *msg = tk_malloc(cap ? cap : 1);
	if (msg == NULL) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	if (tk_derp_box_open(msg, cap ? cap : 1, &ml, nb, nbl, pub, s->priv) !=
	    0) {
		tk_free(msg);
		TK_LOG_RL(&s->log_rl, s->clock, TK_LOG_INFO, DERPD_LOG,
		    "%s: ClientInfo box does not open", c->ipstr);
		derpdi_conn_close(c, CLOSE_BAD_BOX);
		return;
	}
	int rc = tk_derp_client_info_parse(msg, ml, &c->info);
	tk_secure_zero(msg, cap);
	tk_free(msg);
	if (rc != 0) {
		derpdi_conn_close(c, CLOSE_BAD_CLIENT_INFO);
		return;
	}
	memcpy(c->key, pub, TK_DERP_KEY_LEN);
	derpdi_map_init(&c->saw_src, s->hkey);
	/* derpserver.go isMeshPeer: constant-time compare of the mesh key */
	c->can_mesh = s->has_mesh_key && c->info.has_mesh_key &&
	    tk_ct_eq(c->info.mesh_key, s->mesh_key, TK_DERP_KEY_LEN);
	c->st = CS_VERIFY;
	if (c->can_mesh) {
		admit(c, true);
		return;
	}
	if (s->has_allow && derpdi_map_get(&s->allow, pub) == NULL) {
		char fp[TK_KEY_FP_MAX];
		tk_key_fingerprint(fp, TK_PREFIX_NODE_PUB, pub);
		TK_LOG_RL(&s->log_rl, s->clock, TK_LOG_INFO, DERPD_LOG,
		    "%s: %s not in the allowlist", c->ipstr, fp);
		admit(c, false);
		return;
	}
	if (s->cfg.verify_clients || s->cfg.verify_client_url != NULL) {
		if (derpdi_verify_start(c) != 0)
			admit(c, false);
		return;
	}
	admit(c, true);
}

static void
send_packet(derpdi_conn *c, const uint8_t *srckey, const uint8_t *dstkey,
    const uint8_t *pkt, size_t n, bool forwarded)
{
	derpd_server *s = c->s;
	derpdi_set *set = derpdi_map_get(&s->clients, dstkey);
	bool disco = tk_derp_looks_like_disco(pkt, n);

	s->st.packets_recv++;
	s->st.bytes_recv += n;
	if (disco)
		s->st.packets_recv_disco++;
	else
		s->st.packets_recv_other++;
	if (set != NULL && set->active != NULL) {
		enqueue(c, set->active, srckey, pkt, n);
		return;
	}
	if (!forwarded && set == NULL) {
		derpdi_mesh *fwd = derpdi_map_get(&s->mesh_fwd, dstkey);
		if (fwd != NULL) {
			s->st.packets_forwarded_out++;
			(void)derpdi_mesh_forward(fwd, srckey, dstkey, pkt, n);
			return;
		}
	}
	if (set != NULL && set->n > 1) {
		drop(s, DROP_DUP_CLIENT, n);
		return;
	}
	/* derpserver.go requestPeerGoneWriteLimited: disco only, 1/s burst 3 */
	if (disco && tk_ratelimit_take(&c->gone_rl, derpdi_now(s)))
		queue_gone(c, dstkey, TK_DERP_PEER_GONE_NOT_HERE);
	drop(s, forwarded ? DROP_UNKNOWN_DEST_ON_FWD : DROP_UNKNOWN_DEST, n);
}

static void
add_watcher(derpdi_conn *c)
{
	derpd_server *s = c->s;

	if (memcmp(c->key, s->pub, TK_DERP_KEY_LEN) == 0 || c->watcher)
		return; /* ourselves (a mesh self-connect), or again */
	if (s->nwatchers == s->capwatchers) {
		size_t ncap = s->capwatchers ? 2 * s->capwatchers : 4;
		derpdi_conn **nw = tk_realloc(s->watchers, ncap * sizeof(*nw));
		if (nw == NULL) {
			derpdi_conn_close(c, CLOSE_NOMEM);
			return;
		}
		s->watchers = nw;
		s->capwatchers = ncap;
	}
	size_t it = 0;
	derpdi_map_ent *e;
	while ((e = derpdi_map_next(&s->clients, &it)) != NULL) {
		derpdi_set *set = e->val;
		if (set->active == NULL)
			continue;
		derpdi_present p = { .present = true };
		memcpy(p.key, set->key, TK_DERP_KEY_LEN);
		memcpy(p.ip, set->active->ip16, 16);
		p.port = set->active->port;
		p.flags = present_flags(set->active);
		queue_present(c, &p);
		if (c->st == CS_CLOSED)
			return;
	}
	s->watchers[s->nwatchers++] = c;
	c->watcher = true;
	s->st.watchers++;
}

static void
close_peer(derpdi_conn *c, const uint8_t *key)
{
	derpdi_set *set = derpdi_map_get(&c->s->clients, key);
	if (set == NULL)
		return;
	/* closing unregisters and reshapes the set: close from a copy */
	size_t n = set->n;
	derpdi_conn **v = tk_malloc(n * sizeof(*v));
	if (v == NULL)
		return;
	memcpy(v, set->conns, n * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		derpdi_conn_close(v[i], CLOSE_CLOSE_PEER);
	tk_free(v);
}

static void
set_preferred(derpdi_conn *c, bool v)
{
	derpd_server *s = c->s;
	if (c->preferred == v)
		return;
	c->preferred = v;
	if (v) {
		s->st.cur_home_clients++;
		s->st.home_moves_in++;
	} else {
		s->st.cur_home_clients--;
		s->st.home_moves_out++;
	}
}

/*
 * derpserver.go rateLimit: a token bucket over each frame's length (capped
 * at 64 KiB + 32 so a frame always fits the bucket), enforced by not
 * reading (TCP back-pressure), never by dropping.  Mesh peers are exempt.
 * A frame is charged when it is whole (Go charges at its header).
 */

/* min(a * b / d, cap) without overflow and without 128-bit integers (32-bit
 * targets have none); d <= 2^32, so (a % d) * (b % d) fits in 64 bits. */
static uint64_t
muldiv_sat(uint64_t a, uint64_t b, uint64_t d, uint64_t cap)
{
	uint64_t aq = a / d, ar = a % d, bq = b / d, br = b % d;

	/* a*b/d = aq*b + ar*bq + ar*br/d (exact: the first two are whole) */
	if (b != 0 && aq > cap / b)
		return cap;
	uint64_t sum = aq * b;
	if (bq != 0 && ar > (cap - sum) / bq)
		return cap;
	sum += ar * bq;
	uint64_t rest = ar * br / d;
	return rest > cap - sum ? cap : sum + rest;
}

static bool
rate_ok(derpdi_conn *c, uint32_t len)
{
	derpd_server *s = c->s;
	uint64_t cost = TK_MIN((uint64_t)len,
	    (uint64_t)TK_DERP_MAX_PACKET_SIZE + TK_DERP_KEY_LEN);

	if (s->rate_bps == 0 || c->can_mesh)
		return true;
	uint64_t now = derpdi_now(s);
	if (c->rl_last_ns == 0) {
		c->rl_tokens = s->rate_burst;
	} else if (now > c->rl_last_ns) {
		uint64_t room = s->rate_burst - c->rl_tokens;
		c->rl_tokens += muldiv_sat(now - c->rl_last_ns, s->rate_bps,
		    TK_NSEC_PER_SEC, room);
	}
	c->rl_last_ns = now;
	if (c->rl_tokens >= cost) {
		c->rl_tokens -= cost;
		return true;
	}
	s->st.rate_limit_waits++;
	uint64_t wait = (cost - c->rl_tokens) * TK_NSEC_PER_SEC / s->rate_bps + 1;
	derpdi_conn_pause_for(c, wait);
	return false;
}

bool
derpdi_conn_frame_head(derpdi_conn *c, const uint8_t **h, uint32_t *len,
    bool *whole)
{
	size_t avail = c->ilen - c->ioff;

	if (c->skip) {
		size_t k = c->skip < avail ? (size_t)c->skip : avail;
		c->ioff += k;
		c->skip -= k;
		avail -= k;
		if (c->skip)
			return false;
	}
	if (avail < TK_DERP_FRAME_HDR_LEN)
		return false;
	*h = c->ib + c->ioff;
	*len = tk_be32_load(*h + 1);
	*whole = avail - TK_DERP_FRAME_HDR_LEN >= *len;
	return true;
}

/* Largest frame the server buffers (ClientInfo's limit). */
#define FRAME_MAX (TK_DERP_FRAME_HDR_LEN + TK_DERP_CLIENT_INFO_MAX)

int
derpdi_derp_input(derpdi_conn *c)
{
	derpd_server *s = c->s;

	while (c->st == CS_INFO || c->st == CS_DERP) {
		const uint8_t *h;
		uint32_t len;
		bool whole;
		if (!derpdi_conn_frame_head(c, &h, &len, &whole))
			break;
		uint8_t type = h[0];
		const uint8_t *p = h + TK_DERP_FRAME_HDR_LEN;

		if (c->st == CS_INFO) {
			/* derpserver.go recvClientKey */
			if (type != TK_DERP_FRAME_CLIENT_INFO ||
			    len < TK_DERP_CLIENT_INFO_MIN ||
			    len > TK_DERP_CLIENT_INFO_MAX) {
				derpdi_conn_close(c, CLOSE_BAD_FIRST_FRAME);
				return TK_ECLOSED;
			}
			if (!whole)
				break;
			c->ioff += TK_DERP_FRAME_HDR_LEN + len;
			handle_client_info(c, p, len);
			continue;
		}
		/* derpserver.go run: length and permission rules first */
		bool bad = false, perm = false;
		switch (type) {
		case TK_DERP_FRAME_SEND_PACKET:
			bad = len < TK_DERP_KEY_LEN ||
			    len > TK_DERP_KEY_LEN + TK_DERP_MAX_PACKET_SIZE;
			break;
		case TK_DERP_FRAME_FORWARD_PACKET:
			perm = !c->can_mesh;
			bad = len < 2 * TK_DERP_KEY_LEN ||
			    len > 2 * TK_DERP_KEY_LEN + TK_DERP_MAX_PACKET_SIZE;
			break;
		case TK_DERP_FRAME_NOTE_PREFERRED:
			bad = len != 1;
			break;
		case TK_DERP_FRAME_WATCH_CONNS:
			bad = len != 0;
			perm = !bad && !c->can_mesh;
			break;
		case TK_DERP_FRAME_CLOSE_PEER:
			bad = len != TK_DERP_KEY_LEN;
			perm = !bad && !c->can_mesh;
			break;
		case TK_DERP_FRAME_PING:
			bad = len < TK_DERP_PING_LEN || len > TK_DERP_PING_MAX_LEN;
			break;
		default:
			/* handleUnknownFrame: skip, however long */
			if (!rate_ok(c, len))
				goto out;
			note_activity(c);
			s->st.unknown_frames++;
			c->ioff += TK_DERP_FRAME_HDR_LEN;
			c->skip = len;
			continue;
		}
		if (perm) {
			derpdi_conn_close(c, CLOSE_NO_PERMISSION);
			return TK_ECLOSED;
		}
		if (bad) {
			derpdi_conn_close(c, CLOSE_BAD_FRAME);
			return TK_ECLOSED;
		}
		if (!whole)
			break;
		if (!rate_ok(c, len))
			break; /* reads paused; the tick resumes */
		c->ioff += TK_DERP_FRAME_HDR_LEN + len;
		note_activity(c);
		switch (type) {
		case TK_DERP_FRAME_SEND_PACKET:
			send_packet(c, c->key, p, p + TK_DERP_KEY_LEN,
			    len - TK_DERP_KEY_LEN, false);
			break;
		case TK_DERP_FRAME_FORWARD_PACKET:
			s->st.packets_forwarded_in++;
			send_packet(c, p, p + TK_DERP_KEY_LEN,
			    p + 2 * TK_DERP_KEY_LEN, len - 2 * TK_DERP_KEY_LEN,
			    true);
			break;
		case TK_DERP_FRAME_NOTE_PREFERRED:
			set_preferred(c, p[0] != 0);
			break;
		case TK_DERP_FRAME_WATCH_CONNS:
			add_watcher(c);
			break;
		case TK_DERP_FRAME_CLOSE_PEER:
			close_peer(c, p);
			break;
		case TK_DERP_FRAME_PING:
			s->st.got_ping++;
			if (!c->pong_pending) { /* a 1-slot channel in Go */
				memcpy(c->pong, p, TK_DERP_PING_LEN);
				c->pong_pending = true;
				derpdi_conn_mark_dirty(c);
			}
			break;
		}
	}
out:
	if (c->st == CS_CLOSED)
		return TK_ECLOSED;
	/* compact */
	if (c->ioff == c->ilen) {
		c->ioff = c->ilen = 0;
	} else if (c->ioff > 0 && c->ilen - c->ioff < c->ioff) {
		memmove(c->ib, c->ib + c->ioff, c->ilen - c->ioff);
		c->ilen -= c->ioff;
		c->ioff = 0;
	}
	(void)FRAME_MAX;
	return 0;
}
