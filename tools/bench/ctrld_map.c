/*
 * tk_bench_ctrld_map: ctrld's map state on realistic MapResponses.
 *
 *   tk_bench_ctrld_map [--runs N] [--out DIR]
 *
 * Generates full netmaps of 1,000, 10,000 and 100,000 peers (2 addresses, 2
 * allowed IPs, 3 endpoints, node/machine/disco keys, Hostinfo with a few
 * fields and peerapi services, a 2-entry CapMap, tags, times, plus a DERP
 * map, packet filter, DNS config and user profiles) and times, median of
 * --runs:
 *   full_N      first message of a stream on an empty map: parse + apply
 *               + pack the delta (wall and CPU time)
 *   refresh_N   the same netmap again on the filled map (nothing changes)
 *   snapshot_N  pack the whole Netmap
 * and, on the 10,000-peer map, streams of single-peer deltas:
 *   patch       PeersChangedPatch with new endpoints
 *   changed     PeersChanged with one whole node (new endpoints, LastSeen)
 * each parse + apply + pack the delta, in microseconds per delta.
 * With --out, the JSON is written there (full_N.json, patch_10000.json,
 * changed_10000.json) for tools/bench/gomap, Go's decode of the same bytes.
 * Memory at 100,000 peers, in a fresh child process so nothing of the
 * generator counts: the message arrives as ctrld gets it (one zstd map
 * frame), goes through the map frame reader (decompress) and the map
 * state as ctrld's are (the text handed over: ctrldi_map_apply_owned);
 * the child prints its resident set before, its peak (VmHWM), and what
 * stays after the message is freed (rss_100000_*_kb); --runs children,
 * medians of each figure.
 * Output: one "name value" line per figure (tools/bench/ctrld_map.sh).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/wait.h>
#include <unistd.h>

#include <zstd.h>

#include "tk/buf.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "mapframe.h"
#include "mapstate.h"

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void
sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap ? b->cap * 2 : 1 << 20;
		if ((b->p = realloc(b->p, b->cap)) == NULL) {
			fprintf(stderr, "tk_bench_ctrld_map: out of memory\n");
			exit(1);
		}
	}
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
key(sbuf *b, const char *prefix)
{
	sb_printf(b, "\"%s", prefix);
	for (int i = 0; i < 4; i++)
		sb_printf(b, "%016llx", (unsigned long long)next());
	sb_printf(b, "\"");
}

/* One peer as the SaaS/headscale send it (id >= 2). */
static void
node(sbuf *b, int id, int gen)
{
	int hi = id >> 8 & 0xff, lo = id & 0xff;

	sb_printf(b, "{\"ID\":%d,\"StableID\":\"n%08xCNTRL\",\"Name\":"
	    "\"host-%d.tail1234.ts.net.\",\"User\":%d,\"Key\":", id,
	    (unsigned)id * 2654435761u, id, 100 + id % 50);
	key(b, "nodekey:");
	sb_printf(b, ",\"KeyExpiry\":\"2026-09-01T10:00:00Z\",\"Machine\":");
	key(b, "mkey:");
	sb_printf(b, ",\"DiscoKey\":");
	key(b, "discokey:");
	sb_printf(b, ",\"Addresses\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x:%x/128\"],"
	    "\"AllowedIPs\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x:%x/128\"],"
	    "\"Endpoints\":[\"198.51.%d.%d:%d\",\"[2001:db8:%x::%x]:41641\","
	    "\"10.%d.%d.7:41641\"],\"DERP\":\"127.3.3.40:%d\",\"HomeDERP\":%d,"
	    "\"Hostinfo\":{\"IPNVersion\":\"1.102.3-t1234\",\"OS\":\"linux\","
	    "\"OSVersion\":\"Debian 13.1\",\"Hostname\":\"host-%d\","
	    "\"Services\":[{\"Proto\":\"peerapi4\",\"Port\":%d},"
	    "{\"Proto\":\"peerapi6\",\"Port\":%d}]},"
	    "\"Created\":\"2025-03-04T05:06:07.123456789Z\",\"Cap\":142,"
	    "\"Tags\":[\"tag:server\",\"tag:prod\"],\"LastSeen\":"
	    "\"2026-01-02T03:04:%02dZ\",\"Online\":true,\"MachineAuthorized\":true,"
	    "\"CapMap\":{\"https://tailscale.com/cap/file-sharing\":null,"
	    "\"funnel-ports\":[\"443\",\"8443\"]}}",
	    hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, 41641 + gen % 1000, hi, lo,
	    hi, lo, 1 + id % 20, 1 + id % 20, id, 40000 + id % 20000,
	    40000 + id % 20000, gen % 60);
}

