/* Unit tests of window: time zones from the real tzdata files (checked against
 * glibc's reading of the same files), the days DST makes 23 or 25 hours long,
 * ISO weeks, months, rolling buckets, and TZif data made to be read out of
 * bounds. Cases that need /usr/share/zoneinfo say "skipped: no tzdata" and skip
 * when it is absent. */
#include "testutil.h"

#include "window.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* tz_load is the shell's (tzload.c), so the unit tests' objects lack it:
 * compiled in here to test the names it refuses and $TZDIR. */
#include "tzload.c"

#define ZONEINFO "/usr/share/zoneinfo"
#define H 3600

static int64_t ts(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *d = malloc(1 << 20);
	assert_non_null(d);
	*len = fread(d, 1, 1 << 20, f);
	fclose(f);
	return d;
}

/* A zone from tzdata; false (and the case should skip) without it. */
static bool zone(const char *name, struct tz *z)
{
	char path[256], err[200];
	snprintf(path, sizeof(path), ZONEINFO "/%s", name);
	size_t len;
	uint8_t *d = read_all(path, &len);
	if (!d)
		return false;
	if (tz_parse(d, len, z, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	free(d);
	return true;
}

#define NEED_ZONE(name, z)                                                                \
	do {                                                                              \
		if (!zone((name), (z))) {                                                 \
			print_message("skipped: no tzdata (" ZONEINFO "/%s)\n", (name)); \
			skip();                                                           \
		}                                                                         \
	} while (0)

/* glibc's offset at t in $TZ's zone, from the same file: an independent reading. */
static long glibc_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	assert_non_null(localtime_r(&tt, &tm));
	return tm.tm_gmtoff;
}

static void set_tz_env(const char *name)
{
	char v[256];
	snprintf(v, sizeof(v), ":%s", name);
	setenv("TZ", v, 1);
	tzset();
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static struct window win(enum win_kind k, const struct tz *z)
{
	return (struct window){ .kind = k, .tz = z };
}

static void fixed_offsets(void **st)
{
	(void)st;
	static const struct {
		const char *spec;
		int32_t off;
	} ok[] = {
		{ "UTC", 0 }, { "Z", 0 }, { "+05:30", 19800 }, { "-08:00", -28800 }, { "+0100", 3600 },
		{ "+05", 18000 }, { "-00:00", 0 }, { "+23:59", 86340 }, { "-0930", -34200 },
	};
	char err[200];
	struct tz z;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (tz_fixed(ok[i].spec, &z, err, sizeof(err)) != 0)
			fail_msg("%s refused: %s", ok[i].spec, err);
		assert_int_equal(tz_offset(&z, 0), ok[i].off);
		assert_int_equal(tz_offset(&z, INT64_MIN), ok[i].off);
		assert_int_equal(tz_offset(&z, INT64_MAX), ok[i].off);
		tz_free(&z);
	}
	static const char *const bad[] = { "", "utc", "GMT", "+", "+5", "+053", "+05:", "+05:3", "+05:300", "+24:00",
	                                    "+05:60", "05:30", "+05-30", "+05:30 ", " +05:30", "Europe/Berlin" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (tz_fixed(bad[i], &z, err, sizeof(err)) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "\"+05:30\""));   /* says what is accepted */
		assert_int_equal(tz_offset(&z, 0), 0);
	}
	/* Zeroed and NULL are UTC; tz_free on a zeroed struct is fine. */
	memset(&z, 0, sizeof(z));
	assert_int_equal(tz_offset(&z, 1234567), 0);
	assert_int_equal(tz_offset(NULL, 1234567), 0);
	tz_free(&z);
	tz_free(&z);

	/* Days in +05:30 start at 18:30 UTC the day before. */
	assert_int_equal(tz_fixed("+05:30", &z, err, sizeof(err)), 0);
	struct window w = win(WIN_DAY, &z);
	int64_t s, e, b = window_bucket(&w, ts(2026, 12, 1, 18, 30, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 12, 1, 18, 30, 0));
	assert_int_equal(e - s, 86400);
	assert_int_equal(window_bucket(&w, s - 1), b - 1);
	char l[24];
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "d2026-12-02");
	tz_free(&z);
}

