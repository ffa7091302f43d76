/*
 * tk-derp: look at one DERP server, in the spirit of `tailscale debug derp`.
 *
 *   tk-derp probe URL [--insecure] [--ca-file F] [--count N] [--trace]
 *                     [--timeout MS] [--stun HOST:PORT]
 *
 * URL is http://host:port/derp or https://host[:port]/derp.  The probe
 * connects with a fresh key of its own (it is a debugging client, not the
 * node), upgrades, checks the ServerKey, seals a ClientInfo, opens the
 * ServerInfo, sends a Ping and waits for the Pong, then sends N packets to
 * its own key through the server and times their return.  --trace prints
 * every frame in both directions (type, length, the first bytes).  --stun
 * also sends a STUN binding request (Go's format) to the node's STUN port
 * and prints the mapped address and the round trip.  Exit 0 when
 * everything answered; what failed is printed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include "tk/core.h"
#include "tk/derp.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/stun.h"

static struct {
	int fd;
	gnutls_session_t tls;
	bool use_tls, trace;
	int timeout_ms;
	tk_derp_rx rx;
} g = { .fd = -1, .timeout_ms = 5000 };

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *
frame_name(uint8_t t)
{
	switch (t) {
	case TK_DERP_FRAME_SERVER_KEY: return "ServerKey";
	case TK_DERP_FRAME_CLIENT_INFO: return "ClientInfo";
	case TK_DERP_FRAME_SERVER_INFO: return "ServerInfo";
	case TK_DERP_FRAME_SEND_PACKET: return "SendPacket";
	case TK_DERP_FRAME_RECV_PACKET: return "RecvPacket";
	case TK_DERP_FRAME_KEEP_ALIVE: return "KeepAlive";
	case TK_DERP_FRAME_NOTE_PREFERRED: return "NotePreferred";
	case TK_DERP_FRAME_PEER_GONE: return "PeerGone";
	case TK_DERP_FRAME_PEER_PRESENT: return "PeerPresent";
	case TK_DERP_FRAME_FORWARD_PACKET: return "ForwardPacket";
	case TK_DERP_FRAME_WATCH_CONNS: return "WatchConns";
	case TK_DERP_FRAME_CLOSE_PEER: return "ClosePeer";
	case TK_DERP_FRAME_PING: return "Ping";
	case TK_DERP_FRAME_PONG: return "Pong";
	case TK_DERP_FRAME_HEALTH: return "Health";
	case TK_DERP_FRAME_RESTARTING: return "Restarting";
	default: return "unknown";
	}
}

static void
trace(char dir, uint8_t type, const uint8_t *p, size_t n)
{
	char hex[2 * 16 + 1];

	if (!g.trace)
		return;
	size_t k = n < 16 ? n : 16;
	tk_hex_encode(hex, p, k);
	printf("  %c %-13s 0x%02x len=%-6zu %s%s\n", dir, frame_name(type), type, n,
	    hex, n > 16 ? "…" : "");
}

static int
wait_fd(short ev)
{
	struct pollfd pf = { .fd = g.fd, .events = ev };
	int r = poll(&pf, 1, g.timeout_ms);
	return r > 0 ? 0 : -1;
}

static int
xwrite(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = g.use_tls ? gnutls_record_send(g.tls, p, n) :
		    send(g.fd, p, n, MSG_NOSIGNAL);
		if (k < 0) {
			if (g.use_tls && (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED))
				continue;
			if (!g.use_tls && errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
frame_out(uint8_t type, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	uint8_t hdr[TK_DERP_FRAME_HDR_LEN];
	uint8_t buf[70000];

	if (an + bn > sizeof(buf))
		return -1;
	memcpy(buf, a, an);
	if (bn)
		memcpy(buf + an, b, bn);
	trace('>', type, buf, an + bn);
	tk_derp_frame_hdr(hdr, type, (uint32_t)(an + bn));
	return xwrite(hdr, sizeof(hdr)) || xwrite(buf, an + bn) ? -1 : 0;
}

/* Reads more bytes into the frame buffer; -1 on EOF, error or timeout. */
static int
fill(void)
{
	uint8_t *p;
	size_t avail;

	if (tk_derp_rx_space(&g.rx, 65536, &p, &avail) != 0)
		return -1;
	if (!(g.use_tls && gnutls_record_check_pending(g.tls)) && wait_fd(POLLIN) != 0)
		return -1;
	ssize_t k;
	for (;;) {
		k = g.use_tls ? gnutls_record_recv(g.tls, p, avail) :
		    recv(g.fd, p, avail, 0);
		/* TLS 1.3 session tickets and the like: not data, read on */
		if (g.use_tls && k < 0 && !gnutls_error_is_fatal((int)k))
			continue;
		break;
	}
	if (k <= 0)
		return -1;
	tk_derp_rx_commit(&g.rx, (size_t)k);
	return 0;
}

