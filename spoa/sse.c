/* sse.c: see sse.h. */
#include "sse.h"

#include <string.h>

#include "jsonscan.h"
#include "policy.h"
#include "usage.h"

static char *arena_take(struct json_arena *a, size_t n)
{
	if (!a || a->cap - a->used < n)
		return NULL;
	char *p = a->buf + a->used;
	a->used += n;
	return p;
}

/* One line up to LF, CRLF or CR; false at the end of the body. */
static bool next_line(struct spop_slice *rest, struct spop_slice *line)
{
	if (rest->len == 0)
		return false;
	const uint8_t *p = rest->ptr, *end = p + rest->len, *q = p;
	while (q < end && *q != '\n' && *q != '\r')
		q++;
	*line = (struct spop_slice){ p, (size_t)(q - p) };
	if (q < end && *q == '\r')
		q++;
	else if (q < end && *q == '\n')
		q++;
	if (q < end && *q == '\n' && q[-1] == '\r')
		q++;
	*rest = (struct spop_slice){ q, (size_t)(end - q) };
	return true;
}

/* An event cut off by the end of the body is read too: a client may act on it. */
int sse_next(struct sse_iter *it, struct spop_slice *data, struct json_arena *a)
{
	struct spop_slice line, first = { NULL, 0 };
	int lines = 0;
	char *buf = NULL;
	size_t blen = 0;
	while (next_line(&it->rest, &line)) {
		if (line.len == 0) {
			if (lines)
				break;
			continue;
		}
		if (line.len < 5 || memcmp(line.ptr, "data:", 5) != 0)
			continue; /* event:, id:, retry:, comments */
		struct spop_slice v = { line.ptr + 5, line.len - 5 };
		if (v.len && v.ptr[0] == ' ')
			v.ptr++, v.len--;
		if (lines == 1) { /* a second data line: both go to the arena, joined with LF */
			if (!(buf = arena_take(a, first.len)))
				return -1;
			memcpy(buf, first.ptr, first.len);
			blen = first.len;
		}
		if (lines >= 1) {
			char *more = arena_take(a, v.len + 1);
			if (!more || more != buf + blen)
				return -1;
			more[0] = '\n';
			memcpy(more + 1, v.ptr, v.len);
			blen += v.len + 1;
		} else {
			first = v;
		}
		lines++;
	}
	if (!lines)
		return 0;
	*data = lines == 1 ? first : (struct spop_slice){ (const uint8_t *)buf, blen };
	return 1;
}

/* ---- assembling calls from fragments ---- */

#define SSE_MAX_CALLS 64
#define SSE_MAX_FRAGS 8192

struct frag {
	int call;
	bool is_name;
	struct spop_slice s;   /* decoded */
};

struct calls {
	struct { long key; struct spop_slice input; } c[SSE_MAX_CALLS];   /* input: Anthropic's block input */
	int n;
	struct frag *f;
	int nf;
};

static int call_of(struct calls *cs, long key)
{
	for (int i = 0; i < cs->n; i++)
		if (cs->c[i].key == key)
			return i;
	if (cs->n == SSE_MAX_CALLS)
		return -1;
	cs->c[cs->n].key = key;
	cs->c[cs->n].input = (struct spop_slice){ NULL, 0 };
	return cs->n++;
}

static bool add_frag(struct calls *cs, int call, bool is_name, const struct json_val *v, struct json_arena *a)
{
	struct spop_slice s;
	if (v->kind == JSON_NULL)
		return true;
	if (cs->nf == SSE_MAX_FRAGS || !json_as_string(v, a, &s))
		return false;
	cs->f[cs->nf++] = (struct frag){ call, is_name, s };
	return true;
}

/* The concatenation of a call's name or argument fragments, in the arena. */
static bool joined(const struct calls *cs, int call, bool is_name, struct json_arena *a, struct spop_slice *out)
{
	size_t n = 0;
	for (int i = 0; i < cs->nf; i++)
		if (cs->f[i].call == call && cs->f[i].is_name == is_name)
			n += cs->f[i].s.len;
	char *p = arena_take(a, n ? n : 1);
	if (!p)
		return false;
	size_t o = 0;
	for (int i = 0; i < cs->nf; i++)
		if (cs->f[i].call == call && cs->f[i].is_name == is_name) {
			memcpy(p + o, cs->f[i].s.ptr, cs->f[i].s.len);
			o += cs->f[i].s.len;
		}
	*out = (struct spop_slice){ (const uint8_t *)p, n };
	return true;
}

