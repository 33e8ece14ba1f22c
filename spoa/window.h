/* window.h: budget windows, the periods a cost limit counts over. Pure (but
 * tz_load, in tzload.c).
 *
 * A calendar window ("day", "week", "month") resets at local midnight in a time
 * zone; a rolling one ("rolling 24h") is WIN_BUCKETS buckets, summed over the last
 * WIN_BUCKETS of them. Either way a call is counted in one bucket, named by an
 * integer (window_bucket) and a label (window_label) that Redis keys can use.
 *
 * Local time is computed here, from the zone's TZif data, not with localtime():
 * that reads the process's TZ, takes a lock and is not this module's to call
 * per request. Dates are proleptic Gregorian (Howard Hinnant's civil-from-days
 * algorithms), so any int64_t instant has a bucket and nothing overflows. */
#ifndef SPOA_WINDOW_H
#define SPOA_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No zone is further than this from UTC (tz_parse and tz_fixed refuse more);
 * local-time searches look this far either side. */
#define TZ_OFF_MAX (26 * 3600)

/* One date of a POSIX TZ rule ("M3.5.0/3", "J60", "59"). */
struct tz_date {
	char kind;           /* 'J': day 1..365, Feb 29 never counted; 'D': day 0..365; 'M': month.week.weekday */
	uint8_t month, week; /* 'M': 1..12, 1..5 (5: the last) */
	int16_t day;         /* 'J' and 'D': the day; 'M': weekday, 0 (Sunday)..6 */
	int32_t secs;        /* local time of the change, -167 h..167 h (RFC 8536 allows past midnight) */
};

/* The footer's rule, for instants after the last transition. */
struct tz_rule {
	int32_t std_off, dst_off;   /* seconds east of UTC */
	bool has_dst;               /* else std_off always */
	struct tz_date start, end;  /* start in standard local time, end in daylight local time */
};

struct tz_trans {
	int64_t at;                 /* unix time */
	int32_t off;                /* seconds east of UTC from at on */
};

/* Time zones: offsets from UTC over time, from a TZif file (RFC 8536 v1, v2+: the
 * 64-bit section and the footer's TZ string) or a fixed offset. Owned by whoever
 * filled it (tz_free); a struct copy shares tr, so free one copy only. A zeroed
 * struct tz is UTC. */
struct tz {
	struct tz_trans *tr;        /* strictly ascending; malloc'd */
	size_t n;
	int32_t off0;               /* before the first transition, or always without any and without a rule */
	bool has_rule;              /* rule governs after the last transition (all times when n is 0) */
	struct tz_rule rule;
};

/* Reads a TZif file. Overwrites out (free an old one first). Returns 0, or -1 with
 * err set and out zeroed: malformed or truncated data, leap-second ("right/")
 * zones, a footer this module cannot read. Never reads outside data[0..len). */
int tz_parse(const uint8_t *data, size_t len, struct tz *out, char *err, size_t errlen);
/* "UTC", "Z", "+05:30", "-08:00", "+0100", "+05". Overwrites out. Returns 0 or -1 with err. */
int tz_fixed(const char *spec, struct tz *out, char *err, size_t errlen);
/* Frees and zeroes z (UTC again); safe on a zeroed struct. */
void tz_free(struct tz *z);
/* Seconds east of UTC at unix time t; NULL and a zeroed struct are UTC. */
int32_t tz_offset(const struct tz *z, int64_t t);

/* In tzload.c (reads files): name is "UTC", a fixed offset as tz_fixed takes, or
 * an IANA name ("Europe/Berlin") read from $TZDIR or /usr/share/zoneinfo. Names
 * with "..", a leading '/' or characters outside [A-Za-z0-9_+/-] are refused.
 * Overwrites out. Returns 0, or -1 with err ("time zone \"X\": ..."). */
int tz_load(const char *name, struct tz *out, char *err, size_t errlen);

enum win_kind { WIN_DAY, WIN_WEEK, WIN_MONTH, WIN_ROLLING };

#define WIN_BUCKETS 12               /* a rolling window is 12 buckets */
#define WIN_ROLLING_MIN WIN_BUCKETS  /* seconds */
#define WIN_ROLLING_MAX (400 * 86400)

struct window {
	enum win_kind kind;
	int64_t secs;             /* WIN_ROLLING: the window's length; a bucket is secs / WIN_BUCKETS */
	const struct tz *tz;      /* calendar windows: NULL is UTC; not owned */
	uint64_t uid;             /* window_parse's: names it in each thread's cache of the current
	                           * calendar bucket; 0 (a struct filled by hand): not cached */
};

/* "day", "week" (ISO: from Monday 00:00), "month", "rolling <N><s|m|h|d>" ("rolling
 * 24h", "rolling 7d", "rolling 60s"): a multiple of WIN_BUCKETS seconds, 12 s to
 * 400 d. Returns 0, or -1 with err saying what is accepted (w untouched). Sets kind
 * and secs (0 for calendar windows), never w->tz. */
int window_parse(const char *spec, struct window *w, char *err, size_t errlen);
/* 1 for calendar windows, WIN_BUCKETS for rolling ones. */
int window_nbuckets(const struct window *w);
/* The bucket unix time now falls in. Calendar: the window's ordinal in local time
 * (days since 1970-01-01; ISO weeks since Monday 1969-12-29; months since 1970-01);
 * rolling: floor(now / (secs / WIN_BUCKETS)). Any now, negative or huge. */
int64_t window_bucket(const struct window *w, int64_t now);
/* [*start, *end) of bucket b in unix seconds. Calendar buckets start at local
 * midnight, so a day may be 23 or 25 hours; a midnight that a DST change skips
 * starts at the first instant after the gap, and one that happens twice at the
 * first. (A whole date that happened twice, Apia's 4 July 1892, ends where the
 * next date first began: its second pass is outside.) Buckets more than about
 * 10^11 years from 1970 saturate to INT64_MIN or INT64_MAX. */
void window_span(const struct window *w, int64_t b, int64_t *start, int64_t *end);
/* A label for bucket b, for humans and Redis keys: "d2026-12-02", "w2026-11-30"
 * (its Monday), "m2026-12", "r<b>". Writes at most cap bytes, NUL-terminated
 * (24 bytes fit the label of any bucket window_bucket returns); returns the
 * length written. */
size_t window_label(const struct window *w, int64_t b, char *out, size_t cap);

#endif
