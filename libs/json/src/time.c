/* Go time.Time JSON (RFC 3339, time.RFC3339Nano on output). */
#include <stdio.h>
#include <string.h>

#include "tk/err.h"
#include "tk/json.h"

#define ZERO_TIME_SEC (-62135596800LL) /* 0001-01-01T00:00:00Z */

/* Days since 1970-01-01 for a proleptic Gregorian date (Hinnant's method). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

static int
digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
tk_json_time_parse(tk_json_time *out, const char *s, size_t n)
{
	static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
		31, 30, 31 };
	unsigned Y, M, D, h, m, sec, frac = 0;
	size_t i = 19;
	int64_t off = 0, t;

	/* YYYY-MM-DDTHH:MM:SS */
	if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':' || digits(s, 4, &Y) || digits(s + 5, 2, &M) ||
	    digits(s + 8, 2, &D) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
		return TK_EPROTO;
	if (M < 1 || M > 12 || D < 1 || h > 23 || m > 59 || sec > 59)
		return TK_EPROTO;
	if (D > mdays[M - 1] + (M == 2 && is_leap(Y)))
		return TK_EPROTO;
	if (s[i] == '.') {
		int nd = 0;

		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (nd == 9)
				return TK_EPROTO;
			frac = frac * 10 + (unsigned)(s[i] - '0');
			nd++;
			i++;
		}
		if (nd == 0)
			return TK_EPROTO;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	if (i < n && (s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
		off = 0;
	} else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		unsigned oh, om;

		if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) ||
		    oh > 23 || om > 59)
			return TK_EPROTO;
		off = (int64_t)(oh * 3600 + om * 60);
		if (s[i] == '-')
			off = -off;
	} else {
		return TK_EPROTO;
	}
	t = days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec - off;
	out->sec = t;
	out->nsec = (int32_t)frac;
	out->zero = t == ZERO_TIME_SEC && frac == 0;
	return 0;
}

void
tk_json_time_format(const tk_json_time *t, char out[48])
{
	int64_t days = t->sec / 86400, rem = t->sec % 86400, y;
	unsigned m, d;
	char frac[16] = "";

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	if (t->nsec > 0) {
		int len;

		snprintf(frac, sizeof(frac), ".%09d", (int)(t->nsec % 1000000000));
		len = (int)strlen(frac);
		while (frac[len - 1] == '0')
			frac[--len] = '\0';
	}
	snprintf(out, 48, "%04lld-%02u-%02uT%02lld:%02lld:%02lld%sZ",
	    (long long)y, m, d, (long long)(rem / 3600),
	    (long long)(rem / 60 % 60), (long long)(rem % 60), frac);
}
