/* Unit tests of the Prometheus registry and exposition: label escaping, HELP and
 * TYPE lines, cumulative histograms, sums across workers, bounded cardinality,
 * run counting, the scrape request and the config. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "prom.h"

static struct prom_cfg cfg;

static struct prom_reg *reg(void)
{
	prom_cfg_defaults(&cfg);
	cfg.enabled = true;
	struct prom_reg *r = prom_reg_new(&cfg);
	assert_non_null(r);
	return r;
}

/* The exposition of n registries, NUL-terminated; the caller frees it. */
static char *render(struct prom_reg *const *regs, int n)
{
	struct buf b = { 0 };
	assert_int_equal(prom_render(regs, n, &b), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	return (char *)b.data;
}

/* How many lines of text start with prefix. */
static int lines_with(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += strncmp(p, prefix, pl) == 0;
	return n;
}

static void prom_escapes_label_values(void **st)
{
	(void)st;
	char out[64];
	assert_int_equal(prom_escape(out, sizeof(out), S("a\\b\"c\nd")), 10);
	assert_string_equal(out, "a\\\\b\\\"c\\nd");
	/* UTF-8 passes; a byte that is not UTF-8, a lone continuation and control characters do not. */
	assert_int_equal(prom_escape(out, sizeof(out), S("M\xc3\xbcller\xff\x80\x01\t\x7f")), 12);
	assert_string_equal(out, "M\xc3\xbcller_____");
	assert_int_equal(prom_escape(out, sizeof(out), S("\xe2\x82")), 2); /* a cut sequence */
	assert_string_equal(out, "__");
	assert_int_equal(prom_escape(out, sizeof(out), S("")), 0);
	assert_string_equal(out, "");
	assert_int_equal(prom_escape(out, 4, S("abc")), 3);
	assert_true(prom_escape(out, 3, S("abc")) == PROM_NO_ROOM); /* the NUL needs a byte */
	assert_true(prom_escape(out, 4, S("ab\"")) == PROM_NO_ROOM);
}

static void prom_counters_help_type_and_escaping(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	struct spop_slice l[] = { S("allowed"), S("agent\\x"), S("open\"ai\nx") };
	struct spop_slice sh[] = { l[0], l[2] };
	prom_record(r, PM_SHADOW_DENIALS, 1, sh, 2);
	prom_record(r, PM_SHADOW_DENIALS, 2, sh, 2);
	struct spop_slice cost[] = { S("openai"), S("gpt-4o-mini"), l[1] };
	prom_record(r, PM_COST, 0.0000075, cost, 3);
	char *t = render(&r, 1);
	assert_non_null(strstr(t, "# HELP policy_shadow_denials_total Calls a shadow rule would have denied.\n"
	                          "# TYPE policy_shadow_denials_total counter\n"
	                          "policy_shadow_denials_total{rule=\"allowed\",provider=\"open\\\"ai\\nx\"} 3\n"));
	assert_non_null(strstr(t, "llm_cost_total{provider=\"openai\",model=\"gpt-4o-mini\",agent_id=\"agent\\\\x\"} "
	                          "7.5e-06\n"));
	/* Every metric has its HELP and TYPE, series or not; the text ends with a newline. */
	assert_int_equal(lines_with(t, "# HELP "), PM_METRICS + 1);
	assert_int_equal(lines_with(t, "# TYPE "), PM_METRICS + 1);
	assert_non_null(strstr(t, "# TYPE spoa_connections gauge\n"));
	assert_non_null(strstr(t, "# TYPE llm_request_duration_seconds histogram\n"));
	assert_non_null(strstr(t, "# TYPE agent_runs_total counter\n"));
	assert_non_null(strstr(t, "\nspoa_metrics_dropped_total 0\n"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
	prom_reg_free(r);
}

static void prom_histogram_cumulative(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	struct spop_slice req = S("req");
	prom_record(r, PM_DECISION_TIME, 0.00002, &req, 1);   /* <= 0.000025 */
	prom_record(r, PM_DECISION_TIME, 0.000025, &req, 1);  /* on a bound: that bucket */
	prom_record(r, PM_DECISION_TIME, 0.0003, &req, 1);    /* <= 0.0005 */
	prom_record(r, PM_DECISION_TIME, 5, &req, 1);         /* beyond the last bound: +Inf only */
	char *t = render(&r, 1);
	const char *want =
		"# HELP spoa_decision_time_seconds Time the agent took to decide (req: a request, res: a response).\n"
		"# TYPE spoa_decision_time_seconds histogram\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"1e-05\"} 0\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"2.5e-05\"} 2\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"5e-05\"} 2\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.0001\"} 2\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.00025\"} 2\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.0005\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.001\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.0025\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.005\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.01\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.025\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"0.1\"} 3\n"
		"spoa_decision_time_seconds_bucket{message=\"req\",le=\"+Inf\"} 4\n"
		"spoa_decision_time_seconds_sum{message=\"req\"} 5.000345\n"
		"spoa_decision_time_seconds_count{message=\"req\"} 4\n"
		"# HELP agent_runs_total ";
	assert_non_null(strstr(t, want));
	free(t);
	prom_reg_free(r);
}

static void prom_sums_workers(void **st)
{
	(void)st;
	struct prom_reg *w[2] = { reg(), reg() };
	struct spop_slice tin[] = { S("openai"), S("gpt-4o-mini"), S("agent-7"), S("input") };
	struct spop_slice tout[] = { S("openai"), S("gpt-4o-mini"), S("agent-7"), S("output") };
	prom_record(w[0], PM_TOKENS, 10, tin, 4);
	prom_record(w[1], PM_TOKENS, 32, tin, 4);
	prom_record(w[1], PM_TOKENS, 12, tout, 4);
	struct spop_slice d[] = { S("openai"), S("gpt-4o-mini") };
	prom_record(w[0], PM_REQUEST_DURATION, 0.3, d, 2);
	prom_record(w[1], PM_REQUEST_DURATION, 0.7, d, 2);
	struct spop_slice w0 = S("0"), w1 = S("1");
	prom_record(w[0], PM_CONNECTIONS, 3, &w0, 1);
	prom_record(w[0], PM_CONNECTIONS, 2, &w0, 1); /* a gauge keeps its last value */
	prom_record(w[1], PM_CONNECTIONS, 5, &w1, 1);
	char *t = render(w, 2);
	assert_non_null(strstr(t, "llm_tokens_total{provider=\"openai\",model=\"gpt-4o-mini\",agent_id=\"agent-7\","
	                          "type=\"input\"} 42\n"
	                          "llm_tokens_total{provider=\"openai\",model=\"gpt-4o-mini\",agent_id=\"agent-7\","
	                          "type=\"output\"} 12\n"));
	assert_non_null(strstr(t, "llm_request_duration_seconds_bucket{provider=\"openai\",model=\"gpt-4o-mini\",le=\"0.25\"} 0\n"
	                          "llm_request_duration_seconds_bucket{provider=\"openai\",model=\"gpt-4o-mini\",le=\"0.5\"} 1\n"
	                          "llm_request_duration_seconds_bucket{provider=\"openai\",model=\"gpt-4o-mini\",le=\"1\"} 2\n"));
	assert_non_null(strstr(t, "llm_request_duration_seconds_sum{provider=\"openai\",model=\"gpt-4o-mini\"} 1\n"
	                          "llm_request_duration_seconds_count{provider=\"openai\",model=\"gpt-4o-mini\"} 2\n"));
	assert_non_null(strstr(t, "spoa_connections{worker=\"0\"} 2\nspoa_connections{worker=\"1\"} 5\n"));
	free(t);
	/* A NULL registry (Prometheus off) records nothing and renders as none. */
	prom_record(NULL, PM_TOKENS, 1, tin, 4);
	prom_run(NULL, S("a"), S("r"));
	prom_reg_free(w[0]);
	prom_reg_free(w[1]);
}

static void prom_bounds_label_values(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	cfg.max_tag_values = 3;
	cfg.max_id_len = 10;
	const char *ids[] = { "a1", "a2", "a3", "a4", "a1", "an-id-way-too-long", "a5" };
	for (int i = 0; i < 7; i++) {
		struct spop_slice l[] = { S("openai"), S("gpt-4o"), S(ids[i]) };
		prom_record(r, PM_COST, 1, l, 3);
	}
	char *t = render(&r, 1);
	assert_non_null(strstr(t, "agent_id=\"a1\"} 2\n"));
	assert_non_null(strstr(t, "agent_id=\"a3\"} 1\n"));
	assert_non_null(strstr(t, "agent_id=\"other\"} 2\n")); /* a4 and a5: past 3 distinct values */
	assert_non_null(strstr(t, "agent_id=\"too_long\"} 1\n"));
	assert_null(strstr(t, "a4"));
	free(t);
	/* agent_runs_total's external_agent_id is the same kind of value: the same set. */
	prom_run(r, S("a4"), S("run-1"));
	t = render(&r, 1);
	assert_non_null(strstr(t, "agent_runs_total{external_agent_id=\"other\"} 1\n"));
	free(t);
	prom_reg_free(r);
}

static void prom_bounds_series(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	/* 100 models x 30 agents: distinct series past PROM_OPEN_SERIES become one "other" series. */
	for (int i = 0; i < 3000; i++) {
		char m[16], a[16];
		snprintf(m, sizeof(m), "m%d", i % 100);
		snprintf(a, sizeof(a), "a%d", i / 100);
		struct spop_slice l[] = { S("openai"), S(m), S(a) };
		prom_record(r, PM_COST, 1, l, 3);
	}
	char *t = render(&r, 1);
	assert_int_equal(lines_with(t, "llm_cost_total{"), PROM_OPEN_SERIES + 1);
	char want[128];
	snprintf(want, sizeof(want), "llm_cost_total{provider=\"openai\",model=\"other\",agent_id=\"other\"} %d\n",
	         3000 - PROM_OPEN_SERIES);
	assert_non_null(strstr(t, want));
	assert_non_null(strstr(t, "\nspoa_metrics_dropped_total 0\n"));
	free(t);
	/* Labels from the agent's own config fill the table to PROM_MAX_SERIES; then updates are dropped. */
	int more = 1000, room = PROM_MAX_SERIES - (PROM_OPEN_SERIES + 1);
	for (int i = 0; i < more; i++) {
		char rule[16];
		snprintf(rule, sizeof(rule), "r%d", i);
		struct spop_slice l[] = { S(rule), S("openai") };
		prom_record(r, PM_SHADOW_DENIALS, 1, l, 2);
	}
	t = render(&r, 1);
	assert_int_equal(lines_with(t, "policy_shadow_denials_total{"), room);
	snprintf(want, sizeof(want), "\nspoa_metrics_dropped_total %d\n", more - room);
	assert_non_null(strstr(t, want));
	free(t);
	prom_reg_free(r);
}

static void prom_counts_runs(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	prom_run(r, S("agent-7"), S("run-1"));
	prom_run(r, S("agent-7"), S("run-1")); /* remembered: not again */
	prom_run(r, S("agent-7"), S("run-2"));
	prom_run(r, S("agent-8"), S("run-1")); /* another agent's run of that name */
	prom_run(r, S("agent-8"), S(""));      /* no run id: nothing */
	char *t = render(&r, 1);
	assert_non_null(strstr(t, "agent_runs_total{external_agent_id=\"agent-7\"} 2\n"
	                          "agent_runs_total{external_agent_id=\"agent-8\"} 1\n"));
	free(t);
	/* The window is bounded: after enough other runs, run-1 is forgotten and counts again. */
	for (int i = 0; i < PROM_RUN_SETS * 32; i++) { /* about 32 a set: each forgets its first */
		char id[16];
		snprintf(id, sizeof(id), "x%d", i);
		prom_run(r, S("agent-9"), S(id));
	}
	prom_run(r, S("agent-7"), S("run-1"));
	t = render(&r, 1);
	assert_non_null(strstr(t, "agent_runs_total{external_agent_id=\"agent-7\"} 3\n"));
	free(t);
	prom_reg_free(r);
}

static void prom_formats_values(void **st)
{
	(void)st;
	struct prom_reg *r = reg();
	struct spop_slice l[] = { S("p"), S("m"), S("a") };
	prom_record(r, PM_COST, 0.1, l, 3);
	prom_record(r, PM_COST, 0.2, l, 3); /* 0.30000000000000004: %.15g would not read back */
	char *t = render(&r, 1);
	assert_non_null(strstr(t, "agent_id=\"a\"} 0.30000000000000004\n"));
	free(t);
	prom_reg_free(r);
}

static void prom_routes_requests(void **st)
{
	(void)st;
	static const struct { const char *req; enum prom_route want; } cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", PROM_METRICS },
		{ "GET /metrics HTTP/1.0\r\n\r\n", PROM_METRICS },
		{ "GET /metrics?name[]=x HTTP/1.1\n\n", PROM_METRICS },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n", PROM_MORE },
		{ "GET /metr", PROM_MORE },
		{ "", PROM_MORE },
		{ "GET / HTTP/1.1\r\n\r\n", PROM_NOT_FOUND },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", PROM_NOT_FOUND },
		{ "GET /metrics/ HTTP/1.1\r\n\r\n", PROM_NOT_FOUND },
		{ "POST /metrics HTTP/1.1\r\n\r\n", PROM_NOT_FOUND },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", PROM_NOT_FOUND },
		{ "GET /metrics\r\n\r\n", PROM_BAD },
		{ "GET  /metrics HTTP/1.1\r\n\r\n", PROM_BAD },
		{ "GET /metrics SPDY/3\r\n\r\n", PROM_BAD },
		{ "\r\n\r\n", PROM_BAD },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(prom_route(cases[i].req, strlen(cases[i].req)), cases[i].want);
	/* A head that never ends is refused once it reaches the bound. */
	static char big[PROM_REQ_MAX];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	assert_int_equal(prom_route(big, sizeof(big) - 1), PROM_MORE);
	assert_int_equal(prom_route(big, sizeof(big)), PROM_BAD);
}

static void prom_config(void **st)
{
	(void)st;
	struct prom_cfg c;
	char err[256];
	prom_cfg_defaults(&c);
	assert_false(c.enabled);
	cJSON *j = cJSON_Parse("{\"listen\":\"127.0.0.1:9464\",\"max_tag_values\":20}");
	assert_int_equal(prom_cfg_apply_json(&c, j, err, sizeof(err)), 0);
	cJSON_Delete(j);
	assert_true(c.enabled);
	assert_string_equal(c.addr_text, "127.0.0.1:9464");
	assert_int_equal(c.max_tag_values, 20);
	assert_int_equal(c.max_id_len, 64);
	static const struct { const char *json, *err; } bad[] = {
		{ "{}", "prometheus.listen: missing; the address Prometheus scrapes, like \"127.0.0.1:9464\"" },
		{ "{\"listen\":\"nowhere\"}", "prometheus.listen: expected HOST:PORT or [IPV6]:PORT, like \"127.0.0.1:9464\"" },
		{ "{\"listen\":\"unix:/tmp/m.sock\"}", "prometheus.listen: expected HOST:PORT or [IPV6]:PORT" },
		{ "{\"listen\":9464}", "prometheus.listen: expected HOST:PORT" },
		{ "{\"listen\":\"127.0.0.1:9464\",\"max_tag_values\":0}", "prometheus.max_tag_values: expected an integer" },
		{ "{\"listen\":\"127.0.0.1:9464\",\"max_id_len\":1000}", "prometheus.max_id_len: expected an integer" },
		{ "{\"listen\":\"127.0.0.1:9464\",\"path\":\"/m\"}", "prometheus.path: unknown key (known: listen, enabled" },
		{ "[]", "prometheus: " },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		prom_cfg_defaults(&c);
		j = cJSON_Parse(bad[i].json);
		assert_int_equal(prom_cfg_apply_json(&c, j, err, sizeof(err)), -1);
		if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
			fail_msg("%s: got \"%s\", want \"%s...\"", bad[i].json, err, bad[i].err);
		cJSON_Delete(j);
	}
	/* Off, with its address kept for later. */
	prom_cfg_defaults(&c);
	j = cJSON_Parse("{\"listen\":\"[::1]:9464\",\"enabled\":false}");
	assert_int_equal(prom_cfg_apply_json(&c, j, err, sizeof(err)), 0);
	assert_false(c.enabled);
	cJSON_Delete(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prom_escapes_label_values),
		cmocka_unit_test(prom_counters_help_type_and_escaping),
		cmocka_unit_test(prom_histogram_cumulative),
		cmocka_unit_test(prom_sums_workers),
		cmocka_unit_test(prom_bounds_label_values),
		cmocka_unit_test(prom_bounds_series),
		cmocka_unit_test(prom_counts_runs),
		cmocka_unit_test(prom_formats_values),
		cmocka_unit_test(prom_routes_requests),
		cmocka_unit_test(prom_config),
	};
	return cmocka_run_group_tests_name("prom", tests, NULL, NULL);
}
