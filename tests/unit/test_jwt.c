/* JWT verification against real keys generated here with OpenSSL, and the known
 * attacks on JWT, each of which must be refused. */
#include "testutil.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>

#include "jwt.h"
#include "../lib/b64url.h"

static EVP_PKEY *rsa, *rsa_evil, *p256, *p384, *ed;
static struct jwks keys;
static struct jwt_cfg cfg;
static const int64_t NOW = 1800000000;
static const char *HS_SECRET = "a-shared-secret-of-at-least-32-bytes!!";

/* ---- helpers ---- */

static void b64s(const char *s, char *out)
{
	b64url((const uint8_t *)s, strlen(s), out);
}

static void bn_b64(EVP_PKEY *k, const char *name, char *out)
{
	BIGNUM *bn = NULL;
	uint8_t buf[600];
	assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
	int n = BN_bn2bin(bn, buf);
	b64url(buf, (size_t)n, out);
	BN_free(bn);
}

static void jwk_json(EVP_PKEY *k, const char *kid, char *out, size_t room)
{
	char a[800], b[200];
	if (EVP_PKEY_is_a(k, "RSA")) {
		bn_b64(k, OSSL_PKEY_PARAM_RSA_N, a);
		bn_b64(k, OSSL_PKEY_PARAM_RSA_E, b);
		snprintf(out, room, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}", kid, a, b);
	} else if (EVP_PKEY_is_a(k, "EC")) {
		uint8_t pt[200];
		size_t n;
		assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
		size_t c = (n - 1) / 2;
		b64url(pt + 1, c, a);
		b64url(pt + 1 + c, c, b);
		snprintf(out, room, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", kid,
		         c == 32 ? "P-256" : "P-384", a, b);
	} else {
		uint8_t raw[32];
		size_t n = 32;
		assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &n), 1);
		b64url(raw, n, a);
		snprintf(out, room, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", kid, a);
	}
}

/* DER ECDSA signature to raw R||S. */
static size_t der_to_raw(const uint8_t *der, size_t len, size_t half, uint8_t *raw)
{
	const uint8_t *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *ss;
	ECDSA_SIG_get0(s, &r, &ss);
	BN_bn2binpad(r, raw, (int)half);
	BN_bn2binpad(ss, raw + half, (int)half);
	ECDSA_SIG_free(s);
	return 2 * half;
}

enum sigmode { SIG_NORMAL, SIG_DER, SIG_ZERO, SIG_ORDER };

/* Builds header.payload.signature; alg picks how to sign with k. */
static char *token(const char *header, const char *payload, EVP_PKEY *k, const char *alg, enum sigmode mode)
{
	static char out[20000];
	char h[4000], p[8000];
	b64s(header, h);
	b64s(payload, p);
	int n = snprintf(out, sizeof(out), "%s.%s", h, p);
	uint8_t sig[1024];
	size_t sl = sizeof(sig);
	if (strcmp(alg, "HS256") == 0) {
		unsigned ml;
		HMAC(EVP_sha256(), k ? (const void *)k : HS_SECRET, k ? 0 : (int)strlen(HS_SECRET), (uint8_t *)out,
		     (size_t)n, sig, &ml);
		sl = ml;
	} else if (strcmp(alg, "none") == 0 || strcmp(alg, "None") == 0 || strcmp(alg, "NONE") == 0) {
		sl = 0;
	} else {
		const EVP_MD *md = strstr(alg, "384") ? EVP_sha384() : strstr(alg, "512") ? EVP_sha512()
		                   : strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pc = NULL;
		assert_int_equal(EVP_DigestSignInit(c, &pc, md, NULL, k), 1);
		if (alg[0] == 'P') {
			EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING);
			EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST);
		}
		assert_int_equal(EVP_DigestSign(c, sig, &sl, (uint8_t *)out, (size_t)n), 1);
		EVP_MD_CTX_free(c);
		if (alg[0] == 'E' && alg[1] == 'S' && mode != SIG_DER) {
			uint8_t raw[200];
			size_t half = strstr(alg, "384") ? 48 : 32;
			sl = der_to_raw(sig, sl, half, raw);
			memcpy(sig, raw, sl);
			if (mode == SIG_ZERO)
				memset(sig, 0, sl);
			if (mode == SIG_ORDER) { /* R = the group order n: out of range */
				EC_GROUP *g = EC_GROUP_new_by_curve_name(half == 32 ? NID_X9_62_prime256v1 : NID_secp384r1);
				BN_bn2binpad(EC_GROUP_get0_order(g), sig, (int)half);
				EC_GROUP_free(g);
			}
		}
	}
	out[n++] = '.';
	b64url(sig, sl, out + n);
	return out;
}

