/*
 * wgd's DERP path (issue 11, ARCHITECTURE.md "Data path").
 *
 *   packet bus  pair1 "wgd-derp", wgd listens, derpd dials: BATCH_KIND_PEER
 *               records (packet.proto).  wgd -> derpd: a WireGuard datagram
 *               for the peer with that node key, through derp_region (0:
 *               the peer's home).  derpd -> wgd: a datagram that arrived
 *               from that key through that region.  CONTROL records carry
 *               PacketControl (peer gone/present, drops), counted here.
 *   rpc         "derp_seal" / "derp_open" (DerpBoxRequest/Reply): the DERP
 *               ClientInfo is sealed, and the ServerInfo opened, with the
 *               node private key, which stays in wgd.
 *
 * A DERP region is the endpoint 127.3.3.40:<region> (tk_wg_endpoint_derp),
 * so WireGuard's own roaming follows a peer to the region it was last heard
 * from, as magicsock's derpRoute does.  Disco datagrams arriving over DERP
 * (disco.go LooksLikeDiscoWrapper) go to disco.c with their source key and
 * region; disco.c sends its Pongs and Pings back through here.
 */
#include <stdio.h>
#include <string.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_topics.h"
#include "tk/derp.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/packet.pb-c.h"
#include "disco.h"
#include "wgd_int.h"

struct wgdi_derp {
	wgd *w;
	nng_socket sock;
	bool open;
	tk_bus_reader *reader;
	tk_bus_batcher out; /* datagrams to derpd */
	tk_bus_batch_stats stats;
	uint64_t tx_oversize, rx, rx_disco, rx_unknown_kind, rx_control;
	uint64_t rx_peer_gone, seals, opens, box_refused;
	uint8_t rxbuf[WGD_MAX_DGRAM];
};

void
wgdi_derp_flush(wgdi_derp *d)
{
	if (d != NULL)
		tk_bus_batcher_flush(&d->out); /* derpd absent or slow: counted */
}

void
wgdi_derp_send_key(wgdi_derp *d, const uint8_t node_key[32], uint32_t region,
    const uint8_t *p, size_t n)
{
	tk_bus_batch_rec rec = { .type = 0, .derp_region = region, .data = p,
		.len = n };

	if (n == 0 || n > TK_DERP_MAX_PACKET_SIZE) {
		d->tx_oversize++;
		return;
	}
	memcpy(rec.key.b, node_key, 32);
	tk_bus_batcher_add(&d->out, TK_BATCH_PEER, &rec);
}

void
wgdi_derp_send(wgdi_derp *d, tk_wg_peer *peer, uint32_t region,
    const uint8_t *p, size_t n)
{
	wgdi_derp_send_key(d, tk_wg_peer_public_key(peer), region, p, n);
}

static void
on_control(wgdi_derp *d, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__PacketControl *c =
	    tk__bus__v1__packet_control__unpack(NULL, n, p);

	d->rx_control++;
	if (c == NULL) {
		d->stats.bs_dropped++;
		return;
	}
	/* A peer gone from a region: WireGuard keeps its endpoint; the next
	 * netmap or the peer's next packet moves it. */
	if (c->msg_case == TK__BUS__V1__PACKET_CONTROL__MSG_PEER_GONE)
		d->rx_peer_gone++;
	tk__bus__v1__packet_control__free_unpacked(c, NULL);
}

static void
on_msg(void *arg, nng_msg *msg)
{
	wgdi_derp *d = arg;
	wgd *w = d->w;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;

	if (tk_bus_batch_parse_msg(&v, msg, &d->stats) == 0) {
		int kind = tk_bus_batch_kind(&v);
		while (tk_bus_batch_next(&v, &rec)) {
			if (kind == TK_BATCH_CONTROL) {
				on_control(d, rec.data, rec.len);
				continue;
			}
			if (kind != TK_BATCH_PEER) {
				d->rx_unknown_kind++;
				continue;
			}
			d->rx++;
			if (tk_derp_looks_like_disco(rec.data, rec.len)) {
				d->rx_disco++;
				if (w->bus != NULL)
					wgdi_disco_rx_derp(wgdi_bus_disco(w->bus),
					    rec.key.b, rec.derp_region,
					    rec.data, rec.len);
				continue;
			}
			if (rec.derp_region == 0 || rec.derp_region > 65535 ||
			    rec.len > sizeof(d->rxbuf)) {
				d->rx_unknown_kind++;
				continue;
			}
			tk_wg_endpoint src;
			tk_wg_endpoint_derp(&src, (uint16_t)rec.derp_region);
			/* the device decrypts in place: copy out of the msg */
			memcpy(d->rxbuf, rec.data, rec.len);
			tk_wg_device_recv(w->dev, &src, d->rxbuf, rec.len);
		}
	}
	nng_msg_free(msg);
	wgdi_flush_tx(w); /* flushes the DERP batch too */
	if (w->tun != NULL)
		wgdi_tun_flush(w->tun);
	if (w->bus != NULL)
		wgdi_bus_flush(w->bus);
}

