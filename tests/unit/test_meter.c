/* Unit tests of meter: HAProxy's end-of-call records, as HAProxy 2.6 and 3.4 write
 * them (the first record was captured from both), and the ways a datagram from
 * anyone else on the host may try to be counted wrongly. */
#include "testutil.h"

#include "meter.h"

static const char real[] =
	"<134>1 2026-12-02T07:09:20.149765+00:00 - haproxy 25908 - [archestra@32473 p=\"openai\" m=\"gpt-4o\" "
	"a=\"agent-1\" u=\"-\" k=\"dk_e77787c93833\" v=\"allow\" s=\"200\" ta=\"7\" st=\"0\" us=\"200\" u_in=\"9\" u_out=\"12\" "
	"u_cr=\"-\" u_cw=\"-\" u_rs=\"-\"] 127.0.0.1:52624 [02/Dec/2026:07:09:20.141] llm~ llm_openai/openai "
	"4/0/2/1/7 200 1663 ---- provider=openai model=gpt-4o\n";

static bool is(struct spop_slice v, const char *want)
{
	return v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
}

static int parse(const char *s, struct meter_rec *r)
{
	return meter_parse(s, strlen(s), r);
}

static void meter_reads_haproxy_records(void **st)
{
	(void)st;
	struct meter_rec r;
	assert_int_equal(parse(real, &r), 0);
	assert_true(is(r.v[MF_PROVIDER], "openai"));
	assert_true(is(r.v[MF_MODEL], "gpt-4o"));
	assert_true(is(r.v[MF_AGENT], "agent-1"));
	assert_int_equal(r.v[MF_USER].len, 0); /* "-" is absent */
	assert_true(is(r.v[MF_VERDICT], "allow"));
	assert_int_equal(meter_int(r.v[MF_STATUS]), 200);
	assert_int_equal(meter_int(r.v[MF_TOTAL_MS]), 7);
	assert_int_equal(meter_int(r.v[MF_U0 + UF_IN]), 9);
	assert_int_equal(meter_int(r.v[MF_U0 + UF_OUT]), 12);
	assert_int_equal(meter_int(r.v[MF_U0 + UF_CACHE_READ]), -1);
	/* Nil header fields, no message, other elements before ours (with escapes,
	 * which are theirs to use), unknown parameters of ours: all fine. */
	assert_int_equal(parse("<6>1 - - - - - [archestra@32473 p=\"x\" new=\"1\"]", &r), 0);
	assert_true(is(r.v[MF_PROVIDER], "x"));
	assert_int_equal(parse("<6>1 - h app 1 - [meta@1 a=\"q\\\"\\]\\\\\"][archestra@32473 s=\"502\"] m", &r), 0);
	assert_int_equal(meter_int(r.v[MF_STATUS]), 502);
}

static void meter_refuses_what_is_not_a_record(void **st)
{
	(void)st;
	struct meter_rec r;
	static const char *const bad[] = {
		"",
		"<134>",
		"134>1 - - - - - [archestra@32473 p=\"x\"]",                  /* no PRI */
		"<1345>1 - - - - - [archestra@32473 p=\"x\"]",                /* PRI too long */
		"<134>2 - - - - - [archestra@32473 p=\"x\"]",                 /* not version 1 */
		"<134>1 - - - - [archestra@32473 p=\"x\"]",                   /* a header field missing */
		"<134>1 - - - - - - msg",                                    /* no structured data */
		"<134>1 - - - - - [other@1 p=\"x\"]",                         /* not ours */
		"<134>1 - - - - - [archestra@32473 p=\"x\" p=\"y\"]",         /* said twice */
		"<134>1 - - - - - [archestra@32473 p=\"x\"][archestra@32473 p=\"y\"]", /* ours twice */
		"<134>1 - - - - - [archestra@32473 m=\"a\\\"b\"]",            /* an escape in ours */
		"<134>1 - - - - - [archestra@32473 m=\"a]b\"]",               /* a bracket in ours */
		"<134>1 - - - - - [archestra@32473 p=\"x\"",                  /* cut */
		"<134>1 - - - - - [archestra@32473 p=\"x",                    /* cut in a value */
		"<134>1 - - - - - [archestra@32473 p=x]",                     /* unquoted */
		"<134>1 - - - - - [archestra@32473 p=\"x\"]junk",             /* no space before the message */
		"<134>1 - - - - - [archestra@32473  p=\"x\"]",                /* empty name */
		"<134>1 - - - - - [other@1 a=\"\\",                           /* an escape at the end */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &r) == 0)
			fail_msg("case %zu accepted: %s", i, bad[i]);
	/* Too long to be ours, even if well formed. */
	char big[METER_MAX + 64];
	memset(big, 'x', sizeof(big));
	memcpy(big, real, sizeof(real) - 1);
	assert_int_equal(meter_parse(big, sizeof(big), &r), -1);
	/* Every prefix of a record that cuts into the element is refused. */
	size_t end = (size_t)(strchr(real, ']') - real);
	for (size_t n = 0; n <= end; n++)
		if (meter_parse(real, n, &r) == 0)
			fail_msg("prefix of %zu bytes accepted", n);
}

static void meter_counts_are_plain_decimals(void **st)
{
	(void)st;
	assert_int_equal(meter_int(S("0")), 0);
	assert_int_equal(meter_int(S("123456789012345")), 123456789012345LL);
	assert_int_equal(meter_int(S("1234567890123456")), -1); /* 16 digits */
	assert_int_equal(meter_int(S("")), -1);
	assert_int_equal(meter_int(S("-5")), -1);
	assert_int_equal(meter_int(S("+5")), -1);
	assert_int_equal(meter_int(S("1e3")), -1);
	assert_int_equal(meter_int(S("0x10")), -1);
	assert_int_equal(meter_int(S(" 5")), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(meter_reads_haproxy_records),
		cmocka_unit_test(meter_refuses_what_is_not_a_record),
		cmocka_unit_test(meter_counts_are_plain_decimals),
	};
	return cmocka_run_group_tests_name("meter", tests, NULL, NULL);
}
