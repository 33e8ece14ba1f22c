/* policy.c: see policy.h. */
#include "policy.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"
#include "jsonscan.h"

#include <regex.h>

static const char *const scope_names[SC_FIELDS] = {
	"provider", "model", "key_id", "key_owner", "agent_id", "user_id",
};

static int patterns(const cJSON *v, struct pattern_list *out, const char *path, char *err, size_t errlen)
{
	const cJSON *it;
	memset(out, 0, sizeof(*out));
	if (cJSON_IsString(v)) {
		if (!v->valuestring[0] || strlen(v->valuestring) >= sizeof(out->p[0]))
			goto bad;
		strcpy(out->p[0], v->valuestring);
		out->n = 1;
		return 0;
	}
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > POLICY_MAX_PATTERNS)
		goto bad;
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= sizeof(out->p[0]))
			goto bad;
		strcpy(out->p[out->n++], it->valuestring);
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: expected a pattern or a list of 1 to %d patterns like [\"gpt-4o*\"] (63 bytes at most)",
	         path, POLICY_MAX_PATTERNS);
	return -1;
}

static int allow_deny(const cJSON *v, struct pattern_list *allow, struct pattern_list *deny, const char *path, char *err,
                      size_t errlen)
{
	char p[160];
	const cJSON *it;
	if (!cJSON_IsObject(v)) {
		snprintf(err, errlen, "%s: expected {\"allow\": [...]} and/or {\"deny\": [...]}", path);
		return -1;
	}
	cJSON_ArrayForEach(it, v) {
		snprintf(p, sizeof(p), "%s.%s", path, it->string);
		if (strcmp(it->string, "allow") == 0) {
			if (patterns(it, allow, p, err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "deny") == 0) {
			if (patterns(it, deny, p, err, errlen) < 0)
				return -1;
		} else {
			snprintf(err, errlen, "%s: unknown key (allow or deny)", p);
			return -1;
		}
	}
	return 0;
}

static int limit(const cJSON *v, int64_t *out, const char *path, char *err, size_t errlen)
{
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e12 || v->valuedouble != (double)(int64_t)v->valuedouble) {
		snprintf(err, errlen, "%s: expected a positive whole number", path);
		return -1;
	}
	*out = (int64_t)v->valuedouble;
	return 0;
}