/* An HMAC token whose secret is arbitrary bytes (the key-confusion attack). */
static char *hs_token_with_secret(const char *header, const char *payload, const uint8_t *secret, size_t sl)
{
	static char out[20000];
	char h[4000], p[8000];
	b64s(header, h);
	b64s(payload, p);
	int n = snprintf(out, sizeof(out), "%s.%s", h, p);
	uint8_t mac[32];
	unsigned ml;
	HMAC(EVP_sha256(), secret, (int)sl, (uint8_t *)out, (size_t)n, mac, &ml);
	out[n++] = '.';
	b64url(mac, ml, out + n);
	return out;
}

static enum jwt_result verify(const char *tok)
{
	struct jwt_claims c;
	return jwt_verify(&cfg, &keys, (struct spop_slice){ (const uint8_t *)tok, strlen(tok) }, NOW, &c);
}

static char claims[512];

static const char *std_claims(void)
{
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld,"
	         "\"llm_providers\":[\"openai\"]}",
	         (long long)NOW + 300, (long long)NOW - 10);
	return claims;
}

static int setup(void **st)
{
	(void)st;
	rsa = EVP_RSA_gen(2048);
	rsa_evil = EVP_RSA_gen(2048);
	p256 = EVP_EC_gen("P-256");
	p384 = EVP_EC_gen("P-384");
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(rsa && rsa_evil && p256 && p384 && ed);
	char a[2000], b[1000], c[1000], d[500], json[6000], err[256];
	jwk_json(rsa, "rsa-1", a, sizeof(a));
	jwk_json(p256, "ec-256", b, sizeof(b));
	jwk_json(p384, "ec-384", c, sizeof(c));
	jwk_json(ed, "ed-1", d, sizeof(d));
	snprintf(json, sizeof(json), "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", a, b, c, d);
	assert_int_equal(jwks_parse(json, strlen(json), &keys, err, sizeof(err)), 0);
	assert_int_equal(keys.n, 4); /* the oct key is never taken from a JWKS */
	memset(&cfg, 0, sizeof(cfg));
	strcpy(cfg.issuer, "https://idp.example");
	strcpy(cfg.audience, "archestra");
	cfg.algs = (1u << JWT_ALGS) - 1;
	cfg.leeway = 30;
	strcpy(cfg.providers_claim, "llm_providers");
	memcpy(cfg.hs_secret, HS_SECRET, strlen(HS_SECRET));
	cfg.hs_secret_len = strlen(HS_SECRET);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	jwks_free(&keys);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa_evil);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
	return 0;
}

/* ---- tests ---- */

static void valid_tokens_of_every_algorithm(void **st)
{
	(void)st;
	struct { const char *alg, *kid; EVP_PKEY **k; } cases[] = {
		{ "RS256", "rsa-1", &rsa }, { "RS384", "rsa-1", &rsa }, { "RS512", "rsa-1", &rsa },
		{ "PS256", "rsa-1", &rsa }, { "PS384", "rsa-1", &rsa }, { "PS512", "rsa-1", &rsa },
		{ "ES256", "ec-256", &p256 }, { "ES384", "ec-384", &p384 }, { "EdDSA", "ed-1", &ed },
		{ "HS256", "x", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char h[128];
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", cases[i].alg, cases[i].kid);
		const char *t = token(h, std_claims(), cases[i].k ? *cases[i].k : NULL, cases[i].alg, SIG_NORMAL);
		struct jwt_claims c;
		enum jwt_result r = jwt_verify(&cfg, &keys, (struct spop_slice){ (const uint8_t *)t, strlen(t) }, NOW, &c);
		if (r != JWT_OK)
			fail_msg("%s: %s", cases[i].alg, jwt_result_reason(r));
		assert_string_equal(c.user, "alice");
		assert_int_equal(c.nproviders, 1);
		assert_string_equal(c.providers[0], "openai");
	}
}

static void alg_none_in_any_case(void **st)
{
	(void)st;
	const char *algs[] = { "none", "None", "NONE", "nOnE", "" };
	for (size_t i = 0; i < 5; i++) {
		char h[128];
		snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"rsa-1\"}", algs[i]);
		assert_int_equal(verify(token(h, std_claims(), NULL, "none", SIG_NORMAL)), JWT_BAD_ALG);
	}
	assert_int_equal(verify(token("{\"kid\":\"rsa-1\"}", std_claims(), NULL, "none", SIG_NORMAL)), JWT_BAD_ALG);
	assert_int_equal(verify(token("{\"alg\":null}", std_claims(), NULL, "none", SIG_NORMAL)), JWT_BAD_ALG);
}

