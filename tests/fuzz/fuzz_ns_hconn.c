/* netstackd's HTTP CONNECT request parser (netstackd/src/ns_hconn.c) on
 * any input, with and without proxy credentials, at every length up to the
 * input's.  Invariants: the status is one the proxy can answer, what it
 * consumes lies inside the input and the head bound, a 200 names a host
 * and a port, and a complete head never turns back into "need more". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ns_proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
check(const ns_hconn_cfg *cfg, const uint8_t *data, size_t size)
{
	ns_hconn_req req;
	size_t len;

	if (ns_hconn_parse(cfg, data, size, &req) != 0)
		__builtin_trap();
	if (req.consumed > size || req.consumed > NS_HCONN_HEAD_MAX)
		__builtin_trap();
	switch (req.status) {
	case 0:
		if (size >= NS_HCONN_HEAD_MAX)
			__builtin_trap();
		break;
	case 200:
		if (req.host[0] == '\0' || req.port == 0 ||
		    strlen(req.host) > NS_HCONN_HOST_MAX)
			__builtin_trap();
		/* fall through */
	case 400:
	case 405:
	case 407:
		if (ns_hconn_response(req.status, &len) == NULL)
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
	return req.status;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ns_hconn_cfg auth = { .user = "alice", .pass = "s3:cret" };
	int last = 0;

	check(NULL, data, size);
	check(&auth, data, size);
	for (size_t k = 0; k <= size && k < 512; k++) {
		int st = check(NULL, data, k);
		if (last != 0 && st == 0)
			__builtin_trap();
		last = st;
	}
	return 0;
}
