/* Unit tests of virtual keys: the keys file, checks, rotation, direct key ids,
 * and the request decision with keys. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "handler.h"
#include "keys.h"
#include "provider.h"
#include "request.h"

static void hex(const char *key, char *out)
{
	uint8_t h[32];
	sha256(key, strlen(key), h);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", h[i]);
}

#define K1 "arch_vk_abcdefghij01_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define K1_NEW "arch_vk_abcdefghij01_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define K2 "arch_vk_revoked00002_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define K3 "arch_vk_expired00003_DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"
#define K4 "arch_vk_anymodel0004_EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"

static struct keystore ks;
static const int64_t NOW = 1800000000;

static int setup(void **st)
{
	(void)st;
	char h1[65], h1n[65], h2[65], h3[65], h4[65], json[4096], err[256];
	hex(K1, h1);
	hex(K1_NEW, h1n);
	hex(K2, h2);
	hex(K3, h3);
	hex(K4, h4);
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"keys\":["
	         "{\"id\":\"abcdefghij01\",\"name\":\"bot\",\"owner\":\"alice\",\"providers\":[\"openai\"],"
	         "\"models\":[\"gpt-4o*\",\"o3\"],\"expires\":0,\"revoked\":false,"
	         "\"secrets\":[{\"sha256\":\"%s\"},{\"sha256\":\"%s\",\"not_after\":%lld}],\"metadata\":{\"team\":\"x\"}},"
	         "{\"id\":\"revoked00002\",\"revoked\":true,\"secrets\":[{\"sha256\":\"%s\"}]},"
	         "{\"id\":\"expired00003\",\"expires\":%lld,\"secrets\":[{\"sha256\":\"%s\"}]},"
	         "{\"id\":\"anymodel0004\",\"owner\":\"bob\",\"secrets\":[{\"sha256\":\"%s\"}]}]}",
	         h1n, h1, (long long)NOW + 60, h2, (long long)NOW - 1, h3, h4);
	assert_int_equal(keystore_parse(json, strlen(json), &ks, err, sizeof(err)), 0);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	keystore_free(&ks);
	return 0;
}

static enum vkey_result check(const char *key, const char *provider, const char *model, int64_t now)
{
	const struct vkey *k;
	return keystore_check(&ks, S(key), now, provider, S(model), &k);
}

static void checks(void **st)
{
	(void)st;
	assert_int_equal(check(K1_NEW, "openai", "gpt-4o-mini", NOW), VK_OK);
	assert_int_equal(check(K1_NEW, "openai", "o3", NOW), VK_OK);
	assert_int_equal(check(K1_NEW, "anthropic", "gpt-4o", NOW), VK_PROVIDER);
	assert_int_equal(check(K1_NEW, "openai", "gpt-5", NOW), VK_MODEL);
	assert_int_equal(check(K1_NEW, "openai", "", NOW), VK_MODEL); /* restricted key, model unknown */
	assert_int_equal(check(K2, "openai", "x", NOW), VK_REVOKED);
	assert_int_equal(check(K3, "openai", "x", NOW), VK_EXPIRED);
	assert_int_equal(check(K3, "openai", "x", NOW - 10), VK_OK);
	assert_int_equal(check(K4, "gemini", "anything", NOW), VK_OK);
	/* Wrong secret for a real id, unknown id, malformed shapes. */
	assert_int_equal(check("arch_vk_abcdefghij01_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", "openai", "gpt-4o", NOW), VK_UNKNOWN);
	assert_int_equal(check("arch_vk_nosuchid0000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "openai", "gpt-4o", NOW), VK_UNKNOWN);
	const char *bad[] = { "arch_vk_", "arch_vk_abcdefghij01_AAAA", "arch_vk_ABCDEFGHIJ01_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                      "arch_vk_abcdefghij01-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                      "arch_vk_abcdefghij01_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!", K1 "x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check(bad[i], "openai", "gpt-4o", NOW), VK_MALFORMED);
	/* A store with no keys knows none. */
	const struct vkey *k;
	assert_int_equal(keystore_check(NULL, S(K4), NOW, "openai", S("m"), &k), VK_UNKNOWN);
}

static void rotation_overlap(void **st)
{
	(void)st;
	/* The old key of a rotation works until its not_after, then not. */
	assert_int_equal(check(K1, "openai", "gpt-4o", NOW + 60), VK_OK);
	assert_int_equal(check(K1, "openai", "gpt-4o", NOW + 61), VK_UNKNOWN);
	assert_int_equal(check(K1_NEW, "openai", "gpt-4o", NOW + 100000), VK_OK);
}

static void keys_file_errors(void **st)
{
	(void)st;
	struct { const char *json, *err; } cases[] = {
		{ "[]", "expected {\"keys\"" },
		{ "{\"keys\":[{\"id\":\"short\",\"secrets\":[{\"sha256\":\"00\"}]}]}", "keys[0].id" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\"}]}", "keys[0].secrets" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\",\"secrets\":[{\"sha256\":\"xyz\"}]}]}", "keys[0].secrets[0].sha256" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\",\"revoked\":\"no\",\"secrets\":[]}]}", "keys[0].revoked" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\",\"expires\":-5,\"secrets\":[]}]}", "keys[0].expires" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\",\"providers\":\"openai\",\"secrets\":[]}]}", "keys[0].providers" },
		{ "{\"keys\":[{\"id\":\"abcdefghij01\",\"secrets\":[{\"sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000"
		  "\"}]},{\"id\":\"abcdefghij01\",\"secrets\":[{\"sha256\":\""
		  "0000000000000000000000000000000000000000000000000000000000000000\"}]}]}", "appears twice" },
		{ "{\"keys\":", "not valid JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct keystore k;
		char err[256] = "";
		assert_int_equal(keystore_parse(cases[i].json, strlen(cases[i].json), &k, err, sizeof(err)), -1);
		if (!strstr(err, cases[i].err))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].err);
		assert_null(k.keys);
	}
}

static void direct_key_ids(void **st)
{
	(void)st;
	char a[16], b[16];
	direct_key_id(S("sk-proj-abc"), a);
	direct_key_id(S("sk-proj-abd"), b);
	assert_int_equal(strlen(a), 15);
	assert_memory_equal(a, "dk_", 3);
	assert_string_not_equal(a, b);
	direct_key_id(S("sk-proj-abc"), b);
	assert_string_equal(a, b);
	/* The id is the hash's prefix, not a piece of the key. */
	assert_null(strstr(a, "abc"));
}

/* ---- decisions with keys ---- */

static struct msgbuf_s {
	uint8_t hdrs[1024];
	struct spop_msg m;
} mb;

static const struct spop_msg *req(const char *path, const char *auth_header, const char *value, const char *body)
{
	struct spop_writer w;
	memset(&mb, 0, sizeof(mb));
	spop_writer_init(&w, mb.hdrs, sizeof(mb.hdrs));
	spop_put_name(&w, auth_header, strlen(auth_header));
	spop_put_name(&w, value, strlen(value));
	spop_put_raw(&w, "\0\0", 2);
	mb.m.name = S("archestra-req");
	mb.m.args[0].name = S("path");
	mb.m.args[0].val = (struct spop_data){ .type = SPOP_T_STRING, .v.s = S(path) };
	mb.m.args[1].name = S("hdrs");
	mb.m.args[1].val = (struct spop_data){ .type = SPOP_T_BINARY, .v.s = { mb.hdrs, (size_t)(w.p - mb.hdrs) } };
	mb.m.args[2].name = S("body");
	mb.m.args[2].val = (struct spop_data){ .type = SPOP_T_BINARY, .v.s = S(body) };
	mb.m.args[3].name = S("method");
	mb.m.args[3].val = (struct spop_data){ .type = SPOP_T_STRING, .v.s = S(body ? "POST" : "GET") };
	mb.m.nargs = 4;
	return &mb.m;
}

static void decisions_with_virtual_keys(void **st)
{
	(void)st;
	struct provider_table providers;
	providers_builtin(&providers);
	struct request_cfg cfg = { .providers = &providers };
	struct auth auth = { .keys = ks };
	char real[] = "sk-real-openai-key";
	auth.provider_keys.n = 1;
	strcpy(auth.provider_keys.k[0].provider, "openai");
	auth.provider_keys.k[0].key = real;
	auth.provider_keys.k[0].len = strlen(real);
	struct req_decision d;
	struct decide_env env = { .auth = &auth, .now = NOW };

	request_decide(&cfg, &env, req("/v1/openai/chat/completions", "authorization", "Bearer " K1_NEW,
	                                     "{\"model\":\"gpt-4o\"}"), &d);
	assert_int_equal(d.status, 0);
	assert_string_equal(d.key_id, "abcdefghij01");
	assert_string_equal(d.auth_hdr, "authorization");
	assert_string_equal(d.auth_scheme, "Bearer ");
	assert_true(SPOP_SLICE_IS(d.auth_key, "sk-real-openai-key"));
	assert_true(SPOP_SLICE_IS(d.owner, "alice"));

	/* The variables: auth_val carries the real key, never the virtual one; the
	 * owner becomes user_id. */
	uint8_t buf[2048];
	struct spop_writer w;
	spop_writer_init(&w, buf, sizeof(buf));
	spoa_write_decision(&d, NULL, &w);
	assert_non_null(memmem(buf, (size_t)(w.p - buf), "Bearer sk-real-openai-key", 25));
	assert_null(memmem(buf, (size_t)(w.p - buf), "AAAA", 4));
	assert_null(memmem(buf, (size_t)(w.p - buf), "BBBB", 4));
	assert_non_null(memmem(buf, (size_t)(w.p - buf), "user_id", 7));

	struct { const char *path, *key, *body; int status; const char *reason; } cases[] = {
		{ "/v1/openai/chat/completions", "Bearer " K2, "{}", 401, "virtual_key_revoked" },
		{ "/v1/openai/chat/completions", "Bearer " K3, "{}", 401, "virtual_key_expired" },
		{ "/v1/openai/chat/completions", "Bearer arch_vk_nosuchid0000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "{}", 401,
		  "virtual_key_unknown" },
		{ "/v1/openai/chat/completions", "Bearer arch_vk_bad", "{}", 401, "virtual_key_malformed" },
		{ "/v1/openai/chat/completions", "Bearer " K1_NEW, "{\"model\":\"gpt-5\"}", 403, "virtual_key_model_denied" },
		{ "/v1/anthropic/v1/messages", "Bearer " K1_NEW, "{\"model\":\"gpt-4o\"}", 403, "virtual_key_provider_denied" },
		{ "/v1/gemini/v1beta/models/g:generateContent", "Bearer " K4, "{}", 500, "provider_key_missing" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		request_decide(&cfg, &env, req(cases[i].path, "authorization", cases[i].key, cases[i].body), &d);
		if (d.status != cases[i].status || strcmp(d.reason, cases[i].reason) != 0)
			fail_msg("case %zu: %d %s", i, d.status, d.reason);
		assert_null(strstr(d.message, cases[i].key + 7)); /* never echoes the key */
		assert_null(d.auth_hdr);
	}

	/* Anthropic gets x-api-key, Gemini x-goog-api-key. */
	strcpy(auth.provider_keys.k[0].provider, "gemini");
	request_decide(&cfg, &env, req("/v1/gemini/v1beta/models/g:generateContent", "x-goog-api-key", K4, "{}"), &d);
	assert_int_equal(d.status, 0);
	assert_string_equal(d.auth_hdr, "x-goog-api-key");
	assert_string_equal(d.auth_scheme, "");

	/* A direct key gets a key id and passes untouched. */
	request_decide(&cfg, &env, req("/v1/openai/chat/completions", "authorization", "Bearer sk-direct", "{}"), &d);
	assert_int_equal(d.status, 0);
	assert_memory_equal(d.key_id, "dk_", 3);
	assert_null(d.auth_hdr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(checks, setup, teardown),
		cmocka_unit_test_setup_teardown(rotation_overlap, setup, teardown),
		cmocka_unit_test(keys_file_errors),
		cmocka_unit_test(direct_key_ids),
		cmocka_unit_test_setup_teardown(decisions_with_virtual_keys, setup, teardown),
	};
	return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
