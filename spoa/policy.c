/* policy.c: see policy.h. */
#include "policy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "cfgjson.h"
#include "glob.h"
#include "identity.h"
#include "jsonscan.h"

#include <regex.h>

/* The scope fields "when" may name, by enum scope_field, then the JWT claim. */
static const char *const scope_names[] = {
	"provider", "model", "key_id", "key_owner", "agent_id", "user_id", "jwt_claim", NULL,
};
_Static_assert(sizeof(scope_names) / sizeof(scope_names[0]) == SC_FIELDS + 2, "a name for each scope field");

static int patterns(const cJSON *v, const char *path, const char *key, struct pattern_list *out, char *err,
                    size_t errlen)
{
	char want[128];
	snprintf(want, sizeof(want), "expected a pattern or a list of 1 to %d patterns like [\"gpt-4o*\"] (%zu bytes at most)",
	         POLICY_MAX_PATTERNS, sizeof(out->p[0]) - 1);
	memset(out, 0, sizeof(*out));
	return cfg_strings(v, path, key, CFG_SCALAR | CFG_NONEMPTY, 1, POLICY_MAX_PATTERNS, out->p[0], sizeof(out->p[0]),
	                   &out->n, want, err, errlen);
}

static int allow_deny(const cJSON *v, const char *path, const char *key, struct pattern_list *allow,
                      struct pattern_list *deny, char *err, size_t errlen)
{
	static const char *const keys[] = { "allow", "deny", NULL };
	char p[CFG_PATH_MAX];
	const cJSON *it;
	cfg_path(p, sizeof(p), path, key);
	if (cfg_object(v, p, NULL, 0, NULL, "expected {\"allow\": [...]} and/or {\"deny\": [...]}", err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, v) {
		int k = cfg_lookup(it->string, keys);
		if (k < 0)
			return cfg_unknown(err, errlen, p, it->string, "key", keys);
		if (patterns(it, p, it->string, k == 0 ? allow : deny, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int limit(const cJSON *v, const char *path, const char *key, int64_t *out, char *err, size_t errlen)
{
	return cfg_int(v, path, key, 0, 1, 1000000000000, out, "expected a positive whole number", err, errlen);
}

/* One condition of "args": {"path": "to", "<op>": value}. */
static int parse_arg(const cJSON *a, struct arg_cond *ac, const char *path, char *err, size_t errlen)
{
	static const char *const ops[] = {
		[ARG_EQUALS] = "equals", [ARG_GLOB] = "glob", [ARG_REGEX] = "regex", [ARG_NOT_IN] = "not_in", NULL,
	};
	static const char want[] = "expected {\"path\": \"arg.path\", and one of equals, glob, regex, not_in}";
	const cJSON *pth = cJSON_GetObjectItemCaseSensitive(a, "path");
	if (cfg_object(a, path, NULL, 0, NULL, want, err, errlen) < 0 || cJSON_GetArraySize(a) != 2 ||
	    cfg_str(pth, path, NULL, CFG_NONEMPTY, ac->path, sizeof(ac->path), want, err, errlen) < 0)
		return cfg_fail(err, errlen, path, NULL, "%s", want);
	const cJSON *op = a->child == pth ? pth->next : a->child; /* the member that is not "path" */
	int k = cfg_lookup(op->string, ops);
	if (k < 0)
		return cfg_unknown(err, errlen, path, op->string, "condition", ops);
	ac->op = (enum arg_op)k;
	if (ac->op == ARG_NOT_IN)
		return patterns(op, path, op->string, &ac->not_in, err, errlen);
	if (cfg_str(op, path, op->string, 0, ac->value, sizeof(ac->value), NULL, err, errlen) < 0)
		return -1;
	if (ac->op == ARG_REGEX) {
		regex_t *re = calloc(1, sizeof(*re));
		if (!re || regcomp(re, ac->value, REG_EXTENDED | REG_NOSUB) != 0) {
			free(re);
			return cfg_fail(err, errlen, path, "regex", "not a valid POSIX extended regular expression");
		}
		ac->re = re;
	}
	return 0;
}

/* "tool_calls": [{"name": "send_email", "args": [{"path": "to", "not_in": ["*@corp.example"]}]}] */
static int parse_calls(const cJSON *v, struct policy_rule *r, const char *path, const char *key, char *err,
                       size_t errlen)
{
	static const char *const fields[] = { "name", "args", NULL };
	static const char want[] = "expected {\"name\": \"tool glob\"} with optional \"args\"";
	const cJSON *c;
	if (r->calls) /* a second "tool_calls" in the rule would write past the first's array */
		return cfg_fail(err, errlen, path, key, "given twice");
	if (cfg_array(v, path, key, 0, 1, 16, "{\"name\": ..., \"args\": [...]}", err, errlen) < 0)
		return -1;
	r->calls = calloc((size_t)cJSON_GetArraySize(v), sizeof(*r->calls));
	if (!r->calls) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(c, v) {
		char cp[CFG_PATH_MAX];
		cfg_path_idx(cp, sizeof(cp), path, key, r->ncalls);
		struct tool_call_rule *t = &r->calls[r->ncalls++];
		const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "args"), *a;
		/* a name, maybe args, nothing else */
		if (cfg_object(c, cp, NULL, 0, fields, want, err, errlen) < 0 ||
		    cfg_str(cJSON_GetObjectItemCaseSensitive(c, "name"), cp, "name", CFG_NONEMPTY, t->name, sizeof(t->name), want,
		            err, errlen) < 0)
			return -1;
		if (!args)
			continue;
		if (cfg_array(args, cp, "args", 0, 1, POLICY_MAX_ARGS, "conditions", err, errlen) < 0)
			return -1;
		cJSON_ArrayForEach(a, args) {
			char ap[CFG_PATH_MAX];
			cfg_path_idx(ap, sizeof(ap), cp, "args", t->nargs);
			if (parse_arg(a, &t->args[t->nargs++], ap, err, errlen) < 0)
				return -1;
		}
	}
	return 0;
}

/* "when": {"provider": ..., "key_owner": ..., "jwt_claim": ...}: globs each scope field must match */
int policy_parse_when(const cJSON *v, const char *path, const char *key, struct pattern_list when[SC_FIELDS],
                      struct pattern_list *claim, char *err, size_t errlen)
{
	char p[CFG_PATH_MAX];
	const cJSON *w;
	cfg_path(p, sizeof(p), path, key);
	if (cfg_object(v, p, NULL, 0, NULL, "expected an object like {\"provider\": \"openai\", \"key_owner\": \"team-*\"}",
	               err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(w, v) {
		int f = cfg_lookup(w->string, scope_names);
		if (f < 0)
			return cfg_unknown(err, errlen, p, w->string, "scope", scope_names);
		if (patterns(w, p, w->string, f == SC_FIELDS ? claim : &when[f], err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int parse_rule(const cJSON *o, struct policy_rule *r, int idx, char *err, size_t errlen)
{
	enum { K_ID, K_WHEN, K_SHADOW, K_MODELS, K_PROVIDERS, K_TOOLS, K_TOOL_CALLS, K_MAX_OUTPUT_TOKENS, K_MAX_MESSAGES,
	       K_MAX_BODY_BYTES, K_STREAM, K_REQUIRE_HEADERS, NKEYS };
	static const char *const keys[] = {
		"id", "when", "shadow", "models", "providers", "tools", "tool_calls", "max_output_tokens", "max_messages",
		"max_body_bytes", "stream", "require_headers", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	static const char want_id[] = "expected a name of letters, digits, '_', '-', '.' (it becomes the refusal's reason)";
	struct pattern_list *const allow[NKEYS] = {
		[K_MODELS] = &r->models_allow, [K_PROVIDERS] = &r->providers_allow, [K_TOOLS] = &r->tools_allow,
	};
	struct pattern_list *const deny[NKEYS] = {
		[K_MODELS] = &r->models_deny, [K_PROVIDERS] = &r->providers_deny, [K_TOOLS] = &r->tools_deny,
	};
	int64_t *const limits[NKEYS] = {
		[K_MAX_OUTPUT_TOKENS] = &r->max_output_tokens, [K_MAX_MESSAGES] = &r->max_messages,
		[K_MAX_BODY_BYTES] = &r->max_body_bytes,
	};
	char path[128];
	cfg_path_idx(path, sizeof(path), NULL, "rules", idx);
	memset(r, 0, sizeof(*r));
	r->stream = -1;
	if (cfg_object(o, path, NULL, 0, NULL, "expected an object like {\"id\": \"...\", \"models\": {\"allow\": [...]}}",
	               err, errlen) < 0)
		return -1;
	if (cfg_str(cJSON_GetObjectItemCaseSensitive(o, "id"), path, "id", CFG_NONEMPTY, r->id, sizeof(r->id), want_id, err,
	            errlen) < 0 ||
	    strspn(r->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(r->id))
		return cfg_fail(err, errlen, path, "id", "%s", want_id);
	snprintf(path, sizeof(path), "rules[%d] (\"%.60s\")", idx, r->id);
	int checks = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, o) {
		const char *k = it->string;
		int key = cfg_lookup(k, keys), rc = 0;
		bool on;
		unsigned require;
		switch (key) {
		case K_ID:
			break;
		case K_SHADOW:
			rc = cfg_bool(it, path, k, 0, &r->shadow, NULL, err, errlen);
			break;
		case K_WHEN:
			rc = policy_parse_when(it, path, k, r->when, &r->when_claim, err, errlen);
			break;
		case K_MODELS:
		case K_PROVIDERS:
		case K_TOOLS:
			rc = allow_deny(it, path, k, allow[key], deny[key], err, errlen);
			break;
		case K_TOOL_CALLS:
			rc = parse_calls(it, r, path, k, err, errlen);
			break;
		case K_MAX_OUTPUT_TOKENS:
		case K_MAX_MESSAGES:
		case K_MAX_BODY_BYTES:
			rc = limit(it, path, k, limits[key], err, errlen);
			break;
		case K_STREAM:
			if ((rc = cfg_bool(it, path, k, 0, &on, "expected true (allowed) or false (refused)", err, errlen)) == 0)
				r->stream = on;
			break;
		case K_REQUIRE_HEADERS:
			if ((rc = cfg_enum_set(it, path, k, 0, identity_field_names, &require, NULL, err, errlen)) == 0)
				r->require |= require;
			break;
		default:
			return cfg_unknown(err, errlen, path, k, "key", keys);
		}
		if (rc < 0)
			return -1;
		checks += key != K_ID && key != K_WHEN && key != K_SHADOW;
	}
	if (!checks)
		return cfg_fail(err, errlen, path, NULL,
		                "a rule needs at least one check (models, providers, tools, max_*, stream, require_headers)");
	return 0;
}

/* "trusted_data": {"id", "trusted_tools", "untrusted_tools", "default", "sensitive_tools", "shadow"} */
static int parse_trusted(const cJSON *o, struct trusted_cfg *t, char *err, size_t errlen)
{
	enum { K_ID, K_TRUSTED_TOOLS, K_UNTRUSTED_TOOLS, K_DEFAULT, K_UNTRUSTED_CONTENT, K_SENSITIVE_TOOLS, K_SHADOW, NKEYS };
	static const char *const keys[] = {
		"id", "trusted_tools", "untrusted_tools", "default", "untrusted_content", "sensitive_tools", "shadow", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	static const char *const defaults[] = { "trusted", "untrusted", NULL };   /* index: default_untrusted */
	struct pattern_list *const lists[NKEYS] = {
		[K_TRUSTED_TOOLS] = &t->trusted, [K_UNTRUSTED_TOOLS] = &t->untrusted,
		[K_UNTRUSTED_CONTENT] = &t->untrusted_content, [K_SENSITIVE_TOOLS] = &t->sensitive,
	};
	const cJSON *it;
	if (cfg_object(o, NULL, "trusted_data", 0, NULL,
	               "expected an object {\"untrusted_tools\": [...], \"sensitive_tools\": [...]}", err, errlen) < 0)
		return -1;
	snprintf(t->rule.id, sizeof(t->rule.id), "untrusted-data");
	cJSON_ArrayForEach(it, o) {
		const char *k = it->string;
		int rc, untrusted, key = cfg_lookup(k, keys);
		switch (key) {
		case K_TRUSTED_TOOLS:
		case K_UNTRUSTED_TOOLS:
		case K_UNTRUSTED_CONTENT:
		case K_SENSITIVE_TOOLS:
			rc = patterns(it, "trusted_data", k, lists[key], err, errlen);
			break;
		case K_DEFAULT:
			if ((rc = cfg_enum(it, "trusted_data", k, 0, defaults, &untrusted,
			                   "expected \"trusted\" or \"untrusted\" (for tools in neither list)", err, errlen)) == 0)
				t->default_untrusted = untrusted;
			break;
		case K_SHADOW:
			rc = cfg_bool(it, "trusted_data", k, 0, &t->rule.shadow, NULL, err, errlen);
			break;
		case K_ID:
			rc = cfg_str(it, "trusted_data", k, CFG_NONEMPTY, t->rule.id, sizeof(t->rule.id), NULL, err, errlen);
			break;
		default:
			return cfg_unknown(err, errlen, "trusted_data", k, "key", keys);
		}
		if (rc < 0)
			return -1;
	}
	if (!t->sensitive.n)
		return cfg_fail(err, errlen, "trusted_data", "sensitive_tools",
		                "required (the tools not to call after untrusted data)");
	t->enabled = true;
	return 0;
}

int policy_parse(const char *json, size_t len, struct policy *p, char *err, size_t errlen)
{
	enum { K_RULES, K_SHADOW, K_DLP, K_TRUSTED_DATA, K_DESCRIPTION, K_SCHEMA, K_BUDGETS, K_RATE_LIMITS, NKEYS };
	static const char *const keys[] = { "rules", "shadow", "dlp", "trusted_data", "description", "$schema",
		                             "budgets", "rate_limits", NULL };
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	memset(p, 0, sizeof(*p));
	cJSON *root = cfg_parse(json, len, 0, err, errlen);
	if (!root)
		return -1;
	int rc = -1;
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules"), *it;
	if (!cJSON_IsObject(root) || !cJSON_IsArray(rules)) {
		cfg_fail(err, errlen, "$", NULL, "expected {\"rules\": [...]} (see policy/schema.json)");
		goto out;
	}
	cJSON_ArrayForEach(it, root) {
		int r = 0;
		switch (cfg_lookup(it->string, keys)) {
		case K_RULES:       /* below, once the rest is read */
		case K_DESCRIPTION: /* for people */
		case K_SCHEMA:
			break;
		case K_SHADOW:
			r = cfg_bool(it, NULL, it->string, 0, &p->shadow, NULL, err, errlen);
			break;
		case K_TRUSTED_DATA:
			r = parse_trusted(it, &p->trusted, err, errlen);
			break;
		case K_DLP:
			r = dlp_parse(&p->dlp, it, err, errlen);
			break;
		case K_BUDGETS:
		case K_RATE_LIMITS:
			if (!p->budgets && !(p->budgets = calloc(1, sizeof(*p->budgets)))) {
				r = cfg_fail(err, errlen, NULL, it->string, "out of memory");
				break;
			}
			r = budget_parse(it, cfg_lookup(it->string, keys) == K_BUDGETS ? BK_BUDGET : BK_RATE, p->budgets, err,
			                 errlen);
			break;
		default:
			r = cfg_unknown(err, errlen, NULL, it->string, "key", keys);
		}
		if (r < 0)
			goto out;
	}
	if (cfg_array(rules, NULL, "rules", 0, 0, POLICY_MAX_RULES, "rules", err, errlen) < 0)
		goto out;
	int n = cJSON_GetArraySize(rules);
	p->rules = calloc((size_t)(n ? n : 1), sizeof(*p->rules));
	if (!p->rules) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach(it, rules) {
		if (parse_rule(it, &p->rules[p->n], p->n, err, errlen) < 0) {
			p->n++; /* so policy_free releases what the rule holds */
			goto out;
		}
		p->has_tool_calls |= p->rules[p->n].ncalls > 0;
		for (int i = 0; i < p->n; i++)
			if (strcmp(p->rules[i].id, p->rules[p->n].id) == 0) {
				char path[32];
				cfg_fail(err, errlen, cfg_path_idx(path, sizeof(path), NULL, "rules", p->n), "id",
				         "\"%s\" is already the id of rules[%d]", p->rules[i].id, i);
				p->n++; /* so policy_free releases what the rule holds */
				goto out;
			}
		p->n++;
	}
	p->has_tool_calls |= p->trusted.enabled;
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc < 0)
		policy_free(p);
	return rc;
}

void policy_free(struct policy *p)
{
	for (int i = 0; p->rules && i < p->n; i++) {
		struct policy_rule *r = &p->rules[i];
		for (int c = 0; c < r->ncalls; c++)
			for (int a = 0; a < r->calls[c].nargs; a++)
				if (r->calls[c].args[a].re) {
					regfree(r->calls[c].args[a].re);
					free(r->calls[c].args[a].re);
				}
		free(r->calls);
	}
	free(p->rules);
	p->rules = NULL;
	p->n = 0;
	dlp_free(&p->dlp);
	if (p->budgets) {
		budget_set_free(p->budgets);
		free(p->budgets);
		p->budgets = NULL;
	}
}

static bool any_match(const struct pattern_list *l, struct spop_slice v)
{
	for (int i = 0; i < l->n; i++)
		if (glob_match(l->p[i], v.ptr, v.len))
			return true;
	return false;
}

/* Fills why and returns true when the rule's checks fail. */
static bool violates(const struct policy_rule *r, const struct policy_input *in, char *why, size_t room)
{
	struct spop_slice model = in->v[SC_MODEL], prov = in->v[SC_PROVIDER];
	int ml = (int)(model.len > 64 ? 64 : model.len);
	if ((r->models_allow.n && !any_match(&r->models_allow, model)) || any_match(&r->models_deny, model) ||
	    (r->models_deny.n && in->model_unnamed)) {
		if (model.len)
			snprintf(why, room, "the model %.*s is not allowed", ml, model.ptr);
		else
			snprintf(why, room, "the request names no model and models are restricted");
		return true;
	}
	if ((r->providers_allow.n && !any_match(&r->providers_allow, prov)) || any_match(&r->providers_deny, prov)) {
		snprintf(why, room, "the provider %.*s is not allowed", (int)(prov.len > 32 ? 32 : prov.len), prov.ptr);
		return true;
	}
	if (r->tools_allow.n || r->tools_deny.n) {
		if (in->tools_truncated) {
			snprintf(why, room, "the request offers more than %d tools", POLICY_MAX_TOOLS);
			return true;
		}
		if (in->tools_unknown) {
			snprintf(why, room, "the request's tools are not all in it (a stored prompt or cached content)");
			return true;
		}
		for (int i = 0; i < in->ntools; i++)
			if ((r->tools_allow.n && !any_match(&r->tools_allow, in->tools[i])) || any_match(&r->tools_deny, in->tools[i])) {
				snprintf(why, room, "the tool %.*s may not be offered to the model",
				         (int)(in->tools[i].len > 64 ? 64 : in->tools[i].len), in->tools[i].ptr);
				return true;
			}
	}
	if (r->max_output_tokens && in->output_tokens > r->max_output_tokens) {
		snprintf(why, room, "at most %lld output tokens may be asked for (got %lld)", (long long)r->max_output_tokens,
		         (long long)in->output_tokens);
		return true;
	}
	if (r->max_messages && in->messages > r->max_messages) {
		snprintf(why, room, "at most %lld messages per request (got %lld)", (long long)r->max_messages,
		         (long long)in->messages);
		return true;
	}
	if (r->max_body_bytes && in->body_bytes > r->max_body_bytes) {
		snprintf(why, room, "the request body may have at most %lld bytes", (long long)r->max_body_bytes);
		return true;
	}
	if (r->stream == 0 && in->stream) {
		snprintf(why, room, "streaming responses are not allowed");
		return true;
	}
	for (int f = 0; f < ID_FIELDS; f++)
		if ((r->require & (1u << f)) && (!in->id || in->id->v[f].len == 0)) {
			static const char *const hdr[ID_FIELDS] = { "X-Archestra-Agent-Id", "X-Archestra-User-Id",
			                                            "X-Archestra-Session-Id", "X-Archestra-Execution-Id" };
			snprintf(why, room, "the request must name its %s (%s)", identity_field_name((enum id_field)f), hdr[f]);
			return true;
		}
	return false;
}

/* The argument at `path` as text (strings decoded) into buf: its length, -1 when
 * absent, -2 when it is there but longer than buf holds. */
static long arg_text(struct spop_slice args, const char *path, char *buf, size_t room)
{
	struct json_val v;
	if (!json_get_path(args, path, &v))
		return -1;
	if (v.kind == JSON_STRING) {
		long n = json_string_decode(&v, buf, room);
		return n < 0 ? -2 : n;
	}
	if (v.raw.len >= room)
		return -2;
	memcpy(buf, v.raw.ptr, v.raw.len);
	buf[v.raw.len] = '\0';
	return (long)v.raw.len;
}

static bool call_matches(const struct tool_call_rule *t, const struct tool_call *c)
{
	if (!glob_match(t->name, c->name.ptr, c->name.len))
		return false;
	for (int i = 0; i < t->nargs; i++) {
		const struct arg_cond *a = &t->args[i];
		char val[4096];
		long n = arg_text(c->args, a->path, val, sizeof(val));
		if (n == -1)
			return false; /* a condition on an argument that is not there does not hold */
		if (n == -2)
			continue;     /* one too long to read is not waved through: it holds */
		/* the decoded length, not strlen: a \u0000 must not hide the rest */
		struct spop_slice v = { (const uint8_t *)val, (size_t)n };
		regmatch_t whole = { 0, (regoff_t)n };
		bool hold;
		switch (a->op) {
		case ARG_EQUALS: hold = (size_t)n == strlen(a->value) && memcmp(val, a->value, (size_t)n) == 0; break;
		case ARG_GLOB: hold = glob_match_exact(a->value, v.ptr, v.len); break;
		case ARG_REGEX: hold = regexec(a->re, val, 1, &whole, REG_STARTEND) == 0; break;
		default: hold = !any_match(&a->not_in, v); break;
		}
		if (!hold)
			return false;
	}
	return true;
}

bool policy_when_match(const struct pattern_list when[SC_FIELDS], const struct pattern_list *claim,
                       const struct policy_input *in)
{
	for (int f = 0; f < SC_FIELDS; f++)
		if (when[f].n && !any_match(&when[f], in->v[f]))
			return false;
	if (claim->n) {
		for (int i = 0; i < in->nclaims; i++)
			if (any_match(claim, (struct spop_slice){ (const uint8_t *)in->claims[i], strlen(in->claims[i]) }))
				return true;
		return false; /* no token, or none of its values */
	}
	return true;
}

static bool in_scope(const struct policy_rule *r, const struct policy_input *in)
{
	return policy_when_match(r->when, &r->when_claim, in);
}

void policy_eval_calls(const struct policy *p, const struct policy_input *in, const struct tool_call *calls, int n,
                       struct policy_result *res)
{
	memset(res, 0, sizeof(*res));
	for (int i = 0; p && i < p->n; i++) {
		const struct policy_rule *r = &p->rules[i];
		if (!r->ncalls || !in_scope(r, in))
			continue;
		for (int c = 0; c < n; c++) {
			int k;
			for (k = 0; k < r->ncalls; k++)
				if (call_matches(&r->calls[k], &calls[c]))
					break;
			if (k == r->ncalls)
				continue;
			if (r->shadow || p->shadow) {
				if (res->nshadow < POLICY_MAX_SHADOW)
					res->shadow[res->nshadow++] = r;
				break;
			}
			res->deny = r;
			snprintf(res->why, sizeof(res->why), "the model's call to the tool %.*s is blocked",
			         (int)(calls[c].name.len > 64 ? 64 : calls[c].name.len), calls[c].name.ptr);
			return;
		}
	}
	/* After the rules: no sensitive tool once the conversation carries untrusted data. */
	const struct trusted_cfg *t = p ? &p->trusted : NULL;
	if (!t || !t->enabled || !in->untrusted)
		return;
	for (int c = 0; c < n; c++) {
		if (!any_match(&t->sensitive, calls[c].name))
			continue;
		if (t->rule.shadow || p->shadow) {
			if (res->nshadow < POLICY_MAX_SHADOW)
				res->shadow[res->nshadow++] = &t->rule;
			return;
		}
		res->deny = &t->rule;
		snprintf(res->why, sizeof(res->why), "the tool %.*s may not be called after untrusted data entered the conversation",
		         (int)(calls[c].name.len > 64 ? 64 : calls[c].name.len), calls[c].name.ptr);
		return;
	}
}

/* Does the request offer a tool that one of the globs could match? A model calls
 * only tools its request declares; more tools than were read count as a match. */
static bool offers(const struct policy_input *in, const char *glob)
{
	if (in->tools_truncated || in->tools_unknown)
		return true;
	for (int i = 0; i < in->ntools; i++)
		if (glob_match(glob, in->tools[i].ptr, in->tools[i].len))
			return true;
	return false;
}

static bool rule_may_fire(const struct policy_rule *r, const struct policy_input *in)
{
	for (int k = 0; k < r->ncalls; k++)
		if (offers(in, r->calls[k].name))
			return true;
	return false;
}

int policy_calls_apply(const struct policy *p, const struct policy_input *in)
{
	int r = 0;
	for (int i = 0; p && i < p->n; i++) {
		const struct policy_rule *rule = &p->rules[i];
		if (!rule->ncalls || !in_scope(rule, in) || !rule_may_fire(rule, in))
			continue;
		if (!rule->shadow && !p->shadow)
			return 2;
		r = 1;
	}
	const struct trusted_cfg *t = p ? &p->trusted : NULL;
	if (t && t->enabled && in->untrusted) {
		bool fire = false;
		for (int k = 0; k < t->sensitive.n && !fire; k++)
			fire = offers(in, t->sensitive.p[k]);
		if (fire)
			return t->rule.shadow || p->shadow ? (r ? r : 1) : 2;
	}
	return r;
}

bool policy_tool_trusted(const struct policy *p, struct spop_slice tool, struct spop_slice content)
{
	const struct trusted_cfg *t = &p->trusted;
	if (t->untrusted_content.n && any_match(&t->untrusted_content, content))
		return false;
	if (tool.len && any_match(&t->untrusted, tool))
		return false;
	if (tool.len && any_match(&t->trusted, tool))
		return true;
	return !t->default_untrusted && tool.len; /* a result we cannot name is not trusted */
}

void policy_eval(const struct policy *p, const struct policy_input *in, struct policy_result *res)
{
	memset(res, 0, sizeof(*res));
	for (int i = 0; p && i < p->n; i++) {
		const struct policy_rule *r = &p->rules[i];
		char why[sizeof(res->why)];
		if (!in_scope(r, in) || !violates(r, in, why, sizeof(why)))
			continue;
		if (r->shadow || p->shadow) {
			if (res->nshadow < POLICY_MAX_SHADOW)
				res->shadow[res->nshadow++] = r;
			continue;
		}
		res->deny = r;
		memcpy(res->why, why, sizeof(why));
		return; /* the first deny wins */
	}
}
