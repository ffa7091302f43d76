/*
 * ctrld's prefs (ipn.Prefs subset, proto/tk/bus/v1/ctrl.proto Prefs) and
 * the netmap view they imply, sans-I/O so they are unit-testable.
 *
 * Three layers: the command-line values (defaults), the fields a user
 * edited (kept in ctrld.db as a MaskedPrefs, so they win over the command
 * line on every later start, as tailscaled's stored prefs win over its
 * flags), and the effective prefs (defaults overlaid with the edits).
 *
 * The view: what ctrld publishes on "netmap" is the map state as the
 * prefs let it through, so no subscriber needs to know about prefs:
 *   want_running false  no peers, an empty DNS config, deny-all filter
 *                       (ipnlocal enters Stopped with an empty wgcfg,
 *                       router and DNS config);
 *   shields_up          a deny-all packet filter (wgd still passes
 *                       replies to the node's own flows);
 *   corp_dns false      the DNS config keeps only the tailnet's names
 *                       (ipnlocal dnsConfigForNetmap returns before
 *                       resolvers, routes and search domains when
 *                       !prefs.CorpDNS()).
 */
#ifndef CTRLD_PREFS_H
#define CTRLD_PREFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/buf.h"
#include "tk/bus/v1/ctrl.pb-c.h"

#define CTRLDI_HOSTNAME_MAX 256 /* with the NUL */
#define CTRLDI_TAGS_MAX	    1024

/* Which fields were edited (the mask kept with the edits). */
enum {
	CTRLDI_PREF_WANT_RUNNING = 1u << 0,
	CTRLDI_PREF_CORP_DNS = 1u << 1,
	CTRLDI_PREF_SHIELDS_UP = 1u << 2,
	CTRLDI_PREF_HOSTNAME = 1u << 3,
	CTRLDI_PREF_TAGS = 1u << 4,
};

typedef struct ctrldi_prefs {
	bool want_running, corp_dns, shields_up;
	char hostname[CTRLDI_HOSTNAME_MAX];
	char tags[CTRLDI_TAGS_MAX]; /* "tag:a,tag:b"; "" none */
} ctrldi_prefs;

/* The defaults of a node started with no edits: running, DNS accepted. */
void ctrldi_prefs_init(ctrldi_prefs *p);

/*
 * Applies mp to *p (and records the fields in *mask).  Checks everything
 * first: on TK_EINVAL nothing changed and err names the field and what is
 * accepted.  control_url: the daemon's; ControlURL may be set only to it.
 * Fields tailkit cannot honour (RouteAll, ExitNodeID/IP, AdvertiseRoutes,
 * RunSSH, NoSNAT) are refused when set to anything but what tailkit does
 * (off, empty).  *changed (may be NULL) gets the fields whose value moved.
 */
int ctrldi_prefs_edit(ctrldi_prefs *p, unsigned *mask, unsigned *changed,
    const Tk__Bus__V1__MaskedPrefs *mp, const char *control_url, char *err,
    size_t errlen);

/* eff = defaults with the masked fields of edited. */
void ctrldi_prefs_overlay(ctrldi_prefs *eff, const ctrldi_prefs *defaults,
    const ctrldi_prefs *edited, unsigned mask);

/* The edits as a packed MaskedPrefs (ctrld.db), and back.  Unpack refuses
 * garbage (TK_EPROTO) and leaves the outputs alone then. */
int ctrldi_prefs_pack_edits(const ctrldi_prefs *edited, unsigned mask,
    tk_buf *out);
int ctrldi_prefs_unpack_edits(ctrldi_prefs *edited, unsigned *mask,
    const uint8_t *p, size_t n);

/* Prefs (the rpc reply) of p. */
int ctrldi_prefs_pack(const ctrldi_prefs *p, const char *control_url,
    tk_buf *out);

/* True when the view differs from the map state (something to filter). */
bool ctrldi_prefs_filtering(const ctrldi_prefs *p);

/* A packed Netmap as p lets it through (out: packed Netmap). */
int ctrldi_view_netmap(const ctrldi_prefs *p, const uint8_t *nm, size_t n,
    tk_buf *out);
/* A packed NetmapDelta as p lets it through; *empty when nothing is left
 * to publish. */
int ctrldi_view_delta(const ctrldi_prefs *p, const uint8_t *d, size_t n,
    tk_buf *out, bool *empty);
/*
 * The NetmapDelta taking a subscriber from the view under old to the view
 * under new, given the map state's packed Netmap: peers removed or added
 * back when want_running flips, and the packet filter and DNS config of
 * the new view, whole.
 */
int ctrldi_view_switch(const ctrldi_prefs *old, const ctrldi_prefs *new_,
    const uint8_t *nm, size_t n, tk_buf *out);

#endif