static void
full(sbuf *b, int n)
{
	b->len = 0;
	sb_printf(b, "{\"Node\":{\"ID\":1,\"StableID\":\"nSELFCNTRL\",\"Name\":"
	    "\"self.tail1234.ts.net.\",\"User\":100,\"Key\":");
	key(b, "nodekey:");
	sb_printf(b, ",\"Machine\":");
	key(b, "mkey:");
	sb_printf(b, ",\"DiscoKey\":");
	key(b, "discokey:");
	sb_printf(b, ",\"Addresses\":[\"100.64.0.1/32\",\"fd7a:115c:a1e0::1/128\"],"
	    "\"AllowedIPs\":[\"100.64.0.1/32\",\"fd7a:115c:a1e0::1/128\"],"
	    "\"HomeDERP\":1,\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":\"self\"},"
	    "\"MachineAuthorized\":true,\"CapMap\":{\"https://tailscale.com/cap/ssh\":"
	    "null,\"magicdns-aaaa\":null}},\"DERPMap\":{\"Regions\":{");
	for (int r = 1; r <= 20; r++)
		sb_printf(b, "%s\"%d\":{\"RegionID\":%d,\"RegionCode\":\"r%d\","
		    "\"RegionName\":\"Region %d\",\"Latitude\":%d.5,\"Longitude\":"
		    "-%d.25,\"Nodes\":[{\"Name\":\"%da\",\"RegionID\":%d,\"HostName\":"
		    "\"derp%da.example.com\",\"IPv4\":\"192.0.2.%d\",\"IPv6\":"
		    "\"2001:db8::%d\",\"CanPort80\":true}]}", r > 1 ? "," : "", r, r,
		    r, r, r, r, r, r, r, r, r);
	sb_printf(b, "}},\"Peers\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			sb_printf(b, ",");
		node(b, 2 + i, 0);
	}
	sb_printf(b, "],\"DNSConfig\":{\"Resolvers\":[{\"Addr\":\"1.1.1.1\"}],"
	    "\"Routes\":{\"tail1234.ts.net.\":null},\"Domains\":"
	    "[\"tail1234.ts.net\"],\"Proxied\":true},\"Domain\":\"example.com\","
	    "\"CollectServices\":true,\"PacketFilter\":[{\"SrcIPs\":"
	    "[\"100.64.0.0/10\",\"fd7a:115c:a1e0::/48\"],\"DstPorts\":[{\"IP\":"
	    "\"*\",\"Ports\":{\"First\":0,\"Last\":65535}}]}],\"UserProfiles\":[");
	for (int u = 0; u < 50; u++)
		sb_printf(b, "%s{\"ID\":%d,\"LoginName\":\"user%d@example.com\","
		    "\"DisplayName\":\"User %d\"}", u ? "," : "", 100 + u, u, u);
	sb_printf(b, "],\"ControlTime\":\"2026-01-02T03:04:05Z\"}");
}

static void
patch(sbuf *b, int id, int gen)
{
	b->len = 0;
	sb_printf(b, "{\"PeersChangedPatch\":[{\"NodeID\":%d,\"Endpoints\":"
	    "[\"203.0.113.%d:%d\",\"[2001:db8:1::%x]:41641\",\"10.9.%d.7:41641\"]}]}",
	    id, gen % 250, 1024 + gen % 60000, gen & 0xffff, gen % 250);
}

static void
changed(sbuf *b, int id, int gen)
{
	b->len = 0;
	sb_printf(b, "{\"PeersChanged\":[");
	node(b, id, gen);
	sb_printf(b, "]}");
}

static double
now_ms(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int
dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), dcmp);
	return v[n / 2];
}

static void
apply_or_die(ctrldi_map *m, const sbuf *b, tk_buf *delta)
{
	char err[256];
	bool chg;
	int rv;

	delta->len = 0;
	rv = ctrldi_map_apply(m, b->p, b->len, delta, &chg, NULL, err,
	    sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "tk_bench_ctrld_map: apply: %s: %s\n",
		    tk_strerror(rv), err);
		exit(1);
	}
}

static void
save(const char *dir, const char *name, const sbuf *b)
{
	char path[4096];
	FILE *f;

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
		fprintf(stderr, "tk_bench_ctrld_map: %s: %s\n", path,
		    strerror(errno));
		exit(1);
	}
}

/* kB of a /proc/self/status field (VmRSS, VmHWM). */
static long
status_kb(const char *field)
{
	char line[256];
	long v = -1;
	size_t fl = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, fl) == 0 && line[fl] == ':')
			v = atol(line + fl + 1);
	if (f != NULL)
		fclose(f);
	return v;
}

