/* Unit tests of the JSON scanner, usage extraction, the call context, prices,
 * globs and the statsd formatter. Bodies follow the providers' API references. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "ctx.h"
#include "glob.h"
#include "jsonscan.h"
#include "pricing.h"
#include "statsd.h"
#include "usage.h"

static struct spop_slice S(const char *s)
{
	return (struct spop_slice){ (const uint8_t *)s, strlen(s) };
}

/* ---- JSON scanner ---- */

static void json_members_and_paths(void **st)
{
	(void)st;
	const char *doc = " {\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"a \\\"q\\\" \\u00e9\"}],"
	                  "\"stream\":true,\"n\":-12,\"x\":1.5e3,\"nested\":{\"a\":{\"b\":42}},\"z\":null} ";
	struct json_val v;
	int64_t i;
	struct spop_slice s;
	assert_true(json_parse_value(S(doc), &v));
	assert_int_equal(v.kind, JSON_OBJECT);
	assert_true(json_get(S(doc), "model", &v) && json_as_string(&v, NULL, &s) && SPOP_SLICE_IS(s, "gpt-4o"));
	assert_true(json_get(S(doc), "stream", &v) && v.kind == JSON_TRUE);
	assert_true(json_get(S(doc), "n", &v) && json_as_int(&v, &i) && i == -12);
	assert_true(json_get(S(doc), "x", &v) && v.kind == JSON_NUMBER && !json_as_int(&v, &i));
	assert_true(json_get_path(S(doc), "nested.a.b", &v) && json_as_int(&v, &i) && i == 42);
	assert_false(json_get_path(S(doc), "nested.a.c", &v));
	assert_false(json_get_path(S(doc), "model.x", &v));
	assert_true(json_get(S(doc), "z", &v) && v.kind == JSON_NULL);
	assert_false(json_get(S(doc), "absent", &v));
	/* Escaped strings are not handed out as plain. */
	assert_true(json_get(S("{\"m\":\"a\\nb\"}"), "m", &v));
	assert_false(json_as_string(&v, NULL, &s));
}

