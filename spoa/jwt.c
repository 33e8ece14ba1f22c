/* jwt.c: see jwt.h. */
#include "jwt.h"

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgjson.h"

const char *const jwt_alg_names[JWT_ALGS + 1] = {
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256", NULL,
};

int jwt_alg_parse(const char *s)
{
	return cfg_lookup(s, jwt_alg_names); /* exact: "none", "RS256 ", "rs256" are not algorithms */
}

const char *jwt_alg_name(int alg)
{
	return alg >= 0 && alg < JWT_ALGS ? jwt_alg_names[alg] : "?";
}

const char *jwt_result_reason(enum jwt_result r)
{
	static const char *const names[] = {
		"allowed", "jwt_malformed", "jwt_too_large", "jwt_bad_alg", "jwt_embedded_key", "jwt_unknown_kid",
		"jwt_bad_signature", "jwt_expired", "jwt_not_yet_valid", "jwt_bad_issuer", "jwt_bad_audience",
		"jwt_missing_claim",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "jwt_malformed";
}

/* ---- base64url, strict: no padding, no stray bits ---- */

static int b64v(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Returns the decoded length, or -1. */
static long b64url_decode(const uint8_t *s, size_t n, uint8_t *out, size_t room)
{
	if (n % 4 == 1 || (n / 4) * 3 + 2 > room + 2)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64v(s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= room)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* leftover bits must be zero: one encoding per value */
		return -1;
	return (long)o;
}

/* ---- JSON helpers ---- */

/* A JSON object, nothing after it, no member named twice. */
static cJSON *parse_object(const uint8_t *s, size_t n)
{
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts((const char *)s, n, &end, 0);
	if (!o || !cJSON_IsObject(o) || !end || (size_t)(end - (const char *)s) != n) {
		cJSON_Delete(o);
		return NULL;
	}
	for (const cJSON *a = o->child; a; a = a->next)
		for (const cJSON *b = a->next; b; b = b->next)
			if (strcmp(a->string, b->string) == 0) {
				cJSON_Delete(o);
				return NULL;
			}
	return o;
}

/* ---- JWKS ---- */

static BIGNUM *b64_bn(const cJSON *v)
{
	uint8_t buf[1024];
	if (!cJSON_IsString(v))
		return NULL;
	long n = b64url_decode((const uint8_t *)v->valuestring, strlen(v->valuestring), buf, sizeof(buf));
	return n > 0 ? BN_bin2bn(buf, (int)n, NULL) : NULL;
}

static EVP_PKEY *rsa_key(const cJSON *o)
{
	BIGNUM *n = b64_bn(cJSON_GetObjectItemCaseSensitive(o, "n"));
	BIGNUM *e = b64_bn(cJSON_GetObjectItemCaseSensitive(o, "e"));
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (n && e && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) && (params = OSSL_PARAM_BLD_to_param(bld)) &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return pkey;
}

static EVP_PKEY *ec_key(const cJSON *o, const char *group, size_t coord)
{
	uint8_t pt[1 + 2 * 66];
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "x"), *y = cJSON_GetObjectItemCaseSensitive(o, "y");
	if (!cJSON_IsString(x) || !cJSON_IsString(y))
		return NULL;
	pt[0] = 0x04; /* uncompressed point */
	if (b64url_decode((const uint8_t *)x->valuestring, strlen(x->valuestring), pt + 1, coord) != (long)coord ||
	    b64url_decode((const uint8_t *)y->valuestring, strlen(y->valuestring), pt + 1 + coord, coord) != (long)coord)
		return NULL;
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM params[3] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * coord),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params); /* refuses points off the curve */
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static EVP_PKEY *ed_key(const cJSON *o)
{
	uint8_t raw[32];
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "x");
	if (!cJSON_IsString(x) || b64url_decode((const uint8_t *)x->valuestring, strlen(x->valuestring), raw, 32) != 32)
		return NULL;
	return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
}

