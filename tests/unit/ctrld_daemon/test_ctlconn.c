/*
 * ctlconn (ctrld's ts2021 transport) against the scripted server
 * (fake_control.c): the HTTP upgrade response in the header orders and
 * spellings real servers and reverse proxies send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlconn.h"
#include "fake_control.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk_test.h"

void register_ctlconn(void);

/* Fetches the key and dials f with the upgrade answered by head. */
static int
dial_with(const char *head, char *err, size_t errlen)
{
	fake_control f;
	ctrldi_url u;
	char url[64];
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;
	int rv;

	CU_ASSERT_FATAL(fake_control_start(&f, FAKE_GOOD) == 0);
	f.upgrade_head = head;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", f.port);
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, errlen) == 0);
	tk_key_generate(mk.b, NULL);
	rv = ctrldi_fetch_server_key(&u, 3000, &server, err, errlen);
	CU_ASSERT_EQUAL(rv, 0);
	if (rv == 0)
		rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, errlen);
	ctrldi_conn_free(c);
	fake_control_stop(&f);
	return rv;
}

/*
 * Go's client reads the 101 with net/http: any header order, names in any
 * case, extra headers, optional whitespace around values, bare LF line
 * ends (textproto).  controlhttp/client.go tryURLUpgrade then wants status
 * 101 and Header.Get("Upgrade") (the first one) equal to
 * "tailscale-control-protocol", case-sensitively.
 */
static void
test_upgrade_header_orders(void)
{
	static const char *const good[] = {
		/* Go's controlhttpserver */
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n",
		/* nginx in front of headscale: Upgrade last */
		"HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.24.0\r\n"
		"Date: Fri, 04 Dec 2026 23:00:00 GMT\r\nConnection: upgrade\r\n"
		"Upgrade: tailscale-control-protocol\r\n\r\n",
		/* lower-case names (HTTP/2-era proxies), tab and trailing
		 * space around the value */
		"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
		"upgrade:\ttailscale-control-protocol \r\n"
		"x-request-id: 0123456789abcdef0123456789abcdef\r\n\r\n",
		/* upper case, no space, a long header, no reason phrase */
		"HTTP/1.1 101\r\nCONNECTION: UPGRADE\r\n"
		"X-Upgrade-Note: Upgrade: websocket\r\n"
		"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		"UPGRADE:tailscale-control-protocol\r\n\r\n",
		/* bare LF line ends */
		"HTTP/1.1 101 Switching Protocols\nConnection: upgrade\n"
		"Upgrade: tailscale-control-protocol\n\n",
	};
	static const char *const bad[] = {
		/* another protocol */
		"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
		"Upgrade: tailscale-control-protocol-v2\r\n\r\n",
		/* the value compares case-sensitively */
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: Tailscale-Control-Protocol\r\nConnection: upgrade\r\n\r\n",
		/* Header.Get takes the first */
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Upgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n",
		/* no Upgrade header */
		"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
		/* not 101 */
		"HTTP/1.1 200 OK\r\nUpgrade: tailscale-control-protocol\r\n"
		"Connection: upgrade\r\n\r\n",
		/* not HTTP */
		"HTTX/1.1 101 Switching Protocols\r\n"
		"Upgrade: tailscale-control-protocol\r\n\r\n",
	};
	char err[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		int rv = dial_with(good[i], err, sizeof(err));
		if (rv != 0)
			fprintf(stderr, "\n  good[%zu] refused: %s", i, err);
		CU_ASSERT_EQUAL(rv, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rv = dial_with(bad[i], err, sizeof(err));
		if (rv == 0)
			fprintf(stderr, "\n  bad[%zu] accepted", i);
		CU_ASSERT_NOT_EQUAL(rv, 0);
		CU_ASSERT(strstr(err, "/ts2021") != NULL);
	}
}

static const tk_test_case tests[] = {
	TK_TEST(test_upgrade_header_orders),
	TK_TEST_END,
};

void
register_ctlconn(void)
{
	tk_test_suite("ctlconn", tests);
}
