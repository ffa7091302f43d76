/*
 * tk-feed: publishes a netmap from a JSON file on the control bus, the way
 * ctrld publishes the one it streams from a control server (topic "netmap":
 * snapshot Netmap over req/rep, NetmapDelta deltas).  For tests and
 * debugging a component without a control server.
 *
 *   tk-feed (--bus DIR | --pub URL --rpc URL) FILE.json
 *
 * FILE is a tailcfg.MapResponse subset with Go's field names:
 *
 *   { "Node":  { "ID": 1, "Key": "nodekey:<hex>", "Addresses": ["100.64.0.1/32"] },
 *     "Peers": [ { "ID": 2, "Key": "nodekey:<hex>", "DiscoKey": "discokey:<hex>",
 *                  "Addresses": [...], "AllowedIPs": [...],
 *                  "Endpoints": ["192.0.2.1:41641"], "Name": "peer." } ],
 *     "PacketFilter": [ { "SrcIPs": ["*"],
 *                         "DstPorts": [ { "IP": "*", "Ports": { "First": 0, "Last": 65535 } } ],
 *                         "IPProto": [6, 17] } ] }
 *
 * AllowedIPs absent = Addresses (tailcfg).  PacketFilter absent = none
 * received (deny all); [] = deny all.  SIGHUP re-reads FILE and publishes
 * what changed as one delta (peers changed/removed, self, filter).  A file
 * that does not parse is refused with the reason and the last good netmap
 * stays.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"

#define SUBSYS "tk-feed"

typedef Tk__Bus__V1__Netmap Netmap;
typedef Tk__Bus__V1__Node Node;

typedef struct feed {
	tk_loop *loop;
	const char *file;
	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *topic;
	Netmap *nm;
	int sig;
} feed;

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (p == NULL) {
		fprintf(stderr, "tk-feed: out of memory\n");
		exit(1);
	}
	return p;
}

static Tk__Bus__V1__Prefix *
prefix_from(const tk_ipprefix *x)
{
	Tk__Bus__V1__Prefix *p = xcalloc(1, sizeof(*p));
	size_t l = x->ip.family == TK_AF_INET ? 4 : 16;

	tk__bus__v1__prefix__init(p);
	p->has_addr = p->has_bits = true;
	p->addr.data = xcalloc(1, l);
	memcpy(p->addr.data, x->ip.addr, l);
	p->addr.len = l;
	p->bits = x->bits;
	return p;
}

static int
prefixes(const json_t *o, const char *key, Tk__Bus__V1__Prefix ***out, size_t *n,
    char *err, size_t errlen)
{
	json_t *a;
	size_t i;
	json_t *v;

	*n = 0;
	if (tk_json_get_array(o, key, 100000, &a) != 0)
		return 0;
	*out = xcalloc(json_array_size(a), sizeof(**out));
	json_array_foreach(a, i, v) {
		tk_ipprefix x;
		const char *s = json_string_value(v);
		if (s == NULL || tk_ipprefix_parse(&x, s, strlen(s)) != 0) {
			snprintf(err, errlen, "%s[%zu]: not an IP prefix", key, i);
			return TK_EINVAL;
		}
		(*out)[(*n)++] = prefix_from(&x);
	}
	return 0;
}

static int
node_from(const json_t *o, Node *n, char *err, size_t errlen)
{
	tk_node_pub k;
	tk_disco_pub d;
	const char *s;
	size_t l;
	json_t *a, *v;
	size_t i;
	int rv;

	tk__bus__v1__node__init(n);
	if (tk_json_get_int64(o, "ID", &n->id) != 0) {
		snprintf(err, errlen, "node without an integer ID");
		return TK_EINVAL;
	}
	n->has_id = true;
	if (tk_json_get_node_pub(o, "Key", &k) == 0) {
		n->has_key = true;
		n->key.data = xcalloc(1, 32);
		memcpy(n->key.data, k.b, 32);
		n->key.len = 32;
	} else {
		snprintf(err, errlen, "node %lld: Key must be nodekey:<64 hex>",
		    (long long)n->id);
		return TK_EINVAL;
	}
	if (tk_json_get_disco_pub(o, "DiscoKey", &d) == 0) {
		n->has_disco_key = true;
		n->disco_key.data = xcalloc(1, 32);
		memcpy(n->disco_key.data, d.b, 32);
		n->disco_key.len = 32;
	}
	if (tk_json_get_str(o, "Name", &s, &l) == 0)
		n->name = strdup(s);
	if ((rv = prefixes(o, "Addresses", &n->addresses, &n->n_addresses, err,
		 errlen)) != 0 ||
	    (rv = prefixes(o, "AllowedIPs", &n->allowed_ips, &n->n_allowed_ips, err,
		errlen)) != 0)
		return rv;
	if (json_object_get(o, "AllowedIPs") == NULL && n->n_addresses > 0) {
		n->allowed_ips = xcalloc(n->n_addresses, sizeof(*n->allowed_ips));
		for (i = 0; i < n->n_addresses; i++) {
			tk_ipprefix x = { 0 };
			x.ip.family = n->addresses[i]->addr.len == 4 ? TK_AF_INET :
			    TK_AF_INET6;
			memcpy(x.ip.addr, n->addresses[i]->addr.data,
			    n->addresses[i]->addr.len);
			x.bits = (uint8_t)n->addresses[i]->bits;
			n->allowed_ips[n->n_allowed_ips++] = prefix_from(&x);
		}
	}
	if (tk_json_get_array(o, "Endpoints", 1000, &a) == 0) {
		n->endpoints = xcalloc(json_array_size(a), sizeof(*n->endpoints));
		json_array_foreach(a, i, v) {
			tk_ipport ip;
			s = json_string_value(v);
			if (s == NULL || tk_ipport_parse(&ip, s, strlen(s)) != 0) {
				snprintf(err, errlen, "node %lld: Endpoints[%zu]: not "
				    "IP:port", (long long)n->id, i);
				return TK_EINVAL;
			}
			Tk__Bus__V1__AddrPort *ap = xcalloc(1, sizeof(*ap));
			tk__bus__v1__addr_port__init(ap);
			l = ip.ip.family == TK_AF_INET ? 4 : 16;
			ap->has_addr = ap->has_port = true;
			ap->addr.data = xcalloc(1, l);
			memcpy(ap->addr.data, ip.ip.addr, l);
			ap->addr.len = l;
			ap->port = ip.port;
			n->endpoints[n->n_endpoints++] = ap;
		}
	}
	return 0;
}

static Tk__Bus__V1__IPMatch *
ipmatch_from(const char *s, bool *ok)
{
	tk_wg_ipmatch m;
	Tk__Bus__V1__IPMatch *o = xcalloc(1, sizeof(*o));

	tk__bus__v1__ipmatch__init(o);
	*ok = tk_wg_ipmatch_parse(&m, s) == 0;
	if (!*ok)
		return o;
	switch (m.im_kind) {
	case TK_WG_IPM_ANY:
		o->match_case = TK__BUS__V1__IPMATCH__MATCH_ANY;
		o->any = true;
		break;
	case TK_WG_IPM_PREFIX: {
		tk_ipprefix x = { .bits = m.im_prefix.pf_bits };
		x.ip.family = m.im_prefix.pf_family == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(x.ip.addr, m.im_prefix.pf_addr, 16);
		o->match_case = TK__BUS__V1__IPMATCH__MATCH_PREFIX;
		o->prefix = prefix_from(&x);
		break;
	}
	case TK_WG_IPM_RANGE: {
		size_t l = m.im_range.rg_family == 4 ? 4 : 16;
		Tk__Bus__V1__IPRange *r = xcalloc(1, sizeof(*r));
		tk__bus__v1__iprange__init(r);
		r->has_first = r->has_last = true;
		r->first.data = xcalloc(1, l);
		r->last.data = xcalloc(1, l);
		memcpy(r->first.data, m.im_range.rg_first, l);
		memcpy(r->last.data, m.im_range.rg_last, l);
		r->first.len = r->last.len = l;
		o->match_case = TK__BUS__V1__IPMATCH__MATCH_RANGE;
		o->range = r;
		break;
	}
	case TK_WG_IPM_CAP:
		o->match_case = TK__BUS__V1__IPMATCH__MATCH_CAP;
		o->cap = strdup(m.im_cap);
		break;
	}
	return o;
}

static Tk__Bus__V1__PacketFilter *
filter_from(json_t *a, char *err, size_t errlen)
{
	Tk__Bus__V1__PacketFilter *pf = xcalloc(1, sizeof(*pf));
	size_t i, j;
	json_t *r, *v;
	bool ok;

	tk__bus__v1__packet_filter__init(pf);
	pf->has_received = true;
	pf->received = true;
	pf->rules = xcalloc(json_array_size(a), sizeof(*pf->rules));
	json_array_foreach(a, i, r) {
		Tk__Bus__V1__FilterRule *fr = xcalloc(1, sizeof(*fr));
		json_t *src, *dst, *pr;

		tk__bus__v1__filter_rule__init(fr);
		pf->rules[pf->n_rules++] = fr;
		if (tk_json_get_array(r, "SrcIPs", 100000, &src) == 0) {
			fr->src_ips = xcalloc(json_array_size(src), sizeof(void *));
			json_array_foreach(src, j, v) {
				const char *s = json_string_value(v);
				Tk__Bus__V1__IPMatch *m = ipmatch_from(s ? s : "", &ok);
				if (!ok) {
					snprintf(err, errlen, "PacketFilter[%zu].SrcIPs[%zu]: "
					    "not *, an IP, a prefix, a range or cap:NAME", i, j);
					tk__bus__v1__ipmatch__free_unpacked(m, NULL);
					goto bad;
				}
				fr->src_ips[fr->n_src_ips++] = m;
			}
		}
		if (tk_json_get_array(r, "DstPorts", 100000, &dst) == 0) {
			fr->dst_ports = xcalloc(json_array_size(dst), sizeof(void *));
			json_array_foreach(dst, j, v) {
				const char *s = NULL;
				size_t l;
				json_t *ports;
				int64_t first = 0, last = 65535;
				Tk__Bus__V1__NetPortRange *d = xcalloc(1, sizeof(*d));

				tk__bus__v1__net_port_range__init(d);
				fr->dst_ports[fr->n_dst_ports++] = d;
				tk_json_get_str(v, "IP", &s, &l);
				d->ip = ipmatch_from(s ? s : "", &ok);
				if (!ok) {
					snprintf(err, errlen, "PacketFilter[%zu].DstPorts[%zu].IP: "
					    "not *, an IP, a prefix or a range", i, j);
					goto bad;
				}
				if (tk_json_get_object(v, "Ports", &ports) == 0) {
					tk_json_get_int64(ports, "First", &first);
					tk_json_get_int64(ports, "Last", &last);
				}
				if (first < 0 || last > 65535 || first > last) {
					snprintf(err, errlen, "PacketFilter[%zu].DstPorts[%zu]: "
					    "ports must be 0 <= First <= Last <= 65535", i, j);
					goto bad;
				}
				d->has_first_port = d->has_last_port = true;
				d->first_port = (uint32_t)first;
				d->last_port = (uint32_t)last;
			}
		}
		if (tk_json_get_array(r, "IPProto", 256, &pr) == 0) {
			fr->ip_proto = xcalloc(json_array_size(pr), sizeof(uint32_t));
			json_array_foreach(pr, j, v) {
				json_int_t x = json_integer_value(v);
				if (!json_is_integer(v) || x < 0 || x > 255) {
					snprintf(err, errlen, "PacketFilter[%zu].IPProto[%zu]: "
					    "need 0..255", i, j);
					goto bad;
				}
				fr->ip_proto[fr->n_ip_proto++] = (uint32_t)x;
			}
		}
	}
	return pf;
bad:
	tk__bus__v1__packet_filter__free_unpacked(pf, NULL);
	return NULL;
}

static Netmap *
load(const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	char *buf;
	size_t n;
	json_t *root = NULL, *a, *v;
	Netmap *nm;
	size_t i;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return NULL;
	}
	buf = xcalloc(1, 64u << 20);
	n = fread(buf, 1, (64u << 20) - 1, f);
	fclose(f);
	if (tk_json_parse(&root, buf, n, NULL, err, errlen) != 0) {
		free(buf);
		return NULL;
	}
	free(buf);
	nm = xcalloc(1, sizeof(*nm));
	tk__bus__v1__netmap__init(nm);
	if (tk_json_get_object(root, "Node", &v) == 0) {
		nm->self = xcalloc(1, sizeof(*nm->self));
		if (node_from(v, nm->self, err, errlen) != 0)
			goto bad;
	}
	if (tk_json_get_array(root, "Peers", 1000000, &a) == 0) {
		nm->peers = xcalloc(json_array_size(a), sizeof(*nm->peers));
		json_array_foreach(a, i, v) {
			Node *p = xcalloc(1, sizeof(*p));
			nm->peers[nm->n_peers++] = p;
			if (node_from(v, p, err, errlen) != 0)
				goto bad;
		}
	}
	if ((a = json_object_get(root, "PacketFilter")) != NULL && !json_is_null(a)) {
		if (!json_is_array(a)) {
			snprintf(err, errlen, "PacketFilter must be an array");
			goto bad;
		}
		if ((nm->packet_filter = filter_from(a, err, errlen)) == NULL)
			goto bad;
	}
	json_decref(root);
	return nm;
bad:
	json_decref(root);
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
	return NULL;
}

static int
snapshot(void *arg, tk_buf *out)
{
	feed *f = arg;

	return tk_bus_pb_pack(&f->nm->base, out);
}

static bool
same(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	size_t na = protobuf_c_message_get_packed_size(a);
	size_t nb = protobuf_c_message_get_packed_size(b);
	if (na != nb)
		return false;
	uint8_t *pa = xcalloc(1, na), *pb = xcalloc(1, nb);
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	bool eq = memcmp(pa, pb, na) == 0;
	free(pa);
	free(pb);
	return eq;
}

static Node *
find(const Netmap *nm, int64_t id)
{
	for (size_t i = 0; i < nm->n_peers; i++)
		if (nm->peers[i]->id == id)
			return nm->peers[i];
	return NULL;
}

static void
reload(feed *f)
{
	char err[300];
	Netmap *nm = load(f->file, err, sizeof(err));
	Tk__Bus__V1__NetmapDelta d = TK__BUS__V1__NETMAP_DELTA__INIT;
	Tk__Bus__V1__PacketFilter deny = TK__BUS__V1__PACKET_FILTER__INIT;

	if (nm == NULL) {
		TK_ERR(SUBSYS, "%s refused, keeping the last netmap: %s", f->file, err);
		return;
	}
	d.peers_changed = xcalloc(nm->n_peers, sizeof(void *));
	d.peers_removed = xcalloc(f->nm->n_peers, sizeof(int64_t));
	for (size_t i = 0; i < nm->n_peers; i++) {
		Node *old = find(f->nm, nm->peers[i]->id);
		if (old == NULL || !same(&old->base, &nm->peers[i]->base))
			d.peers_changed[d.n_peers_changed++] = nm->peers[i];
	}
	for (size_t i = 0; i < f->nm->n_peers; i++)
		if (find(nm, f->nm->peers[i]->id) == NULL)
			d.peers_removed[d.n_peers_removed++] = f->nm->peers[i]->id;
	if (!same(nm->self ? &nm->self->base : NULL,
		f->nm->self ? &f->nm->self->base : NULL) && nm->self)
		d.self = nm->self;
	if (!same(nm->packet_filter ? &nm->packet_filter->base : NULL,
		f->nm->packet_filter ? &f->nm->packet_filter->base : NULL))
		d.packet_filter = nm->packet_filter ? nm->packet_filter : &deny;
	tk_buf b;
	tk_buf_init(&b);
	if (tk_bus_pb_pack(&d.base, &b) == 0)
		tk_topic_publish(f->topic, b.data, b.len);
	TK_INFO(SUBSYS, "delta %llu: %zu peers changed, %zu removed%s%s",
	    (unsigned long long)tk_topic_seq(f->topic), d.n_peers_changed,
	    d.n_peers_removed, d.self ? ", self" : "",
	    d.packet_filter ? ", packet filter" : "");
	tk_buf_fini(&b);
	free(d.peers_changed);
	free(d.peers_removed);
	tk__bus__v1__netmap__free_unpacked(f->nm, NULL);
	f->nm = nm;
}

static void
on_signal(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	feed *f = arg;
	struct signalfd_siginfo si;

	(void)ev;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(f);
		else
			tk_loop_stop(loop);
	}
}

static void
usage(FILE *o)
{
	fprintf(o, "usage: tk-feed (--bus DIR | --pub URL --rpc URL) FILE.json\n"
	    "  Publishes FILE (a tailcfg.MapResponse subset: Node, Peers,\n"
	    "  PacketFilter) as topic \"netmap\"; SIGHUP re-reads it and publishes\n"
	    "  the difference as one delta.  --bus DIR = ipc://DIR/ctrld.pub and\n"
	    "  ipc://DIR/ctrld.rpc (where ctrld publishes).\n");
}

int
main(int argc, char **argv)
{
	static feed f;
	const char *pub = NULL, *rpc = NULL;
	static char pbuf[600], rbuf[600];
	char err[300];
	int i, rv;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--pub") == 0 && i + 1 < argc)
			pub = argv[++i];
		else if (strcmp(argv[i], "--rpc") == 0 && i + 1 < argc)
			rpc = argv[++i];
		else if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc) {
			snprintf(pbuf, sizeof(pbuf), "ipc://%s/" TK_BUS_CTRLD_PUB,
			    argv[i + 1]);
			snprintf(rbuf, sizeof(rbuf), "ipc://%s/" TK_BUS_CTRLD_RPC,
			    argv[i + 1]);
			pub = pbuf, rpc = rbuf;
			i++;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tk-feed: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i + 1 != argc || pub == NULL || rpc == NULL) {
		usage(stderr);
		return 2;
	}
	f.file = argv[i];
	if ((rv = tk_init()) != 0)
		return 1;
	if ((f.nm = load(f.file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "tk-feed: %s\n", err);
		return 2;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	tk_rpc_server_cfg rc = { 0 };
	tk_topic_pub_cfg pc = { 0 };
	if ((rv = tk_loop_new(&f.loop, NULL)) != 0)
		return 1;
	rc.loop = pc.loop = f.loop;
	rc.url = rpc;
	pc.url = pub;
	if ((rv = tk_rpc_server_new(&f.rpc, &rc)) != 0 ||
	    (pc.rpc = f.rpc, (rv = tk_topic_pub_new(&f.pub, &pc))) != 0 ||
	    (rv = tk_topic_add(f.pub, TK_TOPIC_NETMAP, snapshot, &f, &f.topic)) != 0) {
		fprintf(stderr, "tk-feed: %s / %s: %s\n", pub, rpc, tk_strerror(rv));
		return 1;
	}
	f.sig = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	tk_loop_fd_add(f.loop, f.sig, TK_LOOP_READ, on_signal, &f);
	TK_INFO(SUBSYS, "publishing %s: %zu peers on %s", f.file, f.nm->n_peers, pub);
	tk_loop_run(f.loop);
	tk_topic_pub_free(f.pub);
	tk_rpc_server_free(f.rpc);
	tk_loop_free(f.loop);
	tk__bus__v1__netmap__free_unpacked(f.nm, NULL);
	close(f.sig);
	return 0;
}
