/* Unit tests of configuration: listen addresses, the config file's JSON, the CLI. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h> /* its LOG_INFO, LOG_DEBUG... macros must not meet log.h's levels */
#include <unistd.h>

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
		{ "{\"meter\":5}", "meter: expected \"off\" or a UDP address" },
		{ "{\"meter\":\"nowhere\"}", "meter: expected" },
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
	/* The meter: on by default, on UDP; off, elsewhere, or a clear error. */
	assert_int_equal(cli(&c, NULL, NULL, NULL, NULL), CLI_RUN);
	assert_true(c.meter_on);
	assert_string_equal(c.meter.text, CONFIG_METER_DEFAULT);
	assert_int_equal(cli(&c, "--meter", "off", NULL, NULL), CLI_RUN);
	assert_false(c.meter_on);
	assert_int_equal(cli(&c, "--meter", "127.0.0.1:7000", NULL, NULL), CLI_RUN);
	assert_true(c.meter_on);
	assert_int_equal(cli(&c, "--meter", "unix:/tmp/m.sock", NULL, NULL), CLI_ERROR);
	assert_non_null(strstr(err, "--meter"));
	assert_int_equal(cli(&c, "--meter", NULL, NULL, NULL), CLI_ERROR);
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

/* store.redis: what the Redis client is given, and what is refused at start. */
static void store_addresses(void **st)
{
	(void)st;
	struct store_addr a;
	char e[128];
	assert_int_equal(config_parse_store_addr("10.0.0.5:6380", &a, e, sizeof(e)), 0);
	assert_false(a.is_unix);
	assert_string_equal(a.host, "10.0.0.5");
	assert_int_equal(a.port, 6380);
	assert_int_equal(config_parse_store_addr("[::1]:6379", &a, e, sizeof(e)), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.port, 6379);
	assert_int_equal(config_parse_store_addr("redis.internal:1", &a, e, sizeof(e)), 0);
	assert_string_equal(a.host, "redis.internal");
	assert_int_equal(config_parse_store_addr("unix:/run/redis/redis.sock", &a, e, sizeof(e)), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.host, "/run/redis/redis.sock");
	const char *bad[] = { "redis", "host:", ":6379", "host:0", "host:65536", "host:12x", "::1:6379", "[::1]6379",
		              "[::1", "[]:6379", "unix:", "host:-1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_store_addr(bad[i], &a, e, sizeof(e)) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	char json[] = "{\"store\": {\"redis\": \"nowhere\"}}";
	struct config c;
	config_defaults(&c);
	assert_int_equal(config_apply_json(&c, json, strlen(json), e, sizeof(e)), -1);
	assert_non_null(strstr(e, "store.redis"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_addresses),
		cmocka_unit_test(store_addresses),
		cmocka_unit_test(json_full_document),
		cmocka_unit_test(json_errors_name_the_path),
		cmocka_unit_test(cli_flags),
		cmocka_unit_test(cli_flags_override_config_file),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
