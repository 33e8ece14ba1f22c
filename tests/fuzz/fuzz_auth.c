/* libFuzzer harness for the credential parsers an attacker controls: JWTs
 * (against a real RSA and EC JWKS made at start), JWKS documents, keys files,
 * policy files.
 * First byte: which parser. Nothing may crash, leak or read out of bounds. */
#include <openssl/core_names.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "../lib/b64url.h"
#include "keys.h"
#include "policy.h"

static struct jwks keys;
static struct jwt_cfg cfg;
static struct policy dlp_pol; /* every detector on, plus a custom one */

static void init(void)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");
	BIGNUM *n = NULL;
	unsigned char nb[512], pt[80];
	size_t pl;
	char n64[700], x[64], y[64], json[2000], err[128];
	EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n);
	b64url(nb, (size_t)BN_bn2bin(n, nb), n64);
	EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &pl);
	b64url(pt + 1, 32, x);
	b64url(pt + 33, 32, y);
	snprintf(json, sizeof(json),
	         "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"AQAB\"},"
	         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\",\"x\":\"%s\",\"y\":\"%s\"}]}", n64, x, y);
	if (jwks_parse(json, strlen(json), &keys, err, sizeof(err)) < 0)
		abort();
	strcpy(cfg.issuer, "i");
	strcpy(cfg.audience, "a");
	cfg.algs = (1u << JWT_ALGS) - 1;
	memcpy(cfg.hs_secret, "0123456789abcdef0123456789abcdef", 32);
	cfg.hs_secret_len = 32;
	strcpy(cfg.providers_claim, "p");
	BN_free(n);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	static const char dp[] = "{\"rules\":[],\"dlp\":{\"detectors\":{\"all\":\"deny\",\"email\":\"monitor\"},"
	                         "\"custom\":[{\"name\":\"c\",\"anchor\":\"-\",\"regex\":\"[A-Z]{2}-[0-9]+\"}]}}";
	if (policy_parse(dp, strlen(dp), &dlp_pol, err, sizeof(err)) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	if (size < 1)
		return 0;
	char err[256];
	char *copy = malloc(size);
	memcpy(copy, data + 1, size - 1);
	switch (data[0] % 5) {
	case 0: {
		struct jwt_claims c;
		jwt_verify(&cfg, &keys, (struct spop_slice){ (const uint8_t *)copy, size - 1 }, 1800000000, &c);
		break;
	}
	case 1: {
		struct jwks j;
		if (jwks_parse(copy, size - 1, &j, err, sizeof(err)) == 0)
			jwks_free(&j);
		break;
	}
	case 3: {
		struct policy p;
		if (policy_parse(copy, size - 1, &p, err, sizeof(err)) == 0) {
			struct dlp_result r; /* the document's own detectors over the document */
			dlp_scan(&p.dlp, (struct spop_slice){ (const uint8_t *)copy, size - 1 }, &r);
			policy_free(&p);
		}
		break;
	}
	case 4: {
		struct dlp_result r;
		dlp_scan(&dlp_pol.dlp, (struct spop_slice){ (const uint8_t *)copy, size - 1 }, &r);
		if (r.deny >= 0 && !(r.found & (1u << r.deny)))
			__builtin_trap(); /* a denial names a detector that matched */
		break;
	}
	default: {
		struct keystore ks;
		if (keystore_parse(copy, size - 1, &ks, err, sizeof(err)) == 0) {
			const struct vkey *k;
			keystore_check(&ks, (struct spop_slice){ (const uint8_t *)copy, size - 1 }, 1800000000, "openai",
			               (struct spop_slice){ (const uint8_t *)"m", 1 }, &k);
			keystore_free(&ks);
		}
		break;
	}
	}
	free(copy);
	return 0;
}
