/* Unit tests of DLP: every built-in detector on realistic chat bodies, near misses
 * that must not match (bad checksums, short tokens, words), actions, custom
 * detectors, config errors, and every alignment against the vector scan. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "dlp.h"
#include "policy.h"
#include "request.h"

static struct dlp_cfg cfg;

static void load(const char *json)
{
	char err[256];
	cJSON *o = cJSON_Parse(json);
	assert_non_null(o);
	dlp_free(&cfg);
	if (dlp_parse(&cfg, o, err, sizeof(err)) < 0)
		fail_msg("dlp refused: %s", err);
	cJSON_Delete(o);
}

/* Scans an exact-size heap copy, so ASan sees any read past the end. */
static struct dlp_result scan(const char *text)
{
	size_t n = strlen(text);
	uint8_t *b = malloc(n ? n : 1);
	memcpy(b, text, n);
	struct dlp_result r;
	dlp_scan(&cfg, (struct spop_slice){ b, n }, &r);
	free(b);
	return r;
}

static char body[4096];
static const char *chat(const char *content)
{
	snprintf(body, sizeof(body),
	         "{\"model\":\"gpt-4o-mini\",\"max_tokens\":1024,\"temperature\":0.2,\"messages\":[{\"role\":\"system\","
	         "\"content\":\"You are a helpful assistant. Today is 2026-11-25, build 1732550400.\"},"
	         "{\"role\":\"user\",\"content\":\"%s\"}]}", content);
	return body;
}

static void each_builtin_detector(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"deny\"}}");
	static const struct { const char *text; int det; } pos[] = {
		{ "my key is sk-proj-4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0aG5iO", DLP_OPENAI_KEY },
		{ "use sk-ant-api03-Xy7_kP2mQ9vR4sT8wZ1bN6cF3hJ5lA0dG-EiU", DLP_ANTHROPIC_KEY },
		{ "maps key=AIzaSyD4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0a please", DLP_GOOGLE_API_KEY },
		{ "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\\n", DLP_AWS_ACCESS_KEY },
		{ "temporary ASIAY34FZKBOKMUTVV7A creds", DLP_AWS_ACCESS_KEY },
		{ "token ghp_16C7e42F292c6912E7710c838347Ae178B4a ok", DLP_GITHUB_TOKEN },
		{ "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789", DLP_GITHUB_TOKEN },
		{ "CI uses glpat-xB7kQ2mN9pR4sT8wZ1bC", DLP_GITLAB_TOKEN },
		{ "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", DLP_SLACK_TOKEN },
		{ "-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----", DLP_PRIVATE_KEY },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXk", DLP_PRIVATE_KEY },
		{ "auth: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
		  DLP_JWT },
		{ "card 4111 1111 1111 1111 exp 12/29", DLP_CREDIT_CARD },
		{ "card 5555-5555-5555-4444", DLP_CREDIT_CARD },
		{ "amex 378282246310005.", DLP_CREDIT_CARD },
		{ "pay to GB82 WEST 1234 5698 7654 32 today", DLP_IBAN },
		{ "IBAN: DE89370400440532013000", DLP_IBAN },
		{ "write to jane.doe+ai@mail.example.co.uk now", DLP_EMAIL },
		{ "call +1 415 555 2671", DLP_PHONE },
		{ "call (415) 555-2671", DLP_PHONE },
		{ "call 415-555-2671", DLP_PHONE },
		{ "ruf +49 30 901820", DLP_PHONE },
		/* after a JSON escape: the \n ends the word before the secret */
		{ "key:\\nAKIAIOSFODNN7EXAMPLE", DLP_AWS_ACCESS_KEY },
		{ "card:\\t4111111111111111", DLP_CREDIT_CARD },
		{ "\\nGB82WEST12345698765432", DLP_IBAN },
	};
	for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		struct dlp_result r = scan(chat(pos[i].text));
		if (!(r.found & (1u << pos[i].det)))
			fail_msg("case %zu (%s): %s not found (found 0x%x)", i, pos[i].text, dlp_name(&cfg, pos[i].det), r.found);
		if (r.found != (1u << pos[i].det))
			fail_msg("case %zu (%s): also found 0x%x", i, pos[i].text, r.found);
		assert_int_equal(r.deny, pos[i].det);
		assert_string_equal(dlp_reason(&cfg, r.deny) + 4, dlp_name(&cfg, r.deny));
	}
}

