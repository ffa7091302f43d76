/*
 * tailkit up, down and set: the node's prefs, kept by tailkitd (ctrld)
 * across restarts and applied at once (PATCH /localapi/v0/prefs, Go's
 * ipn.MaskedPrefs JSON).  Flags are spelled as Go's `tailscale` spells
 * them: --hostname=NAME, --accept-dns=false, --shields-up.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_int.h"

/* One flag of argv: "--name=value", "--name value" (string flags) or
 * "--name" (bool flags: true).  NULL when a is not --name. */
static const char *
flag_value(const char *a, const char *name, bool is_bool, int *i, int argc,
    char **argv)
{
	size_t n = strlen(name);

	if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
		return NULL;
	if (a[2 + n] == '=')
		return a + 3 + n;
	if (a[2 + n] != '\0')
		return NULL;
	if (is_bool)
		return "true";
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/* "true"/"false" (Go's strconv.ParseBool spellings) into *out. */
static bool
parse_bool(const char *cmd, const char *flag, const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") ||
	    !strcmp(v, "T") || !strcmp(v, "TRUE") || !strcmp(v, "True"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") ||
	    !strcmp(v, "F") || !strcmp(v, "FALSE") || !strcmp(v, "False"))
		*out = false;
	else {
		fprintf(stderr, "tailkit %s: --%s=%s: want true or false\n", cmd,
		    flag, v);
		return false;
	}
	return true;
}

/* --advertise-tags=a,tag:b: Go's up adds "tag:" to names without ':' */
static json_t *
tags_json(const char *v)
{
	json_t *a = json_array();
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", v);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		char tag[300];
		snprintf(tag, sizeof(tag), "%s%s", strchr(t, ':') ? "" : "tag:", t);
		json_array_append_new(a, json_string(tag));
	}
	return a;
}

/* The prefs flags up and set share, into a MaskedPrefs object.  0: taken,
 * 1: not a prefs flag, 2: a bad value (said). */
static int
prefs_flag(const char *cmd, json_t *mp, int *i, int argc, char **argv)
{
	const char *a = argv[*i], *v;
	bool b;

	if ((v = flag_value(a, "hostname", false, i, argc, argv)) != NULL) {
		json_object_set_new(mp, "Hostname", json_string(v));
		json_object_set_new(mp, "HostnameSet", json_true());
	} else if ((v = flag_value(a, "accept-dns", true, i, argc, argv)) != NULL) {
		if (!parse_bool(cmd, "accept-dns", v, &b))
			return 2;
		json_object_set_new(mp, "CorpDNS", json_boolean(b));
		json_object_set_new(mp, "CorpDNSSet", json_true());
	} else if ((v = flag_value(a, "shields-up", true, i, argc, argv)) != NULL) {
		if (!parse_bool(cmd, "shields-up", v, &b))
			return 2;
		json_object_set_new(mp, "ShieldsUp", json_boolean(b));
		json_object_set_new(mp, "ShieldsUpSet", json_true());
	} else if ((v = flag_value(a, "advertise-tags", false, i, argc,
	    argv)) != NULL) {
		json_object_set_new(mp, "AdvertiseTags", tags_json(v));
		json_object_set_new(mp, "AdvertiseTagsSet", json_true());
	} else {
		return 1;
	}
	return 0;
}

/* PATCH the prefs; prints the daemon's error.  0 or 1. */
static int
edit(const char *cmd, json_t *mp)
{
	char *body = json_dumps(mp, JSON_COMPACT);
	json_t *j = NULL;
	int st = call_body("PATCH", "/localapi/v0/prefs", body, &j);

	free(body);
	if (st != 200)
		fprintf(stderr, "tailkit %s: %s\n", cmd, *jstr(j, "error") ?
		    jstr(j, "error") : "the prefs were not changed");
	json_decref(j);
	return st == 200 ? 0 : 1;
}

