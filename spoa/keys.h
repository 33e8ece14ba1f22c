/* keys.h: virtual API keys the gateway issues, and the real provider keys it holds.
 *
 * A virtual key looks like  arch_vk_<id>_<secret>  where <id> is 12 characters
 * of [a-z0-9] (public: it names the key in logs and metrics) and <secret> is 32
 * base64url characters (192 bits from the OS CSPRNG). The keys file stores, per
 * id, only SHA-256 hashes of whole keys, never a key, plus name, owner, allowed
 * providers and model patterns, expiry, a revoked flag and metadata. A lookup
 * finds the entry by id and compares hashes with CRYPTO_memcmp, so its time does
 * not depend on the secret. Real provider keys never sit in the keys file: they
 * come from an environment variable or a file (systemd credentials) named in the
 * config. Parsing and checking are pure; reading files is the caller's. */
#ifndef SPOA_KEYS_H
#define SPOA_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "spop.h"

#define VKEY_PREFIX     "arch_vk_"
#define VKEY_PREFIX_LEN 8
#define VKEY_ID_LEN     12
#define VKEY_SECRET_LEN 32
#define VKEY_LEN        (VKEY_PREFIX_LEN + VKEY_ID_LEN + 1 + VKEY_SECRET_LEN)
#define VKEY_MAX_SECRETS 4   /* the current key and keys still in a rotation overlap */

struct vkey_secret {
	uint8_t hash[32];
	int64_t not_after;       /* unix seconds; 0: no limit of its own */
};

struct vkey {
	char id[VKEY_ID_LEN + 1];
	char name[96];
	char owner[96];
	char providers[8][32];
	int nproviders;          /* 0: every provider */
	char models[16][64];
	int nmodels;             /* 0: every model */
	struct endpoint_list endpoints;   /* granted beyond the provider's defaults */
	int64_t expires;         /* unix seconds; 0: never */
	bool revoked;
	struct vkey_secret secrets[VKEY_MAX_SECRETS];
	int nsecrets;
};

/* Owned by whoever parsed it; keystore_free releases it. Sorted by id. */
struct keystore {
	struct vkey *keys;
	int n;
};

/* Reads a keys file. Returns 0 with ks filled (the caller frees it with
 * keystore_free), or -1 with err set and ks holding nothing. */
int keystore_parse(const char *json, size_t len, struct keystore *ks, char *err, size_t errlen);
void keystore_free(struct keystore *ks);

enum vkey_result {
	VK_OK = 0,
	VK_MALFORMED,            /* has the prefix but not the shape */
	VK_UNKNOWN,              /* no such id, or the secret does not match */
	VK_REVOKED,
	VK_EXPIRED,
	VK_PROVIDER,             /* valid, but not for this provider */
	VK_MODEL,                /* valid, but not for this model */
};

bool vkey_looks_virtual(struct spop_slice cred);

/* Checks a presented key for a call to `provider` asking for `model` at `now`. */
enum vkey_result keystore_check(const struct keystore *ks, struct spop_slice key, int64_t now, const char *provider,
                                struct spop_slice model, const struct vkey **out);

const char *vkey_result_reason(enum vkey_result r);   /* "virtual_key_revoked", ... */

/* SHA-256 of data into out. */
void sha256(const void *data, size_t len, uint8_t out[32]);

/* The id logs and metrics show for a direct provider key: "dk_" and the first
 * 12 hex digits of its SHA-256 (not reversible). dst must hold 16 bytes. */
void direct_key_id(struct spop_slice key, char *dst);

/* Real provider keys, by provider name. */
#define PROVIDER_KEYS_MAX 32
struct provider_keys {
	struct {
		char provider[32];
		char *key;           /* owned */
		size_t len;
	} k[PROVIDER_KEYS_MAX];
	int n;
};

const char *provider_key_for(const struct provider_keys *pk, const char *provider, size_t *len);
void provider_keys_free(struct provider_keys *pk);

#endif