static void real_zones(void **st)
{
	(void)st;
	struct tz be, ny, ko, lh;
	NEED_ZONE("Europe/Berlin", &be);
	NEED_ZONE("America/New_York", &ny);
	NEED_ZONE("Asia/Kolkata", &ko);
	const struct {
		struct tz *z;
		int64_t t;
		int32_t off;
	} cases[] = {
		/* Berlin: 2026's changes (01:00 UTC), double summer time in 1945, the
		 * footer's rule in 2100, local mean time (0:53:28) before 1893 */
		{ &be, 1774745999, 3600 }, { &be, 1774746000, 7200 }, { &be, 1792889999, 7200 }, { &be, 1792890000, 3600 },
		{ &be, -775872000, 10800 }, { &be, 0, 3600 }, { &be, 4118083200, 7200 }, { &be, 4102444800, 3600 },
		{ &be, -5364662400, 3208 },
		/* New York: 2026's changes, and 2200 from the footer */
		{ &ny, 1772953199, -18000 }, { &ny, 1772953200, -14400 }, { &ny, 1793512799, -14400 },
		{ &ny, 1793512800, -18000 }, { &ny, 7273756800, -14400 },
		/* Kolkata: +05:30, +06:30 in the war, LMT */
		{ &ko, 1767225600, 19800 }, { &ko, -852076800, 23400 }, { &ko, -3786825600, 21208 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tz_offset(cases[i].z, cases[i].t) != cases[i].off)
			fail_msg("case %zu: t=%lld: %d, want %d", i, (long long)cases[i].t, tz_offset(cases[i].z, cases[i].t),
			         cases[i].off);
	/* Far instants: the footer rule, reduced by 400-year cycles, without overflow. */
	assert_int_equal(tz_offset(&ko, INT64_MAX), 19800);
	assert_int_equal(tz_offset(&ko, INT64_MIN), tz_offset(&ko, -6000000000));
	int32_t o = tz_offset(&be, INT64_MAX);
	assert_true(o == 3600 || o == 7200);
	tz_free(&be);
	tz_free(&ny);
	tz_free(&ko);

	/* Lord Howe: a half-hour DST, +10:30 / +11. */
	if (!zone("Australia/Lord_Howe", &lh)) {
		print_message("Lord_Howe skipped: no tzdata\n");
		return;
	}
	assert_int_equal(tz_offset(&lh, 1775314799), 39600);
	assert_int_equal(tz_offset(&lh, 1775314800), 37800);
	assert_int_equal(tz_offset(&lh, 1791041399), 37800);
	assert_int_equal(tz_offset(&lh, 1791041400), 39600);
	assert_int_equal(tz_offset(&lh, ts(2150, 1, 1, 0, 0, 0)), 39600);
	struct window w = win(WIN_DAY, &lh);
	int64_t s, e;
	window_span(&w, window_bucket(&w, 1775314800), &s, &e);
	assert_int_equal(s, 1775307600);
	assert_int_equal(e - s, 24 * H + H / 2);
	window_span(&w, window_bucket(&w, 1791041400), &s, &e);
	assert_int_equal(s, 1791034200);
	assert_int_equal(e - s, 23 * H + H / 2);
	tz_free(&lh);
}

/* Every zone's offsets as glibc reads the same file, from 1900 to 2400: each day
 * at a moving time, and a second either side of each transition. */
static void zones_agree_with_glibc(void **st)
{
	(void)st;
	static const char *const names[] = { "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
	                                     "America/Havana", "Pacific/Apia", "America/Sao_Paulo", "Europe/Dublin",
	                                     "Africa/Casablanca", "Antarctica/Troll", "Asia/Tehran", "Pacific/Chatham" };
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	int checked = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct tz z;
		if (!zone(names[i], &z))
			continue;
		set_tz_env(names[i]);
		for (int64_t t = ts(1900, 1, 1, 0, 0, 0); t < ts(2400, 1, 1, 0, 0, 0); t += 86400 + 3607)
			if (tz_offset(&z, t) != glibc_offset(t))
				fail_msg("%s at %lld: %d, glibc %ld", names[i], (long long)t, tz_offset(&z, t),
				         glibc_offset(t));
		for (size_t k = 0; k < z.n; k++)
			for (int64_t d = -1; d <= 0; d++) {
				int64_t t = z.tr[k].at + d;
				if (t > ts(1900, 1, 1, 0, 0, 0) && tz_offset(&z, t) != glibc_offset(t))
					fail_msg("%s at %lld: %d, glibc %ld", names[i], (long long)t, tz_offset(&z, t),
					         glibc_offset(t));
			}
		tz_free(&z);
		checked++;
	}
	if (saved) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
	if (!checked) {
		print_message("skipped: no tzdata\n");
		skip();
	}
	print_message("%d zones agree with glibc\n", checked);
}

/* Minimal TZif writer, for the footer-only and hostile cases. */
struct tb {
	uint8_t d[8192];
	size_t n;
};

static void put(struct tb *b, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		b->d[b->n++] = (uint8_t)(v >> (8 * i));
}

static void put_block(struct tb *b, char ver, int tsz, const int64_t *at, const uint8_t *idx, uint32_t nt,
                      const int32_t *offs, uint32_t ntypes)
{
	memcpy(b->d + b->n, "TZif", 4);
	b->n += 4;
	b->d[b->n++] = (uint8_t)ver;
	memset(b->d + b->n, 0, 15);
	b->n += 15;
	put(b, 0, 4);        /* isut */
	put(b, 0, 4);        /* isstd */
	put(b, 0, 4);        /* leap */
	put(b, nt, 4);
	put(b, ntypes, 4);
	put(b, 4, 4);        /* chars */
	for (uint32_t i = 0; i < nt; i++)
		put(b, (uint64_t)at[i], tsz);
	for (uint32_t i = 0; i < nt; i++)
		put(b, idx[i], 1);
	for (uint32_t i = 0; i < ntypes; i++) {
		put(b, (uint32_t)offs[i], 4);
		put(b, 0, 1);
		put(b, 0, 1);
	}
	memcpy(b->d + b->n, "UTC", 4);
	b->n += 4;
}

/* Version 2 with an empty version 1 block, or version 1 (footer NULL). */
static void mk_tzif(struct tb *b, const int64_t *at, const uint8_t *idx, uint32_t nt, const int32_t *offs,
                    uint32_t ntypes, const char *footer)
{
	b->n = 0;
	if (!footer) {
		put_block(b, 0, 4, at, idx, nt, offs, ntypes);
		return;
	}
	put_block(b, '2', 4, NULL, NULL, 0, offs, 1);
	put_block(b, '2', 8, at, idx, nt, offs, ntypes);
	b->d[b->n++] = '\n';
	memcpy(b->d + b->n, footer, strlen(footer));
	b->n += strlen(footer);
	b->d[b->n++] = '\n';
}

/* Parses exactly len bytes from a heap copy, so ASan sees any read past them. */
static int parse_exact(const uint8_t *d, size_t len, struct tz *z, char *err, size_t errlen)
{
	uint8_t *c = malloc(len ? len : 1);
	assert_non_null(c);
	memcpy(c, d, len);
	int rc = tz_parse(c, len, z, err, errlen);
	free(c);
	return rc;
}

/* The footer's rules alone against the transitions zic wrote out from them, for
 * the years both cover; and footers of the other forms. */
