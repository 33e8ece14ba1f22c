/* Unit tests of configuration: listen addresses, JSON, CLI, and the JSON readers
 * every settings module uses (cfgjson.h). */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h> /* its LOG_INFO, LOG_DEBUG... macros must not meet log.h's levels */
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cfgjson.h"
#include "config.h"

static char err[CONFIG_ERR_LEN];

static void listen_addresses(void **st)
{
	(void)st;
	struct listen_addr a;
	assert_int_equal(config_parse_listen("127.0.0.1:12345", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 12345);
	assert_int_equal(config_parse_listen("[::1]:9000", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), 9000);
	assert_int_equal(config_parse_listen("*:80", &a, err, sizeof(err)), 0);
	assert_int_equal(((struct sockaddr_in *)&a.ss)->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(config_parse_listen("unix:/run/spoa.sock", &a, err, sizeof(err)), 0);
	assert_true(a.is_unix);
	assert_string_equal(((struct sockaddr_un *)&a.ss)->sun_path, "/run/spoa.sock");

	const char *bad[] = { "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "1.2.3:80", ":80", "[::1]9000",
	                      "[::g]:1", "unix:", "host.example:80", "127.0.0.1:8x", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(config_parse_listen(bad[i], &a, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
	}
	char longp[200] = "unix:/";
	memset(longp + 6, 'a', 150);
	longp[156] = '\0';
	assert_int_equal(config_parse_listen(longp, &a, err, sizeof(err)), -1);
}

static void json_full_document(void **st)
{
	(void)st;
	struct config c;
	config_defaults(&c);
	const char *j = "{\"listen\":[\"127.0.0.1:9000\",\"unix:/tmp/x.sock\"],\"threads\":3,"
	                "\"max_connections\":50,\"max_frame_size\":65536,\"max_reassembled\":1000000,"
	                "\"capabilities\":{\"async\":false,\"fragmentation\":false},"
	                "\"timeouts\":{\"hello_ms\":100,\"idle_ms\":200,\"drain_ms\":300},"
	                "\"log_level\":\"debug\",\"ack_only\":true}";
	assert_int_equal(config_apply_json(&c, j, strlen(j), err, sizeof(err)), 0);
	assert_int_equal(c.nlisten, 2);
	assert_true(c.listen[1].is_unix);
	assert_int_equal(c.threads, 3);
	assert_int_equal(c.max_connections, 50);
	assert_int_equal(c.max_frame_size, 65536);
	assert_int_equal(c.max_reassembled, 1000000);
	assert_int_equal(c.caps, SPOP_CAP_PIPELINING);
	assert_int_equal(c.hello_ms, 100);
	assert_int_equal(c.idle_ms, 200);
	assert_int_equal(c.drain_ms, 300);
	assert_int_equal(c.log_level, LL_DEBUG);
	assert_true(c.ack_only);
}

static void json_errors_name_the_path(void **st)
{
	(void)st;
	struct { const char *json; const char *want; } cases[] = {
		{ "{\"thredas\":2}", "thredas: unknown key" },
		{ "{\"threads\":-1}", "threads: expected an integer" },
		{ "{\"threads\":1.5}", "threads: expected an integer" },
		{ "{\"threads\":\"2\"}", "threads: expected an integer" },
		{ "{\"max_frame_size\":255}", "max_frame_size: expected an integer from 256" },
		{ "{\"timeouts\":{\"hello\":1}}", "timeouts.hello: unknown key" },
		{ "{\"timeouts\":{\"idle_ms\":0}}", "timeouts.idle_ms: expected an integer" },
		{ "{\"timeouts\":5}", "timeouts: expected an object" },
		{ "{\"capabilities\":{\"async\":1}}", "capabilities.async: expected true or false" },
		{ "{\"capabilities\":{\"turbo\":true}}", "capabilities.turbo: unknown capability" },
		{ "{\"listen\":[]}", "listen: expected a string or an array" },
		{ "{\"listen\":[\"x\"]}", "listen[0]: bad listen address" },
		{ "{\"listen\":[\"127.0.0.1:1\", 5]}", "listen[1]: expected a string" },
		{ "{\"log_level\":\"loud\"}", "log_level: expected" },
		{ "[1,2]", "$: expected a JSON object" },
		{ "{\"threads\":2,}", "not valid JSON" },
		{ "{\n\"threads\":\n", "line 3" },
		{ "{} trailing", "not valid JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		config_defaults(&c);
		err[0] = '\0';
		assert_int_equal(config_apply_json(&c, cases[i].json, strlen(cases[i].json), err, sizeof(err)), -1);
		if (!strstr(err, cases[i].want))
			fail_msg("json %s: error '%s' lacks '%s'", cases[i].json, err, cases[i].want);
	}
}

/* ---- cfgjson: each reader, its default message, and what it leaves alone ---- */

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

static enum cli_result cli(struct config *c, const char *a1, const char *a2, const char *a3, const char *a4)
{
	char *argv[6] = { "archestra-spoa", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL };
	int argc = 1;
	while (argc < 5 && argv[argc])
		argc++;
	config_defaults(c);
	err[0] = '\0';
	return config_from_args(c, argc, argv, err, sizeof(err));
}

static void cli_flags(void **st)
{
	(void)st;
	struct config c;
	assert_int_equal(cli(&c, NULL, NULL, NULL, NULL), CLI_RUN);
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0].text, "127.0.0.1:12345");

	assert_int_equal(cli(&c, "--listen", "127.0.0.1:1", "--listen=[::1]:2", NULL), CLI_RUN);
	assert_int_equal(c.nlisten, 2);
	assert_int_equal(c.listen[1].ss.ss_family, AF_INET6);
	assert_int_equal(cli(&c, "--threads", "4", "--log-level", "warn"), CLI_RUN);
	assert_int_equal(c.threads, 4);
	assert_int_equal(c.log_level, LL_WARN);
	assert_int_equal(cli(&c, "--check", NULL, NULL, NULL), CLI_CHECK);
	assert_int_equal(cli(&c, "--ack-only", NULL, NULL, NULL), CLI_RUN);
	assert_true(c.ack_only);
	assert_int_equal(cli(&c, "--nope", NULL, NULL, NULL), CLI_ERROR);
	assert_non_null(strstr(err, "--nope"));
	assert_int_equal(cli(&c, "--threads", "0", NULL, NULL), CLI_ERROR);
	assert_int_equal(cli(&c, "--threads", "2x", NULL, NULL), CLI_ERROR);
	assert_int_equal(cli(&c, "--threads", NULL, NULL, NULL), CLI_ERROR);
	assert_int_equal(cli(&c, "--listen", "nowhere", NULL, NULL), CLI_ERROR);
	assert_non_null(strstr(err, "nowhere"));
	assert_int_equal(cli(&c, "--log-level", "loud", NULL, NULL), CLI_ERROR);
	assert_int_equal(cli(&c, "--config", "/nonexistent/x.json", NULL, NULL), CLI_ERROR);
	assert_non_null(strstr(err, "/nonexistent/x.json"));
	/* --help and --version win over errors elsewhere on the line. */
	assert_int_equal(cli(&c, "--nope", "--help", NULL, NULL), CLI_HELP);
	assert_int_equal(cli(&c, "--version", NULL, NULL, NULL), CLI_VERSION);
}

static void cli_flags_override_config_file(void **st)
{
	(void)st;
	char path[] = "/tmp/spoa-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *j = "{\"listen\":\"127.0.0.1:7000\",\"threads\":8,\"log_level\":\"error\"}";
	assert_int_equal(write(fd, j, strlen(j)), (ssize_t)strlen(j));
	close(fd);
	struct config c;
	/* The file comes after the flags on the line, the flags still win. */
	assert_int_equal(cli(&c, "--threads", "2", "--config", path), CLI_RUN);
	assert_int_equal(c.threads, 2);
	assert_int_equal(c.log_level, LL_ERROR);
	assert_string_equal(c.listen[0].text, "127.0.0.1:7000");
	assert_int_equal(cli(&c, "--config", path, "--listen", "127.0.0.1:7001"), CLI_RUN);
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0].text, "127.0.0.1:7001");

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "{\"threads\":", 11), 11);
	close(fd);
	assert_int_equal(cli(&c, "--config", path, NULL, NULL), CLI_ERROR);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "not valid JSON"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_addresses),
		cmocka_unit_test(json_full_document),
		cmocka_unit_test(json_errors_name_the_path),
		cmocka_unit_test(cli_flags),
		cmocka_unit_test(cli_flags_override_config_file),
		cmocka_unit_test(cfgjson_scalars),
		cmocka_unit_test(cfgjson_names),
		cmocka_unit_test(cfgjson_lists_and_objects),
		cmocka_unit_test(cfgjson_paths_and_documents),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
