/* provider.c: see provider.h. */
#include "provider.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgjson.h"
#include "usage.h"

/* What a key the gateway lends out may reach on Bedrock: the Converse API, whose
 * bodies and answers the agent reads whatever the model family. */
static const char *const bedrock_endpoints[] = {
	"POST /model/*/converse", "POST /model/*/converse-stream", NULL,
};
/* What a key the gateway lends out may reach on Azure (see default_endpoints). */
static const char *const azure_endpoints[] = {
	"POST /openai/deployments/*/chat/completions", "POST /openai/deployments/*/completions",
	"POST /openai/deployments/*/embeddings", "POST /openai/v1/chat/completions", "POST /openai/v1/responses",
	"POST /openai/v1/embeddings", "GET /openai/v1/models", "GET /openai/models", NULL,
};

/* Most providers speak OpenAI's API at a host of their own: three facts each. */
#define OPENAI_COMPATIBLE(n, h, base)                                                                         \
	{ .name = n, .prefix = "/v1/" n, .upstream_base = base, .host = h, .tls = true, .cred = CRED_BEARER,   \
	  .shape = SHAPE_OPENAI, .model_in_body = true, .direct_keys = true, .require_key = true }
/* Servers on the host itself (plain HTTP, no key needed). */
#define LOCAL_SERVER(n, a)                                                                                    \
	{ .name = n, .prefix = "/v1/" n, .upstream_base = "/v1", .host = "localhost", .addr = a, .tls = false, \
	  .cred = CRED_BEARER, .shape = SHAPE_OPENAI, .model_in_body = true, .direct_keys = true,          \
	  .require_key = false }

