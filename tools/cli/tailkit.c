/*
 * tailkit: the command line of a tailkit node, a client of tailkitd's
 * LocalAPI (tools/node/README.md), following Tailscale's CLI conventions.
 *
 *   tailkit [--socket PATH] status [--json] [--self=false] [--peers=false]
 *   tailkit [--socket PATH] ip [-4 | -6] [PEER]
 *   tailkit [--socket PATH] whois [--json] IP[:PORT] | nodekey:HEX
 *   tailkit [--socket PATH] up [--authkey KEY|file:PATH] [--force-reauth] [--timeout S]
 *       [--hostname=NAME] [--advertise-tags=TAGS] [--accept-dns=BOOL]
 *       [--shields-up=BOOL] [--ephemeral] [--login-server=URL]
 *   tailkit [--socket PATH] down
 *   tailkit [--socket PATH] set [--hostname=NAME] [--accept-dns=BOOL]
 *       [--shields-up=BOOL] [--advertise-tags=TAGS]
 *   tailkit [--socket PATH] logout
 *   tailkit [--socket PATH] version
 *
 * The socket: --socket, else $TAILKIT_SOCKET, else
 * /var/lib/tailkit/tailkitd.sock (tailkitd --state /var/lib/tailkit).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_int.h"

#define DEFAULT_SOCKET "/var/lib/tailkit/tailkitd.sock"

const char *sock_path;

static void
usage(FILE *f)
{
	fprintf(f, "usage: tailkit [--socket PATH] COMMAND [flags]\n"
	    "  up [--authkey KEY|file:PATH] [--force-reauth] [--timeout SECONDS]\n"
	    "     [--hostname=NAME] [--advertise-tags=tag:a,tag:b] [--accept-dns=BOOL]\n"
	    "     [--shields-up=BOOL] [--ephemeral] [--login-server=URL]\n"
	    "                           set the prefs, log in if needed, wait until\n"
	    "                           the node runs\n"
	    "  down                     disconnect (kept across tailkitd restarts)\n"
	    "  set [--hostname=NAME] [--accept-dns=BOOL] [--shields-up=BOOL]\n"
	    "      [--advertise-tags=tag:a,tag:b]  change prefs, applied at once\n"
	    "  status [--json] [--self=false] [--peers=false]  the node and its peers\n"
	    "  status --web [--listen 127.0.0.1:8384]  a live status page on loopback\n"
	    "  ip [-4|-6] [PEER]        the node's (or a peer's) tailnet addresses\n"
	    "  whois [--json] ADDR      who owns IP[:port] or nodekey:HEX\n"
	    "  logout                   log this node out of the tailnet\n"
	    "  version                  tailkit's and the daemon's versions\n"
	    "  ping [-c N] [--tsmp|--icmp] [--timeout D] PEER  ping a peer\n"
	    "  netcheck                 DERP region latencies, the nearest region\n"
	    "  debug bus|wg|derp|control  look inside (tailkit debug for more)\n"
	    "  install [--split] [--control-url URL] [--authkey KEY|file:PATH]\n"
	    "          [--hostname NAME] [--root DIR] [--no-start] [--force]\n"
	    "                           install and enable the systemd units\n"
	    "  uninstall [--root DIR]   disable and remove them (state is kept)\n"
	    "The socket is --socket, $TAILKIT_SOCKET or " DEFAULT_SOCKET ".\n");
}

/* "go1" of "go1.tail.ts.net." under suffix "tail.ts.net" */
void
short_name(const json_t *ps, const char *suffix, char *out, size_t cap)
{
	const char *dn = jstr(ps, "DNSName");
	size_t sl = strlen(suffix), dl = strlen(dn);

	if (dl && dn[dl - 1] == '.')
		dl--;
	if (sl && dl > sl + 1 && strncmp(dn + dl - sl, suffix, sl) == 0 &&
	    dn[dl - sl - 1] == '.')
		dl -= sl + 1;
	if (dl == 0)
		snprintf(out, cap, "(\"%s\")", jstr(ps, "HostName"));
	else
		snprintf(out, cap, "%.*s", (int)dl, dn);
}

static void
owner(const json_t *st, const json_t *ps, char *out, size_t cap)
{
	char id[32];
	json_int_t uid = json_integer_value(json_object_get(ps, "UserID"));
	const json_t *u;

	snprintf(id, sizeof(id), "%lld", (long long)uid);
	if (uid == 0) {
		snprintf(out, cap, "-");
		return;
	}
	if ((u = json_object_get(json_object_get(st, "User"), id)) == NULL) {
		snprintf(out, cap, "%s", id);
		return;
	}
	const char *login = jstr(u, "LoginName"), *at = strchr(login, '@');
	snprintf(out, cap, "%.*s", at ? (int)(at - login + 1) : (int)strlen(login),
	    login);
}

