/*
 * tailkit install / uninstall: the systemd units of a tailkit node, like
 * tailscaled's install-system-daemon.
 *
 *   tailkit install [--split] [--root DIR] [--control-url URL]
 *                   [--authkey KEY|file:PATH] [--hostname NAME] [--no-start]
 *                   [--force]
 *   tailkit uninstall [--root DIR]
 *
 * The units are the ones tailkit was built with (tools/systemd, embedded),
 * with /usr/local/bin replaced by the directory this tailkit binary lies in
 * (where `cmake --install` put the daemons).  Written: DIR/etc/systemd/
 * system/<units>, DIR/etc/sysusers.d/tailkit.conf, the settings file
 * (DIR/etc/default/tailkitd, or .../tailkit for split mode) unless one exists
 * and no setting was given, and the key as DIR/etc/tailkit/authkey (0600).
 * Each written unit carries a marker line; uninstall removes only files with
 * it, and an existing unit without it is replaced only with --force.  With
 * systemd running (and DIR = /) the units are enabled and started; otherwise
 * `systemctl --root=DIR enable` links them and the next boot starts them.
 * Uninstall keeps the settings, the key and the node's state
 * (/var/lib/tailkit): a later install logs in as the same node.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_int.h"

#define MARKER	 "# written by `tailkit install`; `tailkit uninstall` removes it\n"
#define UNIT_DIR "/etc/systemd/system"
#define OLD_BIN	 "/usr/local/bin/"
#define ROOT_MAX 1024 /* --root and the binaries' directory */

static const char *const aio_units[] = { "tailkitd.service", NULL };
static const char *const split_units[] = { "tailkit-ctrld.service",
	"tailkit-wgd.service", "tailkit-derpd.service", "tailkit-netstackd.service",
	"tailkit-split.target", NULL };
static const char *const aio_bins[] = { "tailkitd", NULL };
static const char *const split_bins[] = { "ctrld", "wgd", "derpd", "netstackd",
	NULL };

static const char *
unit_text(const char *name)
{
	for (const struct cli_unit *u = tk_cli_units; u->name; u++)
		if (strcmp(u->name, name) == 0)
			return u->text;
	return NULL;
}

/* mkdir -p of root + path (each component mode 0755, the last one mode). */
static int
mkdirs(const char *root, const char *path, mode_t mode)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s%s", root, path) >= (int)sizeof(p))
		return ENAMETOOLONG;
	for (char *s = p + 1; ; s++) {
		bool last = *s == '\0';
		if (*s != '/' && !last)
			continue;
		*s = '\0';
		if (mkdir(p, last ? mode : 0755) != 0 && errno != EEXIST)
			return errno;
		if (last)
			return 0;
		*s = '/';
	}
}

static bool
has_marker(const char *path)
{
	char line[sizeof(MARKER) + 1];
	FILE *f = fopen(path, "r");
	bool yes = f && fgets(line, sizeof(line), f) && strcmp(line, MARKER) == 0;

	if (f)
		fclose(f);
	return yes;
}