int
cmd_down(int argc, char **argv)
{
	if (argc > 0) {
		fprintf(stderr, "tailkit down: unexpected %s (takes no arguments)\n",
		    argv[0]);
		return 2;
	}
	json_t *st = get_ok("/localapi/v0/status?peers=false");
	bool stopped = strcmp(jstr(st, "BackendState"), "Stopped") == 0;
	json_decref(st);
	if (stopped) {
		fprintf(stderr, "tailkit was already stopped.\n");
		return 0;
	}
	json_t *mp = json_pack("{s:b,s:b}", "WantRunningSet", 1, "WantRunning", 0);
	int rc = edit("down", mp);
	json_decref(mp);
	return rc;
}

#define SET_FLAGS "--hostname=NAME, --accept-dns[=true|false], " \
	"--shields-up[=true|false], --advertise-tags=tag:a,tag:b"

int
cmd_set(int argc, char **argv)
{
	json_t *mp = json_object();

	for (int i = 0; i < argc; i++) {
		int r = prefs_flag("set", mp, &i, argc, argv);
		if (r == 1)
			fprintf(stderr, "tailkit set: %s is not supported (accepted: "
			    SET_FLAGS ")\n", argv[i]);
		if (r != 0) {
			json_decref(mp);
			return 2;
		}
	}
	if (json_object_size(mp) == 0) {
		fprintf(stderr, "tailkit set: no flags specified (accepted: "
		    SET_FLAGS ")\n");
		json_decref(mp);
		return 2;
	}
	int rc = edit("set", mp); /* like Go's set: silent when done */
	json_decref(mp);
	return rc;
}