/* "tool_calls": [{"name": "send_email", "args": [{"path": "to", "not_in": ["*@corp.example"]}]}] */
static int parse_calls(const cJSON *v, struct policy_rule *r, const char *path, char *err, size_t errlen)
{
	const cJSON *c;
	int n = cJSON_GetArraySize(v);
	if (r->calls) { /* a second "tool_calls" in the rule would write past the first's array */
		snprintf(err, errlen, "%s: given twice", path);
		return -1;
	}
	if (!cJSON_IsArray(v) || n < 1 || n > 16) {
		snprintf(err, errlen, "%s: expected a list of 1 to 16 {\"name\": ..., \"args\": [...]}", path);
		return -1;
	}
	r->calls = calloc((size_t)n, sizeof(*r->calls));
	if (!r->calls) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(c, v) {
		char cp[256];
		snprintf(cp, sizeof(cp), "%.200s[%d]", path, r->ncalls);
		struct tool_call_rule *t = &r->calls[r->ncalls++];
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name"), *args = cJSON_GetObjectItemCaseSensitive(c, "args"), *a;
		if (!cJSON_IsObject(c) || !cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) >= sizeof(t->name) ||
		    cJSON_GetArraySize(c) != (args ? 2 : 1)) {
			snprintf(err, errlen, "%s: expected {\"name\": \"tool glob\"} with optional \"args\"", cp);
			return -1;
		}
		strcpy(t->name, name->valuestring);
		if (!args)
			continue;
		if (!cJSON_IsArray(args) || cJSON_GetArraySize(args) < 1 || cJSON_GetArraySize(args) > POLICY_MAX_ARGS) {
			snprintf(err, errlen, "%s.args: expected a list of 1 to %d conditions", cp, POLICY_MAX_ARGS);
			return -1;
		}
		cJSON_ArrayForEach(a, args) {
			char ap[300];
			snprintf(ap, sizeof(ap), "%.256s.args[%d]", cp, t->nargs);
			struct arg_cond *ac = &t->args[t->nargs++];
			const cJSON *pth = cJSON_GetObjectItemCaseSensitive(a, "path");
			if (!cJSON_IsObject(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsString(pth) || !pth->valuestring[0] ||
			    strlen(pth->valuestring) >= sizeof(ac->path)) {
				snprintf(err, errlen, "%s: expected {\"path\": \"arg.path\", and one of equals, glob, regex, not_in}", ap);
				return -1;
			}
			strcpy(ac->path, pth->valuestring);
			const cJSON *op = a->child == pth ? pth->next : a->child; /* the member that is not "path" */
			static const char *const ops[] = { "equals", "glob", "regex", "not_in" };
			int k;
			for (k = 0; k < 4; k++)
				if (strcmp(op->string, ops[k]) == 0)
					break;
			if (k == 4) {
				snprintf(err, errlen, "%s.%s: unknown condition (equals, glob, regex, not_in)", ap, op->string);
				return -1;
			}
			ac->op = (enum arg_op)k;
			if (ac->op == ARG_NOT_IN) {
				char lp[320];
				snprintf(lp, sizeof(lp), "%.300s.not_in", ap);
				if (patterns(op, &ac->not_in, lp, err, errlen) < 0)
					return -1;
				continue;
			}
			if (!cJSON_IsString(op) || strlen(op->valuestring) >= sizeof(ac->value)) {
				snprintf(err, errlen, "%s.%s: expected a string of at most %zu bytes", ap, op->string, sizeof(ac->value) - 1);
				return -1;
			}
			strcpy(ac->value, op->valuestring);
			if (ac->op == ARG_REGEX) {
				regex_t *re = calloc(1, sizeof(*re));
				if (!re || regcomp(re, ac->value, REG_EXTENDED | REG_NOSUB) != 0) {
					free(re);
					snprintf(err, errlen, "%s.regex: not a valid POSIX extended regular expression", ap);
					return -1;
				}
				ac->re = re;
			}
		}
	}
	return 0;
}