int jwks_parse(const char *json, size_t len, struct jwks *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = cJSON_ParseWithLength(json, len);
	const cJSON *keys = root ? cJSON_GetObjectItemCaseSensitive(root, "keys") : NULL, *o;
	if (!cJSON_IsArray(keys)) {
		snprintf(err, errlen, "expected a JWKS: {\"keys\": [...]}");
		cJSON_Delete(root);
		return -1;
	}
	int i = 0;
	cJSON_ArrayForEach(o, keys) {
		const cJSON *kty = cJSON_GetObjectItemCaseSensitive(o, "kty"), *kid = cJSON_GetObjectItemCaseSensitive(o, "kid");
		const cJSON *crv = cJSON_GetObjectItemCaseSensitive(o, "crv"), *alg = cJSON_GetObjectItemCaseSensitive(o, "alg");
		const cJSON *use = cJSON_GetObjectItemCaseSensitive(o, "use");
		char path[32];
		cfg_path_idx(path, sizeof(path), NULL, "keys", i++);
		if (!cJSON_IsString(kty) || (use && !(cJSON_IsString(use) && strcmp(use->valuestring, "sig") == 0)))
			continue; /* encryption keys and the like are not ours */
		if (out->n == JWKS_MAX) {
			cfg_fail(err, errlen, "keys", NULL, "at most %d signing keys", JWKS_MAX);
			goto fail;
		}
		struct jwk *k = &out->k[out->n];
		memset(k, 0, sizeof(*k));
		k->alg = alg ? (cJSON_IsString(alg) ? jwt_alg_parse(alg->valuestring) : -2) : -1;
		if (k->alg == -2 || (alg && k->alg < 0) || k->alg == JWT_HS256) {
			cfg_fail(err, errlen, path, "alg", "not a supported signature algorithm");
			goto fail;
		}
		if (cfg_str(kid, path, "kid", CFG_OPTIONAL, k->kid, sizeof(k->kid), "expected a short string", err, errlen) < 0)
			goto fail;
		const char *t = kty->valuestring, *c = cJSON_IsString(crv) ? crv->valuestring : "";
		if (strcmp(t, "RSA") == 0) {
			k->kty = 1;
			k->pkey = rsa_key(o);
			if (k->pkey && EVP_PKEY_get_bits(k->pkey) < 2048) {
				cfg_fail(err, errlen, path, NULL, "RSA keys shorter than 2048 bits are refused");
				EVP_PKEY_free(k->pkey);
				goto fail;
			}
		} else if (strcmp(t, "EC") == 0 && strcmp(c, "P-256") == 0) {
			k->kty = 2;
			k->pkey = ec_key(o, "prime256v1", 32);
		} else if (strcmp(t, "EC") == 0 && strcmp(c, "P-384") == 0) {
			k->kty = 3;
			k->pkey = ec_key(o, "secp384r1", 48);
		} else if (strcmp(t, "OKP") == 0 && strcmp(c, "Ed25519") == 0) {
			k->kty = 4;
			k->pkey = ed_key(o);
		} else {
			continue; /* oct keys (never from a JWKS), other curves */
		}
		if (!k->pkey) {
			snprintf(err, errlen, "%s (kid \"%s\"): malformed %s key", path, k->kid, t);
			goto fail;
		}
		out->n++;
	}
	cJSON_Delete(root);
	return 0;
fail:
	cJSON_Delete(root);
	jwks_free(out);
	return -1;
}

void jwks_free(struct jwks *j)
{
	for (int i = 0; i < j->n; i++)
		EVP_PKEY_free(j->k[i].pkey);
	j->n = 0;
}

/* ---- verification ---- */

static const EVP_MD *alg_md(int alg)
{
	switch (alg) {
	case JWT_RS256: case JWT_PS256: case JWT_ES256: case JWT_HS256: return EVP_sha256();
	case JWT_RS384: case JWT_PS384: case JWT_ES384: return EVP_sha384();
	case JWT_RS512: case JWT_PS512: return EVP_sha512();
	default: return NULL;
	}
}

static int alg_kty(int alg)
{
	if (alg <= JWT_PS512)
		return 1;
	if (alg == JWT_ES256)
		return 2;
	if (alg == JWT_ES384)
		return 3;
	if (alg == JWT_EDDSA)
		return 4;
	return 0;
}