static void near_misses(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"deny\"}}");
	static const char *const neg[] = {
		"the task-runner and sk-short are fine",
		"risk-assessment-for-the-quarterly-planning-cycle", /* "sk-" inside a word */
		"AKIAIOSFODNN7EXAMPL is one short",
		"AKIAIOSFODNN7EXAMPLEX is one long",
		"ghp_tooShort123",
		"4111 1111 1111 1112",            /* Luhn fails */
		"order 1234567890123456789012345", /* too long for anything */
		"GB82 WEST 1234 5698 7654 33",     /* IBAN check fails */
		"meet @alice on user@localhost",
		"version 1.2.3.4 on 2026-11-25 at 10:30, 1732550400 seconds",
		"pi is 3.14159265358979323846",
		"eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
		"-----BEGIN CERTIFICATE-----\\nMIIB",
		"xoxz-123456789012",
		"price 1,299.00 USD, qty 12",
		"\xff\xfe\x80 not UTF-8 \xc3\x28 ...",
	};
	for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++) {
		struct dlp_result r = scan(chat(neg[i]));
		if (r.found)
			fail_msg("case %zu (%s): found 0x%x", i, neg[i], r.found);
		assert_int_equal(r.deny, -1);
	}
	/* The wrapper body alone finds nothing: numbers, dates, model names. */
	assert_int_equal(scan(chat("hello")).found, 0);
}

static void actions_and_custom(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"monitor\",\"aws_access_key\":\"deny\",\"email\":\"off\"},"
	     "\"custom\":[{\"name\":\"project_code\",\"anchor\":\"PRJ-\",\"regex\":\"PRJ-[0-9]{6}\",\"action\":\"deny\"},"
	     "{\"name\":\"internal_host\",\"anchor\":\".corp.internal\",\"regex\":\"[a-z0-9-]+\\\\.corp\\\\.internal\","
	     "\"action\":\"monitor\"}]}");
	struct dlp_result r = scan(chat("mail a@example.com card 4111111111111111"));
	assert_int_equal(r.found, 1u << DLP_CREDIT_CARD); /* email is off */
	assert_int_equal(r.deny, -1);                      /* monitor only */
	r = scan(chat("card 4111111111111111 and AKIAIOSFODNN7EXAMPLE"));
	assert_int_equal(r.found, (1u << DLP_CREDIT_CARD) | (1u << DLP_AWS_ACCESS_KEY));
	assert_int_equal(r.deny, DLP_AWS_ACCESS_KEY);
	r = scan(chat("see PRJ-123456 on db1.corp.internal"));
	assert_int_equal(r.found, (1u << DLP_BUILTIN) | (1u << (DLP_BUILTIN + 1)));
	assert_int_equal(r.deny, DLP_BUILTIN);
	assert_string_equal(dlp_reason(&cfg, r.deny), "dlp_project_code");
	assert_string_equal(dlp_name(&cfg, DLP_BUILTIN + 1), "internal_host");
	r = scan(chat("PRJ-12 is not a code"));
	assert_int_equal(r.found, 0);
	/* Nothing configured: nothing on, nothing scanned. */
	load("{}");
	assert_false(cfg.enabled);
	assert_int_equal(scan(chat("AKIAIOSFODNN7EXAMPLE")).found, 0);
}

