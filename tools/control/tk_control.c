/*
 * tk-control: talk to a control server the way ctrld does and show what it
 * says, like Go's cmd/tsp.  Fetches the server's Noise key, registers (a
 * pre-auth key, or prints the login URL and waits), then streams the map
 * and prints each MapResponse as one JSON line on stdout.
 *
 *   tk-control [--authkey KEY] [--hostname NAME] [--ephemeral] [--state DIR]
 *              [--count N] [--idle SECONDS] [--no-zstd] [--logout] URL
 *
 * Without --state the machine and node keys live only for this run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlconn.h"
#include "register.h"
#include "requests.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/state.h"

static int count_left = -1;

static int
print_msg(void *arg, char *json, size_t n)
{
	(void)arg;
	fwrite(json, 1, n, stdout);
	tk_free(json);
	fputc('\n', stdout);
	fflush(stdout);
	if (count_left > 0 && --count_left == 0)
		return 1; /* enough */
	return 0;
}

static void
key_text(char out[TK_KEY_TEXT_MAX], const char *prefix, const uint8_t *k)
{
	tk_key_format(out, prefix, k);
}

/* Keys for this run only, or kept in --state. */
static int
load_key(tk_state *st, const char *name, uint8_t k[32])
{
	if (st != NULL)
		return tk_state_key(st, name, k, NULL);
	tk_key_generate(k, NULL);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tk-control [--authkey KEY] [--hostname NAME] [--ephemeral]\n"
	    "                  [--state DIR] [--count N] [--idle SECONDS] [--no-zstd]\n"
	    "                  [--logout] [--ca-file PEM] URL\n"
	    "  Registers with the control server at URL (http://host:port or\n"
	    "  https://host) and prints each MapResponse as a JSON line.\n");
}

int
main(int argc, char **argv)
{
	const char *authkey = NULL, *hostname = "tailkit", *state = NULL, *ca = NULL;
	bool ephemeral = false, zstd = true, logout = false;
	int idle = 120, i, rv;
	char err[512];

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--authkey") == 0 && v)
			authkey = argv[++i];
		else if (strcmp(a, "--hostname") == 0 && v)
			hostname = argv[++i];
		else if (strcmp(a, "--state") == 0 && v)
			state = argv[++i];
		else if (strcmp(a, "--ca-file") == 0 && v)
			ca = argv[++i];
		else if (strcmp(a, "--count") == 0 && v)
			count_left = atoi(argv[++i]);
		else if (strcmp(a, "--idle") == 0 && v)
			idle = atoi(argv[++i]);
		else if (strcmp(a, "--ephemeral") == 0)
			ephemeral = true;
		else if (strcmp(a, "--no-zstd") == 0)
			zstd = false;
		else if (strcmp(a, "--logout") == 0)
			logout = true;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tk-control: unknown option '%s' (or no value)\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (i + 1 != argc || idle < 1) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (tk_init() != 0)
		return 1;
	ctrldi_url u;
	if (ctrldi_url_parse(&u, argv[i], err, sizeof(err)) != 0) {
		fprintf(stderr, "tk-control: %s\n", err);
		return 2;
	}
	u.ca_file = ca;
	tk_state *st = NULL;
	if (state != NULL) {
		tk_state_config sc = { .dir = state, .name = "tk-control.db" };
		if (tk_state_open(&st, &sc, err, sizeof(err)) != 0) {
			fprintf(stderr, "tk-control: %s\n", err);
			return 1;
		}
	}
	tk_machine_priv mk;
	tk_node_priv nk;
	tk_disco_priv dk;
	tk_machine_pub server;
	if (load_key(st, "machine_private_key", mk.b) != 0 ||
	    load_key(st, "node_private_key", nk.b) != 0) {
		fprintf(stderr, "tk-control: cannot store keys\n");
		return 1;
	}
	tk_disco_priv_generate(&dk, NULL);
	if ((rv = ctrldi_fetch_server_key(&u, 10000, &server, err, sizeof(err))) != 0) {
		fprintf(stderr, "tk-control: %s\n", err);
		return 1;
	}
	char t[TK_KEY_TEXT_MAX], nkt[TK_KEY_TEXT_MAX], dkt[TK_KEY_TEXT_MAX];
	key_text(t, "mkey:", server.b);
	fprintf(stderr, "tk-control: server key %s\n", t);
	ctrldi_conn *c;
	if ((rv = ctrldi_conn_dial(&c, &u, &mk, &server, 10000, err, sizeof(err))) != 0) {
		fprintf(stderr, "tk-control: %s\n", err);
		return 1;
	}
	fprintf(stderr, "tk-control: ts2021 up (capver %d)%s%s\n", CTRLD_CAPVER,
	    *ctrldi_conn_early(c) ? ", early payload " : "", ctrldi_conn_early(c));
	tk_node_pub np;
	tk_disco_pub dp;
	tk_node_priv_public(&nk, &np);
	tk_disco_priv_public(&dk, &dp);
	key_text(nkt, "nodekey:", np.b);
	key_text(dkt, "discokey:", dp.b);

	ctrldi_who who = { .node_key = nkt,
		.old_node_key = "nodekey:0000000000000000000000000000000000000000000000000000000000000000",
		.disco_key = dkt, .hostname = hostname };
	ctrldi_reg_config rc = { .who = &who, .ephemeral = ephemeral,
		.auth_key = authkey, .logout = logout };
	ctrldi_reg reg;
	ctrldi_reg_step step;
	ctrldi_reg_init(&reg, &rc);
	while ((step = ctrldi_reg_next(&reg)) != CTRLDI_REG_DONE &&
	    step != CTRLDI_REG_ERROR) {
		if (step == CTRLDI_REG_LOGIN) {
			fprintf(stderr, "tk-control: log in at %s\n", reg.auth_url);
		} else if (step == CTRLDI_REG_SEND) {
			tk_buf resp;
			int status = 0;
			tk_buf_init(&resp);
			rv = ctrldi_conn_request(c, "/machine/register", reg.body,
			    reg.body_len, reg.timeout_ms, &status, &resp, err,
			    sizeof(err));
			if (rv != 0) {
				fprintf(stderr, "tk-control: register: %s\n", err);
				tk_buf_fini(&resp);
				ctrldi_reg_fini(&reg);
				return 1;
			}
			fprintf(stderr, "tk-control: register: HTTP %d %.*s\n", status,
			    (int)resp.len, (const char *)resp.data);
			ctrldi_reg_response(&reg, status, resp.data, resp.len);
			tk_buf_fini(&resp);
		}
	}
	if (step == CTRLDI_REG_ERROR) {
		fprintf(stderr, "tk-control: %s\n", reg.err);
		ctrldi_reg_fini(&reg);
		return 1;
	}
	ctrldi_reg_fini(&reg);
	if (logout) {
		fprintf(stderr, "tk-control: logged out\n");
		ctrldi_conn_free(c);
		return 0;
	}
	char *body = NULL;
	int status = 0;
	if ((rv = ctrldi_req_map(&body, &who, zstd)) != 0) {
		fprintf(stderr, "tk-control: map request: %s\n", tk_strerror(rv));
		return 1;
	}
	rv = ctrldi_conn_stream(c, "/machine/map", body, strlen(body), zstd,
	    idle * 1000, print_msg, NULL, &status, err, sizeof(err));
	tk_free(body);
	ctrldi_conn_free(c);
	tk_state_close(st);
	if (rv == 1)
		return 0; /* --count reached */
	fprintf(stderr, "tk-control: %s\n", err);
	return 1;
}
