/* prom.c: see prom.h. */
#include "prom.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfgjson.h"
#include "chars.h"
#include "config.h"
#include "fasthash.h"

/* ---- the metrics ---- */

enum prom_type { PT_COUNTER, PT_GAUGE, PT_HISTOGRAM };

/* The set a caller-given label's values are bounded in: agent_id and
 * external_agent_id hold the same ids, so they share one. */
static const char BOUND_MODEL[] = "model", BOUND_AGENT[] = "agent";

struct label_def {
	const char *name;
	const char *bound;         /* NULL: the value comes from the agent or its config */
};

struct metric_def {
	const char *name, *help;
	enum prom_type type;
	int nlabels;
	struct label_def labels[6];
	const double *buckets;     /* histograms: upper bounds, ascending */
	int nbuckets;
};

#define MODEL { "model", BOUND_MODEL }
#define AGENT { "agent_id", BOUND_AGENT }

/* Seconds: the agent decides in microseconds, LLM calls take seconds. */
static const double decision_buckets[] = { 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	                                   0.001,   0.0025,   0.005,   0.01,   0.025,   0.1 };
static const double call_buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300 };
static const double ttft_buckets[] = { 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30 };
#define BUCKETS(b) b, (int)(sizeof(b) / sizeof(b[0]))
_Static_assert(sizeof(decision_buckets) / sizeof(double) <= PROM_MAX_BUCKETS, "PROM_MAX_BUCKETS");
_Static_assert(sizeof(call_buckets) / sizeof(double) <= PROM_MAX_BUCKETS, "PROM_MAX_BUCKETS");
_Static_assert(sizeof(ttft_buckets) / sizeof(double) <= PROM_MAX_BUCKETS, "PROM_MAX_BUCKETS");

static const struct metric_def defs[PM_METRICS] = {
	[PM_LLM_REQUESTS] = { "llm_requests_total", "LLM calls the agent decided, by verdict and reason.", PT_COUNTER, 6,
	                      { { "provider", NULL }, MODEL, AGENT, { "verdict", NULL }, { "reason", NULL },
	                        { "stream", NULL } } },
	[PM_DECISION_TIME] = { "spoa_decision_time_seconds", "Time the agent took to decide (req: a request, res: a response).",
	                       PT_HISTOGRAM, 1, { { "message", NULL } }, BUCKETS(decision_buckets) },
	[PM_AGENT_RUNS] = { "agent_runs_total",
	                    "Run ids (X-Archestra-Run-Id or -Execution-Id) a worker saw for the first time among those it "
	                    "remembers (the last 4 per set of 1024); an upper bound of distinct runs.",
	                    PT_COUNTER, 1, { { "external_agent_id", BOUND_AGENT } } },
	[PM_HEADER_REJECTIONS] = { "spoa_header_rejections_total", "Invalid identity headers, rejected or dropped.",
	                           PT_COUNTER, 2, { { "header", NULL }, { "action", NULL } } },
	[PM_TRUNCATED_BODIES] = { "spoa_truncated_bodies_total", "Request bodies larger than HAProxy buffered.", PT_COUNTER, 2,
	                          { { "provider", NULL }, { "verdict", NULL } } },
	[PM_UPSTREAM_STATUS] = { "llm_upstream_status_total", "Provider responses, by HTTP status.", PT_COUNTER, 3,
	                         { { "provider", NULL }, MODEL, { "status", NULL } } },
	[PM_TOKENS] = { "llm_tokens_total", "Tokens used, as the provider's response reports them.", PT_COUNTER, 4,
	                { { "provider", NULL }, MODEL, AGENT, { "type", NULL } } },
	[PM_COST] = { "llm_cost_total", "Estimated cost in USD, from the price table.", PT_COUNTER, 3,
	              { { "provider", NULL }, MODEL, AGENT } },
	[PM_REQUEST_DURATION] = { "llm_request_duration_seconds", "Whole calls, from the request to the response's last byte (HAProxy's %Ta).",
	                          PT_HISTOGRAM, 2, { { "provider", NULL }, MODEL }, BUCKETS(call_buckets) },
	[PM_PROTOCOL_ERRORS] = { "spoa_protocol_errors_total", "SPOP connections closed with an error status.", PT_COUNTER,
	                         1, { { "status", NULL } } },
	[PM_CONNECTIONS] = { "spoa_connections", "Open SPOP connections.", PT_GAUGE, 1, { { "worker", NULL } } },
	[PM_SHADOW_DENIALS] = { "policy_shadow_denials_total", "Calls a shadow rule would have denied.", PT_COUNTER, 2,
	                        { { "rule", NULL }, { "provider", NULL } } },
	[PM_DLP_DETECTIONS] = { "dlp_detections_total", "Requests in which a DLP detector matched.", PT_COUNTER, 3,
	                        { { "detector", NULL }, { "action", NULL }, { "provider", NULL } } },
	[PM_BLOCKED_TOOLS] = { "llm_blocked_tools_total", "Responses refused for a tool call.", PT_COUNTER, 4,
	                       { { "provider", NULL }, MODEL, AGENT, { "rule", NULL } } },
	[PM_TTFT] = { "llm_time_to_first_token_seconds", "Streamed calls: from the request sent upstream to the first byte of the events.",
	              PT_HISTOGRAM, 2, { { "provider", NULL }, MODEL }, BUCKETS(ttft_buckets) },
	[PM_METER_RECORDS] = { "spoa_meter_records_total", "End-of-call records from HAProxy: read, refused (malformed) or dropped (queue full).",
	                       PT_COUNTER, 1, { { "outcome", NULL } } },
};

