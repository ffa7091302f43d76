/*
 * tk-status: asks a tailkit component for its status over the control bus
 * and prints it as JSON (one object: component, state, self keys, peers,
 * counters).
 *
 *   tk-status [--timeout MS] [--no-peers] RPC_URL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tk/bus_rpc.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/netaddr.h"
#include "tk/bus/v1/ctrl.pb-c.h"

static json_t *
key_json(const char *prefix, const ProtobufCBinaryData *k)
{
	char t[TK_KEY_TEXT_MAX];

	if (k->len != TK_KEY_LEN)
		return json_null();
	tk_key_format(t, prefix, k->data);
	return json_string(t);
}

static json_t *
addr_json(const Tk__Bus__V1__AddrPort *a)
{
	char s[80], ip[64];

	if (a == NULL || (a->addr.len != 4 && a->addr.len != 16))
		return json_null();
	if (a->addr.len == 4)
		snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a->addr.data[0], a->addr.data[1],
		    a->addr.data[2], a->addr.data[3]);
	else {
		size_t o = 0;
		for (int i = 0; i < 16; i += 2)
			o += (size_t)snprintf(ip + o, sizeof(ip) - o, "%s%x", i ? ":" : "",
			    (a->addr.data[i] << 8) | a->addr.data[i + 1]);
	}
	snprintf(s, sizeof(s), a->addr.len == 4 ? "%s:%u" : "[%s]:%u", ip, a->port);
	return json_string(s);
}

int
main(int argc, char **argv)
{
	int timeout = 3000, i;
	bool peers = true;
	const char *method = NULL;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (strcmp(argv[i], "--no-peers") == 0)
			peers = false;
		else if (strcmp(argv[i], "--call") == 0 && i + 1 < argc)
			method = argv[++i];
		else
			break;
	}
	if (i + 1 != argc) {
		fprintf(stderr, "usage: tk-status [--timeout MS] [--no-peers] [--call METHOD] "
		    "RPC_URL\n"
		    "  e.g. tk-status ipc:///run/tailkit/wgd.rpc\n"
		    "  --call METHOD  send a command with no body instead (e.g. logout)\n");
		return 2;
	}
	if (tk_init() != 0)
		return 1;
	if (method != NULL) {
		tk_buf r;
		tk_buf_init(&r);
		int rv = tk_rpc_call_sync(argv[i], NULL, method, NULL, 0, timeout, &r);
		printf("%s: %s%s%.*s\n", method, rv ? tk_strerror(rv) : "ok",
		    r.len && rv ? ": " : "", rv ? (int)r.len : 0, (const char *)r.data);
		tk_buf_fini(&r);
		return rv ? 1 : 0;
	}
	Tk__Bus__V1__StatusRequest rq = TK__BUS__V1__STATUS_REQUEST__INIT;
	uint8_t body[16];
	rq.has_peers = true;
	rq.peers = peers;
	size_t bl = tk__bus__v1__status_request__pack(&rq, body);
	tk_buf reply;
	tk_buf_init(&reply);
	int rv = tk_rpc_call_sync(argv[i], NULL, TK_METHOD_STATUS, body, bl,
	    timeout, &reply);
	if (rv != 0) {
		fprintf(stderr, "tk-status: %s: %s%s%.*s\n", argv[i], tk_strerror(rv),
		    reply.len ? ": " : "", (int)reply.len, (const char *)reply.data);
		return 1;
	}
	Tk__Bus__V1__StatusResponse *r =
	    tk__bus__v1__status_response__unpack(NULL, reply.len, reply.data);
	if (r == NULL) {
		fprintf(stderr, "tk-status: undecodable StatusResponse\n");
		return 1;
	}
	json_t *o = json_object(), *c = json_object(), *ps = json_array();
	json_object_set_new(o, "component", json_string(r->component ? r->component : ""));
	json_object_set_new(o, "version", json_string(r->version ? r->version : ""));
	json_object_set_new(o, "state", json_integer(r->state));
	json_object_set_new(o, "uptime_ms", json_integer(r->uptime_ms));
	if (r->auth_url)
		json_object_set_new(o, "auth_url", json_string(r->auth_url));
	if (r->n_health) {
		json_t *h = json_array();
		for (size_t k = 0; k < r->n_health; k++)
			json_array_append_new(h, json_string(r->health[k]));
		json_object_set_new(o, "health", h);
	}
	if (r->self) {
		json_t *s = json_object();
		if (r->self->has_key)
			json_object_set_new(s, "key", key_json("nodekey:", &r->self->key));
		if (r->self->has_disco_key)
			json_object_set_new(s, "disco_key",
			    key_json("discokey:", &r->self->disco_key));
		if (r->self->n_addresses > 0) {
			json_t *a = json_array();
			for (size_t k = 0; k < r->self->n_addresses; k++) {
				const Tk__Bus__V1__Prefix *x = r->self->addresses[k];
				tk_ipprefix pf = { 0 };
				char txt[TK_NETADDR_TEXT_MAX];
				if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16))
					continue;
				pf.ip.family = x->addr.len == 4 ? TK_AF_INET : TK_AF_INET6;
				memcpy(pf.ip.addr, x->addr.data, x->addr.len);
				pf.bits = (uint8_t)(x->has_bits ? x->bits : x->addr.len * 8);
				tk_ipprefix_format(&pf, txt);
				json_array_append_new(a, json_string(txt));
			}
			json_object_set_new(s, "addresses", a);
		}
		json_object_set_new(o, "self", s);
	}
	for (size_t k = 0; k < r->n_peers; k++) {
		Tk__Bus__V1__PeerStatus *p = r->peers[k];
		json_t *j = json_object();
		json_object_set_new(j, "id", json_integer(p->id));
		json_object_set_new(j, "node_key", key_json("nodekey:", &p->node_key));
		json_object_set_new(j, "cur_addr", addr_json(p->cur_addr));
		if (p->has_relay_region)
			json_object_set_new(j, "relay_region",
			    json_integer(p->relay_region));
		json_object_set_new(j, "online", json_boolean(p->online));
		json_object_set_new(j, "last_handshake_unix",
		    json_integer(p->last_handshake_unix));
		json_object_set_new(j, "rx_bytes", json_integer((json_int_t)p->rx_bytes));
		json_object_set_new(j, "tx_bytes", json_integer((json_int_t)p->tx_bytes));
		if (p->n_call_me_maybe > 0) {
			json_t *cm = json_array();
			for (size_t m = 0; m < p->n_call_me_maybe; m++)
				json_array_append_new(cm,
				    addr_json(p->call_me_maybe[m]));
			json_object_set_new(j, "call_me_maybe", cm);
		}
		json_array_append_new(ps, j);
	}
	json_object_set_new(o, "peers", ps);
	for (size_t k = 0; k < r->n_counters; k++)
		json_object_set_new(c, r->counters[k]->name ? r->counters[k]->name : "?",
		    json_integer((json_int_t)r->counters[k]->value));
	json_object_set_new(o, "counters", c);
	char *txt = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	puts(txt);
	free(txt);
	json_decref(o);
	tk__bus__v1__status_response__free_unpacked(r, NULL);
	tk_buf_fini(&reply);
	return 0;
}
