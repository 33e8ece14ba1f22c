/* request.c: see request.h. */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "fasthash.h"
#include "glob.h"
#include "hdrs.h"
#include "jsonscan.h"

#define is_text spop_data_is_text
#define as_int  spop_data_as_int

/* Records one more credential value; returns false once two differ. */
static bool note_cred(struct spop_slice v, unsigned at, struct spop_slice *value, unsigned *found_at, int *n)
{
	if (v.len == 0)
		return true;
	if (*n == 0) {
		*value = v;
		*found_at = at;
		*n = 1;
		return true;
	}
	if (v.len == value->len && memcmp(v.ptr, value->ptr, v.len) == 0)
		return true; /* the same key twice is one credential */
	*n = 2;
	return false;
}

int request_credential(const struct spop_data *hdrs, const struct spop_data *query, unsigned where,
                       struct spop_slice *value, unsigned *found_at)
{
	int n = 0;
	*found_at = 0;
	value->ptr = NULL;
	value->len = 0;
	if (is_text(hdrs)) {
		struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
		struct spop_slice name, val;
		while (hdrs_next(&r, &name, &val) == 1) {
			val = slice_trim(val);
			if ((where & CRED_BEARER) && SLICE_IEQ(name, "authorization")) {
				struct spop_slice scheme = { val.ptr, val.len < 7 ? val.len : 7 };
				if (SLICE_IEQ(scheme, "bearer ")) {
					struct spop_slice tok = slice_trim((struct spop_slice){ val.ptr + 7, val.len - 7 });
					if (!note_cred(tok, CRED_BEARER, value, found_at, &n))
						return 2;
				}
			} else if ((where & CRED_X_API_KEY) && SLICE_IEQ(name, "x-api-key")) {
				if (!note_cred(val, CRED_X_API_KEY, value, found_at, &n))
					return 2;
			} else if ((where & CRED_GOOG) && SLICE_IEQ(name, "x-goog-api-key")) {
				if (!note_cred(val, CRED_GOOG, value, found_at, &n))
					return 2;
			}
		}
	}
	if ((where & CRED_QUERY_KEY) && is_text(query)) {
		const uint8_t *p = query->v.s.ptr, *end = p + query->v.s.len;
		while (p < end) {
			const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
			const uint8_t *pe = amp ? amp : end;
			if (pe - p >= 4 && memcmp(p, "key=", 4) == 0) {
				struct spop_slice v = { p + 4, (size_t)(pe - p - 4) };
				if (!note_cred(v, CRED_QUERY_KEY, value, found_at, &n))
					return 2;
			}
			p = amp ? amp + 1 : end;
		}
	}
	return n;
}

static const char *cred_hint(unsigned where)
{
	if (where & CRED_X_API_KEY)
		return "an x-api-key header";
	if (where & CRED_GOOG)
		return "an x-goog-api-key header";
	return "an Authorization: Bearer header";
}

static void refuse(struct req_decision *d, int status, const char *reason, const char *msg, const char *tail)
{
	d->status = status;
	d->reason = reason;
	snprintf(d->message, sizeof(d->message), "archestra: %s%s", msg, tail ? tail : "");
}

/* Gemini names the model in the path: .../models/{model}:{method}. */
static void model_from_path(struct spop_slice rest, struct req_decision *d)
{
	const uint8_t *p = rest.ptr, *end = rest.ptr + rest.len;
	for (; p + 8 <= end; p++) {
		if (memcmp(p, "/models/", 8) != 0)
			continue;
		const uint8_t *m = p + 8, *e = m;
		while (e < end && *e != ':' && *e != '/')
			e++;
		d->model = (struct spop_slice){ m, (size_t)(e - m) };
		d->stream = e + 22 <= end && memcmp(e, ":streamGenerateContent", 22) == 0;
		return;
	}
}

