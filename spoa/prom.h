/* prom.h: metrics for Prometheus: a registry per worker, and the text exposition
 * format 0.0.4 that a scrape reads from all of them.
 *
 * Each worker records into its own registry, where it is the only writer: values
 * are atomics it loads and stores (no read-modify-write, no lock), and a new
 * series is published by a release store of its hash once its labels are
 * written. A scrape, on another thread, reads every registry, sums the series
 * that carry the same labels, and writes the text. Counters and histogram
 * buckets are per worker and summed at scrape time; so are gauges (the one gauge,
 * connections, carries a worker label).
 *
 * Cardinality is bounded like statsd's tags (tagbound.h), for the process's life
 * since counters live that long: a caller-given value (model, agent id) longer
 * than max_id_len is "too_long", and past max_tag_values distinct values per kind
 * it is "other". The series table is bounded too: once PROM_OPEN_SERIES series
 * exist, a new series has its caller-given labels reported as "other"; an update
 * that still finds no room is dropped and counted (spoa_metrics_dropped_total).
 *
 * Pure: no I/O; rendering allocates its output. */
#ifndef SPOA_PROM_H
#define SPOA_PROM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "spop.h"
#include "tagbound.h"

struct buf;     /* buf.h */
struct cJSON;

struct prom_cfg {
	bool enabled;
	char addr_text[128];
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned max_tag_values;   /* distinct models, and agent ids, per worker */
	unsigned max_id_len;
};

void prom_cfg_defaults(struct prom_cfg *c);
/* Applies the config's "prometheus" object over c. Returns 0, or -1 with err set
 * ("prometheus.listen: ..."). */
int prom_cfg_apply_json(struct prom_cfg *c, const struct cJSON *obj, char *err, size_t errlen);

/* The metrics, by the order of their labels in prom.c's table. */
enum prom_metric {
	PM_LLM_REQUESTS,       /* provider, model, agent_id, verdict, reason, stream */
	PM_DECISION_TIME,      /* message (histogram, seconds) */
	PM_AGENT_RUNS,         /* external_agent_id (counted by prom_run) */
	PM_HEADER_REJECTIONS,  /* header, action */
	PM_TRUNCATED_BODIES,   /* provider, verdict */
	PM_UPSTREAM_STATUS,    /* provider, model, status */
	PM_TOKENS,             /* provider, model, agent_id, type */
	PM_COST,               /* provider, model, agent_id */
	PM_REQUEST_DURATION,   /* provider, model (histogram, seconds) */
	PM_PROTOCOL_ERRORS,    /* status */
	PM_CONNECTIONS,        /* worker (gauge) */
	PM_SHADOW_DENIALS,     /* rule, provider */
	PM_DLP_DETECTIONS,     /* detector, action, provider */
	PM_BLOCKED_TOOLS,      /* provider, model, agent_id, rule */
	PM_METER_RECORDS,      /* outcome */
	PM_TTFT,               /* provider, model (histogram, seconds) */
	PM_METRICS
};

#define PROM_SLOTS        4096          /* series table per worker (open addressing) */
#define PROM_OPEN_SERIES  2560          /* past this, caller-given labels become "other" */
#define PROM_MAX_SERIES   3072          /* past this, updates to new series are dropped */
#define PROM_HISTS        512           /* histogram series per worker */
#define PROM_MAX_BUCKETS  12            /* finite buckets of a histogram; +Inf is one more */
#define PROM_TEXT         (512 * 1024)  /* label text per worker */
#define PROM_RUN_SETS     1024          /* recent run ids per worker: 4 per set */

struct prom_series {
	_Atomic uint64_t h;        /* 0: empty; stored (release) once the rest is written */
	uint32_t text;             /* its labels, escaped, at the registry's text[text] */
	uint16_t text_len;
	uint8_t metric;
	uint16_t hist;             /* a histogram's buckets: hist[hist] */
	_Atomic double v;          /* a counter's or gauge's value; a histogram's sum */
};

struct prom_reg {
	const struct prom_cfg *cfg;
	unsigned nseries, nhist;
	size_t text_len;
	_Atomic uint64_t dropped;
	struct tagbound bound;
	uint64_t runs[PROM_RUN_SETS][4];   /* (agent, run id) hashes, newest first per set */
	struct prom_series slot[PROM_SLOTS];
	_Atomic uint64_t hist[PROM_HISTS][PROM_MAX_BUCKETS + 1];   /* per bucket, not cumulative; last: +Inf */
	char text[PROM_TEXT];
};

/* A zeroed registry (about 1 MB of address space, touched as series come), or
 * NULL when out of memory. */
struct prom_reg *prom_reg_new(const struct prom_cfg *cfg);
void prom_reg_free(struct prom_reg *r);

/* Adds v to a counter, sets a gauge to v, or observes v in a histogram: what
 * metric m is. labels are its n label values, in the table's order. A NULL
 * registry records nothing. Called by the registry's one writer only. */
void prom_record(struct prom_reg *r, enum prom_metric m, double v, const struct spop_slice *labels, int n);

/* agent_runs_total: counts run for agent if this registry does not remember the
 * pair among the last ones it saw (4 per set of PROM_RUN_SETS). */
void prom_run(struct prom_reg *r, struct spop_slice agent, struct spop_slice run);

/* Appends the exposition text of n registries (their series summed by labels) to
 * out. Safe while their writers record. Returns 0, or -1 when out of memory. */
int prom_render(struct prom_reg *const *regs, int n, struct buf *out);

/* Writes v as a label value, NUL-terminated: \ " and newline escaped as the
 * format says; bytes that are not UTF-8, and other control characters, as '_'.
 * Returns its length, or PROM_NO_ROOM when it does not fit in room. */
#define PROM_NO_ROOM ((size_t)-1)
size_t prom_escape(char *dst, size_t room, struct spop_slice v);

/* A scrape connection's request, from the bytes read so far. */
enum prom_route {
	PROM_MORE,        /* the head has not ended yet */
	PROM_METRICS,     /* GET /metrics (any query) */
	PROM_NOT_FOUND,   /* any other method or path */
	PROM_BAD,         /* not HTTP, or a head over PROM_REQ_MAX */
};
#define PROM_REQ_MAX 4096
enum prom_route prom_route(const char *req, size_t len);

#endif
