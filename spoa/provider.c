/* provider.c: see provider.h. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

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

static int set_str(char *dst, size_t room, const cJSON *v, const char *path, const char *field, char *err,
                   size_t errlen)
{
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= room) {
		snprintf(err, errlen, "%s.%s: expected a string of at most %zu bytes", path, field, room - 1);
		return -1;
	}
	strcpy(dst, v->valuestring);
	return 0;
}

static int parse_cred(const cJSON *v, unsigned *out)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "bearer", CRED_BEARER }, { "x-api-key", CRED_X_API_KEY },
		{ "x-goog-api-key", CRED_GOOG }, { "query-key", CRED_QUERY_KEY },
	};
	const cJSON *it;
	unsigned set = 0;
	if (cJSON_IsString(v)) {
		for (size_t i = 0; i < 4; i++)
			if (strcmp(v->valuestring, names[i].name) == 0)
				set = names[i].bit;
		*out = set;
		return set ? 0 : -1;
	}
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return -1;
	cJSON_ArrayForEach(it, v) {
		unsigned one;
		if (parse_cred(it, &one) < 0 || cJSON_IsArray(it))
			return -1;
		set |= one;
	}
	*out = set;
	return 0;
}

static int apply_one(struct provider_table *t, const cJSON *o, int idx, char *err, size_t errlen)
{
	char path[48];
	snprintf(path, sizeof(path), "providers[%d]", idx);
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "%s: expected an object like {\"name\": \"mistral\", \"prefix\": \"/v1/mistral\", ...}",
		         path);
		return -1;
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
	if (!cJSON_IsString(name) || !valid_name(name->valuestring)) {
		snprintf(err, errlen, "%s.name: expected 1-31 characters of a-z, 0-9, '_' or '-'", path);
		return -1;
	}
	struct provider *p = NULL;
	int at = -1;
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->p[i].name, name->valuestring) == 0) {
			p = &t->p[i];
			at = i;
		}
	const cJSON *en = cJSON_GetObjectItemCaseSensitive(o, "enabled");
	if (en && !cJSON_IsBool(en)) {
		snprintf(err, errlen, "%s.enabled: expected true or false", path);
		return -1;
	}
	if (en && cJSON_IsFalse(en)) {
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
		if (t->n == PROVIDERS_MAX) {
			snprintf(err, errlen, "%s: at most %d providers", path, PROVIDERS_MAX);
			return -1;
		}
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
		if (strcmp(k, "name") == 0 || strcmp(k, "enabled") == 0)
			continue;
		if (strcmp(k, "prefix") == 0) {
			if (set_str(np.prefix, sizeof(np.prefix), it, path, k, err, errlen) < 0)
				return -1;
			if (!valid_path(np.prefix, sizeof(np.prefix), false)) {
				snprintf(err, errlen, "%s.prefix: expected a path like \"/v1/mistral\" (leading '/', no trailing '/')",
				         path);
				return -1;
			}
		} else if (strcmp(k, "upstream_base") == 0) {
			if (set_str(np.upstream_base, sizeof(np.upstream_base), it, path, k, err, errlen) < 0)
				return -1;
			if (!valid_path(np.upstream_base, sizeof(np.upstream_base), true)) {
				snprintf(err, errlen, "%s.upstream_base: expected \"\" or a path like \"/v1\"", path);
				return -1;
			}
		} else if (strcmp(k, "host") == 0) {
			if (set_str(np.host, sizeof(np.host), it, path, k, err, errlen) < 0)
				return -1;
			if (!np.host[0] || strpbrk(np.host, " \t\r\n/\"")) {
				snprintf(err, errlen, "%s.host: expected a host name like \"api.mistral.ai\"", path);
				return -1;
			}
		} else if (strcmp(k, "credential") == 0) {
			if (parse_cred(it, &np.cred) < 0) {
				snprintf(err, errlen,
				         "%s.credential: expected \"bearer\", \"x-api-key\", \"x-goog-api-key\", \"query-key\" or an array of them",
				         path);
				return -1;
			}
		} else if (strcmp(k, "error_shape") == 0) {
			if (!cJSON_IsString(it) || errjson_shape_parse(it->valuestring, &np.shape) < 0) {
				snprintf(err, errlen, "%s.error_shape: expected \"openai\", \"anthropic\" or \"gemini\"", path);
				return -1;
			}
		} else if (strcmp(k, "endpoints") == 0) {
			char where[64];
			snprintf(where, sizeof(where), "%s.endpoints", path);
			if (endpoint_list_parse(it, &np.endpoints, where, err, errlen) < 0)
				return -1;
			own_endpoints = true;
		} else if (strcmp(k, "direct_keys") == 0 || strcmp(k, "require_key") == 0) {
			if (!cJSON_IsBool(it)) {
				snprintf(err, errlen, "%s.%s: expected true or false", path, k);
				return -1;
			}
			*(k[0] == 'd' ? &np.direct_keys : &np.require_key) = cJSON_IsTrue(it);
		} else {
			snprintf(err, errlen,
			         "%s.%s: unknown key (known: name, enabled, prefix, upstream_base, host, credential, error_shape, endpoints, direct_keys, require_key)",
			         path, k);
			return -1;
		}
	}
	if (!own_endpoints && (!p || np.shape != p->shape))
		default_endpoints(&np); /* a new provider, or one whose dialect changed */
	if (!np.prefix[0] || !np.host[0]) {
		snprintf(err, errlen, "%s: a new provider needs \"prefix\" and \"host\"", path);
		return -1;
	}
	for (int i = 0; i < t->n; i++)
		if (i != at && strcmp(t->p[i].prefix, np.prefix) == 0) {
			snprintf(err, errlen, "%s.prefix: \"%s\" is already the prefix of provider \"%s\"", path, np.prefix,
			         t->p[i].name);
			return -1;
		}
	if (p)
		*p = np;
	else
		t->p[t->n++] = np;
	return 0;
}

int providers_apply_json(struct provider_table *t, const cJSON *arr, char *err, size_t errlen)
{
	if (!cJSON_IsArray(arr)) {
		snprintf(err, errlen, "providers: expected an array of provider objects");
		return -1;
	}
	int i = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, arr) {
		if (apply_one(t, o, i++, err, errlen) < 0)
			return -1;
	}
	return 0;
}
