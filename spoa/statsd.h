/* statsd.h: metrics to a statsd collector over UDP, one sender per worker loop.
 *
 * Counters, gauges and sets are aggregated per flush interval in the sender
 * (one line per series, like DogStatsD's client-side aggregation), so a busy
 * agent formats and sends a few lines per 100 ms, not several per call; timers
 * are sampled (1 in timer_sample, sent with |@rate so the collector scales
 * counts). Lines are batched into datagrams of at most max_payload bytes; the
 * worker flushes every flush_ms and on shutdown. Sending never blocks and never fails a
 * decision: a datagram the socket refuses is dropped and counted. Two tag styles:
 * DogStatsD (`name:1|c|#provider:openai`) and dotted names for plain statsd
 * (`name.provider.openai:1|c`). Tag values from callers (agent ids, models) are
 * bounded: longer than max_id_len becomes "too_long", and past max_tag_values
 * distinct values per key in a window, "other". Formatting is pure; the only I/O
 * is the sink, a send(2) on a connected UDP socket unless a test sets its own. */
#ifndef SPOA_STATSD_H
#define SPOA_STATSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "spop.h"
#include "tagbound.h"

enum statsd_style { STATSD_DOGSTATSD = 0, STATSD_DOTTED };

struct statsd_cfg {
	bool enabled;
	char addr_text[128];
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char prefix[64];
	enum statsd_style style;
	size_t max_payload;        /* bytes per datagram (1432 fits a 1500 MTU) */
	unsigned flush_ms;
	unsigned max_tag_values;   /* distinct values per bounded tag key per window */
	unsigned max_id_len;
	unsigned window_s;
	unsigned timer_sample;     /* send 1 timing in N */
};

void statsd_cfg_defaults(struct statsd_cfg *c);

struct cJSON;
/* Applies the config's "statsd" object over c. Returns 0, or -1 with err set
 * ("statsd.flush_ms: ..."); nothing is allocated. */
int statsd_cfg_apply_json(struct statsd_cfg *c, const struct cJSON *obj, char *err, size_t errlen);

struct statsd_tag {
	const char *key;
	struct spop_slice val;
	bool bounded;              /* caller-controlled value: apply the cardinality bounds */
};

#define STATSD_AGG_SLOTS    1024   /* series per flush interval; more go out unaggregated */
#define STATSD_AGG_TEXT     360

/* One aggregated series: the line is head + value + tail. */
struct statsd_series {
	uint64_t h;                 /* 0: empty */
	double v;
	char type;                  /* 'c', 'g', 's' */
	uint16_t head, tail;
	char text[STATSD_AGG_TEXT];
};

typedef void (*statsd_sink)(void *arg, const uint8_t *data, size_t len);

struct statsd {
	const struct statsd_cfg *cfg;
	int fd;
	statsd_sink sink;
	void *sink_arg;
	uint8_t buf[65536];
	size_t len;
	uint64_t datagrams, dropped, lines;
	uint64_t timings;           /* for sampling */
	unsigned nseries;
	uint16_t order[STATSD_AGG_SLOTS];   /* used slots, in first-seen order */
	struct statsd_series agg[STATSD_AGG_SLOTS];
	struct tagbound seen;       /* values per bounded key in this window */
};

/* Opens the UDP socket (non-blocking, connected) when enabled. Returns 0 or -1
 * with err set. A disabled sender accepts metrics and discards them. */
int statsd_open(struct statsd *s, const struct statsd_cfg *cfg, char *err, size_t errlen);
void statsd_close(struct statsd *s);

/* Counters add up and gauges keep their last value until the next flush; a set
 * member is sent once per flush; timings are sampled. A NULL or disabled sender
 * takes them and does nothing. */
void statsd_count(struct statsd *s, const char *name, double n, const struct statsd_tag *tags, int ntags);
void statsd_gauge(struct statsd *s, const char *name, double v, const struct statsd_tag *tags, int ntags);
void statsd_set(struct statsd *s, const char *name, struct spop_slice member, const struct statsd_tag *tags, int ntags);
void statsd_timing_us(struct statsd *s, const char *name, int64_t us, const struct statsd_tag *tags, int ntags);
/* Will the next statsd_timing_us be sent (sampling)? Lets callers skip reading
 * the clock for timings that would be dropped. */
bool statsd_timing_due(const struct statsd *s);

/* Formats the aggregated series and sends everything queued. */
void statsd_flush(struct statsd *s);
/* Starts a new cardinality window. */
void statsd_new_window(struct statsd *s);

#endif
