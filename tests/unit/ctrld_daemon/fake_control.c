/*
 * A scripted, hostile ts2021 control server for ctrld's robustness tests:
 * GET /key, the POST /ts2021 upgrade with the Noise responder, HTTP/2
 * (nghttp2 server), /machine/register and /machine/map.  Each map stream
 * sends one good netmap, then what the test asked for: garbage JSON, a
 * Noise record that does not authenticate, an absurd frame length, or
 * nothing (keep-alives only).  One connection at a time, on its own thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <zstd.h>

#include "fake_control.h"
#include "tk/buf.h"
#include "tk/enc.h"
#include "tk/endian.h"
#include "tk/keys.h"
#include "tk/noise.h"

#define GOOD_MAP                                                             \
	"{\"Node\":{\"ID\":1,\"Name\":\"tk.fake.\",\"Key\":\"nodekey:"       \
	"1111111111111111111111111111111111111111111111111111111111111111\"," \
	"\"Addresses\":[\"100.64.0.1/32\"]},\"Peers\":[{\"ID\":2,"            \
	"\"Name\":\"peer.fake.\",\"Key\":\"nodekey:"                         \
	"2222222222222222222222222222222222222222222222222222222222222222\"," \
	"\"Addresses\":[\"100.64.0.2/32\"],\"Endpoints\":[\"127.0.0.1:4\"]}]," \
	"\"PacketFilter\":[{\"SrcIPs\":[\"*\"],\"DstPorts\":[{\"IP\":\"*\","  \
	"\"Ports\":{\"First\":0,\"Last\":65535}}]}]}"

typedef struct conn {
	fake_control *f;
	int fd;
	tk_noise_cs tx, rx;
	nghttp2_session *h2;
	uint8_t in[8192];
	size_t inlen;
	int32_t map_stream;
	tk_buf map_out; /* bytes queued for the map stream */
	size_t map_off;
	bool map_deferred, bad_sent, dead;
	char path[8][64];
	char lb[8][200];
	bool omit[8];
	int32_t ids[8];
} conn;

static void
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		b += k;
		n -= (size_t)k;
	}
}

static void
seal_send(conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		uint8_t rec[4096];
		size_t k = n > 4077 ? 4077 : n;
		rec[0] = 4;
		tk_be16_store(rec + 1, (uint16_t)(k + 16));
		tk_noise_cs_seal(&c->tx, rec + 3, NULL, 0, p, k);
		write_all(c->fd, rec, 3 + k + 16);
		p += k;
		n -= k;
	}
}

static void
h2_flush(conn *c)
{
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(c->h2, &p);
		if (n <= 0)
			return;
		seal_send(c, p, (size_t)n);
	}
}

/* Streaming compression in small pieces, as an encoder writing to a
 * stream does: the frame has no content size. */
static size_t
compress_stream(uint8_t *z, size_t cap, const char *json, size_t n)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_outBuffer out = { z, cap, 0 };
	size_t off = 0, r;

	do {
		size_t k = n - off > 100 ? 100 : n - off;
		ZSTD_inBuffer in = { json + off, k, 0 };
		ZSTD_EndDirective e = off + k == n ? ZSTD_e_end : ZSTD_e_continue;
		do
			r = ZSTD_compressStream2(cc, &out, &in, e);
		while (!ZSTD_isError(r) && (in.pos < in.size || (e == ZSTD_e_end && r)));
		off += k;
	} while (off < n && !ZSTD_isError(r));
	ZSTD_freeCCtx(cc);
	if (ZSTD_getFrameContentSize(z, out.pos) != ZSTD_CONTENTSIZE_UNKNOWN)
		abort(); /* the test would not test what it says */
	return out.pos;
}

static void
queue_frame(conn *c, const char *json)
{
	size_t n = strlen(json), cap = ZSTD_compressBound(n) + 4096;
	uint8_t *z = malloc(cap);
	size_t zn = c->f->zstd_no_size ? compress_stream(z, cap, json, n) :
	    ZSTD_compress(z, cap, json, n, 1);
	uint8_t len[4];

	tk_le32_store(len, (uint32_t)zn);
	tk_buf_append(&c->map_out, len, 4);
	tk_buf_append(&c->map_out, z, zn);
	free(z);
}

static ssize_t
map_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	conn *c = user;
	size_t k = c->map_out.len - c->map_off;

	(void)s, (void)id, (void)flags, (void)src;
	if (k == 0) {
		c->map_deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (k > len)
		k = len;
	memcpy(buf, c->map_out.data + c->map_off, k);
	c->map_off += k;
	return (ssize_t)k;
}

