/* Unit tests of the request decision: providers, credentials, truncation, error bodies. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "errjson.h"
#include "handler.h"
#include "hdrs.h"
#include "provider.h"
#include "request.h"

static struct provider_table providers;
static struct request_cfg rcfg;

static int setup(void **st)
{
	(void)st;
	providers_builtin(&providers);
	rcfg.providers = &providers;
	rcfg.truncated = TRUNC_DENY;
	return 0;
}

/* A message built from simple string arguments; hdrs given as "name: value" lines. */
struct msgbuf {
	uint8_t bytes[8192];
	uint8_t hdrs[4096];
	struct spop_msg m;
};

static void add_arg(struct spop_msg *m, const char *name, struct spop_data d)
{
	m->args[m->nargs].name = (struct spop_slice){ (const uint8_t *)name, strlen(name) };
	m->args[m->nargs].val = d;
	m->nargs++;
}

static struct spop_data str(const char *s)
{
	return (struct spop_data){ .type = SPOP_T_STRING, .v.s = { (const uint8_t *)s, strlen(s) } };
}

static struct spop_data i32(int64_t v)
{
	return (struct spop_data){ .type = SPOP_T_INT32, .v.i = v };
}

/* Encodes "a: b\n" lines into hdrs_bin. */
static struct spop_data hdrs_bin(struct msgbuf *b, const char *lines)
{
	struct spop_writer w;
	spop_writer_init(&w, b->hdrs, sizeof(b->hdrs));
	const char *p = lines;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		const char *end = nl ? nl : p + strlen(p);
		const char *colon = memchr(p, ':', (size_t)(end - p));
		assert_non_null(colon);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		spop_put_name(&w, p, (size_t)(colon - p));
		spop_put_name(&w, v, (size_t)(end - v));
		p = nl ? nl + 1 : NULL;
	}
	spop_put_raw(&w, "\0\0", 2);
	assert_false(w.overflow);
	return (struct spop_data){ .type = SPOP_T_BINARY, .v.s = { b->hdrs, (size_t)(w.p - b->hdrs) } };
}

static struct msgbuf *req(const char *path, const char *hdr_lines, const char *query)
{
	struct msgbuf *b = calloc(1, sizeof(*b));
	b->m.name = (struct spop_slice){ (const uint8_t *)"archestra-req", 13 };
	add_arg(&b->m, "id", str("7F000001:1"));
	add_arg(&b->m, "method", str("POST"));
	if (path)
		add_arg(&b->m, "path", str(path));
	add_arg(&b->m, "query", query ? str(query) : (struct spop_data){ .type = SPOP_T_NULL });
	add_arg(&b->m, "hdrs", hdrs_bin(b, hdr_lines));
	return b;
}

static void decide(struct msgbuf *b, struct req_decision *d)
{
	request_decide(&rcfg, NULL, &b->m, d);
	free(b);
}

static void routes_each_builtin_provider(void **st)
{
	(void)st;
	struct { const char *path, *hdrs, *query, *prov, *upstream; unsigned where; } cases[] = {
		{ "/v1/openai/chat/completions", "authorization: Bearer sk-1", NULL, "openai", "/v1/chat/completions", CRED_BEARER },
		{ "/v1/openai/models", "Authorization: bearer  sk-2 ", NULL, "openai", "/v1/models", CRED_BEARER },
		{ "/v1/anthropic/v1/messages", "x-api-key: sk-ant-1", NULL, "anthropic", "/v1/messages", CRED_X_API_KEY },
		{ "/v1/gemini/v1beta/models/gemini-2.0-flash:generateContent", "x-goog-api-key: AIza1", NULL, "gemini",
		  "/v1beta/models/gemini-2.0-flash:generateContent", CRED_GOOG },
		{ "/v1/gemini/v1beta/models/g:streamGenerateContent", "host: x", "alt=sse&key=AIza2", "gemini",
		  "/v1beta/models/g:streamGenerateContent", CRED_QUERY_KEY },
		{ "/v1/local/chat/completions", "host: x", NULL, "local", "/v1/chat/completions", 0 },
		{ "/v1/openai", "authorization: Bearer k", NULL, "openai", "/v1", CRED_BEARER },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct req_decision d;
		decide(req(cases[i].path, cases[i].hdrs, cases[i].query), &d);
		if (d.status)
			fail_msg("case %zu (%s): refused %d %s: %s", i, cases[i].path, d.status, d.reason, d.message);
		assert_string_equal(d.prov->name, cases[i].prov);
		char up[256];
		snprintf(up, sizeof(up), "%s%.*s", d.prov->upstream_base, (int)d.rest.len, d.rest.ptr);
		assert_string_equal(up, cases[i].upstream);
		assert_int_equal(d.cred_where, cases[i].where);
		assert_string_equal(d.reason, "allowed");
	}
}

static void unknown_prefixes_are_404(void **st)
{
	(void)st;
	const char *paths[] = { "/v1/chat/completions", "/v1/openaix/chat", "/", "/v2/openai/x", "/v1/OPENAI/x" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct req_decision d;
		decide(req(paths[i], "authorization: Bearer k", NULL), &d);
		assert_int_equal(d.status, 404);
		assert_string_equal(d.reason, "unknown_provider");
		assert_null(d.prov);
		assert_non_null(strstr(d.message, "/v1/openai"));
	}
	struct req_decision d;
	decide(req(NULL, "", NULL), &d);
	assert_int_equal(d.status, 400);
}