static void footer_rules(void **st)
{
	(void)st;
	static const struct {
		const char *name;
		int from;
	} zs[] = { { "Europe/Berlin", 1997 }, { "America/New_York", 2008 }, { "Australia/Lord_Howe", 2009 },
	           { "America/Havana", 2013 } };
	char err[200];
	struct tb b;
	int32_t utc = 0;
	int checked = 0;
	for (size_t i = 0; i < sizeof(zs) / sizeof(zs[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), ZONEINFO "/%s", zs[i].name);
		size_t len;
		uint8_t *d = read_all(path, &len);
		if (!d)
			continue;
		struct tz full, rule;
		assert_int_equal(tz_parse(d, len, &full, err, sizeof(err)), 0);
		assert_true(len >= 2 && d[len - 1] == '\n');
		size_t fs = len - 1;
		while (d[fs - 1] != '\n')
			fs--;
		char footer[128];
		snprintf(footer, sizeof(footer), "%.*s", (int)(len - 1 - fs), (const char *)d + fs);
		mk_tzif(&b, NULL, NULL, 0, &utc, 1, footer);
		if (parse_exact(b.d, b.n, &rule, err, sizeof(err)) != 0)
			fail_msg("%s footer \"%s\": %s", zs[i].name, footer, err);
		int64_t last = full.n ? full.tr[full.n - 1].at : ts(2037, 1, 1, 0, 0, 0);
		for (int64_t t = ts(zs[i].from, 1, 1, 0, 0, 0); t < last; t += 1800)
			if (tz_offset(&rule, t) != tz_offset(&full, t))
				fail_msg("%s at %lld: rule %d, data %d", zs[i].name, (long long)t, tz_offset(&rule, t),
				         tz_offset(&full, t));
		tz_free(&full);
		tz_free(&rule);
		free(d);
		checked++;
	}
	if (!checked)
		print_message("rules against data skipped: no tzdata\n");

	/* Forms zic rarely writes: Jn (Feb 29 never counted), n (counted), an
	 * explicit DST offset, <...> names, times past midnight and negative. */
	const struct {
		const char *footer;
		int64_t t;
		int32_t off;
	} cases[] = {
		{ "UTC0", 1000, 0 },
		{ "<+0530>-5:30", 1000, 19800 },
		{ "<-03>3", 1000, -3 * H },
		{ "LMT-0:53:28", 1000, 3208 },
		{ "<-0025>0:25:21", 1000, -1521 },
		{ "EST5EDT,M3.2.0,M11.1.0", 1772953199, -5 * H },
		{ "EST5EDT,M3.2.0,M11.1.0", 1772953200, -4 * H },
		/* J60 is March 1st even in a leap year; 59 (zero-based) is Feb 29 in one. */
		{ "AAA0BBB,J60/0,J300/0", ts(2028, 2, 29, 23, 59, 59), 0 },
		{ "AAA0BBB,J60/0,J300/0", ts(2028, 3, 1, 0, 0, 0), H },
		{ "AAA0BBB,59/0,300/0", ts(2028, 2, 28, 23, 59, 59), 0 },
		{ "AAA0BBB,59/0,300/0", ts(2028, 2, 29, 0, 0, 0), H },
		{ "AAA0BBB-2,M3.5.0/-1,M10.5.0/26", ts(2026, 3, 28, 22, 59, 59), 0 },
		{ "AAA0BBB-2,M3.5.0/-1,M10.5.0/26", ts(2026, 3, 28, 23, 0, 0), 2 * H },
		{ "AAA0BBB-2,M3.5.0/-1,M10.5.0/26", ts(2026, 10, 26, 0, 0, 0), 0 },
		{ "AAA0BBB-2,M3.5.0/-1,M10.5.0/26", ts(2026, 10, 25, 23, 59, 59), 2 * H },
		/* Southern: DST over New Year */
		{ "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", ts(2027, 1, 1, 0, 0, 0), 11 * H },
		{ "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", ts(2026, 7, 1, 0, 0, 0), 10 * H + H / 2 },
		/* Daylight time all year (tzcode's convention) */
		{ "EST5EDT,0/0,J365/25", ts(2026, 7, 1, 0, 0, 0), -4 * H },
		{ "EST5EDT,0/0,J365/25", ts(2026, 1, 1, 12, 0, 0), -4 * H },
		{ "EST5EDT,0/0,J365/25", ts(2028, 12, 31, 12, 0, 0), -4 * H },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tz z;
		mk_tzif(&b, NULL, NULL, 0, &utc, 1, cases[i].footer);
		if (parse_exact(b.d, b.n, &z, err, sizeof(err)) != 0)
			fail_msg("\"%s\": %s", cases[i].footer, err);
		if (tz_offset(&z, cases[i].t) != cases[i].off)
			fail_msg("case %zu \"%s\": %d, want %d", i, cases[i].footer, tz_offset(&z, cases[i].t), cases[i].off);
		tz_free(&z);
	}
	static const char *const bad[] = {
		"CET", "CET-1CEST", "CE-1", "CET-25", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
		"CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,J0,J100", "CET-1CEST,366,J100",
		"CET-1CEST,M3.5.0/168,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/3x", "<+05", "<+5>-5", "CET-1:60", "CET-1 ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tz z;
		mk_tzif(&b, NULL, NULL, 0, &utc, 1, bad[i]);
		if (parse_exact(b.d, b.n, &z, err, sizeof(err)) == 0)
			fail_msg("footer \"%s\" accepted", bad[i]);
		assert_null(z.tr);
	}
	/* Far from now the rule is used modulo 400 years (146097 days): exactly, as
	 * the Gregorian calendar repeats, whether or not t had to be reduced. */
	struct tz be;
	mk_tzif(&b, NULL, NULL, 0, &utc, 1, "CET-1CEST,M3.5.0,M10.5.0/3");
	assert_int_equal(parse_exact(b.d, b.n, &be, err, sizeof(err)), 0);
	const int64_t cycle = INT64_C(146097) * 86400;
	for (int64_t t = ts(2026, 3, 29, 0, 0, 0); t < ts(2026, 3, 29, 2, 0, 0); t += 600)
		for (int64_t k = -700000000; k <= 700000000; k += k >= -10 && k < 10 ? 1 : 12345679) {
			int64_t o = tz_offset(&be, t), ok = tz_offset(&be, t + k * cycle);
			if (o != ok)
				fail_msg("t=%lld + %lld cycles: %lld, want %lld", (long long)t, (long long)k, (long long)ok, (long long)o);
		}
	tz_free(&be);
	/* An empty footer: the last transition's type holds on. Version 1: no footer. */
	int64_t at[] = { -100, 100 };
	uint8_t idx[] = { 1, 0 };
	int32_t offs[] = { 3600, -7200 };
	for (int v1 = 0; v1 <= 1; v1++) {
		struct tz z;
		mk_tzif(&b, at, idx, 2, offs, 2, v1 ? NULL : "");
		assert_int_equal(parse_exact(b.d, b.n, &z, err, sizeof(err)), 0);
		assert_int_equal(tz_offset(&z, -101), 3600);   /* before the first: type 0 */
		assert_int_equal(tz_offset(&z, -100), -7200);
		assert_int_equal(tz_offset(&z, 99), -7200);
		assert_int_equal(tz_offset(&z, 100), 3600);
		assert_int_equal(tz_offset(&z, INT64_MAX), 3600);
		assert_int_equal(tz_offset(&z, INT64_MIN), 3600);
		tz_free(&z);
	}
}