static void add_tool(struct req_decision *d, const struct json_val *name)
{
	struct spop_slice s;
	if (!json_as_plain_string(name, &s) || s.len == 0)
		return;
	if (d->ntools == POLICY_MAX_TOOLS)
		d->tools_truncated = true;
	else
		d->tools[d->ntools++] = s;
}

/* Tool names as each provider declares them: OpenAI tools[].function.name and
 * functions[].name, Anthropic tools[].name, Gemini tools[].functionDeclarations[].name. */
static void collect_tools(const struct json_val *arr, struct req_decision *d)
{
	struct json_aiter it;
	struct json_val el, v;
	if (!json_aiter_init(&it, arr))
		return;
	while (json_aiter_next(&it, &el) == 1) {
		if (el.kind != JSON_OBJECT)
			continue;
		if (json_get_path(el.raw, "function.name", &v) || json_get(el.raw, "name", &v)) {
			add_tool(d, &v);
		} else if (json_get(el.raw, "functionDeclarations", &v)) {
			struct json_aiter fi;
			struct json_val f, n;
			if (!json_aiter_init(&fi, &v))
				continue;
			while (json_aiter_next(&fi, &f) == 1)
				if (f.kind == JSON_OBJECT && json_get(f.raw, "name", &n))
					add_tool(d, &n);
		}
	}
}

/* Tool results the conversation carries, named: OpenAI role "tool" messages (the
 * name is in the assistant's tool_calls with the same id) and legacy role
 * "function"; Anthropic tool_result blocks (named by the tool_use with that id);
 * Gemini functionResponse parts. Any result from an untrusted tool, or one we
 * cannot name, marks the conversation untrusted. */
#define MAX_CALL_IDS 64
struct call_names {
	struct spop_slice id[MAX_CALL_IDS], name[MAX_CALL_IDS];
	int n;
};

static void remember_call(struct call_names *cn, const struct json_val *id, const struct json_val *name)
{
	struct spop_slice i, nm;
	if (cn->n < MAX_CALL_IDS && json_as_plain_string(id, &i) && json_as_plain_string(name, &nm)) {
		cn->id[cn->n] = i;
		cn->name[cn->n++] = nm;
	}
}

static struct spop_slice name_of(const struct call_names *cn, const struct json_val *id)
{
	struct spop_slice i;
	if (json_as_plain_string(id, &i))
		for (int k = cn->n - 1; k >= 0; k--)
			if (cn->id[k].len == i.len && memcmp(cn->id[k].ptr, i.ptr, i.len) == 0)
				return cn->name[k];
	return (struct spop_slice){ NULL, 0 };
}

/* A tool result's text: a plain JSON string's contents, else the raw JSON value. */
static struct spop_slice content_of(struct spop_slice obj, const char *key)
{
	struct json_val v;
	struct spop_slice s = { NULL, 0 };
	if (json_get(obj, key, &v) && !json_as_plain_string(&v, &s))
		s = v.raw;
	return s;
}

