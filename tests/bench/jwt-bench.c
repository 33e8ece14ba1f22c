/* jwt-bench: how many uncached RS256 (and ES256) verifications one core does,
 * which is what a JWT costs the first time the agent sees it. Prints one line. */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/core_names.h>
#include <openssl/bn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jwt.h"
#include "../lib/b64url.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	BIGNUM *n = NULL;
	unsigned char nb[512];
	char n64[700], jwks[1000], tok[4000], sig64[400], err[256];
	EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
	b64url(nb, (size_t)BN_bn2bin(n, nb), n64);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n64);
	struct jwks keys;
	if (jwks_parse(jwks, strlen(jwks), &keys, err, sizeof(err)) < 0)
		return 1;
	const char *h = "{\"alg\":\"RS256\",\"kid\":\"k\"}";
	const char *c = "{\"iss\":\"i\",\"aud\":\"a\",\"sub\":\"u\",\"exp\":4000000000}";
	size_t o = b64url((const unsigned char *)h, strlen(h), tok);
	tok[o++] = '.';
	o += b64url((const unsigned char *)c, strlen(c), tok + o);
	unsigned char sig[512];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k);
	EVP_DigestSign(md, sig, &sl, (unsigned char *)tok, o);
	b64url(sig, sl, sig64);
	snprintf(tok + o, sizeof(tok) - o, ".%s", sig64);
	struct jwt_cfg cfg = { .issuer = "i", .audience = "a", .algs = 1u << JWT_RS256, .leeway = 30 };
	struct jwt_claims cl;
	struct spop_slice t = { (const unsigned char *)tok, strlen(tok) };
	long count = 0;
	double t0 = now(), t1;
	do {
		for (int i = 0; i < 100; i++)
			if (jwt_verify(&cfg, &keys, t, 1800000000, &cl) != JWT_OK)
				return 1;
		count += 100;
		t1 = now();
	} while (t1 - t0 < 2.0);
	printf("rs256_verifications_per_sec=%.0f (one core, uncached, 2048-bit key)\n", count / (t1 - t0));
	jwks_free(&keys);
	EVP_PKEY_free(k);
	EVP_MD_CTX_free(md);
	BN_free(n);
	return 0;
}
