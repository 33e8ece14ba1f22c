/* window.c: see window.h. */
#include "window.h"

#include <stdatomic.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400
/* The Gregorian calendar repeats every 400 years: 146097 days, whole weeks too. */
#define CYCLE_DAYS 146097
#define CYCLE_SECS ((int64_t)CYCLE_DAYS * DAY)
/* Local seconds beyond this are not converted: the searches around them stay in range. */
#define LOCAL_MAX (INT64_MAX / 2)

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t sat_mul(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
	return r;
}

/* Division rounding down, and its remainder 0..b-1; b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return a % b < 0 ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	int64_t r = a % b;
	return r < 0 ? r + b : r;
}

/* ---- civil dates: Howard Hinnant's algorithms, proleptic Gregorian ---- */

struct civil {
	int64_t y;
	int m, d;
};

static bool leap_year(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int month_len(int64_t y, int m)
{
	static const uint8_t len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap_year(y) ? 29 : len[m - 1];
}

/* Days since 1970-01-01 of y-m-d. |y| must stay below about 10^15 (callers
 * bound it): era * 146097 is the one product that grows. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;                                    /* 0..399 */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  /* from March 1st, 0..365 */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            /* 0..146096 */
	return era * CYCLE_DAYS + doe - 719468;
}

/* The date of day z since 1970-01-01, for any z. Hinnant adds 719468 (days from
 * 0000-03-01) to z first; adding it to z's remainder instead cannot overflow. */
static struct civil civil_from_days(int64_t z)
{
	int64_t era = floor_div(z, CYCLE_DAYS);
	int64_t r = floor_mod(z, CYCLE_DAYS) + 719468;
	era += r / CYCLE_DAYS;
	int64_t doe = r % CYCLE_DAYS;                                            /* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;     /* 0..399 */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                   /* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;                                        /* 0..11, March first */
	struct civil c;
	c.d = (int)(doy - (153 * mp + 2) / 5 + 1);
	c.m = (int)(mp < 10 ? mp + 3 : mp - 9);
	c.y = yoe + era * 400 + (c.m <= 2);
	return c;
}

/* ---- POSIX TZ rules (the TZif footer) ---- */

/* Day (since 1970-01-01) of rule date d in year y. */
static int64_t rule_day(const struct tz_date *d, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1);
	switch (d->kind) {
	case 'J':
		return jan1 + d->day - 1 + (leap_year(y) && d->day >= 60);
	case 'D':
		return jan1 + d->day;
	default: {
		int64_t first = days_from_civil(y, d->month, 1);
		int wd = (int)floor_mod(first + 4, 7);   /* 1970-01-01 was a Thursday */
		int dd = (d->day - wd + 7) % 7 + 7 * (d->week - 1);
		while (dd >= month_len(y, d->month))
			dd -= 7;   /* week 5 is the last, sometimes the fourth */
		return first + dd;
	}
	}
}

/* The rule's offset at t: the latest change at or before t, looking at the
 * changes of the years around t's, since a change time past midnight (up to
 * 167 h) can move one into the next year. */
static int32_t rule_offset(const struct tz_rule *r, int64_t t)
{
	if (!r->has_dst)
		return r->std_off;
	if (t > (INT64_C(1) << 40) || t < -(INT64_C(1) << 40))
		t %= CYCLE_SECS;   /* the rule repeats every 400 years; keeps the sums below small */
	int64_t y = civil_from_days(floor_div(t + r->std_off, DAY)).y;
	int64_t best = 0;
	bool any = false, dst = false;
	for (int64_t k = y - 1; k <= y + 1; k++) {
		int64_t s = rule_day(&r->start, k) * DAY + r->start.secs - r->std_off;
		int64_t e = rule_day(&r->end, k) * DAY + r->end.secs - r->dst_off;
		if (e <= t && (!any || e > best)) {
			best = e;
			dst = false;
			any = true;
		}
		/* On a tie the start wins: "J1/0,J365/25" is daylight time all year. */
		if (s <= t && (!any || s >= best)) {
			best = s;
			dst = true;
			any = true;
		}
	}
	return dst ? r->dst_off : r->std_off;
}

struct pcur {
	const char *p, *end;
};