static void
print_ps(const json_t *st, const json_t *ps, bool self)
{
	char name[256], who[256], what[300] = "-";
	const json_t *ips = json_object_get(ps, "TailscaleIPs");

	short_name(ps, jstr(st, "MagicDNSSuffix"), name, sizeof(name));
	owner(st, ps, who, sizeof(who));
	if (!self) {
		bool online = json_is_true(json_object_get(ps, "Online"));
		bool active = json_is_true(json_object_get(ps, "Active"));
		const char *cur = jstr(ps, "CurAddr"), *relay = jstr(ps, "Relay");
		json_int_t tx = json_integer_value(json_object_get(ps, "TxBytes"));
		json_int_t rx = json_integer_value(json_object_get(ps, "RxBytes"));
		if (!active)
			snprintf(what, sizeof(what), "%s", online ? "idle" : "offline");
		else if (*cur)
			snprintf(what, sizeof(what), "active; direct %s, tx %lld rx %lld",
			    cur, (long long)tx, (long long)rx);
		else
			snprintf(what, sizeof(what), "active; relay \"%s\", tx %lld rx "
			    "%lld", relay, (long long)tx, (long long)rx);
	}
	printf("%-15s %-20s %-14s %-8s %s\n",
	    json_string_value(json_array_get(ips, 0)) ?: "-", name, who,
	    jstr(ps, "OS"), what);
}

static int
cmd_status(int argc, char **argv)
{
	bool js = false, self = true, peers = true;

	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--web") == 0)
			return status_web(argc, argv);
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			js = true;
		else if (strcmp(argv[i], "--self=false") == 0)
			self = false;
		else if (strcmp(argv[i], "--peers=false") == 0)
			peers = false;
		else {
			fprintf(stderr, "tailkit status: unknown flag %s (accepted: "
			    "--json, --self=false, --peers=false, --web [--listen "
			    "ADDR:PORT])\n", argv[i]);
			return 2;
		}
	}
	json_t *st = get_ok(peers ? "/localapi/v0/status" :
				    "/localapi/v0/status?peers=false");
	if (js) {
		char *t = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(t);
		free(t);
		json_decref(st);
		return 0;
	}
	const char *bs = jstr(st, "BackendState");
	int rc = 0;
	if (strcmp(bs, "Running") != 0 && strcmp(bs, "Starting") != 0) {
		if (strcmp(bs, "NeedsLogin") == 0) {
			printf("Logged out.\n");
			if (*jstr(st, "AuthURL"))
				printf("Log in at: %s\n", jstr(st, "AuthURL"));
		} else if (strcmp(bs, "Stopped") == 0) {
			printf("tailkit is stopped (tailkit up starts it).\n");
		} else if (strcmp(bs, "NeedsMachineAuth") == 0) {
			printf("Machine is not yet approved by tailnet admin.\n");
		} else {
			printf("tailkitd state: %s\n", bs);
		}
		rc = 1;
	} else {
		if (self && json_is_object(json_object_get(st, "Self")))
			print_ps(st, json_object_get(st, "Self"), true);
		const char *k;
		json_t *ps;
		json_object_foreach(json_object_get(st, "Peer"), k, ps)
			print_ps(st, ps, false);
	}
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(st, "Health"), i, h)
		printf("# Health check: %s\n", json_string_value(h));
	json_decref(st);
	return rc;
}

static int
cmd_ip(int argc, char **argv)
{
	int fam = 0;
	const char *peer = NULL;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-4") == 0)
			fam = 4;
		else if (strcmp(argv[i], "-6") == 0)
			fam = 6;
		else if (argv[i][0] != '-' && peer == NULL)
			peer = argv[i];
		else {
			fprintf(stderr, "tailkit ip: unexpected %s (accepted: -4, -6, "
			    "one peer name)\n", argv[i]);
			return 2;
		}
	}
	json_t *st = get_ok("/localapi/v0/status"), *ps = NULL;
	if (peer == NULL) {
		ps = json_object_get(st, "Self");
	} else {
		const char *k;
		json_t *p;
		char name[256];
		json_object_foreach(json_object_get(st, "Peer"), k, p) {
			short_name(p, jstr(st, "MagicDNSSuffix"), name, sizeof(name));
			if (strcmp(name, peer) == 0 || strcmp(jstr(p, "DNSName"), peer) == 0 ||
			    strcmp(jstr(p, "HostName"), peer) == 0)
				ps = p;
		}
		if (ps == NULL) {
			fprintf(stderr, "tailkit ip: no peer named %s\n", peer);
			json_decref(st);
			return 1;
		}
	}
	size_t i;
	json_t *a;
	int shown = 0;
	json_array_foreach(json_object_get(ps, "TailscaleIPs"), i, a) {
		const char *s = json_string_value(a);
		bool v6 = s && strchr(s, ':') != NULL;
		if (s && (fam == 0 || (fam == 6) == v6)) {
			puts(s);
			shown++;
		}
	}
	json_decref(st);
	return shown ? 0 : 1;
}

