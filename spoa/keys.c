/* keys.c: see keys.h. */
#include "keys.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "cfgjson.h"
#include "glob.h"

/* EVP_Digest looks the algorithm up (under a lock) and allocates a context on
 * every call; on the decision path the digest is fetched once and each thread
 * keeps its own context. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key; /* each thread's context, freed when the thread ends */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_key_create(&sha256_key, ctx_free);
}

void sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	pthread_once(&sha256_once, sha256_init);
	EVP_MD_CTX *ctx = pthread_getspecific(sha256_key);
	if (!ctx && (ctx = EVP_MD_CTX_new()))
		pthread_setspecific(sha256_key, ctx);
	if (!ctx || !sha256_md || EVP_DigestInit_ex(ctx, sha256_md, NULL) != 1 || EVP_DigestUpdate(ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1)
		EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void direct_key_id(struct spop_slice key, char *dst)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t h[32];
	sha256(key.ptr, key.len, h);
	memcpy(dst, "dk_", 3);
	for (int i = 0; i < 6; i++) {
		dst[3 + 2 * i] = hex[h[i] >> 4];
		dst[4 + 2 * i] = hex[h[i] & 15];
	}
	dst[15] = '\0';
}

static bool id_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool b64url_char(uint8_t c)
{
	return id_char(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

bool vkey_looks_virtual(struct spop_slice cred)
{
	return cred.len >= VKEY_PREFIX_LEN && memcmp(cred.ptr, VKEY_PREFIX, VKEY_PREFIX_LEN) == 0;
}

static bool well_formed(struct spop_slice k)
{
	if (k.len != VKEY_LEN || !vkey_looks_virtual(k) || k.ptr[VKEY_PREFIX_LEN + VKEY_ID_LEN] != '_')
		return false;
	for (int i = 0; i < VKEY_ID_LEN; i++)
		if (!id_char(k.ptr[VKEY_PREFIX_LEN + i]))
			return false;
	for (int i = 0; i < VKEY_SECRET_LEN; i++)
		if (!b64url_char(k.ptr[VKEY_PREFIX_LEN + VKEY_ID_LEN + 1 + i]))
			return false;
	return true;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const struct vkey *)a)->id, ((const struct vkey *)b)->id);
}

enum vkey_result keystore_check(const struct keystore *ks, struct spop_slice key, int64_t now, const char *provider,
                                struct spop_slice model, const struct vkey **out)
{
	*out = NULL;
	if (!well_formed(key))
		return VK_MALFORMED;
	struct vkey probe;
	memcpy(probe.id, key.ptr + VKEY_PREFIX_LEN, VKEY_ID_LEN);
	probe.id[VKEY_ID_LEN] = '\0';
	const struct vkey *k = ks && ks->n ? bsearch(&probe, ks->keys, (size_t)ks->n, sizeof(*ks->keys), cmp_id) : NULL;
	if (!k)
		return VK_UNKNOWN;
	uint8_t h[32];
	sha256(key.ptr, key.len, h);
	bool match = false;
	for (int i = 0; i < k->nsecrets; i++) {
		/* Every stored hash is compared, in constant time, whatever matched. */
		bool same = CRYPTO_memcmp(h, k->secrets[i].hash, 32) == 0;
		bool live = k->secrets[i].not_after == 0 || now <= k->secrets[i].not_after;
		match |= same && live;
	}
	if (!match)
		return VK_UNKNOWN;
	*out = k;
	if (k->revoked)
		return VK_REVOKED;
	if (k->expires && now > k->expires)
		return VK_EXPIRED;
	if (k->nproviders) {
		int i;
		for (i = 0; i < k->nproviders; i++)
			if (strcmp(k->providers[i], provider) == 0)
				break;
		if (i == k->nproviders)
			return VK_PROVIDER;
	}
	if (k->nmodels) {
		int i;
		for (i = 0; i < k->nmodels; i++)
			if (model.len && glob_match(k->models[i], model.ptr, model.len))
				break;
		if (i == k->nmodels)
			return VK_MODEL;
	}
	return VK_OK;
}

const char *vkey_result_reason(enum vkey_result r)
{
	switch (r) {
	case VK_OK:        return "allowed";
	case VK_MALFORMED: return "virtual_key_malformed";
	case VK_UNKNOWN:   return "virtual_key_unknown";
	case VK_REVOKED:   return "virtual_key_revoked";
	case VK_EXPIRED:   return "virtual_key_expired";
	case VK_PROVIDER:  return "virtual_key_provider_denied";
	case VK_MODEL:     return "virtual_key_model_denied";
	}
	return "virtual_key_unknown";
}

/* ---- the keys file ---- */

/* Unix seconds, 0 for never; null is absent. */
static int seconds(const cJSON *o, const char *path, const char *key, int64_t *dst, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d = 0;
	if (cfg_number(cJSON_IsNull(v) ? NULL : v, path, key, CFG_OPTIONAL, 0, 9e15, &d, "expected unix seconds (0: never)",
	               err, errlen) < 0)
		return -1;
	*dst = (int64_t)d;
	return 0;
}

