/* derpd's HTTP endpoints, as cmd/derper answers them. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "derpd/derpd.h"
#include "tc.h"
#include "tk_test.h"

static derpd_server *srv;
static char resp[20000];

static const char *
get(const char *req)
{
	CU_ASSERT(tc_http(derpd_server_port(srv), req, resp, sizeof(resp)) == 0);
	return resp;
}

static void
test_endpoints(void)
{
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1 };
	CU_ASSERT_FATAL(derpd_server_new(&srv, &cfg, NULL, 0) == 0);
	CU_ASSERT_FATAL(derpd_server_start(srv) == 0);

	get("GET /derp HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 426 ", 13) == 0);
	CU_ASSERT(strstr(resp, "DERP requires connection upgrade") != NULL);
	get("GET /derp/probe HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
	CU_ASSERT(strstr(resp, "Access-Control-Allow-Origin: *\r\n") != NULL);
	get("HEAD /derp/latency-check HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
	get("POST /derp/probe HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 405 ", 13) == 0);
	get("GET /generate_204 HTTP/1.1\r\nX-Tailscale-Challenge: ab.C-9_:z\r\n"
	    "Connection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 204 ", 13) == 0);
	CU_ASSERT(strstr(resp, "X-Tailscale-Response: response ab.C-9_:z\r\n") != NULL);
	CU_ASSERT(strstr(resp, "Content-Length") == NULL);
	get("GET /generate_204 HTTP/1.1\r\nX-Tailscale-Challenge: bad/char\r\n"
	    "Connection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 204 ", 13) == 0);
	CU_ASSERT(strstr(resp, "X-Tailscale-Response") == NULL);
	get("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 200 ", 13) == 0 && strstr(resp, "DERP"));
	get("GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 404 ", 13) == 0);
	get("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
	CU_ASSERT(strstr(resp, "# TYPE derp_accepts_total counter") != NULL);
	/* keep-alive: two requests on one connection */
	get("GET /derp/probe HTTP/1.1\r\n\r\nGET /generate_204 HTTP/1.1\r\n"
	    "Connection: close\r\n\r\n");
	CU_ASSERT(strstr(resp, "200 OK") && strstr(resp, "204 No Content"));
	/* garbage */
	get("\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 400 ", 13) == 0);
	get("GET /derp HTTP/1.1\r\nNoColon\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 400 ", 13) == 0);
	get("GET derp HTTP/1.1\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 400 ", 13) == 0);
	get("GET /derp HTTP/2.0\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 400 ", 13) == 0);
	/* an endless head is cut at 16 KiB */
	static char big[20000];
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', sizeof(big) - 20);
	big[sizeof(big) - 1] = '\0';
	get(big);
	CU_ASSERT(strncmp(resp, "HTTP/1.1 431 ", 13) == 0);
	/* the 101 carries the key and version */
	get("GET /derp HTTP/1.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
	CU_ASSERT(strncmp(resp, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
	CU_ASSERT(strstr(resp, "Derp-Version: 2\r\n") != NULL);
	CU_ASSERT(strstr(resp, "Derp-Public-Key: ") != NULL);
	CU_ASSERT(memmem(resp, sizeof(resp), "DERP\xf0\x9f\x94\x91", 8) != NULL);
	derpd_server_free(srv);
	srv = NULL;
}

/* Pipelined requests whose answers are not read at once: derpd parses no
 * further than 64 KiB of pending answers, then carries on; all arrive. */
static void
test_pipelined(void)
{
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1 };
	CU_ASSERT_FATAL(derpd_server_new(&srv, &cfg, NULL, 0) == 0);
	CU_ASSERT_FATAL(derpd_server_start(srv) == 0);
	static char req[400 * 30];
	size_t n = 0;
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(req + n, sizeof(req) - n,
		    "GET /metrics HTTP/1.1\r\n\r\n");
	int fd = tc_dial(derpd_server_port(srv));
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(send(fd, req, n, 0) == (ssize_t)n);
	usleep(200000); /* let derpd hit its limit */
	int seen = 0;
	static char buf[1 << 16];
	char tail[16] = "";
	uint64_t end = tk_test_now_ms() + 10000;
	while (seen < 400 && tk_test_now_ms() < end) {
		ssize_t k = recv(fd, buf, sizeof(buf) - 1, 0);
		if (k <= 0)
			break;
		buf[k] = '\0';
		/* count status lines, also across reads */
		char joined[sizeof(tail) + 20];
		snprintf(joined, sizeof(joined), "%s%.16s", tail, buf);
		size_t jt = strlen(tail);
		for (char *p = joined; (p = strstr(p, "HTTP/1.1 200")); p++)
			if (p < joined + jt && p + 12 > joined + jt)
				seen++; /* straddles the two reads */
		for (char *p = buf; (p = strstr(p, "HTTP/1.1 200")); p++)
			seen++;
		size_t tl = (size_t)k < sizeof(tail) - 1 ? (size_t)k : sizeof(tail) - 1;
		memcpy(tail, buf + k - tl, tl);
		tail[tl] = '\0';
	}
	CU_ASSERT(seen == 400);
	close(fd);
	derpd_server_free(srv);
	srv = NULL;
}

void register_derpd_http(void);

void
register_derpd_http(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_endpoints),
		TK_TEST(test_pipelined),
		TK_TEST_END,
	};
	tk_test_suite("derpd_http", cases);
}
