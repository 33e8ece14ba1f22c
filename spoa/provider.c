/* provider.c: see provider.h. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cfgjson.h"

static const struct provider builtin[] = {
	{ "openai", "/v1/openai", "/v1", "api.openai.com", CRED_BEARER, SHAPE_OPENAI, true, true, { .n = 0 } },
	{ "anthropic", "/v1/anthropic", "", "api.anthropic.com", CRED_X_API_KEY | CRED_BEARER, SHAPE_ANTHROPIC,
	  true, true, { .n = 0 } },
	{ "gemini", "/v1/gemini", "", "generativelanguage.googleapis.com", CRED_GOOG | CRED_QUERY_KEY | CRED_BEARER,
	  SHAPE_GEMINI, true, true, { .n = 0 } },
	/* A local OpenAI-compatible server (vLLM, Ollama, llama.cpp): no key needed. */
	{ "local", "/v1/local", "/v1", "localhost", CRED_BEARER, SHAPE_OPENAI, true, false, { .n = 0 } },
};

/* Inference and model listing: what a key the gateway lends out is for. More is
 * granted per key, per JWT issuer, or per provider in the config. */
static const char *const openai_endpoints[] = {
	"POST /chat/completions", "POST /completions", "POST /responses", "POST /embeddings", "GET /models",
	"GET /models/*", NULL,
};
static const char *const anthropic_endpoints[] = {
	"POST /v1/messages", "POST /v1/messages/count_tokens", "GET /v1/models", "GET /v1/models/*", NULL,
};
static const char *const gemini_endpoints[] = {
	"POST /v1beta/models/*:generateContent", "POST /v1beta/models/*:streamGenerateContent",
	"POST /v1beta/models/*:countTokens", "POST /v1beta/models/*:embedContent",
	"POST /v1beta/models/*:batchEmbedContents", "GET /v1beta/models", "GET /v1beta/models/*",
	"POST /v1/models/*:generateContent", "POST /v1/models/*:streamGenerateContent", "POST /v1/models/*:countTokens",
	"POST /v1/models/*:embedContent", "POST /v1/models/*:batchEmbedContents", "GET /v1/models", "GET /v1/models/*",
	NULL,
};

static void set_endpoints(struct endpoint_list *l, const char *const *e)
{
	for (l->n = 0; e[l->n]; l->n++)
		snprintf(l->e[l->n], sizeof(l->e[0]), "%s", e[l->n]);
}

static void default_endpoints(struct provider *p)
{
	set_endpoints(&p->endpoints, p->shape == SHAPE_ANTHROPIC ? anthropic_endpoints
	                             : p->shape == SHAPE_GEMINI  ? gemini_endpoints
	                                                         : openai_endpoints);
}

void providers_builtin(struct provider_table *t)
{
	memset(t, 0, sizeof(*t));
	t->n = (int)(sizeof(builtin) / sizeof(builtin[0]));
	memcpy(t->p, builtin, sizeof(builtin));
	for (int i = 0; i < t->n; i++)
		default_endpoints(&t->p[i]);
}

const struct provider *provider_match(const struct provider_table *t, struct spop_slice path,
                                      struct spop_slice *rest)
{
	const struct provider *best = NULL;
	size_t best_len = 0;
	for (int i = 0; i < t->n; i++) {
		const struct provider *p = &t->p[i];
		size_t n = strlen(p->prefix);
		if (n < best_len || path.len < n || memcmp(path.ptr, p->prefix, n) != 0)
			continue;
		if (path.len > n && path.ptr[n] != '/')
			continue; /* "/v1/openaix" is not "/v1/openai" */
		best = p;
		best_len = n;
	}
	if (best) {
		rest->ptr = path.ptr + best_len;
		rest->len = path.len - best_len;
	}
	return best;
}

size_t providers_list(const struct provider_table *t, char *dst, size_t room)
{
	size_t o = 0;
	if (room)
		dst[0] = '\0';
	for (int i = 0; i < t->n; i++) {
		int n = snprintf(dst + o, room - o, "%s%s", i ? ", " : "", t->p[i].prefix);
		if (n < 0 || (size_t)n >= room - o)
			break;
		o += (size_t)n;
	}
	return o;
}

/* ---- config ---- */

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 31)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* "/a/b": starts with '/', no trailing '/', no '?', '%' or spaces. Empty allowed if may_be_empty. */
static bool valid_path(const char *s, size_t max, bool may_be_empty)
{
	size_t n = strlen(s);
	if (n == 0)
		return may_be_empty;
	if (n >= max || s[0] != '/' || s[n - 1] == '/')
		return false;
	return strpbrk(s, "?#% \t\r\n\"") == NULL;
}