static int finish(struct calls *cs, struct tool_call *out, int max, struct json_arena *a, struct json_keytab *keys)
{
	static const struct spop_slice empty = { (const uint8_t *)"{}", 2 };
	if (cs->n > max)
		return -1;
	for (int i = 0; i < cs->n; i++) {
		struct spop_slice name, args;
		struct json_report r;
		if (!joined(cs, i, true, a, &name) || !joined(cs, i, false, a, &args) || name.len == 0)
			return -1;
		if (args.len == 0)
			args = cs->c[i].input.ptr ? cs->c[i].input : empty;
		if (!json_check(args, keys, NULL, NULL, NULL, &r))
			return -1;
		out[i] = (struct tool_call){ name, args };
	}
	return cs->n;
}

static bool is_type(struct spop_slice obj, const char *want)
{
	struct json_val t;
	return json_get(obj, "type", &t) && t.kind == JSON_STRING && t.raw.len == strlen(want) + 2 &&
	       memcmp(t.raw.ptr + 1, want, strlen(want)) == 0;
}

static bool index_of(struct spop_slice obj, long dflt, long *out)
{
	struct json_val v;
	int64_t i;
	if (!json_get(obj, "index", &v)) {
		*out = dflt;
		return true;
	}
	if (json_as_whole(&v, &i) != 1 || i < 0 || i > 1000000)
		return false;
	*out = (long)i;
	return true;
}

/* OpenAI chat completion chunks: one event's choices[].delta. */
static bool openai_chunk(struct calls *cs, struct spop_slice ev, struct json_arena *a)
{
	struct json_val ch, el, delta, x, tc, fn, v;
	struct json_aiter it, jt;
	if (!json_get(ev, "choices", &ch) || !json_aiter_init(&it, &ch))
		return true;
	for (long pos = 0; json_aiter_next(&it, &el) == 1; pos++) {
		long ci;
		if (el.kind != JSON_OBJECT || !index_of(el.raw, pos, &ci))
			return el.kind == JSON_OBJECT ? false : true;
		if (!json_get(el.raw, "delta", &delta) || delta.kind != JSON_OBJECT)
			continue;
		if (json_get(delta.raw, "function_call", &fn) && fn.kind != JSON_NULL) {
			int c = call_of(cs, ci * 1024 + 1023);
			if (c < 0 || fn.kind != JSON_OBJECT)
				return false;
			if ((json_get(fn.raw, "name", &v) && !add_frag(cs, c, true, &v, a)) ||
			    (json_get(fn.raw, "arguments", &v) && !add_frag(cs, c, false, &v, a)))
				return false;
		}
		if (!json_get(delta.raw, "tool_calls", &x) || x.kind == JSON_NULL)
			continue;
		if (!json_aiter_init(&jt, &x))
			return false;
		for (long tpos = 0; json_aiter_next(&jt, &tc) == 1; tpos++) {
			long ti;
			if (tc.kind != JSON_OBJECT || !index_of(tc.raw, tpos, &ti) || ti >= 1023)
				return false;
			int c = call_of(cs, ci * 1024 + ti);
			if (c < 0)
				return false;
			if (json_get(tc.raw, "custom", &fn))
				return false; /* a custom tool's free-text input: not read in streams (refused) */
			if (!json_get(tc.raw, "function", &fn))
				continue; /* a fragment with only its index */
			if (fn.kind != JSON_OBJECT)
				return false;
			if ((json_get(fn.raw, "name", &v) && !add_frag(cs, c, true, &v, a)) ||
			    (json_get(fn.raw, "arguments", &v) && !add_frag(cs, c, false, &v, a)))
				return false;
		}
	}
	return true;
}