static void rs256_to_hs256_key_confusion(void **st)
{
	(void)st;
	/* The attacker signs with HMAC using the RSA public key (PEM and DER) as secret. */
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(bio, rsa);
	char *pem;
	long pl = BIO_get_mem_data(bio, &pem);
	const char *h = "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}";
	assert_int_equal(verify(hs_token_with_secret(h, std_claims(), (uint8_t *)pem, (size_t)pl)), JWT_BAD_SIGNATURE);
	uint8_t *der = NULL;
	int dl = i2d_PUBKEY(rsa, &der);
	assert_int_equal(verify(hs_token_with_secret(h, std_claims(), der, (size_t)dl)), JWT_BAD_SIGNATURE);
	/* Without a configured HS256 secret, HS256 is not even considered. */
	cfg.hs_secret_len = 0;
	assert_int_equal(verify(hs_token_with_secret(h, std_claims(), (uint8_t *)pem, (size_t)pl)), JWT_BAD_ALG);
	cfg.hs_secret_len = strlen(HS_SECRET);
	cfg.algs &= ~(1u << JWT_HS256);
	assert_int_equal(verify(token(h, std_claims(), NULL, "HS256", SIG_NORMAL)), JWT_BAD_ALG);
	OPENSSL_free(der);
	BIO_free(bio);
}

static void another_key_with_the_same_kid(void **st)
{
	(void)st;
	assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", std_claims(), rsa_evil, "RS256", SIG_NORMAL)),
	                 JWT_BAD_SIGNATURE);
}

static void unknown_kid(void **st)
{
	(void)st;
	assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", std_claims(), rsa, "RS256", SIG_NORMAL)),
	                 JWT_UNKNOWN_KID);
	/* Several keys and no kid: none is guessed. */
	assert_int_equal(verify(token("{\"alg\":\"RS256\"}", std_claims(), rsa, "RS256", SIG_NORMAL)), JWT_UNKNOWN_KID);
}

static void embedded_keys_are_refused(void **st)
{
	(void)st;
	char jwk[2000], h[2500];
	jwk_json(rsa_evil, "evil", jwk, sizeof(jwk));
	snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"jwk\":%s}", jwk);
	assert_int_equal(verify(token(h, std_claims(), rsa_evil, "RS256", SIG_NORMAL)), JWT_EMBEDDED_KEY);
	const char *others[] = { "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"jku\":\"https://evil/jwks\"}",
	                         "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"x5u\":\"https://evil/cert\"}",
	                         "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"x5c\":[\"MIIB\"]}",
	                         "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"exp\"]}" };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(verify(token(others[i], std_claims(), rsa, "RS256", SIG_NORMAL)), JWT_EMBEDDED_KEY);
}

