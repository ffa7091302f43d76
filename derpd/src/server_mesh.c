/*
 * Mesh links to the other servers of the region (cmd/derper mesh.go,
 * derphttp/mesh_client.go RunWatchConnectionLoop): for each --mesh-with
 * host, a DERP client on this loop that logs in with the server's own key
 * and the mesh key, sends WatchConns, and turns PeerPresent/PeerGone into
 * packet forwarders; SendPacket for a key that only a mesh peer has
 * becomes ForwardPacket on that link.  Reconnects 5 s after a failure.
 *
 * Hosts: "host[:port][/dialhost]" as derper takes them (https, port 443 by
 * default); "http://host:port" is a derpd extension for plain-HTTP peers.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_int.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"

#define MESH_OUT_MAX (4u << 20) /* forwarded bytes waiting on one link */

struct derpdi_mesh {
	derpd_server *s;
	derpdi_mesh *next;
	char host[256];	 /* name in the URL, without the port: TLS name */
	char hosthdr[264]; /* host[:port] as in the URL: the Host header */
	char dial[256];	 /* address to dial */
	char port[8];
	bool tls;
	bool self;	 /* this is us: stop */
	derpdi_conn *conn;
	tk_loop_timer *retry;
	derpdi_map learned; /* keys this link reported present */
};

static void dial(derpdi_mesh *m);

static void
retry_fire(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop;
	(void)t;
	dial(arg);
}

static void
schedule_retry(derpdi_mesh *m)
{
	if (!m->self && m->retry)
		tk_loop_timer_arm(m->retry,
		    (uint64_t)TK_DERP_MESH_RETRY_MS * TK_NSEC_PER_MSEC, 0);
}

static bool
is_ip_literal(const char *h)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST }, *ai = NULL;
	if (getaddrinfo(h, NULL, &hints, &ai) != 0)
		return false;
	freeaddrinfo(ai);
	return true;
}

static void
dial(derpdi_mesh *m)
{
	derpd_server *s = m->s;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1, rc;

	/* getaddrinfo blocks the loop for a name lookup: mesh peers are
	 * few and usually given as addresses or /etc/hosts names */
	if ((rc = getaddrinfo(m->dial, m->port, &hints, &ai)) != 0) {
		TK_WARN(DERPD_LOG, "mesh %s: cannot resolve %s: %s", m->hosthdr,
		    m->dial, gai_strerror(rc));
		schedule_retry(m);
		return;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS)) {
		TK_WARN(DERPD_LOG, "mesh %s: connect: %s", m->hosthdr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		schedule_retry(m);
		return;
	}
	freeaddrinfo(ai);
	derpdi_conn *c = derpdi_conn_new(s, fd,
	    m->tls ? DERPDI_TLS_CLIENT : DERPDI_TLS_NONE);
	if (c == NULL) {
		close(fd);
		schedule_retry(m);
		return;
	}
	snprintf(c->ipstr, sizeof(c->ipstr), "mesh:%.58s", m->host);
	c->mesh = m;
	c->can_mesh = true; /* the 30 s write timeout */
	c->st = CS_MCONNECT;
	c->deadline_ns = derpdi_now(s) + 10 * TK_NSEC_PER_SEC; /* derphttp */
	m->conn = c;
	if (c->tls) {
		if (!is_ip_literal(m->host))
			gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, m->host,
			    strlen(m->host));
		gnutls_session_set_verify_cert(c->tls, m->host, 0);
	}
	if (derpdi_conn_watch(c, TK_LOOP_READ | TK_LOOP_WRITE) != 0)
		derpdi_conn_close(c, CLOSE_NOMEM);
}