static bool conversation_untrusted(const struct policy *p, const struct spop_data *body)
{
	struct json_val msgs, m, v, blk, w;
	struct json_aiter it, bi;
	struct call_names cn = { .n = 0 };
	if (!is_text(body) || !(json_get(body->v.s, "messages", &msgs) || json_get(body->v.s, "contents", &msgs)))
		return false;
	if (!json_aiter_init(&it, &msgs))
		return false;
	while (json_aiter_next(&it, &m) == 1) {
		if (m.kind != JSON_OBJECT)
			continue;
		struct spop_slice role = { NULL, 0 };
		if (json_get(m.raw, "role", &v))
			json_as_plain_string(&v, &role);
		if (json_get(m.raw, "tool_calls", &v) && json_aiter_init(&bi, &v))
			while (json_aiter_next(&bi, &blk) == 1) {
				struct json_val id, nm;
				if (blk.kind == JSON_OBJECT && json_get(blk.raw, "id", &id) && json_get_path(blk.raw, "function.name", &nm))
					remember_call(&cn, &id, &nm);
			}
		if (SPOP_SLICE_IS(role, "tool") && json_get(m.raw, "tool_call_id", &v) &&
		    !policy_tool_trusted(p, name_of(&cn, &v), content_of(m.raw, "content")))
			return true;
		if (SPOP_SLICE_IS(role, "function") && json_get(m.raw, "name", &v)) {
			struct spop_slice nm = { NULL, 0 };
			json_as_plain_string(&v, &nm);
			if (!policy_tool_trusted(p, nm, content_of(m.raw, "content")))
				return true;
		}
		/* Anthropic content blocks and Gemini parts */
		if (!(json_get(m.raw, "content", &v) || json_get(m.raw, "parts", &v)) || !json_aiter_init(&bi, &v))
			continue;
		while (json_aiter_next(&bi, &blk) == 1) {
			if (blk.kind != JSON_OBJECT)
				continue;
			struct spop_slice type = { NULL, 0 }, nm = { NULL, 0 };
			if (json_get(blk.raw, "type", &w))
				json_as_plain_string(&w, &type);
			struct json_val id, name;
			if (SPOP_SLICE_IS(type, "tool_use") && json_get(blk.raw, "id", &id) && json_get(blk.raw, "name", &name))
				remember_call(&cn, &id, &name);
			if (SPOP_SLICE_IS(type, "tool_result") && json_get(blk.raw, "tool_use_id", &id) &&
			    !policy_tool_trusted(p, name_of(&cn, &id), content_of(blk.raw, "content")))
				return true;
			if (json_get_path(blk.raw, "functionResponse.name", &name)) {
				json_as_plain_string(&name, &nm);
				struct json_val fr;
				struct spop_slice body_of = { NULL, 0 };
				if (json_get(blk.raw, "functionResponse", &fr))
					body_of = content_of(fr.raw, "response");
				if (!policy_tool_trusted(p, nm, body_of))
					return true;
			}
		}
	}
	return false;
}

/* "model" and "stream" among the top-level members, in one pass; a truncated or
 * broken body yields what came before the damage. */
static void model_from_body(const struct spop_data *body, struct req_decision *d)
{
	if (!is_text(body))
		return;
	struct json_iter it;
	struct spop_slice k;
	struct json_val v;
	if (!json_iter_init(&it, body->v.s))
		return;
	while (json_iter_next(&it, &k, &v) == 1) {
		int64_t n;
		if (SPOP_SLICE_IS(k, "model")) {
			struct spop_slice s;
			if (json_as_plain_string(&v, &s) && d->model.len == 0)
				d->model = s;
		} else if (SPOP_SLICE_IS(k, "stream")) {
			d->stream = v.kind == JSON_TRUE;
		} else if (SPOP_SLICE_IS(k, "max_tokens") || SPOP_SLICE_IS(k, "max_completion_tokens") ||
		           SPOP_SLICE_IS(k, "max_output_tokens")) {
			if (json_as_int(&v, &n) && n > d->output_tokens)
				d->output_tokens = n;
		} else if (SPOP_SLICE_IS(k, "generationConfig")) {
			struct json_val m;
			if (json_get(v.raw, "maxOutputTokens", &m) && json_as_int(&m, &n) && n > d->output_tokens)
				d->output_tokens = n;
		} else if (SPOP_SLICE_IS(k, "messages") || SPOP_SLICE_IS(k, "contents")) {
			d->messages = json_array_len(&v);
		} else if (SPOP_SLICE_IS(k, "tools") || SPOP_SLICE_IS(k, "functions")) {
			collect_tools(&v, d);
		}
	}
}

