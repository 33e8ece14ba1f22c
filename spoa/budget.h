/* budget.h: cost limits and rate limits, as the policy states them, and the
 * arithmetic of spend over windows. Pure: what the fleet has spent comes from a
 * view (struct bview) that the store (bstore.h) keeps filled.
 *
 * The policy's "budgets" and "rate_limits" sections each hold limits of the same
 * shape: an id, a scope (whose spend: a virtual key, a user, an agent, a JWT
 * claim's value, a provider, a model, or everyone), "when" globs like a rule's,
 * and limits in USD, tokens and requests over a window. A budget over its limit
 * refuses with 402 token_cost_limit_exceeded; a rate limit with 429 and
 * Retry-After.
 *
 * A call is charged to every limit in scope, one "charge" per (limit, scope
 * value). Its requests are counted when it is allowed; its tokens and cost when
 * its end-of-call record comes back (meter.h), so a call in flight when a limit
 * runs out still completes: that is the overshoot the README states.
 *
 * Spend is kept per bucket: a calendar window (day, week, month in a time zone)
 * is one bucket; a rolling window is WIN_BUCKETS buckets, summed. Each bucket's
 * view is what the store last read or was answered (val), plus what this agent
 * sent and has no answer for yet (pend), plus what it has not sent yet (unsent).
 * The store answers every increment with the bucket's new total and answers in
 * order, so a reply never counts our own increment twice, and a read never
 * misses one. */
#ifndef SPOA_BUDGET_H
#define SPOA_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "spop.h"
#include "window.h"

struct cJSON;

enum bmeasure { BM_USD, BM_TOKENS, BM_REQUESTS, BM_COUNT };   /* USD in millionths */
enum budget_kind { BK_BUDGET, BK_RATE };
enum budget_scope { BS_KEY, BS_USER, BS_AGENT, BS_CLAIM, BS_PROVIDER, BS_MODEL, BS_ALL, BS_COUNT };

#define BUDGET_MAX       64
#define BUDGET_ID_MAX    48
#define BUDGET_MAX_CHARGES 8

struct budget {
	char id[BUDGET_ID_MAX];                /* [A-Za-z0-9_-]: it is part of store keys and meter records */
	size_t id_len;
	enum budget_kind kind;
	enum budget_scope scope;
	struct pattern_list when[SC_FIELDS];
	struct pattern_list when_claim;
	int64_t limit[BM_COUNT];               /* 0: no limit on that measure */
	struct window win;                     /* win.tz points at tz */
	char tz_name[64];                      /* "" for UTC; the loader fills tz from it (tz_load) */
	struct tz tz;                          /* owned */
	bool shadow;
	bool deny_on_store_error;              /* on_store_error: "deny" */
};

/* Owned by the policy that holds it: budget_set_free. */
struct budget_set {
	struct budget *b;
	int n;
	int nrate;                             /* of which rate limits */
};

/* Reads "budgets" (kind BK_BUDGET) or "rate_limits" (BK_RATE) into set, which
 * may already hold the other section's limits. Ids are unique across both. */
int budget_parse(const struct cJSON *v, enum budget_kind kind, struct budget_set *set, char *err, size_t errlen);
void budget_set_free(struct budget_set *set);
const struct budget *budget_find(const struct budget_set *set, struct spop_slice id);

/* One limit a call is charged to: the budget and whose spend (the scope value,
 * and its hash, which names it in the store). */
struct budget_charge {
	const struct budget *b;
	struct spop_slice who;                 /* the scope's value ("" for BS_ALL) */
	uint64_t hash;                         /* budget_hash(scope, who) */
};

/* The limits a call falls under: at most max (BUDGET_MAX_CHARGES), in policy order. */
int budget_charges(const struct budget_set *set, const struct policy_input *in, struct budget_charge *out, int max);
uint64_t budget_hash(enum budget_scope scope, struct spop_slice who);

/* Output tokens charged for a call that asked for no limit and ends without usage. */
#define BUDGET_EST_OUTPUT 4096

/* "~in:out" before the list: the tokens to charge when the response reports no
 * usage. Reads it at *pos (advancing past it and its comma); false if absent
 * or malformed (*pos unchanged). */
bool budget_estimate_next(struct spop_slice list, size_t *pos, int64_t *in, int64_t *out);
/* Writes "~in:out," (counts clamped to 15 digits). Returns its length, 0 if cap
 * is too small (40 always fits). */
size_t budget_estimate_encode(int64_t in, int64_t out, char *dst, size_t cap);

/* "id:hash16,id:hash16": the charges as HAProxy carries them to the end-of-call
 * record. Returns the length, 0 if none or it does not fit. */
size_t budget_charges_encode(const struct budget_charge *c, int n, char *out, size_t cap);
/* Reads one element of that list at *pos, advancing it. false at the end or on
 * a malformed element (the rest is ignored). */
bool budget_charge_next(struct spop_slice list, size_t *pos, struct spop_slice *id, uint64_t *hash);

/* The view of one (limit, scope value): per bucket. */
struct bslot {
	int64_t b;                             /* the bucket this slot holds; INT64_MIN: none */
	bool loaded;                           /* val was read from the store */
	int64_t val[BM_COUNT], pend[BM_COUNT], unsent[BM_COUNT];
};
struct bview {
	struct bslot s[WIN_BUCKETS];
};

void bview_init(struct bview *v);
/* The slot of v.s that bucket b goes in. */
size_t bview_ring(int64_t b);
/* The slot for bucket b, emptied if it held an older bucket; NULL if it holds a
 * newer one (the clock went back). */
struct bslot *bview_slot(struct bview *v, int64_t b);
/* Spend in the nb buckets up to bucket cur. */
void bview_sum_at(const struct bview *v, int nb, int64_t cur, int64_t out[BM_COUNT]);
/* Spend in the window `now` falls in. */
void bview_sum(const struct bview *v, const struct window *w, int64_t now, int64_t out[BM_COUNT]);
/* A reply from the store for bucket b: its total after our increment `sent`
 * (NULL for a read, which leaves pending increments as they are). */
void bview_reply(struct bview *v, int64_t b, const int64_t total[BM_COUNT], const int64_t *sent);

/* Over a limit? Returns the first measure whose spend, before this call, is at
 * or over its limit (so a limit of N requests allows N), or -1. */
int budget_over(const struct budget *b, const int64_t spent[BM_COUNT]);

/* Seconds until enough of the window rolls off for the spend to come under the
 * limit on measure m (rolling), or until the window ends (calendar). >= 1. */
int64_t budget_retry_after(const struct budget *b, const struct bview *v, int64_t now, int m);

extern const char *const budget_scope_names[];     /* by enum budget_scope, then NULL */
extern const char *const bmeasure_names[];         /* "usd", "tokens", "requests" */

#endif