static void json_rejects_malformed(void **st)
{
	(void)st;
	const char *bad[] = {
		"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "{\"a\":tru}", "{\"a\":01}", "{\"a\":1.}",
		"{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"ctl\x01\"}", "{\"a\":1} x", "{'a':1}", "-", "1e", "\"open",
	};
	struct json_val v;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (json_parse_value(S(bad[i]), &v))
			fail_msg("accepted: %s", bad[i]);
	/* Deep nesting is bounded, not a stack overflow. */
	char *deep = malloc(200001);
	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	deep[200000] = '\0';
	assert_false(json_parse_value(S(deep), &v));
	free(deep);
	/* Members before the damage of a truncated document are still found. */
	assert_true(json_get(S("{\"model\":\"m1\",\"messages\":[{\"content\":\"cut here"), "model", &v));
	assert_false(json_get(S("{\"messages\":[{\"content\":\"cut\"}],\"mod"), "model", &v));
}

/* The string scanner works 16 or 8 bytes at a time: a special byte at every
 * offset of every length must still be seen. */
static void json_strings_at_every_offset(void **st)
{
	(void)st;
	char doc[128];
	struct json_val v;
	for (int n = 0; n < 70; n++) {
		memset(doc, 'a', sizeof(doc));
		doc[0] = '"';
		doc[n + 1] = '"';
		assert_true(json_parse_value((struct spop_slice){ (const uint8_t *)doc, (size_t)n + 2 }, &v));
		assert_int_equal(v.raw.len, n + 2);
		for (int i = 1; i <= n; i++) {
			char c = doc[i];
			doc[i] = '\x01'; /* a raw control byte is not JSON */
			assert_false(json_parse_value((struct spop_slice){ (const uint8_t *)doc, (size_t)n + 2 }, &v));
			doc[i] = (char)0xe9; /* a high byte is fine */
			assert_true(json_parse_value((struct spop_slice){ (const uint8_t *)doc, (size_t)n + 2 }, &v));
			doc[i] = '"'; /* the string ends early: trailing bytes make it invalid */
			assert_false(json_parse_value((struct spop_slice){ (const uint8_t *)doc, (size_t)n + 2 }, &v));
			doc[i] = c;
		}
		for (int i = 1; i + 1 <= n; i++) {
			doc[i] = '\\';
			doc[i + 1] = '"'; /* an escaped quote does not end it */
			assert_true(json_parse_value((struct spop_slice){ (const uint8_t *)doc, (size_t)n + 2 }, &v));
			doc[i] = doc[i + 1] = 'a';
		}
	}
}

/* ---- usage ---- */

static void usage_openai(void **st)
{
	(void)st;
	struct usage u;
	const char *chat = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
	                   "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],"
	                   "\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,"
	                   "\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
	                   "\"completion_tokens_details\":{\"reasoning_tokens\":128}}}";
	assert_true(usage_extract(SHAPE_OPENAI, S(chat), &u));
	assert_int_equal(u.in, 1200);
	assert_int_equal(u.out, 300);
	assert_int_equal(u.cached, 1024);
	assert_int_equal(u.reasoning, 128);
	const char *responses = "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],\"usage\":{\"input_tokens\":50,"
	                        "\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":20,"
	                        "\"output_tokens_details\":{\"reasoning_tokens\":5},\"total_tokens\":70}}";
	assert_true(usage_extract(SHAPE_OPENAI, S(responses), &u));
	assert_int_equal(u.in, 50);
	assert_int_equal(u.out, 20);
	assert_int_equal(u.cached, 10);
	assert_int_equal(u.reasoning, 5);
}

static void usage_anthropic(void **st)
{
	(void)st;
	struct usage u;
	const char *msg = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	                  "\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],"
	                  "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":100,"
	                  "\"cache_read_input_tokens\":2000,\"output_tokens\":45}}";
	assert_true(usage_extract(SHAPE_ANTHROPIC, S(msg), &u));
	assert_int_equal(u.in, 2120);
	assert_int_equal(u.out, 45);
	assert_int_equal(u.cached, 2000);
}

static void usage_gemini(void **st)
{
	(void)st;
	struct usage u;
	const char *g = "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\","
	                "\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":90,"
	                "\"candidatesTokenCount\":12,\"thoughtsTokenCount\":30,\"cachedContentTokenCount\":64,"
	                "\"totalTokenCount\":132},\"modelVersion\":\"gemini-2.5-flash\"}";
	assert_true(usage_extract(SHAPE_GEMINI, S(g), &u));
	assert_int_equal(u.in, 90);
	assert_int_equal(u.out, 42);
	assert_int_equal(u.reasoning, 30);
	assert_int_equal(u.cached, 64);
	/* An OpenAI-shaped body read as Gemini has no usageMetadata. */
	assert_false(usage_extract(SHAPE_GEMINI, S("{\"usage\":{\"prompt_tokens\":1}}"), &u));
	/* Cohere v2: the tokens the model used, else the billed units */
	assert_true(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":3},"
	                                          "\"tokens\":{\"input_tokens\":71,\"output_tokens\":3}}}"), &u));
	assert_int_equal(u.in, 71);
	assert_int_equal(u.out, 3);
	assert_true(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":2}}}"),
	                          &u));
	assert_int_equal(u.in, 5);
	assert_int_equal(u.out, 2);
	assert_false(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"prompt_tokens\":1}}"), &u));
}