static void ecdsa_signature_shapes(void **st)
{
	(void)st;
	const char *h = "{\"alg\":\"ES256\",\"kid\":\"ec-256\"}";
	assert_int_equal(verify(token(h, std_claims(), p256, "ES256", SIG_ZERO)), JWT_BAD_SIGNATURE);
	assert_int_equal(verify(token(h, std_claims(), p256, "ES256", SIG_ORDER)), JWT_BAD_SIGNATURE);
	assert_int_equal(verify(token(h, std_claims(), p256, "ES256", SIG_DER)), JWT_BAD_SIGNATURE);
	const char *h384 = "{\"alg\":\"ES384\",\"kid\":\"ec-384\"}";
	assert_int_equal(verify(token(h384, std_claims(), p384, "ES384", SIG_ZERO)), JWT_BAD_SIGNATURE);
	assert_int_equal(verify(token(h384, std_claims(), p384, "ES384", SIG_DER)), JWT_BAD_SIGNATURE);
	/* An ES256 token verified against the P-384 key's kid: wrong key type. */
	assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"ec-384\"}", std_claims(), p256, "ES256", SIG_NORMAL)),
	                 JWT_BAD_ALG);
	/* An ES256 header naming an RSA key. */
	assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", std_claims(), p256, "ES256", SIG_NORMAL)),
	                 JWT_BAD_ALG);
}

static void claim_checks(void **st)
{
	(void)st;
	const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}";
	struct { const char *fmt; long long a; enum jwt_result want; } cases[] = {
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":%lld}", NOW - 31, JWT_EXPIRED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":%lld}", NOW - 29, JWT_OK },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":1900000000,\"nbf\":%lld}",
		  NOW + 60, JWT_NOT_YET_VALID },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":1900000000,\"iat\":%lld}",
		  NOW + 60, JWT_NOT_YET_VALID },
		{ "{\"iss\":\"https://evil.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":%lld}", NOW + 60,
		  JWT_BAD_ISSUER },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"other\",\"sub\":\"a\",\"exp\":%lld}", NOW + 60, JWT_BAD_AUDIENCE },
		{ "{\"iss\":\"https://idp.example\",\"aud\":[\"x\",\"archestra\"],\"sub\":\"a\",\"exp\":%lld}", NOW + 60,
		  JWT_OK },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"nbf\":%lld}", NOW, JWT_MISSING_CLAIM },
		{ "{\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":%lld}", NOW + 60, JWT_MISSING_CLAIM },
		{ "{\"iss\":\"https://idp.example\",\"sub\":\"a\",\"exp\":%lld}", NOW + 60, JWT_MISSING_CLAIM },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"exp\":%lld}", NOW + 60, JWT_MISSING_CLAIM },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":\"%lld\"}", NOW + 60,
		  JWT_MALFORMED },
	};
	cfg.providers_claim[0] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char c[400];
		const char *at = strstr(cases[i].fmt, "%lld");
		snprintf(c, sizeof(c), "%.*s%lld%s", (int)(at - cases[i].fmt), cases[i].fmt, cases[i].a, at + 4);
		enum jwt_result r = verify(token(h, c, rsa, "RS256", SIG_NORMAL));
		if (r != cases[i].want)
			fail_msg("case %zu: %s, want %s", i, jwt_result_reason(r), jwt_result_reason(cases[i].want));
	}
	/* A configured access claim that is missing. */
	strcpy(cfg.providers_claim, "llm_providers");
	char c[300];
	snprintf(c, sizeof(c), "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"a\",\"exp\":%lld}",
	         (long long)NOW + 60);
	assert_int_equal(verify(token(h, c, rsa, "RS256", SIG_NORMAL)), JWT_MISSING_CLAIM);
}

