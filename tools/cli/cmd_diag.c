/*
 * Diagnostics: tailkit ping, netcheck and debug {bus,wg,derp,control}.
 *
 *   tailkit ping [-c N] [--disco|--tsmp|--icmp] [--timeout D] PEER
 *   tailkit netcheck
 *   tailkit debug bus [--count N] TOPIC | --pkt wgd-pkt
 *   tailkit debug wg [--raw]
 *   tailkit debug derp [--http] [REGION] [tk-derp flags]
 *   tailkit debug control [tk-control flags] URL
 *
 * ping, netcheck, debug bus and debug wg ask tailkitd's LocalAPI (POST
 * /localapi/v0/ping, GET /localapi/v0/tailkit/{netcheck,bus,wg}); debug
 * derp and control run tk-derp and tk-control, found next to this binary.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_int.h"

/* --- ping ------------------------------------------------------------------- */

/* "5s", "500ms", "2" (seconds) -> milliseconds, or 0. */
static unsigned
parse_duration_ms(const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (e == s || v <= 0)
		return 0;
	if (*e == '\0' || strcmp(e, "s") == 0)
		v *= 1000;
	else if (strcmp(e, "ms") != 0)
		return 0;
	return v >= 1 && v <= 30000 ? (unsigned)v : 0;
}

/* PEER -> an IP: an IP literal, or a peer's (short) MagicDNS or host name. */
static bool
resolve_peer(const char *peer, char *ip, size_t cap)
{
	json_t *st = get_ok("/localapi/v0/status"), *p, *a;
	const char *k;
	char name[256];
	bool found = false;

	if (strspn(peer, "0123456789.") == strlen(peer) || strchr(peer, ':')) {
		snprintf(ip, cap, "%s", peer);
		json_decref(st);
		return true;
	}
	json_object_foreach(json_object_get(st, "Peer"), k, p) {
		short_name(p, jstr(st, "MagicDNSSuffix"), name, sizeof(name));
		if (!found && (strcmp(name, peer) == 0 ||
		    strcmp(jstr(p, "DNSName"), peer) == 0 ||
		    strcmp(jstr(p, "HostName"), peer) == 0) &&
		    (a = json_array_get(json_object_get(p, "TailscaleIPs"), 0))) {
			snprintf(ip, cap, "%s", json_string_value(a));
			found = true;
		}
	}
	json_decref(st);
	return found;
}

static const char *
ping_usage = "usage: tailkit ping [-c N] [--disco|--tsmp|--icmp] [--timeout D] "
    "PEER\n"
    "  PEER: a tailnet IP, or a peer's MagicDNS or host name\n"
    "  --disco: a disco ping over DERP, answered by the peer's magicsock\n"
    "  (direct paths are not done yet); the default when the peer has a\n"
    "  disco key, else TSMP (as Go's default is disco)\n"
    "  --tsmp: through WireGuard, answered by the peer's engine\n"
    "  --icmp: an ICMP echo, answered by the peer's network stack\n"
    "  -c N: N pings, a second apart (default 1); --timeout D: per ping,\n"
    "  like 5s or 500ms (default 5s, at most 30s)\n";

/* One ping; prints its line.  1: pong, 0: no answer, -1: stop (error),
 * -3: auto mode and no disco path to the peer (nothing printed). */
static int
ping_once(const char *ip, const char *type, bool autotype, unsigned ms)
{
	char path[256];
	json_t *j;

	snprintf(path, sizeof(path), "/localapi/v0/ping?ip=%s&type=%s&timeout=%u",
	    ip, type, ms);
	int st = call("POST", path, &j);
	if (st != 200) {
		fprintf(stderr, "tailkit ping: HTTP %d: %s\n", st, jstr(j, "error"));
		json_decref(j);
		return -1;
	}
	const char *err = jstr(j, "Err");
	if (*err && autotype && strstr(err, "disco") != NULL) {
		json_decref(j);
		return -3;
	}
	if (*err) {
		int rv = strstr(err, "timeout") ? 0 : -1;
		if (rv == 0)
			printf("ping \"%s\" timed out\n", ip);
		else
			fprintf(stderr, "tailkit ping: %s\n", err);
		if (json_is_true(json_object_get(j, "IsLocalIP")))
			rv = -2;
		json_decref(j);
		return rv;
	}
	char via[128];
	double lat = json_real_value(json_object_get(j, "LatencySeconds"));
	json_int_t region = json_integer_value(json_object_get(j, "DERPRegionID"));
	if (region != 0)
		snprintf(via, sizeof(via), "DERP(%s)", *jstr(j, "DERPRegionCode") ?
		    jstr(j, "DERPRegionCode") : "?");
	else if (*jstr(j, "Endpoint"))
		snprintf(via, sizeof(via), "%s", jstr(j, "Endpoint"));
	else
		snprintf(via, sizeof(via), "%s", type);
	/* Go: the peer's PeerAPI port after its address, when the pong has it */
	char extra[32] = "";
	json_int_t port = json_integer_value(json_object_get(j, "PeerAPIPort"));
	if (port > 0)
		snprintf(extra, sizeof(extra), ", %lld", (long long)port);
	printf("pong from %s (%s%s) via %s in %.1fms\n", jstr(j, "NodeName"),
	    jstr(j, "NodeIP"), extra, via, lat * 1000);
	json_decref(j);
	return 1;
}