static const char dropped_name[] = "spoa_metrics_dropped_total";

/* ---- config ---- */

void prom_cfg_defaults(struct prom_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->max_tag_values = 100;
	c->max_id_len = 64;
}

int prom_cfg_apply_json(struct prom_cfg *c, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const keys[] = { "listen", "enabled", "max_tag_values", "max_id_len", NULL };
	static const char want_addr[] = "expected HOST:PORT or [IPV6]:PORT, like \"127.0.0.1:9464\"";
	bool enabled = true;
	const cJSON *it;
	if (cfg_object(obj, NULL, "prometheus", 0, keys, NULL, err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, obj) {
		const char *k = it->string;
		struct listen_addr la;
		char e[CONFIG_ERR_LEN];
		int64_t v;
		switch (cfg_lookup(k, keys)) {
		case 0:
			if (!cJSON_IsString(it) || config_parse_listen(it->valuestring, &la, e, sizeof(e)) < 0 || la.is_unix)
				return cfg_fail(err, errlen, "prometheus", k, "%s", want_addr);
			c->addr = la.ss;
			c->addr_len = la.sslen;
			snprintf(c->addr_text, sizeof(c->addr_text), "%s", la.text);
			break;
		case 1:
			if (cfg_bool(it, "prometheus", k, 0, &enabled, NULL, err, errlen) < 0)
				return -1;
			break;
		case 2:
			if (cfg_int(it, "prometheus", k, 0, 1, TAGBOUND_SLOTS / 2, &v, NULL, err, errlen) < 0)
				return -1;
			c->max_tag_values = (unsigned)v;
			break;
		default:
			if (cfg_int(it, "prometheus", k, 0, 8, 256, &v, NULL, err, errlen) < 0)
				return -1;
			c->max_id_len = (unsigned)v;
		}
	}
	if (enabled && !c->addr_len)
		return cfg_fail(err, errlen, "prometheus", "listen", "missing; the address Prometheus scrapes, like \"127.0.0.1:9464\"");
	c->enabled = enabled;
	return 0;
}

/* ---- recording ---- */

struct prom_reg *prom_reg_new(const struct prom_cfg *cfg)
{
	struct prom_reg *r = calloc(1, sizeof(*r)); /* big and zeroed: pages come as series do */
	if (r)
		r->cfg = cfg;
	return r;
}

void prom_reg_free(struct prom_reg *r)
{
	free(r);
}

size_t prom_escape(char *dst, size_t room, struct spop_slice v)
{
	const uint8_t *p = v.ptr, *end = v.ptr + v.len;
	size_t o = 0;
	if (room == 0)
		return PROM_NO_ROOM;
	while (p < end) {
		char esc = *p == '\\' ? '\\' : *p == '"' ? '"' : *p == '\n' ? 'n' : 0;
		size_t n = *p < 0x80 ? 1 : utf8_seq(p, end);
		if (room - o < (esc ? 2u : n ? n : 1u) + 1) /* + 1: the terminating NUL */
			return PROM_NO_ROOM;
		if (esc) {
			dst[o++] = '\\';
			dst[o++] = esc;
			p++;
		} else if (n == 0 || *p < 0x20 || *p == 0x7f) {
			dst[o++] = '_';
			p++;
		} else {
			memcpy(dst + o, p, n);
			o += n;
			p += n;
		}
	}
	dst[o] = '\0';
	return o;
}

/* Writes a new series' labels `name="value",...` at the end of the text. */
static bool put_labels(struct prom_reg *r, const struct metric_def *d, const struct spop_slice *vals,
                       struct prom_series *s)
{
	size_t start = r->text_len, o = start;
	for (int i = 0; i < d->nlabels; i++) {
		size_t nl = strlen(d->labels[i].name), room = sizeof(r->text) - o;
		if (room < nl + 5)
			return false;
		o += (size_t)snprintf(r->text + o, room, "%s%s=\"", i ? "," : "", d->labels[i].name);
		size_t n = prom_escape(r->text + o, sizeof(r->text) - o, vals[i]);
		if (n == PROM_NO_ROOM)
			return false;
		o += n;
		if (sizeof(r->text) - o < 2)
			return false;
		r->text[o++] = '"';
	}
	if (o - start > UINT16_MAX)
		return false;
	s->text = (uint32_t)start;
	s->text_len = (uint16_t)(o - start);
	r->text_len = o;
	return true;
}

/* The series of m with these (bounded) values: found, or made while the table
 * holds fewer than limit. NULL when there is no room. */
static struct prom_series *series(struct prom_reg *r, enum prom_metric m, const struct spop_slice *vals,
                                  unsigned limit)
{
	const struct metric_def *d = &defs[m];
	uint8_t mb = (uint8_t)m;
	uint64_t h = fasthash(&mb, 1, 0);
	for (int i = 0; i < d->nlabels; i++)
		h = fasthash(vals[i].ptr, vals[i].len, h); /* lengths are mixed in: values cannot run together */
	h |= 1;
	size_t idx = h % PROM_SLOTS;
	for (int probe = 0; probe < PROM_SLOTS; probe++, idx = (idx + 1) % PROM_SLOTS) { /* ends: never full */
		struct prom_series *s = &r->slot[idx];
		uint64_t sh = atomic_load_explicit(&s->h, memory_order_relaxed); /* ours: we are its only writer */
		if (sh == h)
			return s;
		if (sh != 0)
			continue;
		if (r->nseries >= limit || (d->type == PT_HISTOGRAM && r->nhist >= PROM_HISTS) || !put_labels(r, d, vals, s))
			return NULL;
		s->metric = mb;
		if (d->type == PT_HISTOGRAM)
			s->hist = (uint16_t)r->nhist++;
		r->nseries++;
		atomic_store_explicit(&s->h, h, memory_order_release); /* publishes the labels to scrapes */
		return s;
	}
	return NULL;
}

/* An empty value with a pointer: fasthash's memcpy must never see NULL. */
static struct spop_slice nonnull(struct spop_slice v)
{
	return v.ptr ? v : (struct spop_slice){ (const uint8_t *)"", 0 };
}

/* A single writer adds with a load and a store: no locked instruction. */
static void add_double(_Atomic double *a, double v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v, memory_order_relaxed);
}