static void credentials(void **st)
{
	(void)st;
	struct req_decision d;
	decide(req("/v1/openai/chat/completions", "host: a", NULL), &d);
	assert_int_equal(d.status, 401);
	assert_string_equal(d.reason, "missing_credential");
	assert_non_null(strstr(d.message, "Authorization: Bearer"));

	/* A key in a place this provider's clients do not use does not count. */
	decide(req("/v1/openai/chat/completions", "x-api-key: sk-1", NULL), &d);
	assert_int_equal(d.status, 401);
	decide(req("/v1/anthropic/v1/messages", "authorization: Basic abc", NULL), &d);
	assert_int_equal(d.status, 401);
	assert_non_null(strstr(d.message, "x-api-key"));
	decide(req("/v1/openai/chat/completions", "authorization: Bearer ", NULL), &d);
	assert_int_equal(d.status, 401);

	/* Two different keys: refused; the same key twice: fine. */
	decide(req("/v1/anthropic/v1/messages", "x-api-key: k1\nauthorization: Bearer k2", NULL), &d);
	assert_int_equal(d.status, 400);
	assert_string_equal(d.reason, "ambiguous_credential");
	decide(req("/v1/gemini/v1beta/models/g:generateContent", "x-goog-api-key: k1", "key=k2"), &d);
	assert_int_equal(d.status, 400);
	decide(req("/v1/anthropic/v1/messages", "x-api-key: k1\nauthorization: Bearer k1", NULL), &d);
	assert_int_equal(d.status, 0);

	/* The credential is a slice of the frame, never copied into the message. */
	struct msgbuf *b = req("/v1/openai/chat/completions", "authorization: Bearer sk-secret-123", NULL);
	request_decide(&rcfg, NULL, &b->m, &d);
	assert_int_equal(d.credential.len, 13);
	assert_memory_equal(d.credential.ptr, "sk-secret-123", 13);
	assert_true(d.credential.ptr >= b->hdrs && d.credential.ptr < b->hdrs + sizeof(b->hdrs));
	free(b);

	/* Direct keys switched off for a provider. */
	for (int i = 0; i < providers.n; i++)
		if (strcmp(providers.p[i].name, "openai") == 0)
			providers.p[i].direct_keys = false;
	decide(req("/v1/openai/chat/completions", "authorization: Bearer sk-1", NULL), &d);
	assert_int_equal(d.status, 401);
	assert_string_equal(d.reason, "direct_key_refused");
	assert_null(strstr(d.message, "sk-1"));
}

static void truncated_bodies(void **st)
{
	(void)st;
	struct req_decision d;
	struct msgbuf *b = req("/v1/openai/chat/completions", "authorization: Bearer k", NULL);
	add_arg(&b->m, "body_len", i32(16000));
	add_arg(&b->m, "body_size", i32(500000));
	request_decide(&rcfg, NULL, &b->m, &d);
	assert_int_equal(d.status, 413);
	assert_string_equal(d.reason, "body_truncated");
	assert_non_null(strstr(d.message, "tune.bufsize"));
	assert_non_null(strstr(d.message, "500000"));
	assert_string_equal(d.prov->name, "openai");
	rcfg.truncated = TRUNC_ALLOW;
	request_decide(&rcfg, NULL, &b->m, &d);
	assert_int_equal(d.status, 0);
	rcfg.truncated = TRUNC_DENY;
	free(b);

	b = req("/v1/openai/chat/completions", "authorization: Bearer k", NULL);
	add_arg(&b->m, "body_len", i32(100));
	add_arg(&b->m, "body_size", i32(100));
	decide(b, &d);
	assert_int_equal(d.status, 0);
}

static void malformed_hdrs_are_no_credential(void **st)
{
	(void)st;
	struct msgbuf *b = req("/v1/openai/chat/completions", "", NULL);
	static const uint8_t bad[] = { 13, 'a', 'u', 't', 'h' }; /* length past the end */
	b->m.args[b->m.nargs - 1].val = (struct spop_data){ .type = SPOP_T_BINARY, .v.s = { bad, sizeof(bad) } };
	struct req_decision d;
	decide(b, &d);
	assert_int_equal(d.status, 401);
}