static void hostile_tzif(void **st)
{
	(void)st;
	char err[200];
	struct tb good, b;
	int64_t at[] = { -100, 100, 200 };
	uint8_t idx[] = { 1, 0, 1 };
	int32_t offs[] = { 3600, 7200 };
	mk_tzif(&good, at, idx, 3, offs, 2, "CET-1CEST,M3.5.0,M10.5.0/3");
	struct tz z;
	assert_int_equal(parse_exact(good.d, good.n, &z, err, sizeof(err)), 0);
	assert_int_equal(z.n, 3);
	tz_free(&z);
	size_t h2 = 44 + 6 + 4;   /* the second header, after the version 1 block (a type, "UTC") */

	/* Each mutation of the good file, at an offset, must be refused. */
	static const struct {
		size_t at;
		int bytes;
		uint64_t v;
		const char *why;
	} muts[] = {
		{ 0, 1, 'X', "magic" },
		{ 4, 1, '1', "version" },
		{ 32, 4, 0xffffffff, "v1 timecnt past the end" },
		{ 36, 4, 0x7fffffff, "v1 typecnt past the end" },
		{ 40, 4, 0xffffffff, "v1 charcnt past the end" },
		{ 28, 4, 0xffffffff, "v1 leapcnt past the end" },
		{ 44 + 10, 1, 'X', "second magic" },
		{ 0, 0, 0, "" },
	};
	for (size_t i = 0; muts[i].bytes; i++) {
		b = good;
		b.n = muts[i].at;
		put(&b, muts[i].v, muts[i].bytes);
		b.n = good.n;
		if (parse_exact(b.d, b.n, &z, err, sizeof(err)) == 0)
			fail_msg("%s: accepted", muts[i].why);
		assert_null(z.tr);
		assert_int_equal(tz_offset(&z, 0), 0);
	}
	/* The second header's counts: each too big for the data, alone or together. */
	for (size_t f = 20; f < 44; f += 4)
		for (int k = 0; k < 4; k++) {
			static const uint32_t big[] = { 0xffffffff, 0x80000000, 0x10000000, 4000 };
			b = good;
			b.n = h2 + f;
			put(&b, big[k], 4);
			b.n = good.n;
			if (parse_exact(b.d, b.n, &z, err, sizeof(err)) == 0)
				fail_msg("count at %zu = %u accepted", f, big[k]);
		}
	/* Semantic faults in the second block. */
	size_t d2 = h2 + 44, typ = d2 + 3 * 8 + 3;
	struct {
		size_t at;
		int bytes;
		uint64_t v;
		const char *why;
	} sem[] = {
		{ h2 + 36, 4, 0, "no types" },
		{ h2 + 40, 4, 0, "no abbreviation chars" },
		{ d2 + 8, 8, (uint64_t)-100, "transitions not ascending" },
		{ d2 + 24, 1, 2, "type index past the types" },
		{ typ, 4, 0x80000000, "offset INT32_MIN" },
		{ typ, 4, 26 * 3600 + 1, "offset past 26 h" },
		{ typ, 4, (uint32_t)-(26 * 3600 + 1), "offset past -26 h" },
		{ typ + 4, 1, 2, "isdst neither 0 nor 1" },
		{ typ + 5, 1, 4, "abbreviation index past the chars" },
		{ good.n - 1, 1, 'x', "footer not ended" },
		{ good.n - 28, 1, 'x', "footer not begun" },
	};
	for (size_t i = 0; i < sizeof(sem) / sizeof(sem[0]); i++) {
		b = good;
		b.n = sem[i].at;
		put(&b, sem[i].v, sem[i].bytes);
		b.n = good.n;
		err[0] = '\0';
		if (parse_exact(b.d, b.n, &z, err, sizeof(err)) == 0)
			fail_msg("%s: accepted", sem[i].why);
		assert_true(err[0] != '\0');
	}
	/* One indicator (isstd, isut) where there are two types, the byte there. */
	for (size_t f = 20; f <= 24; f += 4) {
		b = good;
		b.n = h2 + f;
		put(&b, 1, 4);
		size_t foot = good.n - 28;
		memmove(b.d + foot + 1, good.d + foot, 28);
		b.d[foot] = 0;
		b.n = good.n + 1;
		err[0] = '\0';
		assert_int_equal(parse_exact(b.d, b.n, &z, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "indicator"));
		put(&b, 0, 0);
		b.n = h2 + f;
		put(&b, 2, 4);   /* two: right, with the second byte */
		memmove(b.d + foot + 2, good.d + foot, 28);
		b.d[foot] = b.d[foot + 1] = 0;
		b.n = good.n + 2;
		assert_int_equal(parse_exact(b.d, b.n, &z, err, sizeof(err)), 0);
		tz_free(&z);
	}
	/* A leap-second table (right/ zones), complete: refused by name. */
	b.n = 0;
	put_block(&b, 0, 4, NULL, NULL, 0, offs, 1);
	b.n = 28;
	put(&b, 1, 4);
	b.n = 44 + 6 + 4;
	put(&b, 78796800, 4);
	put(&b, 1, 4);
	assert_int_equal(parse_exact(b.d, b.n, &z, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "leap"));
	/* Every prefix of a good file is refused, every byte of it having been needed. */
	for (size_t n = 0; n < good.n; n++)
		if (parse_exact(good.d, n, &z, err, sizeof(err)) == 0)
			fail_msg("prefix of %zu bytes accepted", n);
	/* The same of a version 1 file (no footer to miss). */
	struct tb v1;
	mk_tzif(&v1, at, idx, 3, offs, 2, NULL);
	assert_int_equal(parse_exact(v1.d, v1.n, &z, err, sizeof(err)), 0);
	tz_free(&z);
	for (size_t n = 0; n < v1.n; n++)
		if (parse_exact(v1.d, n, &z, err, sizeof(err)) == 0)
			fail_msg("prefix of %zu bytes of version 1 accepted", n);
	/* Trailing bytes after the footer are ignored. */
	b = good;
	memcpy(b.d + b.n, "junk", 4);
	b.n += 4;
	assert_int_equal(parse_exact(b.d, b.n, &z, err, sizeof(err)), 0);
	tz_free(&z);
}

/* Truncations and random corruptions of a real file: never a read out of bounds
 * (ASan), never a crash; what is accepted still answers. */