/* Raw R||S to DER, refusing R or S outside [1, n-1]. */
static int ecdsa_der(const uint8_t *sig, size_t len, int alg, uint8_t *der, size_t room, size_t *derlen)
{
	size_t half = alg == JWT_ES256 ? 32 : 48;
	if (len != 2 * half)
		return -1;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(alg == JWT_ES256 ? NID_X9_62_prime256v1 : NID_secp384r1);
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
	ECDSA_SIG *es = ECDSA_SIG_new();
	int rc = -1;
	if (g && r && s && es && !BN_is_zero(r) && !BN_is_zero(s) && BN_cmp(r, EC_GROUP_get0_order(g)) < 0 &&
	    BN_cmp(s, EC_GROUP_get0_order(g)) < 0 && ECDSA_SIG_set0(es, r, s) == 1) {
		r = s = NULL; /* owned by es now */
		int n = i2d_ECDSA_SIG(es, NULL);
		if (n > 0 && (size_t)n <= room) {
			uint8_t *p = der;
			i2d_ECDSA_SIG(es, &p);
			*derlen = (size_t)n;
			rc = 0;
		}
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	EC_GROUP_free(g);
	return rc;
}

static bool verify_sig(int alg, EVP_PKEY *pkey, const uint8_t *in, size_t inlen, const uint8_t *sig, size_t siglen)
{
	uint8_t der[160];
	if (alg == JWT_ES256 || alg == JWT_ES384) {
		size_t dl;
		if (ecdsa_der(sig, siglen, alg, der, sizeof(der), &dl) < 0)
			return false;
		sig = der;
		siglen = dl;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok = false;
	if (md && EVP_DigestVerifyInit(md, &pctx, alg == JWT_EDDSA ? NULL : alg_md(alg), NULL, pkey) == 1) {
		bool pss = alg >= JWT_PS256 && alg <= JWT_PS512;
		if (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1))
			ok = EVP_DigestVerify(md, sig, siglen, in, inlen) == 1;
	}
	EVP_MD_CTX_free(md);
	return ok;
}

bool jwt_looks_like(struct spop_slice tok)
{
	int dots = 0;
	for (size_t i = 0; i < tok.len; i++)
		dots += tok.ptr[i] == '.';
	return dots == 2 && tok.len > 4 && tok.ptr[0] == 'e' && tok.ptr[1] == 'y';
}

static bool get_num(const cJSON *o, const char *name, int64_t *out, bool *present)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*present = v != NULL;
	if (!v)
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static int string_list(const cJSON *v, char *dst, size_t width, int max)
{
	const cJSON *it;
	int n = 0;
	if (cJSON_IsString(v)) {
		snprintf(dst, width, "%s", v->valuestring);
		return 1;
	}
	if (!cJSON_IsArray(v))
		return -1;
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || n == max)
			return -1;
		snprintf(dst + (size_t)n * width, width, "%s", it->valuestring);
		n++;
	}
	return n;
}

