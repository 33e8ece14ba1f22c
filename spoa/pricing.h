/* pricing.h: what a call cost, from a price table per provider and model pattern.
 * Prices are USD per million input / output tokens. Entries from the config come
 * first; the first match wins, so put specific patterns before general ones. Pure. */
#ifndef SPOA_PRICING_H
#define SPOA_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "spop.h"

#define PRICES_MAX 160

struct price {
	char provider[32];   /* "" or "*": any provider */
	char model[64];      /* glob */
	double in_per_m, out_per_m;
};

struct price_table {
	struct price p[PRICES_MAX];
	int n;
};

void prices_builtin(struct price_table *t);
const struct price *price_find(const struct price_table *t, const char *provider, struct spop_slice model);
double price_cost(const struct price *p, int64_t in, int64_t out);

struct cJSON;
/* The config's "prices" array goes before the built-in entries. Returns 0, or -1
 * with err set ("prices[2].input: ..."); nothing is allocated. */
int prices_apply_json(struct price_table *t, const struct cJSON *arr, char *err, size_t errlen);

#endif