/* Writes text to path (mode), replacing OLD_BIN by bindir/ when bindir. */
static int
write_file(const char *path, const char *text, const char *bindir, mode_t mode,
    const char *marker)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s.tailkit-new", path) >= (int)sizeof(tmp))
		return ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return errno;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return ENOMEM;
	}
	if (marker)
		fputs(marker, f);
	for (const char *s = text; *s;) {
		const char *hit = bindir ? strstr(s, OLD_BIN) : NULL;
		if (hit == NULL) {
			fputs(s, f);
			break;
		}
		fwrite(s, 1, (size_t)(hit - s), f);
		fprintf(f, "%s/", bindir);
		s = hit + strlen(OLD_BIN);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		return e;
	}
	fclose(f);
	if (chmod(tmp, mode) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

/* Runs argv, output passed through; its exit status, or -1. */
static int
run(char *const argv[])
{
	pid_t pid;
	int st;

	fflush(stdout);
	if ((pid = fork()) < 0)
		return -1;

	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "tailkit: cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool
systemd_running(const char *root)
{
	struct stat sb;

	return strcmp(root, "/") == 0 && stat("/run/systemd/system", &sb) == 0;
}

/* The directory of this tailkit binary. */
static int
self_dir(char *out, size_t cap)
{
	char p[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", p, sizeof(p) - 1);

	if (n <= 0)
		return errno;
	p[n] = '\0';
	char *slash = strrchr(p, '/');
	if (slash == NULL || (size_t)(slash - p) >= cap)
		return ENAMETOOLONG;
	memcpy(out, p, (size_t)(slash - p));
	out[slash - p] = '\0';
	return 0;
}

typedef struct install_opts {
	bool split, no_start, force;
	const char *root, *control_url, *authkey, *hostname;
} install_opts;

static int
parse_install(int argc, char **argv, install_opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		const char *names[] = { "--root", "--control-url", "--login-server",
			"--authkey", "--hostname" };
		const char **dst[] = { &o->root, &o->control_url, &o->control_url,
			&o->authkey, &o->hostname };
		bool matched = false;
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			size_t nl = strlen(names[k]);
			if (strncmp(a, names[k], nl) != 0)
				continue;
			if (a[nl] == '=')
				v = a + nl + 1;
			else if (a[nl] == '\0' && i + 1 < argc)
				v = argv[++i];
			else
				continue;
			*dst[k] = v;
			matched = true;
			break;
		}
		if (matched)
			continue;
		if (strcmp(a, "--split") == 0)
			o->split = true;
		else if (strcmp(a, "--no-start") == 0)
			o->no_start = true;
		else if (strcmp(a, "--force") == 0)
			o->force = true;
		else {
			fprintf(stderr, "tailkit install: unknown flag %s (accepted: "
			    "--split, --root DIR, --control-url URL, --authkey "
			    "KEY|file:PATH, --hostname NAME, --no-start, --force)\n", a);
			return 2;
		}
	}
	if (o->root == NULL || *o->root == '\0')
		o->root = "/";
	if (o->root[0] != '/' || strlen(o->root) >= ROOT_MAX) {
		fprintf(stderr, "tailkit install: --root %s: want an absolute "
		    "directory (shorter than %d bytes)\n", o->root, ROOT_MAX);
		return 2;
	}
	for (const char *s = o->control_url; s && *s; s++)
		if (*s == '"' || *s == '\\' || *s == '\n' || *s == ' ') {
			fprintf(stderr, "tailkit install: --control-url: no quotes, "
			    "spaces or backslashes\n");
			return 2;
		}
	for (const char *s = o->hostname; s && *s; s++)
		if (!(*s == '-' || *s == '.' || (*s >= '0' && *s <= '9') ||
			(*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) {
			fprintf(stderr, "tailkit install: --hostname: letters, "
			    "digits, '-' and '.' only\n");
			return 2;
		}
	return 0;
}

/* The auth key from KEY or file:PATH into buf. */
static int
read_key(const char *spec, char *buf, size_t cap)
{
	if (strncmp(spec, "file:", 5) != 0) {
		if (strlen(spec) >= cap)
			return ENAMETOOLONG;
		snprintf(buf, cap, "%s", spec);
		return 0;
	}
	FILE *f = fopen(spec + 5, "r");
	if (f == NULL)
		return errno;
	if (fgets(buf, (int)cap, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int
write_settings(const install_opts *o, const char *root)
{
	char path[PATH_MAX], text[1024];
	const char *file = o->split ? "/etc/default/tailkit" :
				      "/etc/default/tailkitd";
	struct stat sb;

	snprintf(path, sizeof(path), "%s%s", root, file);
	if (stat(path, &sb) == 0 && o->control_url == NULL && o->hostname == NULL) {
		printf("keeping %s\n", path);
		return 0;
	}
	snprintf(text, sizeof(text), "# tailkit node settings (`tailkit install`)"
	    "\n%s=\"--control-url %s%s%s\"\n", o->split ? "TAILKIT_CTRLD_ARGS" :
	    "TAILKITD_ARGS", o->control_url ? o->control_url :
	    "https://controlplane.tailscale.com", o->hostname ? " --hostname " : "",
	    o->hostname ? o->hostname : "");
	int e = mkdirs(root, "/etc/default", 0755);
	if (e == 0)
		e = write_file(path, text, NULL, 0644, NULL);
	if (e != 0)
		fprintf(stderr, "tailkit install: %s: %s\n", path, strerror(e));
	else
		printf("wrote %s\n", path);
	return e;
}

static int
write_key(const install_opts *o, const char *root)
{
	char key[512], path[PATH_MAX];
	int e;

	if (o->authkey == NULL)
		return 0;
	if ((e = read_key(o->authkey, key, sizeof(key))) != 0) {
		fprintf(stderr, "tailkit install: --authkey %s: %s\n", o->authkey,
		    strerror(e));
		return e;
	}
	snprintf(path, sizeof(path), "%s/etc/tailkit/authkey", root);
	strcat(key, "\n");
	if ((e = mkdirs(root, "/etc/tailkit", 0700)) == 0)
		e = write_file(path, key, NULL, 0600, NULL);
	explicit_bzero(key, sizeof(key));
	if (e != 0)
		fprintf(stderr, "tailkit install: %s: %s\n", path, strerror(e));
	else
		printf("wrote %s (0600)\n", path);
	return e;
}

int
cmd_install(int argc, char **argv)
{
	install_opts o = { 0 };
	char bindir[ROOT_MAX], path[PATH_MAX], root[ROOT_MAX];
	int e;

	if ((e = parse_install(argc, argv, &o)) != 0)
		return e;
	snprintf(root, sizeof(root), "%s", strcmp(o.root, "/") == 0 ? "" : o.root);
	if ((e = self_dir(bindir, sizeof(bindir))) != 0) {
		fprintf(stderr, "tailkit install: where am I: %s\n", strerror(e));
		return 1;
	}
	const char *const *bins = o.split ? split_bins : aio_bins;
	const char *const *units = o.split ? split_units : aio_units;
	for (size_t i = 0; bins[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", bindir, bins[i]);
		if (access(path, X_OK) != 0) {
			fprintf(stderr, "tailkit install: %s is missing: install the "
			    "daemons next to tailkit first (cmake --install build)\n",
			    path);
			return 1;
		}
	}
	if ((e = mkdirs(root, UNIT_DIR, 0755)) != 0 ||
	    (e = mkdirs(root, "/etc/sysusers.d", 0755)) != 0) {
		fprintf(stderr, "tailkit install: %s%s: %s\n", root, UNIT_DIR,
		    strerror(e));
		return 1;
	}
	const char *other = o.split ? aio_units[0] : split_units[0];
	snprintf(path, sizeof(path), "%s%s/%s", root, UNIT_DIR, other);
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "tailkit install: %s is installed (the %s mode); "
		    "the two modes exclude each other: `tailkit uninstall` first\n",
		    path, o.split ? "all-in-one" : "split");
		return 1;
	}
	for (size_t i = 0; units[i]; i++) {
		snprintf(path, sizeof(path), "%s%s/%s", root, UNIT_DIR, units[i]);
		if (access(path, F_OK) == 0 && !has_marker(path) && !o.force) {
			fprintf(stderr, "tailkit install: %s exists and was not "
			    "written by tailkit install; --force replaces it\n", path);
			return 1;
		}
	}
	for (size_t i = 0; units[i]; i++) {
		snprintf(path, sizeof(path), "%s%s/%s", root, UNIT_DIR, units[i]);
		if ((e = write_file(path, unit_text(units[i]), bindir, 0644,
			 MARKER)) != 0) {
			fprintf(stderr, "tailkit install: %s: %s\n", path, strerror(e));
			return 1;
		}
		printf("wrote %s\n", path);
	}
	snprintf(path, sizeof(path), "%s/etc/sysusers.d/tailkit.conf", root);
	if ((e = write_file(path, unit_text("tailkit.sysusers"), NULL, 0644,
		 MARKER)) != 0) {
		fprintf(stderr, "tailkit install: %s: %s\n", path, strerror(e));
		return 1;
	}
	if (write_settings(&o, root) != 0 || write_key(&o, root) != 0)
		return 1;

	const char *main_unit = o.split ? "tailkit-split.target" :
					  "tailkitd.service";
	if (systemd_running(o.root)) {
		char *sysusers[] = { "systemd-sysusers", NULL };
		char *reload[] = { "systemctl", "daemon-reload", NULL };
		char *enable[] = { "systemctl", "enable", o.no_start ? NULL : "--now",
			(char *)main_unit, NULL };
		if (o.no_start) {
			enable[2] = (char *)main_unit;
			enable[3] = NULL;
		}
		if (run(sysusers) != 0 || run(reload) != 0 || run(enable) != 0) {
			fprintf(stderr, "tailkit install: systemd refused; see above\n");
			return 1;
		}
		printf("%s %s\n", o.no_start ? "enabled" : "enabled and started",
		    main_unit);
		return 0;
	}
	char rootarg[PATH_MAX + 8];
	snprintf(rootarg, sizeof(rootarg), "--root=%s", o.root);
	char *enable[] = { "systemctl", rootarg, "enable", (char *)main_unit, NULL };
	if (run(enable) != 0) {
		fprintf(stderr, "tailkit install: `systemctl --root=%s enable %s` "
		    "failed; the files are written: enable it by hand\n", o.root,
		    main_unit);
		return 1;
	}
	printf("enabled %s under %s (systemd is not running there: it starts at "
	    "the next boot, or run `systemd-sysusers && systemctl daemon-reload "
	    "&& systemctl start %s` on that system)\n", main_unit, o.root,
	    main_unit);
	return 0;
}

int
cmd_uninstall(int argc, char **argv)
{
	const char *r = "/";
	char root[ROOT_MAX], path[PATH_MAX];
	int removed = 0;

	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--root=", 7) == 0)
			r = argv[i] + 7;
		else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc)
			r = argv[++i];
		else {
			fprintf(stderr, "tailkit uninstall: unknown flag %s (accepted: "
			    "--root DIR)\n", argv[i]);
			return 2;
		}
	}
	if (r[0] != '/' || strlen(r) >= ROOT_MAX) {
		fprintf(stderr, "tailkit uninstall: --root %s: want an absolute "
		    "directory (shorter than %d bytes)\n", r, ROOT_MAX);
		return 2;
	}
	snprintf(root, sizeof(root), "%s", strcmp(r, "/") == 0 ? "" : r);
	const char *const *lists[] = { aio_units, split_units };
	char rootarg[PATH_MAX + 8];
	snprintf(rootarg, sizeof(rootarg), "--root=%s", r);
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; lists[l][i]; i++) {
			snprintf(path, sizeof(path), "%s%s/%s", root, UNIT_DIR,
			    lists[l][i]);
			if (access(path, F_OK) != 0)
				continue;
			if (!has_marker(path)) {
				printf("leaving %s: not written by tailkit install\n",
				    path);
				continue;
			}
			char *dis_live[] = { "systemctl", "disable", "--now",
				(char *)lists[l][i], NULL };
			char *dis_root[] = { "systemctl", rootarg, "disable",
				(char *)lists[l][i], NULL };
			if (run(systemd_running(r) ? dis_live : dis_root) != 0)
				fprintf(stderr, "tailkit uninstall: systemctl could not "
				    "disable %s; removing it anyway\n", lists[l][i]);
			if (unlink(path) != 0) {
				fprintf(stderr, "tailkit uninstall: %s: %s\n", path,
				    strerror(errno));
				return 1;
			}
			printf("removed %s\n", path);
			removed++;
		}
	snprintf(path, sizeof(path), "%s/etc/sysusers.d/tailkit.conf", root);
	if (has_marker(path) && unlink(path) == 0)
		printf("removed %s\n", path);
	if (systemd_running(r)) {
		char *reload[] = { "systemctl", "daemon-reload", NULL };
		(void)run(reload);
	}
	if (removed == 0)
		printf("nothing to remove: no unit written by tailkit install under "
		    "%s%s\n", root, UNIT_DIR);
	printf("kept: /etc/default/tailkit*, /etc/tailkit/authkey and the node's "
	    "state in /var/lib/tailkit (remove them by hand to forget the node)\n");
	return 0;
}
