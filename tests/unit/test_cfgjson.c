/* Unit tests of cfgjson: the JSON readers every settings module uses; each reader,
 * its default message, and what it leaves alone. */
#include "testutil.h"

#include <stdint.h>

#include <cjson/cJSON.h>

#include "cfgjson.h"

static char err[256];

static cJSON *doc;

static const cJSON *at(const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(doc, key);
}

#define ERR_IS(want) do { if (strcmp(err, (want)) != 0) fail_msg("error '%s', want '%s'", err, (want)); } while (0)

static void cfgjson_scalars(void **st)
{
	(void)st;
	doc = cJSON_Parse("{\"b\":true,\"i\":42,\"f\":1.5,\"big\":1e300,\"s\":\"abc\",\"e\":\"\",\"n\":null}");
	bool b = false;
	int64_t i = 7;
	double d = 0;
	char s[4] = "zz";

	assert_int_equal(cfg_bool(at("b"), "top", "b", 0, &b, NULL, err, sizeof(err)), 0);
	assert_true(b);
	assert_int_equal(cfg_bool(at("i"), "top", "i", 0, &b, NULL, err, sizeof(err)), -1);
	ERR_IS("top.i: expected true or false");
	assert_int_equal(cfg_bool(at("i"), "top", "i", 0, &b, "expected true (on) or false", err, sizeof(err)), -1);
	ERR_IS("top.i: expected true (on) or false");
	assert_int_equal(cfg_bool(NULL, "top", "x", 0, &b, NULL, err, sizeof(err)), -1); /* required */
	ERR_IS("top.x: missing; expected true or false");
	assert_int_equal(cfg_bool(NULL, "top", "x", CFG_OPTIONAL, &b, NULL, err, sizeof(err)), 0);
	assert_true(b); /* absent: untouched */

	assert_int_equal(cfg_int(at("i"), NULL, "i", 0, 1, 42, &i, NULL, err, sizeof(err)), 0);
	assert_int_equal(i, 42);
	assert_int_equal(cfg_int(at("i"), NULL, "i", 0, 1, 41, &i, NULL, err, sizeof(err)), -1);
	ERR_IS("i: expected an integer from 1 to 41");
	assert_int_equal(cfg_int(at("f"), NULL, "f", 0, 0, 10, &i, NULL, err, sizeof(err)), -1);
	assert_int_equal(cfg_int(at("big"), NULL, "big", 0, 0, INT64_MAX, &i, NULL, err, sizeof(err)), -1);
	assert_int_equal(cfg_int(at("s"), NULL, "s", 0, 0, 10, &i, NULL, err, sizeof(err)), -1);
	assert_int_equal(i, 42); /* a refused value leaves the result as it was */

	assert_int_equal(cfg_number(at("f"), "p", "f", 0, 0, 2, &d, NULL, err, sizeof(err)), 0);
	assert_true(d == 1.5);
	assert_int_equal(cfg_number(at("f"), "p", "f", 0, 0, 1, &d, NULL, err, sizeof(err)), -1);
	ERR_IS("p.f: expected a number from 0 to 1");

	assert_int_equal(cfg_str(at("s"), "p", "s", 0, s, sizeof(s), NULL, err, sizeof(err)), 0);
	assert_string_equal(s, "abc");
	assert_int_equal(cfg_str(at("s"), "p", "s", 0, s, 3, NULL, err, sizeof(err)), -1);
	ERR_IS("p.s: expected a string of at most 2 bytes");
	assert_int_equal(cfg_str(at("e"), "p", "e", 0, s, sizeof(s), NULL, err, sizeof(err)), 0);
	assert_string_equal(s, "");
	assert_int_equal(cfg_str(at("e"), "p", "e", CFG_NONEMPTY, s, sizeof(s), NULL, err, sizeof(err)), -1);
	ERR_IS("p.e: expected a non-empty string of at most 3 bytes");
	assert_int_equal(cfg_str(at("n"), "p", "n", CFG_OPTIONAL, s, sizeof(s), NULL, err, sizeof(err)), -1); /* null is not absent */
	cJSON_Delete(doc);
}