/* Seal or open for derpd.  Only DERP bodies pass either way. */
static int
box_rpc(wgdi_derp *d, bool seal, const uint8_t *body, size_t len,
    tk_buf *reply)
{
	Tk__Bus__V1__DerpBoxRequest *rq =
	    tk__bus__v1__derp_box_request__unpack(NULL, len, body);
	Tk__Bus__V1__DerpBoxReply r = TK__BUS__V1__DERP_BOX_REPLY__INIT;
	uint8_t priv[32], pub[32], out[2048];
	size_t outlen = 0;
	int rv = TK_EINVAL;

	if (rq == NULL || !rq->has_server_key || rq->server_key.len != 32 ||
	    !rq->has_data || rq->data.len > 1024) {
		tk_buf_append_str(reply, "derp box: need server_key (32 bytes) "
		    "and data (at most 1024 bytes)");
		goto out;
	}
	if (!tk_wg_device_private_key(d->w->dev, priv) ||
	    !tk_wg_device_public_key(d->w->dev, pub)) {
		rv = TK_ESTATE;
		tk_buf_append_str(reply, "derp box: no node key yet");
		goto out;
	}
	if (seal) {
		tk_derp_client_info ci;
		if (tk_derp_client_info_parse(rq->data.data, rq->data.len, &ci) != 0) {
			d->box_refused++;
			tk_buf_append_str(reply, "derp_seal: data is not a DERP "
			    "ClientInfo JSON object");
			goto out;
		}
		rv = tk_derp_box_seal(out, sizeof(out), &outlen, rq->data.data,
		    rq->data.len, rq->server_key.data, priv, NULL);
		d->seals++;
	} else {
		tk_derp_server_info si;
		rv = tk_derp_box_open(out, sizeof(out), &outlen, rq->data.data,
		    rq->data.len, rq->server_key.data, priv);
		if (rv == 0 &&
		    tk_derp_server_info_parse(out, outlen, &si) != 0) {
			rv = TK_EPROTO;
			d->box_refused++;
		}
		d->opens++;
	}
	if (rv != 0) {
		tk_buf_append_str(reply, seal ? "derp_seal failed" :
		    "derp_open: the box does not open to a ServerInfo");
		goto out;
	}
	r.has_data = true;
	r.data.data = out;
	r.data.len = outlen;
	r.has_node_key = true;
	r.node_key.data = pub;
	r.node_key.len = 32;
	rv = tk_bus_pb_pack((const ProtobufCMessage *)&r, reply);
out:
	tk_secure_zero(priv, sizeof(priv));
	if (rq)
		tk__bus__v1__derp_box_request__free_unpacked(rq, NULL);
	return rv;
}

static int
rpc_seal(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	return box_rpc(arg, true, body, len, reply);
}

static int
rpc_open(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	return box_rpc(arg, false, body, len, reply);
}

int
wgdi_derp_open(wgd *w, char *err, size_t errlen)
{
	wgdi_derp *d;
	tk_rpc_server *rpc = wgdi_bus_rpc(w->bus);
	int rv;

	if (w->derp_url == NULL)
		return 0;
	if ((d = tk_calloc(1, sizeof(*d))) == NULL)
		return TK_ENOMEM;
	d->w = w;
	w->derp = d;
	if ((rv = tk_bus_open(&d->sock, TK_BUS_PAIR)) != 0)
		goto fail;
	d->open = true;
	tk_bus_batcher_init(&d->out, d->sock, 0);
	if ((rv = tk_bus_listen(d->sock, w->derp_url, w->tls, NULL)) != 0 ||
	    (rv = tk_bus_reader_new(&d->reader, w->loop, d->sock, on_msg,
		d)) != 0)
		goto fail;
	if (rpc != NULL &&
	    ((rv = tk_rpc_server_add(rpc, TK_METHOD_DERP_SEAL, rpc_seal, d)) != 0 ||
		(rv = tk_rpc_server_add(rpc, TK_METHOD_DERP_OPEN, rpc_open, d)) != 0))
		goto fail;
	wgdi_bus_set_derp(w->bus, true);
	return 0;
fail:
	snprintf(err, errlen, "derp packet bus %s: %s", w->derp_url,
	    tk_strerror(rv));
	wgdi_derp_free(d);
	w->derp = NULL;
	return rv;
}

void
wgdi_derp_counters(const wgdi_derp *d, tk_status_counters *cs)
{
	if (d == NULL)
		return;
	tk_status_counter(cs, "derp_tx", d->out.recs);
	tk_status_counter(cs, "derp_tx_dropped", d->out.dropped + d->tx_oversize);
	tk_status_counter(cs, "derp_rx", d->rx);
	tk_status_counter(cs, "derp_rx_disco", d->rx_disco);
	tk_status_counter(cs, "derp_rx_bad", d->rx_unknown_kind);
	tk_status_counter(cs, "derp_bad_batches", d->stats.bs_dropped);
	tk_status_counter(cs, "derp_rx_control", d->rx_control);
	tk_status_counter(cs, "derp_peer_gone", d->rx_peer_gone);
	tk_status_counter(cs, "derp_seals", d->seals);
	tk_status_counter(cs, "derp_opens", d->opens);
	tk_status_counter(cs, "derp_box_refused", d->box_refused);
}

void
wgdi_derp_free(wgdi_derp *d)
{
	if (d == NULL)
		return;
	tk_bus_reader_free(d->reader);
	tk_bus_batcher_fini(&d->out);
	if (d->open)
		tk_bus_close_bounded(d->sock, 2000); /* nng 1.5.2 (tk/bus.h) */
	tk_free(d);
}
