/* provider.h: the table of LLM providers the edge routes to.
 *
 * A provider owns a path prefix ("/v1/openai"): the rest of the path goes upstream
 * after `upstream_base`, so SDKs work by changing only their base URL. It also says
 * where its SDKs put the API key, how its errors look, and where HAProxy connects
 * for it (provider_backends_text writes HAProxy's llm_<name> backends from the
 * same table, so the two never disagree). Built in for Archestra's providers;
 * extended or overridden by the "providers" array of the config file. Pure. */
#ifndef SPOA_PROVIDER_H
#define SPOA_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "errjson.h"
#include "spop.h"

#define PROVIDERS_MAX 32

/* Where a provider's clients carry the credential (a bit set). */
#define CRED_BEARER    0x1u  /* Authorization: Bearer <key> */
#define CRED_X_API_KEY 0x2u  /* x-api-key: <key> */
#define CRED_GOOG      0x4u  /* x-goog-api-key: <key> */
#define CRED_QUERY_KEY 0x8u  /* ?key=<key> */
#define CRED_API_KEY   0x10u /* api-key: <key> (Azure OpenAI) */

struct provider {
	char name[32];           /* [a-z0-9_-]: HAProxy routes to backend "llm_<name>" */
	char prefix[64];         /* "/v1/openai" */
	char upstream_base[64];  /* prepended to the rest of the path: "/v1" or "" */
	char host[128];          /* Host header upstream, TLS name (SNI, certificate); "" = not
	                            configured yet (Azure: the resource is the operator's), off */
	char addr[136];          /* where HAProxy connects, "host:port"; "" = host:443 */
	bool tls;                /* HTTPS upstream (false: plain HTTP, local servers) */
	unsigned cred;           /* accepted credential locations */
	enum err_shape shape;
	/* The model is named in the path after this marker (Gemini "/models/", Azure
	 * "/openai/deployments/"); "" = in the body only. */
	char model_path[24];
	char model_path_end[4];  /* what ends it there: Gemini ":/" (its ":action"); "" = "/" */
	bool model_in_body;      /* when the path names none, the body's "model" counts */
	bool direct_keys;        /* the caller's own provider key passes through */
	bool require_key;        /* false for local servers that need none */
	bool stream_usage_option; /* takes OpenAI's stream_options.include_usage (asked for when a
	                            stream does not; see archestra.lua) */
	struct endpoint_list endpoints;   /* what a substituted key may reach by default */
	const char *const *endpoint_defaults; /* a static list, or NULL: the dialect's */
};

struct provider_table {
	struct provider p[PROVIDERS_MAX];
	int n;
};

void providers_builtin(struct provider_table *t);

/* The provider whose prefix is the longest match of path at a segment boundary;
 * *rest receives the remainder (starting with '/' or empty). NULL when none. */
const struct provider *provider_match(const struct provider_table *t, struct spop_slice path,
                                      struct spop_slice *rest);

/* The provider of that name (the call context's, the meter record's), or NULL. */
const struct provider *provider_named(const struct provider_table *t, struct spop_slice name);

/* HAProxy's backends for every provider of t, "backend llm_<name>" each, as text
 * for a file HAProxy loads with a second -f. Addresses can be moved without
 * regenerating: ARCHESTRA_<NAME>_ADDR (and ARCHESTRA_CA_FILE) in HAProxy's
 * environment. Returns the length it needed (as snprintf: >= room means cut). */
size_t provider_backends_text(const struct provider_table *t, char *dst, size_t room);

/* Comma-separated prefixes, for "unknown provider" messages. */
size_t providers_list(const struct provider_table *t, char *dst, size_t room);

struct cJSON;
/* Applies the config's "providers" array: entries naming a known provider
 * override its fields, others add one; {"name": X, "enabled": false} removes X.
 * Returns 0, or -1 with err set ("providers[2].prefix: ..."); nothing is allocated. */
int providers_apply_json(struct provider_table *t, const struct cJSON *arr, char *err, size_t errlen);

#endif
