/*
 * FilterRule address strings (tailcfg.go parseIPSet): "*", "cap:<name>",
 * "a/n", "a-b", "a".  Addresses in the forms Go's netip.ParseAddr takes
 * without a zone; inet_pton agrees with it there (no leading zeros in IPv4
 * octets, IPv4-in-IPv6 tails allowed).
 */
#include <arpa/inet.h>
#include <string.h>

#include "tk/err.h"
#include "tk/netaddr.h"
#include "tk/wg_filter.h"

/* INET6_ADDRSTRLEN plus slack: anything longer is not an address. */

/*
 * Parses s[0..n) as one address; returns its family (4, 6) or 0.  A NUL
 * inside is refused (inet_pton would stop there and accept a prefix).
 */
static int
parse_addr(const char *s, size_t n, uint8_t out[16])
{
	tk_ipaddr a;

	/* the one address parser (tk/netaddr.h): netip's strict forms */
	if (tk_ipaddr_parse(&a, s, n) != 0)
		return 0;
	memcpy(out, a.addr, 16);
	return a.family == TK_AF_INET ? 4 : 6;
}

/* Decimal prefix length, no sign, no leading zeros (netip.ParsePrefix). */
static int
parse_bits(const char *s, size_t n, unsigned max)
{
	unsigned v = 0;

	if (n == 0 || (s[0] == '0' && n != 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > max)
			return -1;
	}
	return (int)v;
}

static bool
has_host_bits(const uint8_t *a, int fam, unsigned bits)
{
	unsigned total = fam == 4 ? 32 : 128;

	for (unsigned i = bits; i < total; i++)
		if (a[i / 8] & (0x80u >> (i % 8)))
			return true;
	return false;
}

int
tk_wg_ipmatch_parse_n(tk_wg_ipmatch *out, const char *s, size_t n)
{
	tk_wg_ipmatch m;
	const char *slash, *dash, *end = s + n;
	int fam, bits;

	if (s == NULL)
		return TK_EINVAL;
	memset(&m, 0, sizeof(m));
	if (n == 1 && s[0] == '*') {
		m.im_kind = TK_WG_IPM_ANY;
	} else if (n >= 4 && memcmp(s, "cap:", 4) == 0) {
		m.im_kind = TK_WG_IPM_CAP;
		m.im_cap = s + 4;
	} else if ((slash = memchr(s, '/', n)) != NULL) {
		fam = parse_addr(s, (size_t)(slash - s), m.im_prefix.pf_addr);
		if (fam == 0)
			return TK_EINVAL;
		bits = parse_bits(slash + 1, (size_t)(end - slash - 1),
		    fam == 4 ? 32 : 128);
		if (bits < 0 || has_host_bits(m.im_prefix.pf_addr, fam,
				    (unsigned)bits))
			return TK_EINVAL;
		m.im_kind = TK_WG_IPM_PREFIX;
		m.im_prefix.pf_family = (uint8_t)fam;
		m.im_prefix.pf_bits = (uint8_t)bits;
	} else if ((dash = memchr(s, '-', n)) != NULL &&
	    memchr(dash + 1, '-', (size_t)(end - dash - 1)) == NULL) {
		/* netipx.IPRangeFrom(...).IsValid: one family, first <= last */
		int fam2;

		fam = parse_addr(s, (size_t)(dash - s), m.im_range.rg_first);
		fam2 = parse_addr(dash + 1, (size_t)(end - dash - 1),
		    m.im_range.rg_last);
		if (fam == 0 || fam != fam2 ||
		    memcmp(m.im_range.rg_first, m.im_range.rg_last, 16) > 0)
			return TK_EINVAL;
		m.im_kind = TK_WG_IPM_RANGE;
		m.im_range.rg_family = (uint8_t)fam;
	} else {
		fam = parse_addr(s, n, m.im_prefix.pf_addr);
		if (fam == 0)
			return TK_EINVAL;
		m.im_kind = TK_WG_IPM_PREFIX;
		m.im_prefix.pf_family = (uint8_t)fam;
		m.im_prefix.pf_bits = fam == 4 ? 32 : 128;
	}
	*out = m;
	return 0;
}

int
tk_wg_ipmatch_parse(tk_wg_ipmatch *out, const char *s)
{
	if (s == NULL)
		return TK_EINVAL;
	return tk_wg_ipmatch_parse_n(out, s, strlen(s));
}
