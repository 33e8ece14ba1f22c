/* Unit tests of pricing: the built-in price table, the config's prices and the cost of a call. */
#include "testutil.h"

#include <cjson/cJSON.h>

#include "pricing.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prices_and_cost),
	};
	return cmocka_run_group_tests_name("pricing", tests, NULL, NULL);
}