static const struct provider builtin[] = {
	{ .name = "openai", .prefix = "/v1/openai", .upstream_base = "/v1", .host = "api.openai.com", .tls = true,
	  .cred = CRED_BEARER, .shape = SHAPE_OPENAI, .model_in_body = true, .direct_keys = true, .require_key = true,
	  .stream_usage_option = true },
	{ .name = "anthropic", .prefix = "/v1/anthropic", .upstream_base = "", .host = "api.anthropic.com", .tls = true,
	  .cred = CRED_X_API_KEY | CRED_BEARER, .shape = SHAPE_ANTHROPIC, .model_in_body = true, .direct_keys = true,
	  .require_key = true },
	{ .name = "gemini", .prefix = "/v1/gemini", .upstream_base = "", .host = "generativelanguage.googleapis.com",
	  .tls = true, .cred = CRED_GOOG | CRED_QUERY_KEY | CRED_BEARER, .shape = SHAPE_GEMINI,
	  .model_path = "/models/", .model_path_end = ":/", .direct_keys = true, .require_key = true },
	/* AWS Bedrock's runtime (Converse): the model id in the path, Bedrock API keys
	 * as Bearer tokens. Other regions: {"name": "bedrock", "host":
	 * "bedrock-runtime.REGION.amazonaws.com"}. */
	{ .name = "bedrock", .prefix = "/v1/bedrock", .upstream_base = "", .host = "bedrock-runtime.us-east-1.amazonaws.com",
	  .tls = true, .cred = CRED_BEARER, .shape = SHAPE_BEDROCK, .model_path = "/model/", .direct_keys = true,
	  .require_key = true, .endpoint_defaults = bedrock_endpoints },
	/* Azure OpenAI: one host per resource (the operator's: {"name": "azure", "host":
	 * "RESOURCE.openai.azure.com"} turns it on), the deployment in the path, an
	 * api-key header; the v1 API (/openai/v1/...) names the model in the body. */
	{ .name = "azure", .prefix = "/v1/azure", .upstream_base = "", .host = "", .tls = true,
	  .cred = CRED_API_KEY | CRED_BEARER, .shape = SHAPE_OPENAI, .model_path = "/openai/deployments/",
	  .model_in_body = true, .direct_keys = true, .require_key = true, .endpoint_defaults = azure_endpoints },
	/* Cohere's v2 chat: OpenAI-like requests and tools, answers and errors of its own. */
	{ .name = "cohere", .prefix = "/v1/cohere", .upstream_base = "", .host = "api.cohere.com", .tls = true,
	  .cred = CRED_BEARER, .shape = SHAPE_COHERE, .model_in_body = true, .direct_keys = true, .require_key = true },
	OPENAI_COMPATIBLE("cerebras", "api.cerebras.ai", "/v1"),
	OPENAI_COMPATIBLE("deepseek", "api.deepseek.com", ""),
	OPENAI_COMPATIBLE("groq", "api.groq.com", "/openai/v1"),
	OPENAI_COMPATIBLE("mistral", "api.mistral.ai", "/v1"),
	OPENAI_COMPATIBLE("openrouter", "openrouter.ai", "/api/v1"),
	OPENAI_COMPATIBLE("perplexity", "api.perplexity.ai", ""),
	OPENAI_COMPATIBLE("xai", "api.x.ai", "/v1"),
	OPENAI_COMPATIBLE("zhipuai", "open.bigmodel.cn", "/api/paas/v4"),
	OPENAI_COMPATIBLE("kimi", "api.moonshot.ai", "/v1"),
	OPENAI_COMPATIBLE("minimax", "api.minimax.io", "/v1"),
	LOCAL_SERVER("ollama", "127.0.0.1:11434"),
	LOCAL_SERVER("vllm", "127.0.0.1:8000"),
	/* Any local OpenAI-compatible server (llama.cpp, LM Studio...). */
	LOCAL_SERVER("local", "127.0.0.1:11434"),
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
static const char *const cohere_endpoints[] = {
	"POST /v2/chat", "POST /v2/embed", "POST /v2/rerank", "GET /v1/models", "GET /v1/models/*", NULL,
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
	set_endpoints(&p->endpoints, p->endpoint_defaults         ? p->endpoint_defaults
	                             : p->shape == SHAPE_ANTHROPIC ? anthropic_endpoints
	                             : p->shape == SHAPE_COHERE    ? cohere_endpoints
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

const struct provider *provider_named(const struct provider_table *t, struct spop_slice name)
{
	for (int i = 0; i < t->n; i++)
		if (spop_slice_eq(name, t->p[i].name, strlen(t->p[i].name)))
			return &t->p[i];
	return NULL;
}

const struct provider *provider_match(const struct provider_table *t, struct spop_slice path,
                                      struct spop_slice *rest)
{
	const struct provider *best = NULL;
	size_t best_len = 0;
	for (int i = 0; i < t->n; i++) {
		const struct provider *p = &t->p[i];
		size_t n = strlen(p->prefix);
		if (!p->host[0])
			continue; /* not configured yet (Azure's resource) */
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

/* ---- HAProxy backends ---- */

/* Appends to dst as snprintf does; *o counts what was needed even past room. */
__attribute__((format(printf, 4, 5))) static void outf(char *dst, size_t room, size_t *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(*o < room ? dst + *o : NULL, *o < room ? room - *o : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*o += (size_t)n;
}
#define OUT(...) outf(dst, room, &o, __VA_ARGS__)

/* The streaming backend's filter: which paths of each event's JSON hold which count. */
static size_t stream_filter(enum err_shape shape, char *dst, size_t room)
{
	size_t o = 0;
	const struct usage_shape *us = &usage_shapes[shape];
	OUT(".if !defined(ARCHESTRA_NO_METER) && !defined(ARCHESTRA_DISABLE_AGENT)\n"
	    "    # Server-sent events pass as they come; usage and the time to first byte are\n"
	    "    # read. When the agent asks (txn.arch.add_usage), the body asks for usage.\n"
	    "    http-response set-var(txn.arch.up_status) status\n"
	    "    http-request set-header content-length \"%%[req.hdr(content-length),add(%zu)]\" if "
	    "{ var(txn.arch.add_usage) -m found } { req.hdr(content-length) -m found }\n"
	    "    filter lua.archestra-stream 'insert=%s'",
	    strlen(USAGE_STREAM_OPTION), USAGE_STREAM_OPTION);
	for (int f = 0; f < UF_COUNT; f++) {
		int n = 0;
		for (int a = 0; a < USAGE_ALTS; a++) {
			if (!us->stream[a][f])
				continue;
			if (n++ == 0)
				OUT(" '%s=$.%s", usage_field_names[f], us->stream[a][f]);
			else
				OUT(",$.%s", us->stream[a][f]);
		}
		if (n)
			OUT("'");
	}
	OUT("\n.endif\n");
	return o;
}

/* The rules that read a whole JSON response's usage into txn.arch.u_* (usage.h):
 * the body is buffered (it comes at once: no stream is held) and each count is
 * one json_query. A second alternative is read only when the first found
 * neither input nor output (txn.arch.u_alt marks it). Streams: stream_filter. */
static size_t usage_rules(enum err_shape shape, char *dst, size_t room)
{
	size_t o = 0;
	const struct usage_shape *us = &usage_shapes[shape];
	OUT(".if !defined(ARCHESTRA_NO_METER) && !defined(ARCHESTRA_DISABLE_AGENT)\n"
	    "    # Usage for the agents' meter (the call's log record carries it)\n"
	    "    acl arch_json res.hdr(content-type) -m beg -i application/json\n"
	    "    http-response set-var(txn.arch.up_status) status\n"
	    "    http-response wait-for-body time 30s if arch_json\n");
	for (int a = 0; a < USAGE_ALTS; a++) {
		const char *const *paths = us->alt[a];
		if (!paths[UF_IN] && !paths[UF_OUT])
			continue;
		const char *cond = "";
		if (a > 0) {
			OUT("    http-response set-var(txn.arch.u_alt) int(%d) if arch_json !{ var(txn.arch.u_in) -m found } "
			    "!{ var(txn.arch.u_out) -m found }\n", a);
			cond = " { var(txn.arch.u_alt) -m found }";
		}
		for (int f = 0; f < UF_COUNT; f++)
			if (paths[f])
				OUT("    http-response set-var(txn.arch.%s) res.body,json_query('$.%s','int') if arch_json%s\n",
				    usage_field_names[f], paths[f], cond);
	}
	OUT(".endif\n");
	return o;
}

size_t provider_backends_text(const struct provider_table *t, char *dst, size_t room)
{
	size_t o = 0;
	OUT("# GENERATED by `archestra-spoa haproxy-backends`: HAProxy's backend for each provider\n"
	    "# the agent knows, from the same table. Load it with a second -f after haproxy.cfg.\n"
	    "# Move a provider without regenerating: ARCHESTRA_<NAME>_ADDR=host:port in HAProxy's\n"
	    "# environment. SNI and the certificate check always use the provider's real name;\n"
	    "# health checks are TLS handshakes (no API call, no key needed).\n");
	for (int i = 0; i < t->n; i++) {
		const struct provider *p = &t->p[i];
		if (!p->host[0]) {
			OUT("\n# llm_%s: give its host in the agent's config to turn it on\n", p->name);
			continue;
		}
		char var[48];
		size_t v = (size_t)snprintf(var, sizeof(var), "ARCHESTRA_");
		for (const char *c = p->name; *c && v + 6 < sizeof(var); c++)
			var[v++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		memcpy(var + v, "_ADDR", 6);
		/* llm_<name>, and llm_<name>.stream for the calls the agent says stream:
		 * the same server (its health tracked, not checked twice), with the Lua
		 * filter that reads usage from the events (haproxy-cfg/archestra.lua). */
		for (int stream = 0; stream < 2; stream++) {
			OUT("\nbackend llm_%s%s\n", p->name, stream ? ".stream" : "");
			if (p->tls)
				OUT("    server %s \"${%s-%s%s}\" ssl verify required ca-file \"${ARCHESTRA_CA_FILE-@system-ca}\" "
				    "sni str(%s) ",
				    p->name, var, p->addr[0] ? p->addr : p->host, p->addr[0] ? "" : ":443", p->host);
			else
				OUT("    server %s \"${%s-%s%s}\" ", p->name, var, p->addr[0] ? p->addr : p->host,
				    p->addr[0] ? "" : ":80");
			if (stream)
				OUT("track llm_%s/%s\n", p->name, p->name);
			else if (p->tls)
				OUT("check check-sni %s inter 10s\n", p->host);
			else
				OUT("check inter 10s\n");
			if (stream) {
				/* Each event goes out at once: HAProxy otherwise waits for full
				 * packets while more data is announced (~200 ms stalls). */
				OUT("    option http-no-delay\n");
				/* never held: a JSON stream (Gemini without alt=sse) is not read */
				o += stream_filter(p->shape, o < room ? dst + o : NULL, o < room ? room - o : 0);
			}
			else
				o += usage_rules(p->shape, o < room ? dst + o : NULL, o < room ? room - o : 0);
		}
	}
	return o;
}

#undef OUT

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

/* A DNS name (letters, digits, '-', '.'), optionally ":port": it becomes the Host
 * header, and HAProxy's sni/check-sni arguments in providers.cfg, unquoted, where
 * '#', '$' or a space would mean something else. */
static bool valid_host(const char *s)
{
	if (!*s || *s == '.' || *s == '-' || *s == ':')
		return false;
	const char *colon = NULL;
	for (const char *c = s; *c; c++) {
		if (*c == ':' && !colon)
			colon = c;
		else if (colon ? !(*c >= '0' && *c <= '9')
		               : !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		                   *c == '-' || *c == '.'))
			return false;
	}
	return !colon || (colon[1] && strlen(colon + 1) <= 5);
}

/* "host:port" (an IPv6 host in brackets): what HAProxy's server line takes. */
static bool valid_addr(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
		return false;
	for (const char *c = colon + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	int port = atoi(colon + 1);
	if (port < 1 || port > 65535)
		return false;
	return strpbrk(s, " \t\r\n\"'#$\\/{}") == NULL;
}

static int apply_one(struct provider_table *t, const cJSON *o, int idx, char *err, size_t errlen)
{
	enum { K_NAME, K_ENABLED, K_PREFIX, K_UPSTREAM_BASE, K_HOST, K_ADDRESS, K_TLS, K_CREDENTIAL, K_ERROR_SHAPE,
	       K_ENDPOINTS, K_DIRECT_KEYS, K_REQUIRE_KEY, K_STREAM_USAGE_OPTION, NKEYS };
	static const char *const keys[] = {
		"name", "enabled", "prefix", "upstream_base", "host", "address", "tls", "credential", "error_shape",
		"endpoints", "direct_keys", "require_key", "stream_usage_option", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	/* by CRED_* bit: bearer 0x1, x-api-key 0x2, x-goog-api-key 0x4, query-key 0x8, api-key 0x10 */
	static const char *const creds[] = { "bearer", "x-api-key", "x-goog-api-key", "query-key", "api-key", NULL };
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
		np.tls = true;
		np.shape = SHAPE_OPENAI;
		np.model_in_body = true;
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
			if (rc == 0 && !valid_host(np.host))
				rc = cfg_fail(err, errlen, path, k, "expected a host name like \"api.mistral.ai\"");
			break;
		case K_ADDRESS:
			rc = cfg_str(it, path, k, 0, np.addr, sizeof(np.addr), NULL, err, errlen);
			if (rc == 0 && !valid_addr(np.addr))
				rc = cfg_fail(err, errlen, path, k, "expected \"host:port\" like \"10.0.0.7:8000\" or \"[::1]:8000\"");
			break;
		case K_TLS:
			rc = cfg_bool(it, path, k, 0, &np.tls, NULL, err, errlen);
			break;
		case K_CREDENTIAL:
			rc = cfg_enum_set(it, path, k, CFG_SCALAR, creds, &np.cred,
			                  "expected \"bearer\", \"x-api-key\", \"x-goog-api-key\", \"query-key\", \"api-key\" or an "
			                  "array of them",
			                  err, errlen);
			break;
		case K_ERROR_SHAPE:
			rc = cfg_enum(it, path, k, 0, errjson_shape_names, &shape, "expected \"openai\", \"anthropic\", \"gemini\", \"cohere\" or \"bedrock\"",
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
		case K_STREAM_USAGE_OPTION:
			rc = cfg_bool(it, path, k, 0, &np.stream_usage_option, NULL, err, errlen);
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
