/* Unit tests of ctx: the call context the request decision hands to the response. */
#include "testutil.h"

#include "ctx.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ctx_round_trip_with_escapes),
	};
	return cmocka_run_group_tests_name("ctx", tests, NULL, NULL);
}
