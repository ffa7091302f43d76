/*
 * Fuzz wgd's network-facing parsers:
 *   mode 0: the input is a datagram for tk_wg_device_recv (any type/size);
 *   mode 1: the input is the *plaintext* of a transport message from an
 *           authenticated peer (inner IP validation, source check, filter);
 *   mode 2: a real handshake initiation XORed with the input;
 *   mode 3: the input is a wg(8) UAPI request.
 * Invariants: no crash, over-read or leak; the device keeps working (a
 * real packet still gets through after every input).
 */
#include <stdlib.h>
#include <string.h>

#include "tk/clock.h"
#include "tk/endian.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/wg.h"
#include "tk/wg_uapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tk_fake_clock clk;
static tk_fake_rng rng;
static tk_wg_device *A, *B;
static tk_wg_peer *AP, *BP;
static uint8_t last[2048];
static size_t lastn;
static int delivered;
static tk_wg_endpoint ea = { 4, { 10, 0, 0, 1 }, 1 }, eb = { 4, { 10, 0, 0, 2 }, 2 };

static void
on_send(void *arg, tk_wg_peer *p, const tk_wg_endpoint *ep, const uint8_t *b,
    size_t n)
{
	(void)arg, (void)p, (void)ep;
	if (n <= sizeof(last)) {
		memcpy(last, b, n);
		lastn = n;
	}
}

static void
on_deliver(void *arg, tk_wg_peer *p, uint8_t *b, size_t n)
{
	(void)arg, (void)p, (void)b, (void)n;
	delivered++;
}

static void
setup(void)
{
	tk_wg_device_config c = { 0 };
	uint8_t k[32], pa[32], pb[32];
	const uint8_t a4[4] = { 10, 1, 0, 1 }, b4[4] = { 10, 1, 0, 2 };

	tk_fake_clock_init(&clk, TK_NSEC_PER_SEC, 1700000000ull * TK_NSEC_PER_SEC);
	tk_fake_rng_init(&rng, 7);
	c.clock = &clk.fc_clock;
	c.rng = &rng.fr_rng;
	c.cb.send_datagram = on_send;
	c.cb.deliver = on_deliver;
	if (tk_wg_device_new(&A, &c) || tk_wg_device_new(&B, &c))
		abort();
	memset(k, 1, 32);
	tk_wg_device_set_private_key(A, k);
	memset(k, 2, 32);
	tk_wg_device_set_private_key(B, k);
	tk_wg_device_public_key(A, pa);
	tk_wg_device_public_key(B, pb);
	tk_wg_peer_add(A, pb, &AP);
	tk_wg_peer_add(B, pa, &BP);
	tk_wg_peer_add_allowed_ip(AP, 4, b4, 32);
	tk_wg_peer_add_allowed_ip(BP, 4, a4, 32);
	tk_wg_peer_set_endpoint(AP, &eb);
}

/* Completes a handshake A -> B if there is no session. */
static void
ensure_session(void)
{
	uint8_t m[2048];
	size_t n;

	if (tk_wg_peer_has_session(AP) && tk_wg_peer_has_session(BP))
		return;
	tk_fake_clock_advance(&clk, 6 * TK_NSEC_PER_SEC);
	lastn = 0;
	tk_wg_peer_initiate(AP);
	if (lastn == 0)
		abort();
	memcpy(m, last, n = lastn);
	lastn = 0;
	tk_wg_device_recv(B, &ea, m, n);
	memcpy(m, last, n = lastn);
	lastn = 0;
	tk_wg_device_recv(A, &eb, m, n); /* A answers with a keepalive */
	memcpy(m, last, n = lastn);
	tk_wg_device_recv(B, &ea, m, n);
}

static void
check_alive(void)
{
	uint8_t ip[40] = { 0x45 }, m[2048];
	size_t n;

	ensure_session();
	tk_be16_store(ip + 2, sizeof(ip));
	ip[12] = 10, ip[13] = 1, ip[15] = 1;
	ip[16] = 10, ip[17] = 1, ip[19] = 2;
	delivered = 0;
	lastn = 0;
	tk_wg_device_send(A, ip, sizeof(ip));
	memcpy(m, last, n = lastn);
	tk_wg_device_recv(B, &ea, m, n);
	if (delivered != 1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	uint8_t buf[4096];

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1 || size > sizeof(buf))
		return 0;
	ensure_session();
	switch (data[0] & 3) {
	case 0:
		memcpy(buf, data + 1, size - 1);
		tk_wg_device_recv(B, &ea, buf, size - 1);
		break;
	case 1:
		lastn = 0;
		tk_wg_peer_send(AP, data + 1, size - 1);
		if (lastn) {
			memcpy(buf, last, lastn);
			tk_wg_device_recv(B, &ea, buf, lastn);
		}
		break;
	case 2:
		tk_fake_clock_advance(&clk, 6 * TK_NSEC_PER_SEC);
		lastn = 0;
		tk_wg_peer_initiate(AP);
		memcpy(buf, last, lastn);
		for (size_t i = 1; i < size && i - 1 < lastn; i++)
			buf[i - 1] ^= data[i];
		tk_wg_device_recv(B, &ea, buf, lastn);
		break;
	case 3: {
		tk_wg_uapi_iface ifc = { 0 };
		char *resp = NULL;
		size_t rl = 0;
		int e = tk_wg_uapi_handle(B, &ifc, (const char *)data + 1, size - 1,
		    &resp, &rl, NULL, 0);
		if (e >= 0 && (rl < 2 || memcmp(resp + rl - 2, "\n\n", 2) != 0))
			abort();
		tk_free(resp);
		/* a set may have removed A; put it back */
		uint8_t pa[32];
		const uint8_t a4[4] = { 10, 1, 0, 1 };
		tk_wg_device_public_key(A, pa);
		if (tk_wg_peer_find(B, pa) == NULL)
			tk_wg_peer_add(B, pa, &BP);
		else
			BP = tk_wg_peer_find(B, pa);
		tk_wg_peer_clear_allowed_ips(BP);
		tk_wg_peer_add_allowed_ip(BP, 4, a4, 32);
		uint8_t kb[32];
		memset(kb, 2, 32);
		tk_wg_device_set_private_key(B, kb);
		break;
	}
	}
	check_alive();
	return 0;
}