static void tzif_fuzz(void **st)
{
	(void)st;
	size_t len;
	uint8_t *d = read_all(ZONEINFO "/Europe/Berlin", &len);
	if (!d) {
		print_message("skipped: no tzdata\n");
		skip();
	}
	char err[200];
	struct tz z;
	for (size_t n = 0; n < len; n++)
		if (parse_exact(d, n, &z, err, sizeof(err)) == 0)
			fail_msg("prefix of %zu bytes accepted", n);
	assert_int_equal(parse_exact(d, len, &z, err, sizeof(err)), 0);
	tz_free(&z);
	uint8_t *m = malloc(len);
	assert_non_null(m);
	/* The second header follows the version 1 block. */
	size_t h2 = 44 + (size_t)rd32(d + 32) * 5 + (size_t)rd32(d + 36) * 6 + rd32(d + 40) + (size_t)rd32(d + 28) * 8 +
	            rd32(d + 24) + rd32(d + 20);
	assert_true(h2 + 44 < len);
	int accepted = 0;
	for (int i = 0; i < 20000; i++) {
		memcpy(m, d, len);
		int nm = 1 + (int)(rnd() % 4);
		for (int j = 0; j < nm; j++) {
			size_t at = (size_t)(rnd() % len);
			/* Half the time in the headers, where a byte moves everything after it. */
			if (rnd() & 1)
				at = (rnd() & 1 ? 20 : h2 + 20) + (size_t)(rnd() % 24);
			m[at < len ? at : len - 1] = (uint8_t)rnd();
		}
		size_t n = rnd() & 7 ? len : (size_t)(rnd() % len);
		if (parse_exact(m, n, &z, err, sizeof(err)) == 0) {
			accepted++;
			for (int j = 0; j < 16; j++) {
				int32_t o = tz_offset(&z, (int64_t)rnd());
				assert_true(o >= -TZ_OFF_MAX && o <= TZ_OFF_MAX);
			}
			/* Offsets that jump a day or more back make a date happen twice,
			 * and its span is then not one interval: only run the code. */
			for (enum win_kind k = WIN_DAY; k <= WIN_MONTH; k++) {
				struct window w = win(k, &z);
				int64_t s, e, t = (int64_t)(rnd() % (1ull << 36)) - (1ll << 35);
				window_span(&w, window_bucket(&w, t), &s, &e);
				char l[24];
				window_label(&w, window_bucket(&w, t), l, sizeof(l));
			}
			tz_free(&z);
		} else {
			assert_null(z.tr);
		}
	}
	print_message("%d of 20000 corrupted files parsed\n", accepted);
	free(m);
	free(d);
}

static void dst_days_berlin(void **st)
{
	(void)st;
	struct tz be;
	NEED_ZONE("Europe/Berlin", &be);
	struct window w = win(WIN_DAY, &be);
	int64_t s, e;
	char l[24];
	/* March 29 2026: 23 hours, from 00:00 CET (23:00 UTC the day before). */
	int64_t b = window_bucket(&w, ts(2026, 3, 29, 12, 0, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 3, 28, 23, 0, 0));
	assert_int_equal(e, ts(2026, 3, 29, 22, 0, 0));
	assert_int_equal(e - s, 23 * H);
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "d2026-03-29");
	assert_int_equal(window_bucket(&w, s - 1), b - 1);
	assert_int_equal(window_bucket(&w, e - 1), b);
	assert_int_equal(window_bucket(&w, e), b + 1);
	/* October 25 2026: 25 hours, 00:00 CEST to 00:00 CET. */
	b = window_bucket(&w, ts(2026, 10, 25, 12, 0, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 10, 24, 22, 0, 0));
	assert_int_equal(e, ts(2026, 10, 25, 23, 0, 0));
	assert_int_equal(e - s, 25 * H);
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "d2026-10-25");
	/* 01:30 UTC on the 25th is 02:30 the second time round: still the 25th. */
	assert_int_equal(window_bucket(&w, ts(2026, 10, 25, 1, 30, 0)), b);
	/* The same in 2100, from the footer's rule (past the file's transitions). */
	b = window_bucket(&w, ts(2100, 3, 28, 12, 0, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(e - s, 23 * H);
	assert_int_equal(s, ts(2100, 3, 27, 23, 0, 0));
	/* The March month is an hour short, October's an hour long. */
	w.kind = WIN_MONTH;
	window_span(&w, window_bucket(&w, ts(2026, 3, 15, 0, 0, 0)), &s, &e);
	assert_int_equal(s, ts(2026, 2, 28, 23, 0, 0));
	assert_int_equal(e - s, 31 * 86400 - H);
	window_span(&w, window_bucket(&w, ts(2026, 10, 15, 0, 0, 0)), &s, &e);
	assert_int_equal(e - s, 31 * 86400 + H);
	tz_free(&be);
}

/* Havana changes at midnight: March 8 2026 has no 00:00 (the day starts at
 * 01:00 CDT, the first instant after the gap), November 1 has two (the first
 * counts). Apia skipped December 30 2011 altogether. */
static void midnight_changes(void **st)
{
	(void)st;
	struct tz hv, ap;
	NEED_ZONE("America/Havana", &hv);
	struct window w = win(WIN_DAY, &hv);
	int64_t s, e;
	int64_t b = window_bucket(&w, ts(2026, 3, 8, 12, 0, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 3, 8, 5, 0, 0));
	assert_int_equal(e - s, 23 * H);
	window_span(&w, b - 1, &s, &e);
	assert_int_equal(e, ts(2026, 3, 8, 5, 0, 0));
	assert_int_equal(e - s, 24 * H);
	b = window_bucket(&w, ts(2026, 11, 1, 12, 0, 0));
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 11, 1, 4, 0, 0));
	assert_int_equal(e - s, 25 * H);
	assert_int_equal(window_bucket(&w, ts(2026, 11, 1, 5, 30, 0)), b);   /* 00:30 the second time */
	tz_free(&hv);

	NEED_ZONE("Pacific/Apia", &ap);
	w.tz = &ap;
	char l[24];
	b = window_bucket(&w, ts(2011, 12, 30, 9, 59, 59));
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "d2011-12-29");
	assert_int_equal(window_bucket(&w, ts(2011, 12, 30, 10, 0, 0)), b + 2);
	window_span(&w, b + 1, &s, &e);
	assert_int_equal(s, ts(2011, 12, 30, 10, 0, 0));   /* the 30th: empty */
	assert_int_equal(e, s);
	tz_free(&ap);
}

/* A hand-built zone: a gap at midnight and an overlap across it, so the rule
 * "earliest valid, else the first instant after the gap" is tested without
 * tzdata. */
