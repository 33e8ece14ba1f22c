/* Unit tests of usage: the table of where each shape reports its counts, the
 * HAProxy rules made from it, and the counts normalized. The e2e suites check the
 * paths against each provider's real response shapes, read by HAProxy. */
#include <stdio.h>

#include "testutil.h"

#include "archvars.h"
#include "provider.h"
#include "usage.h"

static void raw_of(int64_t raw[UF_COUNT], int64_t in, int64_t out, int64_t cr, int64_t cw, int64_t rs)
{
	raw[UF_IN] = in;
	raw[UF_OUT] = out;
	raw[UF_CACHE_READ] = cr;
	raw[UF_CACHE_WRITE] = cw;
	raw[UF_REASONING] = rs;
}

/* Each shape's counts, normalized: every prompt token in, every generated one out. */
static void usage_normalizes_each_shape(void **st)
{
	(void)st;
	struct usage u;
	int64_t raw[UF_COUNT];
	raw_of(raw, 1200, 300, -1, -1, -1); /* OpenAI: cached and reasoning already inside */
	assert_true(usage_normalize(SHAPE_OPENAI, raw, &u));
	assert_int_equal(u.in, 1200);
	assert_int_equal(u.out, 300);
	raw_of(raw, 20, 45, 2000, 100, -1); /* Anthropic: cache reads and writes are apart */
	assert_true(usage_normalize(SHAPE_ANTHROPIC, raw, &u));
	assert_int_equal(u.in, 2120);
	assert_int_equal(u.out, 45);
	assert_int_equal(u.cached, 2000);
	raw_of(raw, 90, 12, -1, -1, 30); /* Gemini: thoughts are output apart */
	assert_true(usage_normalize(SHAPE_GEMINI, raw, &u));
	assert_int_equal(u.in, 90);
	assert_int_equal(u.out, 42);
	assert_int_equal(u.reasoning, 30);
	raw_of(raw, 10, 4, 6, 2, -1); /* Bedrock Converse */
	assert_true(usage_normalize(SHAPE_BEDROCK, raw, &u));
	assert_int_equal(u.in, 18);
	assert_int_equal(u.out, 4);
	raw_of(raw, 71, 3, -1, -1, -1);
	assert_true(usage_normalize(SHAPE_COHERE, raw, &u));
	assert_int_equal(u.in, 71);
	/* Only one side reported still counts; neither is nothing. */
	raw_of(raw, -1, 7, -1, -1, -1);
	assert_true(usage_normalize(SHAPE_OPENAI, raw, &u));
	assert_int_equal(u.in, 0);
	assert_int_equal(u.out, 7);
	raw_of(raw, -1, -1, 5, 5, 5);
	assert_false(usage_normalize(SHAPE_ANTHROPIC, raw, &u));
	/* A count past USAGE_MAX is not believed; an unknown shape is not read. */
	raw_of(raw, USAGE_MAX + 1, 5, -1, -1, -1);
	assert_true(usage_normalize(SHAPE_OPENAI, raw, &u));
	assert_int_equal(u.in, 0);
	assert_false(usage_normalize(SHAPE_COUNT, raw, &u));
}

/* The table is what providers.cfg's rules read: each path of each shape becomes
 * one json_query into the variable of its field, and those variables are the
 * ones haproxy-cfg/make-snippet.sh knows HAProxy sets. */
static void usage_table_becomes_haproxy_rules(void **st)
{
	(void)st;
	struct provider_table t;
	providers_builtin(&t);
	static char text[256 * 1024];
	size_t n = provider_backends_text(&t, text, sizeof(text));
	assert_true(n > 0 && n < sizeof(text));
	for (int s = 0; s < SHAPE_COUNT; s++)
		for (int a = 0; a < USAGE_ALTS; a++)
			for (int f = 0; f < UF_COUNT; f++) {
				const char *path = usage_shapes[s].alt[a][f];
				if (!path)
					continue;
				char rule[256];
				snprintf(rule, sizeof(rule), "set-var(txn.arch.%s) res.body,json_query('$.%s','int')",
				         usage_field_names[f], path);
				if (!strstr(text, rule))
					fail_msg("no rule %s", rule);
			}
	for (int f = 0; f < UF_COUNT; f++) {
		bool known = false;
		for (const char *const *v = arch_haproxy_var_names; *v; v++)
			known |= strcmp(*v, usage_field_names[f]) == 0;
		if (!known)
			fail_msg("%s is not in ARCH_HAPROXY_VARS", usage_field_names[f]);
	}
	/* Each provider's backend reads with its own shape's paths. */
	const char *anth = strstr(text, "backend llm_anthropic");
	const char *next = anth ? strstr(anth + 1, "backend ") : NULL;
	const char *cache = anth ? strstr(anth, "usage.cache_read_input_tokens") : NULL;
	assert_non_null(anth);
	assert_true(cache && (!next || cache < next));
	const char *gem = strstr(text, "backend llm_gemini");
	assert_non_null(gem);
	assert_non_null(strstr(gem, "usageMetadata.promptTokenCount"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(usage_normalizes_each_shape),
		cmocka_unit_test(usage_table_becomes_haproxy_rules),
	};
	return cmocka_run_group_tests_name("usage", tests, NULL, NULL);
}