void
derpdi_mesh_connected(derpdi_conn *c)
{
	derpdi_mesh *m = c->mesh;
	char req[512];
	int n = snprintf(req, sizeof(req),
	    "GET /derp HTTP/1.1\r\nHost: %s\r\nUser-Agent: tailkit-derpd\r\n"
	    "Upgrade: DERP\r\nConnection: Upgrade\r\n\r\n", m->hosthdr);
	if (derpdi_out(c, req, (size_t)n) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	c->st = CS_MHTTP;
	derpdi_conn_mark_dirty(c);
}

static void
forwarder_add(derpdi_mesh *m, const uint8_t *key)
{
	derpd_server *s = m->s;
	if (derpdi_map_get(&m->learned, key))
		return;
	if (derpdi_map_put(&m->learned, key, (void *)1) != 0)
		return;
	/* AddPacketForwarder: the first registered link stays preferred */
	if (derpdi_map_get(&s->mesh_fwd, key) == NULL)
		derpdi_map_put(&s->mesh_fwd, key, m);
}

static void
forwarder_remove(derpdi_mesh *m, const uint8_t *key)
{
	derpd_server *s = m->s;
	if (derpdi_map_get(&m->learned, key) == NULL)
		return;
	derpdi_map_del(&m->learned, key);
	if (derpdi_map_get(&s->mesh_fwd, key) != m)
		return;
	/* another link that knows the key takes over */
	for (derpdi_mesh *o = s->meshes; o; o = o->next) {
		if (o != m && derpdi_map_get(&o->learned, key)) {
			derpdi_map_put(&s->mesh_fwd, key, o);
			return;
		}
	}
	derpdi_map_del(&s->mesh_fwd, key);
	if (derpdi_map_get(&s->clients, key) == NULL)
		derpdi_peer_gone_from_region(s, key);
}

void
derpdi_mesh_closed(derpdi_conn *c)
{
	derpdi_mesh *m = c->mesh;
	c->mesh = NULL;
	if (m == NULL)
		return;
	m->conn = NULL;
	/* everything learned through this link is gone */
	size_t it = 0;
	derpdi_map_ent *e;
	uint8_t k[TK_DERP_KEY_LEN];
	while ((e = derpdi_map_next(&m->learned, &it)) != NULL) {
		memcpy(k, e->key, sizeof(k));
		forwarder_remove(m, k);
		it = 0; /* the map changed under us */
	}
	schedule_retry(m);
}

static int
send_client_info(derpdi_conn *c)
{
	derpd_server *s = c->s;
	tk_derp_client_info ci = { .version = TK_DERP_PROTOCOL_VERSION,
		.can_ack_pings = true, .has_mesh_key = true };
	char js[256];
	size_t jl, bl;
	uint8_t f[TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN +
	    TK_DERP_SEALED_LEN(sizeof(js))];
	int rc;

	memcpy(ci.mesh_key, s->mesh_key, TK_DERP_KEY_LEN);
	rc = tk_derp_client_info_json(&ci, js, sizeof(js), &jl);
	tk_secure_zero(ci.mesh_key, sizeof(ci.mesh_key));
	if (rc != 0)
		return rc;
	memcpy(f + TK_DERP_FRAME_HDR_LEN, s->pub, TK_DERP_KEY_LEN);
	rc = tk_derp_box_seal(f + TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN,
	    sizeof(f) - TK_DERP_FRAME_HDR_LEN - TK_DERP_KEY_LEN, &bl,
	    (const uint8_t *)js, jl, c->key, s->priv, s->rng);
	tk_secure_zero(js, sizeof(js));
	if (rc != 0)
		return rc;
	tk_derp_frame_hdr(f, TK_DERP_FRAME_CLIENT_INFO,
	    (uint32_t)(TK_DERP_KEY_LEN + bl));
	rc = derpdi_out(c, f, TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN + bl);
	if (rc == 0) {
		uint8_t w[TK_DERP_FRAME_HDR_LEN];
		tk_derp_frame_hdr(w, TK_DERP_FRAME_WATCH_CONNS, 0);
		rc = derpdi_out(c, w, sizeof(w));
	}
	return rc;
}

void
derpdi_mesh_input(derpdi_conn *c)
{
	derpdi_mesh *m = c->mesh;
	derpd_server *s = c->s;

	if (m == NULL)
		return;
	if (c->st == CS_MHTTP) {
		int status;
		size_t hl;
		int rc = tk_derp_http_response(c->ib + c->ioff, c->ilen - c->ioff,
		    &status, &hl);
		if (rc == TK_EAGAIN)
			return;
		if (rc != 0 || status != 101) {
			TK_WARN(DERPD_LOG, "mesh %s: upgrade refused (HTTP %d)",
			    m->hosthdr, rc ? 0 : status);
			derpdi_conn_close(c, CLOSE_BAD_HTTP);
			return;
		}
		c->ioff += hl;
		c->st = CS_MKEY;
	}
	while (c->st == CS_MKEY || c->st == CS_MDERP) {
		const uint8_t *h;
		uint32_t len;
		bool whole;
		if (!derpdi_conn_frame_head(c, &h, &len, &whole))
			break;
		if (len > TK_DERP_CLIENT_INFO_MAX) { /* nothing we need is this big */
			c->ioff += TK_DERP_FRAME_HDR_LEN;
			c->skip = len;
			continue;
		}
		if (!whole)
			break;
		tk_derp_frame f = { .type = h[0], .len = len,
			.payload = h + TK_DERP_FRAME_HDR_LEN };
		c->ioff += TK_DERP_FRAME_HDR_LEN + len;
		tk_derp_event ev;
		if (tk_derp_client_decode(&f, &ev) != 0)
			continue; /* malformed: Go's client drops it too */
		if (c->st == CS_MKEY) {
			if (ev.type != TK_DERP_EV_SERVER_KEY) {
				derpdi_conn_close(c, CLOSE_BAD_FIRST_FRAME);
				return;
			}
			memcpy(c->key, ev.key, TK_DERP_KEY_LEN);
			if (memcmp(c->key, s->pub, TK_DERP_KEY_LEN) == 0) {
				TK_INFO(DERPD_LOG, "mesh %s: that is this server; "
				    "not meshing with it", m->hosthdr);
				m->self = true;
				derpdi_conn_close(c, CLOSE_SHUTDOWN);
				return;
			}
			if (send_client_info(c) != 0) {
				derpdi_conn_close(c, CLOSE_NOMEM);
				return;
			}
			c->st = CS_MDERP;
			c->deadline_ns = 0;
			s->st.mesh_connects++;
			char fp[TK_KEY_FP_MAX];
			tk_key_fingerprint(fp, TK_PREFIX_NODE_PUB, c->key);
			TK_INFO(DERPD_LOG, "mesh %s: connected (%s)", m->hosthdr, fp);
			derpdi_conn_mark_dirty(c);
			continue;
		}
		switch (ev.type) {
		case TK_DERP_EV_PEER_PRESENT:
			forwarder_add(m, ev.present.key);
			break;
		case TK_DERP_EV_PEER_GONE:
			forwarder_remove(m, ev.key);
			break;
		case TK_DERP_EV_PING: {
			uint8_t pf[TK_DERP_PING_FRAME_LEN];
			tk_derp_build_ping(pf, TK_DERP_FRAME_PONG, ev.data);
			if (derpdi_out(c, pf, sizeof(pf)) == 0)
				derpdi_conn_mark_dirty(c);
			break;
		}
		default:
			break; /* ServerInfo, KeepAlive, Health, ... */
		}
	}
	if (c->st != CS_CLOSED && c->ioff == c->ilen)
		c->ioff = c->ilen = 0;
}

int
derpdi_mesh_forward(derpdi_mesh *m, const uint8_t *src, const uint8_t *dst,
    const uint8_t *pkt, size_t n)
{
	derpdi_conn *c = m->conn;
	uint8_t h[TK_DERP_FORWARD_HDR_LEN];

	if (c == NULL || c->st != CS_MDERP) {
		m->s->st.packets_dropped[DROP_WRITE_ERROR]++;
		m->s->st.bytes_dropped[DROP_WRITE_ERROR] += n;
		return TK_ECLOSED;
	}
	if (c->olen - c->ooff + sizeof(h) + n > MESH_OUT_MAX) {
		m->s->st.packets_dropped[DROP_QUEUE_TAIL]++;
		m->s->st.bytes_dropped[DROP_QUEUE_TAIL] += n;
		return TK_EAGAIN;
	}
	tk_derp_build_forward_hdr(h, src, dst, n);
	if (derpdi_out(c, h, sizeof(h)) != 0 || derpdi_out(c, pkt, n) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return TK_ENOMEM;
	}
	derpdi_conn_mark_dirty(c);
	return 0;
}

static int
parse_host(derpdi_mesh *m, const char *t, size_t n)
{
	char buf[256];
	if (n == 0 || n >= sizeof(buf))
		return TK_EINVAL;
	memcpy(buf, t, n);
	buf[n] = '\0';
	char *h = buf;
	m->tls = true;
	if (strncmp(h, "https://", 8) == 0) {
		h += 8;
	} else if (strncmp(h, "http://", 7) == 0) {
		h += 7;
		m->tls = false;
	}
	char *slash = strchr(h, '/');
	const char *dialhost = NULL;
	if (slash) {
		*slash = '\0';
		dialhost = slash + 1;
		if (strchr(dialhost, '/'))
			return TK_EINVAL;
	}
	/* host[:port], [v6][:port] */
	snprintf(m->port, sizeof(m->port), "%s", m->tls ? "443" : "80");
	char *hp = h, *colon = NULL;
	if (*hp == '[') {
		char *e = strchr(hp, ']');
		if (!e)
			return TK_EINVAL;
		colon = e[1] == ':' ? e + 1 : NULL;
	} else {
		colon = strrchr(hp, ':');
	}
	snprintf(m->hosthdr, sizeof(m->hosthdr), "%s", h);
	if (colon) {
		*colon = '\0';
		if (!colon[1] || strlen(colon + 1) >= sizeof(m->port))
			return TK_EINVAL;
		snprintf(m->port, sizeof(m->port), "%s", colon + 1);
	}
	if (*hp == '[') {
		hp++;
		hp[strlen(hp) - 1] = '\0';
	}
	if (!*hp)
		return TK_EINVAL;
	snprintf(m->host, sizeof(m->host), "%s", hp);
	snprintf(m->dial, sizeof(m->dial), "%s", dialhost && *dialhost ? dialhost : hp);
	return 0;
}

int
derpdi_mesh_start(derpd_server *s, char *err, size_t errlen)
{
	const char *p = s->cfg.mesh_with;
	bool any_tls = false;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n > 0) {
			derpdi_mesh *m = tk_calloc(1, sizeof(*m));
			if (m == NULL)
				return TK_ENOMEM;
			m->s = s;
			derpdi_map_init(&m->learned, s->hkey);
			m->next = s->meshes;
			s->meshes = m;
			if (parse_host(m, p, n) != 0) {
				snprintf(err, errlen, "--mesh-with: bad host '%.*s' "
				    "(want host[:port][/dialhost])", (int)n, p);
				return TK_EINVAL;
			}
			any_tls |= m->tls;
			if (tk_loop_timer_new(s->loop, &m->retry, retry_fire, m) != 0)
				return TK_ENOMEM;
		}
		p += n + (e ? 1 : 0);
	}
	if (any_tls) {
		int rc = gnutls_certificate_allocate_credentials(&s->ccred);
		if (rc != 0)
			return tk_err_tls(rc);
		gnutls_certificate_set_x509_system_trust(s->ccred);
		const char *f = getenv("SSL_CERT_FILE");
		if (f && *f)
			gnutls_certificate_set_x509_trust_file(s->ccred, f,
			    GNUTLS_X509_FMT_PEM);
	}
	/* first dials from the loop thread, right after start */
	for (derpdi_mesh *m = s->meshes; m; m = m->next)
		tk_loop_timer_arm(m->retry, 1, 0);
	return 0;
}

void
derpdi_mesh_stop(derpd_server *s)
{
	while (s->meshes) {
		derpdi_mesh *m = s->meshes;
		s->meshes = m->next;
		if (m->conn) {
			m->conn->mesh = NULL;
			derpdi_conn_close(m->conn, CLOSE_SHUTDOWN);
		}
		tk_loop_timer_free(m->retry);
		derpdi_map_fini(&m->learned);
		tk_free(m);
	}
	derpdi_map_fini(&s->mesh_fwd);
}