static bool pdigit(const struct pcur *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

/* Up to maxd digits; -1 without any. */
static int pnum(struct pcur *c, int maxd)
{
	int v = 0, n = 0;
	while (n < maxd && pdigit(c)) {
		v = v * 10 + (*c->p++ - '0');
		n++;
	}
	return n ? v : -1;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, + and -. */
static bool pname(struct pcur *c)
{
	if (c->p < c->end && *c->p == '<') {
		const char *s = ++c->p;
		while (c->p < c->end && *c->p != '>') {
			char ch = *c->p;
			if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			      ch == '+' || ch == '-'))
				return false;
			c->p++;
		}
		if (c->p >= c->end || c->p - s < 3)
			return false;
		c->p++;
		return true;
	}
	const char *s = c->p;
	while (c->p < c->end && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z')))
		c->p++;
	return c->p - s >= 3;
}

/* [+-]hh[:mm[:ss]], hh at most maxh: seconds, signed as written. */
static bool phms(struct pcur *c, int maxh, int32_t *out)
{
	int32_t sign = 1;
	if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
		sign = *c->p++ == '-' ? -1 : 1;
	int h = pnum(c, 3), m = 0, s = 0;
	if (h < 0 || h > maxh)
		return false;
	if (c->p < c->end && *c->p == ':') {
		c->p++;
		if ((m = pnum(c, 2)) < 0 || m > 59)
			return false;
		if (c->p < c->end && *c->p == ':') {
			c->p++;
			if ((s = pnum(c, 2)) < 0 || s > 59)
				return false;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return true;
}

/* Jn, n or Mm.w.d, then an optional /time (default 02:00). */
static bool pdate(struct pcur *c, struct tz_date *d)
{
	int n;
	if (c->p >= c->end)
		return false;
	if (*c->p == 'M') {
		c->p++;
		int m = pnum(c, 2);
		if (m < 1 || m > 12 || c->p >= c->end || *c->p++ != '.')
			return false;
		int w = pnum(c, 1);
		if (w < 1 || w > 5 || c->p >= c->end || *c->p++ != '.')
			return false;
		if ((n = pnum(c, 1)) < 0 || n > 6)
			return false;
		*d = (struct tz_date){ .kind = 'M', .month = (uint8_t)m, .week = (uint8_t)w, .day = (int16_t)n };
	} else if (*c->p == 'J') {
		c->p++;
		if ((n = pnum(c, 3)) < 1 || n > 365)
			return false;
		*d = (struct tz_date){ .kind = 'J', .day = (int16_t)n };
	} else {
		if ((n = pnum(c, 3)) < 0 || n > 365)
			return false;
		*d = (struct tz_date){ .kind = 'D', .day = (int16_t)n };
	}
	d->secs = 2 * 3600;
	if (c->p < c->end && *c->p == '/') {
		c->p++;
		return phms(c, 167, &d->secs);   /* RFC 8536 widens POSIX's 0..24 */
	}
	return true;
}

/* "std offset [dst [offset] ,start[/time],end[/time]]"; POSIX offsets count
 * west of UTC. A daylight name without a rule is refused rather than given
 * POSIX's implementation-defined one: zic always writes it. */
static bool parse_posix(const char *s, size_t n, struct tz_rule *r)
{
	struct pcur c = { s, s + n };
	int32_t v;
	memset(r, 0, sizeof(*r));
	if (!pname(&c) || !phms(&c, 24, &v))
		return false;
	r->std_off = -v;
	if (c.p == c.end)
		return true;
	if (!pname(&c))
		return false;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (c.p < c.end && *c.p != ',') {
		if (!phms(&c, 24, &v))
			return false;
		r->dst_off = -v;
	}
	if (c.p >= c.end || *c.p++ != ',' || !pdate(&c, &r->start) || c.p >= c.end || *c.p++ != ',' ||
	    !pdate(&c, &r->end))
		return false;
	return c.p == c.end;
}

/* ---- TZif ---- */

#define TZIF_HDR 44

struct counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t sbe32(const uint8_t *p)
{
	uint32_t u = be32(p);
	return u <= INT32_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static int64_t sbe64(const uint8_t *p)
{
	uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
	return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static void read_counts(const uint8_t *h, struct counts *c)
{
	c->isut = be32(h + 20);
	c->isstd = be32(h + 24);
	c->leap = be32(h + 28);
	c->time = be32(h + 32);
	c->type = be32(h + 36);
	c->chars = be32(h + 40);
}

/* A data block's length; counts are 32-bit, so it fits 64 bits. */
static uint64_t block_len(const struct counts *c, unsigned tsz)
{
	return (uint64_t)c->time * (tsz + 1) + (uint64_t)c->type * 6 + c->chars + (uint64_t)c->leap * (tsz + 4) +
	       c->isstd + c->isut;
}

int tz_parse(const uint8_t *data, size_t len, struct tz *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len < TZIF_HDR || memcmp(data, "TZif", 4) != 0)
		return fail(err, errlen, "not a TZif file (no TZif header)");
	uint8_t ver = data[4];
	if (ver != 0 && ver < '2')
		return fail(err, errlen, "TZif: unknown version byte 0x%02x", ver);
	struct counts c;
	read_counts(data, &c);
	size_t off = TZIF_HDR;
	unsigned tsz = 4;
	uint64_t bl = block_len(&c, 4);
	if (bl > len - off)
		return fail(err, errlen, "TZif: truncated (version 1 data)");
	if (ver != 0) {
		/* Version 2+: skip the 32-bit data for the 64-bit header and data. */
		off += (size_t)bl;
		if (len - off < TZIF_HDR || memcmp(data + off, "TZif", 4) != 0)
			return fail(err, errlen, "TZif: truncated (no version 2 header)");
		read_counts(data + off, &c);
		off += TZIF_HDR;
		tsz = 8;
		if ((bl = block_len(&c, 8)) > len - off)
			return fail(err, errlen, "TZif: truncated (version 2 data)");
	}
	if (c.type == 0 || c.chars == 0)
		return fail(err, errlen, "TZif: no local time types");
	if ((c.isstd != 0 && c.isstd != c.type) || (c.isut != 0 && c.isut != c.type))
		return fail(err, errlen, "TZif: indicator counts do not match the type count");
	if (c.leap)
		return fail(err, errlen, "TZif: leap-second zones (\"right/\") are not supported");

	const uint8_t *tp = data + off, *ip = tp + (size_t)c.time * tsz, *typ = ip + c.time;
	int32_t type_off[256];   /* indices are one byte: later types are checked, never used */
	for (uint32_t i = 0; i < c.type; i++) {
		const uint8_t *t = typ + (size_t)i * 6;
		int64_t o = sbe32(t);
		if (o < -TZ_OFF_MAX || o > TZ_OFF_MAX)
			return fail(err, errlen, "TZif: type %u is %lld s from UTC", i, (long long)o);
		if (t[4] > 1 || t[5] >= c.chars)
			return fail(err, errlen, "TZif: type %u is malformed", i);
		if (i < 256)
			type_off[i] = (int32_t)o;
	}
	struct tz z = { .off0 = type_off[0] };
	if (c.time) {
		z.tr = malloc((size_t)c.time * sizeof(*z.tr));   /* bounded by len: the block was checked */
		if (!z.tr)
			return fail(err, errlen, "TZif: out of memory");
		for (uint32_t i = 0; i < c.time; i++) {
			int64_t at = tsz == 8 ? sbe64(tp + (size_t)i * 8) : sbe32(tp + (size_t)i * 4);
			if (i && at <= z.tr[i - 1].at) {
				free(z.tr);
				return fail(err, errlen, "TZif: transition %u is not after the one before", i);
			}
			if (ip[i] >= c.type) {
				free(z.tr);
				return fail(err, errlen, "TZif: transition %u has type %u of %u", i, ip[i], c.type);
			}
			z.tr[i] = (struct tz_trans){ at, type_off[ip[i]] };
		}
		z.n = c.time;
	}
	if (ver != 0) {
		/* The footer: "\n" TZ string "\n", for instants after the last transition. */
		size_t f = off + (size_t)bl;
		const uint8_t *nl = f + 1 < len && data[f] == '\n' ? memchr(data + f + 1, '\n', len - f - 1) : NULL;
		if (!nl) {
			free(z.tr);
			return fail(err, errlen, "TZif: truncated (no footer)");
		}
		size_t n = (size_t)(nl - (data + f + 1));
		if (n) {
			if (!parse_posix((const char *)data + f + 1, n, &z.rule)) {
				free(z.tr);
				return fail(err, errlen, "TZif: footer TZ string \"%.*s\" not understood", n > 64 ? 64 : (int)n,
				            (const char *)data + f + 1);
			}
			z.has_rule = true;
		}
	}
	*out = z;
	return 0;
}

int tz_fixed(const char *spec, struct tz *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(spec, "UTC") == 0 || strcmp(spec, "Z") == 0)
		return 0;
	const char *p = spec;
	int h, m = 0;
	if ((*p != '+' && *p != '-') || !(p[1] >= '0' && p[1] <= '9') || !(p[2] >= '0' && p[2] <= '9'))
		goto bad;
	h = (p[1] - '0') * 10 + (p[2] - '0');
	p += 3;
	if (*p == ':')
		p++;
	if (*p) {
		if (!(p[0] >= '0' && p[0] <= '9') || !(p[1] >= '0' && p[1] <= '9') || p[2])
			goto bad;
		m = (p[0] - '0') * 10 + (p[1] - '0');
	} else if (p[-1] == ':') {
		goto bad;
	}
	if (h > 23 || m > 59)
		goto bad;
	out->off0 = (spec[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
	return 0;
bad:
	return fail(err, errlen, "time zone \"%.40s\": expected \"UTC\", \"Z\" or an offset such as \"+05:30\", "
	                         "\"-08:00\" or \"+0100\"", spec);
}

void tz_free(struct tz *z)
{
	free(z->tr);
	memset(z, 0, sizeof(*z));
}

int32_t tz_offset(const struct tz *z, int64_t t)
{
	if (!z)
		return 0;
	if (z->n == 0)
		return z->has_rule ? rule_offset(&z->rule, t) : z->off0;
	if (t < z->tr[0].at)
		return z->off0;
	if (t > z->tr[z->n - 1].at && z->has_rule)
		return rule_offset(&z->rule, t);
	size_t lo = 0, hi = z->n;   /* tr[lo].at <= t < tr[hi].at */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->tr[mid].at <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->tr[lo].off;
}

/* The earliest instant t whose local time t + offset(t) is L, or after a gap
 * (a skipped hour holding L) the first instant after it. Any such t is within
 * TZ_OFF_MAX of L; the offsets in effect there are sampled every 6.5 hours,
 * closer than any zone's changes have ever been. |L| <= LOCAL_MAX. */
static int64_t utc_of_local(const struct tz *z, int64_t L)
{
	int32_t offs[9];
	int n = 0;
	for (int k = -4; k <= 4; k++) {
		int32_t o = tz_offset(z, L + k * (TZ_OFF_MAX / 4));
		int i = 0;
		while (i < n && offs[i] != o)
			i++;
		if (i == n)
			offs[n++] = o;
	}
	int64_t best = 0;
	bool found = false;
	for (int i = 0; i < n; i++) {
		int64_t t = L - offs[i];
		if (t + tz_offset(z, t) == L && (!found || t < best)) {
			best = t;
			found = true;
		}
	}
	if (found)
		return best;
	/* A gap: t + offset(t) jumps over L. lo's local time is below L, hi's above
	 * it; halve to the instant of the jump. */
	int64_t lo = L - TZ_OFF_MAX - 1, hi = L + TZ_OFF_MAX + 1;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (mid + tz_offset(z, mid) < L)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/* ---- windows ---- */

int window_parse(const char *spec, struct window *w, char *err, size_t errlen)
{
	static const char accepted[] = "expected \"day\", \"week\", \"month\" or \"rolling <N><s|m|h|d>\" "
	                               "such as \"rolling 24h\"";
	if (!spec)
		return fail(err, errlen, "window: %s", accepted);
	enum win_kind k;
	int64_t secs = 0;
	if (strcmp(spec, "day") == 0) {
		k = WIN_DAY;
	} else if (strcmp(spec, "week") == 0) {
		k = WIN_WEEK;
	} else if (strcmp(spec, "month") == 0) {
		k = WIN_MONTH;
	} else if (strncmp(spec, "rolling ", 8) == 0) {
		k = WIN_ROLLING;
		const char *p = spec + 8;
		while (*p == ' ')
			p++;
		int nd = 0;
		for (; *p >= '0' && *p <= '9'; p++, nd++)
			if (nd < 12)
				secs = secs * 10 + (*p - '0');   /* more digits: out of range below anyway */
		int64_t unit = *p == 's' ? 1 : *p == 'm' ? 60 : *p == 'h' ? 3600 : *p == 'd' ? DAY : 0;
		if (!nd || !unit || p[1])
			return fail(err, errlen, "window \"%.40s\": %s", spec, accepted);
		if (nd > 12 || (secs *= unit) < WIN_ROLLING_MIN || secs > WIN_ROLLING_MAX)
			return fail(err, errlen, "window \"%.40s\": a rolling window is 12s to 400d long", spec);
		if (secs % WIN_BUCKETS)
			return fail(err, errlen, "window \"%.40s\": a rolling window's length must be a multiple of %d seconds "
			            "(it is counted in %d buckets)", spec, WIN_BUCKETS, WIN_BUCKETS);
	} else {
		return fail(err, errlen, "window \"%.40s\": %s", spec, accepted);
	}
	static _Atomic uint64_t uids;
	w->kind = k;
	w->secs = secs;
	w->uid = atomic_fetch_add_explicit(&uids, 1, memory_order_relaxed) + 1;
	return 0;
}

int window_nbuckets(const struct window *w)
{
	return w->kind == WIN_ROLLING ? WIN_BUCKETS : 1;
}

/* A rolling window's bucket length; a struct filled by hand cannot make it 0. */
static int64_t bucket_len(const struct window *w)
{
	int64_t l = w->secs / WIN_BUCKETS;
	return l > 0 ? l : 1;
}

/* The calendar bucket a thread last found for a window, and its span: a zone's
 * offset costs a search and a rule's evaluation, and every call of a budget's
 * day asks again. Per thread, keyed by the window's uid (never reused) and zone. */
struct bucket_memo {
	uint64_t uid;
	const struct tz *tz;
	int64_t b, start, end;
};
static _Thread_local struct bucket_memo memo[8];

static int64_t bucket_uncached(const struct window *w, int64_t now);

int64_t window_bucket(const struct window *w, int64_t now)
{
	if (w->kind == WIN_ROLLING)
		return floor_div(now, bucket_len(w));
	if (!w->uid)
		return bucket_uncached(w, now);
	struct bucket_memo *m = &memo[w->uid % 8];
	if (m->uid == w->uid && m->tz == w->tz && now >= m->start && now < m->end)
		return m->b;
	int64_t b = bucket_uncached(w, now), start, end;
	window_span(w, b, &start, &end);
	*m = (struct bucket_memo){ w->uid, w->tz, b, start, end };
	return b;
}

static int64_t bucket_uncached(const struct window *w, int64_t now)
{
	int64_t day = floor_div(sat_add(now, tz_offset(w->tz, now)), DAY);
	switch (w->kind) {
	case WIN_DAY:
		return day;
	case WIN_WEEK:
		return floor_div(day + 3, 7);   /* day -3 is Monday 1969-12-29 */
	default: {
		struct civil c = civil_from_days(day);
		return (c.y - 1970) * 12 + c.m - 1;
	}
	}
}

/* The first local day (since 1970-01-01) of calendar bucket b, saturating. */
static int64_t first_day(enum win_kind k, int64_t b)
{
	switch (k) {
	case WIN_DAY:
		return b;
	case WIN_WEEK:
		return sat_add(sat_mul(b, 7), -3);
	default:
		if (b > (INT64_C(1) << 40) || b < -(INT64_C(1) << 40))
			return b > 0 ? INT64_MAX : INT64_MIN;   /* keeps days_from_civil's year small */
		return days_from_civil(1970 + floor_div(b, 12), (int)floor_mod(b, 12) + 1, 1);
	}
}

/* The instant local day `day` starts in z. */
static int64_t day_start(const struct tz *z, int64_t day)
{
	if (day > LOCAL_MAX / DAY)
		return INT64_MAX;
	if (day < -(LOCAL_MAX / DAY))
		return INT64_MIN;
	return utc_of_local(z, day * DAY);
}

void window_span(const struct window *w, int64_t b, int64_t *start, int64_t *end)
{
	if (w->kind == WIN_ROLLING) {
		int64_t l = bucket_len(w);
		*start = sat_mul(b, l);
		*end = sat_add(*start, l);
		return;
	}
	const struct bucket_memo *m = &memo[w->uid % 8];
	if (w->uid && m->uid == w->uid && m->tz == w->tz && m->b == b) {
		*start = m->start;
		*end = m->end;
		return;
	}
	*start = day_start(w->tz, first_day(w->kind, b));
	*end = day_start(w->tz, first_day(w->kind, sat_add(b, 1)));
}

size_t window_label(const struct window *w, int64_t b, char *out, size_t cap)
{
	if (!cap)
		return 0;
	int n;
	struct civil c;
	switch (w->kind) {
	case WIN_ROLLING:
		n = snprintf(out, cap, "r%lld", (long long)b);
		break;
	case WIN_MONTH:
		n = snprintf(out, cap, "m%04lld-%02d", (long long)(1970 + floor_div(b, 12)), (int)floor_mod(b, 12) + 1);
		break;
	default:
		c = civil_from_days(first_day(w->kind, b));
		n = snprintf(out, cap, "%c%04lld-%02d-%02d", w->kind == WIN_WEEK ? 'w' : 'd', (long long)c.y, c.m, c.d);
		break;
	}
	if (n < 0) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)n < cap ? (size_t)n : cap - 1;
}
