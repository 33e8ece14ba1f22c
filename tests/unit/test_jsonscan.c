/* Unit tests of jsonscan: json_check's one reading, the decoded readers, and the
 * value parser and member lookups (json_parse_value, json_get, json_get_path). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "jsonscan.h"

#define SL(s) ((struct spop_slice){ (const uint8_t *)(s), sizeof(s) - 1 })

static struct json_key keybuf[70000];
static struct json_keytab keys = { keybuf, 70000 };

static enum json_err check(struct spop_slice doc)
{
	struct json_report r;
	return json_check(doc, &keys, NULL, NULL, NULL, &r) ? JSON_OK : r.err;
}

#define CHECK(lit) check(SL(lit))

static void accepts_what_a_standard_parser_reads_once(void **st)
{
	(void)st;
	const char *ok[] = {
		"{}", "[]", "0", "\"x\"", " {\"a\" : [1, -0.5e+3, true, false, null, {\"b\":{}}]} ",
		"{\"a\":1,\"b\":{\"a\":2}}",                    /* the same key in different objects */
		"[{\"a\":1},{\"a\":1}]",
		"{\"k\\u00e9\":1,\"k\\u00e8\":2}",                /* different once decoded */
		"\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \xc3\xa9 \xe2\x82\xac\"", /* a pair, and raw UTF-8 */
		"{\"\":1}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (check((struct spop_slice){ (const uint8_t *)ok[i], strlen(ok[i]) }) != JSON_OK)
			fail_msg("refused: %s", ok[i]);
}

static void duplicate_keys_are_refused_in_every_spelling(void **st)
{
	(void)st;
	assert_int_equal(CHECK("{\"model\":\"a\",\"model\":\"b\"}"), JSON_ERR_DUPKEY);
	assert_int_equal(CHECK("{\"model\":\"a\",\"m\\u006fdel\":\"b\"}"), JSON_ERR_DUPKEY);
	assert_int_equal(CHECK("{\"m\\u006Fdel\":\"a\",\"\\u006d\\u006f\\u0064\\u0065\\u006c\":\"b\"}"), JSON_ERR_DUPKEY);
	assert_int_equal(CHECK("{\"a\\/b\":1,\"a/b\":2}"), JSON_ERR_DUPKEY);
	assert_int_equal(CHECK("{\"\\u00e9\":1,\"\xc3\xa9\":2}"), JSON_ERR_DUPKEY);          /* escape vs raw UTF-8 */
	assert_int_equal(CHECK("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}"), JSON_ERR_DUPKEY); /* pair vs raw */
	assert_int_equal(CHECK("{\"x\":{\"t\":[{\"name\":\"a\",\"name\":\"b\"}]}}"), JSON_ERR_DUPKEY); /* nested */
	assert_int_equal(CHECK("[1,{\"a\":1,\"b\":2,\"a\":3}]"), JSON_ERR_DUPKEY);
	/* a key equal to another after an object in between */
	assert_int_equal(CHECK("{\"a\":{\"a\":1,\"b\":2},\"b\":1,\"a\":2}"), JSON_ERR_DUPKEY);
	/* a key that is a prefix of another is not the same key */
	assert_int_equal(CHECK("{\"model\":1,\"model\\u0000\":2}"), JSON_OK);

	/* A large object, where keys are sorted by hash: its duplicate is found wherever it is. */
	size_t n = 50000;
	char *b = malloc(n * 16 + 64);
	size_t o = (size_t)sprintf(b, "{");
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(b + o, "%s\"k%zu\":0", i ? "," : "", i);
	strcpy(b + o, "}");
	assert_int_equal(check((struct spop_slice){ (const uint8_t *)b, o + 1 }), JSON_OK);
	strcpy(b + o, ",\"k\\u00317\":1}"); /* "k17" once decoded */
	assert_int_equal(check((struct spop_slice){ (const uint8_t *)b, strlen(b) }), JSON_ERR_DUPKEY);
	free(b);
}

static void nesting_past_the_bound_is_refused(void **st)
{
	(void)st;
	char b[300];
	for (int depth = 63; depth <= 66; depth++) {
		memset(b, '[', (size_t)depth);
		memset(b + depth, ']', (size_t)depth);
		assert_int_equal(check((struct spop_slice){ (const uint8_t *)b, (size_t)depth * 2 }),
		                 depth <= JSON_MAX_DEPTH ? JSON_OK : JSON_ERR_DEPTH);
	}
}

static void invalid_text_is_refused(void **st)
{
	(void)st;
	const char *utf8[] = {
		"\"\xff\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", /* overlong, encoded surrogate */
		"\"\xf4\x90\x80\x80\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\x80\"", "\"\xf8\x88\x80\x80\x80\"",
		"\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "{\"\\udfff\":1}",
	};
	for (size_t i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++)
		if (check((struct spop_slice){ (const uint8_t *)utf8[i], strlen(utf8[i]) }) != JSON_ERR_UTF8)
			fail_msg("case %zu not refused as UTF-8", i);
	const char *syntax[] = {
		"\xef\xbb\xbf{}",            /* a byte order mark */
		"{\0\"\0}\0",                 /* UTF-16 */
		"{\"a\":1}x", "{\"a\":1}{}", "{\"a\" 1}", "{\"a\":1,}", "[1,]", "{a:1}", "{'a':1}", "\"\\x\"",
		"\"\\u12\"", "\"a\x01\"", "01", "1.", ".5", "+1", "-", "1e", "NaN", "Infinity", "tru", "nul", "",
		"   ", "[", "{\"a\":", "\"abc", "/*c*/{}",
	};
	for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
		size_t len = i == 1 ? 7 : strlen(syntax[i]);
		if (check((struct spop_slice){ (const uint8_t *)syntax[i], len }) != JSON_ERR_SYNTAX)
			fail_msg("case %zu not refused as syntax", i);
	}
}

