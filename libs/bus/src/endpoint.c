/* Sockets and endpoints: protocol defaults, ipc file modes, mutual TLS. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "tk/buf.h"
#include "tk/bus_batch.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "bus_int.h"

static const char *
nng_name(int code)
{
	return nng_strerror(code);
}

/* tk_strerror names nng's codes once this library is linked in. */
__attribute__((constructor)) static void
register_nng(void)
{
	tk_err_register(TK_ENNG, nng_name);
}

#define PEM_MAX (1024 * 1024)

int
tk_bus_open(nng_socket *out, enum tk_bus_proto proto)
{
	nng_socket s;
	size_t maxsz = TK_BUS_CTRL_MAX;
	int rv;

	if (out == NULL)
		return TK_EINVAL;
	switch (proto) {
	case TK_BUS_PAIR:
		rv = nng_pair1_open(&s);
		maxsz = TK_BATCH_MAX;
		break;
	case TK_BUS_PUB:
		rv = nng_pub0_open(&s);
		break;
	case TK_BUS_SUB:
		rv = nng_sub0_open(&s);
		break;
	case TK_BUS_REQ:
		rv = nng_req0_open(&s);
		break;
	case TK_BUS_REP:
		rv = nng_rep0_open(&s);
		break;
	default:
		return TK_EINVAL;
	}
	if (rv != 0)
		return tk_err_nng(rv);
	if ((rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, maxsz)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 10)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 1000)) != 0)
		goto fail;
	if (proto == TK_BUS_PAIR &&
	    ((rv = nng_socket_set_int(s, NNG_OPT_SENDBUF, 64)) != 0 ||
		(rv = nng_socket_set_int(s, NNG_OPT_RECVBUF, 64)) != 0))
		goto fail;
	if (proto == TK_BUS_PUB &&
	    (rv = nng_socket_set_int(s, NNG_OPT_SENDBUF, 256)) != 0)
		goto fail;
	if (proto == TK_BUS_SUB &&
	    (rv = nng_socket_set_int(s, NNG_OPT_RECVBUF, 256)) != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	nng_close(s);
	return tk_err_nng(rv);
}

/* --- bounded close -------------------------------------------------------- */

typedef struct closer {
	nng_socket s;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int refs; /* the caller and the thread; the last one frees */
} closer;

static void
closer_unref(closer *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		tk_free(c);
	}
}

static void *
close_thread(void *arg)
{
	closer *c = arg;

	nng_close(c->s);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	closer_unref(c);
	return NULL;
}

int
tk_bus_close_bounded(nng_socket s, unsigned ms)
{
	closer *c = tk_calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	pthread_attr_t at;
	pthread_t t;
	struct timespec dl;
	bool done;

	if (c == NULL) {
		nng_close(s); /* no memory for a watchdog: close as is */
		return 0;
	}
	c->s = s;
	c->refs = 2;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, close_thread, c) != 0) {
		pthread_attr_destroy(&at);
		c->refs = 1;
		closer_unref(c);
		nng_close(s);
		return 0;
	}
	pthread_attr_destroy(&at);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (!c->done &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &dl) != ETIMEDOUT)
		;
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	closer_unref(c);
	if (!done)
		TK_WARN("bus", "nng_close did not return in %u ms (an nng 1.5.2 "
		    "close race): left to a thread of its own", ms);
	return done ? 0 : TK_ETIMEDOUT;
}

/* mkdir -p of path's parent, new directories 0700; existing ones untouched. */
static int
make_parents(const char *path)
{
	char dir[256];
	size_t n;
	char *slash;

	n = strlen(path);
	if (n >= sizeof(dir))
		return TK_EINVAL;
	memcpy(dir, path, n + 1);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			int err = errno;

			TK_ERR(TKI_BUS_LOG, "cannot create ipc directory %s: %s",
			    dir, strerror(err));
			return tk_err_sys(err);
		}
		if (end)
			break;
		*p = '/';
	}
	return 0;
}