enum jwt_result jwt_verify(const struct jwt_cfg *cfg, const struct jwks *keys, struct spop_slice tok, int64_t now,
                           struct jwt_claims *out)
{
	memset(out, 0, sizeof(*out));
	out->nproviders = out->nmodels = -1;
	if (tok.len > JWT_MAX_LEN)
		return JWT_TOO_LARGE;
	const uint8_t *d1 = memchr(tok.ptr, '.', tok.len);
	const uint8_t *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(tok.ptr + tok.len - d1 - 1)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(tok.ptr + tok.len - d2 - 1)))
		return JWT_MALFORMED;
	static __thread uint8_t hbuf[JWT_MAX_LEN], pbuf[JWT_MAX_LEN], sbuf[1024];
	long hl = b64url_decode(tok.ptr, (size_t)(d1 - tok.ptr), hbuf, sizeof(hbuf));
	long pl = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pbuf, sizeof(pbuf));
	long sl = b64url_decode(d2 + 1, (size_t)(tok.ptr + tok.len - d2 - 1), sbuf, sizeof(sbuf));
	if (hl <= 0 || pl <= 0 || sl < 0)
		return JWT_MALFORMED;

	enum jwt_result res = JWT_MALFORMED;
	cJSON *hdr = parse_object(hbuf, (size_t)hl), *claims = NULL;
	if (!hdr)
		return JWT_MALFORMED;
	const cJSON *alg_v = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	int alg = cJSON_IsString(alg_v) ? jwt_alg_parse(alg_v->valuestring) : -1;
	if (alg < 0 || !(cfg->algs & (1u << alg))) {
		res = JWT_BAD_ALG;
		goto out;
	}
	static const char *const embedded[] = { "jwk", "jku", "x5u", "x5c", "crit" };
	for (size_t i = 0; i < sizeof(embedded) / sizeof(embedded[0]); i++)
		if (cJSON_GetObjectItemCaseSensitive(hdr, embedded[i])) {
			res = JWT_EMBEDDED_KEY;
			goto out;
		}
	const uint8_t *input = tok.ptr;
	size_t inlen = (size_t)(d2 - tok.ptr);
	if (alg == JWT_HS256) {
		uint8_t mac[32];
		unsigned ml = 0;
		if (cfg->hs_secret_len == 0) {
			res = JWT_BAD_ALG;
			goto out;
		}
		HMAC(EVP_sha256(), cfg->hs_secret, (int)cfg->hs_secret_len, input, inlen, mac, &ml);
		if (sl != 32 || CRYPTO_memcmp(mac, sbuf, 32) != 0) {
			res = JWT_BAD_SIGNATURE;
			goto out;
		}
	} else {
		const cJSON *kid_v = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
		if (kid_v && !cJSON_IsString(kid_v))
			goto out;
		const struct jwk *key = NULL;
		for (int i = 0; keys && i < keys->n; i++) {
			const struct jwk *k = &keys->k[i];
			if (kid_v ? strcmp(k->kid, kid_v->valuestring) == 0 : keys->n == 1) {
				key = k;
				break;
			}
		}
		if (!key) {
			res = JWT_UNKNOWN_KID;
			goto out;
		}
		/* The key decides the algorithm family: no RSA key verifies an ES or HS token. */
		if (key->kty != alg_kty(alg) || (key->alg >= 0 && key->alg != alg)) {
			res = JWT_BAD_ALG;
			goto out;
		}
		if (!verify_sig(alg, key->pkey, input, inlen, sbuf, (size_t)sl)) {
			res = JWT_BAD_SIGNATURE;
			goto out;
		}
	}

	/* Signed by whom we trust: now the claims. */
	claims = parse_object(pbuf, (size_t)pl);
	if (!claims)
		goto out;
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
	int64_t exp = 0, nbf = 0, iat = 0;
	bool has_exp, has_nbf, has_iat;
	if (!get_num(claims, "exp", &exp, &has_exp) || !get_num(claims, "nbf", &nbf, &has_nbf) ||
	    !get_num(claims, "iat", &iat, &has_iat))
		goto out;
	if (!iss || !aud || !has_exp) {
		res = JWT_MISSING_CLAIM;
		goto out;
	}
	if (!cJSON_IsString(iss) || strcmp(iss->valuestring, cfg->issuer) != 0) {
		res = JWT_BAD_ISSUER;
		goto out;
	}
	char auds[8][256];
	int na = string_list(aud, auds[0], sizeof(auds[0]), 8);
	bool aud_ok = false;
	for (int i = 0; i < na; i++)
		aud_ok |= strcmp(auds[i], cfg->audience) == 0;
	if (!aud_ok) {
		res = JWT_BAD_AUDIENCE;
		goto out;
	}
	if (now > exp + cfg->leeway) {
		res = JWT_EXPIRED;
		goto out;
	}
	if ((has_nbf && now + cfg->leeway < nbf) || (has_iat && iat > now + cfg->leeway)) {
		res = JWT_NOT_YET_VALID;
		goto out;
	}
	out->exp = exp;
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(claims, cfg->user_claim[0] ? cfg->user_claim : "sub");
	if (!cJSON_IsString(user) || !user->valuestring[0] || strlen(user->valuestring) >= sizeof(out->user) ||
	    strpbrk(user->valuestring, "/\r\n\t")) {
		res = JWT_MISSING_CLAIM;
		goto out;
	}
	strcpy(out->user, user->valuestring);
	if (cfg->providers_claim[0]) {
		out->nproviders = string_list(cJSON_GetObjectItemCaseSensitive(claims, cfg->providers_claim),
		                              out->providers[0], sizeof(out->providers[0]), 8);
		if (out->nproviders < 0) {
			res = JWT_MISSING_CLAIM;
			goto out;
		}
	}
	if (cfg->scope_claim[0]) {
		out->nscope = string_list(cJSON_GetObjectItemCaseSensitive(claims, cfg->scope_claim), out->scope[0],
		                          sizeof(out->scope[0]), 8);
		if (out->nscope < 0)
			out->nscope = 0; /* absent or not strings: in no jwt_claim scope */
	}
	if (cfg->models_claim[0]) {
		out->nmodels = string_list(cJSON_GetObjectItemCaseSensitive(claims, cfg->models_claim), out->models[0],
		                           sizeof(out->models[0]), 8);
		if (out->nmodels < 0) {
			res = JWT_MISSING_CLAIM;
			goto out;
		}
	}
	res = JWT_OK;
out:
	cJSON_Delete(hdr);
	cJSON_Delete(claims);
	return res;
}