static void every_alignment(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"deny\"}}");
	static const char *const secrets[] = { "AKIAIOSFODNN7EXAMPLE", "4111111111111111", "a@example.com",
		                               "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "+14155552671" };
	static const int dets[] = { DLP_AWS_ACCESS_KEY, DLP_CREDIT_CARD, DLP_EMAIL, DLP_GITHUB_TOKEN, DLP_PHONE };
	char t[256];
	for (size_t s = 0; s < 5; s++)
		for (int off = 0; off < 40; off++) {
			/* at off, then the text ends right after it (the tail of the scan) */
			memset(t, ' ', (size_t)off);
			snprintf(t + off, sizeof(t) - (size_t)off, "%s", secrets[s]);
			struct dlp_result r = scan(t);
			if (r.found != (1u << dets[s]))
				fail_msg("%s at %d (end): 0x%x", secrets[s], off, r.found);
			snprintf(t + off, sizeof(t) - (size_t)off, "%s and more text after it, long enough", secrets[s]);
			r = scan(t);
			if (r.found != (1u << dets[s]))
				fail_msg("%s at %d: 0x%x", secrets[s], off, r.found);
			/* truncated: a prefix of the secret is no secret */
			t[off + 8] = 0;
			if (s != 4 && scan(t).found)
				fail_msg("%s truncated at %d matched", secrets[s], off);
		}
}

static void huge_and_hostile(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"deny\"}}");
	size_t n = 1 << 20;
	char *b = malloc(n + 1);
	/* a megabyte of triggers: digits, dashes, @, I, J, _ with no secret */
	for (size_t i = 0; i < n; i++)
		b[i] = "0-@IJ_9 "[i % 8];
	b[n] = 0;
	assert_int_equal(scan(b).found, 0);
	memset(b, '7', n); /* one endless number */
	assert_int_equal(scan(b).found, 0);
	memset(b, '@', n);
	assert_int_equal(scan(b).found, 0);
	free(b);
}

/* An attacker's body: unit repeated over about n bytes, then tail. Exact-size heap
 * copy, as in scan(). */
static struct dlp_result scan_run(const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail), k = 0;
	uint8_t *b = malloc(n + ul + tl);
	for (; k < n; k += ul)
		memcpy(b + k, unit, ul);
	memcpy(b + k, tail, tl);
	struct dlp_result r;
	dlp_scan(&cfg, (struct spop_slice){ b, k + tl }, &r);
	free(b);
	return r;
}

#define JWT "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

/* Each detector's trigger repeated so its confirmer would read far ahead from every
 * one (the quadratic bodies): the verdict on the run alone is unchanged, and a real
 * secret after the run is still found. */