typedef struct rss_ctx {
	ctrldi_map *m;
	tk_buf delta;
	double cpu_ms;
} rss_ctx;

static int
rss_on_msg(void *arg, char *json, size_t n)
{
	rss_ctx *r = arg;
	char err[256];
	bool chg;
	int rv = ctrldi_map_apply_owned(r->m, json, n, &r->delta, &chg, NULL,
	    err, sizeof(err));

	if (rv != 0)
		fprintf(stderr, "tk_bench_ctrld_map: apply: %s\n", err);
	return rv;
}

/* The child: one framed zstd MapResponse from path through ctrld's frame
 * reader and map state. */
static int
rss_child(const char *path, const char *peers)
{
	FILE *f = fopen(path, "rb");
	tk_buf in;
	rss_ctx r = { 0 };
	char why[160];
	int cb = 0;
	long base, peak, after;
	double c0;

	tk_buf_init(&in);
	tk_buf_init(&r.delta);
	if (f == NULL || fseek(f, 0, SEEK_END) != 0)
		return 1;
	long len = ftell(f);
	rewind(f);
	if (len <= 0 || tk_buf_reserve(&in, (size_t)len) != 0 ||
	    fread(in.data, 1, (size_t)len, f) != (size_t)len)
		return 1;
	fclose(f);
	in.len = (size_t)len;
	if (ctrldi_map_new(&r.m) != 0)
		return 1;
	base = status_kb("VmRSS");
	c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
	if (ctrldi_map_frames(&in, true, rss_on_msg, &r, &cb, why,
	    sizeof(why)) != 0 || cb != 0 || ctrldi_map_peer_count(r.m) !=
	    (size_t)atol(peers)) {
		fprintf(stderr, "tk_bench_ctrld_map: the %s-peer frame: %s\n", peers,
		    why);
		return 1;
	}
	r.cpu_ms = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
	peak = status_kb("VmHWM");
	tk_buf_fini(&in);
	tk_buf_fini(&r.delta);
	after = status_kb("VmRSS");
	printf("c_rss_%s_base_kb %ld\nc_rss_%s_peak_kb %ld\nc_rss_%s_after_kb %ld\n"
	    "c_frame_%s_cpu_ms %.2f\n", peers, base, peers, peak, peers, after,
	    peers, r.cpu_ms);
	ctrldi_map_free(r.m);
	return 0;
}