/* Sets the real provider key the gateway holds for this call. */
static void substitute_key(const struct auth *auth, struct req_decision *d)
{
	const struct provider *p = d->prov;
	size_t len = 0;
	const char *real = provider_key_for(auth ? &auth->provider_keys : NULL, p->name, &len);
	if (!real) {
		refuse(d, 500, "provider_key_missing", "the gateway holds no API key for the provider ", p->name);
		return;
	}
	d->auth_key = (struct spop_slice){ (const uint8_t *)real, len };
	if (p->cred & CRED_X_API_KEY) {
		d->auth_hdr = "x-api-key";
		d->auth_scheme = "";
	} else if (p->cred & CRED_GOOG) {
		d->auth_hdr = "x-goog-api-key";
		d->auth_scheme = "";
	} else {
		d->auth_hdr = "authorization";
		d->auth_scheme = "Bearer ";
	}
}

/* A JWT from the configured issuer: verify (or find in the cache), apply the
 * access claims, then substitute the provider key. */
static void jwt_credential(const struct decide_env *env, struct req_decision *d)
{
	const struct auth *auth = env->auth;
	struct jwt_claims local, *c = &local;
	struct spop_slice t = d->credential;
	/* A fast hash picks the slot; the stored token itself confirms a hit. */
	unsigned slot = (unsigned)(fasthash(t.ptr, t.len, 0) % JWT_CACHE_SLOTS);
	bool cacheable = env->cache && t.len <= JWT_CACHE_TOKEN_MAX;
	if (cacheable && env->cache->e[slot].gen == auth->gen && env->cache->e[slot].len == t.len &&
	    memcmp(env->cache->e[slot].tok, t.ptr, t.len) == 0 &&
	    env->now <= env->cache->e[slot].claims.exp + auth->jwt.leeway) {
		c = &env->cache->e[slot].claims;
		memcpy(d->key_id, env->cache->e[slot].key_id, sizeof(d->key_id));
		env->cache->hits++;
	} else {
		uint8_t sh[32];
		sha256(t.ptr, t.len, sh);
		snprintf(d->key_id, sizeof(d->key_id), "jwt_%02x%02x%02x%02x%02x%02x", sh[0], sh[1], sh[2], sh[3], sh[4], sh[5]);
		enum jwt_result r = jwt_verify(&auth->jwt, &auth->jwks, t, env->now, &local);
		if (r != JWT_OK) {
			refuse(d, 401, jwt_result_reason(r), "the token was refused: ", jwt_result_reason(r) + 4);
			return;
		}
		if (cacheable) {
			env->cache->e[slot].gen = auth->gen;
			env->cache->e[slot].len = (uint16_t)t.len;
			memcpy(env->cache->e[slot].tok, t.ptr, t.len);
			memcpy(env->cache->e[slot].key_id, d->key_id, sizeof(d->key_id));
			env->cache->e[slot].claims = local;
			env->cache->misses++;
		}
	}
	const struct provider *p = d->prov;
	if (c->nproviders >= 0) {
		int i;
		for (i = 0; i < c->nproviders; i++)
			if (strcmp(c->providers[i], p->name) == 0)
				break;
		if (i == c->nproviders) {
			refuse(d, 403, "jwt_provider_denied", "the token does not allow the provider ", p->name);
			return;
		}
	}
	if (c->nmodels >= 0) {
		int i;
		for (i = 0; i < c->nmodels; i++)
			if (d->model.len && glob_match(c->models[i], d->model.ptr, d->model.len))
				break;
		if (i == c->nmodels) {
			d->status = 403;
			d->reason = "jwt_model_denied";
			snprintf(d->message, sizeof(d->message), "archestra: the token does not allow the model %.*s",
			         (int)(d->model.len > 64 ? 64 : d->model.len), d->model.ptr);
			return;
		}
	}
	snprintf(d->jwt_user, sizeof(d->jwt_user), "%s", c->user);
	d->njwt_scope = c->nscope;
	memcpy(d->jwt_scope, c->scope, sizeof(d->jwt_scope));
	substitute_key(auth, d);
	if (!d->status)
		d->owner = (struct spop_slice){ (const uint8_t *)d->jwt_user, strlen(d->jwt_user) };
}