static ssize_t
str_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	const char *body = src->ptr;
	size_t n = strlen(body);

	(void)s, (void)id, (void)user;
	if (n > len)
		n = len;
	memcpy(buf, body, n);
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int
slot(conn *c, int32_t id)
{
	for (int i = 0; i < 8; i++)
		if (c->ids[i] == id)
			return i;
	for (int i = 0; i < 8; i++)
		if (c->ids[i] == 0) {
			c->ids[i] = id;
			c->path[i][0] = '\0';
			c->lb[i][0] = '\0';
			c->omit[i] = false;
			return i;
		}
	return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name,
    size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	conn *c = user;
	int i = slot(c, fr->hd.stream_id);

	(void)s, (void)flags;
	if (nl == 5 && memcmp(name, ":path", 5) == 0 && vl < sizeof(c->path[0]))
		snprintf(c->path[i], sizeof(c->path[0]), "%.*s", (int)vl, value);
	if (nl == 5 && memcmp(name, ":path", 5) == 0 &&
	    strcmp(c->path[i], "/machine/register") == 0) {
		pthread_mutex_lock(&c->f->mu);
		c->f->reg_body[0] = '\0';
		pthread_mutex_unlock(&c->f->mu);
	}
	if (nl == 5 && memcmp(name, "ts-lb", 5) == 0) {
		size_t l = strlen(c->lb[i]);
		snprintf(c->lb[i] + l, sizeof(c->lb[0]) - l, "%s%.*s", l ? "," : "",
		    (int)vl, value);
	}
	return 0;
}

static int
on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
    size_t len, void *user)
{
	conn *c = user;
	int i = slot(c, id);

	(void)s, (void)flags;
	if (memmem(data, len, "\"OmitPeers\":true", 16) != NULL)
		c->omit[i] = true;
	if (strcmp(c->path[i], "/machine/register") == 0) {
		pthread_mutex_lock(&c->f->mu);
		size_t l = strlen(c->f->reg_body);
		snprintf(c->f->reg_body + l, sizeof(c->f->reg_body) - l, "%.*s",
		    (int)len, data);
		pthread_mutex_unlock(&c->f->mu);
	}
	return 0;
}

static int
on_frame(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
	conn *c = user;
	static const char reg[] = "{\"User\":{\"ID\":1},\"MachineAuthorized\":true,"
	    "\"AuthURL\":\"\",\"Error\":\"\"}";
	nghttp2_nv st = { (uint8_t *)":status", (uint8_t *)"200", 7, 3,
		NGHTTP2_NV_FLAG_NONE };

	if (!(fr->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
	    (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA))
		return 0;
	int i = slot(c, fr->hd.stream_id);
	pthread_mutex_lock(&c->f->mu);
	if (strcmp(c->path[i], "/machine/register") == 0) {
		snprintf(c->f->reg_lb, sizeof(c->f->reg_lb), "%s", c->lb[i]);
		c->f->registers++;
	} else if (strcmp(c->path[i], "/machine/map") == 0 && !c->omit[i]) {
		snprintf(c->f->map_lb, sizeof(c->f->map_lb), "%s", c->lb[i]);
	}
	pthread_mutex_unlock(&c->f->mu);
	if (strcmp(c->path[i], "/machine/register") == 0) {
		nghttp2_data_provider dp = { .source.ptr = (void *)reg,
			.read_callback = str_read };
		nghttp2_submit_response(s, fr->hd.stream_id, &st, 1, &dp);
	} else if (strcmp(c->path[i], "/machine/map") == 0 && c->omit[i]) {
		nghttp2_data_provider dp = { .source.ptr = (void *)"",
			.read_callback = str_read };
		nghttp2_submit_response(s, fr->hd.stream_id, &st, 1, &dp);
	} else if (strcmp(c->path[i], "/machine/map") == 0) {
		nghttp2_data_provider dp = { .read_callback = map_read };
		c->map_stream = fr->hd.stream_id;
		queue_frame(c, GOOD_MAP);
		__atomic_add_fetch(&c->f->maps_served, 1, __ATOMIC_SEQ_CST);
		nghttp2_submit_response(s, fr->hd.stream_id, &st, 1, &dp);
	}
	c->ids[i] = 0;
	return 0;
}

/* After the good netmap went out: the scripted misbehaviour. */
static void
misbehave(conn *c)
{
	uint8_t junk[64];

	c->bad_sent = true;
	switch (c->f->mode) {
	case FAKE_GARBAGE_JSON:
		queue_frame(c, "{\"Peers\":[{\"ID\":\"two\"}], not json");
		break;
	case FAKE_BAD_RECORD:
		memset(junk, 0xa5, sizeof(junk));
		junk[0] = 4;
		tk_be16_store(junk + 1, sizeof(junk) - 3);
		write_all(c->fd, junk, sizeof(junk));
		return;
	case FAKE_HUGE_LENGTH: {
		uint8_t len[4] = { 0xff, 0xff, 0xff, 0x7f };
		tk_buf_append(&c->map_out, len, 4);
		break;
	}
	default:
		return;
	}
	if (c->map_deferred) {
		c->map_deferred = false;
		nghttp2_session_resume_data(c->h2, c->map_stream);
	}
}

static int
read_head(int fd, char *buf, size_t cap, size_t *len)
{
	*len = 0;
	while (*len < cap - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 2000) <= 0)
			return -1;
		ssize_t k = recv(fd, buf + *len, cap - 1 - *len, 0);
		if (k <= 0)
			return -1;
		*len += (size_t)k;
		buf[*len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return 0;
	}
	return -1;
}

