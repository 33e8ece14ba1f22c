/* Unit tests of statsd: lines in both tag styles, batching, bounded tags, aggregation
 * per interval, and its config; datagrams are captured by the test's sink. */
#include "testutil.h"

#include <stdio.h>

#include <cjson/cJSON.h>

#include "statsd.h"

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
		cmocka_unit_test(statsd_dogstatsd_lines),
		cmocka_unit_test(statsd_dotted_names),
		cmocka_unit_test(statsd_batches_by_payload_size),
		cmocka_unit_test(statsd_bounds_cardinality),
		cmocka_unit_test(statsd_aggregates_per_interval),
		cmocka_unit_test(statsd_disabled_sends_nothing),
		cmocka_unit_test(statsd_config),
	};
	return cmocka_run_group_tests_name("statsd", tests, NULL, NULL);
}