static int
read_pem(const char *path, tk_buf *b)
{
	FILE *f;
	uint8_t chunk[4096];
	size_t n;
	int rv = 0;

	if ((f = fopen(path, "rb")) == NULL) {
		int err = errno;

		TK_ERR(TKI_BUS_LOG, "cannot read TLS file %s: %s", path,
		    strerror(err));
		return tk_err_sys(err);
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if ((rv = tk_buf_append(b, chunk, n)) != 0)
			break;
	if (rv == 0 && ferror(f))
		rv = TK_EIO;
	tk_secure_zero(chunk, sizeof(chunk));
	fclose(f);
	if (rv == TK_EMSGSIZE)
		TK_ERR(TKI_BUS_LOG, "TLS file %s is larger than %d bytes",
		    path, PEM_MAX);
	if (rv == 0) {
		const char *s;

		rv = tk_buf_cstr(b, &s); /* nng wants NUL-terminated PEM */
	}
	return rv;
}

/* Host part of a tls+tcp URL (brackets stripped), for certificate checks. */
static void
url_host(const char *url, char *out, size_t outlen)
{
	const char *h = url + strlen("tls+tcp://");
	const char *end;

	if (h[0] == '[') {
		h++;
		end = strchr(h, ']');
	} else {
		end = strrchr(h, ':');
	}
	if (end == NULL)
		end = h + strlen(h);
	snprintf(out, outlen, "%.*s", (int)(end - h), h);
}

static int
tls_config(const tk_bus_tls *tls, bool server, const char *url,
    nng_tls_config **out)
{
	nng_tls_config *cfg = NULL;
	tk_buf cert, key, ca;
	char host[256];
	int rv;

	if (tls == NULL || tls->cert_file == NULL || tls->key_file == NULL ||
	    tls->ca_file == NULL) {
		TK_ERR(TKI_BUS_LOG,
		    "%s: tls+tcp:// needs cert_file, key_file and ca_file "
		    "(mutual authentication is mandatory)",
		    url);
		return TK_EINVAL;
	}
	tk_buf_init_limit(&cert, PEM_MAX);
	tk_buf_init_limit(&key, PEM_MAX);
	tk_buf_init_limit(&ca, PEM_MAX);
	if ((rv = read_pem(tls->cert_file, &cert)) != 0 ||
	    (rv = read_pem(tls->key_file, &key)) != 0 ||
	    (rv = read_pem(tls->ca_file, &ca)) != 0)
		goto out;
	if ((rv = tk_err_nng(nng_tls_config_alloc(&cfg,
		 server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT))) != 0)
		goto out;
	if ((rv = tk_err_nng(nng_tls_config_version(cfg, NNG_TLS_1_2,
		 NNG_TLS_1_3))) != 0 &&
	    (rv = tk_err_nng(nng_tls_config_version(cfg, NNG_TLS_1_2,
		 NNG_TLS_1_2))) != 0)
		goto out;
	if ((rv = tk_err_nng(nng_tls_config_own_cert(cfg,
		 (const char *)cert.data, (const char *)key.data, NULL))) != 0) {
		TK_ERR(TKI_BUS_LOG, "%s: bad certificate/key %s / %s: %s", url,
		    tls->cert_file, tls->key_file, tk_strerror(rv));
		goto out;
	}
	if ((rv = tk_err_nng(nng_tls_config_ca_chain(cfg,
		 (const char *)ca.data, NULL))) != 0) {
		TK_ERR(TKI_BUS_LOG, "%s: bad CA file %s: %s", url,
		    tls->ca_file, tk_strerror(rv));
		goto out;
	}
	if ((rv = tk_err_nng(nng_tls_config_auth_mode(cfg,
		 NNG_TLS_AUTH_MODE_REQUIRED))) != 0)
		goto out;
	if (!server) {
		if (tls->server_name != NULL)
			snprintf(host, sizeof(host), "%s", tls->server_name);
		else
			url_host(url, host, sizeof(host));
		if ((rv = tk_err_nng(nng_tls_config_server_name(cfg, host))) !=
		    0)
			goto out;
	}
	*out = cfg;
	cfg = NULL;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	tk_buf_fini(&cert);
	tk_buf_fini_secret(&key);
	tk_buf_fini(&ca);
	return rv;
}

int
tk_bus_listen(nng_socket s, const char *url, const tk_bus_tls *tls,
    nng_listener *out)
{
	enum tk_bus_scheme scheme;
	nng_listener l;
	nng_tls_config *cfg = NULL;
	int rv;

	if ((rv = tk_bus_url_check(url, &scheme, NULL, 0)) != 0)
		return rv;
	if (scheme == TK_BUS_IPC &&
	    (rv = make_parents(url + strlen("ipc://"))) != 0)
		return rv;
	if (scheme == TK_BUS_TLS_TCP &&
	    (rv = tls_config(tls, true, url, &cfg)) != 0)
		return rv;
	if ((rv = tk_err_nng(nng_listener_create(&l, s, url))) != 0)
		goto out;
	if (scheme == TK_BUS_IPC)
		rv = tk_err_nng(
		    nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600));
	else if (scheme == TK_BUS_TLS_TCP)
		rv = tk_err_nng(
		    nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg));
	if (rv == 0)
		rv = tk_err_nng(nng_listener_start(l, 0));
	if (rv != 0) {
		TK_ERR(TKI_BUS_LOG, "cannot listen on %s: %s", url,
		    tk_strerror(rv));
		nng_listener_close(l);
		goto out;
	}
	if (out != NULL)
		*out = l;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg); /* the listener holds its own ref */
	return rv;
}

int
tk_bus_dial(nng_socket s, const char *url, const tk_bus_tls *tls,
    unsigned flags, nng_dialer *out)
{
	enum tk_bus_scheme scheme;
	nng_dialer d;
	nng_tls_config *cfg = NULL;
	int rv;

	if ((rv = tk_bus_url_check(url, &scheme, NULL, 0)) != 0)
		return rv;
	if (scheme == TK_BUS_TLS_TCP &&
	    (rv = tls_config(tls, false, url, &cfg)) != 0)
		return rv;
	if ((rv = tk_err_nng(nng_dialer_create(&d, s, url))) != 0)
		goto out;
	if (scheme == TK_BUS_TLS_TCP)
		rv = tk_err_nng(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg));
	if (rv == 0)
		rv = tk_err_nng(nng_dialer_start(d,
		    (flags & TK_BUS_DIAL_WAIT) ? 0 : NNG_FLAG_NONBLOCK));
	if (rv != 0) {
		TK_DEBUG(TKI_BUS_LOG, "cannot dial %s: %s", url,
		    tk_strerror(rv));
		nng_dialer_close(d);
		goto out;
	}
	if (out != NULL)
		*out = d;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	return rv;
}

int
tk_bus_send(nng_socket s, nng_msg *msg, bool block)
{
	int rv = nng_sendmsg(s, msg, block ? 0 : NNG_FLAG_NONBLOCK);

	if (rv == NNG_EAGAIN || (!block && rv == NNG_ETIMEDOUT))
		return TK_EAGAIN;
	return tk_err_nng(rv);
}
