/* tagbound.h: bounded label values, shared by statsd and the Prometheus registry.
 *
 * Some tag values come from callers (agent ids, models): unbounded, they would
 * make unbounded series. A value longer than max_len is reported as "too_long";
 * past max_values distinct values per key, new values are reported as "other".
 * statsd starts a new set every window (its series live one flush); Prometheus
 * keeps one for the process's life (its counters do too). Per worker, no locks.
 * Pure. */
#ifndef SPOA_TAGBOUND_H
#define SPOA_TAGBOUND_H

#include <stdbool.h>

#include "spop.h"

#define TAGBOUND_KEYS  4
#define TAGBOUND_SLOTS 1024   /* max_values is at most half of this */

struct tagbound {
	struct {
		const char *key;          /* compared by pointer first, then by text */
		unsigned count;
		uint64_t slot[TAGBOUND_SLOTS];  /* hashes of the values admitted; 0 marks an empty slot */
	} seen[TAGBOUND_KEYS];
};

/* The value to report for v under key: v itself, "too_long" or "other". A fifth
 * distinct key reports "other" for every value. */
struct spop_slice tagbound_apply(struct tagbound *b, const char *key, struct spop_slice v, unsigned max_len,
                                 unsigned max_values);

/* Is v one of the values tagbound_apply reports in place of a caller's? */
bool tagbound_is_overflow(struct spop_slice v);

/* Forgets every value admitted (a new window). */
void tagbound_reset(struct tagbound *b);

#endif