int
cmd_ping(int argc, char **argv)
{
	const char *type = "disco", *peer = NULL;
	bool autotype = true;
	unsigned ms = 5000;
	long count = 1;
	char ip[80];

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--tsmp") == 0 || strcmp(a, "-tsmp") == 0)
			type = "TSMP", autotype = false;
		else if (strcmp(a, "--icmp") == 0 || strcmp(a, "-icmp") == 0)
			type = "ICMP", autotype = false;
		else if (strcmp(a, "--disco") == 0 || strcmp(a, "-disco") == 0)
			type = "disco", autotype = false;
		else if ((strcmp(a, "-c") == 0 || strcmp(a, "--c") == 0) &&
		    i + 1 < argc) {
			char *e;
			count = strtol(argv[++i], &e, 10);
			if (*e != '\0' || count < 1 || count > 1000) {
				fprintf(stderr, "tailkit ping: -c: 1 to 1000\n");
				return 2;
			}
		} else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			if ((ms = parse_duration_ms(argv[++i])) == 0) {
				fprintf(stderr, "tailkit ping: --timeout: a duration "
				    "like 5s or 500ms, at most 30s\n");
				return 2;
			}
		} else if (a[0] != '-' && peer == NULL) {
			peer = a;
		} else {
			fprintf(stderr, "tailkit ping: unexpected %s\n%s", a,
			    ping_usage);
			return 2;
		}
	}
	if (peer == NULL) {
		fputs(ping_usage, stderr);
		return 2;
	}
	if (!resolve_peer(peer, ip, sizeof(ip))) {
		fprintf(stderr, "tailkit ping: no peer named %s (a tailnet IP, or "
		    "a name from `tailkit status`)\n", peer);
		return 1;
	}
	int pongs = 0;
	for (long n = 0; n < count; n++) {
		if (n > 0)
			sleep(1);
		int r = ping_once(ip, type, autotype, ms);
		if (r == -3) {
			/* the peer has no disco key (or no DERP path): TSMP */
			type = "TSMP";
			autotype = false;
			r = ping_once(ip, type, false, ms);
		}
		if (r == -2)
			return 0; /* Go: pinging yourself is not an error */
		if (r < 0)
			return 1;
		pongs += r;
	}
	if (pongs == 0) {
		fprintf(stderr, "tailkit ping: no reply\n");
		return 1;
	}
	return 0;
}

/* --- netcheck ------------------------------------------------------------- */

static const char *
fact(const json_t *v)
{
	return json_is_true(v) ? "true" : json_is_false(v) ? "false" :
	    "not measured";
}