/* A virtual key: check it, then substitute the provider key the gateway holds. */
static void virtual_key(const struct auth *auth, int64_t now, struct req_decision *d)
{
	const struct vkey *k;
	const struct provider *p = d->prov;
	enum vkey_result r = keystore_check(auth ? &auth->keys : NULL, d->credential, now, p->name, d->model, &k);
	if (k)
		snprintf(d->key_id, sizeof(d->key_id), "%s", k->id);
	switch (r) {
	case VK_OK:
		break;
	case VK_PROVIDER:
		refuse(d, 403, vkey_result_reason(r), "this virtual key may not use the provider ", p->name);
		return;
	case VK_MODEL:
		d->status = 403;
		d->reason = vkey_result_reason(r);
		snprintf(d->message, sizeof(d->message), "archestra: this virtual key may not use the model %.*s",
		         (int)(d->model.len > 64 ? 64 : d->model.len), d->model.ptr);
		return;
	case VK_REVOKED:
		refuse(d, 401, vkey_result_reason(r), "this virtual key has been revoked", NULL);
		return;
	case VK_EXPIRED:
		refuse(d, 401, vkey_result_reason(r), "this virtual key has expired", NULL);
		return;
	case VK_MALFORMED:
		refuse(d, 401, vkey_result_reason(r), "malformed virtual key (arch_vk_<id>_<secret>)", NULL);
		return;
	default:
		refuse(d, 401, vkey_result_reason(r), "unknown virtual key", NULL);
		return;
	}
	substitute_key(auth, d);
	if (!d->status)
		d->owner = (struct spop_slice){ (const uint8_t *)k->owner, strlen(k->owner) };
}

void request_decide(const struct request_cfg *cfg, const struct decide_env *env, const struct spop_msg *m,
                    struct req_decision *d)
{
	static const struct decide_env none;
	if (!env)
		env = &none;
	memset(d, 0, sizeof(*d));
	d->reason = "allowed";
	d->output_tokens = d->messages = -1;

	const struct spop_data *path = SPOP_MSG_ARG(m, "path");
	if (!is_text(path) || path->v.s.len == 0) {
		refuse(d, 400, "bad_request", "the request has no path", NULL);
		return;
	}
	d->prov = provider_match(cfg->providers, path->v.s, &d->rest);
	if (!d->prov) {
		char known[160];
		providers_list(cfg->providers, known, sizeof(known));
		refuse(d, 404, "unknown_provider", "no LLM provider is routed at this path; known prefixes: ", known);
		return;
	}

	if (d->prov->shape == SHAPE_GEMINI)
		model_from_path(d->rest, d);
	model_from_body(SPOP_MSG_ARG(m, "body"), d); /* Gemini: limits and contents; the path named the model */
	if (identity_parse(SPOP_MSG_ARG(m, "hdrs"), cfg->drop_invalid_identity, &d->id, &d->id_err, &d->id_dropped) < 0) {
		d->status = 400;
		d->reason = "invalid_identity_header";
		snprintf(d->message, sizeof(d->message), "archestra: %s is invalid: %s", d->id_err.header, d->id_err.why);
		return;
	}

	int64_t len, size;
	d->truncated = as_int(SPOP_MSG_ARG(m, "body_len"), &len) && as_int(SPOP_MSG_ARG(m, "body_size"), &size) &&
	               size > len && len >= 0;
	if (d->truncated && cfg->truncated == TRUNC_DENY) {
		d->status = 413;
		d->reason = "body_truncated";
		snprintf(d->message, sizeof(d->message),
		         "archestra: the request body (%lld bytes) is larger than what HAProxy buffers for inspection "
		         "(%lld bytes, tune.bufsize); send a smaller request or raise tune.bufsize",
		         (long long)size, (long long)len);
		return;
	}