static void synthetic_gaps(void **st)
{
	(void)st;
	/* Day 10 (1970-01-11): clocks jump from 23:30 to 00:30 local (+0 to +1 h) at
	 * 23:30 UTC on day 9; day 20: back from 00:30 (+1) to 23:30 (+0) at 23:30 UTC
	 * on day 19, so 23:30-00:30 happens twice. */
	struct tz_trans tr[] = { { 9 * 86400 + 23 * H + H / 2, H }, { 19 * 86400 + 23 * H + H / 2, 0 } };
	struct tz z = { .tr = tr, .n = 2 };
	struct window w = win(WIN_DAY, &z);
	int64_t s, e;
	window_span(&w, 10, &s, &e);
	assert_int_equal(s, 9 * 86400 + 23 * H + H / 2);   /* midnight skipped: from the jump */
	assert_int_equal(e, 10 * 86400 + 23 * H);
	window_span(&w, 9, &s, &e);
	assert_int_equal(s, 9 * 86400);
	assert_int_equal(e, 9 * 86400 + 23 * H + H / 2);
	window_span(&w, 20, &s, &e);
	assert_int_equal(s, 19 * 86400 + 23 * H);          /* the first of two midnights */
	assert_int_equal(e, 21 * 86400);
	window_span(&w, 19, &s, &e);
	assert_int_equal(e, 19 * 86400 + 23 * H);
	assert_int_equal(window_bucket(&w, 19 * 86400 + 23 * H + H / 2 - 1), 20);   /* 00:29:59, then back to 23:30 */
	assert_int_equal(window_bucket(&w, 19 * 86400 + 23 * H + H / 2), 19);
}

static void weeks(void **st)
{
	(void)st;
	struct window w = win(WIN_WEEK, NULL);
	int64_t s, e;
	char l[24];
	/* Thursday 1970-01-01 is in week 0, which began Monday 1969-12-29. */
	assert_int_equal(window_bucket(&w, 0), 0);
	window_span(&w, 0, &s, &e);
	assert_int_equal(s, -3 * 86400);
	assert_int_equal(e, 4 * 86400);
	assert_int_equal(window_bucket(&w, -3 * 86400), 0);
	assert_int_equal(window_bucket(&w, -3 * 86400 - 1), -1);
	window_label(&w, -1, l, sizeof(l));
	assert_string_equal(l, "w1969-12-22");
	/* Wednesday 2026-12-02: the week of Monday November 30. */
	int64_t b = window_bucket(&w, ts(2026, 12, 2, 7, 9, 20));
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "w2026-11-30");
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 11, 30, 0, 0, 0));
	assert_int_equal(e, ts(2026, 12, 7, 0, 0, 0));
	/* Sunday 23:59:59 and Monday 00:00 across a year: 2026-12-27 / 2026-12-28,
	 * 2027-01-03 / 2027-01-04 (a week across New Year is one week). */
	assert_int_equal(window_bucket(&w, ts(2027, 1, 3, 23, 59, 59)), window_bucket(&w, ts(2026, 12, 28, 0, 0, 0)));
	assert_int_equal(window_bucket(&w, ts(2027, 1, 4, 0, 0, 0)), window_bucket(&w, ts(2027, 1, 3, 23, 59, 59)) + 1);
	assert_int_equal(window_bucket(&w, ts(2026, 12, 28, 0, 0, 0)), window_bucket(&w, ts(2026, 12, 27, 23, 59, 59)) + 1);
	/* In Berlin a week starts at Monday 00:00 local: 23:00 UTC Sunday in winter. */
	struct tz be;
	NEED_ZONE("Europe/Berlin", &be);
	w.tz = &be;
	b = window_bucket(&w, ts(2026, 12, 6, 23, 0, 0));
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "w2026-12-07");
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 12, 6, 23, 0, 0));
	assert_int_equal(e - s, 7 * 86400);
	/* The week of the March change is an hour short. */
	window_span(&w, window_bucket(&w, ts(2026, 3, 25, 0, 0, 0)), &s, &e);
	assert_int_equal(s, ts(2026, 3, 22, 23, 0, 0));
	assert_int_equal(e - s, 7 * 86400 - H);
	tz_free(&be);
}

static void months(void **st)
{
	(void)st;
	struct window w = win(WIN_MONTH, NULL);
	int64_t s, e;
	char l[24];
	assert_int_equal(window_bucket(&w, 0), 0);
	assert_int_equal(window_bucket(&w, -1), -1);
	window_label(&w, -1, l, sizeof(l));
	assert_string_equal(l, "m1969-12");
	/* December to January. */
	int64_t b = window_bucket(&w, ts(2026, 12, 31, 23, 59, 59));
	assert_int_equal(b, (2026 - 1970) * 12 + 11);
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "m2026-12");
	window_span(&w, b, &s, &e);
	assert_int_equal(s, ts(2026, 12, 1, 0, 0, 0));
	assert_int_equal(e, ts(2027, 1, 1, 0, 0, 0));
	assert_int_equal(window_bucket(&w, e), b + 1);
	window_label(&w, b + 1, l, sizeof(l));
	assert_string_equal(l, "m2027-01");
	/* February: 29 days in 2028 (leap), 28 in 2100 (not), 29 in 2000 (is). */
	static const struct {
		int y, days;
	} feb[] = { { 2028, 29 }, { 2027, 28 }, { 2100, 28 }, { 2000, 29 }, { 1900, 28 }, { 1600, 29 } };
	for (size_t i = 0; i < sizeof(feb) / sizeof(feb[0]); i++) {
		b = window_bucket(&w, ts(feb[i].y, 2, 10, 0, 0, 0));
		window_span(&w, b, &s, &e);
		assert_int_equal(s, ts(feb[i].y, 2, 1, 0, 0, 0));
		assert_int_equal(e - s, feb[i].days * 86400);
	}
	assert_int_equal(window_bucket(&w, ts(2028, 2, 29, 23, 59, 59)), window_bucket(&w, ts(2028, 2, 1, 0, 0, 0)));
	assert_int_equal(window_bucket(&w, ts(2028, 3, 1, 0, 0, 0)), window_bucket(&w, ts(2028, 2, 1, 0, 0, 0)) + 1);
	/* New York's December ends at 05:00 UTC on January 1st. */
	struct tz ny;
	NEED_ZONE("America/New_York", &ny);
	w.tz = &ny;
	b = window_bucket(&w, ts(2027, 1, 1, 4, 59, 59));
	window_label(&w, b, l, sizeof(l));
	assert_string_equal(l, "m2026-12");
	window_span(&w, b, &s, &e);
	assert_int_equal(e, ts(2027, 1, 1, 5, 0, 0));
	assert_int_equal(s, ts(2026, 12, 1, 5, 0, 0));
	tz_free(&ny);
}