int
cmd_netcheck(int argc, char **argv)
{
	(void)argv;
	if (argc > 0) {
		fprintf(stderr, "tailkit netcheck: takes no arguments\n");
		return 2;
	}
	json_t *j = get_ok("/localapi/v0/tailkit/netcheck"), *r;
	json_int_t home = json_integer_value(json_object_get(j, "PreferredDERP"));
	const char *home_name = "";
	size_t i;

	json_array_foreach(json_object_get(j, "Regions"), i, r)
		if (json_integer_value(json_object_get(r, "RegionID")) == home)
			home_name = jstr(r, "RegionName");
	printf("\nReport:\n");
	printf("\t* UDP: %s\n", fact(json_object_get(j, "UDP")));
	if (*jstr(j, "GlobalV4"))
		printf("\t* IPv4: yes, %s\n", jstr(j, "GlobalV4"));
	else
		printf("\t* IPv4: %s\n", fact(json_object_get(j, "IPv4")));
	printf("\t* IPv6: %s\n", fact(json_object_get(j, "IPv6")));
	printf("\t* MappingVariesByDestIP: %s\n",
	    fact(json_object_get(j, "MappingVariesByDestIP")));
	if (json_is_integer(json_object_get(j, "STUNServers")))
		printf("\t  (STUN by wgd from its WireGuard socket, %lld "
		    "server(s) in the DERP map)\n", (long long)json_integer_value(
		    json_object_get(j, "STUNServers")));
	if (home != 0)
		printf("\t* Nearest DERP: %s (%s, region %lld)\n", *home_name ?
		    home_name : jstr(j, "PreferredDERPCode"),
		    jstr(j, "PreferredDERPCode"), (long long)home);
	else
		printf("\t* Nearest DERP: none yet\n");
	printf("\t* DERP latency (%s):\n", jstr(j, "LatencyMethod"));
	json_array_foreach(json_object_get(j, "Regions"), i, r) {
		json_t *l = json_object_get(r, "LatencySecondsV4");
		char lat[32] = "not measured";
		if (json_is_number(l))
			snprintf(lat, sizeof(lat), "%.1fms",
			    json_number_value(l) * 1000);
		printf("\t\t- %s: %s (%s)%s\n", jstr(r, "RegionCode"), lat,
		    jstr(r, "RegionName"), json_is_true(json_object_get(r,
		    "Connected")) ? ", connected" : "");
	}
	json_decref(j);
	return 0;
}

/* --- debug bus ------------------------------------------------------------ */

/* GET path and copy the streamed body to stdout, a line at a time. */
static int
stream(const char *path)
{
	char req[512], buf[65536];
	size_t n = 0;
	bool body = false;
	int fd = cli_dial();

	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: "
	    "local-tailscaled.sock\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, (size_t)rl) != rl) {
		fprintf(stderr, "tailkit: writing to %s: %s\n", sock_path,
		    strerror(errno));
		close(fd);
		return 1;
	}
	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		if (!body) {
			char *he = strstr(buf, "\r\n\r\n");
			int st = 0;
			if (he == NULL)
				continue;
			if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1 || st != 200) {
				json_t *j = json_loads(he + 4, 0, NULL);
				fprintf(stderr, "tailkit debug bus: HTTP %d: %s\n", st,
				    j ? jstr(j, "error") : he + 4);
				json_decref(j);
				close(fd);
				return 1;
			}
			body = true;
			n -= (size_t)(he + 4 - buf);
			memmove(buf, he + 4, n + 1);
		}
		char *nl;
		while ((nl = memchr(buf, '\n', n)) != NULL) {
			fwrite(buf, 1, (size_t)(nl + 1 - buf), stdout);
			fflush(stdout);
			n -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, n);
		}
		if (n == sizeof(buf) - 1) { /* a line longer than buf */
			fwrite(buf, 1, n, stdout);
			n = 0;
		}
	}
	close(fd);
	return body ? 0 : 1;
}

static int
debug_bus(int argc, char **argv)
{
	const char *topic = NULL;
	long count = 0;
	bool pkt = false;
	char path[256];

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			char *e;
			count = strtol(argv[++i], &e, 10);
			if (*e != '\0' || count < 1) {
				fprintf(stderr, "tailkit debug bus: --count: a "
				    "number of messages, at least 1\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--pkt") == 0) {
			pkt = true;
		} else if (argv[i][0] != '-' && topic == NULL) {
			topic = argv[i];
		} else {
			fprintf(stderr, "tailkit debug bus: unexpected %s (accepted: "
			    "--count N, --pkt, one topic or bus)\n", argv[i]);
			return 2;
		}
	}
	if (topic == NULL) {
		fprintf(stderr, "usage: tailkit debug bus [--count N] TOPIC\n"
		    "       tailkit debug bus [--count N] --pkt wgd-pkt\n"
		    "  one JSON line per message: topic, seq, kind, decoded body;\n"
		    "  with --pkt one per IP packet: seq, dir, proto, src, dst, len\n");
		return 2;
	}
	if (strspn(topic, "abcdefghijklmnopqrstuvwxyz_.-0123456789") !=
	    strlen(topic) || strlen(topic) > 60) {
		fprintf(stderr, "tailkit debug bus: bad topic name %s\n", topic);
		return 2;
	}
	int o = snprintf(path, sizeof(path), "/localapi/v0/tailkit/bus?%s=%s",
	    pkt ? "bus" : "topic", topic);
	if (count > 0)
		snprintf(path + o, sizeof(path) - (size_t)o, "&count=%ld", count);
	return stream(path);
}

