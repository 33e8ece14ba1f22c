/* pricing.c: see pricing.h. */
#include "pricing.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cfgjson.h"
#include "glob.h"

/* List prices in USD per million tokens (input, output) as published by the
 * providers in 2025; check them against your contract and override in config. */
static const struct price builtin[] = {
	{ "openai", "gpt-5-nano*", 0.05, 0.40 },
	{ "openai", "gpt-5-mini*", 0.25, 2.00 },
	{ "openai", "gpt-5*", 1.25, 10.00 },
	{ "openai", "gpt-4.1-nano*", 0.10, 0.40 },
	{ "openai", "gpt-4.1-mini*", 0.40, 1.60 },
	{ "openai", "gpt-4.1*", 2.00, 8.00 },
	{ "openai", "gpt-4o-mini*", 0.15, 0.60 },
	{ "openai", "gpt-4o*", 2.50, 10.00 },
	{ "openai", "o4-mini*", 1.10, 4.40 },
	{ "openai", "o3-mini*", 1.10, 4.40 },
	{ "openai", "o3*", 2.00, 8.00 },
	{ "openai", "o1*", 15.00, 60.00 },
	{ "anthropic", "claude-opus-4-5*", 5.00, 25.00 },
	{ "anthropic", "claude-opus-4*", 15.00, 75.00 },
	{ "anthropic", "claude-sonnet-4*", 3.00, 15.00 },
	{ "anthropic", "claude-3-7-sonnet*", 3.00, 15.00 },
	{ "anthropic", "claude-haiku-4*", 1.00, 5.00 },
	{ "anthropic", "claude-3-5-haiku*", 0.80, 4.00 },
	{ "gemini", "gemini-2.5-pro*", 1.25, 10.00 },
	{ "gemini", "gemini-2.5-flash-lite*", 0.10, 0.40 },
	{ "gemini", "gemini-2.5-flash*", 0.30, 2.50 },
	{ "gemini", "gemini-2.0-flash-lite*", 0.075, 0.30 },
	{ "gemini", "gemini-2.0-flash*", 0.10, 0.40 },
};

void prices_builtin(struct price_table *t)
{
	memset(t, 0, sizeof(*t));
	t->n = (int)(sizeof(builtin) / sizeof(builtin[0]));
	memcpy(t->p, builtin, sizeof(builtin));
}

const struct price *price_find(const struct price_table *t, const char *provider, struct spop_slice model)
{
	for (int i = 0; i < t->n; i++) {
		const struct price *p = &t->p[i];
		if (p->provider[0] && strcmp(p->provider, "*") != 0 && strcmp(p->provider, provider) != 0)
			continue;
		if (glob_match(p->model, model.ptr, model.len))
			return p;
	}
	return NULL;
}

double price_cost(const struct price *p, int64_t in, int64_t out)
{
	return ((double)in * p->in_per_m + (double)out * p->out_per_m) / 1e6;
}

int prices_apply_json(struct price_table *t, const cJSON *arr, char *err, size_t errlen)
{
	static const char *const fields[] = { "provider", "model", "input", "output", NULL };
	static const char usd[] = "expected USD per million tokens, from 0 to 1000000";
	if (cfg_array(arr, NULL, "prices", 0, 0, INT_MAX,
	              "prices like {\"provider\": \"openai\", \"model\": \"gpt-4o*\", \"input\": 2.5, \"output\": 10}",
	              err, errlen) < 0)
		return -1;
	struct price add[PRICES_MAX];
	int n = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, arr) {
		char path[32];
		cfg_path_idx(path, sizeof(path), NULL, "prices", n);
		if (n + t->n >= PRICES_MAX)
			return cfg_fail(err, errlen, "prices", NULL, "at most %d entries with the built-in ones", PRICES_MAX);
		/* all four, nothing else */
		if (cfg_object(o, path, NULL, 0, fields, "expected exactly {\"provider\", \"model\", \"input\", \"output\"}", err,
		               errlen) < 0 ||
		    cfg_str(cJSON_GetObjectItemCaseSensitive(o, "provider"), path, "provider", 0, add[n].provider,
		            sizeof(add[n].provider), NULL, err, errlen) < 0 ||
		    cfg_str(cJSON_GetObjectItemCaseSensitive(o, "model"), path, "model", CFG_NONEMPTY, add[n].model,
		            sizeof(add[n].model), NULL, err, errlen) < 0 ||
		    cfg_number(cJSON_GetObjectItemCaseSensitive(o, "input"), path, "input", 0, 0, 1e6, &add[n].in_per_m, usd, err,
		               errlen) < 0 ||
		    cfg_number(cJSON_GetObjectItemCaseSensitive(o, "output"), path, "output", 0, 0, 1e6, &add[n].out_per_m, usd,
		               err, errlen) < 0)
			return -1;
		n++;
	}
	memmove(&t->p[n], &t->p[0], sizeof(t->p[0]) * (size_t)t->n);
	memcpy(&t->p[0], add, sizeof(add[0]) * (size_t)n);
	t->n += n;
	return 0;
}