static int parse_secret(const cJSON *s, struct vkey_secret *sec, const char *path, char *err, size_t errlen)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "sha256");
	bool ok = cJSON_IsString(h) && strlen(h->valuestring) == 64;
	for (int i = 0; ok && i < 32; i++) {
		int a = hex_value(h->valuestring[2 * i]), b = hex_value(h->valuestring[2 * i + 1]);
		if ((ok = a >= 0 && b >= 0))
			sec->hash[i] = (uint8_t)(a << 4 | b);
	}
	if (!ok)
		return cfg_fail(err, errlen, path, "sha256", "expected 64 lower-case hex digits");
	return seconds(s, path, "not_after", &sec->not_after, err, errlen);
}

/* An entry of "keys". Members it does not read ("created", "metadata": what
 * `keys new` writes for people) are allowed. */
static int parse_key(const cJSON *o, struct vkey *k, const char *path, char *err, size_t errlen)
{
	if (cfg_object(o, path, NULL, 0, NULL, NULL, err, errlen) < 0)
		return -1;
	memset(k, 0, sizeof(*k));
	if (cfg_str(cJSON_GetObjectItemCaseSensitive(o, "id"), path, "id", 0, k->id, sizeof(k->id), NULL, err, errlen) < 0)
		return -1;
	if (strlen(k->id) != VKEY_ID_LEN || strspn(k->id, "abcdefghijklmnopqrstuvwxyz0123456789") != VKEY_ID_LEN)
		return cfg_fail(err, errlen, path, "id", "expected %d characters of a-z and 0-9", VKEY_ID_LEN);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name"), *owner = cJSON_GetObjectItemCaseSensitive(o, "owner");
	const cJSON *providers = cJSON_GetObjectItemCaseSensitive(o, "providers");
	const cJSON *models = cJSON_GetObjectItemCaseSensitive(o, "models");
	if (cfg_str(name, path, "name", CFG_OPTIONAL, k->name, sizeof(k->name), NULL, err, errlen) < 0 ||
	    cfg_str(owner, path, "owner", CFG_OPTIONAL, k->owner, sizeof(k->owner), NULL, err, errlen) < 0 ||
	    cfg_strings(providers, path, "providers", CFG_OPTIONAL | CFG_NONEMPTY, 0, 8, k->providers[0],
	                sizeof(k->providers[0]), &k->nproviders, NULL, err, errlen) < 0 ||
	    cfg_strings(models, path, "models", CFG_OPTIONAL | CFG_NONEMPTY, 0, 16, k->models[0], sizeof(k->models[0]),
	                &k->nmodels, NULL, err, errlen) < 0 ||
	    seconds(o, path, "expires", &k->expires, err, errlen) < 0 ||
	    cfg_bool(cJSON_GetObjectItemCaseSensitive(o, "revoked"), path, "revoked", CFG_OPTIONAL, &k->revoked, NULL, err,
	             errlen) < 0)
		return -1;
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "endpoints");
	if (eps && endpoint_list_parse(eps, path, "endpoints", &k->endpoints, err, errlen) < 0)
		return -1;
	const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(o, "secrets"), *s;
	if (cfg_array(secrets, path, "secrets", 0, 1, VKEY_MAX_SECRETS, "hashes", err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(s, secrets) {
		char sp[160];
		if (parse_secret(s, &k->secrets[k->nsecrets], cfg_path_idx(sp, sizeof(sp), path, "secrets", k->nsecrets), err,
		                 errlen) < 0)
			return -1;
		k->nsecrets++;
	}
	return 0;
}

int keystore_parse(const char *json, size_t len, struct keystore *ks, char *err, size_t errlen)
{
	memset(ks, 0, sizeof(*ks));
	cJSON *root = cfg_parse(json, len, 0, err, errlen);
	if (!root)
		return -1;
	int rc = -1;
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys"), *o;
	if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
		cfg_fail(err, errlen, "$", NULL, "expected {\"keys\": [...]}");
		goto out;
	}
	if (cfg_array(keys, NULL, "keys", 0, 0, 100000, "keys", err, errlen) < 0)
		goto out;
	int n = cJSON_GetArraySize(keys);
	ks->keys = calloc((size_t)(n ? n : 1), sizeof(*ks->keys));
	if (!ks->keys) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(o, keys) {
		char path[32];
		if (parse_key(o, &ks->keys[ks->n], cfg_path_idx(path, sizeof(path), NULL, "keys", ks->n), err, errlen) < 0)
			goto out;
		ks->n++;
	}
	qsort(ks->keys, (size_t)ks->n, sizeof(*ks->keys), cmp_id);
	for (int i = 1; i < ks->n; i++)
		if (strcmp(ks->keys[i - 1].id, ks->keys[i].id) == 0) {
			cfg_fail(err, errlen, "keys", NULL, "id \"%s\" appears twice", ks->keys[i].id);
			goto out;
		}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc < 0)
		keystore_free(ks);
	return rc;
}

void keystore_free(struct keystore *ks)
{
	free(ks->keys);
	ks->keys = NULL;
	ks->n = 0;
}

const char *provider_key_for(const struct provider_keys *pk, const char *provider, size_t *len)
{
	for (int i = 0; pk && i < pk->n; i++)
		if (strcmp(pk->k[i].provider, provider) == 0) {
			*len = pk->k[i].len;
			return pk->k[i].key;
		}
	return NULL;
}

void provider_keys_free(struct provider_keys *pk)
{
	for (int i = 0; i < pk->n; i++) {
		if (pk->k[i].key) {
			OPENSSL_cleanse(pk->k[i].key, pk->k[i].len);
			free(pk->k[i].key);
		}
	}
	pk->n = 0;
}