/* Error bodies parse as JSON and have each provider's shape. */
static void error_shapes(void **st)
{
	(void)st;
	char buf[800];
	const char *msg = "bad \"quote\" \\ and\ncontrol \x01";
	assert_true(errjson_format(SHAPE_OPENAI, 401, "missing_credential", msg, buf, sizeof(buf)) > 0);
	cJSON *j = cJSON_Parse(buf);
	assert_non_null(j);
	cJSON *e = cJSON_GetObjectItem(j, "error");
	assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring, msg);
	assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, "authentication_error");
	assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, "missing_credential");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "param")));
	cJSON_Delete(j);

	assert_true(errjson_format(SHAPE_ANTHROPIC, 403, "x", "m", buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "error");
	e = cJSON_GetObjectItem(j, "error");
	assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, "permission_error");
	cJSON_Delete(j);

	assert_true(errjson_format(SHAPE_GEMINI, 404, "x", "m", buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	e = cJSON_GetObjectItem(j, "error");
	assert_int_equal(cJSON_GetObjectItem(e, "code")->valueint, 404);
	assert_string_equal(cJSON_GetObjectItem(e, "status")->valuestring, "NOT_FOUND");
	cJSON_Delete(j);

	assert_true(errjson_format(SHAPE_COHERE, 403, "rule-1", "archestra: \"no\"", buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_string_equal(cJSON_GetObjectItem(j, "message")->valuestring, "archestra: \"no\"");
	assert_string_equal(cJSON_GetObjectItem(j, "code")->valuestring, "rule-1");
	cJSON_Delete(j);

	assert_true(errjson_format(SHAPE_BEDROCK, 401, "missing_credential", "archestra: no key", buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "{\"message\":\"archestra: no key\",\"code\":\"missing_credential\"}");

	assert_int_equal(errjson_format(SHAPE_OPENAI, 400, "x", "m", buf, 20), 0);
	assert_string_equal(buf, "");
}

/* Finds a txn set-var in an action list; returns its value. */
static int find_var(const uint8_t *p, const uint8_t *end, const char *name, struct spop_data *out)
{
	struct spop_reader r = { p, end };
	while (r.p < r.end) {
		assert_int_equal(r.p[0], SPOP_ACT_SET_VAR);
		assert_int_equal(r.p[2], SPOP_SCOPE_TXN);
		r.p += 3;
		struct spop_slice n;
		struct spop_data v;
		assert_int_equal(spop_get_name(&r, &n), 0);
		assert_int_equal(spop_get_data(&r, &v), 0);
		if (spop_slice_eq(n, name, strlen(name))) {
			*out = v;
			return 1;
		}
	}
	return 0;
}

static void decision_variables(void **st)
{
	(void)st;
	uint8_t buf[2048];
	struct spop_writer w;
	struct spop_data v;
	struct req_decision d;
	struct msgbuf *b = req("/v1/anthropic/v1/messages", "x-api-key: sk-ant-secret", NULL);
	request_decide(&rcfg, NULL, &b->m, &d);
	spop_writer_init(&w, buf, sizeof(buf));
	spoa_write_decision(&d, NULL, &w);
	assert_false(w.overflow);
	assert_true(find_var(buf, w.p, "verdict", &v) && SPOP_SLICE_IS(v.v.s, "allow"));
	assert_true(find_var(buf, w.p, "provider", &v) && SPOP_SLICE_IS(v.v.s, "anthropic"));
	assert_true(find_var(buf, w.p, "upstream_path", &v) && SPOP_SLICE_IS(v.v.s, "/v1/messages"));
	assert_true(find_var(buf, w.p, "upstream_host", &v) && SPOP_SLICE_IS(v.v.s, "api.anthropic.com"));
	assert_false(find_var(buf, w.p, "status", &v));
	assert_false(find_var(buf, w.p, "inspect_res", &v)); /* off by default */
	/* The direct key passes through untouched: the agent sets no substitute. */
	assert_false(find_var(buf, w.p, "auth_val", &v));
	assert_null(memmem(buf, (size_t)(w.p - buf), "sk-ant-secret", 13));
	rcfg.inspect_responses = true;
	request_decide(&rcfg, NULL, &b->m, &d);
	spop_writer_init(&w, buf, sizeof(buf));
	spoa_write_decision(&d, NULL, &w);
	assert_true(find_var(buf, w.p, "inspect_res", &v) && SPOP_SLICE_IS(v.v.s, "1"));
	rcfg.inspect_responses = false;
	free(b);

	b = req("/v1/anthropic/v1/messages", "host: x", NULL);
	request_decide(&rcfg, NULL, &b->m, &d);
	spop_writer_init(&w, buf, sizeof(buf));
	spoa_write_decision(&d, NULL, &w);
	assert_true(find_var(buf, w.p, "verdict", &v) && SPOP_SLICE_IS(v.v.s, "deny"));
	assert_true(find_var(buf, w.p, "status", &v) && v.type == SPOP_T_INT32 && v.v.i == 401);
	assert_true(find_var(buf, w.p, "reason", &v) && SPOP_SLICE_IS(v.v.s, "missing_credential"));
	assert_true(find_var(buf, w.p, "body", &v));
	char body[800];
	memcpy(body, v.v.s.ptr, v.v.s.len);
	body[v.v.s.len] = '\0';
	cJSON *j = cJSON_Parse(body);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "error");
	cJSON_Delete(j);
	free(b);
}

static void provider_config(void **st)
{
	(void)st;
	struct { const char *json; const char *err; } bad[] = {
		{ "{}", "expected an array" },
		{ "[{\"name\":\"Bad Name\"}]", "providers[0].name" },
		{ "[{\"name\":\"acme\"}]", "needs \"prefix\" and \"host\"" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"address\":\"h\"}]", "providers[0].address" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"address\":\"h:99999\"}]", "providers[0].address" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"address\":\"${X}:80\"}]", "providers[0].address" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"tls\":\"no\"}]", "providers[0].tls" },
		{ "[{\"name\":\"m\",\"prefix\":\"v1/m\",\"host\":\"h\"}]", "providers[0].prefix" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m/\",\"host\":\"h\"}]", "providers[0].prefix" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/openai\",\"host\":\"h\"}]", "already the prefix of provider \"openai\"" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"credential\":\"cookie\"}]", "credential" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"error_shape\":\"xml\"}]", "error_shape" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"colour\":1}]", "providers[0].colour: unknown key" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"a b\"}]", "providers[0].host" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h#x\"}]", "providers[0].host" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h${X}\"}]", "providers[0].host" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h:99x\"}]", "providers[0].host" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"-h\"}]", "providers[0].host" },
	};
	char err[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct provider_table t;
		providers_builtin(&t);
		cJSON *j = cJSON_Parse(bad[i].json);
		assert_int_equal(providers_apply_json(&t, j, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: '%s' lacks '%s'", bad[i].json, err, bad[i].err);
		cJSON_Delete(j);
	}
	struct provider_table t;
	providers_builtin(&t);
	int builtin = t.n;
	cJSON *j = cJSON_Parse("[{\"name\":\"acme\",\"prefix\":\"/v1/acme\",\"upstream_base\":\"/v1\","
	                       "\"host\":\"api.acme.example\",\"address\":\"[::1]:8443\"},{\"name\":\"gemini\",\"enabled\":false},"
	                       "{\"name\":\"openai\",\"direct_keys\":false,\"credential\":[\"bearer\",\"x-api-key\"]}]");
	assert_int_equal(providers_apply_json(&t, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	assert_int_equal(t.n, builtin); /* one added, one removed */
	struct spop_slice rest, path = { (const uint8_t *)"/v1/acme/chat/completions", 25 };
	const struct provider *p = provider_match(&t, path, &rest);
	assert_non_null(p);
	assert_string_equal(p->name, "acme");
	assert_int_equal(p->shape, SHAPE_OPENAI);
	assert_true(p->tls && p->model_in_body);
	assert_string_equal(p->addr, "[::1]:8443");
	/* HAProxy's backend for it: the address movable by the environment, TLS on the host's name */
	static char text[128 * 1024];
	size_t n = provider_backends_text(&t, text, sizeof(text));
	assert_true(n < sizeof(text));
	assert_non_null(strstr(text, "backend llm_acme\n    server acme \"${ARCHESTRA_ACME_ADDR-[::1]:8443}\" ssl verify "
	                             "required ca-file \"${ARCHESTRA_CA_FILE-@system-ca}\" sni str(api.acme.example) check "
	                             "check-sni api.acme.example inter 10s\n"));
	assert_null(strstr(text, "llm_gemini"));
	assert_non_null(strstr(text, "server vllm \"${ARCHESTRA_VLLM_ADDR-127.0.0.1:8000}\" check inter 10s\n"));
	/* and its streaming twin: the same server, its health tracked, the stream filter */
	assert_non_null(strstr(text, "backend llm_acme.stream\n    server acme \"${ARCHESTRA_ACME_ADDR-[::1]:8443}\" ssl "
	                             "verify required ca-file \"${ARCHESTRA_CA_FILE-@system-ca}\" sni str(api.acme.example) "
	                             "track llm_acme/acme\n"));
	assert_non_null(strstr(text, "filter lua.archestra-stream 'insert=\"stream_options\""));
	assert_non_null(strstr(text, " 'u_in=$.usage.prompt_tokens,$.response.usage.input_tokens' "));
	assert_true(provider_backends_text(&t, text, 64) == n); /* cut, and says how much it needed */
	/* Azure is off until its resource host is given */
	path = (struct spop_slice){ (const uint8_t *)"/v1/azure/openai/deployments/d/chat/completions", 47 };
	assert_null(provider_match(&t, path, &rest));
	j = cJSON_Parse("[{\"name\":\"azure\",\"host\":\"res.openai.azure.com\"}]");
	assert_int_equal(providers_apply_json(&t, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	p = provider_match(&t, path, &rest);
	assert_non_null(p);
	assert_true(p->cred & CRED_API_KEY);
	assert_string_equal(p->model_path, "/openai/deployments/");
	path = (struct spop_slice){ (const uint8_t *)"/v1/gemini/x", 12 };
	assert_null(provider_match(&t, path, &rest));
	path = (struct spop_slice){ (const uint8_t *)"/v1/openai/x", 12 };
	p = provider_match(&t, path, &rest);
	assert_false(p->direct_keys);
	assert_int_equal(p->cred, CRED_BEARER | CRED_X_API_KEY);
}

static void longest_prefix_wins(void **st)
{
	(void)st;
	struct provider_table t;
	char err[256];
	providers_builtin(&t);
	cJSON *j = cJSON_Parse("[{\"name\":\"azure\",\"prefix\":\"/v1/openai/azure\",\"host\":\"x.openai.azure.com\"}]");
	assert_int_equal(providers_apply_json(&t, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	struct spop_slice rest, path = { (const uint8_t *)"/v1/openai/azure/chat", 21 };
	assert_string_equal(provider_match(&t, path, &rest)->name, "azure");
	assert_true(SPOP_SLICE_IS(rest, "/chat"));
	path = (struct spop_slice){ (const uint8_t *)"/v1/openai/azurex", 17 };
	assert_string_equal(provider_match(&t, path, &rest)->name, "openai");
}

static void hdrs_iteration(void **st)
{
	(void)st;
	struct msgbuf b;
	struct spop_data d = hdrs_bin(&b, "Host: a\nX-Archestra-Agent-Id:  agent 7 \nempty:");
	struct spop_reader r = { d.v.s.ptr, d.v.s.ptr + d.v.s.len };
	struct spop_slice n, v;
	assert_int_equal(hdrs_next(&r, &n, &v), 1);
	assert_true(SLICE_IEQ(n, "host"));
	assert_int_equal(hdrs_next(&r, &n, &v), 1);
	assert_true(SLICE_IEQ(n, "x-archestra-agent-id"));
	assert_true(SPOP_SLICE_IS(slice_trim(v), "agent 7"));
	assert_int_equal(hdrs_next(&r, &n, &v), 1);
	assert_int_equal(v.len, 0);
	assert_int_equal(hdrs_next(&r, &n, &v), 0);
	static const uint8_t trunc[] = { 4, 'h', 'o', 's', 't', 9, 'a' };
	r = (struct spop_reader){ trunc, trunc + sizeof(trunc) };
	assert_int_equal(hdrs_next(&r, &n, &v), -1);
}


/* ---- the bypass catalogue: each way a reading could differ from the provider's ---- */

#include "keys.h"
#include "policy.h"

#define VK_INTERN "arch_vk_intern000007_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define VK_FILES  "arch_vk_filesgrant08_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define VK_ODD    "arch_vk_oddowner0009_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"

static struct auth cat_auth;
static char real_openai[] = "sk-real-openai", real_anthropic[] = "sk-ant-real", real_gemini[] = "AIza-real";

static void hexkey(const char *key, char *out)
{
	uint8_t h[32];
	sha256(key, strlen(key), h);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

static int cat_setup(void **st)
{
	setup(st);
	char h1[65], h2[65], h3[65], json[2048], err[256];
	hexkey(VK_INTERN, h1);
	hexkey(VK_FILES, h2);
	hexkey(VK_ODD, h3);
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"keys\":["
	         "{\"id\":\"intern000007\",\"owner\":\"intern-7\",\"secrets\":[{\"sha256\":\"%s\"}]},"
	         "{\"id\":\"filesgrant08\",\"owner\":\"ops\",\"endpoints\":[\"POST /files\",\"GET /files/*\"],"
	         "\"secrets\":[{\"sha256\":\"%s\"}]},"
	         "{\"id\":\"oddowner0009\",\"owner\":\"eve verdict=allow\",\"secrets\":[{\"sha256\":\"%s\"}]}]}",
	         h1, h2, h3);
	memset(&cat_auth, 0, sizeof(cat_auth));
	assert_int_equal(keystore_parse(json, strlen(json), &cat_auth.keys, err, sizeof(err)), 0);
	const char *prov[] = { "openai", "anthropic", "gemini" };
	char *real[] = { real_openai, real_anthropic, real_gemini };
	for (int i = 0; i < 3; i++) {
		strcpy(cat_auth.provider_keys.k[i].provider, prov[i]);
		cat_auth.provider_keys.k[i].key = real[i];
		cat_auth.provider_keys.k[i].len = strlen(real[i]);
	}
	cat_auth.provider_keys.n = 3;
	const char *pol =
		"{\"rules\":["
		"{\"id\":\"interns-small\",\"when\":{\"user_id\":\"intern-*\"},\"models\":{\"deny\":[\"*-large*\"]}},"
		"{\"id\":\"small-models\",\"when\":{\"provider\":\"openai\"},\"models\":{\"allow\":[\"gpt-4o-mini*\"]}},"
		"{\"id\":\"cap\",\"max_output_tokens\":1000},"
		"{\"id\":\"no-mail\",\"tools\":{\"deny\":[\"send_email\"]}},"
		"{\"id\":\"no-stream\",\"stream\":false}],"
		"\"dlp\":{\"detectors\":{\"all\":\"deny\",\"email\":\"off\",\"phone\":\"off\"}}}";
	assert_int_equal(policy_parse(pol, strlen(pol), &cat_auth.policy, err, sizeof(err)), 0);
	return 0;
}

static int cat_teardown(void **st)
{
	(void)st;
	keystore_free(&cat_auth.keys);
	policy_free(&cat_auth.policy);
	return 0;
}

struct call {
	const char *method, *path, *hdrs, *query, *body;
	size_t blen;          /* 0: strlen(body) */
	int eom;              /* 0: absent, 1: true, 2: false */
	int64_t size;         /* body_size when > 0 (body_len is the body's length) */
};

static void place(const struct call *c, struct req_decision *d)
{
	static struct msgbuf b;
	memset(&b, 0, sizeof(b));
	b.m.name = (struct spop_slice){ (const uint8_t *)"archestra-req", 13 };
	add_arg(&b.m, "method", str(c->method ? c->method : "POST"));
	add_arg(&b.m, "path", str(c->path));
	add_arg(&b.m, "query", c->query ? str(c->query) : (struct spop_data){ .type = SPOP_T_NULL });
	add_arg(&b.m, "hdrs", hdrs_bin(&b, c->hdrs ? c->hdrs : "authorization: Bearer " VK_INTERN));
	size_t bl = c->body ? (c->blen ? c->blen : strlen(c->body)) : 0;
	add_arg(&b.m, "body", (struct spop_data){ .type = SPOP_T_BINARY, .v.s = { (const uint8_t *)c->body, bl } });
	add_arg(&b.m, "body_len", i32((int64_t)bl));
	add_arg(&b.m, "body_size", i32(c->size ? c->size : (int64_t)bl));
	if (c->eom)
		add_arg(&b.m, "eom", (struct spop_data){ .type = SPOP_T_BOOL, .v.b = c->eom == 1 });
	struct decide_env env = { .auth = &cat_auth, .now = 1800000000 };
	request_decide(&rcfg, &env, &b.m, d);
}

struct cat_case {
	const char *name;
	struct call c;
	int status;
	const char *reason;
};

static void run_catalogue(const struct cat_case *cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct req_decision d;
		place(&cs[i].c, &d);
		if (d.status != cs[i].status || strcmp(d.reason, cs[i].reason) != 0)
			fail_msg("%s: got %d %s (%s), want %d %s", cs[i].name, d.status, d.reason, d.message, cs[i].status,
			         cs[i].reason);
	}
}

#define CHAT "/v1/openai/chat/completions"
#define OK_BODY "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* A stream that would not report usage asks for it, at the offset after the body's
 * opening brace, only where the provider takes the member and the body has none
 * (even null, or escaped: a member added before it would lose). */
static void streams_ask_for_usage(void **st)
{
	(void)st;
	static const struct { const char *path, *body; int64_t at; } cs[] = {
		{ CHAT, "{\"model\":\"gpt-4o-mini\",\"stream\":true}", 1 },
		{ CHAT, " \r\n\t{\"model\":\"gpt-4o-mini\",\"stream\":true}", 5 },
		{ "/v1/openai/completions", "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"prompt\":\"a\"}", 1 },
		{ CHAT, "{\"model\":\"gpt-4o-mini\",\"stream\":false}", 0 },
		{ CHAT, "{\"model\":\"gpt-4o-mini\"}", 0 },
		{ CHAT, "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}", 0 },
		{ CHAT, "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":null}", 0 },
		{ CHAT, "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream\\u005foptions\":{}}", 0 },
		{ "/v1/openai/responses", "{\"model\":\"gpt-4o-mini\",\"stream\":true}", 0 },     /* reports usage itself */
		{ "/v1/groq/chat/completions", "{\"model\":\"llama-3\",\"stream\":true}", 0 },      /* not known to take it */
	};
	struct policy saved = cat_auth.policy; /* no rule: the catalogue's refuses streams */
	memset(&cat_auth.policy, 0, sizeof(cat_auth.policy));
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		struct req_decision d;
		struct call c = { .path = cs[i].path, .body = cs[i].body, .hdrs = "authorization: Bearer sk-direct-1" };
		place(&c, &d);
		if (d.status != 0 || d.add_usage_at != cs[i].at)
			fail_msg("case %zu (%s): status %d %s, add_usage_at %lld, want %lld", i, cs[i].body, d.status, d.reason,
			         (long long)d.add_usage_at, (long long)cs[i].at);
	}
	cat_auth.policy = saved;
}

static void body_read_as_the_provider_reads_it(void **st)
{
	(void)st;
	static const struct cat_case cs[] = {
		{ "honest call", { .path = CHAT, .body = OK_BODY }, 0, "allowed" },
		{ "duplicate model, last wins upstream", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"model\":\"gpt-5\"}" },
		  400, "duplicate_key" },
		{ "escaped duplicate model", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"m\\u006fdel\":\"gpt-5\"}" },
		  400, "duplicate_key" },
		{ "escaped model key alone", { .path = CHAT, .body = "{\"m\\u006fdel\":\"gpt-5\"}" }, 403, "small-models" },
		{ "escaped model value", { .path = CHAT, .body = "{\"model\":\"gpt\\u002d5\"}" }, 403, "small-models" },
		{ "model with an escape that keeps it allowed", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\\u002d2\"}" },
		  0, "allowed" },
		{ "model not a string", { .path = CHAT, .body = "{\"model\":[\"gpt-5\"]}" }, 400, "invalid_field" },
		{ "model with a space (log forging)", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini x=y\"}" }, 400,
		  "invalid_field" },
		{ "escaped max_tokens key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max\\u005ftokens\":5000}" },
		  403, "cap" },
		{ "max_tokens 1e5", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":1e5}" }, 403, "cap" },
		{ "max_tokens 100000.0", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":100000.0}" }, 403,
		  "cap" },
		{ "max_tokens as a string", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":\"100000\"}" },
		  400, "invalid_field" },
		{ "max_tokens fractional", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":10.5}" }, 400,
		  "invalid_field" },
		{ "max_completion_tokens huge", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"max_completion_tokens\":1e30}" },
		  403, "cap" },
		{ "escaped stream key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"str\\u0065am\":true}" }, 403,
		  "no-stream" },
		{ "stream as a string", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"stream\":\"true\"}" }, 400,
		  "invalid_field" },
		{ "escaped tools key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"t\\u006fols\":[{\"type\":\"function\","
		  "\"function\":{\"name\":\"send_email\"}}]}" }, 403, "no-mail" },
		{ "escaped tool name", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":\"function\","
		  "\"function\":{\"name\":\"send\\u005femail\"}}]}" }, 403, "no-mail" },
		{ "duplicate tool name", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":\"function\","
		  "\"function\":{\"name\":\"send_email\",\"name\":\"ok\"}}]}" }, 400, "duplicate_key" },
		{ "Responses API tool", { .path = "/v1/openai/responses", .body = "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":"
		  "\"function\",\"name\":\"send_email\"}]}" }, 403, "no-mail" },
		{ "Anthropic escaped tool", { .path = "/v1/anthropic/v1/messages", .hdrs = "x-api-key: " VK_INTERN,
		  .body = "{\"model\":\"claude-x\",\"max_tokens\":10,\"tools\":[{\"name\":\"send\\u005femail\"}]}" }, 403,
		  "no-mail" },
		{ "Gemini snake_case declarations", { .path = "/v1/gemini/v1beta/models/g:generateContent",
		  .hdrs = "x-goog-api-key: " VK_INTERN, .body = "{\"tools\":[{\"function_declarations\":[{\"name\":\"send_email\"}]}]}" },
		  403, "no-mail" },
		{ "Gemini snake_case limit", { .path = "/v1/gemini/v1beta/models/g:generateContent", .hdrs = "x-goog-api-key: "
		  VK_INTERN, .body = "{\"generation_config\":{\"max_output_tokens\":5000}}" }, 403, "cap" },
		{ "Gemini both spellings", { .path = "/v1/gemini/v1beta/models/g:generateContent", .hdrs = "x-goog-api-key: "
		  VK_INTERN, .body = "{\"generationConfig\":{\"maxOutputTokens\":10},\"generation_config\":{\"max_output_tokens\":5000}}" },
		  400, "invalid_field" },
		{ "deep nesting hiding the model", { .path = CHAT, .body = "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		  "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"model\":\"gpt-5\"}" },
		  400, "json_too_deep" },
		{ "invalid UTF-8", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"x\":\"\xc0\xaf\"}" }, 400, "invalid_utf8" },
		{ "lone surrogate", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"x\":\"\\ud800\"}" }, 400, "invalid_utf8" },
		{ "byte order mark", { .path = CHAT, .body = "\xef\xbb\xbf{\"model\":\"gpt-5\"}" }, 400, "invalid_json" },
		{ "broken JSON", { .path = CHAT, .body = "{\"model\":\"gpt-5\"" }, 400, "invalid_json" },
		{ "text/plain is read too", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN "\ncontent-type: text/plain",
		  .body = "{\"model\":\"gpt-5\"}" }, 403, "small-models" },
		{ "multipart is not JSON: no model, model list refuses", { .path = "/v1/openai/chat/completions",
		  .hdrs = "authorization: Bearer " VK_INTERN "\ncontent-type: multipart/form-data; boundary=x",
		  .body = "--x\r\n\r\ngpt-5\r\n--x--" }, 403, "small-models" },
		{ "multipart label on a JSON body: still read", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN
		  "\ncontent-type: multipart/form-data; boundary=x", .body = "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":"
		  "\"function\",\"function\":{\"name\":\"send_email\"}}]}" }, 403, "no-mail" },
		{ "compressed body", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN "\ncontent-encoding: gzip",
		  .body = OK_BODY }, 400, "encoded_body_refused" },
		{ "identity encoding is no encoding", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN
		  "\ncontent-encoding: identity", .body = OK_BODY }, 0, "allowed" },
		{ "a deny list by any case", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":\"function\","
		  "\"function\":{\"name\":\"SEND_Email\"}}]}" }, 403, "no-mail" },
		{ "an allow list by any case", { .path = CHAT, .body = "{\"model\":\"GPT-4o-Mini\"}" }, 0, "allowed" },
		{ "escaped AWS key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
		  "\"content\":\"AKIA\\u0049OSFODNN7EXAMPLE\"}]}" }, 403, "dlp_aws_access_key" },
		{ "escaped OpenAI key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
		  "\"content\":\"\\u0073k-proj-abcdefghijklmnopqrstuvwxyz012345\"}]}" }, 403, "dlp_openai_key" },
		{ "escaped GitHub token", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
		  "\"content\":\"ghp\\u005fabcdefghijklmnopqrstuvwxyz0123456789\"}]}" }, 403, "dlp_github_token" },
		{ "escaped PEM header", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
		  "\"content\":\"\\u002d----BEGIN RSA PRIVATE KEY-----\\nMIIE\"}]}" }, 403, "dlp_private_key" },
		{ "secret in a key", { .path = CHAT, .body = "{\"model\":\"gpt-4o-mini\",\"AKIA\\u0049OSFODNN7EXAMPLE\":1}" }, 403,
		  "dlp_aws_access_key" },
	};
	run_catalogue(cs, sizeof(cs) / sizeof(cs[0]));
}