static void malformed_tokens(void **st)
{
	(void)st;
	const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}";
	char good[20000];
	snprintf(good, sizeof(good), "%s", token(h, std_claims(), rsa, "RS256", SIG_NORMAL));
	assert_int_equal(verify(good), JWT_OK);
	char t[20100];
	/* Trailing garbage, a fourth part, padding, characters outside base64url. */
	snprintf(t, sizeof(t), "%s.xyz", good);
	assert_int_equal(verify(t), JWT_MALFORMED);
	snprintf(t, sizeof(t), "%s=", good);
	assert_int_equal(verify(t), JWT_MALFORMED);
	snprintf(t, sizeof(t), "%s", good);
	t[5] = '+';
	assert_int_equal(verify(t), JWT_MALFORMED);
	snprintf(t, sizeof(t), "%s", good);
	t[strlen(t) - 3] = '/';
	assert_int_equal(verify(t), JWT_MALFORMED);
	/* A flipped signature bit. */
	snprintf(t, sizeof(t), "%s", good);
	t[strlen(t) - 5] = t[strlen(t) - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(t), JWT_BAD_SIGNATURE);
	/* Two parts, empty parts. */
	assert_int_equal(verify("eyJhbGciOiJSUzI1NiJ9.eyJ9"), JWT_MALFORMED);
	assert_int_equal(verify(".."), JWT_MALFORMED);
	/* Duplicate members, trailing data, non-object JSON in header or claims. */
	assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"alg\":\"HS256\"}", std_claims(), rsa, "RS256",
	                              SIG_NORMAL)), JWT_MALFORMED);
	assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"} ", std_claims(), rsa, "RS256", SIG_NORMAL)),
	                 JWT_MALFORMED);
	assert_int_equal(verify(token("[\"RS256\"]", std_claims(), rsa, "RS256", SIG_NORMAL)), JWT_MALFORMED);
	char dup[600];
	snprintf(dup, sizeof(dup), "{\"iss\":\"https://idp.example\",\"aud\":\"archestra\",\"sub\":\"alice\",\"sub\":\"root\","
	         "\"exp\":%lld}", (long long)NOW + 60);
	assert_int_equal(verify(token(h, dup, rsa, "RS256", SIG_NORMAL)), JWT_MALFORMED);
	assert_int_equal(verify(token(h, "[1,2]", rsa, "RS256", SIG_NORMAL)), JWT_MALFORMED);
	assert_int_equal(verify(token(h, "{\"iss\":", rsa, "RS256", SIG_NORMAL)), JWT_MALFORMED);
	/* Oversized. */
	char *big = malloc(9000);
	memset(big, 'a', 8999);
	big[8999] = '\0';
	big[10] = big[20] = '.';
	assert_int_equal(verify(big), JWT_TOO_LARGE);
	free(big);
}

static void algorithm_allow_list(void **st)
{
	(void)st;
	cfg.algs = 1u << JWT_RS256;
	assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"ec-256\"}", std_claims(), p256, "ES256", SIG_NORMAL)),
	                 JWT_BAD_ALG);
	assert_int_equal(verify(token("{\"alg\":\"RS512\",\"kid\":\"rsa-1\"}", std_claims(), rsa, "RS512", SIG_NORMAL)),
	                 JWT_BAD_ALG);
	assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", std_claims(), rsa, "RS256", SIG_NORMAL)),
	                 JWT_OK);
}

static void jwks_errors(void **st)
{
	(void)st;
	struct jwks j;
	char err[256];
	EVP_PKEY *weak = EVP_RSA_gen(1024);
	char jwk[1200], json[1500];
	jwk_json(weak, "weak", jwk, sizeof(jwk));
	snprintf(json, sizeof(json), "{\"keys\":[%s]}", jwk);
	assert_int_equal(jwks_parse(json, strlen(json), &j, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2048"));
	EVP_PKEY_free(weak);
	const char *bad = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"x\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}";
	assert_int_equal(jwks_parse(bad, strlen(bad), &j, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "malformed"));
	/* A point that is not on the curve. */
	char off[400], x[64];
	uint8_t zero[32] = { 0 };
	zero[31] = 1;
	b64url(zero, 32, x);
	snprintf(off, sizeof(off), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"x\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, x);
	assert_int_equal(jwks_parse(off, strlen(off), &j, err, sizeof(err)), -1);
	assert_int_equal(jwks_parse("[]", 2, &j, err, sizeof(err)), -1);
	const char *hs = "{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"HS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";
	assert_int_equal(jwks_parse(hs, strlen(hs), &j, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_tokens_of_every_algorithm),
		cmocka_unit_test(alg_none_in_any_case),
		cmocka_unit_test(rs256_to_hs256_key_confusion),
		cmocka_unit_test(another_key_with_the_same_kid),
		cmocka_unit_test(unknown_kid),
		cmocka_unit_test(embedded_keys_are_refused),
		cmocka_unit_test(ecdsa_signature_shapes),
		cmocka_unit_test(claim_checks),
		cmocka_unit_test(malformed_tokens),
		cmocka_unit_test(algorithm_allow_list),
		cmocka_unit_test(jwks_errors),
	};
	/* Keys are generated once for the whole group; each test restores cfg. */
	int rc = cmocka_run_group_tests_name("jwt", tests, setup, teardown);
	return rc;
}
