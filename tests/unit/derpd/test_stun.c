/* STUN binding requests as Tailscale's net/stun writes them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "derpd/derpd.h"
#include "tk/stun.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk_test.h"

/* net/stun Request(txid): 40 bytes, SOFTWARE "tailnode", FINGERPRINT. */
static size_t
request(uint8_t out[40], const uint8_t txid[12])
{
	tk_be16_store(out, 0x0001);
	tk_be16_store(out + 2, 20);
	tk_be32_store(out + 4, TK_STUN_COOKIE);
	memcpy(out + 8, txid, 12);
	tk_be16_store(out + 20, 0x8022);
	tk_be16_store(out + 22, 8);
	memcpy(out + 24, "tailnode", 8);
	tk_be16_store(out + 32, 0x8028);
	tk_be16_store(out + 34, 4);
	tk_be32_store(out + 36, tk_stun_crc32(out, 32) ^ TK_STUN_FINGERPRINT_XOR);
	return 40;
}

static void
test_parse(void)
{
	uint8_t r[40], tx[12], got[12];
	for (int i = 0; i < 12; i++)
		tx[i] = (uint8_t)(i + 1);
	request(r, tx);
	CU_ASSERT(tk_stun_parse_request(r, 40, got) == 0);
	TK_ASSERT_MEM_EQ(got, tx, 12);
	/* CRC-32 (IEEE) check value */
	CU_ASSERT(tk_stun_crc32((const uint8_t *)"123456789", 9) == 0xcbf43926u);
	uint8_t b[40];
	memcpy(b, r, 40);
	b[39] ^= 1; /* bad fingerprint */
	CU_ASSERT(tk_stun_parse_request(b, 40, got) == TK_EPROTO);
	memcpy(b, r, 40);
	b[24] = 'x'; /* other software (fingerprint recomputed) */
	tk_be32_store(b + 36, tk_stun_crc32(b, 32) ^ TK_STUN_FINGERPRINT_XOR);
	CU_ASSERT(tk_stun_parse_request(b, 40, got) == TK_EPROTO);
	memcpy(b, r, 40);
	b[4] = 0; /* cookie */
	CU_ASSERT(tk_stun_parse_request(b, 40, got) == TK_EPROTO);
	CU_ASSERT(tk_stun_parse_request(r, 19, got) == TK_EPROTO);
	CU_ASSERT(tk_stun_parse_request(r, 38, got) == TK_EPROTO);

	/* response: XOR-MAPPED-ADDRESS of 1.2.3.4:5678 */
	uint8_t out[TK_STUN_RESPONSE_MAX];
	const uint8_t ip[4] = { 1, 2, 3, 4 };
	size_t n = tk_stun_response(out, tx, ip, 4, 5678);
	CU_ASSERT(n == 32);
	CU_ASSERT(tk_be16_load(out) == 0x0101 && tk_be16_load(out + 2) == 12);
	CU_ASSERT(tk_be16_load(out + 20) == 0x0020 && tk_be16_load(out + 22) == 8);
	CU_ASSERT(out[25] == 1);
	CU_ASSERT((tk_be16_load(out + 26) ^ 0x2112) == 5678);
	CU_ASSERT((out[28] ^ 0x21) == 1 && (out[29] ^ 0x12) == 2 &&
	    (out[30] ^ 0xa4) == 3 && (out[31] ^ 0x42) == 4);
	uint8_t ip6[16] = { 0xfd, 0x7a };
	CU_ASSERT(tk_stun_response(out, tx, ip6, 16, 1) == 44);
	CU_ASSERT(out[25] == 2 && (out[28 + 4] ^ tx[0]) == 0);
}

static void
test_server(void)
{
	derpd_server_config cfg = { .stun_port = 0, .stun_host = "127.0.0.1" };
	derpd_server *s;
	CU_ASSERT_FATAL(derpd_server_new(&s, &cfg, NULL, 0) == 0);
	CU_ASSERT_FATAL(derpd_server_start(s) == 0);
	CU_ASSERT(derpd_server_port(s) == 0);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_port = htons(derpd_server_stun_port(s)) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CU_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	uint8_t tx[12] = "abcdefghijkl", r[40], out[64];
	request(r, tx);
	send(fd, "junk", 4, 0); /* ignored */
	send(fd, r, 40, 0);
	getsockname(fd, (struct sockaddr *)&me, &ml);
	ssize_t n = recv(fd, out, sizeof(out), 0);
	CU_ASSERT_FATAL(n == 32);
	TK_ASSERT_MEM_EQ(out + 8, tx, 12);
	CU_ASSERT((tk_be16_load(out + 26) ^ 0x2112) == ntohs(me.sin_port));
	CU_ASSERT(out[28] == (127 ^ 0x21) && out[31] == (1 ^ 0x42));
	close(fd);
	derpd_server_free(s);
}

/* The client side: our request is one the server side accepts (Go's
 * format), and a response parses back to the address it carries, for
 * XOR-MAPPED-ADDRESS v4 and v6; a wrong transaction id, a truncation or an
 * attribute running past the end is refused. */
static void
test_client(void)
{
	uint8_t txid[TK_STUN_TXID_LEN], got[TK_STUN_TXID_LEN], req[TK_STUN_REQUEST_LEN];
	uint8_t out[TK_STUN_RESPONSE_MAX], ip[16];
	size_t iplen;
	uint16_t port;

	memcpy(txid, "0123456789ab", 12);
	tk_stun_request(req, txid);
	CU_ASSERT_EQUAL(tk_stun_parse_request(req, sizeof(req), got), 0);
	CU_ASSERT(memcmp(got, txid, 12) == 0);
	const uint8_t v4[4] = { 192, 0, 2, 7 };
	size_t rl = tk_stun_response(out, txid, v4, 4, 41641);
	CU_ASSERT_EQUAL(tk_stun_parse_response(out, rl, txid, ip, &iplen, &port), 0);
	CU_ASSERT(iplen == 4 && port == 41641 && memcmp(ip, v4, 4) == 0);
	const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9 };
	rl = tk_stun_response(out, txid, v6, 16, 3478);
	CU_ASSERT_EQUAL(tk_stun_parse_response(out, rl, txid, ip, &iplen, &port), 0);
	CU_ASSERT(iplen == 16 && port == 3478 && memcmp(ip, v6, 16) == 0);
	uint8_t other[12];
	memcpy(other, "xxxxxxxxxxxx", 12);
	CU_ASSERT_EQUAL(tk_stun_parse_response(out, rl, other, ip, &iplen, &port),
	    TK_EPROTO);
	for (size_t k = 0; k < rl; k++) /* every truncation */
		CU_ASSERT_EQUAL(tk_stun_parse_response(out, k, txid, ip, &iplen, &port),
		    TK_EPROTO);
	out[22] = 0xff; /* attribute length past the end */
	CU_ASSERT_EQUAL(tk_stun_parse_response(out, rl, txid, ip, &iplen, &port),
	    TK_EPROTO);
	CU_ASSERT_EQUAL(tk_stun_parse_response(req, sizeof(req), txid, ip, &iplen,
			    &port), TK_EPROTO); /* a request is no response */
}

void register_derpd_stun(void);

void
register_derpd_stun(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_parse),
		TK_TEST(test_server),
		TK_TEST(test_client),
		TK_TEST_END,
	};
	tk_test_suite("derpd_stun", cases);
}