/* Anthropic: content_block_start (tool blocks) and content_block_delta (their input). */
static bool anthropic_event(struct calls *cs, struct spop_slice ev, struct json_arena *a)
{
	struct json_val blk, v, d;
	long idx;
	if (is_type(ev, "content_block_start")) {
		if (!json_get(ev, "content_block", &blk) || blk.kind != JSON_OBJECT || !index_of(ev, -1, &idx) || idx < 0)
			return false;
		if (!is_type(blk.raw, "tool_use") && !is_type(blk.raw, "server_tool_use") && !is_type(blk.raw, "mcp_tool_use"))
			return true;
		int c = call_of(cs, idx);
		if (c < 0 || !json_get(blk.raw, "name", &v) || !add_frag(cs, c, true, &v, a))
			return false;
		if (json_get(blk.raw, "input", &v))
			cs->c[c].input = v.raw;
		return true;
	}
	if (is_type(ev, "content_block_delta")) {
		if (!json_get(ev, "delta", &d) || d.kind != JSON_OBJECT || !is_type(d.raw, "input_json_delta"))
			return true;
		if (!index_of(ev, -1, &idx) || idx < 0)
			return false;
		int c = -1;
		for (int i = 0; i < cs->n; i++)
			if (cs->c[i].key == idx)
				c = i;
		/* input for a block that never started as a tool call: not guessed at */
		return c >= 0 && json_get(d.raw, "partial_json", &v) && add_frag(cs, c, false, &v, a);
	}
	return true;
}

int sse_tool_calls(enum err_shape shape, struct spop_slice body, struct tool_call *out, int max,
                   struct json_arena *a, struct json_keytab *keys)
{
	if (shape != SHAPE_OPENAI && shape != SHAPE_ANTHROPIC && shape != SHAPE_GEMINI)
		return -1;
	struct calls cs = { .n = 0, .nf = 0 };
	cs.f = (struct frag *)(void *)arena_take(a, sizeof(struct frag) * SSE_MAX_FRAGS + 8);
	if (!cs.f)
		return -1;
	if ((uintptr_t)cs.f % sizeof(void *)) /* the arena hands out bytes: align */
		cs.f = (struct frag *)(void *)((char *)cs.f + sizeof(void *) - (uintptr_t)cs.f % sizeof(void *));
	struct sse_iter it = { body };
	struct spop_slice data;
	int r, n = 0;
	bool responses = false, final = false;
	while ((r = sse_next(&it, &data, a)) == 1) {
		struct json_report jr;
		struct json_val v;
		if (shape == SHAPE_OPENAI && data.len == 6 && memcmp(data.ptr, "[DONE]", 6) == 0)
			continue;
		if (!json_check(data, keys, NULL, NULL, NULL, &jr) || !json_parse_value(data, &v))
			return -1;
		if (v.kind != JSON_OBJECT)
			return -1;
		if (shape == SHAPE_GEMINI) {
			int k = tool_calls_extract(SHAPE_GEMINI, data, out + n, max - n, a, keys);
			if (k < 0)
				return -1;
			n += k;
			continue;
		}
		if (shape == SHAPE_ANTHROPIC) {
			if (!anthropic_event(&cs, data, a))
				return -1;
			continue;
		}
		struct json_val t;
		if (json_get(data, "type", &t) && t.kind == JSON_STRING && t.raw.len > 11 &&
		    memcmp(t.raw.ptr + 1, "response.", 9) == 0) {
			responses = true;
			if (is_type(data, "response.completed") || is_type(data, "response.incomplete") ||
			    is_type(data, "response.failed")) {
				struct json_val resp;
				if (!json_get(data, "response", &resp) || resp.kind != JSON_OBJECT)
					return -1;
				int k = tool_calls_extract(SHAPE_OPENAI, resp.raw, out + n, max - n, a, keys);
				if (k < 0)
					return -1;
				n += k;
				final = true;
			}
			continue;
		}
		if (!openai_chunk(&cs, data, a))
			return -1;
	}
	if (r < 0 || (responses && !final))
		return -1;
	if (shape == SHAPE_GEMINI || responses)
		return n;
	return finish(&cs, out, max, a, keys);
}