/* One child run: its four figures (base, peak, after kB; CPU ms). */
static void
rss_child_run(const char *path, const char *peers, double v[4])
{
	int fd[2], st = 0;
	char out[1024], name[64];
	size_t got = 0;
	ssize_t r;

	if (pipe(fd) != 0) {
		fprintf(stderr, "tk_bench_ctrld_map: pipe: %s\n", strerror(errno));
		exit(1);
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execl("/proc/self/exe", "tk_bench_ctrld_map", "--rss-child", path,
		    peers, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (got < sizeof(out) - 1 &&
	    (r = read(fd[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(fd[0]);
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		fprintf(stderr, "tk_bench_ctrld_map: the memory child failed\n");
		exit(1);
	}
	for (char *line = strtok(out, "\n"); line != NULL;
	     line = strtok(NULL, "\n")) {
		double x;

		if (sscanf(line, "%63s %lf", name, &x) != 2)
			continue;
		if (strstr(name, "_base_kb"))
			v[0] = x;
		else if (strstr(name, "_peak_kb"))
			v[1] = x;
		else if (strstr(name, "_after_kb"))
			v[2] = x;
		else if (strstr(name, "_cpu_ms"))
			v[3] = x;
	}
}

/* Writes b as one framed zstd map message and measures it in a fresh
 * child, runs times; medians. */
static void
rss_measure(const sbuf *b, int n, const char *dir, int runs)
{
	char path[4096], peers[16];
	size_t cap = ZSTD_compressBound(b->len);
	uint8_t *z = malloc(cap + 4);
	FILE *f;

	snprintf(path, sizeof(path), "%s/frame_%d.zst", dir ? dir : "/tmp", n);
	snprintf(peers, sizeof(peers), "%d", n);
	size_t zn = z ? ZSTD_compress(z + 4, cap, b->p, b->len, 3) : 0;
	if (z == NULL || ZSTD_isError(zn)) {
		fprintf(stderr, "tk_bench_ctrld_map: compress failed\n");
		exit(1);
	}
	tk_le32_store(z, (uint32_t)zn);
	if ((f = fopen(path, "wb")) == NULL || fwrite(z, 1, zn + 4, f) != zn + 4 ||
	    fclose(f) != 0) {
		fprintf(stderr, "tk_bench_ctrld_map: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	free(z);
	printf("c_zstd_%d_bytes %zu\n", n, zn);
	fflush(stdout);
	{
		double base[1000], peak[1000], after[1000], cpu[1000], v[4];

		for (int r = 0; r < runs; r++) {
			v[0] = v[1] = v[2] = v[3] = -1;
			rss_child_run(path, peers, v);
			base[r] = v[0];
			peak[r] = v[1];
			after[r] = v[2];
			cpu[r] = v[3];
		}
		printf("c_rss_%d_base_kb %.0f\nc_rss_%d_peak_kb %.0f\n"
		    "c_rss_%d_after_kb %.0f\nc_frame_%d_cpu_ms %.2f\n", n,
		    median(base, runs), n, median(peak, runs), n,
		    median(after, runs), n, median(cpu, runs));
	}
	if (dir == NULL)
		unlink(path);
}

int
main(int argc, char **argv)
{
	static const int sizes[] = { 1000, 10000, 100000 };
	const char *out = NULL;
	int runs = 7;
	sbuf b = { 0 };
	tk_buf delta, snap;

	if (argc == 4 && strcmp(argv[1], "--rss-child") == 0)
		return rss_child(argv[2], argv[3]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else {
			fprintf(stderr, "usage: tk_bench_ctrld_map [--runs N] "
			    "[--out DIR]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 1000) {
		fprintf(stderr, "tk_bench_ctrld_map: --runs must be 1..1000\n");
		return 2;
	}
	tk_buf_init(&delta);
	tk_buf_init(&snap);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		int n = sizes[s];
		double wall[1000], cpu[1000], refresh[1000], snapms[1000];
		char name[64];
		ctrldi_map *m = NULL;

		full(&b, n);
		snprintf(name, sizeof(name), "full_%d.json", n);
		save(out, name, &b);
		if (n == 100000)
			rss_measure(&b, n, out, runs);
		for (int r = 0; r < runs; r++) {
			double t0, c0;

			ctrldi_map_free(m);
			if (ctrldi_map_new(&m) != 0)
				return 1;
			t0 = now_ms(CLOCK_MONOTONIC);
			c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
			apply_or_die(m, &b, &delta);
			wall[r] = now_ms(CLOCK_MONOTONIC) - t0;
			cpu[r] = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
			t0 = now_ms(CLOCK_MONOTONIC);
			apply_or_die(m, &b, &delta);
			refresh[r] = now_ms(CLOCK_MONOTONIC) - t0;
			snap.len = 0;
			t0 = now_ms(CLOCK_MONOTONIC);
			if (ctrldi_map_snapshot(m, &snap) != 0)
				return 1;
			snapms[r] = now_ms(CLOCK_MONOTONIC) - t0;
		}
		printf("c_json_%d_bytes %zu\n", n, b.len);
		printf("c_full_%d_ms %.2f\n", n, median(wall, runs));
		printf("c_full_%d_cpu_ms %.2f\n", n, median(cpu, runs));
		printf("c_refresh_%d_ms %.2f\n", n, median(refresh, runs));
		printf("c_snapshot_%d_ms %.2f\n", n, median(snapms, runs));
		printf("c_snapshot_%d_bytes %zu\n", n, snap.len);
		if (n == 10000) {
			/* single-peer deltas on the 10,000-peer map */
			const int per = 20000;
			double us[1000];

			patch(&b, 5000, 1);
			save(out, "patch_10000.json", &b);
			changed(&b, 5000, 1);
			save(out, "changed_10000.json", &b);
			for (int kind = 0; kind < 2; kind++) {
				for (int r = 0; r < runs; r++) {
					double t = 0;

					for (int i = 0; i < per; i++) {
						int id = 2 + (int)(next() % 10000);
						double t0;

						if (kind == 0)
							patch(&b, id, i + r * per);
						else
							changed(&b, id, i + r * per);
						t0 = now_ms(CLOCK_MONOTONIC);
						apply_or_die(m, &b, &delta);
						t += now_ms(CLOCK_MONOTONIC) - t0;
						if (delta.len == 0) {
							fprintf(stderr, "tk_bench_ctrld_map: "
							    "a delta changed nothing\n");
							return 1;
						}
					}
					us[r] = t * 1000 / per;
				}
				printf("c_%s_10000_us %.2f\n",
				    kind == 0 ? "patch" : "changed", median(us, runs));
			}
		}
		ctrldi_map_free(m);
	}
	tk_buf_fini(&delta);
	tk_buf_fini(&snap);
	free(b.p);
	return 0;
}
