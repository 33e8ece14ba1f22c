/* keys.c: see keys.h. */
#include "keys.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int str_field(const cJSON *o, const char *name, char *dst, size_t room, bool required, const char *path,
                     char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	dst[0] = '\0';
	if (!v && !required)
		return 0;
	if (!cJSON_IsString(v) || strlen(v->valuestring) >= room) {
		snprintf(err, errlen, "%s.%s: expected a string of at most %zu bytes", path, name, room - 1);
		return -1;
	}
	strcpy(dst, v->valuestring);
	return 0;
}

static int int_field(const cJSON *o, const char *name, int64_t *dst, const char *path, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*dst = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15) {
		snprintf(err, errlen, "%s.%s: expected unix seconds (0: never)", path, name);
		return -1;
	}
	*dst = (int64_t)v->valuedouble;
	return 0;
}

static int list_field(const cJSON *o, const char *name, char *dst, size_t width, int max, int *n, const char *path,
                      char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name), *it;
	*n = 0;
	if (!v)
		return 0;
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > max) {
		snprintf(err, errlen, "%s.%s: expected an array of at most %d strings", path, name, max);
		return -1;
	}
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= width) {
			snprintf(err, errlen, "%s.%s[%d]: expected a non-empty string of at most %zu bytes", path, name, *n,
			         width - 1);
			return -1;
		}
		strcpy(dst + (size_t)*n * width, it->valuestring);
		(*n)++;
	}
	return 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_key(const cJSON *o, struct vkey *k, const char *path, char *err, size_t errlen)
{
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "%s: expected an object", path);
		return -1;
	}
	memset(k, 0, sizeof(*k));
	if (str_field(o, "id", k->id, sizeof(k->id), true, path, err, errlen) < 0)
		return -1;
	if (strlen(k->id) != VKEY_ID_LEN || strspn(k->id, "abcdefghijklmnopqrstuvwxyz0123456789") != VKEY_ID_LEN) {
		snprintf(err, errlen, "%s.id: expected %d characters of a-z and 0-9", path, VKEY_ID_LEN);
		return -1;
	}
	if (str_field(o, "name", k->name, sizeof(k->name), false, path, err, errlen) < 0 ||
	    str_field(o, "owner", k->owner, sizeof(k->owner), false, path, err, errlen) < 0 ||
	    list_field(o, "providers", k->providers[0], sizeof(k->providers[0]), 8, &k->nproviders, path, err, errlen) < 0 ||
	    list_field(o, "models", k->models[0], sizeof(k->models[0]), 16, &k->nmodels, path, err, errlen) < 0 ||
	    int_field(o, "expires", &k->expires, path, err, errlen) < 0)
		return -1;
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(o, "revoked");
	if (rev && !cJSON_IsBool(rev)) {
		snprintf(err, errlen, "%s.revoked: expected true or false", path);
		return -1;
	}
	k->revoked = cJSON_IsTrue(rev);
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "endpoints");
	if (eps) {
		char where[160];
		snprintf(where, sizeof(where), "%s.endpoints", path);
		if (endpoint_list_parse(eps, &k->endpoints, where, err, errlen) < 0)
			return -1;
	}
	const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(o, "secrets"), *s;
	if (!cJSON_IsArray(secrets) || cJSON_GetArraySize(secrets) < 1 || cJSON_GetArraySize(secrets) > VKEY_MAX_SECRETS) {
		snprintf(err, errlen, "%s.secrets: expected an array of 1 to %d hashes", path, VKEY_MAX_SECRETS);
		return -1;
	}
	cJSON_ArrayForEach(s, secrets) {
		char sp[160];
		snprintf(sp, sizeof(sp), "%s.secrets[%d]", path, k->nsecrets);
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "sha256");
		if (!cJSON_IsString(h) || strlen(h->valuestring) != 64) {
			snprintf(err, errlen, "%s.sha256: expected 64 lower-case hex digits", sp);
			return -1;
		}
		struct vkey_secret *sec = &k->secrets[k->nsecrets];
		for (int i = 0; i < 32; i++) {
			int a = unhex(h->valuestring[2 * i]), b = unhex(h->valuestring[2 * i + 1]);
			if (a < 0 || b < 0) {
				snprintf(err, errlen, "%s.sha256: expected 64 lower-case hex digits", sp);
				return -1;
			}
			sec->hash[i] = (uint8_t)(a << 4 | b);
		}
		if (int_field(s, "not_after", &sec->not_after, sp, err, errlen) < 0)
			return -1;
		k->nsecrets++;
	}
	return 0;
}

int keystore_parse(const char *json, size_t len, struct keystore *ks, char *err, size_t errlen)
{
	memset(ks, 0, sizeof(*ks));
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root) {
		snprintf(err, errlen, "not valid JSON");
		return -1;
	}
	int rc = -1;
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys"), *o;
	if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
		snprintf(err, errlen, "$: expected {\"keys\": [...]}");
		goto out;
	}
	int n = cJSON_GetArraySize(keys);
	if (n > 100000) {
		snprintf(err, errlen, "keys: at most 100000 keys");
		goto out;
	}
	ks->keys = calloc((size_t)(n ? n : 1), sizeof(*ks->keys));
	if (!ks->keys) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(o, keys) {
		char path[32];
		snprintf(path, sizeof(path), "keys[%d]", ks->n);
		if (parse_key(o, &ks->keys[ks->n], path, err, errlen) < 0)
			goto out;
		ks->n++;
	}
	qsort(ks->keys, (size_t)ks->n, sizeof(*ks->keys), cmp_id);
	for (int i = 1; i < ks->n; i++)
		if (strcmp(ks->keys[i - 1].id, ks->keys[i].id) == 0) {
			snprintf(err, errlen, "keys: id \"%s\" appears twice", ks->keys[i].id);
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