static int
cmd_whois(int argc, char **argv)
{
	bool js = false;
	const char *addr = NULL;
	char path[600], q[400];
	size_t o = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			js = true;
		else if (addr == NULL)
			addr = argv[i];
	}
	if (addr == NULL) {
		fprintf(stderr, "tailkit whois: want IP, IP:port or nodekey:HEX\n");
		return 2;
	}
	for (const char *p = addr; *p && o + 4 < sizeof(q); p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-')
			q[o++] = *p;
		else
			o += (size_t)snprintf(q + o, sizeof(q) - o, "%%%02X",
			    (unsigned char)*p);
	}
	q[o] = '\0';
	snprintf(path, sizeof(path), "/localapi/v0/whois?addr=%s", q);
	json_t *j;
	int st = call("GET", path, &j);
	if (st == 404) {
		fprintf(stderr, "tailkit whois: no node in the tailnet has %s\n", addr);
		json_decref(j);
		return 1;
	}
	if (st != 200) {
		fprintf(stderr, "tailkit whois: HTTP %d: %s\n", st, jstr(j, "error"));
		json_decref(j);
		return 1;
	}
	if (js) {
		char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(t);
		free(t);
	} else {
		const json_t *n = json_object_get(j, "Node"), *u = json_object_get(j,
		    "UserProfile");
		printf("Machine:\n  Name:      %s\n  ID:        %s\n  Addresses:",
		    jstr(n, "Name"), jstr(n, "StableID"));
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(n, "Addresses"), i, a)
			printf(" %s", json_string_value(a));
		printf("\nUser:\n  Name:      %s\n  ID:        %lld\n",
		    jstr(u, "LoginName"),
		    (long long)json_integer_value(json_object_get(u, "ID")));
	}
	json_decref(j);
	return 0;
}

static int
cmd_logout(int argc, char **argv)
{
	json_t *j;

	(void)argv;
	if (argc > 0) {
		fprintf(stderr, "tailkit logout: takes no arguments\n");
		return 2;
	}
	int st = call("POST", "/localapi/v0/logout", &j);
	if (st == 204) /* Go's client/local wants 204 */
		st = 200;
	if (st != 200)
		fprintf(stderr, "tailkit logout: HTTP %d: %s\n", st,
		    jstr(j, "error"));
	json_decref(j);
	return st == 200 ? 0 : 1;
}

static int
cmd_version(int argc, char **argv)
{
	json_t *j;

	(void)argc;
	(void)argv;
	printf("tailkit %s\n", CLI_VERSION);
	if (access(sock_path, F_OK) == 0 &&
	    call("GET", "/localapi/v0/status?peers=false", &j) == 200)
		printf("  tailkitd: %s\n", jstr(j, "Version"));
	return 0;
}

/* The commands: each in its own function (cmd_*.c files for larger ones). */
static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "status", cmd_status },
	{ "up", cmd_up },
	{ "down", cmd_down },
	{ "set", cmd_set },
	{ "ip", cmd_ip },
	{ "whois", cmd_whois },
	{ "logout", cmd_logout },
	{ "version", cmd_version },
	{ "ping", cmd_ping },
	{ "netcheck", cmd_netcheck },
	{ "debug", cmd_debug },
	{ "install", cmd_install },
	{ "uninstall", cmd_uninstall },
};

int
main(int argc, char **argv)
{
	int i = 1;

	sock_path = getenv("TAILKIT_SOCKET");
	if (sock_path == NULL || *sock_path == '\0')
		sock_path = DEFAULT_SOCKET;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strncmp(argv[i], "--socket=", 9) == 0)
			sock_path = argv[i] + 9;
		else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			sock_path = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tailkit: unknown flag %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i++];
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(cmd, commands[k].name) == 0)
			return commands[k].fn(argc - i, argv + i);
	fprintf(stderr, "tailkit: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}
