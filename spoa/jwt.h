/* jwt.h: JSON Web Tokens from an external identity provider (RFC 7519), checked
 * the way RFC 8725 asks.
 *
 * - The algorithm must be on the issuer's allow-list, compared exactly; "none"
 *   never is. The key comes from the configured JWKS by "kid" and must be of the
 *   algorithm's type (an RSA key never verifies an HS256 or ES256 token); HS256
 *   only with the configured shared secret, never with a JWKS key.
 * - Keys embedded in the token ("jwk", "jku", "x5u", "x5c") and unknown "crit"
 *   extensions are refused, not ignored.
 * - ECDSA signatures must be raw R||S of the curve's size (not DER), with R and
 *   S in [1, n-1]; PS* use PSS with the digest's length as salt.
 * - "iss" must equal the issuer, "aud" name the audience, "exp" is required,
 *   "nbf" and "iat" are checked, all with a small leeway. Duplicate members in
 *   header or claims, bad base64url, padding, trailing data and oversized tokens
 *   are refused.
 * Pure apart from OpenSSL's (stateless) EVP calls. */
#ifndef SPOA_JWT_H
#define SPOA_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "spop.h"

#define JWT_MAX_LEN  8192
#define JWKS_MAX     32

enum jwt_alg {
	JWT_RS256 = 0, JWT_RS384, JWT_RS512, JWT_PS256, JWT_PS384, JWT_PS512,
	JWT_ES256, JWT_ES384, JWT_EDDSA, JWT_HS256, JWT_ALGS,
};

struct evp_pkey_st;

struct jwk {
	char kid[128];
	int kty;                       /* 1 RSA, 2 EC P-256, 3 EC P-384, 4 Ed25519 */
	int alg;                       /* the JWK's own "alg", or -1 */
	struct evp_pkey_st *pkey;      /* owned */
};

struct jwt_cfg {
	char issuer[256];
	char audience[256];
	unsigned algs;                 /* bit set of 1 << enum jwt_alg */
	int64_t leeway;                /* seconds */
	char user_claim[64];           /* default "sub" */
	char scope_claim[64];          /* "" or a claim policies may scope on (string or list) */
	char providers_claim[64];      /* "" or a claim listing the providers allowed */
	char models_claim[64];         /* "" or a claim listing model patterns allowed */
	uint8_t hs_secret[128];        /* HS256 shared secret; len 0: HS256 off */
	size_t hs_secret_len;
	struct endpoint_list endpoints;   /* granted to every token beyond the provider's defaults */
};

struct jwks {
	struct jwk k[JWKS_MAX];
	int n;
};

/* Parses a JWKS document. Keys of unsupported types are skipped; a key that
 * claims a supported type but is malformed is an error. The keys are out's
 * (jwks_free); a failed parse leaves none to free. */
int jwks_parse(const char *json, size_t len, struct jwks *out, char *err, size_t errlen);
void jwks_free(struct jwks *j);

/* What a verified token says. Slices point into `scratch` given to jwt_verify. */
struct jwt_claims {
	int64_t exp;
	char user[128];
	char providers[8][32];
	int nproviders;                /* -1: no restriction */
	char models[8][64];
	int nmodels;                   /* -1: no restriction */
	char scope[8][64];             /* values of scope_claim, for policy "when": {"jwt_claim"} */
	int nscope;
};

enum jwt_result {
	JWT_OK = 0,
	JWT_MALFORMED,                 /* not three base64url parts of JSON objects */
	JWT_TOO_LARGE,
	JWT_BAD_ALG,                   /* none, not allowed, or mismatched with the key */
	JWT_EMBEDDED_KEY,              /* jwk/jku/x5u/x5c/crit in the header */
	JWT_UNKNOWN_KID,
	JWT_BAD_SIGNATURE,
	JWT_EXPIRED,
	JWT_NOT_YET_VALID,
	JWT_BAD_ISSUER,
	JWT_BAD_AUDIENCE,
	JWT_MISSING_CLAIM,
};

const char *jwt_result_reason(enum jwt_result r);

/* Does this bearer token look like a JWT (three dot-separated parts)? */
bool jwt_looks_like(struct spop_slice tok);

enum jwt_result jwt_verify(const struct jwt_cfg *cfg, const struct jwks *keys, struct spop_slice tok, int64_t now,
                           struct jwt_claims *out);

int jwt_alg_parse(const char *s);
const char *jwt_alg_name(int alg);
extern const char *const jwt_alg_names[JWT_ALGS + 1];   /* by enum jwt_alg, then NULL */

#endif