static void cfgjson_names(void **st)
{
	(void)st;
	static const char *const modes[] = { "allow", "deny", "shadow", NULL };
	doc = cJSON_Parse("{\"m\":\"deny\",\"bad\":\"block\",\"l\":[\"shadow\",\"allow\",\"shadow\"],\"one\":\"deny\",\"none\":[],"
	                  "\"mixed\":[\"allow\",1]}");
	int m = -1;
	unsigned set = 0;
	assert_int_equal(cfg_lookup("shadow", modes), 2);
	assert_int_equal(cfg_lookup("Shadow", modes), -1);
	assert_int_equal(cfg_lookup(NULL, modes), -1);

	assert_int_equal(cfg_enum(at("m"), "rules[2]", "m", 0, modes, &m, NULL, err, sizeof(err)), 0);
	assert_int_equal(m, 1);
	assert_int_equal(cfg_enum(at("bad"), "rules[2]", "action", 0, modes, &m, NULL, err, sizeof(err)), -1);
	ERR_IS("rules[2].action: expected one of allow, deny, shadow");
	assert_int_equal(m, 1);

	assert_int_equal(cfg_enum_set(at("l"), "p", "l", 0, modes, &set, NULL, err, sizeof(err)), 0);
	assert_int_equal(set, 5);
	assert_int_equal(cfg_enum_set(at("one"), "p", "one", 0, modes, &set, NULL, err, sizeof(err)), -1);
	ERR_IS("p.one: expected an array of allow, deny, shadow");
	assert_int_equal(cfg_enum_set(at("one"), "p", "one", CFG_SCALAR, modes, &set, NULL, err, sizeof(err)), 0);
	assert_int_equal(set, 2);
	assert_int_equal(cfg_enum_set(at("none"), "p", "none", CFG_SCALAR, modes, &set, NULL, err, sizeof(err)), -1);
	ERR_IS("p.none: expected one of allow, deny, shadow, or an array of them");
	assert_int_equal(cfg_enum_set(at("mixed"), "p", "mixed", 0, modes, &set, NULL, err, sizeof(err)), -1);
	assert_int_equal(set, 2);

	assert_int_equal(cfg_unknown(err, sizeof(err), "statsd", "flush", "key", modes), -1);
	ERR_IS("statsd.flush: unknown key (known: allow, deny, shadow)");
	cJSON_Delete(doc);
}