static void paths_and_endpoints(void **st)
{
	(void)st;
	static const struct cat_case cs[] = {
		{ "files content with a lent key", { .method = "GET", .path = "/v1/openai/files/file-1/content" }, 403,
		  "endpoint_not_granted" },
		{ "delete files", { .method = "DELETE", .path = "/v1/openai/files/file-1", .body = OK_BODY }, 403,
		  "endpoint_not_granted" },
		{ "batches with a decoy body", { .path = "/v1/openai/batches", .body = OK_BODY }, 403, "endpoint_not_granted" },
		{ "vector stores", { .method = "GET", .path = "/v1/openai/vector_stores" }, 403, "endpoint_not_granted" },
		{ "GET on an inference path", { .method = "GET", .path = CHAT }, 403, "endpoint_not_granted" },
		{ "models listing", { .method = "GET", .path = "/v1/anthropic/v1/models/claude-x", .hdrs = "x-api-key: " VK_INTERN },
		  0, "allowed" },
		{ "a grant on the key", { .path = "/v1/openai/files", .hdrs = "authorization: Bearer " VK_FILES, .body = OK_BODY },
		  0, "allowed" },
		{ "a grant on the key, one segment only", { .method = "GET", .path = "/v1/openai/files/a/content",
		  .hdrs = "authorization: Bearer " VK_FILES }, 403, "endpoint_not_granted" },
		{ "a direct key is the caller's own", { .method = "GET", .path = "/v1/anthropic/v1/files/f-1/content",
		  .hdrs = "x-api-key: sk-ant-own" }, 0, "allowed" },
		{ "anthropic batches", { .path = "/v1/anthropic/v1/messages/batches", .hdrs = "x-api-key: " VK_INTERN,
		  .body = "{\"model\":\"claude-x\",\"max_tokens\":1}" }, 403, "endpoint_not_granted" },
		{ "gemini model with '=' in the path", { .path = "/v1/gemini/v1beta/models/a=b:generateContent",
		  .hdrs = "x-goog-api-key: " VK_INTERN, .body = "{}" }, 400, "invalid_field" },
		{ "gemini empty model in the path", { .path = "/v1/gemini/v1beta/models/:generateContent",
		  .hdrs = "x-goog-api-key: " VK_INTERN, .body = "{}" }, 400, "invalid_field" },
		{ "gemini files", { .method = "GET", .path = "/v1/gemini/v1beta/files", .hdrs = "x-goog-api-key: " VK_INTERN }, 403,
		  "endpoint_not_granted" },
		{ "gemini model across segments", { .path = "/v1/gemini/v1beta/models/a/b:generateContent",
		  .hdrs = "x-goog-api-key: " VK_INTERN, .body = "{}" }, 403, "endpoint_not_granted" },
		{ "dot-dot", { .path = "/v1/openai/chat/../files" }, 400, "invalid_path" },
		{ "dot", { .path = "/v1/openai/./chat/completions", .body = OK_BODY }, 400, "invalid_path" },
		{ "encoded dot-dot", { .path = "/v1/openai/chat/%2e%2e/files" }, 400, "invalid_path" },
		{ "encoded dots, upper case", { .path = "/v1/openai/chat/%2E%2E/files" }, 400, "invalid_path" },
		{ "encoded slash", { .path = "/v1/openai/chat%2fcompletions" }, 400, "invalid_path" },
		{ "encoded backslash", { .path = "/v1/openai/chat%5ccompletions" }, 400, "invalid_path" },
		{ "encoded percent", { .path = "/v1/openai/chat%252fcompletions" }, 400, "invalid_path" },
		{ "encoded NUL", { .path = "/v1/openai/chat/completions%00" }, 400, "invalid_path" },
		{ "malformed escape", { .path = "/v1/openai/chat/completions%g1" }, 400, "invalid_path" },
		{ "double slash", { .path = "/v1/openai//files" }, 400, "invalid_path" },
		{ "trailing slash", { .path = "/v1/openai/chat/completions/", .body = OK_BODY }, 400, "invalid_path" },
		{ "backslash", { .path = "/v1/openai/chat\\..\\files" }, 400, "invalid_path" },
		{ "semicolon", { .path = "/v1/openai/chat/completions;x=1", .body = OK_BODY }, 400, "invalid_path" },
		{ "encoded unreserved is decoded and allowed", { .path = "/v1/openai/chat/%63ompletions", .body = OK_BODY }, 0,
		  "allowed" },
		{ "encoded unreserved into a refused endpoint", { .method = "GET", .path = "/v1/openai/%66iles" }, 403,
		  "endpoint_not_granted" },
		{ "method override", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN "\nX-HTTP-Method-Override: DELETE",
		  .body = OK_BODY }, 400, "method_override_refused" },
	};
	run_catalogue(cs, sizeof(cs) / sizeof(cs[0]));
}

