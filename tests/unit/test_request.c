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
		{ "[{\"name\":\"mistral\"}]", "needs \"prefix\" and \"host\"" },
		{ "[{\"name\":\"m\",\"prefix\":\"v1/m\",\"host\":\"h\"}]", "providers[0].prefix" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m/\",\"host\":\"h\"}]", "providers[0].prefix" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/openai\",\"host\":\"h\"}]", "already the prefix of provider \"openai\"" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"credential\":\"cookie\"}]", "credential" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"error_shape\":\"xml\"}]", "error_shape" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"h\",\"colour\":1}]", "providers[0].colour: unknown key" },
		{ "[{\"name\":\"m\",\"prefix\":\"/v1/m\",\"host\":\"a b\"}]", "providers[0].host" },
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
	cJSON *j = cJSON_Parse("[{\"name\":\"mistral\",\"prefix\":\"/v1/mistral\",\"upstream_base\":\"/v1\","
	                       "\"host\":\"api.mistral.ai\"},{\"name\":\"gemini\",\"enabled\":false},"
	                       "{\"name\":\"openai\",\"direct_keys\":false,\"credential\":[\"bearer\",\"x-api-key\"]}]");
	assert_int_equal(providers_apply_json(&t, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	assert_int_equal(t.n, 4);
	struct spop_slice rest, path = { (const uint8_t *)"/v1/mistral/chat/completions", 28 };
	const struct provider *p = provider_match(&t, path, &rest);
	assert_non_null(p);
	assert_string_equal(p->name, "mistral");
	assert_int_equal(p->shape, SHAPE_OPENAI);
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
	};
	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