static void cfgjson_lists_and_objects(void **st)
{
	(void)st;
	static const char *const only[] = { "name", "args", NULL };
	doc = cJSON_Parse("{\"l\":[\"a\",\"bb\"],\"long\":[\"a\",\"toolong\"],\"empty\":[\"a\",\"\"],\"s\":\"x\",\"o\":{\"name\":1},"
	                  "\"typo\":{\"name\":1,\"arsg\":2},\"twice\":{\"name\":1,\"name\":2},\"a\":[1,2,3]}");
	char rows[4][4];
	int n = -1;
	assert_int_equal(cfg_strings(at("l"), "k[0]", "l", 0, 0, 4, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[1], "bb");
	assert_int_equal(cfg_strings(at("l"), "k[0]", "l", 0, 0, 1, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), -1);
	ERR_IS("k[0].l: expected an array of at most 1 strings");
	assert_int_equal(cfg_strings(at("long"), "k[0]", "long", 0, 0, 4, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), -1);
	ERR_IS("k[0].long[1]: expected a string of at most 3 bytes");
	assert_int_equal(cfg_strings(at("empty"), "k", "empty", CFG_NONEMPTY, 1, 4, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), -1);
	ERR_IS("k.empty[1]: expected a non-empty string of at most 3 bytes");
	assert_int_equal(cfg_strings(at("empty"), "k", "empty", CFG_NONEMPTY, 1, 4, rows[0], sizeof(rows[0]), &n, "expected names", err, sizeof(err)), -1);
	ERR_IS("k.empty: expected names");
	assert_int_equal(cfg_strings(at("s"), "k", "s", 0, 1, 4, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), -1);
	ERR_IS("k.s: expected an array of 1 to 4 strings");
	assert_int_equal(cfg_strings(at("s"), "k", "s", CFG_SCALAR, 1, 4, rows[0], sizeof(rows[0]), &n, NULL, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0], "x");

	assert_int_equal(cfg_array(at("a"), NULL, "a", 0, 1, 3, NULL, err, sizeof(err)), 0);
	assert_int_equal(cfg_array(at("a"), NULL, "a", 0, 1, 2, "conditions", err, sizeof(err)), -1);
	ERR_IS("a: expected an array of 1 to 2 conditions");
	assert_int_equal(cfg_array(at("o"), "x", "o", 0, 0, 2, "rules", err, sizeof(err)), -1);
	ERR_IS("x.o: expected an array of at most 2 rules");

	assert_int_equal(cfg_object(at("o"), "c[1]", NULL, 0, only, NULL, err, sizeof(err)), 0);
	assert_int_equal(cfg_object(at("a"), "c[1]", NULL, 0, only, NULL, err, sizeof(err)), -1);
	ERR_IS("c[1]: expected an object");
	assert_int_equal(cfg_object(at("typo"), "c[1]", NULL, 0, only, NULL, err, sizeof(err)), -1);
	ERR_IS("c[1].arsg: unknown key (known: name, args)");
	assert_int_equal(cfg_object(at("twice"), "c[1]", NULL, 0, only, NULL, err, sizeof(err)), -1);
	ERR_IS("c[1].name: given twice");
	assert_int_equal(cfg_object(at("twice"), "c[1]", NULL, 0, only, "expected {\"name\"}", err, sizeof(err)), -1);
	ERR_IS("c[1]: expected {\"name\"}");
	assert_int_equal(cfg_object(at("twice"), "c[1]", NULL, 0, NULL, NULL, err, sizeof(err)), 0);
	cJSON_Delete(doc);
}

static void cfgjson_paths_and_documents(void **st)
{
	(void)st;
	char p[CFG_PATH_MAX], small[8];
	assert_string_equal(cfg_path(p, sizeof(p), NULL, "threads"), "threads");
	assert_string_equal(cfg_path(p, sizeof(p), "", "threads"), "threads");
	assert_string_equal(cfg_path(p, sizeof(p), "jwt", "issuer"), "jwt.issuer");
	assert_string_equal(cfg_path(p, sizeof(p), "rules[0]", NULL), "rules[0]");
	assert_string_equal(cfg_path_idx(p, sizeof(p), "keys[1]", "models", 3), "keys[1].models[3]");
	assert_string_equal(cfg_path_idx(p, sizeof(p), "rules", NULL, 2), "rules[2]");
	assert_string_equal(cfg_path(small, sizeof(small), "statsd", "prefix"), "statsd.");
	char tiny[12];
	assert_int_equal(cfg_fail(tiny, sizeof(tiny), "statsd", "prefix", "bad %d", 1), -1);
	assert_string_equal(tiny, "statsd.pref"); /* cut to fit, still terminated */

	const char ok[] = "{\"a\":\n[1]}";
	cJSON *t = cfg_parse(ok, sizeof(ok) - 1, CFG_WHOLE, err, sizeof(err));
	assert_non_null(t);
	cJSON_Delete(t);
	assert_null(cfg_parse("{\"a\":\n[1,]}", 11, 0, err, sizeof(err)));
	ERR_IS("not valid JSON (near byte 9, line 2)");
	assert_null(cfg_parse("{} x", 4, CFG_WHOLE, err, sizeof(err)));
	t = cfg_parse("{} x", 4, 0, err, sizeof(err)); /* without CFG_WHOLE what trails is not read */
	assert_non_null(t);
	cJSON_Delete(t);
	assert_null(cfg_parse("{}\0{}", 5, CFG_WHOLE, err, sizeof(err)));
	ERR_IS("not valid JSON (contains a NUL byte)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cfgjson_scalars),
		cmocka_unit_test(cfgjson_names),
		cmocka_unit_test(cfgjson_lists_and_objects),
		cmocka_unit_test(cfgjson_paths_and_documents),
	};
	return cmocka_run_group_tests_name("cfgjson", tests, NULL, NULL);
}