	int n = request_credential(SPOP_MSG_ARG(m, "hdrs"), SPOP_MSG_ARG(m, "query"), d->prov->cred, &d->credential,
	                           &d->cred_where);
	if (n > 1) {
		refuse(d, 400, "ambiguous_credential", "the request carries more than one different API key; send exactly one",
		       NULL);
		return;
	}
	if (n == 0 && d->prov->require_key) {
		refuse(d, 401, "missing_credential", "missing API key; send it in ", cred_hint(d->prov->cred));
		return;
	}
	if (n == 1 && vkey_looks_virtual(d->credential)) {
		virtual_key(env->auth, env->now, d);
		if (d->status)
			return;
	} else if (n == 1 && env->auth && env->auth->jwt_enabled && jwt_looks_like(d->credential)) {
		jwt_credential(env, d);
		if (d->status)
			return;
	} else if (n == 1) {
		direct_key_id(d->credential, d->key_id);
		if (!d->prov->direct_keys) {
			refuse(d, 401, "direct_key_refused",
			       "provider API keys are not accepted for this provider; use a key issued by the gateway", NULL);
			return;
		}
	}

	/* Policy last: it may scope on who the credential turned out to be. */
	if (env->auth && env->auth->policy.n) {
		int64_t blen = 0, bsize = 0;
		struct policy_input pin = {
			.id = &d->id, .output_tokens = d->output_tokens, .messages = d->messages, .stream = d->stream,
		};
		as_int(SPOP_MSG_ARG(m, "body_len"), &blen);
		as_int(SPOP_MSG_ARG(m, "body_size"), &bsize);
		pin.body_bytes = bsize > blen ? bsize : blen;
		pin.tools = d->tools;
		pin.ntools = d->ntools;
		pin.tools_truncated = d->tools_truncated;
		pin.claims = (const char(*)[64])d->jwt_scope;
		pin.nclaims = d->njwt_scope;
		pin.v[SC_PROVIDER] = (struct spop_slice){ (const uint8_t *)d->prov->name, strlen(d->prov->name) };
		pin.v[SC_MODEL] = d->model;
		pin.v[SC_KEY_ID] = (struct spop_slice){ (const uint8_t *)d->key_id, strlen(d->key_id) };
		pin.v[SC_KEY_OWNER] = d->owner;
		pin.v[SC_AGENT_ID] = d->id.v[ID_AGENT];
		pin.v[SC_USER_ID] = d->id.v[ID_USER].len ? d->id.v[ID_USER] : d->owner;
		policy_eval(&env->auth->policy, &pin, &d->policy);
		if (d->policy.deny) {
			d->status = 403;
			d->reason = d->policy.deny->id;
			snprintf(d->message, sizeof(d->message), "archestra: policy %.63s: %.150s", d->policy.deny->id, d->policy.why);
			d->auth_hdr = NULL; /* nothing is substituted for a refused call */
			return;
		}
	}

	/* DLP over the raw body: secrets sit in JSON strings as they are. */
	const struct spop_data *body = SPOP_MSG_ARG(m, "body");
	if (env->auth && env->auth->policy.dlp.enabled && body && spop_data_is_text(body)) {
		const struct dlp_cfg *dc = &env->auth->policy.dlp;
		struct dlp_result r;
		dlp_scan(dc, body->v.s, &r);
		d->dlp_found = r.found;
		d->dlp_cfg = dc;
		if (r.deny >= 0 && env->auth->policy.shadow) {
			d->dlp_shadow = true;
		} else if (r.deny >= 0) {
			d->status = 403;
			d->reason = dlp_reason(dc, r.deny);
			snprintf(d->message, sizeof(d->message),
			         "archestra: the request carries sensitive data (%s); remove it before sending", dlp_name(dc, r.deny));
			d->auth_hdr = NULL;
			return;
		}
	}
	/* Only the response exchange reads the bit: without it, do not walk the conversation. */
	if (cfg->inspect_responses && env->auth && env->auth->policy.trusted.enabled)
		d->untrusted = conversation_untrusted(&env->auth->policy, body);
	d->inspect_res = cfg->inspect_responses;
}