/* --- debug wg ------------------------------------------------------------- */

/* 64 hex digits -> base64 (wg(8)'s key text), into out[45]. */
static void
hex_to_b64(const char *hex, char out[45])
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char k[33] = { 0 };
	size_t o = 0;

	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			snprintf(out, 45, "%s", "(unreadable)");
			return;
		}
		k[i] = (unsigned char)v;
	}
	for (int i = 0; i < 33; i += 3) {
		uint32_t v = (uint32_t)k[i] << 16 | (uint32_t)k[i + 1] << 8 |
		    (i + 2 < 33 ? k[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = t[v >> 6 & 63];
		out[o++] = t[v & 63];
	}
	out[43] = '=';
	out[44] = '\0';
}

/* The UAPI get text as wg show prints it. */
static void
print_wg(char *uapi)
{
	char b64[45];
	long long rx = 0, tx = 0;
	bool peer = false;

	for (char *l = strtok(uapi, "\n"); l; l = strtok(NULL, "\n")) {
		char *v = strchr(l, '=');
		if (v == NULL)
			continue;
		*v++ = '\0';
		if (strcmp(l, "public_key") == 0) {
			if (peer)
				printf("  transfer: %lld B received, %lld B sent\n",
				    rx, tx);
			hex_to_b64(v, b64);
			printf("%speer: %s\n", peer ? "\n" : "\n", b64);
			peer = true;
			rx = tx = 0;
		} else if (strcmp(l, "listen_port") == 0) {
			printf("interface: tailkitd\n  private key: (hidden)\n"
			    "  listening port: %s\n", v);
		} else if (strcmp(l, "endpoint") == 0) {
			if (strncmp(v, "127.3.3.40:", 11) == 0)
				printf("  endpoint: DERP region %s (%s)\n", v + 11,
				    v);
			else
				printf("  endpoint: %s\n", v);
		} else if (strcmp(l, "allowed_ip") == 0) {
			printf("  allowed ip: %s\n", v);
		} else if (strcmp(l, "last_handshake_time_sec") == 0) {
			long long s = atoll(v);
			if (s > 0)
				printf("  latest handshake: %lld seconds ago\n",
				    (long long)time(NULL) - s);
		} else if (strcmp(l, "rx_bytes") == 0) {
			rx = atoll(v);
		} else if (strcmp(l, "tx_bytes") == 0) {
			tx = atoll(v);
		} else if (strcmp(l, "persistent_keepalive_interval") == 0 &&
		    strcmp(v, "0") != 0) {
			printf("  persistent keepalive: every %s seconds\n", v);
		}
	}
	if (peer)
		printf("  transfer: %lld B received, %lld B sent\n", rx, tx);
}

static int
debug_wg(int argc, char **argv)
{
	bool raw = false;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0) {
			raw = true;
		} else {
			fprintf(stderr, "tailkit debug wg: unexpected %s (accepted: "
			    "--raw, the UAPI text)\n", argv[i]);
			return 2;
		}
	}
	json_t *j = get_ok("/localapi/v0/tailkit/wg");
	char *u = strdup(jstr(j, "uapi"));
	json_decref(j);
	if (u == NULL)
		return 1;
	if (raw)
		fputs(u, stdout);
	else
		print_wg(u);
	free(u);
	return 0;
}

/* --- debug derp, debug control: the tools next to this binary --------------- */

/* dir/name, or ../sub/name (the build tree); false if neither exists. */
static bool
find_tool(const char *name, const char *sub, char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return false;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	snprintf(out, cap, "%s/%s", self, name);
	if (access(out, X_OK) == 0)
		return true;
	snprintf(out, cap, "%s/../%s/%s", self, sub, name);
	return access(out, X_OK) == 0;
}

