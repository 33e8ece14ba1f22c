/* authload.c: see authload.h. */
#include "authload.h"

#include "budget.h"
#include "config.h"
#include "request.h"

#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_provider_key(struct provider_keys *pk, const char *provider, const char *env, const char *file,
                             char *err, size_t errlen)
{
	char *val = NULL;
	size_t len = 0;
	if (env[0]) {
		const char *v = getenv(env);
		if (!v || !*v) {
			snprintf(err, errlen, "provider_keys.%s: environment variable %s is not set", provider, env);
			return -1;
		}
		val = strdup(v);
		len = strlen(v);
	} else {
		char e[CONFIG_ERR_LEN];
		val = config_read_file(file, &len, e, sizeof(e));
		if (!val) {
			snprintf(err, errlen, "provider_keys.%s: %s", provider, e);
			return -1;
		}
		while (len && (val[len - 1] == '\n' || val[len - 1] == '\r' || val[len - 1] == ' '))
			val[--len] = '\0'; /* files usually end with a newline */
	}
	if (!val || !len || strpbrk(val, "\r\n")) {
		free(val);
		snprintf(err, errlen, "provider_keys.%s: the key is empty or holds a line break", provider);
		return -1;
	}
	snprintf(pk->k[pk->n].provider, sizeof(pk->k[pk->n].provider), "%s", provider);
	pk->k[pk->n].key = val;
	pk->k[pk->n].len = len;
	pk->n++;
	return 0;
}

struct auth *auth_load(const struct config *c, const char *jwks_doc, size_t jwks_len, char *err, size_t errlen)
{
	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (c->keys_file[0]) {
		size_t len;
		char e[CONFIG_ERR_LEN];
		char *text = config_read_file(c->keys_file, &len, e, sizeof(e));
		if (!text) {
			snprintf(err, errlen, "keys_file: %s", e);
			goto fail;
		}
		int rc = keystore_parse(text, len, &a->keys, e, sizeof(e));
		free(text);
		if (rc < 0) {
			snprintf(err, errlen, "keys_file %s: %s", c->keys_file, e);
			goto fail;
		}
	}
	static _Atomic uint64_t generation;
	a->gen = atomic_fetch_add(&generation, 1) + 1;
	if (c->jwt.enabled) {
		a->jwt = c->jwt.cfg;
		if (c->jwt.jwks_url[0] && jwks_doc) {
			char e[CONFIG_ERR_LEN];
			if (jwks_parse(jwks_doc, jwks_len, &a->jwks, e, sizeof(e)) < 0) {
				snprintf(err, errlen, "jwt.jwks_url %s: %s", c->jwt.jwks_url, e);
				goto fail;
			}
		} else if (c->jwt.jwks_file[0]) {
			size_t len;
			char e[CONFIG_ERR_LEN];
			char *text = config_read_file(c->jwt.jwks_file, &len, e, sizeof(e));
			if (!text) {
				snprintf(err, errlen, "jwt.jwks_file: %s", e);
				goto fail;
			}
			int rc = jwks_parse(text, len, &a->jwks, e, sizeof(e));
			free(text);
			if (rc < 0) {
				snprintf(err, errlen, "jwt.jwks_file %s: %s", c->jwt.jwks_file, e);
				goto fail;
			}
		}
		if (c->jwt.hs256_secret_env[0]) {
			const char *s = getenv(c->jwt.hs256_secret_env);
			if (!s || strlen(s) < 32 || strlen(s) > sizeof(a->jwt.hs_secret)) {
				snprintf(err, errlen, "jwt.hs256_secret_env: %s must hold a secret of 32 to %zu bytes",
				         c->jwt.hs256_secret_env, sizeof(a->jwt.hs_secret));
				goto fail;
			}
			a->jwt.hs_secret_len = strlen(s);
			memcpy(a->jwt.hs_secret, s, a->jwt.hs_secret_len);
		}
		a->jwt_enabled = true;
	}
	{
		size_t len = strlen(policy_default_json);
		char e[CONFIG_ERR_LEN], *text = NULL;
		if (c->policy_file[0] && !(text = config_read_file(c->policy_file, &len, e, sizeof(e)))) {
			snprintf(err, errlen, "policy_file: %s", e);
			goto fail;
		}
		int rc = policy_parse(text ? text : policy_default_json, len, &a->policy, e, sizeof(e));
		free(text);
		if (rc < 0) {
			snprintf(err, errlen, "policy %s: %s", c->policy_file[0] ? c->policy_file : "(built in)", e);
			goto fail;
		}
		/* Budgets' calendar windows in their time zones (zoneinfo files). */
		for (int i = 0; a->policy.budgets && i < a->policy.budgets->n; i++) {
			struct budget *b = &a->policy.budgets->b[i];
			if (b->tz_name[0] && tz_load(b->tz_name, &b->tz, e, sizeof(e)) < 0) {
				snprintf(err, errlen, "policy %s: budgets \"%s\".time_zone: %s",
				         c->policy_file[0] ? c->policy_file : "(built in)", b->id, e);
				goto fail;
			}
			b->win.tz = &b->tz;
		}
	}
	for (int i = 0; i < c->npkeys; i++)
		if (load_provider_key(&a->provider_keys, c->pkeys[i].provider, c->pkeys[i].env, c->pkeys[i].file, err,
		                      errlen) < 0)
			goto fail;
	return a;
fail:
	auth_free(a);
	return NULL;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	keystore_free(&a->keys);
	provider_keys_free(&a->provider_keys);
	jwks_free(&a->jwks);
	policy_free(&a->policy);
	OPENSSL_cleanse(a->jwt.hs_secret, sizeof(a->jwt.hs_secret));
	free(a);
}