struct seen {
	char text[256];
	size_t n;
};

static void on_escaped(void *arg, struct spop_slice raw)
{
	struct seen *s = arg;
	s->n += (size_t)snprintf(s->text + s->n, sizeof(s->text) - s->n, "%.*s|", (int)raw.len, raw.ptr);
}

static void strings_with_u_escapes_are_reported(void **st)
{
	(void)st;
	struct seen s = { .n = 0 };
	struct json_report r;
	struct spop_slice doc = SL("{\"a\\u0062\":\"plain\",\"c\":\"x\\ny\",\"d\":[\"AKIA\\u0049OSF\"]}");
	assert_true(json_check(doc, &keys, on_escaped, &s, NULL, &r));
	assert_string_equal(s.text, "a\\u0062|AKIA\\u0049OSF|"); /* \n alone reads the same raw */
}

static void readers_compare_and_return_decoded(void **st)
{
	(void)st;
	char buf[256];
	struct json_arena a = { buf, sizeof(buf), 0 };
	struct json_val v;
	struct spop_slice s;
	struct spop_slice doc = SL("{\"m\\u006fdel\":\"gpt\\u002d5\",\"t\\u006fols\":[{\"name\":\"send\\u005femail\"}],"
	                           "\"plain\":\"abc\",\"z\":\"\\u0000\"}");
	assert_true(json_get(doc, "model", &v));
	assert_true(json_as_string(&v, &a, &s));
	assert_true(SPOP_SLICE_IS(s, "gpt-5"));
	assert_true(json_get_path(doc, "tools", &v));
	assert_int_equal(v.kind, JSON_ARRAY);
	assert_true(json_get(doc, "plain", &v));
	size_t used = a.used;
	assert_true(json_as_string(&v, &a, &s));
	assert_true(SPOP_SLICE_IS(s, "abc"));
	assert_int_equal(a.used, used);                   /* no escape: a slice of the document, nothing copied */
	assert_true(s.ptr > doc.ptr && s.ptr < doc.ptr + doc.len);
	assert_false(json_get(doc, "mode", &v));
	assert_false(json_get(doc, "models", &v));
	assert_true(json_get(doc, "z", &v));
	assert_true(json_as_string(&v, &a, &s));
	assert_int_equal(s.len, 1);
	assert_int_equal(s.ptr[0], 0);
	/* the arena refuses what does not fit rather than cut it */
	struct json_arena tiny = { buf, 2, 0 };
	assert_true(json_get(doc, "model", &v));
	assert_false(json_as_string(&v, &tiny, &s));
	assert_true(json_key_is(SL("a\\u0000"), "a") == false);
	assert_true(json_key_is(SL("\\u0061"), "a"));
	assert_false(json_key_is(SL("\\u0061"), "ab"));
	assert_false(json_key_is(SL("ab"), "a"));
}

static void numbers_are_read_by_value(void **st)
{
	(void)st;
	struct { const char *num; int r; int64_t v; } cases[] = {
		{ "100000", 1, 100000 }, { "1e5", 1, 100000 }, { "1E+5", 1, 100000 }, { "100000.0", 1, 100000 },
		{ "100000e0", 1, 100000 }, { "1000000e-1", 1, 100000 }, { "0.1e6", 1, 100000 }, { "-0", 1, 0 },
		{ "0.0", 1, 0 }, { "-5", 1, -5 }, { "1.5", 0, 0 }, { "1e-1", 0, 0 }, { "100.5", 0, 0 },
		{ "1e30", 1, INT64_MAX }, { "-1e30", 1, INT64_MIN }, { "9223372036854775807", 1, INT64_MAX },
		{ "9223372036854775808", 1, INT64_MAX }, { "123456789012345678901234567890", 1, INT64_MAX },
		{ "1.0000000000000000000000000001", 0, 0 }, { "1e99999999999", 1, INT64_MAX },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_val v;
		int64_t x = 42;
		assert_true(json_parse_value((struct spop_slice){ (const uint8_t *)cases[i].num, strlen(cases[i].num) }, &v));
		int r = json_as_whole(&v, &x);
		if (r != cases[i].r || (r == 1 && x != cases[i].v))
			fail_msg("%s: got %d %lld", cases[i].num, r, (long long)x);
	}
	struct json_val s = { JSON_STRING, SL("\"100000\"") };
	int64_t x;
	assert_int_equal(json_as_whole(&s, &x), -1);
}

/* ---- the value parser and member lookups ---- */

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_what_a_standard_parser_reads_once),
		cmocka_unit_test(duplicate_keys_are_refused_in_every_spelling),
		cmocka_unit_test(nesting_past_the_bound_is_refused),
		cmocka_unit_test(invalid_text_is_refused),
		cmocka_unit_test(strings_with_u_escapes_are_reported),
		cmocka_unit_test(readers_compare_and_return_decoded),
		cmocka_unit_test(numbers_are_read_by_value),
		cmocka_unit_test(json_members_and_paths),
		cmocka_unit_test(json_rejects_malformed),
		cmocka_unit_test(json_strings_at_every_offset),
	};
	return cmocka_run_group_tests_name("jsonscan", tests, NULL, NULL);
}