static void truncation_identity_and_query(void **st)
{
	(void)st;
	static const struct cat_case cs[] = {
		{ "no end of message (HTTP/2, no length)", { .path = CHAT, .body = OK_BODY, .eom = 2 }, 413, "body_truncated" },
		{ "end of message", { .path = CHAT, .body = OK_BODY, .eom = 1 }, 0, "allowed" },
		{ "more announced than buffered", { .path = CHAT, .body = OK_BODY, .size = 300000 }, 413, "body_truncated" },
		{ "the header cannot lift an intern out of its rule", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN
		  "\nX-Archestra-User-Id: alice", .body = "{\"model\":\"gpt-4o-mini-large\"}" }, 403, "interns-small" },
		{ "identity with '='", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN "\nX-Archestra-Agent-Id: a=b",
		  .body = OK_BODY }, 400, "invalid_identity_header" },
		{ "identity with a space", { .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN
		  "\nX-Archestra-Session-Id: a b", .body = OK_BODY }, 400, "invalid_identity_header" },
	};
	run_catalogue(cs, sizeof(cs) / sizeof(cs[0]));

	struct req_decision d;
	/* the owner wins, the header is noted as overridden */
	place(&(struct call){ .path = CHAT, .hdrs = "authorization: Bearer " VK_INTERN "\nX-Archestra-User-Id: alice",
	                      .body = OK_BODY }, &d);
	assert_int_equal(d.status, 0);
	assert_true(SPOP_SLICE_IS(d.id.v[ID_USER], "intern-7"));
	assert_true(d.user_overridden);
	/* an owner outside the safe set is escaped before it reaches logs or tags */
	place(&(struct call){ .path = CHAT, .hdrs = "authorization: Bearer " VK_ODD, .body = OK_BODY }, &d);
	assert_int_equal(d.status, 0);
	assert_true(SPOP_SLICE_IS(d.id.v[ID_USER], "eve%20verdict%3Dallow"));
	/* every key parameter leaves when the gateway substitutes; the rest stays */
	place(&(struct call){ .path = "/v1/gemini/v1beta/models/g:generateContent", .hdrs = "host: x",
	                      .query = "key=" VK_INTERN "&alt=json&key=" VK_INTERN "&%6Bey=x&KEY=y&keys=z", .body = "{}" },
	      &d);
	assert_int_equal(d.status, 0);
	assert_non_null(d.auth_hdr);
	assert_true(SPOP_SLICE_IS(d.upstream, "/v1beta/models/g:generateContent?alt=json&keys=z"));
	/* with a direct key the query is the caller's */
	place(&(struct call){ .path = "/v1/gemini/v1beta/models/g:generateContent", .hdrs = "host: x",
	                      .query = "key=AIza-own&alt=sse", .body = "{}" }, &d);
	assert_int_equal(d.status, 0);
	assert_true(SPOP_SLICE_IS(d.upstream, "/v1beta/models/g:generateContent?key=AIza-own&alt=sse"));
	/* the forwarded path is the normalized one */
	place(&(struct call){ .path = "/v1/openai/chat/%63ompletions", .body = OK_BODY }, &d);
	assert_true(SPOP_SLICE_IS(d.upstream, "/v1/chat/completions"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(routes_each_builtin_provider, setup),
		cmocka_unit_test_setup(unknown_prefixes_are_404, setup),
		cmocka_unit_test_setup(credentials, setup),
		cmocka_unit_test_setup(truncated_bodies, setup),
		cmocka_unit_test_setup(malformed_hdrs_are_no_credential, setup),
		cmocka_unit_test_setup(error_shapes, setup),
		cmocka_unit_test_setup(decision_variables, setup),
		cmocka_unit_test_setup(provider_config, setup),
		cmocka_unit_test_setup(longest_prefix_wins, setup),
		cmocka_unit_test_setup(hdrs_iteration, setup),
		cmocka_unit_test_setup_teardown(body_read_as_the_provider_reads_it, cat_setup, cat_teardown),
		cmocka_unit_test_setup_teardown(streams_ask_for_usage, cat_setup, cat_teardown),
		cmocka_unit_test_setup_teardown(paths_and_endpoints, cat_setup, cat_teardown),
		cmocka_unit_test_setup_teardown(truncation_identity_and_query, cat_setup, cat_teardown),
	};
	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