/* --authkey file:PATH -> the key in kbuf */
static const char *
read_key(const char *key, char *kbuf, size_t cap)
{
	if (key == NULL || strncmp(key, "file:", 5) != 0)
		return key;
	FILE *f = fopen(key + 5, "r");
	if (f == NULL || fgets(kbuf, (int)cap, f) == NULL) {
		fprintf(stderr, "tailkit up: cannot read the auth key from %s\n",
		    key + 5);
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	kbuf[strcspn(kbuf, "\r\n")] = '\0';
	return kbuf;
}

/* Waits for Running, showing the login URL or the approval wait, and
 * each state the node passes through on stderr (progress; stdout keeps
 * only what a script may want: the login URL). */
static int
wait_running(long timeout)
{
	time_t until = timeout > 0 ? time(NULL) + timeout : 0;
	char shown[600] = "", last[32] = "";
	bool approval = false;

	for (;;) {
		json_t *s = get_ok("/localapi/v0/status?peers=false");
		const char *bs = jstr(s, "BackendState"), *url = jstr(s, "AuthURL");
		if (strcmp(bs, last) != 0) {
			fprintf(stderr, "tailkit up: %s\n", bs);
			snprintf(last, sizeof(last), "%s", bs);
		}
		if (strcmp(bs, "Running") == 0) {
			json_decref(s);
			return 0;
		}
		if (*url && strcmp(url, shown) != 0) {
			printf("\nTo authenticate, visit:\n\n\t%s\n\n", url);
			fflush(stdout);
			snprintf(shown, sizeof(shown), "%s", url);
		}
		if (strcmp(bs, "NeedsMachineAuth") == 0 && !approval) {
			printf("Machine is not yet approved by tailnet admin; "
			    "waiting.\n");
			fflush(stdout);
			approval = true;
		}
		if (until && time(NULL) >= until) {
			fprintf(stderr, "tailkit up: timeout waiting for the node to "
			    "run (state %s)\n", bs);
			json_decref(s);
			return 1;
		}
		json_decref(s);
		usleep(300 * 1000);
	}
}

/* POST /start: log in (with a key, a new node key, ephemeral). */
static int
start(const char *key, bool force, bool ephemeral)
{
	json_t *o = json_object(), *j = NULL;

	if (key != NULL)
		json_object_set_new(o, "AuthKey", json_string(key));
	if (force)
		json_object_set_new(o, "ForceReauth", json_true());
	if (ephemeral)
		json_object_set_new(o, "Ephemeral", json_true());
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int st = call_body("POST", "/localapi/v0/start", body, &j);
	memset(body, 0, strlen(body));
	free(body);
	if (st != 200 && st != 204) {
		fprintf(stderr, "tailkit up: %s\n", jstr(j, "error"));
		json_decref(j);
		return 1;
	}
	json_decref(j);
	return 0;
}

#define UP_FLAGS "--authkey KEY|file:PATH, --force-reauth, --timeout SECONDS, " \
	"--hostname=NAME, --advertise-tags=tag:a,tag:b, --accept-dns[=bool], " \
	"--shields-up[=bool], --ephemeral, --login-server=URL (tailkitd's own)"

/*
 * tailscale up: the prefs given (and WantRunning), then a login when one
 * is needed (not logged in, a new key, --force-reauth, --ephemeral), then
 * wait for Running.  A Stopped node just resumes.
 */
int
cmd_up(int argc, char **argv)
{
	const char *key = NULL, *server = NULL, *v;
	static char kbuf[512];
	bool force = false, ephemeral = false;
	long timeout = 0;
	json_t *mp = json_pack("{s:b,s:b}", "WantRunningSet", 1, "WantRunning", 1);

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int r = prefs_flag("up", mp, &i, argc, argv);
		if (r == 0)
			continue;
		if (r == 2)
			goto usage;
		if ((v = flag_value(a, "authkey", false, &i, argc, argv)) != NULL)
			key = v;
		else if ((v = flag_value(a, "auth-key", false, &i, argc, argv)))
			key = v;
		else if ((v = flag_value(a, "login-server", false, &i, argc, argv)))
			server = v;
		else if ((v = flag_value(a, "timeout", false, &i, argc, argv)))
			timeout = strtol(v, NULL, 10);
		else if (strcmp(a, "--force-reauth") == 0)
			force = true;
		else if (strcmp(a, "--ephemeral") == 0)
			ephemeral = true;
		else {
			fprintf(stderr, "tailkit up: %s is not supported (accepted: "
			    UP_FLAGS ")\n", a);
			goto usage;
		}
	}
	if (server != NULL) {
		json_t *p = get_ok("/localapi/v0/prefs");
		const char *cur = jstr(p, "ControlURL");
		size_t n = strlen(server);
		while (n > 0 && server[n - 1] == '/')
			n--;
		if (strlen(cur) != n || strncmp(cur, server, n) != 0) {
			fprintf(stderr, "tailkit up: --login-server=%s: tailkitd talks "
			    "to %s; to use another control server, restart tailkitd "
			    "with --control-url (or control_url in its config)\n",
			    server, cur);
			json_decref(p);
			json_decref(mp);
			return 1;
		}
		json_decref(p);
	}
	if (key != NULL && (key = read_key(key, kbuf, sizeof(kbuf))) == NULL) {
		json_decref(mp);
		return 1;
	}
	json_t *s = get_ok("/localapi/v0/status?peers=false");
	const char *bs = jstr(s, "BackendState");
	bool in = strcmp(bs, "NeedsLogin") != 0 && strcmp(bs, "NoState") != 0;
	/* prefs flags, or a Stopped node: edit (so plain `up` also works
	 * where edits are locked, tailkitd --config) */
	bool patch = json_object_size(mp) > 2 || strcmp(bs, "Stopped") == 0;
	json_decref(s);
	if (patch && edit("up", mp) != 0) {
		json_decref(mp);
		memset(kbuf, 0, sizeof(kbuf));
		return 1;
	}
	json_decref(mp);
	int rc = 0;
	if (key != NULL || force || ephemeral || !in)
		rc = start(key, force, ephemeral);
	memset(kbuf, 0, sizeof(kbuf));
	return rc != 0 ? rc : wait_running(timeout);
usage:
	json_decref(mp);
	return 2;
}