static void hostile_runs(void **st)
{
	(void)st;
	load("{\"detectors\":{\"all\":\"deny\"},\"custom\":[{\"name\":\"project_code\",\"anchor\":\"PRJ-\","
	     "\"regex\":\"PRJ-[0-9]{6}\"}]}");
	const uint32_t openai = 1u << DLP_OPENAI_KEY, custom = 1u << DLP_BUILTIN;
	static const struct { const char *unit; uint32_t alone; const char *secret; int det; } c[] = {
		{ "-eyJ", 0, JWT, DLP_JWT },
		{ "eyJhbGciOiJI.eyJzdWIiOiIx.", 0, JWT, DLP_JWT }, /* each payload is the next header */
		{ "sk-", 1u << DLP_OPENAI_KEY, "sk-ant-api03-Xy7_kP2mQ9vR4sT8wZ1bN6cF3hJ5lA0dG-EiU", DLP_ANTHROPIC_KEY },
		{ "sk-sk-sk-sk-sk-sk- ", 0, "sk-ant-api03-Xy7_kP2mQ9vR4sT8wZ1bN6cF3hJ5lA0dG-EiU", DLP_ANTHROPIC_KEY },
		{ "sk-ant-sk-ant ", 0, "sk-proj-4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0aG5iO", DLP_OPENAI_KEY },
		{ "glpat-glpat-glpat ", 0, "glpat-xB7kQ2mN9pR4sT8wZ1bC", DLP_GITLAB_TOKEN },
		{ "xoxb-xoxb ", 0, "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", DLP_SLACK_TOKEN },
		{ "-----BEGIN ", 0, "-----BEGIN RSA PRIVATE KEY-----", DLP_PRIVATE_KEY },
		{ "ghp_", 0, "ghp_16C7e42F292c6912E7710c838347Ae178B4a", DLP_GITHUB_TOKEN },
		{ "github_pat_github_pat ", 0, "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789",
		  DLP_GITHUB_TOKEN },
		{ "AKIAIOSFODNN7EXAMPL ", 0, "AKIAIOSFODNN7EXAMPLE", DLP_AWS_ACCESS_KEY },
		{ "-AIzax", 0, "AIzaSyD4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0a", DLP_GOOGLE_API_KEY }, /* never 35 left */
		{ "a@b.1", 0, "jane@example.com", DLP_EMAIL },
		{ "4111 1111 1111 1112 ", 0, "4111 1111 1111 1111", DLP_CREDIT_CARD },
		{ "+1 415 555 2671 2345 6 ", 0, "+1 415 555 2671", DLP_PHONE },
		{ "AB12 ", 0, "\\nGB82 WEST 1234 5698 7654 32", DLP_IBAN },
		{ "AB12 AB12 AB12 AB12 AB12 AB12 AB12 AB12 AB. ", 0, "GB82 WEST 1234 5698 7654 32", DLP_IBAN },
		{ "PRJ-", 0, "PRJ-123456", DLP_BUILTIN },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct dlp_result r = scan_run(c[i].unit, 64 * 1024, "");
		if (r.found != c[i].alone)
			fail_msg("case %zu (%s repeated): found 0x%x, want 0x%x", i, c[i].unit, r.found, c[i].alone);
		char tail[128];
		snprintf(tail, sizeof(tail), " %s.", c[i].secret);
		r = scan_run(c[i].unit, 64 * 1024, tail);
		if (r.found != (c[i].alone | 1u << c[i].det))
			fail_msg("case %zu (%s repeated, then %s): found 0x%x", i, c[i].unit, c[i].secret, r.found);
	}
	/* Runs that are themselves secrets, judged by where the run ends. */
	assert_int_equal(scan_run("glpat-", 64 * 1024, "").found, 1u << DLP_GITLAB_TOKEN);
	assert_int_equal(scan_run("xoxb-", 64 * 1024, "").found, 1u << DLP_SLACK_TOKEN);
	assert_int_equal(scan_run("github_pat_", 64 * 1024, "").found, 1u << DLP_GITHUB_TOKEN);
	assert_int_equal(scan_run("-AIza", 64 * 1024, " ").found, 1u << DLP_GOOGLE_API_KEY); /* 35 after one */
	assert_int_equal(scan_run("sk-", 64 * 1024, " ").found, openai);
	/* The real token glued to the end of the run: one token run, still found. */
	assert_int_equal(scan_run("-eyJ", 64 * 1024, JWT + 3).found, 1u << DLP_JWT);
	assert_int_equal(scan_run("-AIzax", 64 * 1024, "-AIzaSyD4fT9qLmN2xVbR7sK1pZ8wYcH3dJ6uE0a").found,
	                 1u << DLP_GOOGLE_API_KEY);
	assert_int_equal(scan_run("PRJ-", 64 * 1024, "123456").found, custom);
}

/* No length cap on a JWT: a header or payload of any size is still a token. */
static void jwt_of_any_length(void **st)
{
	(void)st;
	load("{\"detectors\":{\"jwt\":\"deny\"}}");
	size_t n = 100000;
	char *b = malloc(n + 1);
	memset(b, 'A', n);
	memcpy(b, "x eyJ", 5);
	memcpy(b + 20000, ".eyJ", 4);
	memcpy(b + 90000, ".", 1);
	b[n] = 0;
	assert_int_equal(scan(b).found, 1u << DLP_JWT);
	b[90000] = '-'; /* no second dot: no token */
	assert_int_equal(scan(b).found, 0);
	free(b);
}

/* Custom detectors: the regex sees 128 bytes either side of each anchor hit, how
 * ever many hits there are, and NUL bytes do not end what it sees. */