static int apply_one(struct provider_table *t, const cJSON *o, int idx, char *err, size_t errlen)
{
	enum { K_NAME, K_ENABLED, K_PREFIX, K_UPSTREAM_BASE, K_HOST, K_CREDENTIAL, K_ERROR_SHAPE, K_ENDPOINTS, K_DIRECT_KEYS,
	       K_REQUIRE_KEY, NKEYS };
	static const char *const keys[] = {
		"name", "enabled", "prefix", "upstream_base", "host", "credential", "error_shape", "endpoints", "direct_keys",
		"require_key", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	/* by CRED_* bit: bearer 0x1, x-api-key 0x2, x-goog-api-key 0x4, query-key 0x8 */
	static const char *const creds[] = { "bearer", "x-api-key", "x-goog-api-key", "query-key", NULL };
	char path[48];
	cfg_path_idx(path, sizeof(path), NULL, "providers", idx);
	if (cfg_object(o, path, NULL, 0, NULL,
	               "expected an object like {\"name\": \"mistral\", \"prefix\": \"/v1/mistral\", ...}", err, errlen) < 0)
		return -1;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
	if (!cJSON_IsString(name) || !valid_name(name->valuestring))
		return cfg_fail(err, errlen, path, "name", "expected 1-31 characters of a-z, 0-9, '_' or '-'");
	struct provider *p = NULL;
	int at = -1;
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->p[i].name, name->valuestring) == 0) {
			p = &t->p[i];
			at = i;
		}
	bool enabled = true;
	if (cfg_bool(cJSON_GetObjectItemCaseSensitive(o, "enabled"), path, "enabled", CFG_OPTIONAL, &enabled, NULL, err,
	             errlen) < 0)
		return -1;
	if (!enabled) {
		if (p) {
			memmove(&t->p[at], &t->p[at + 1], sizeof(*p) * (size_t)(t->n - at - 1));
			t->n--;
		}
		return 0;
	}
	struct provider np;
	if (p) {
		np = *p;
	} else {
		if (t->n == PROVIDERS_MAX)
			return cfg_fail(err, errlen, path, NULL, "at most %d providers", PROVIDERS_MAX);
		memset(&np, 0, sizeof(np));
		strcpy(np.name, name->valuestring);
		np.cred = CRED_BEARER;
		np.shape = SHAPE_OPENAI;
		np.direct_keys = true;
		np.require_key = true;
	}
	bool own_endpoints = false;
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		const char *k = it->string;
		int shape, rc = 0;
		switch (cfg_lookup(k, keys)) {
		case K_NAME:
		case K_ENABLED:
			break;
		case K_PREFIX:
			rc = cfg_str(it, path, k, 0, np.prefix, sizeof(np.prefix), NULL, err, errlen);
			if (rc == 0 && !valid_path(np.prefix, sizeof(np.prefix), false))
				rc = cfg_fail(err, errlen, path, k, "expected a path like \"/v1/mistral\" (leading '/', no trailing '/')");
			break;
		case K_UPSTREAM_BASE:
			rc = cfg_str(it, path, k, 0, np.upstream_base, sizeof(np.upstream_base), NULL, err, errlen);
			if (rc == 0 && !valid_path(np.upstream_base, sizeof(np.upstream_base), true))
				rc = cfg_fail(err, errlen, path, k, "expected \"\" or a path like \"/v1\"");
			break;
		case K_HOST:
			rc = cfg_str(it, path, k, 0, np.host, sizeof(np.host), NULL, err, errlen);
			if (rc == 0 && (!np.host[0] || strpbrk(np.host, " \t\r\n/\"")))
				rc = cfg_fail(err, errlen, path, k, "expected a host name like \"api.mistral.ai\"");
			break;
		case K_CREDENTIAL:
			rc = cfg_enum_set(it, path, k, CFG_SCALAR, creds, &np.cred,
			                  "expected \"bearer\", \"x-api-key\", \"x-goog-api-key\", \"query-key\" or an array of them",
			                  err, errlen);
			break;
		case K_ERROR_SHAPE:
			rc = cfg_enum(it, path, k, 0, errjson_shape_names, &shape, "expected \"openai\", \"anthropic\" or \"gemini\"",
			              err, errlen);
			if (rc == 0)
				np.shape = (enum err_shape)shape;
			break;
		case K_ENDPOINTS:
			rc = endpoint_list_parse(it, path, k, &np.endpoints, err, errlen);
			own_endpoints = true;
			break;
		case K_DIRECT_KEYS:
			rc = cfg_bool(it, path, k, 0, &np.direct_keys, NULL, err, errlen);
			break;
		case K_REQUIRE_KEY:
			rc = cfg_bool(it, path, k, 0, &np.require_key, NULL, err, errlen);
			break;
		default:
			return cfg_unknown(err, errlen, path, k, "key", keys);
		}
		if (rc < 0)
			return -1;
	}
	if (!own_endpoints && (!p || np.shape != p->shape))
		default_endpoints(&np); /* a new provider, or one whose dialect changed */
	if (!np.prefix[0] || !np.host[0])
		return cfg_fail(err, errlen, path, NULL, "a new provider needs \"prefix\" and \"host\"");
	for (int i = 0; i < t->n; i++)
		if (i != at && strcmp(t->p[i].prefix, np.prefix) == 0)
			return cfg_fail(err, errlen, path, "prefix", "\"%s\" is already the prefix of provider \"%s\"", np.prefix,
			                t->p[i].name);
	if (p)
		*p = np;
	else
		t->p[t->n++] = np;
	return 0;
}

int providers_apply_json(struct provider_table *t, const cJSON *arr, char *err, size_t errlen)
{
	if (cfg_array(arr, NULL, "providers", 0, 0, INT_MAX, "provider objects", err, errlen) < 0)
		return -1;
	int i = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, arr) {
		if (apply_one(t, o, i++, err, errlen) < 0)
			return -1;
	}
	return 0;
}