static int parse_rule(const cJSON *o, struct policy_rule *r, int idx, char *err, size_t errlen)
{
	char path[128], p[200];
	snprintf(path, sizeof(path), "rules[%d]", idx);
	memset(r, 0, sizeof(*r));
	r->stream = -1;
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "%s: expected an object like {\"id\": \"...\", \"models\": {\"allow\": [...]}}", path);
		return -1;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id"), *it;
	if (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= sizeof(r->id) ||
	    strspn(id->valuestring, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(id->valuestring)) {
		snprintf(err, errlen, "%s.id: expected a name of letters, digits, '_', '-', '.' (it becomes the refusal's reason)", path);
		return -1;
	}
	strcpy(r->id, id->valuestring);
	snprintf(path, sizeof(path), "rules[%d] (\"%.60s\")", idx, r->id);
	int checks = 0;
	cJSON_ArrayForEach(it, o) {
		const char *k = it->string;
		snprintf(p, sizeof(p), "%s.%s", path, k);
		if (strcmp(k, "id") == 0) {
			continue;
		} else if (strcmp(k, "shadow") == 0) {
			if (!cJSON_IsBool(it)) {
				snprintf(err, errlen, "%s: expected true or false", p);
				return -1;
			}
			r->shadow = cJSON_IsTrue(it);
		} else if (strcmp(k, "when") == 0) {
			const cJSON *w;
			if (!cJSON_IsObject(it)) {
				snprintf(err, errlen, "%s: expected an object like {\"provider\": \"openai\", \"key_owner\": \"team-*\"}", p);
				return -1;
			}
			cJSON_ArrayForEach(w, it) {
				int f;
				for (f = 0; f < SC_FIELDS; f++)
					if (strcmp(w->string, scope_names[f]) == 0)
						break;
				char wp[260];
				snprintf(wp, sizeof(wp), "%s.%s", p, w->string);
				if (f == SC_FIELDS && strcmp(w->string, "jwt_claim") == 0) {
					if (patterns(w, &r->when_claim, wp, err, errlen) < 0)
						return -1;
					continue;
				}
				if (f == SC_FIELDS) {
					snprintf(err, errlen, "%s: unknown scope (provider, model, key_id, key_owner, agent_id, user_id, "
					         "jwt_claim)", wp);
					return -1;
				}
				if (patterns(w, &r->when[f], wp, err, errlen) < 0)
					return -1;
			}
		} else if (strcmp(k, "models") == 0) {
			if (allow_deny(it, &r->models_allow, &r->models_deny, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "tool_calls") == 0) {
			if (parse_calls(it, r, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "tools") == 0) {
			if (allow_deny(it, &r->tools_allow, &r->tools_deny, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "providers") == 0) {
			if (allow_deny(it, &r->providers_allow, &r->providers_deny, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "max_output_tokens") == 0) {
			if (limit(it, &r->max_output_tokens, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "max_messages") == 0) {
			if (limit(it, &r->max_messages, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "max_body_bytes") == 0) {
			if (limit(it, &r->max_body_bytes, p, err, errlen) < 0)
				return -1;
			checks++;
		} else if (strcmp(k, "stream") == 0) {
			if (!cJSON_IsBool(it)) {
				snprintf(err, errlen, "%s: expected true (allowed) or false (refused)", p);
				return -1;
			}
			r->stream = cJSON_IsTrue(it);
			checks++;
		} else if (strcmp(k, "require_headers") == 0) {
			const cJSON *h;
			if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) == 0) {
				snprintf(err, errlen, "%s: expected a list of agent_id, user_id, session_id, execution_id", p);
				return -1;
			}
			cJSON_ArrayForEach(h, it) {
				int f;
				for (f = 0; f < ID_FIELDS; f++)
					if (cJSON_IsString(h) && strcmp(h->valuestring, identity_field_name((enum id_field)f)) == 0)
						break;
				if (f == ID_FIELDS) {
					snprintf(err, errlen, "%s: expected a list of agent_id, user_id, session_id, execution_id", p);
					return -1;
				}
				r->require |= 1u << f;
			}
			checks++;
		} else {
			snprintf(err, errlen,
			         "%s: unknown key (known: id, when, shadow, models, providers, tools, tool_calls, max_output_tokens, max_messages, max_body_bytes, stream, require_headers)",
			         p);
			return -1;
		}
	}
	if (!checks) {
		snprintf(err, errlen, "%s: a rule needs at least one check (models, providers, tools, max_*, stream, require_headers)",
		         path);
		return -1;
	}
	return 0;
}

/* "trusted_data": {"id", "trusted_tools", "untrusted_tools", "default", "sensitive_tools", "shadow"} */
static int parse_trusted(const cJSON *o, struct trusted_cfg *t, char *err, size_t errlen)
{
	const cJSON *it;
	if (!cJSON_IsObject(o)) {
		snprintf(err, errlen, "trusted_data: expected an object {\"untrusted_tools\": [...], \"sensitive_tools\": [...]}");
		return -1;
	}
	snprintf(t->rule.id, sizeof(t->rule.id), "untrusted-data");
	cJSON_ArrayForEach(it, o) {
		char path[96];
		snprintf(path, sizeof(path), "trusted_data.%.40s", it->string);
		if (strcmp(it->string, "trusted_tools") == 0) {
			if (patterns(it, &t->trusted, path, err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "untrusted_tools") == 0) {
			if (patterns(it, &t->untrusted, path, err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "untrusted_content") == 0) {
			if (patterns(it, &t->untrusted_content, path, err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "sensitive_tools") == 0) {
			if (patterns(it, &t->sensitive, path, err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "default") == 0 && cJSON_IsString(it) &&
		           (strcmp(it->valuestring, "trusted") == 0 || strcmp(it->valuestring, "untrusted") == 0)) {
			t->default_untrusted = strcmp(it->valuestring, "untrusted") == 0;
		} else if (strcmp(it->string, "shadow") == 0 && cJSON_IsBool(it)) {
			t->rule.shadow = cJSON_IsTrue(it);
		} else if (strcmp(it->string, "id") == 0 && cJSON_IsString(it) && it->valuestring[0] &&
		           strlen(it->valuestring) < sizeof(t->rule.id)) {
			snprintf(t->rule.id, sizeof(t->rule.id), "%s", it->valuestring);
		} else if (strcmp(it->string, "default") == 0) {
			snprintf(err, errlen, "%s: expected \"trusted\" or \"untrusted\" (for tools in neither list)", path);
			return -1;
		} else {
			snprintf(err, errlen, "%s: unknown key or bad value (known: id, trusted_tools, untrusted_tools, default, "
			         "untrusted_content, sensitive_tools, shadow)", path);
			return -1;
		}
	}
	if (!t->sensitive.n) {
		snprintf(err, errlen, "trusted_data.sensitive_tools: required (the tools not to call after untrusted data)");
		return -1;
	}
	t->enabled = true;
	return 0;
}

int policy_parse(const char *json, size_t len, struct policy *p, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		size_t at = end && end >= json ? (size_t)(end - json) : 0, line = 1;
		for (size_t i = 0; i < at && i < len; i++)
			line += json[i] == '\n';
		snprintf(err, errlen, "not valid JSON (line %zu)", line);
		return -1;
	}
	int rc = -1;
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules"), *it;
	if (!cJSON_IsObject(root) || !cJSON_IsArray(rules)) {
		snprintf(err, errlen, "$: expected {\"rules\": [...]} (see policy/schema.json)");
		goto out;
	}
	cJSON_ArrayForEach(it, root) {
		if (strcmp(it->string, "rules") == 0 || strcmp(it->string, "$schema") == 0 || strcmp(it->string, "description") == 0)
			continue;
		if (strcmp(it->string, "shadow") == 0 && cJSON_IsBool(it)) {
			p->shadow = cJSON_IsTrue(it);
			continue;
		}
		if (strcmp(it->string, "trusted_data") == 0) {
			if (parse_trusted(it, &p->trusted, err, errlen) < 0)
				goto out;
			continue;
		}
		if (strcmp(it->string, "dlp") == 0) {
			if (dlp_parse(&p->dlp, it, err, errlen) < 0)
				goto out;
			continue;
		}
		snprintf(err, errlen, "%s: unknown key (known: rules, shadow, dlp, trusted_data, description)", it->string);
		goto out;
	}
	int n = cJSON_GetArraySize(rules);
	if (n > POLICY_MAX_RULES) {
		snprintf(err, errlen, "rules: at most %d rules", POLICY_MAX_RULES);
		goto out;
	}
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
				snprintf(err, errlen, "rules[%d].id: \"%s\" is already the id of rules[%d]", p->n, p->rules[i].id, i);
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

static bool in_scope(const struct policy_rule *r, const struct policy_input *in)
{
	for (int f = 0; f < SC_FIELDS; f++)
		if (r->when[f].n && !any_match(&r->when[f], in->v[f]))
			return false;
	if (r->when_claim.n) {
		for (int i = 0; i < in->nclaims; i++)
			if (any_match(&r->when_claim, (struct spop_slice){ (const uint8_t *)in->claims[i], strlen(in->claims[i]) }))
				return true;
		return false; /* no token, or none of its values */
	}
	return true;
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