static void custom_windows(void **st)
{
	(void)st;
	load("{\"custom\":[{\"name\":\"code\",\"anchor\":\"PRJ-\",\"regex\":\"PRJ-[0-9]{6}\"},"
	     "{\"name\":\"near\",\"anchor\":\"NEAR\",\"regex\":\"[0-9]{6}\"}]}");
	const uint32_t code = 1u << DLP_BUILTIN, near = 1u << (DLP_BUILTIN + 1);
	size_t n = 20000;
	char *b = malloc(n + 1);
	/* a real code anywhere in a dense run of anchors, across merged windows */
	for (size_t at = 0; at + 10 < n; at += 997) {
		for (size_t i = 0; i < n; i++)
			b[i] = "PRJ-"[i % 4];
		memcpy(b + at, "PRJ-123456", 10);
		b[n] = 0;
		if (scan(b).found != code)
			fail_msg("code at %zu not found", at);
	}
	/* digits within 128 bytes of a hit are seen; 200 bytes away they are not, even
	 * after a long run of hits (merging covers the hits' windows, no more) */
	memset(b, ' ', n);
	b[n] = 0;
	memcpy(b + 1000, "NEAR", 4);
	memcpy(b + 1100, "123456", 6);
	assert_int_equal(scan(b).found, near);
	memset(b + 1100, ' ', 6);
	for (size_t i = 1000; i < 9000; i += 4)
		memcpy(b + i, "NEAR", 4);
	memcpy(b + 9200, "123456", 6);
	assert_int_equal(scan(b).found, 0);
	memcpy(b + 9100, "123456", 6);
	assert_int_equal(scan(b).found, near);
	free(b);
	/* a NUL before the anchor (a decoded \u0000) does not hide it */
	static const char nul[] = "x\0 PRJ-123456";
	struct dlp_result r;
	dlp_scan(&cfg, (struct spop_slice){ (const uint8_t *)nul, sizeof(nul) - 1 }, &r);
	assert_int_equal(r.found, code);
}

static void parse_errors(void **st)
{
	(void)st;
	static const struct { const char *json, *want; } bad[] = {
		{ "[]", "dlp: expected an object" },
		{ "{\"detectors\":{\"ssn\":\"deny\"}}", "dlp.detectors.ssn: unknown detector" },
		{ "{\"detectors\":{\"email\":\"block\"}}", "dlp.detectors.email: expected \"deny\"" },
		{ "{\"custom\":[{\"name\":\"x\",\"regex\":\"a\"}]}", "dlp.custom[0].anchor" },
		{ "{\"custom\":[{\"name\":\"x\",\"anchor\":\"a\",\"regex\":\"(\"}]}", "dlp.custom[0].regex: not a valid" },
		{ "{\"patterns\":[]}", "dlp.patterns: unknown key" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct dlp_cfg c = { 0 };
		cJSON *o = cJSON_Parse(bad[i].json);
		assert_int_equal(dlp_parse(&c, o, err, sizeof(err)), -1);
		if (!strstr(err, bad[i].want))
			fail_msg("case %zu: got \"%s\"", i, err);
		dlp_free(&c);
		cJSON_Delete(o);
	}
	/* through the policy: the path starts at "dlp" */
	struct policy p;
	char err[256];
	const char *j = "{\"rules\":[],\"dlp\":{\"detectors\":{\"iban\":1}}}";
	assert_int_equal(policy_parse(j, strlen(j), &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "dlp.detectors.iban"));
}

static int teardown(void **st)
{
	(void)st;
	dlp_free(&cfg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(each_builtin_detector), cmocka_unit_test(near_misses),
		cmocka_unit_test(actions_and_custom),    cmocka_unit_test(every_alignment),
		cmocka_unit_test(huge_and_hostile),      cmocka_unit_test(hostile_runs),
		cmocka_unit_test(jwt_of_any_length),     cmocka_unit_test(custom_windows),
		cmocka_unit_test(parse_errors),
	};
	return cmocka_run_group_tests_name("dlp", tests, NULL, teardown);
}