static void add_u64(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + v, memory_order_relaxed);
}

void prom_record(struct prom_reg *r, enum prom_metric m, double v, const struct spop_slice *labels, int n)
{
	if (!r || (unsigned)m >= PM_METRICS)
		return;
	const struct metric_def *d = &defs[m];
	if (n != d->nlabels) {
		add_u64(&r->dropped, 1); /* a caller's mistake: visible, never a crash */
		return;
	}
	static const struct spop_slice other = { (const uint8_t *)"other", 5 };
	struct spop_slice vals[6];
	bool caller_given = false;
	for (int i = 0; i < n; i++) {
		vals[i] = nonnull(labels[i]);
		if (d->labels[i].bound) {
			vals[i] = tagbound_apply(&r->bound, d->labels[i].bound, vals[i], r->cfg->max_id_len,
			                         r->cfg->max_tag_values);
			caller_given |= !tagbound_is_overflow(vals[i]);
		}
	}
	struct prom_series *s = series(r, m, vals, caller_given ? PROM_OPEN_SERIES : PROM_MAX_SERIES);
	if (!s && caller_given) { /* a full table still takes the overflow series */
		for (int i = 0; i < n; i++)
			if (d->labels[i].bound)
				vals[i] = other;
		s = series(r, m, vals, PROM_MAX_SERIES);
	}
	if (!s) {
		add_u64(&r->dropped, 1);
		return;
	}
	switch (d->type) {
	case PT_COUNTER:
		add_double(&s->v, v);
		break;
	case PT_GAUGE:
		atomic_store_explicit(&s->v, v, memory_order_relaxed);
		break;
	case PT_HISTOGRAM: {
		int b = 0;
		while (b < d->nbuckets && !(v <= d->buckets[b]))
			b++;
		add_u64(&r->hist[s->hist][b], 1);
		add_double(&s->v, v);
		break;
	}
	}
}

