/* Unit tests of the X-Archestra-* identity header rules. */
#include "testutil.h"

#include <stdio.h>

#include "identity.h"

/* "Name: value" lines (\n separated) to hdrs_bin, into a static buffer. */
static struct spop_data hdrs(const char *lines)
{
	static uint8_t b[8192];
	struct spop_writer w;
	spop_writer_init(&w, b, sizeof(b));
	const char *p = lines;
	while (p && *p) {
		const char *nl = strchr(p, '\n');
		const char *end = nl ? nl : p + strlen(p);
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *v = colon + 1;
		spop_put_name(&w, p, (size_t)(colon - p));
		spop_put_name(&w, v, (size_t)(end - v));
		p = nl ? nl + 1 : NULL;
	}
	spop_put_raw(&w, "\0\0", 2);
	return (struct spop_data){ .type = SPOP_T_BINARY, .v.s = { b, (size_t)(w.p - b) } };
}

static struct identity id;
static struct identity_error err;
static unsigned dropped;

static int parse(const char *lines, bool drop)
{
	struct spop_data h = hdrs(lines);
	memset(&err, 0, sizeof(err));
	return identity_parse(&h, drop, &id, &err, &dropped);
}

static void expect(enum id_field f, const char *want)
{
	if (!want) {
		assert_int_equal(id.v[f].len, 0);
		return;
	}
	if (id.v[f].len != strlen(want) || memcmp(id.v[f].ptr, want, id.v[f].len) != 0)
		fail_msg("%s: got '%.*s', want '%s'", identity_field_name(f), (int)id.v[f].len, id.v[f].ptr, want);
}

static void individual_headers_any_case_trimmed(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-Agent-Id:  support-bot \nx-archestra-user-id:alice\n"
	                       "X-ARCHESTRA-SESSION-ID:\tconv-42\nx-Archestra-Execution-ID: run-7\nhost: a", false), 0);
	expect(ID_AGENT, "support-bot");
	expect(ID_USER, "alice");
	expect(ID_SESSION, "conv-42");
	expect(ID_EXECUTION, "run-7");
}

/* Archestra renamed X-Archestra-Execution-Id to X-Archestra-Run-Id: either names the
 * run; both may come, and must then agree; the Meta header fills it only when neither did. */
static void run_id_is_the_execution_id(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-Run-Id: run-9", false), 0);
	expect(ID_EXECUTION, "run-9");
	assert_int_equal(parse("X-Archestra-Run-Id: run-9\nX-Archestra-Execution-Id: run-9", false), 0);
	expect(ID_EXECUTION, "run-9");
	assert_int_equal(parse("X-Archestra-Execution-Id: run-8\nx-archestra-run-id: run-9", false), -1);
	assert_string_equal(err.header, "X-Archestra-Run-Id");
	assert_non_null(strstr(err.why, "differs from X-Archestra-Execution-Id"));
	assert_int_equal(parse("X-Archestra-Run-Id: run-9\nX-Archestra-Execution-Id: run-8", false), -1);
	assert_string_equal(err.header, "X-Archestra-Execution-Id");
	assert_int_equal(parse("X-Archestra-Run-Id: run-1\nX-Archestra-Run-Id: run-2", false), -1);
	assert_non_null(strstr(err.why, "repeated with different values"));
	assert_int_equal(parse("X-Archestra-Run-Id: a/b", false), -1);
	assert_string_equal(err.header, "X-Archestra-Run-Id");
	/* dropped, not refused, under invalid_identity: drop */
	assert_int_equal(parse("X-Archestra-Execution-Id: run-8\nX-Archestra-Run-Id: run-9", true), 0);
	expect(ID_EXECUTION, NULL);
	assert_int_equal(dropped, 1);
	assert_int_equal(parse("X-Archestra-Meta: a/m-run/s\nX-Archestra-Run-Id: run-9", false), 0);
	expect(ID_EXECUTION, "run-9");
}

static void meta_with_empty_segments(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-Meta: agent-1/exec-9/sess-3", false), 0);
	expect(ID_AGENT, "agent-1");
	expect(ID_EXECUTION, "exec-9");
	expect(ID_SESSION, "sess-3");
	expect(ID_USER, NULL);
	assert_int_equal(parse("X-Archestra-Meta: //sess-only", false), 0);
	expect(ID_AGENT, NULL);
	expect(ID_EXECUTION, NULL);
	expect(ID_SESSION, "sess-only");
	assert_int_equal(parse("X-Archestra-Meta: a//", false), 0);
	expect(ID_AGENT, "a");
	assert_int_equal(parse("X-Archestra-Meta: //", false), 0);
	expect(ID_AGENT, NULL);
	assert_int_equal(parse("X-Archestra-Meta: a / b / c ", false), 0);
	expect(ID_EXECUTION, "b");
}

static void individual_header_wins_over_meta(void **st)
{
	(void)st;
	/* Whatever the order of the headers. */
	assert_int_equal(parse("X-Archestra-Meta: meta-agent/meta-exec/meta-sess\nX-Archestra-Agent-Id: own-agent", false), 0);
	expect(ID_AGENT, "own-agent");
	expect(ID_EXECUTION, "meta-exec");
	assert_int_equal(parse("X-Archestra-Session-Id: own-sess\nX-Archestra-Meta: a/e/meta-sess", false), 0);
	expect(ID_SESSION, "own-sess");
	expect(ID_AGENT, "a");
	/* An empty individual header does not hide Meta. */
	assert_int_equal(parse("X-Archestra-Agent-Id: \nX-Archestra-Meta: a/e/s", false), 0);
	expect(ID_AGENT, "a");
}

