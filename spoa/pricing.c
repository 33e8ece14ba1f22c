/* pricing.c: see pricing.h. */
#include "pricing.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

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
	if (!cJSON_IsArray(arr)) {
		snprintf(err, errlen, "prices: expected an array like [{\"provider\": \"openai\", \"model\": \"gpt-4o*\", \"input\": 2.5, \"output\": 10}]");
		return -1;
	}
	struct price add[PRICES_MAX];
	int n = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, arr) {
		const cJSON *prov = cJSON_GetObjectItemCaseSensitive(o, "provider");
		const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "input");
		const cJSON *out = cJSON_GetObjectItemCaseSensitive(o, "output");
		if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != 4 || !cJSON_IsString(prov) || !cJSON_IsString(model) ||
		    !cJSON_IsNumber(in) || !cJSON_IsNumber(out)) {
			snprintf(err, errlen, "prices[%d]: expected exactly {\"provider\", \"model\", \"input\", \"output\"}", n);
			return -1;
		}
		if (strlen(prov->valuestring) >= sizeof(add[0].provider) || strlen(model->valuestring) >= sizeof(add[0].model) ||
		    !model->valuestring[0]) {
			snprintf(err, errlen, "prices[%d]: provider or model pattern too long or empty", n);
			return -1;
		}
		if (in->valuedouble < 0 || out->valuedouble < 0 || in->valuedouble > 1e6 || out->valuedouble > 1e6) {
			snprintf(err, errlen, "prices[%d]: input and output are USD per million tokens, from 0 to 1000000", n);
			return -1;
		}
		if (n + t->n >= PRICES_MAX) {
			snprintf(err, errlen, "prices: at most %d entries with the built-in ones", PRICES_MAX);
			return -1;
		}
		snprintf(add[n].provider, sizeof(add[n].provider), "%s", prov->valuestring);
		snprintf(add[n].model, sizeof(add[n].model), "%s", model->valuestring);
		add[n].in_per_m = in->valuedouble;
		add[n].out_per_m = out->valuedouble;
		n++;
	}
	memmove(&t->p[n], &t->p[0], sizeof(t->p[0]) * (size_t)t->n);
	memcpy(&t->p[0], add, sizeof(add[0]) * (size_t)n);
	t->n += n;
	return 0;
}