static void rolling(void **st)
{
	(void)st;
	struct window w = { 0 };
	char err[200], l[24];
	assert_int_equal(window_parse("rolling 24h", &w, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WIN_ROLLING);
	assert_int_equal(w.secs, 86400);
	assert_int_equal(window_nbuckets(&w), WIN_BUCKETS);
	/* 2 h buckets. */
	assert_int_equal(window_bucket(&w, 0), 0);
	assert_int_equal(window_bucket(&w, 7199), 0);
	assert_int_equal(window_bucket(&w, 7200), 1);
	assert_int_equal(window_bucket(&w, -1), -1);
	assert_int_equal(window_bucket(&w, -7200), -1);
	assert_int_equal(window_bucket(&w, -7201), -2);
	int64_t s, e;
	window_span(&w, -1, &s, &e);
	assert_int_equal(s, -7200);
	assert_int_equal(e, 0);
	int64_t now = ts(2026, 12, 2, 7, 9, 20), b = window_bucket(&w, now);
	window_span(&w, b, &s, &e);
	assert_true(s <= now && now < e && e - s == 7200 && s % 7200 == 0);
	window_label(&w, b, l, sizeof(l));
	char want[24];
	snprintf(want, sizeof(want), "r%lld", (long long)(now / 7200));
	assert_string_equal(l, want);
	window_label(&w, -5, l, sizeof(l));
	assert_string_equal(l, "r-5");
	/* A zone changes nothing for rolling windows. */
	struct tz z;
	assert_int_equal(tz_fixed("+05:30", &z, err, sizeof(err)), 0);
	w.tz = &z;
	assert_int_equal(window_bucket(&w, now), b);
	static const struct {
		const char *spec;
		int64_t secs;
	} ok[] = { { "rolling 7d", 7 * 86400 }, { "rolling 60s", 60 }, { "rolling 12s", 12 }, { "rolling 1m", 60 },
	           { "rolling 400d", 400 * 86400 }, { "rolling  5m", 300 }, { "rolling 0000001h", 3600 } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (window_parse(ok[i].spec, &w, err, sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].spec, err);
		assert_int_equal(w.secs, ok[i].secs);
		assert_ptr_equal(w.tz, &z);   /* left alone */
		for (int k = 0; k < 1000; k++) {
			int64_t t = (int64_t)rnd() >> (rnd() % 40);
			window_span(&w, window_bucket(&w, t), &s, &e);
			assert_true(s <= t && t < e && e - s == ok[i].secs / WIN_BUCKETS);
		}
	}
	/* 60s: 5 s buckets. */
	assert_int_equal(window_parse("rolling 60s", &w, err, sizeof(err)), 0);
	assert_int_equal(window_bucket(&w, 4), 0);
	assert_int_equal(window_bucket(&w, 5), 1);
	/* Extremes, without overflow (UBSan watches). */
	assert_int_equal(window_bucket(&w, INT64_MIN), INT64_MIN / 5 - 1);
	assert_int_equal(window_bucket(&w, INT64_MAX), INT64_MAX / 5);
	window_span(&w, INT64_MAX, &s, &e);
	assert_int_equal(s, INT64_MAX);
	window_span(&w, INT64_MIN, &s, &e);
	assert_int_equal(s, INT64_MIN);
	/* A struct filled by hand with a length under 12 s still has 1 s buckets. */
	w.secs = 0;
	assert_int_equal(window_bucket(&w, -3), -3);
	tz_free(&z);
}

static void parse_windows(void **st)
{
	(void)st;
	struct window w;
	char err[200];
	memset(&w, 0, sizeof(w));
	assert_int_equal(window_parse("day", &w, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WIN_DAY);
	assert_int_equal(window_nbuckets(&w), 1);
	assert_null(w.tz);
	assert_int_equal(window_parse("week", &w, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WIN_WEEK);
	assert_int_equal(window_parse("month", &w, err, sizeof(err)), 0);
	assert_int_equal(w.kind, WIN_MONTH);
	assert_int_equal(w.secs, 0);
	assert_int_equal(window_nbuckets(&w), 1);
	static const struct {
		const char *spec, *says;
	} bad[] = {
		{ "", "\"rolling <N><s|m|h|d>\"" },
		{ "Day", "\"day\"" },
		{ "days", "\"week\"" },
		{ " day", "\"month\"" },
		{ "day ", "\"day\"" },
		{ "rolling", "rolling <N>" },
		{ "rolling ", "rolling <N>" },
		{ "rolling 24", "rolling <N>" },
		{ "rolling h", "rolling <N>" },
		{ "rolling -1h", "rolling <N>" },
		{ "rolling 1.5h", "rolling <N>" },
		{ "rolling 24h ", "rolling <N>" },
		{ "rolling 24hh", "rolling <N>" },
		{ "rolling 24w", "rolling <N>" },
		{ "rolling24h", "rolling <N>" },
		{ "rolling 0s", "12s to 400d" },
		{ "rolling 1s", "12s to 400d" },
		{ "rolling 11s", "12s to 400d" },
		{ "rolling 401d", "12s to 400d" },
		{ "rolling 9601h", "12s to 400d" },
		{ "rolling 99999999999999999999999d", "12s to 400d" },
		{ "rolling 13s", "multiple of 12" },
		{ "rolling 25s", "multiple of 12" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct window before = { .kind = WIN_WEEK, .secs = 77, .tz = (const struct tz *)&w };
		struct window x = before;
		err[0] = '\0';
		if (window_parse(bad[i].spec, &x, err, sizeof(err)) == 0)
			fail_msg("\"%s\" accepted", bad[i].spec);
		if (!strstr(err, bad[i].says))
			fail_msg("\"%s\": error \"%s\" does not say %s", bad[i].spec, err, bad[i].says);
		assert_memory_equal(&x, &before, sizeof(x));
	}
	assert_int_equal(window_parse(NULL, &w, err, sizeof(err)), -1);
	/* A tiny error buffer truncates, NUL-terminated. */
	char tiny[8];
	assert_int_equal(window_parse("bogus", &w, tiny, sizeof(tiny)), -1);
	assert_int_equal(strlen(tiny), 7);
}

/* For every kind and zone, over random instants and every transition: the
 * bucket's span holds the instant, begins its bucket and ends where the next
 * bucket begins. Not for zones whose clocks once went back a whole day (Apia in
 * 1892, Alaska in 1867): a date that happens twice is not one interval. */
static void spans_hold_their_instants(void **st)
{
	(void)st;
	static const char *const names[] = { "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana",
	                                     "Asia/Kolkata", "Pacific/Chatham", "Europe/Dublin", "Antarctica/Troll" };
	struct tz zones[16];
	int nz = 0;
	char err[200];
	memset(&zones[nz], 0, sizeof(zones[nz]));   /* UTC */
	nz++;
	assert_int_equal(tz_fixed("-09:30", &zones[nz++], err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (zone(names[i], &zones[nz]))
			nz++;
	if (nz == 2)
		print_message("real zones skipped: no tzdata\n");
	for (int zi = 0; zi < nz; zi++) {
		const struct tz *z = &zones[zi];
		for (enum win_kind k = WIN_DAY; k <= WIN_MONTH; k++) {
			struct window w = win(k, z);
			for (size_t i = 0; i < 4000 + 4 * z->n; i++) {
				int64_t t;
				if (i < 4000)
					t = ts(1850, 1, 1, 0, 0, 0) + (int64_t)(rnd() % (uint64_t)(ts(2300, 1, 1, 0, 0, 0) - ts(1850, 1, 1, 0, 0, 0)));
				else
					t = z->tr[(i - 4000) / 4].at + (int64_t)((i - 4000) % 4) * 1800 - 3600;
				int64_t b = window_bucket(&w, t), s, e;
				window_span(&w, b, &s, &e);
				if (!(s <= t && t < e))
					fail_msg("zone %d kind %d t=%lld: bucket %lld is [%lld, %lld)", zi, k, (long long)t, (long long)b,
					         (long long)s, (long long)e);
				assert_int_equal(window_bucket(&w, s), b);
				assert_true(window_bucket(&w, s - 1) < b);
				assert_true(window_bucket(&w, e) > b);
				if (k == WIN_DAY)
					assert_true(e - s >= 21 * H && e - s <= 27 * H);
			}
		}
	}
	/* Instants at the ends of int64_t: no overflow (UBSan), labels fit 24 bytes,
	 * spans saturate rather than wrap. */
	static const int64_t far[] = { INT64_MIN, INT64_MIN + 1, -(INT64_C(1) << 62), -(INT64_C(1) << 61),
	                               (INT64_C(1) << 61), (INT64_C(1) << 62), INT64_MAX - 1, INT64_MAX };
	for (int zi = 0; zi < nz; zi++)
		for (enum win_kind k = WIN_DAY; k <= WIN_ROLLING; k++) {
			struct window w = win(k, &zones[zi]);
			w.secs = k == WIN_ROLLING ? 86400 : 0;
			for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
				int64_t b = window_bucket(&w, far[i]), s, e;
				window_span(&w, b, &s, &e);
				assert_true(s <= e);
				if (far[i] > -(INT64_C(1) << 62) && far[i] < (INT64_C(1) << 62))
					assert_true(s <= far[i] && far[i] < e);
				char l[24];
				size_t n = window_label(&w, b, l, sizeof(l));
				assert_int_equal(n, strlen(l));
				assert_true(n < 23 || k == WIN_ROLLING);
			}
			static const int64_t fb[] = { INT64_MIN, INT64_MAX, INT64_MAX / 7, INT64_MIN / 12 };
			for (size_t i = 0; i < sizeof(fb) / sizeof(fb[0]); i++) {
				int64_t s, e;
				window_span(&w, fb[i], &s, &e);
				assert_true(s <= e);
				char l[24];
				assert_true(window_label(&w, fb[i], l, sizeof(l)) < sizeof(l));
			}
		}
	for (int zi = 0; zi < nz; zi++)
		tz_free(&zones[zi]);
}

static void load_names(void **st)
{
	(void)st;
	char err[300];
	struct tz z;
	static const char *const bad[] = { "", "../etc/passwd", "Europe/../../etc/passwd", "/etc/passwd", "Europe/Ber lin",
	                                   "Europe\\Berlin", "Europe/Berlin\n", "Europe/Berlin;rm", "~root", "a..b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (tz_load(bad[i], &z, err, sizeof(err)) == 0)
			fail_msg("\"%s\" loaded", bad[i]);
		assert_non_null(strstr(err, "time zone"));
	}
	assert_int_equal(tz_load("+05:30", &z, err, sizeof(err)), 0);
	assert_int_equal(tz_offset(&z, 0), 19800);
	assert_int_equal(tz_load("UTC", &z, err, sizeof(err)), 0);
	assert_int_equal(tz_offset(&z, 0), 0);
	assert_int_equal(tz_load("+25:00", &z, err, sizeof(err)), -1);

	/* $TZDIR: a zone of our own there; a missing one and a directory refused. */
	char dir[] = "/tmp/test_window.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[512];
	snprintf(path, sizeof(path), "%s/My", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/My/Zone_1", dir);
	struct tb b;
	int32_t off = -3 * H;
	mk_tzif(&b, NULL, NULL, 0, &off, 1, "<-03>3");
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b.d, 1, b.n, f), b.n);
	fclose(f);
	setenv("TZDIR", dir, 1);
	if (tz_load("My/Zone_1", &z, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(tz_offset(&z, 0), -3 * H);
	tz_free(&z);
	assert_int_equal(tz_load("My/Nothing", &z, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no such zone"));
	assert_int_equal(tz_load("My", &z, err, sizeof(err)), -1);
	unsetenv("TZDIR");
	unlink(path);
	snprintf(path, sizeof(path), "%s/My", dir);
	rmdir(path);
	rmdir(dir);

	if (access(ZONEINFO "/Europe/Berlin", R_OK) != 0) {
		print_message("Europe/Berlin from " ZONEINFO " skipped: no tzdata\n");
		return;
	}
	assert_int_equal(tz_load("Europe/Berlin", &z, err, sizeof(err)), 0);
	assert_int_equal(tz_offset(&z, 1774746000), 7200);
	tz_free(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixed_offsets),
		cmocka_unit_test(real_zones),
		cmocka_unit_test(zones_agree_with_glibc),
		cmocka_unit_test(footer_rules),
		cmocka_unit_test(hostile_tzif),
		cmocka_unit_test(tzif_fuzz),
		cmocka_unit_test(dst_days_berlin),
		cmocka_unit_test(midnight_changes),
		cmocka_unit_test(synthetic_gaps),
		cmocka_unit_test(weeks),
		cmocka_unit_test(months),
		cmocka_unit_test(rolling),
		cmocka_unit_test(parse_windows),
		cmocka_unit_test(spans_hold_their_instants),
		cmocka_unit_test(load_names),
	};
	return cmocka_run_group_tests_name("window", tests, NULL, NULL);
}