static void usage_missing_truncated_or_not_json(void **st)
{
	(void)st;
	struct usage u;
	const char *bad[] = {
		"{\"id\":\"x\",\"choices\":[]}",                                      /* no usage */
		"{\"usage\":{\"prompt_tokens\":\"12\"}}",                             /* not numbers */
		"{\"choices\":[{\"message\":{\"content\":\"long answer cut off",      /* truncated before usage */
		"<html>502 Bad Gateway</html>",                                       /* not JSON */
		"",
		"{\"usage\":[1,2]}",
		"{\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":-1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (usage_extract(SHAPE_OPENAI, S(bad[i]), &u))
			fail_msg("case %zu counted", i);
	/* Usage before a truncation point still counts. */
	assert_true(usage_extract(SHAPE_OPENAI, S("{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3},\"choi"), &u));
	assert_int_equal(u.in, 7);
}

/* ---- call context ---- */

static void ctx_round_trip_with_escapes(void **st)
{
	(void)st;
	struct call_ctx c = { .provider = S("openai"), .model = S("gpt|4o 100%"), .key_id = S("k1"),
	                      .start_us = 1732550000123456LL, .stream = true };
	c.id[ID_AGENT] = S("agent-7");
	c.id[ID_SESSION] = S("s\xc3\xa9");
	char buf[512], scratch[512];
	size_t n = ctx_encode(&c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_null(strchr(buf, ' '));
	struct call_ctx d;
	assert_true(ctx_decode(S(buf), &d, scratch, sizeof(scratch)));
	assert_true(SPOP_SLICE_IS(d.provider, "openai"));
	assert_true(SPOP_SLICE_IS(d.model, "gpt|4o 100%"));
	assert_true(SPOP_SLICE_IS(d.id[ID_AGENT], "agent-7"));
	assert_true(SPOP_SLICE_IS(d.id[ID_SESSION], "s\xc3\xa9"));
	assert_int_equal(d.id[ID_USER].len, 0);
	assert_true(SPOP_SLICE_IS(d.key_id, "k1"));
	assert_true(d.start_us == 1732550000123456LL);
	assert_true(d.stream);
	assert_false(d.untrusted);
	c.untrusted = true; /* the flags digit carries both bits */
	assert_true(ctx_encode(&c, buf, sizeof(buf)) > 0);
	assert_true(ctx_decode(S(buf), &d, scratch, sizeof(scratch)));
	assert_true(d.stream && d.untrusted);
	assert_true(ctx_decode(S("1|a|b|c|d|e|f|g|1|2"), &d, scratch, sizeof(scratch)));
	assert_true(!d.stream && d.untrusted);
	assert_int_equal(ctx_encode(&c, buf, 20), 0);
	const char *bad[] = { "", "1|a", "2|a|b|c|d|e|f|g|1|0", "1|a|b|c|d|e|f|g|x|0", "1|a|b|c|d|e|f|g|1|4", "1|a|b|c|d|e|f|g|1|12",
	                      "1|a%zz|b|c|d|e|f|g|1|0", "1|a%4|b|c|d|e|f|g|1|0", "1|a|b|c|d|e|f|g|1|0|extra" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ctx_decode(S(bad[i]), &d, scratch, sizeof(scratch)))
			fail_msg("decoded: %s", bad[i]);
}

/* ---- prices and globs ---- */

static void globs(void **st)
{
	(void)st;
	const unsigned char *s = (const unsigned char *)"gpt-4o-mini-2024-07-18";
	assert_true(glob_match("gpt-4o*", s, 22));
	assert_true(glob_match("*mini*", s, 22));
	assert_true(glob_match("gpt-4?-mini*", s, 22));
	assert_false(glob_match("gpt-4o", s, 22));
	assert_false(glob_match("claude*", s, 22));
	assert_true(glob_match("*", s, 0));
	assert_false(glob_match("?", s, 0));
	/* A pathological pattern stays fast (no exponential backtracking). */
	char a[4001];
	memset(a, 'a', 4000);
	a[4000] = '\0';
	assert_false(glob_match("*a*a*a*a*a*a*a*a*b", (const unsigned char *)a, 4000));
}

static void prices_and_cost(void **st)
{
	(void)st;
	struct price_table t;
	prices_builtin(&t);
	const struct price *p = price_find(&t, "openai", S("gpt-4o-mini-2024-07-18"));
	assert_non_null(p);
	assert_true(p->in_per_m == 0.15 && p->out_per_m == 0.60);
	p = price_find(&t, "openai", S("gpt-4o-2024-08-06"));
	assert_true(p->in_per_m == 2.50);
	assert_null(price_find(&t, "anthropic", S("gpt-4o")));
	assert_null(price_find(&t, "openai", S("my-finetune")));
	assert_true(price_cost(p, 1000000, 500000) == 2.50 + 5.00);

	char err[256];
	cJSON *j = cJSON_Parse("[{\"provider\":\"openai\",\"model\":\"gpt-4o*\",\"input\":1.0,\"output\":2.0},"
	                       "{\"provider\":\"*\",\"model\":\"my-*\",\"input\":0.5,\"output\":0.5}]");
	assert_int_equal(prices_apply_json(&t, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	assert_true(price_find(&t, "openai", S("gpt-4o-mini"))->in_per_m == 1.0); /* config first */
	assert_true(price_find(&t, "local", S("my-llama"))->out_per_m == 0.5);
	const char *bad[] = { "{}", "[{\"provider\":\"openai\",\"model\":\"x\",\"input\":-1,\"output\":1}]",
	                      "[{\"provider\":\"openai\",\"model\":\"x\",\"input\":1}]",
	                      "[{\"provider\":\"openai\",\"model\":\"x\",\"input\":1,\"output\":1,\"extra\":1}]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = cJSON_Parse(bad[i]);
		assert_int_equal(prices_apply_json(&t, j, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "prices"));
		cJSON_Delete(j);
	}
}

/* ---- statsd ---- */

static char sent[16][2048];
static int nsent;

static void capture(void *arg, const uint8_t *d, size_t n)
{
	(void)arg;
	assert_true(nsent < 16);
	assert_true(n < sizeof(sent[0]));
	memcpy(sent[nsent], d, n);
	sent[nsent][n] = '\0';
	nsent++;
}

static void sd_init(struct statsd *s, struct statsd_cfg *c)
{
	memset(s, 0, sizeof(*s));
	s->cfg = c;
	s->fd = -1;
	s->sink = capture;
	nsent = 0;
}

static void statsd_dogstatsd_lines(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	c.enabled = true;
	sd_init(&s, &c);
	c.timer_sample = 1;
	struct statsd_tag t[] = { { "provider", S("openai"), false }, { "model", S("gpt-4.1 mini|x"), true } };
	statsd_count(&s, "llm_requests", 1, t, 2);
	statsd_timing_us(&s, "spoa_decision_time", 1234, t, 1);
	statsd_set(&s, "agent_executions", S("exec:1|x"), NULL, 0);
	statsd_count(&s, "llm_cost_usd", 0.000125, t, 1);
	statsd_flush(&s);
	assert_int_equal(nsent, 1);
	/* Timings go out as they come; aggregated series at the flush, first seen first. */
	assert_string_equal(sent[0], "archestra.spoa_decision_time:1.234|ms|#provider:openai\n"
	                             "archestra.llm_requests:1|c|#provider:openai,model:gpt-4.1_mini_x\n"
	                             "archestra.agent_executions:exec_1_x|s\n"
	                             "archestra.llm_cost_usd:0.000125000|c|#provider:openai");
	statsd_flush(&s); /* nothing queued: nothing sent */
	assert_int_equal(nsent, 1);
}

static void statsd_dotted_names(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	c.enabled = true;
	c.style = STATSD_DOTTED;
	snprintf(c.prefix, sizeof(c.prefix), "llm.");
	sd_init(&s, &c);
	struct statsd_tag t[] = { { "provider", S("openai"), false }, { "model", S("gpt-4.1"), false },
	                          { "empty", S(""), false } };
	statsd_count(&s, "llm_tokens", 42, t, 3);
	statsd_flush(&s);
	assert_string_equal(sent[0], "llm.llm_tokens.provider.openai.model.gpt-4_1:42|c");
}

static void statsd_batches_by_payload_size(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	c.enabled = true;
	c.max_payload = 600;
	sd_init(&s, &c);
	for (int i = 0; i < 40; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", i);
		struct statsd_tag t = { "n", S(v), false }; /* 40 series, ~35 bytes a line */
		statsd_count(&s, "llm_requests", i, &t, 1);
	}
	statsd_flush(&s);
	assert_true(nsent >= 2);
	int lines = 0;
	for (int i = 0; i < nsent; i++) {
		assert_true(strlen(sent[i]) <= 600);
		assert_true(sent[i][strlen(sent[i]) - 1] != '\n');
		for (char *p = sent[i]; *p; p++)
			lines += *p == '\n';
		lines++;
	}
	assert_int_equal(lines, 40);
	/* Every line arrives whole: a datagram ends on a line boundary. */
	assert_non_null(strstr(sent[nsent - 1], "llm_requests:39|c|#n:39"));
}

static void statsd_bounds_cardinality(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	c.enabled = true;
	c.max_tag_values = 3;
	c.max_id_len = 10;
	c.max_payload = 1400;
	sd_init(&s, &c);
	const char *ids[] = { "a1", "a2", "a3", "a4", "a1", "an-id-way-too-long" };
	for (int i = 0; i < 6; i++) {
		struct statsd_tag t = { "external_agent_id", S(ids[i]), true };
		statsd_count(&s, "llm_requests", 1, &t, 1);
	}
	statsd_flush(&s);
	assert_non_null(strstr(sent[0], "external_agent_id:a3\n"));
	assert_non_null(strstr(sent[0], "external_agent_id:other\n")); /* a4: 4th distinct value */
	assert_non_null(strstr(sent[0], "external_agent_id:too_long"));
	assert_null(strstr(sent[0], "a4"));
	/* A new window starts counting again. */
	statsd_new_window(&s);
	struct statsd_tag t = { "external_agent_id", S("a4"), true };
	statsd_count(&s, "llm_requests", 1, &t, 1);
	statsd_flush(&s);
	assert_non_null(strstr(sent[1], "external_agent_id:a4"));
}

static void statsd_aggregates_per_interval(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	c.enabled = true;
	sd_init(&s, &c);
	struct statsd_tag a = { "verdict", S("allow"), false }, d = { "verdict", S("deny"), false };
	for (int i = 0; i < 1000; i++)
		statsd_count(&s, "llm_requests", 1, i % 4 ? &a : &d, 1);
	for (int i = 0; i < 100; i++)
		statsd_set(&s, "agent_executions", S(i % 2 ? "run-1" : "run-2"), NULL, 0);
	statsd_gauge(&s, "spoa_connections", 5, NULL, 0);
	statsd_gauge(&s, "spoa_connections", 3, NULL, 0);
	for (int i = 0; i < 25; i++)
		statsd_timing_us(&s, "spoa_decision_time", 1000, NULL, 0); /* sampled 1 in 10 */
	statsd_flush(&s);
	assert_int_equal(nsent, 1);
	assert_non_null(strstr(sent[0], "archestra.llm_requests:750|c|#verdict:allow\n"));
	assert_non_null(strstr(sent[0], "archestra.llm_requests:250|c|#verdict:deny\n"));
	assert_non_null(strstr(sent[0], "archestra.agent_executions:run-2|s\narchestra.agent_executions:run-1|s\n"));
	assert_non_null(strstr(sent[0], "archestra.spoa_connections:3|g"));
	int timings = 0;
	for (const char *p = sent[0]; (p = strstr(p, "spoa_decision_time:1.000|ms|@0.1")); p++)
		timings++;
	assert_int_equal(timings, 3);
	/* The next interval starts empty. */
	statsd_count(&s, "llm_requests", 1, &a, 1);
	statsd_flush(&s);
	assert_string_equal(sent[1], "archestra.llm_requests:1|c|#verdict:allow");
}

static void statsd_disabled_sends_nothing(void **st)
{
	(void)st;
	struct statsd_cfg c;
	static struct statsd s;
	statsd_cfg_defaults(&c);
	sd_init(&s, &c);
	statsd_count(&s, "llm_requests", 1, NULL, 0);
	statsd_flush(&s);
	assert_int_equal(nsent, 0);
}

static void statsd_config(void **st)
{
	(void)st;
	struct statsd_cfg c;
	char err[256];
	statsd_cfg_defaults(&c);
	cJSON *j = cJSON_Parse("{\"address\":\"127.0.0.1:8125\",\"prefix\":\"x.\",\"tags\":\"dotted\",\"max_payload\":1000}");
	assert_int_equal(statsd_cfg_apply_json(&c, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	assert_true(c.enabled);
	assert_int_equal(c.style, STATSD_DOTTED);
	assert_int_equal(c.max_payload, 1000);
	const char *bad[] = { "{\"address\":\"nowhere\"}", "{\"tags\":\"influx\"}", "{\"max_payload\":10}",
	                      "{\"prefix\":\"a|b\"}", "{\"colour\":1}", "[]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		statsd_cfg_defaults(&c);
		j = cJSON_Parse(bad[i]);
		assert_int_equal(statsd_cfg_apply_json(&c, j, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "statsd"));
		cJSON_Delete(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_members_and_paths),
		cmocka_unit_test(json_rejects_malformed),
		cmocka_unit_test(json_strings_at_every_offset),
		cmocka_unit_test(usage_openai),
		cmocka_unit_test(usage_anthropic),
		cmocka_unit_test(usage_gemini),
		cmocka_unit_test(usage_missing_truncated_or_not_json),
		cmocka_unit_test(ctx_round_trip_with_escapes),
		cmocka_unit_test(globs),
		cmocka_unit_test(prices_and_cost),
		cmocka_unit_test(statsd_dogstatsd_lines),
		cmocka_unit_test(statsd_dotted_names),
		cmocka_unit_test(statsd_batches_by_payload_size),
		cmocka_unit_test(statsd_bounds_cardinality),
		cmocka_unit_test(statsd_aggregates_per_interval),
		cmocka_unit_test(statsd_disabled_sends_nothing),
		cmocka_unit_test(statsd_config),
	};
	return cmocka_run_group_tests_name("accounting", tests, NULL, NULL);
}
