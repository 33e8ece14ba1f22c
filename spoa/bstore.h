/* bstore.h: the spend the fleet shares, kept where a decision can read it
 * without waiting: a local view (budget.h's struct bview) per (limit, scope
 * value), filled from Redis by a thread of its own.
 *
 * Workers read the view and add to it under one lock (a lookup and a few adds);
 * the store thread sends what they added to Redis (one EVAL per bucket: the
 * increments, the expiry and the bucket's new totals back), reads the buckets
 * of the scopes in use every refresh_ms, and reconnects with backoff. Redis
 * keys are  <prefix>:{<limit id>:<scope hash>}:<bucket label>  (budget.h,
 * window.h): the braces are a Redis Cluster hash tag, so all of a scope's
 * buckets live on one node. Each key is a hash of u (USD millionths), t
 * (tokens), r (requests) and s (the scope's value, for `archestra-spoa spend`).
 *
 * Without Redis the view is the agent's own: it counts what this agent saw.
 *
 * Delivery is at most once: increments in flight when the connection drops
 * are not sent again (the store may or may not have applied them), so a lost
 * link can under-count a little but never counts a call twice. */
#ifndef SPOA_BSTORE_H
#define SPOA_BSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "budget.h"
#include "config.h"   /* struct bstore_cfg */

struct bstore;

/* Creates the store and starts its thread (it connects in the background).
 * NULL with err on failure. bstore_free stops and frees it. */
struct bstore *bstore_new(const struct bstore_cfg *cfg, char *err, size_t errlen);
void bstore_free(struct bstore *s);

/* The policy's limits, at start and at every reload: the store follows which
 * of them the fleet has found reached. */
void bstore_set_limits(struct bstore *s, const struct budget_set *set);

/* A decision's charges at once, under one lock: each one's spend, the measure
 * over its limit (over[i], -1: none; BSTORE_DOWN: the store is down and the
 * limit says on_store_error deny) and its Retry-After. Returns the first charge
 * that refuses the call (not in shadow mode, nor every limit with shadow_all),
 * or -1: then the call counts as one request to every charge. */
#define BSTORE_DOWN (-2)
int bstore_charge(struct bstore *s, const struct budget_charge *c, int n, int64_t now, bool shadow_all,
                  int64_t (*spent)[BM_COUNT], int *over, int64_t *retry_after);

/* Adds to a charge's bucket at `now` (a request at the decision; tokens and
 * cost at the end of the call). who may be empty (the end-of-call record
 * carries only the hash). Never waits. */
void bstore_add(struct bstore *s, const struct budget *b, uint64_t hash, struct spop_slice who, int64_t now,
                const int64_t add[BM_COUNT]);

/* The clock decisions and accounting use: time(NULL), plus the seconds written
 * in the file ARCHESTRA_CLOCK_FILE names, re-read every refresh (tests that roll
 * windows). */
int64_t bstore_now(void);

#endif
