/* request.c: see request.h. */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "fasthash.h"
#include "glob.h"
#include "hdrs.h"
#include "jsonscan.h"
#include "provider.h"
#include "sigv4.h"

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
			} else if ((where & CRED_API_KEY) && SLICE_IEQ(name, "api-key")) {
				if (!note_cred(val, CRED_API_KEY, value, found_at, &n))
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
	if (where & CRED_API_KEY)
		return "an api-key header";
	return "an Authorization: Bearer header";
}

/* ---- scratch ---- */

static bool grow(char **buf, size_t *cap, size_t want, size_t unit)
{
	if (*cap >= want)
		return true;
	size_t n = want + want / 2;
	void *p = realloc(*buf, n * unit);
	if (!p)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

bool read_scratch_fit(struct read_scratch *s, size_t body_len, size_t extra)
{
	s->arena.used = s->text.used = 0;
	char *k = (char *)s->keys.k;
	bool ok = grow(&s->arena.buf, &s->arena.cap, body_len + extra, 1) &&
	          grow(&s->text.buf, &s->text.cap, body_len + body_len / 4 + 16, 1) && /* + a separator per string */
	          grow(&k, &s->keys.cap, body_len / 4 + 2, sizeof(struct json_key));
	s->keys.k = (struct json_key *)(void *)k;
	return ok;
}

void read_scratch_free(struct read_scratch *s)
{
	free(s->arena.buf);
	free(s->text.buf);
	free(s->keys.k);
	memset(s, 0, sizeof(*s));
}

/* The path as the provider will resolve it, or NULL and why not. Percent escapes
 * of unreserved characters, ':' and '@' are decoded (the same path to any server);
 * every other escape, dot segments, empty segments, backslashes, ';' and bytes
 * outside printable ASCII are refused, since servers and proxies disagree on them. */
static const char *normalize_path(struct spop_slice in, struct json_arena *a, struct spop_slice *out)
{
	if (in.len == 0 || in.ptr[0] != '/')
		return "it does not start with '/'";
	bool pct = memchr(in.ptr, '%', in.len) != NULL;
	char *d = a->buf + a->used;
	size_t o = 0;
	if (pct && a->cap - a->used < in.len)
		return "it is too long";
	for (size_t i = 0; i < in.len; i++) {
		uint8_t c = in.ptr[i];
		if (c == '%') {
			int hi = i + 2 < in.len ? hex_value(in.ptr[i + 1]) : -1, lo = hi >= 0 ? hex_value(in.ptr[i + 2]) : -1;
			if (lo < 0)
				return "it has a malformed percent escape";
			c = (uint8_t)(hi << 4 | lo);
			if (!uri_unreserved(c) && c != ':' && c != '@')
				return "it has a percent escape of a character that must stay literal ('/', '.', '%', ...)";
			if (c == '.')
				return "it has an escaped dot";
			i += 2;
		} else if (c <= 0x20 || c >= 0x7f || c == '\\' || c == ';' || c == '"' || c == '<' || c == '>' || c == '`' ||
		           c == '{' || c == '}' || c == '|' || c == '^' || c == '#' || c == '?') {
			return "it has a character that is not allowed in a path";
		}
		if (pct)
			d[o] = (char)c;
		o++;
	}
	const uint8_t *p = pct ? (const uint8_t *)d : in.ptr;
	/* segments: none empty (no "//", no trailing '/'), none "." or ".."; "/" alone is a path */
	for (size_t i = 0; i < o && o > 1;) {
		size_t j = i + 1;
		while (j < o && p[j] != '/')
			j++;
		size_t n = j - i - 1;
		if (n == 0)
			return "it has an empty segment ('//' or a trailing '/')";
		if ((n == 1 && p[i + 1] == '.') || (n == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
			return "it has a '.' or '..' segment";
		i = j;
	}
	if (pct)
		a->used += o;
	*out = (struct spop_slice){ p, o };
	return NULL;
}

/* The query to forward: as sent, except that when the gateway substitutes its own
 * key, every parameter named "key" (in any case or escape) leaves. */
static struct spop_slice forward_query(struct spop_slice q, bool drop_keys, struct json_arena *a)
{
	if (!drop_keys)
		return q;
	char *d = a->buf + a->used;
	size_t o = 0;
	const uint8_t *p = q.ptr, *end = q.ptr + q.len;
	while (p < end) {
		const uint8_t *amp = memchr(p, '&', (size_t)(end - p)), *pe = amp ? amp : end;
		const uint8_t *eq = memchr(p, '=', (size_t)(pe - p)), *ne = eq ? eq : pe;
		char name[4];
		size_t nl = 0;
		bool is_key = true;
		for (const uint8_t *s = p; s < ne && is_key; s++) {
			int ch = *s;
			if (ch == '%' && ne - s > 2 && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
				ch = hex_value(s[1]) << 4 | hex_value(s[2]);
				s += 2;
			} else if (ch == '+') {
				ch = ' ';
			}
			if (nl == 3)
				is_key = false;
			else
				name[nl++] = (char)(ch | 0x20);
		}
		if (!(is_key && nl == 3 && memcmp(name, "key", 3) == 0) && pe > p) {
			if (o)
				d[o++] = '&';
			memcpy(d + o, p, (size_t)(pe - p));
			o += (size_t)(pe - p);
		}
		p = amp ? amp + 1 : end;
	}
	a->used += o;
	return (struct spop_slice){ (const uint8_t *)d, o };
}

/* The credential's owner with every byte outside the identity set as %XX, so it is
 * as safe as a header value in logs, tags and the call context. */
static struct spop_slice safe_owner(struct spop_slice v, struct json_arena *a)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = v.len > IDENTITY_MAX_LEN ? IDENTITY_MAX_LEN : v.len;
	if (a->cap - a->used < 3 * n)
		return (struct spop_slice){ NULL, 0 };
	char *d = a->buf + a->used;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v.ptr[i];
		if (identity_char_ok(c)) {
			d[o++] = (char)c;
		} else {
			d[o++] = '%';
			d[o++] = hex[c >> 4];
			d[o++] = hex[c & 15];
		}
	}
	a->used += o;
	return (struct spop_slice){ (const uint8_t *)d, o };
}

static void refuse(struct req_decision *d, int status, const char *reason, const char *msg, const char *tail)
{
	d->status = status;
	d->reason = reason;
	snprintf(d->message, sizeof(d->message), "archestra: %s%s", msg, tail ? tail : "");
}

/* Gemini names the model in the path: .../models/{model}:{method}. */
/* The model a path names after marker ("/models/gemini-2.0-flash:generateContent",
 * "/openai/deployments/prod-4o/chat/completions"), and whether it streams. */
static void model_from_path(const struct provider *prov, struct spop_slice rest, struct req_decision *d)
{
	const char *marker = prov->model_path, *stop = prov->model_path_end[0] ? prov->model_path_end : "/";
	const uint8_t *p = rest.ptr, *end = rest.ptr + rest.len;
	size_t ml = strlen(marker);
	for (; p + ml <= end; p++) {
		if (memcmp(p, marker, ml) != 0)
			continue;
		const uint8_t *m = p + ml, *e = m;
		while (e < end && !strchr(stop, *e))
			e++;
		d->model = (struct spop_slice){ m, (size_t)(e - m) };
		/* Gemini streams by action, Bedrock by endpoint */
		d->stream = (e + 22 <= end && memcmp(e, ":streamGenerateContent", 22) == 0) ||
		            (end - e == 16 && memcmp(e, "/converse-stream", 16) == 0) ||
		            (end - e == 28 && memcmp(e, "/invoke-with-response-stream", 28) == 0);
		break;
	}
	/* SDKs escape what a path may not hold ("v1%3A0" for Bedrock's "v1:0"): the model
	 * is the decoded name; an escape that is not one stays and fails model_ok */
	if (!d->model.ptr || !memchr(d->model.ptr, '%', d->model.len) || d->model.len >= sizeof(d->path_model))
		return;
	size_t o = 0;
	for (size_t i = 0; i < d->model.len; i++) {
		const uint8_t *c = d->model.ptr + i;
		int hi = i + 2 < d->model.len ? hex_value(c[1]) : -1, lo = hi >= 0 ? hex_value(c[2]) : -1;
		if (*c == '%' && hi >= 0 && lo >= 0) {
			d->path_model[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			d->path_model[o++] = (char)*c;
		}
	}
	d->model = (struct spop_slice){ (const uint8_t *)d->path_model, o };
}

/* Where the reading of a body puts what it decodes, and what it found wrong. */
struct reader {
	struct json_arena *arena;
	const char *bad;               /* why the body is refused (400 invalid_field), or NULL */
};

static void invalid(struct reader *rd, const char *why)
{
	if (!rd->bad)
		rd->bad = why; /* the first problem is the one reported */
}

/* A string the agent compares (a name, an id, a role), decoded. */
static bool text_of(struct reader *rd, const struct json_val *v, struct spop_slice *out)
{
	if (json_as_string(v, rd->arena, out))
		return true;
	out->ptr = NULL;
	out->len = 0;
	return false;
}

static void add_tool(struct reader *rd, const struct json_val *name, struct req_decision *d)
{
	struct spop_slice s;
	if (name->kind == JSON_NULL)
		return;
	if (!text_of(rd, name, &s)) {
		invalid(rd, "a tool's name must be a string");
		return;
	}
	if (d->ntools == POLICY_MAX_TOOLS)
		d->tools_truncated = true;
	else
		d->tools[d->ntools++] = s;
}

/* Tool names as each provider declares them: OpenAI tools[].function.name,
 * tools[].custom.name and functions[].name (the Responses API's tools[].name), a
 * built-in tool by its type, Anthropic tools[].name,
 * Gemini tools[].functionDeclarations[].name (or function_declarations: its JSON
 * mapping accepts both spellings). */
static void collect_tools(struct reader *rd, const struct json_val *arr, bool gemini, struct req_decision *d)
{
	struct json_aiter it;
	struct json_val el, v, inner;
	struct spop_slice k;
	if (arr->kind == JSON_NULL)
		return;
	if (!json_aiter_init(&it, arr)) {
		invalid(rd, "tools must be an array");
		return;
	}
	struct json_iter mi;
	while (json_aiter_next_obj(&it, &el, &mi) == 1) {
		if (el.kind != JSON_OBJECT)
			continue;
		/* one pass over the tool's members (a schema can be large) */
		struct json_val type = { JSON_BAD, { NULL, 0 } };
		bool named = false;
		while (json_iter_next(&mi, &k, &v) == 1) {
			if (JSON_KEY_IS(k, "name")) {
				add_tool(rd, &v, d);
				named = true;
			} else if (JSON_KEY_IS(k, "function") || JSON_KEY_IS(k, "custom")) {
				if (v.kind == JSON_OBJECT && json_get(v.raw, "name", &inner)) {
					add_tool(rd, &inner, d);
					named = true;
				}
			} else if (JSON_KEY_IS(k, "functionDeclarations") || JSON_KEY_IS(k, "function_declarations")) {
				struct json_aiter fi;
				struct json_val f;
				if (!json_aiter_init(&fi, &v))
					continue;
				while (json_aiter_next(&fi, &f) == 1)
					if (f.kind == JSON_OBJECT && json_get(f.raw, "name", &inner))
						add_tool(rd, &inner, d);
			} else if (JSON_KEY_IS(k, "type")) {
				type = v;
			} else if (gemini) {
				/* Gemini's built-in tools are named by their key: {"googleSearch": {}} */
				struct json_val kn = { JSON_STRING, { k.ptr - 1, k.len + 2 } };
				add_tool(rd, &kn, d);
				named = true;
			}
		}
		/* a provider's built-in tool ({"type": "web_search_preview"}) goes by its type */
		struct spop_slice ts;
		if (!named && type.kind == JSON_STRING && text_of(rd, &type, &ts) && !SPOP_SLICE_IS(ts, "function") &&
		    !SPOP_SLICE_IS(ts, "custom"))
			add_tool(rd, &type, d);
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

static void remember_call(struct reader *rd, struct call_names *cn, const struct json_val *id,
                          const struct json_val *name)
{
	struct spop_slice i, nm;
	if (cn->n < MAX_CALL_IDS && text_of(rd, id, &i) && text_of(rd, name, &nm)) {
		cn->id[cn->n] = i;
		cn->name[cn->n++] = nm;
	}
}

static struct spop_slice name_of(struct reader *rd, const struct call_names *cn, const struct json_val *id)
{
	struct spop_slice i;
	if (text_of(rd, id, &i))
		for (int k = cn->n - 1; k >= 0; k--)
			if (cn->id[k].len == i.len && memcmp(cn->id[k].ptr, i.ptr, i.len) == 0)
				return cn->name[k];
	return (struct spop_slice){ NULL, 0 };
}

/* Appends the decoded text of every string inside v (keys too) to the arena,
 * each followed by a newline. */
static void strings_of(struct reader *rd, const struct json_val *v, int depth)
{
	struct json_arena *a = rd->arena;
	if (v->kind == JSON_STRING) {
		struct spop_slice s = { v->raw.ptr + 1, v->raw.len - 2 };
		if (a->cap - a->used > s.len) {
			a->used += json_unescape(s, a->buf + a->used);
			a->buf[a->used++] = '\n';
		}
		return;
	}
	if (depth > JSON_MAX_DEPTH)
		return;
	if (v->kind == JSON_ARRAY) {
		struct json_aiter it;
		struct json_val el;
		json_aiter_init(&it, v);
		while (json_aiter_next(&it, &el) == 1)
			strings_of(rd, &el, depth + 1);
	} else if (v->kind == JSON_OBJECT) {
		struct json_iter it;
		struct spop_slice k;
		struct json_val el;
		json_iter_init(&it, v->raw);
		while (json_iter_next(&it, &k, &el) == 1) {
			struct json_val kv = { JSON_STRING, { k.ptr - 1, k.len + 2 } };
			strings_of(rd, &kv, depth + 1);
			strings_of(rd, &el, depth + 1);
		}
	}
}

/* A tool result's text, as the model will read it: a JSON string's decoded
 * contents, or the decoded text of every string in an array or object of parts. */
static struct spop_slice content_of(struct reader *rd, struct spop_slice obj, const char *key)
{
	struct json_val v;
	struct spop_slice s = { NULL, 0 };
	if (!json_get(obj, key, &v) || text_of(rd, &v, &s))
		return s;
	size_t from = rd->arena->used;
	strings_of(rd, &v, 0);
	if (rd->arena->used == from)
		return v.raw; /* numbers and literals: their JSON text */
	return (struct spop_slice){ (const uint8_t *)rd->arena->buf + from, rd->arena->used - from };
}

static bool get_either(struct spop_slice obj, const char *a, const char *b, struct json_val *v)
{
	return json_get(obj, a, v) || json_get(obj, b, v);
}

static bool conversation_untrusted(struct reader *rd, const struct policy *p, struct spop_slice body)
{
	struct json_val msgs, m, v, blk, w;
	struct json_aiter it, bi;
	struct call_names cn = { .n = 0 };
	if (!(json_get(body, "messages", &msgs) || json_get(body, "contents", &msgs) || json_get(body, "input", &msgs)))
		return false;
	if (!json_aiter_init(&it, &msgs))
		return false;
	while (json_aiter_next(&it, &m) == 1) {
		if (m.kind != JSON_OBJECT)
			continue;
		struct spop_slice role = { NULL, 0 }, itype = { NULL, 0 };
		if (json_get(m.raw, "role", &v))
			text_of(rd, &v, &role);
		/* the Responses API's input items: calls and their outputs, by call_id */
		if (json_get(m.raw, "type", &v) && text_of(rd, &v, &itype)) {
			struct json_val id, nm;
			if ((SPOP_SLICE_IS(itype, "function_call") || SPOP_SLICE_IS(itype, "custom_tool_call")) &&
			    json_get(m.raw, "call_id", &id) && json_get(m.raw, "name", &nm))
				remember_call(rd, &cn, &id, &nm);
			if (SPOP_SLICE_IS(itype, "function_call_output") || SPOP_SLICE_IS(itype, "custom_tool_call_output")) {
				if (!json_get(m.raw, "call_id", &id) ||
				    !policy_tool_trusted(p, name_of(rd, &cn, &id), content_of(rd, m.raw, "output")))
					return true;
			}
		}
		if (json_get(m.raw, "tool_calls", &v) && json_aiter_init(&bi, &v))
			while (json_aiter_next(&bi, &blk) == 1) {
				struct json_val id, nm;
				if (blk.kind == JSON_OBJECT && json_get(blk.raw, "id", &id) && json_get_path(blk.raw, "function.name", &nm))
					remember_call(rd, &cn, &id, &nm);
			}
		if (SPOP_SLICE_IS(role, "tool") && json_get(m.raw, "tool_call_id", &v) &&
		    !policy_tool_trusted(p, name_of(rd, &cn, &v), content_of(rd, m.raw, "content")))
			return true;
		if (SPOP_SLICE_IS(role, "tool") && !json_get(m.raw, "tool_call_id", &v))
			return true; /* a result we cannot name */
		if (SPOP_SLICE_IS(role, "function")) {
			struct spop_slice nm = { NULL, 0 };
			if (json_get(m.raw, "name", &v))
				text_of(rd, &v, &nm);
			if (!policy_tool_trusted(p, nm, content_of(rd, m.raw, "content")))
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
				text_of(rd, &w, &type);
			struct json_val id, name, fr;
			if (SPOP_SLICE_IS(type, "tool_use") && json_get(blk.raw, "id", &id) && json_get(blk.raw, "name", &name))
				remember_call(rd, &cn, &id, &name);
			if (SPOP_SLICE_IS(type, "tool_result")) {
				if (!json_get(blk.raw, "tool_use_id", &id) ||
				    !policy_tool_trusted(p, name_of(rd, &cn, &id), content_of(rd, blk.raw, "content")))
					return true;
			}
			if (get_either(blk.raw, "functionResponse", "function_response", &fr)) {
				if (fr.kind != JSON_OBJECT)
					return true;
				if (json_get(fr.raw, "name", &name))
					text_of(rd, &name, &nm);
				if (!policy_tool_trusted(p, nm, content_of(rd, fr.raw, "response")))
					return true;
			}
		}
	}
	return false;
}

/* A model name: what the provider routes on, and what logs and tags carry. */
static bool model_ok(struct spop_slice m)
{
	if (m.len == 0 || m.len > 256)
		return false;
	for (size_t i = 0; i < m.len; i++) {
		uint8_t c = m.ptr[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '/' || c == '@' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* A token limit: a whole number by its value (1e5 is 100000), or null. */
static void read_limit(struct reader *rd, const struct json_val *v, bool gemini, int64_t *out)
{
	int64_t n;
	if (v->kind == JSON_NULL)
		return;
	int r = json_as_whole(v, &n);
	if (r < 0) {
		invalid(rd, gemini ? "maxOutputTokens must be a number" : "max_tokens must be a number");
		return;
	}
	if (r == 0) {
		invalid(rd, gemini ? "maxOutputTokens must be a whole number" : "max_tokens must be a whole number");
		return;
	}
	if (n > *out)
		*out = n;
}

/* The next top-level member: from json_check's index, or by walking the body when
 * it had more members than the index holds. */
static bool next_member(const struct json_top *top, int *i, struct json_iter *it, struct spop_slice *k,
                        struct json_val *v, long *count)
{
	if (!top->more) {
		if (*i >= top->n)
			return false;
		*k = top->m[*i].key;
		*v = top->m[*i].val;
		*count = top->m[(*i)++].count;
		return true;
	}
	if (json_iter_next(it, k, v) != 1)
		return false;
	*count = v->kind == JSON_ARRAY ? json_array_len(v) : -1;
	return true;
}

static bool slice_ends(struct spop_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len >= n && memcmp(s.ptr + s.len - n, lit, n) == 0;
}

/* The members the policy reads, from a body json_check accepted: each one once,
 * decoded, of the type the provider requires, or the body is refused. */
static void read_body(struct reader *rd, const struct provider *prov, struct spop_slice body,
                      const struct json_top *top, struct req_decision *d)
{
	struct json_iter it;
	struct spop_slice k;
	struct json_val v, m;
	long count;
	int idx = 0;
	if (!json_iter_init(&it, body))
		return; /* an array or a scalar: nothing the policy reads */
	bool gemini = prov->shape == SHAPE_GEMINI;
	bool path_model = d->model.ptr != NULL;
	while (next_member(top, &idx, &it, &k, &v, &count)) {
		if (JSON_KEY_IS(k, "model")) {
			struct spop_slice s;
			if (v.kind == JSON_NULL)
				continue;
			if (!text_of(rd, &v, &s) || !model_ok(s)) {
				invalid(rd, "model must be a name of 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + -");
				continue;
			}
			/* the path's model wins (Gemini and Azure route on it) */
			if (prov->model_in_body && !path_model)
				d->model = s;
		} else if (JSON_KEY_IS(k, "stream_options")) {
			d->has_stream_options = true; /* even null: a member we add before it would lose */
		} else if (JSON_KEY_IS(k, "stream")) {
			if (v.kind != JSON_TRUE && v.kind != JSON_FALSE && v.kind != JSON_NULL)
				invalid(rd, "stream must be true or false");
			if (!gemini)
				d->stream = v.kind == JSON_TRUE;
		} else if (JSON_KEY_IS(k, "max_tokens") || JSON_KEY_IS(k, "max_completion_tokens") ||
		           JSON_KEY_IS(k, "max_output_tokens")) {
			read_limit(rd, &v, false, &d->output_tokens);
		} else if (JSON_KEY_IS(k, "generationConfig") || JSON_KEY_IS(k, "generation_config")) {
			if (v.kind == JSON_NULL)
				continue;
			if (v.kind != JSON_OBJECT) {
				invalid(rd, "generationConfig must be an object");
				continue;
			}
			bool a = json_get(v.raw, "maxOutputTokens", &m);
			if (a)
				read_limit(rd, &m, true, &d->output_tokens);
			if (json_get(v.raw, "candidateCount", &m) || json_get(v.raw, "candidate_count", &m))
				read_limit(rd, &m, true, &d->choices);
			if (json_get(v.raw, "max_output_tokens", &m)) {
				if (a)
					invalid(rd, "maxOutputTokens is given twice (maxOutputTokens and max_output_tokens)");
				read_limit(rd, &m, true, &d->output_tokens);
			}
		} else if (JSON_KEY_IS(k, "messages") || JSON_KEY_IS(k, "contents") || JSON_KEY_IS(k, "input")) {
			if (v.kind == JSON_NULL)
				continue;
			if (v.kind != JSON_ARRAY && v.kind != JSON_STRING && !JSON_KEY_IS(k, "input"))
				invalid(rd, "messages must be an array"); /* Gemini takes a string too; input: anything */
			if (v.kind == JSON_ARRAY && count > d->messages)
				d->messages = count;
		} else if (JSON_KEY_IS(k, "tools") || JSON_KEY_IS(k, "functions")) {
			collect_tools(rd, &v, gemini, d);
		} else if (JSON_KEY_IS(k, "inferenceConfig")) {
			/* Bedrock Converse: {"maxTokens": N} */
			if (v.kind == JSON_NULL)
				continue;
			if (v.kind != JSON_OBJECT) {
				invalid(rd, "inferenceConfig must be an object");
				continue;
			}
			if (json_get(v.raw, "maxTokens", &m))
				read_limit(rd, &m, false, &d->output_tokens);
		} else if (JSON_KEY_IS(k, "toolConfig")) {
			/* Bedrock Converse: {"tools": [{"toolSpec": {"name": ...}}]} */
			struct json_aiter ti;
			struct json_val tv, spec, name;
			if (v.kind == JSON_NULL)
				continue;
			if (v.kind != JSON_OBJECT || (json_get(v.raw, "tools", &m) && m.kind != JSON_ARRAY)) {
				invalid(rd, "toolConfig must be an object with a tools array");
				continue;
			}
			if (!json_get(v.raw, "tools", &m) || !json_aiter_init(&ti, &m))
				continue;
			while (json_aiter_next(&ti, &tv) == 1) {
				if (tv.kind != JSON_OBJECT) {
					invalid(rd, "toolConfig.tools[] must be objects");
					continue;
				}
				if (json_get(tv.raw, "toolSpec", &spec) && spec.kind == JSON_OBJECT && json_get(spec.raw, "name", &name))
					add_tool(rd, &name, d);
				else if (!json_get(tv.raw, "cachePoint", &spec))
					d->tools_unknown = true; /* a tool kind we do not know the name of */
			}
		} else if (JSON_KEY_IS(k, "mcp_servers")) {
			/* Anthropic's MCP connector: the provider calls those servers' tools, named
			 * by the server and its allowed_tools */
			struct json_aiter si;
			struct json_val sv, x, t;
			if (!json_aiter_init(&si, &v))
				continue;
			while (json_aiter_next(&si, &sv) == 1) {
				if (sv.kind == JSON_OBJECT && json_get(sv.raw, "name", &x))
					add_tool(rd, &x, d);
				struct json_aiter ti;
				if (sv.kind == JSON_OBJECT && json_get_path(sv.raw, "tool_configuration.allowed_tools", &x) &&
				    json_aiter_init(&ti, &x))
					while (json_aiter_next(&ti, &t) == 1)
						add_tool(rd, &t, d);
			}
		} else if (JSON_KEY_IS(k, "n")) {
			read_limit(rd, &v, false, &d->choices);
		} else if (JSON_KEY_IS(k, "background")) {
			d->background = v.kind == JSON_TRUE;
		} else if (JSON_KEY_IS(k, "prompt")) {
			/* a stored prompt (Responses API; the legacy completions prompt is text)
			 * may declare tools the body does not show */
			d->tools_unknown |= v.kind == JSON_OBJECT;
		} else if (JSON_KEY_IS(k, "cachedContent") || JSON_KEY_IS(k, "cached_content")) {
			d->tools_unknown |= v.kind == JSON_STRING; /* Gemini's cached content, likewise */
		}
	}
	/* A cap on output tokens is per call: n choices (candidates) ask for n times it. */
	if (d->output_tokens > 0 && d->choices > 1)
		d->output_tokens = d->choices > INT64_MAX / d->output_tokens ? INT64_MAX : d->output_tokens * d->choices;
	/* Two spellings of one field (Gemini's JSON mapping takes both) are a duplicate. */
	if (gemini && json_get(body, "generationConfig", &v) && json_get(body, "generation_config", &m))
		invalid(rd, "generationConfig is given twice (generationConfig and generation_config)");
}

/* The DLP reads strings decoded: each string holding a \u escape is appended,
 * decoded, to the text arena (json_check's callback). */
static void collect_escaped(void *arg, struct spop_slice raw)
{
	struct json_arena *t = arg;
	if (t->cap - t->used < raw.len + 1)
		return; /* cannot happen: read_scratch_fit sized it for the whole body */
	t->used += json_unescape(raw, t->buf + t->used);
	t->buf[t->used++] = '\n';
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
	} else if (p->cred & CRED_API_KEY) {
		d->auth_hdr = "api-key";
		d->auth_scheme = "";
	} else {
		d->auth_hdr = "authorization";
		d->auth_scheme = "Bearer ";
	}
}

/* Bedrock with IAM credentials ("ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]" as the
 * provider key): the agent signs exactly what goes upstream (AWS Signature V4
 * over the method, path, query, host, content-type and the body it inspected), and
 * HAProxy sets the Authorization and x-amz-* headers. A body HAProxy did not hold
 * whole cannot be signed. */
static void sign_aws(const struct decide_env *env, const struct spop_msg *m, const struct spop_data *hdrs,
                     struct spop_slice body, struct spop_slice path, struct spop_slice query,
                     struct read_scratch *sc, struct req_decision *d)
{
	const char *host = d->prov->host;
	static const char pre[] = "bedrock-runtime.", post[] = ".amazonaws.com";
	size_t hl = strlen(host);
	if (d->truncated) {
		refuse(d, 413, "body_truncated", "the request body is larger than what HAProxy buffers, so it cannot be "
		       "signed for AWS; send a smaller request or raise tune.bufsize", NULL);
		return;
	}
	if (hl <= sizeof(pre) + sizeof(post) - 2 || strncmp(host, pre, sizeof(pre) - 1) != 0 ||
	    strcmp(host + hl - (sizeof(post) - 1), post) != 0) {
		refuse(d, 500, "provider_key_unusable", "AWS credentials sign for bedrock-runtime.REGION.amazonaws.com "
		       "hosts only; the provider's host is ", host);
		return;
	}
	struct spop_slice k = d->auth_key, id, secret, token = { NULL, 0 };
	const uint8_t *c1 = memchr(k.ptr, ':', k.len);
	id = (struct spop_slice){ k.ptr, (size_t)(c1 - k.ptr) };
	secret = (struct spop_slice){ c1 + 1, k.len - id.len - 1 };
	const uint8_t *c2 = memchr(secret.ptr, ':', secret.len);
	if (c2) {
		token = (struct spop_slice){ c2 + 1, (size_t)(secret.ptr + secret.len - c2 - 1) };
		secret.len = (size_t)(c2 - secret.ptr);
	}
	struct sigv4_header ct[1];
	size_t nct = 0;
	bool again = false;
	struct spop_slice v = hdrs_get(hdrs, "content-type", &again);
	if (again) {
		refuse(d, 400, "invalid_header", "a call the gateway signs for AWS takes one Content-Type header", NULL);
		return;
	}
	if (v.ptr) /* signed as sent: HAProxy forwards it as is */
		ct[nct++] = (struct sigv4_header){ { (const uint8_t *)"content-type", 12 }, v };
	const struct spop_data *meth = SPOP_MSG_ARG(m, "method");
	struct sigv4_req r = {
		.method = is_text(meth) ? meth->v.s : (struct spop_slice){ (const uint8_t *)"POST", 4 },
		.path = path, .query = query,
		.host = { (const uint8_t *)host, hl },
		.headers = ct, .nheaders = nct, .payload = body,
		.region = { (const uint8_t *)host + sizeof(pre) - 1, hl - (sizeof(pre) - 1) - (sizeof(post) - 1) },
		.service = { (const uint8_t *)"bedrock", 7 },
		.time = env->now,
	};
	struct sigv4_creds cr = { .access_key_id = id, .secret_key = secret, .session_token = token };
	enum sigv4_status st = sigv4_sign(&r, &cr, &sc->sig);
	if (st != SIGV4_OK) {
		refuse(d, 500, "provider_key_unusable", "the call cannot be signed for AWS: ", sigv4_strerror(st));
		return;
	}
	d->sig = &sc->sig;
	d->auth_key = (struct spop_slice){ (const uint8_t *)sc->sig.authorization, strlen(sc->sig.authorization) };
	d->auth_scheme = "";
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
	d->grant = &auth->jwt.endpoints;
	substitute_key(auth, d);
	if (!d->status)
		d->owner = (struct spop_slice){ (const uint8_t *)d->jwt_user, strlen(d->jwt_user) };
}

/* A virtual key: its verdict for this call (provider, model, expiry, revocation).
 * Returns the key, or NULL with the call refused. */
static const struct vkey *check_vkey(const struct auth *auth, int64_t now, struct spop_slice key,
                                     struct req_decision *d)
{
	const struct vkey *k;
	const struct provider *p = d->prov;
	enum vkey_result r = keystore_check(auth ? &auth->keys : NULL, key, now, p->name, d->model, &k);
	if (k)
		snprintf(d->key_id, sizeof(d->key_id), "%s", k->id);
	switch (r) {
	case VK_OK:
		break;
	case VK_PROVIDER:
		refuse(d, 403, vkey_result_reason(r), "this virtual key may not use the provider ", p->name);
		return NULL;
	case VK_MODEL:
		d->status = 403;
		d->reason = vkey_result_reason(r);
		snprintf(d->message, sizeof(d->message), "archestra: this virtual key may not use the model %.*s",
		         (int)(d->model.len > 64 ? 64 : d->model.len), d->model.ptr);
		return NULL;
	case VK_REVOKED:
		refuse(d, 401, vkey_result_reason(r), "this virtual key has been revoked", NULL);
		return NULL;
	case VK_EXPIRED:
		refuse(d, 401, vkey_result_reason(r), "this virtual key has expired", NULL);
		return NULL;
	case VK_MALFORMED:
		refuse(d, 401, vkey_result_reason(r), "malformed virtual key (arch_vk_<id>_<secret>)", NULL);
		return NULL;
	default:
		refuse(d, 401, vkey_result_reason(r), "unknown virtual key", NULL);
		return NULL;
	}
	d->owner = (struct spop_slice){ (const uint8_t *)k->owner, strlen(k->owner) };
	return k;
}

/* A virtual key as the credential: checked, then the provider key the gateway
 * holds goes upstream in its place. */
static void virtual_key(const struct auth *auth, int64_t now, struct req_decision *d)
{
	const struct vkey *k = check_vkey(auth, now, d->credential, d);
	if (!k)
		return;
	d->grant = &k->endpoints;
	substitute_key(auth, d);
}

/* X-Archestra-Virtual-Key (Archestra's passthrough): the virtual key identifies and
 * authorizes the caller, and the caller's own provider key goes upstream as sent. */
static void passthrough_key(const struct auth *auth, int64_t now, struct spop_slice vk, int ncred,
                            struct req_decision *d)
{
	if (ncred == 1 && (vkey_looks_virtual(d->credential) || jwt_looks_like(d->credential))) {
		refuse(d, 400, "ambiguous_credential", "with X-Archestra-Virtual-Key, send your own provider key where the "
		       "provider's SDKs put it, not a gateway key", NULL);
		return;
	}
	check_vkey(auth, now, vk, d);
}

/* What the decision needs from the request headers besides credentials and
 * identity, in one pass: a method override and a compressed body (both refused:
 * the provider would act on what the agent did not read), and whether the body
 * may be a multipart upload. Every other body is read as JSON whatever its
 * Content-Type says, since servers parse it anyway; a repeated Content-Type is
 * not taken at its first value. */
struct req_hdrs {
	bool method_override, multipart, encoded;
};

static struct req_hdrs scan_hdrs(const struct spop_data *hdrs)
{
	struct req_hdrs h = { false, false, false };
	int content_types = 0;
	if (!is_text(hdrs))
		return h;
	struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
	struct spop_slice n, v;
	while (hdrs_next(&r, &n, &v) == 1) {
		uint8_t c0 = n.len ? (n.ptr[0] | 0x20) : 0;
		if (n.len < 12 || (c0 != 'c' && c0 != 'x'))
			continue; /* the common case: one compare per header */
		if (SLICE_IEQ(n, "content-type")) {
			v = slice_trim(v);
			h.multipart = ++content_types == 1 && v.len >= 19 &&
			              slice_ieq((struct spop_slice){ v.ptr, 19 }, "multipart/form-data", 19);
		} else if (SLICE_IEQ(n, "content-encoding")) {
			v = slice_trim(v);
			h.encoded |= v.len && !SLICE_IEQ(v, "identity");
		} else if (SLICE_IEQ(n, "x-http-method-override") || SLICE_IEQ(n, "x-http-method") ||
		           SLICE_IEQ(n, "x-method-override")) {
			h.method_override = true;
		}
	}
	return h;
}

static void scan_dlp(const struct dlp_cfg *dc, struct spop_slice raw, const struct json_arena *text, struct dlp_result *r)
{
	struct dlp_result t;
	dlp_scan(dc, raw, r);
	if (!text->used)
		return;
	dlp_scan(dc, (struct spop_slice){ (const uint8_t *)text->buf, text->used }, &t);
	r->found |= t.found;
	r->deny = -1;
	for (int k = 0; k < DLP_BUILTIN + dc->ncustom; k++)
		if ((r->found & (1u << k)) && dlp_action_of(dc, k) == DLP_DENY) {
			r->deny = k;
			break;
		}
}

void request_decide(const struct request_cfg *cfg, const struct decide_env *env, const struct spop_msg *m,
                    struct req_decision *d)
{
	static const struct decide_env none;
	static _Thread_local struct read_scratch own; /* for callers that bring none: unit tests */
	if (!env)
		env = &none;
	struct read_scratch *sc = env->scratch ? env->scratch : &own;
	memset(d, 0, sizeof(*d));
	d->reason = "allowed";
	d->output_tokens = d->messages = d->choices = -1;

	const struct spop_data *path = SPOP_MSG_ARG(m, "path"), *body = SPOP_MSG_ARG(m, "body");
	const struct spop_data *hdrs = SPOP_MSG_ARG(m, "hdrs"), *query = SPOP_MSG_ARG(m, "query");
	const struct spop_data *method = SPOP_MSG_ARG(m, "method");
	struct spop_slice bs = is_text(body) ? body->v.s : (struct spop_slice){ NULL, 0 };
	struct spop_slice qs = is_text(query) ? query->v.s : (struct spop_slice){ NULL, 0 };
	if (!is_text(path) || path->v.s.len == 0) {
		refuse(d, 400, "bad_request", "the request has no path", NULL);
		return;
	}
	if (!read_scratch_fit(sc, 2 * bs.len, 3 * path->v.s.len + 2 * qs.len + 2048)) {
		refuse(d, 503, "agent_out_of_memory", "the policy agent is out of memory; retry", NULL);
		return;
	}
	struct spop_slice npath;
	const char *why = normalize_path(path->v.s, &sc->arena, &npath);
	if (why) {
		refuse(d, 400, "invalid_path", "the path is refused: ", why);
		d->prov = provider_match(cfg->providers, path->v.s, &d->rest); /* for the error's shape only */
		return;
	}
	d->prov = provider_match(cfg->providers, npath, &d->rest);
	if (!d->prov) {
		char known[160];
		providers_list(cfg->providers, known, sizeof(known));
		refuse(d, 404, "unknown_provider", "no LLM provider is routed at this path; known prefixes: ", known);
		return;
	}
	struct req_hdrs rh = scan_hdrs(hdrs);
	if (rh.method_override) {
		refuse(d, 400, "method_override_refused",
		       "method override headers (X-HTTP-Method-Override and the like) are not accepted", NULL);
		return;
	}
	if (rh.encoded) {
		refuse(d, 400, "encoded_body_refused", "compressed request bodies (Content-Encoding) are not accepted; "
		       "send the body uncompressed", NULL);
		return;
	}

	if (d->prov->model_path[0]) {
		model_from_path(d->prov, d->rest, d);
		if (d->model.ptr && !model_ok(d->model)) { /* what the body's model must be, the path's must be too */
			refuse(d, 400, "invalid_field", "the request is refused: the model in the path must be a name of 1 to "
			       "256 characters of A-Z a-z 0-9 . _ : / @ + -", NULL);
			return;
		}
	}
	if (identity_parse(hdrs, cfg->drop_invalid_identity, &d->id, &d->id_err, &d->id_dropped) < 0) {
		d->status = 400;
		d->reason = "invalid_identity_header";
		snprintf(d->message, sizeof(d->message), "archestra: %s is invalid: %s", d->id_err.header, d->id_err.why);
		return;
	}

	/* Whole, or not: HAProxy says how much it announced (body_size) and whether
	 * the end of the message is in its buffer (eom), which also covers chunked and
	 * HTTP/2 bodies without a length. */
	int64_t len = 0, size = 0;
	const struct spop_data *eom = SPOP_MSG_ARG(m, "eom");
	bool have_len = as_int(SPOP_MSG_ARG(m, "body_len"), &len);
	as_int(SPOP_MSG_ARG(m, "body_size"), &size);
	d->truncated = (have_len && size > len && len >= 0) || (eom && eom->type == SPOP_T_BOOL && !eom->v.b);
	if (d->truncated && cfg->truncated == TRUNC_DENY) {
		d->status = 413;
		d->reason = "body_truncated";
		if (size > len)
			snprintf(d->message, sizeof(d->message),
			         "archestra: the request body (%lld bytes) is larger than what HAProxy buffers for inspection "
			         "(%lld bytes, tune.bufsize); send a smaller request or raise tune.bufsize",
			         (long long)size, (long long)len);
		else
			snprintf(d->message, sizeof(d->message),
			         "archestra: the request body is larger than what HAProxy buffers for inspection (more than "
			         "%lld bytes, tune.bufsize); send a smaller request or raise tune.bufsize", (long long)len);
		return;
	}

	/* One reading of the body, the provider's (see jsonscan.h), unless it is a
	 * multipart upload or arrived truncated under truncated_body: allow. */
	struct reader rd = { .arena = &sc->arena };
	bool json = false;
	size_t i = 0;
	while (i < bs.len && (bs.ptr[i] == ' ' || bs.ptr[i] == '\t' || bs.ptr[i] == '\n' || bs.ptr[i] == '\r'))
		i++;
	if (i < bs.len && !d->truncated) {
		struct json_report jr;
		struct json_top top;
		bool ok = json_check(bs, &sc->keys, collect_escaped, &sc->text, &top, &jr);
		if (!ok && rh.multipart && jr.err == JSON_ERR_SYNTAX && bs.ptr[i] == '-') {
			sc->text.used = 0; /* a multipart upload ("--boundary"): opaque, DLP on its raw bytes */
		} else if (!ok) {
			static const char *const reasons[] = { "allowed", "invalid_json", "json_too_deep", "duplicate_key",
			                                       "invalid_utf8" };
			d->status = 400;
			d->reason = reasons[jr.err];
			snprintf(d->message, sizeof(d->message), "archestra: the request body is refused: %s (at byte %zu)",
			         json_err_text(jr.err), jr.at);
			return;
		} else {
			json = true;
			read_body(&rd, d->prov, bs, &top, d);
			if (rd.bad) {
				refuse(d, 400, "invalid_field", "the request body is refused: ", rd.bad);
				return;
			}
		}
	}

	int n = request_credential(hdrs, query, d->prov->cred, &d->credential, &d->cred_where);
	if (n > 1) {
		refuse(d, 400, "ambiguous_credential", "the request carries more than one different API key; send exactly one",
		       NULL);
		return;
	}
	if (n == 0 && d->prov->require_key) {
		refuse(d, 401, "missing_credential", "missing API key; send it in ", cred_hint(d->prov->cred));
		return;
	}
	bool vk_again = false;
	struct spop_slice vk = hdrs_get(hdrs, "x-archestra-virtual-key", &vk_again);
	if (vk_again) {
		refuse(d, 400, "invalid_identity_header", "X-Archestra-Virtual-Key is repeated; send it once", NULL);
		return;
	}
	if (vk.ptr && vk.len) {
		passthrough_key(env->auth, env->now, vk, n, d);
		if (d->status)
			return;
	} else if (n == 1 && vkey_looks_virtual(d->credential)) {
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

	/* A key the gateway lends out reaches what its grant names: the provider's
	 * inference endpoints, plus what the key or the issuer adds. */
	struct spop_slice meth = is_text(method) ? method->v.s : (struct spop_slice){ (const uint8_t *)"GET", 3 };
	if (d->auth_hdr && !endpoint_allowed(&d->prov->endpoints, meth, d->rest) &&
	    !(d->grant && endpoint_allowed(d->grant, meth, d->rest))) {
		d->status = 403;
		d->reason = "endpoint_not_granted";
		snprintf(d->message, sizeof(d->message),
		         "archestra: this key may not reach %.*s %.*s (grant it with the key's or the issuer's \"endpoints\")",
		         (int)(meth.len > 10 ? 10 : meth.len), meth.ptr, (int)(d->rest.len > 100 ? 100 : d->rest.len),
		         d->rest.ptr);
		d->auth_hdr = NULL;
		return;
	}

	/* Authenticated beats declared: the credential's owner is the user. */
	if (d->owner.len) {
		d->owner = safe_owner(d->owner, &sc->arena);
		struct spop_slice *u = &d->id.v[ID_USER];
		d->user_overridden = u->len && !(u->len == d->owner.len && memcmp(u->ptr, d->owner.ptr, u->len) == 0);
		*u = d->owner;
	}

	/* Policy last: it may scope on who the credential turned out to be. */
	int calls = 0;
	if (env->auth) {
		const struct policy *pol = &env->auth->policy;
		struct policy_input pin = {
			.id = &d->id, .output_tokens = d->output_tokens, .messages = d->messages, .stream = d->stream,
		};
		pin.body_bytes = size > len ? size : len;
		if (!have_len)
			pin.body_bytes = (int64_t)bs.len;
		pin.tools = d->tools;
		pin.ntools = d->ntools;
		pin.tools_truncated = d->tools_truncated;
		pin.tools_unknown = d->tools_unknown;
		/* a JSON call to a provider that names no model leaves the model to the
		 * provider (a stored prompt, a tuned model): model rules cannot pass it */
		pin.model_unnamed = json && d->model.len == 0 && SPOP_SLICE_IS(meth, "POST");
		pin.claims = (const char(*)[64])d->jwt_scope;
		pin.nclaims = d->njwt_scope;
		pin.v[SC_PROVIDER] = (struct spop_slice){ (const uint8_t *)d->prov->name, strlen(d->prov->name) };
		pin.v[SC_MODEL] = d->model;
		pin.v[SC_KEY_ID] = (struct spop_slice){ (const uint8_t *)d->key_id, strlen(d->key_id) };
		pin.v[SC_KEY_OWNER] = d->owner;
		pin.v[SC_AGENT_ID] = d->id.v[ID_AGENT];
		pin.v[SC_USER_ID] = d->id.v[ID_USER];
		policy_eval(pol, &pin, &d->policy);
		if (d->policy.deny) {
			d->status = 403;
			d->reason = d->policy.deny->id;
			snprintf(d->message, sizeof(d->message), "archestra: policy %.63s: %.150s", d->policy.deny->id, d->policy.why);
			d->auth_hdr = NULL; /* nothing is substituted for a refused call */
			return;
		}
		/* Budgets and rate limits in scope: the handler checks them against the
		 * store's view (bstore.h) once everything else has allowed the call. */
		d->ncharges = budget_charges(pol->budgets, &pin, d->charges, BUDGET_MAX_CHARGES);
		/* What the call may cost if its response never says: the body as tokens
		 * (a byte each, more than any tokenizer counts) and the output it asked
		 * for, or BUDGET_EST_OUTPUT. */
		d->est_in = pin.body_bytes > 0 ? pin.body_bytes : 0;
		d->est_out = d->output_tokens > 0 ? d->output_tokens : BUDGET_EST_OUTPUT;
		/* Response checks need the response: whether or not inspect_responses is
		 * on, a call they apply to gets its response inspected. */
		if (json && pol->trusted.enabled)
			d->untrusted = pin.untrusted = conversation_untrusted(&rd, pol, bs);
		calls = policy_calls_apply(pol, &pin);
	}
	/* A stream whose tool calls the rules check is held whole by HAProxy and read
	 * by the agent (sse.h), for the providers whose streams it reads. */
	enum err_shape shp = d->prov->shape;
	if (calls == 2 && (d->background || (d->stream && shp != SHAPE_OPENAI && shp != SHAPE_ANTHROPIC &&
	                                     shp != SHAPE_GEMINI))) {
		refuse(d, 400, "stream_not_inspectable",
		       d->background ? "the call offers tools that tool-call rules check, and a background response cannot "
		                       "be checked; send it in the foreground"
		                     : "the call offers tools that tool-call rules check, and this provider's streams cannot "
		                       "be checked; send it without streaming",
		       NULL);
		d->auth_hdr = NULL;
		return;
	}
	d->hold_stream = calls == 2 && d->stream;

	/* DLP over the raw body (every string without a \u escape reads the same
	 * there) and over the decoded text of those with one. */
	if (env->auth && env->auth->policy.dlp.enabled && bs.ptr) {
		const struct dlp_cfg *dc = &env->auth->policy.dlp;
		struct dlp_result r;
		scan_dlp(dc, bs, &sc->text, &r);
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
	d->inspect_res = cfg->inspect_responses || calls;

	/* A stream that would not report its usage asks for it (OpenAI's
	 * stream_options.include_usage) where the provider takes that member:
	 * HAProxy's archestra.lua inserts it right after the body's opening brace and
	 * removes the usage-only event the client did not ask for. */
	if (d->stream && d->prov->stream_usage_option && json && !d->has_stream_options && !d->truncated && bs.len &&
	    (slice_ends(d->rest, "/chat/completions") || slice_ends(d->rest, "/completions"))) {
		size_t at = 0;
		while (at < bs.len && (bs.ptr[at] == ' ' || bs.ptr[at] == '\t' || bs.ptr[at] == '\n' || bs.ptr[at] == '\r'))
			at++;
		if (at < bs.len && bs.ptr[at] == '{')
			d->add_usage_at = (int64_t)at + 1;
	}

	/* What goes upstream is the path that was checked, and the query less any key
	 * the gateway replaces. */
	const char *base = d->prov->upstream_base;
	struct spop_slice q = forward_query(qs, d->auth_hdr != NULL, &sc->arena);
	char *u = sc->arena.buf + sc->arena.used;
	size_t bl = strlen(base), o = 0;
	memcpy(u, base, bl);
	o += bl;
	memcpy(u + o, d->rest.ptr, d->rest.len);
	o += d->rest.len;
	if (q.len) {
		u[o++] = '?';
		memcpy(u + o, q.ptr, q.len);
		o += q.len;
	}
	if (o == 0)
		u[o++] = '/';
	sc->arena.used += o;
	d->upstream = (struct spop_slice){ (const uint8_t *)u, o };
	if (d->auth_hdr && d->prov->shape == SHAPE_BEDROCK && memchr(d->auth_key.ptr, ':', d->auth_key.len))
		sign_aws(env, m, hdrs, bs, (struct spop_slice){ (const uint8_t *)u, bl + d->rest.len }, q, sc, d);
}