void prom_run(struct prom_reg *r, struct spop_slice agent, struct spop_slice run)
{
	if (!r || run.len == 0)
		return;
	agent = nonnull(agent);
	uint64_t h = fasthash(run.ptr, run.len, fasthash(agent.ptr, agent.len, 0)) | 1;
	uint64_t *set = r->runs[h % PROM_RUN_SETS];
	for (int i = 0; i < 4; i++)
		if (set[i] == h)
			return;
	memmove(set + 1, set, 3 * sizeof(set[0])); /* the oldest of the set is forgotten */
	set[0] = h;
	prom_record(r, PM_AGENT_RUNS, 1, &agent, 1);
}

/* ---- rendering ---- */

struct item {
	const struct prom_reg *r;
	const struct prom_series *s;
	const char *text;
	uint16_t len;
	uint8_t metric;
};

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->metric != y->metric)
		return x->metric < y->metric ? -1 : 1;
	int c = memcmp(x->text, y->text, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static bool same_series(const struct item *x, const struct item *y)
{
	return x->metric == y->metric && x->len == y->len && memcmp(x->text, y->text, x->len) == 0;
}

/* The shortest of %.15g and %.17g that reads back as v; integers as integers. */
static void fmt_value(char *dst, size_t room, double v)
{
	if (isnan(v))
		snprintf(dst, room, "NaN");
	else if (isinf(v))
		snprintf(dst, room, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(dst, room, "%.0f", v);
	else if (snprintf(dst, room, "%.15g", v) > 0 && strtod(dst, NULL) != v)
		snprintf(dst, room, "%.17g", v);
}

struct out {
	struct buf *b;
	bool failed;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (!o->failed && buf_append(o->b, s, n) < 0)
		o->failed = true;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* `name{labels,extra} value` */
static void sample(struct out *o, const char *name, const char *suffix, const char *labels, size_t len,
                   const char *extra, double v)
{
	char val[40];
	fmt_value(val, sizeof(val), v);
	puts_(o, name);
	puts_(o, suffix);
	if (len || extra) {
		put(o, "{", 1);
		put(o, labels, len);
		if (extra) {
			if (len)
				put(o, ",", 1);
			puts_(o, extra);
		}
		put(o, "}", 1);
	}
	put(o, " ", 1);
	puts_(o, val);
	put(o, "\n", 1);
}

static void head(struct out *o, const char *name, const char *help, const char *type)
{
	puts_(o, "# HELP ");
	puts_(o, name);
	put(o, " ", 1);
	puts_(o, help); /* ours: no backslash or newline to escape */
	puts_(o, "\n# TYPE ");
	puts_(o, name);
	put(o, " ", 1);
	puts_(o, type);
	put(o, "\n", 1);
}

/* One series: its items [a, b) summed across registries. */
static void render_series(struct out *o, const struct item *a, const struct item *b)
{
	const struct metric_def *d = &defs[a->metric];
	double sum = 0;
	uint64_t counts[PROM_MAX_BUCKETS + 1] = { 0 };
	for (const struct item *it = a; it < b; it++) {
		sum += atomic_load_explicit(&it->s->v, memory_order_relaxed);
		if (d->type == PT_HISTOGRAM)
			for (int k = 0; k <= d->nbuckets; k++)
				counts[k] += atomic_load_explicit(&it->r->hist[it->s->hist][k], memory_order_relaxed);
	}
	if (d->type != PT_HISTOGRAM) {
		sample(o, d->name, "", a->text, a->len, NULL, sum);
		return;
	}
	/* Buckets are cumulative and the count is the +Inf bucket, so the three always agree. */
	uint64_t cum = 0;
	for (int k = 0; k <= d->nbuckets; k++) {
		char le[48];
		cum += counts[k];
		if (k < d->nbuckets)
			snprintf(le, sizeof(le), "le=\"%g\"", d->buckets[k]);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		sample(o, d->name, "_bucket", a->text, a->len, le, (double)cum);
	}
	sample(o, d->name, "_sum", a->text, a->len, NULL, sum);
	sample(o, d->name, "_count", a->text, a->len, NULL, (double)cum);
}

int prom_render(struct prom_reg *const *regs, int n, struct buf *out)
{
	static const char *const types[] = { [PT_COUNTER] = "counter", [PT_GAUGE] = "gauge", [PT_HISTOGRAM] = "histogram" };
	struct item *items = n > 0 ? malloc(sizeof(*items) * (size_t)n * PROM_SLOTS) : NULL;
	if (n > 0 && !items)
		return -1;
	size_t ni = 0;
	double dropped = 0;
	for (int w = 0; w < n; w++) {
		const struct prom_reg *r = regs[w];
		if (!r)
			continue;
		dropped += (double)atomic_load_explicit(&r->dropped, memory_order_relaxed);
		for (size_t i = 0; i < PROM_SLOTS; i++) {
			const struct prom_series *s = &r->slot[i];
			if (atomic_load_explicit(&s->h, memory_order_acquire) == 0)
				continue; /* acquire: what the writer wrote before publishing is there */
			items[ni++] = (struct item){ r, s, r->text + s->text, s->text_len, s->metric };
		}
	}
	qsort(items, ni, sizeof(*items), item_cmp);
	struct out o = { out, false };
	size_t i = 0;
	for (int m = 0; m < PM_METRICS; m++) {
		head(&o, defs[m].name, defs[m].help, types[defs[m].type]);
		while (i < ni && items[i].metric == m) {
			size_t j = i + 1;
			while (j < ni && same_series(&items[i], &items[j]))
				j++;
			render_series(&o, items + i, items + j);
			i = j;
		}
	}
	head(&o, dropped_name, "Metric updates dropped: the series table was full.", "counter");
	sample(&o, dropped_name, "", NULL, 0, NULL, dropped);
	free(items);
	return o.failed ? -1 : 0;
}

/* ---- the scrape request ---- */

enum prom_route prom_route(const char *req, size_t len)
{
	bool ended = false;
	for (size_t i = 0; i + 1 < len && !ended; i++) /* the head ends with an empty line */
		ended = req[i] == '\n' && (req[i + 1] == '\n' || (req[i + 1] == '\r' && i + 2 < len && req[i + 2] == '\n'));
	if (!ended)
		return len >= PROM_REQ_MAX ? PROM_BAD : PROM_MORE;
	/* The request line: METHOD SP TARGET SP HTTP/1.x */
	const char *eol = memchr(req, '\n', len);
	size_t ll = (size_t)(eol - req) - (eol > req && eol[-1] == '\r');
	const char *sp1 = memchr(req, ' ', ll);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - req)) : NULL;
	if (!sp1 || !sp2 || sp1 == req || sp2 == sp1 + 1 || req + ll - (sp2 + 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return PROM_BAD;
	const char *target = sp1 + 1;
	size_t tl = (size_t)(sp2 - target);
	bool get = sp1 - req == 3 && memcmp(req, "GET", 3) == 0;
	bool metrics = tl >= 8 && memcmp(target, "/metrics", 8) == 0 && (tl == 8 || target[8] == '?');
	return get && metrics ? PROM_METRICS : PROM_NOT_FOUND;
}