static void
serve(fake_control *f, int fd)
{
	char head[8192];
	size_t hl;

	if (read_head(fd, head, sizeof(head), &hl) != 0)
		return;
	if (strncmp(head, "GET /key", 8) == 0) {
		char body[200], resp[400], hex[65];
		tk_hex_encode(hex, f->pub, 32);
		snprintf(body, sizeof(body), "{\"legacyPublicKey\":\"mkey:%064d\","
		    "\"publicKey\":\"mkey:%s\"}", 0, hex);
		snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n"
		    "\r\n%s", strlen(body), body);
		write_all(fd, resp, strlen(resp));
		return;
	}
	const char *h = strcasestr(head, "X-Tailscale-Handshake: ");
	if (h == NULL)
		return;
	h += 23;
	uint8_t init[128];
	size_t il;
	if (tk_base64_decode(init, sizeof(init), &il, h, strcspn(h, "\r\n")) != 0 ||
	    il != 101)
		return;
	static const char prologue[] = "Tailscale Control Protocol v113";
	tk_noise_config nc = { .protocol_name = TK_NOISE_IK_NAME,
		.prologue = (const uint8_t *)prologue, .prologue_len = sizeof(prologue) - 1,
		.role = TK_NOISE_RESPONDER, .local_static_priv = f->priv };
	tk_noise_hs hs;
	uint8_t resp[51], ks[32], kr[32];
	size_t n;
	if (tk_noise_hs_init(&hs, &nc) != 0 ||
	    tk_noise_hs_read_msg1(&hs, init + 5, 96, NULL, 0, &n) != 0)
		return;
	resp[0] = 2;
	tk_be16_store(resp + 1, 48);
	tk_noise_hs_write_msg2(&hs, NULL, 0, resp + 3, 48, &n);
	tk_noise_hs_split(&hs, ks, kr);
	static const char up[] = "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n";
	if (f->upgrade_head != NULL)
		write_all(fd, f->upgrade_head, strlen(f->upgrade_head));
	else
		write_all(fd, up, sizeof(up) - 1);
	write_all(fd, resp, sizeof(resp));

	conn c;
	memset(&c, 0, sizeof(c));
	c.f = f;
	c.fd = fd;
	tk_noise_cs_init(&c.tx, ks, TK_NONCE_BE);
	tk_noise_cs_init(&c.rx, kr, TK_NONCE_BE);
	tk_buf_init(&c.map_out);
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	nghttp2_session_server_new(&c.h2, cb, &c);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(c.h2, NGHTTP2_FLAG_NONE, NULL, 0);
	h2_flush(&c);
	int idle = 0;
	while (!f->stop && !c.dead) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, 100);
		if (k > 0) {
			ssize_t r = recv(fd, c.in + c.inlen, sizeof(c.in) - c.inlen, 0);
			if (r <= 0)
				break;
			c.inlen += (size_t)r;
			size_t off = 0;
			while (c.inlen - off >= 3) {
				size_t cl = tk_be16_load(c.in + off + 1);
				if (c.inlen - off < 3 + cl)
					break;
				uint8_t pt[4096];
				if (tk_noise_cs_open(&c.rx, pt, NULL, 0, c.in + off + 3, cl) != 0) {
					c.dead = true;
					break;
				}
				nghttp2_session_mem_recv(c.h2, pt, cl - 16);
				off += 3 + cl;
			}
			memmove(c.in, c.in + off, c.inlen - off);
			c.inlen -= off;
		} else if (c.map_stream && !c.bad_sent && ++idle >= 3) {
			misbehave(&c); /* ~300 ms after the good netmap */
		}
		h2_flush(&c);
	}
	nghttp2_session_del(c.h2);
	tk_buf_fini(&c.map_out);
	tk_noise_hs_wipe(&hs);
}

static void *
run(void *arg)
{
	fake_control *f = arg;

	while (!f->stop) {
		struct pollfd p = { .fd = f->lfd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		__atomic_add_fetch(&f->conns, 1, __ATOMIC_SEQ_CST);
		serve(f, fd);
		close(fd);
	}
	return NULL;
}

int
fake_control_start(fake_control *f, int mode)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	pthread_mutex_init(&f->mu, NULL);
	tk_key_generate(f->priv, NULL);
	tk_key_public(f->pub, f->priv);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(f->lfd, 8) != 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	f->port = ntohs(sa.sin_port);
	return pthread_create(&f->thr, NULL, run, f) == 0 ? 0 : -1;
}

void
fake_control_stop(fake_control *f)
{
	f->stop = true;
	pthread_join(f->thr, NULL);
	close(f->lfd);
	pthread_mutex_destroy(&f->mu);
}