static int
next_frame(tk_derp_frame *f)
{
	for (;;) {
		int rv = tk_derp_rx_next(&g.rx, f);
		if (rv == 0) {
			trace('<', f->type, f->payload, f->len);
			return 0;
		}
		if (rv != TK_EAGAIN || fill() != 0)
			return -1;
	}
}

static int
parse_url(const char *url, char *host, size_t hl, int *port, char *path, size_t pl)
{
	const char *p;

	if (strncmp(url, "http://", 7) == 0) {
		g.use_tls = false;
		p = url + 7;
		*port = 80;
	} else if (strncmp(url, "https://", 8) == 0) {
		g.use_tls = true;
		p = url + 8;
		*port = 443;
	} else {
		return -1;
	}
	size_t n = strcspn(p, ":/");
	if (n == 0 || n >= hl)
		return -1;
	memcpy(host, p, n);
	host[n] = 0;
	p += n;
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (v < 1 || v > 65535)
			return -1;
		*port = (int)v;
		p = end;
	}
	snprintf(path, pl, "%s", *p ? p : TK_DERP_HTTP_PATH);
	return 0;
}

/* One STUN binding request to host:port; 0 when a valid response came. */
static int
stun_probe(const char *hp)
{
	char host[256];
	const char *colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || (size_t)(colon - hp) >= sizeof(host)) {
		printf("FAIL --stun takes HOST:PORT, not '%s'\n", hp);
		return 2;
	}
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = 0;
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		printf("FAIL STUN: cannot resolve %s\n", hp);
		return 1;
	}
	int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint8_t txid[TK_STUN_TXID_LEN], req[TK_STUN_REQUEST_LEN], buf[1500];
	randombytes_buf(txid, sizeof(txid));
	tk_stun_request(req, txid);
	double t0 = now_ms();
	int rc = 1;
	if (fd >= 0 && sendto(fd, req, sizeof(req), 0, ai->ai_addr, ai->ai_addrlen) ==
	    (ssize_t)sizeof(req)) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		while (rc && poll(&pf, 1, g.timeout_ms) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			uint8_t ip[16];
			size_t iplen;
			uint16_t port;
			char txt[64];
			if (n > 0 && tk_stun_parse_response(buf, (size_t)n, txid, ip,
			    &iplen, &port) == 0) {
				inet_ntop(iplen == 4 ? AF_INET : AF_INET6, ip, txt,
				    sizeof(txt));
				printf("ok   STUN %s: mapped %s%s%s:%u  %.2f ms\n", hp,
				    iplen == 16 ? "[" : "", txt, iplen == 16 ? "]" : "",
				    port, now_ms() - t0);
				rc = 0;
			} else if (n > 0) {
				printf("warn STUN: a datagram that is not our response\n");
			}
		}
	}
	if (rc)
		printf("FAIL STUN %s: no response in %d ms\n", hp, g.timeout_ms);
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tk-derp probe URL [--insecure] [--ca-file F] [--count N]"
	    " [--trace] [--timeout MS] [--stun HOST:PORT]\n"
	    "  URL: http://host:port/derp or https://host[:port]/derp\n");
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *ca = NULL, *stun = NULL;
	bool insecure = false;
	int count = 10;
	char host[256], path[256];
	int port;

	if (argc < 3 || strcmp(argv[1], "probe") != 0) {
		usage(stderr);
		return 2;
	}
	url = argv[2];
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--insecure") == 0)
			insecure = true;
		else if (strcmp(argv[i], "--trace") == 0)
			g.trace = true;
		else if (strcmp(argv[i], "--ca-file") == 0 && i + 1 < argc)
			ca = argv[++i];
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = atoi(argv[++i]);
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			g.timeout_ms = atoi(argv[++i]);
		else if (strcmp(argv[i], "--stun") == 0 && i + 1 < argc)
			stun = argv[++i];
		else {
			fprintf(stderr, "tk-derp: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (count < 0 || count > 100000 || g.timeout_ms < 1) {
		fprintf(stderr, "tk-derp: --count takes 0..100000, --timeout >= 1 ms\n");
		return 2;
	}
	if (parse_url(url, host, sizeof(host), &port, path, sizeof(path)) != 0) {
		fprintf(stderr, "tk-derp: bad URL '%s' (accepted: http://host:port/derp, "
		    "https://host[:port]/derp)\n", url);
		return 2;
	}
	if (tk_init() != 0 || sodium_init() < 0)
		return 1;
	tk_derp_rx_init(&g.rx, TK_DERP_CLIENT_MAX_FRAME);

	/* connect */
	double t0 = now_ms();
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0) {
		printf("FAIL resolve %s\n", host);
		return 1;
	}
	g.fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (g.fd < 0 || connect(g.fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		printf("FAIL connect %s:%d: %s\n", host, port, strerror(errno));
		freeaddrinfo(ai);
		return 1;
	}
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(g.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	printf("ok   connect %s:%d  %.2f ms\n", host, port, now_ms() - t0);

	gnutls_certificate_credentials_t cred = NULL;
	if (g.use_tls) {
		double t1 = now_ms();
		gnutls_certificate_allocate_credentials(&cred);
		gnutls_certificate_set_x509_system_trust(cred);
		if (ca && gnutls_certificate_set_x509_trust_file(cred, ca,
		    GNUTLS_X509_FMT_PEM) <= 0) {
			printf("FAIL --ca-file %s: no PEM certificate\n", ca);
			return 2;
		}
		gnutls_init(&g.tls, GNUTLS_CLIENT);
		gnutls_set_default_priority(g.tls);
		gnutls_credentials_set(g.tls, GNUTLS_CRD_CERTIFICATE, cred);
		if (inet_addr(host) == INADDR_NONE)
			gnutls_server_name_set(g.tls, GNUTLS_NAME_DNS, host, strlen(host));
		if (!insecure)
			gnutls_session_set_verify_cert(g.tls, host, 0);
		gnutls_transport_set_int(g.tls, g.fd);
		gnutls_handshake_set_timeout(g.tls, (unsigned)g.timeout_ms);
		int rv;
		do {
			rv = gnutls_handshake(g.tls);
		} while (rv < 0 && !gnutls_error_is_fatal(rv));
		if (rv < 0) {
			printf("FAIL TLS: %s\n", gnutls_strerror(rv));
			return 1;
		}
		char *desc = gnutls_session_get_desc(g.tls);
		printf("ok   TLS %s  %.2f ms%s\n", desc ? desc : "", now_ms() - t1,
		    insecure ? "  (certificate NOT verified: --insecure)" : "");
		gnutls_free(desc);
	}

	/* upgrade */
	char req[768];
	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: Upgrade\r\nUpgrade: DERP\r\nUser-Agent: tk-derp\r\n\r\n",
	    path, host);
	double t2 = now_ms();
	if (xwrite((const uint8_t *)req, (size_t)rl) != 0) {
		printf("FAIL write upgrade request\n");
		return 1;
	}
	for (;;) {
		int status;
		size_t head;
		int rv = tk_derp_http_response(g.rx.buf ? g.rx.buf + g.rx.off : (const uint8_t *)"",
		    g.rx.len - g.rx.off, &status, &head);
		if (rv == 0) {
			if (status != 101) {
				printf("FAIL upgrade: HTTP %d\n", status);
				return 1;
			}
			g.rx.off += head;
			printf("ok   upgrade 101  %.2f ms\n", now_ms() - t2);
			break;
		}
		if (rv != TK_EAGAIN || fill() != 0) {
			printf("FAIL upgrade: no HTTP response\n");
			return 1;
		}
	}

	/* handshake */
	tk_derp_frame f;
	uint8_t spub[32], cpriv[32], cpub[32];
	if (next_frame(&f) != 0 || f.type != TK_DERP_FRAME_SERVER_KEY ||
	    tk_derp_parse_server_key(f.payload, f.len, spub) != 0) {
		printf("FAIL ServerKey: missing or malformed\n");
		return 1;
	}
	char kt[TK_KEY_TEXT_MAX];
	tk_key_format(kt, "nodekey:", spub);
	printf("ok   server key %s\n", kt);
	crypto_box_keypair(cpub, cpriv);
	tk_derp_client_info ci = { .version = TK_DERP_PROTOCOL_VERSION,
		.can_ack_pings = true, .is_prober = true };
	char json[256];
	size_t jl, sl;
	uint8_t sealed[512];
	tk_derp_client_info_json(&ci, json, sizeof(json), &jl);
	tk_derp_box_seal(sealed, sizeof(sealed), &sl, (const uint8_t *)json, jl,
	    spub, cpriv, NULL);
	if (frame_out(TK_DERP_FRAME_CLIENT_INFO, cpub, 32, sealed, sl) != 0) {
		printf("FAIL write ClientInfo\n");
		return 1;
	}
	uint8_t ping[8];
	randombytes_buf(ping, sizeof(ping));
	double tp = now_ms();
	frame_out(TK_DERP_FRAME_PING, ping, 8, NULL, 0);
	/* self-addressed packets: the server delivers them back to us */
	int got = 0, pong = 0, info = 0;
	double *rtt = calloc((size_t)count + 1, sizeof(double)), tsend[64];
	uint8_t pkt[8 + 4];
	int sent = 0;
	double deadline = now_ms() + g.timeout_ms;
	while (now_ms() < deadline && (got < count || !pong || !info)) {
		if (sent < count && sent - got < 16) {
			memcpy(pkt, "tkprobe!", 8);
			pkt[8] = (uint8_t)(sent >> 24), pkt[9] = (uint8_t)(sent >> 16);
			pkt[10] = (uint8_t)(sent >> 8), pkt[11] = (uint8_t)sent;
			tsend[sent % 64] = now_ms();
			uint8_t hdr[32];
			memcpy(hdr, cpub, 32);
			frame_out(TK_DERP_FRAME_SEND_PACKET, hdr, 32, pkt, sizeof(pkt));
			sent++;
			continue;
		}
		if (next_frame(&f) != 0)
			break;
		tk_derp_event ev;
		if (tk_derp_client_decode(&f, &ev) != 0) {
			printf("warn malformed %s frame dropped\n", frame_name(f.type));
			continue;
		}
		if (ev.type == TK_DERP_EV_SERVER_INFO) {
			uint8_t plain[1100];
			size_t pn;
			tk_derp_server_info si;
			if (tk_derp_box_open(plain, sizeof(plain), &pn, ev.data, ev.len,
			    spub, cpriv) != 0 ||
			    tk_derp_server_info_parse(plain, pn, &si) != 0) {
				printf("FAIL ServerInfo does not open to valid JSON\n");
				return 1;
			}
			printf("ok   server info %.*s\n", (int)pn, plain);
			info = 1;
		} else if (ev.type == TK_DERP_EV_PONG && memcmp(ev.data, ping, 8) == 0) {
			printf("ok   ping/pong  %.2f ms\n", now_ms() - tp);
			pong = 1;
		} else if (ev.type == TK_DERP_EV_PING) {
			frame_out(TK_DERP_FRAME_PONG, ev.data, 8, NULL, 0);
		} else if (ev.type == TK_DERP_EV_RECV_PACKET && ev.len == sizeof(pkt) &&
		    memcmp(ev.data, "tkprobe!", 8) == 0 && memcmp(ev.key, cpub, 32) == 0) {
			int seq = ev.data[8] << 24 | ev.data[9] << 16 | ev.data[10] << 8 |
			    ev.data[11];
			if (seq >= 0 && seq < sent && got < count)
				rtt[got++] = now_ms() - tsend[seq % 64];
		} else if (ev.type == TK_DERP_EV_HEALTH) {
			printf("info health: %.*s\n", (int)ev.len, (const char *)ev.data);
		}
	}
	int rc = 0;
	if (!info) {
		printf("FAIL no ServerInfo\n");
		rc = 1;
	}
	if (!pong) {
		printf("FAIL no Pong to our Ping\n");
		rc = 1;
	}
	if (count > 0) {
		for (int i = 1; i < got; i++) /* insertion sort, small n */
			for (int j = i; j > 0 && rtt[j] < rtt[j - 1]; j--) {
				double t = rtt[j];
				rtt[j] = rtt[j - 1];
				rtt[j - 1] = t;
			}
		if (got == count)
			printf("ok   %d packets to ourselves through the server: median %.3f ms, "
			    "max %.3f ms\n", got, rtt[got / 2], rtt[got - 1]);
		else {
			printf("FAIL %d of %d packets came back\n", got, count);
			rc = 1;
		}
	}
	free(rtt);
	if (stun != NULL && stun_probe(stun) != 0)
		rc = 1;
	if (g.use_tls) {
		gnutls_bye(g.tls, GNUTLS_SHUT_WR);
		gnutls_deinit(g.tls);
		gnutls_certificate_free_credentials(cred);
	}
	close(g.fd);
	tk_derp_rx_fini(&g.rx);
	sodium_memzero(cpriv, sizeof(cpriv));
	printf("%s %s\n", rc ? "FAIL" : "ok  ", url);
	return rc;
}
