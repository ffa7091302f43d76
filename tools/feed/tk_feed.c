/*
 * tk-feed: publishes a netmap from a JSON file on the control bus, the way
 * ctrld publishes the one it streams from a control server (topic "netmap":
 * snapshot Netmap over req/rep, NetmapDelta deltas).  For tests and
 * debugging a component without a control server.
 *
 *   tk-feed (--bus DIR | --pub URL --rpc URL) FILE.json
 *
 * FILE is one tailcfg.MapResponse, for example
 *
 *   { "Node":  { "ID": 1, "Key": "nodekey:<hex>", "Addresses": ["100.64.0.1/32"] },
 *     "Peers": [ { "ID": 2, "Key": "nodekey:<hex>", "DiscoKey": "discokey:<hex>",
 *                  "Addresses": [...], "AllowedIPs": [...],
 *                  "Endpoints": ["192.0.2.1:41641"], "Name": "peer." } ],
 *     "PacketFilter": [ { "SrcIPs": ["*"],
 *                         "DstPorts": [ { "IP": "*", "Ports": { "First": 0, "Last": 65535 } } ],
 *                         "IPProto": [6, 17] } ] }
 *
 * It goes through ctrld's own map state (ctrld/src/mapstate.h), so what
 * is published is exactly what ctrld would publish for that message:
 * every tailcfg rule, null/absent rule and normalisation is ctrld's.
 * Each read of FILE is the first message of a new map stream: it must
 * carry Node, and its Peers replace all peers.  Absent PacketFilter (or
 * DERPMap, DNSConfig, ...) leaves what was published before; never sent,
 * there is none (wgd: deny all); [] is deny all.
 *
 * SIGHUP re-reads FILE and publishes what changed as one delta (an empty
 * one if nothing did).  A file ctrld would refuse is refused with the
 * reason, and the last good netmap stays.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mapstate.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/loop.h"

#define SUBSYS "tk-feed"

typedef struct feed {
	tk_loop *loop;
	const char *file;
	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *topic;
	ctrldi_map *map;
	int sig;
} feed;

/*
 * Reads FILE into the map as a new stream's first MapResponse.  On 0 the
 * delta (possibly empty) is in d; on error the map is as it was.
 */
static int
load(feed *f, tk_buf *d, char *err, size_t errlen)
{
	FILE *fp = fopen(f->file, "rb");
	size_t cap = 1u << 16, n = 0;
	char *buf = NULL;
	bool changed = false;
	int rv;

	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", f->file, strerror(errno));
		return TK_EINVAL;
	}
	for (;;) {
		char *nb;

		if (n == cap || buf == NULL) {
			if (buf != NULL)
				cap *= 2;
			if (cap > (size_t)CTRLDI_MAP_MAX_BYTES + 1 ||
			    (nb = realloc(buf, cap)) == NULL) {
				snprintf(err, errlen, "%s: too large", f->file);
				free(buf);
				fclose(fp);
				return TK_EINVAL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, fp);
		n += got;
		if (got == 0)
			break;
	}
	fclose(fp);
	ctrldi_map_stream_reset(f->map);
	rv = ctrldi_map_apply(f->map, buf, n, d, &changed, NULL, err, errlen);
	free(buf);
	return rv;
}

static int
snapshot(void *arg, tk_buf *out)
{
	feed *f = arg;

	return ctrldi_map_snapshot(f->map, out);
}

static void
reload(feed *f)
{
	char err[300];
	tk_buf d;

	tk_buf_init(&d);
	if (load(f, &d, err, sizeof(err)) != 0) {
		TK_ERR(SUBSYS, "%s refused, keeping the last netmap: %s", f->file,
		    err);
	} else {
		/* an empty NetmapDelta when nothing changed: one per SIGHUP */
		tk_topic_publish(f->topic, d.data, d.len);
		TK_INFO(SUBSYS, "delta %llu: %zu bytes, %zu peers",
		    (unsigned long long)tk_topic_seq(f->topic), d.len,
		    ctrldi_map_peer_count(f->map));
	}
	tk_buf_fini(&d);
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
	    "  Publishes FILE (a tailcfg.MapResponse, read as ctrld reads one) as\n"
	    "  topic \"netmap\"; SIGHUP re-reads it and publishes the difference\n"
	    "  as one delta.  --bus DIR = ipc://DIR/ctrld.pub and\n"
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
	if ((rv = ctrldi_map_new(&f.map)) != 0) {
		fprintf(stderr, "tk-feed: %s\n", tk_strerror(rv));
		return 1;
	}
	{
		tk_buf d;

		tk_buf_init(&d);
		rv = load(&f, &d, err, sizeof(err));
		tk_buf_fini(&d); /* the first netmap goes out as a snapshot */
		if (rv != 0) {
			fprintf(stderr, "tk-feed: %s\n", err);
			ctrldi_map_free(f.map);
			return 2;
		}
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
	TK_INFO(SUBSYS, "publishing %s: %zu peers on %s", f.file,
	    ctrldi_map_peer_count(f.map), pub);
	tk_loop_run(f.loop);
	tk_topic_pub_free(f.pub);
	tk_rpc_server_free(f.rpc);
	tk_loop_free(f.loop);
	ctrldi_map_free(f.map);
	close(f.sig);
	return 0;
}