static int
run_tool(const char *name, const char *sub, char **args)
{
	char path[PATH_MAX + 64];

	if (!find_tool(name, sub, path, sizeof(path))) {
		fprintf(stderr, "tailkit debug: %s is not installed next to tailkit "
		    "(looked in the directory of /proc/self/exe and ../%s)\n",
		    name, sub);
		return 1;
	}
	args[0] = path;
	fflush(stdout);
	execv(path, args);
	fprintf(stderr, "tailkit debug: %s: %s\n", path, strerror(errno));
	return 1;
}

/* The node's DERP map from netcheck: region (0: home) -> probe URL. */
static bool
derp_url(long region, bool http, char *url, size_t cap, bool *insecure)
{
	json_t *j = get_ok("/localapi/v0/tailkit/netcheck"), *r, *nd;
	size_t i;
	bool ok = false;

	if (region == 0)
		region = (long)json_integer_value(json_object_get(j,
		    "PreferredDERP"));
	json_array_foreach(json_object_get(j, "Regions"), i, r) {
		if (ok || json_integer_value(json_object_get(r, "RegionID")) !=
		    region)
			continue;
		size_t k;
		json_array_foreach(json_object_get(r, "Nodes"), k, nd) {
			if (ok || json_is_true(json_object_get(nd, "STUNOnly")))
				continue;
			const char *host = *jstr(nd, "IPv4") &&
			    strcmp(jstr(nd, "IPv4"), "none") != 0 ?
			    jstr(nd, "IPv4") : jstr(nd, "HostName");
			json_int_t port = json_integer_value(json_object_get(nd,
			    "DERPPort"));
			snprintf(url, cap, "%s://%s:%lld/derp", http ? "http" :
			    "https", host, (long long)(port ? port : http ? 80 : 443));
			*insecure = json_is_true(json_object_get(nd,
			    "InsecureForTests"));
			ok = true;
		}
	}
	json_decref(j);
	if (!ok)
		fprintf(stderr, "tailkit debug derp: region %ld is not in the "
		    "node's DERP map (see tailkit netcheck)\n", region);
	return ok;
}

static int
debug_derp(int argc, char **argv)
{
	bool http = false, insecure = false;
	long region = 0;
	int i = 0;
	char url[512];
	char *args[64];
	int na = 1;

	for (; i < argc; i++) {
		if (strcmp(argv[i], "--http") == 0) {
			http = true;
		} else if (argv[i][0] != '-' && region == 0) {
			char *e;
			region = strtol(argv[i], &e, 10);
			if (*e != '\0' || region <= 0) {
				fprintf(stderr, "tailkit debug derp: REGION: a DERP "
				    "region id (see tailkit netcheck)\n");
				return 2;
			}
		} else {
			break; /* the rest goes to tk-derp */
		}
	}
	if (!derp_url(region, http, url, sizeof(url), &insecure))
		return 1;
	args[na++] = "probe";
	args[na++] = url;
	if (insecure && !http)
		args[na++] = "--insecure";
	for (; i < argc && na < 62; i++)
		args[na++] = argv[i];
	args[na] = NULL;
	printf("probing %s\n", url);
	return run_tool("tk-derp", "derp", args);
}

static int
debug_control(int argc, char **argv)
{
	char *args[64];
	int na = 1;

	if (argc == 0) {
		fprintf(stderr, "usage: tailkit debug control [tk-control flags] URL\n"
		    "  talks to a control server as a separate client and prints "
		    "its MapResponses (tk-control)\n");
		return 2;
	}
	for (int i = 0; i < argc && na < 62; i++)
		args[na++] = argv[i];
	args[na] = NULL;
	return run_tool("tk-control", "control", args);
}

int
cmd_debug(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} subs[] = { { "bus", debug_bus }, { "wg", debug_wg },
		{ "derp", debug_derp }, { "control", debug_control } };

	for (size_t i = 0; argc > 0 && i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[0], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "usage: tailkit debug bus|wg|derp|control ...\n"
	    "  bus [--count N] TOPIC   live dump of a topic, with sequence numbers\n"
	    "  bus --pkt wgd-pkt       one line per packet between wgd and the stack\n"
	    "  wg [--raw]              wgd's view (wg show), secret keys left out\n"
	    "  derp [--http] [REGION]  probe a DERP region of the node's map (tk-derp)\n"
	    "  control [flags] URL     a control client of its own (tk-control)\n");
	return 2;
}