static void invalid_values_are_400_with_the_header_named(void **st)
{
	(void)st;
	struct { const char *lines, *header, *why; } cases[] = {
		{ "X-Archestra-Agent-Id: a/b", "X-Archestra-Agent-Id", "'/'" },
		{ "X-Archestra-User-Id: bad\x01value", "X-Archestra-User-Id", "outside" },
		{ "X-Archestra-Session-Id: del\x7f", "X-Archestra-Session-Id", "outside" },
		{ "X-Archestra-User-Id: alice verdict=allow", "X-Archestra-User-Id", "outside" },
		{ "X-Archestra-Agent-Id: a=b", "X-Archestra-Agent-Id", "outside" },
		{ "X-Archestra-Agent-Id: \"q\"", "X-Archestra-Agent-Id", "outside" },
		{ "X-Archestra-Agent-Id: caf\xc3\xa9", "X-Archestra-Agent-Id", "outside" },
		{ "X-Archestra-Agent-Id: a|b", "X-Archestra-Agent-Id", "outside" },
		{ "X-Archestra-Meta: a/b", "X-Archestra-Meta", "3 segments" },
		{ "X-Archestra-Meta: a/b/c/d", "X-Archestra-Meta", "3 segments" },
		{ "X-Archestra-Meta: noslash", "X-Archestra-Meta", "3 segments" },
		{ "X-Archestra-Meta: a/b\x02/c", "X-Archestra-Meta", "outside" },
		{ "X-Archestra-Meta: a/b c/d", "X-Archestra-Meta", "outside" },
		{ "X-Archestra-Agent-Id: one\nX-Archestra-Agent-Id: two", "X-Archestra-Agent-Id", "different" },
		{ "X-Archestra-Meta: a/b/c\nX-Archestra-Meta: a/b/d", "X-Archestra-Meta", "different" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].lines, false) != -1)
			fail_msg("case %zu accepted", i);
		assert_string_equal(err.header, cases[i].header);
		if (!strstr(err.why, cases[i].why))
			fail_msg("case %zu: why '%s' lacks '%s'", i, err.why, cases[i].why);
	}
}

static void length_limit(void **st)
{
	(void)st;
	char line[400];
	int n = snprintf(line, sizeof(line), "X-Archestra-Execution-Id: ");
	memset(line + n, 'x', IDENTITY_MAX_LEN);
	line[n + IDENTITY_MAX_LEN] = '\0';
	assert_int_equal(parse(line, false), 0);
	assert_int_equal(id.v[ID_EXECUTION].len, IDENTITY_MAX_LEN);
	line[n + IDENTITY_MAX_LEN] = 'x';
	line[n + IDENTITY_MAX_LEN + 1] = '\0';
	assert_int_equal(parse(line, false), -1);
	assert_non_null(strstr(err.why, "128"));
}

static void duplicates_with_same_value_count_once(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-User-Id: bob\nx-archestra-user-id:  bob ", false), 0);
	expect(ID_USER, "bob");
}

static void drop_mode_counts_and_continues(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-Agent-Id: a/b\nX-Archestra-User-Id: ok-user\n"
	                       "X-Archestra-Meta: m-agent/m-exec/m-sess\nX-Archestra-Session-Id: x\x03y", true), 0);
	assert_int_equal(dropped, 2);
	expect(ID_USER, "ok-user");
	/* A dropped header is as if not sent: Meta fills its field. */
	expect(ID_AGENT, "m-agent");
	expect(ID_SESSION, "m-sess");
	assert_int_equal(parse("X-Archestra-Meta: only/two", true), 0);
	assert_int_equal(dropped, 1);
	expect(ID_AGENT, NULL);
	assert_int_equal(parse("X-Archestra-Agent-Id: a\nX-Archestra-Agent-Id: b", true), 0);
	expect(ID_AGENT, NULL);
	assert_int_equal(dropped, 1);
}

static void other_headers_and_bad_input(void **st)
{
	(void)st;
	assert_int_equal(parse("X-Archestra-Unknown: a/b\nX-Archestra: z\nx-archestra-agent: q", false), 0);
	for (int f = 0; f < ID_FIELDS; f++)
		expect((enum id_field)f, NULL);
	struct spop_data none = { .type = SPOP_T_NULL };
	assert_int_equal(identity_parse(&none, false, &id, &err, &dropped), 0);
	assert_int_equal(identity_parse(NULL, false, &id, &err, &dropped), 0);
	/* A value slice points into hdrs_bin: no copy. */
	struct spop_data h = hdrs("X-Archestra-Agent-Id: zed");
	assert_int_equal(identity_parse(&h, false, &id, &err, &dropped), 0);
	assert_true(id.v[ID_AGENT].ptr > h.v.s.ptr && id.v[ID_AGENT].ptr < h.v.s.ptr + h.v.s.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(individual_headers_any_case_trimmed),
		cmocka_unit_test(run_id_is_the_execution_id),
		cmocka_unit_test(meta_with_empty_segments),
		cmocka_unit_test(individual_header_wins_over_meta),
		cmocka_unit_test(invalid_values_are_400_with_the_header_named),
		cmocka_unit_test(length_limit),
		cmocka_unit_test(duplicates_with_same_value_count_once),
		cmocka_unit_test(drop_mode_counts_and_continues),
		cmocka_unit_test(other_headers_and_bad_input),
	};
	return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
