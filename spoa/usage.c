/* usage.c: see usage.h. */
#include "usage.h"

#include <string.h>

#include "jsonscan.h"
#include "policy.h"

static int64_t get(struct spop_slice obj, const char *path)
{
	struct json_val v;
	int64_t x;
	if (json_get_path(obj, path, &v) && json_as_int(&v, &x) && x >= 0)
		return x;
	return -1;
}

static int64_t or0(int64_t x)
{
	return x < 0 ? 0 : x;
}

bool usage_extract(enum err_shape shape, struct spop_slice body, struct usage *u)
{
	struct json_val v;
	memset(u, 0, sizeof(*u));
	const char *member = shape == SHAPE_GEMINI ? "usageMetadata" : "usage";
	if (!json_get(body, member, &v) || v.kind != JSON_OBJECT)
		return false;
	struct spop_slice o = v.raw;
	int64_t in, out;
	switch (shape) {
	case SHAPE_ANTHROPIC:
		in = get(o, "input_tokens");
		out = get(o, "output_tokens");
		if (in < 0 && out < 0)
			return false;
		u->cached = or0(get(o, "cache_read_input_tokens"));
		u->in = or0(in) + u->cached + or0(get(o, "cache_creation_input_tokens"));
		u->out = or0(out);
		return true;
	case SHAPE_GEMINI:
		in = get(o, "promptTokenCount");
		out = get(o, "candidatesTokenCount");
		if (in < 0 && out < 0)
			return false;
		u->reasoning = or0(get(o, "thoughtsTokenCount"));
		u->in = or0(in);
		u->out = or0(out) + u->reasoning;
		u->cached = or0(get(o, "cachedContentTokenCount"));
		return true;
	default:
		in = get(o, "prompt_tokens");
		out = get(o, "completion_tokens");
		if (in >= 0 || out >= 0) {
			u->cached = or0(get(o, "prompt_tokens_details.cached_tokens"));
			u->reasoning = or0(get(o, "completion_tokens_details.reasoning_tokens"));
		} else {
			in = get(o, "input_tokens");
			out = get(o, "output_tokens");
			if (in < 0 && out < 0)
				return false;
			u->cached = or0(get(o, "input_tokens_details.cached_tokens"));
			u->reasoning = or0(get(o, "output_tokens_details.reasoning_tokens"));
		}
		u->in = or0(in);
		u->out = or0(out);
		return true;
	}
}

static int add_call(struct tool_call *out, int *n, int max, struct json_val *name, struct spop_slice args)
{
	struct spop_slice s;
	if (*n >= max || !json_as_plain_string(name, &s))
		return 0;
	out[*n].name = s;
	out[*n].args = args;
	(*n)++;
	return 0;
}

int tool_calls_extract(enum err_shape shape, struct spop_slice body, struct tool_call *out, int max, char *scratch,
                       size_t room)
{
	struct json_val v, el, x, name, args;
	struct json_aiter it, jt;
	int n = 0;
	size_t used = 0;
	static const struct spop_slice empty = { (const uint8_t *)"{}", 2 };
	if (shape == SHAPE_ANTHROPIC) {
		if (!json_get(body, "content", &v) || !json_aiter_init(&it, &v))
			return 0;
		while (json_aiter_next(&it, &el) == 1) {
			struct spop_slice type;
			if (el.kind == JSON_OBJECT && json_get(el.raw, "type", &x) && json_as_plain_string(&x, &type) &&
			    SPOP_SLICE_IS(type, "tool_use") && json_get(el.raw, "name", &name))
				add_call(out, &n, max, &name, json_get(el.raw, "input", &args) ? args.raw : empty);
		}
		return n;
	}
	if (shape == SHAPE_GEMINI) {
		if (!json_get(body, "candidates", &v) || !json_aiter_init(&it, &v))
			return 0;
		while (json_aiter_next(&it, &el) == 1) {
			if (el.kind != JSON_OBJECT || !json_get_path(el.raw, "content.parts", &x) || !json_aiter_init(&jt, &x))
				continue;
			struct json_val part, fc;
			while (json_aiter_next(&jt, &part) == 1)
				if (part.kind == JSON_OBJECT && json_get(part.raw, "functionCall", &fc) && json_get(fc.raw, "name", &name))
					add_call(out, &n, max, &name, json_get(fc.raw, "args", &args) ? args.raw : empty);
		}
		return n;
	}
	if (!json_get(body, "choices", &v) || !json_aiter_init(&it, &v))
		return 0;
	while (json_aiter_next(&it, &el) == 1) {
		if (el.kind != JSON_OBJECT || !json_get_path(el.raw, "message.tool_calls", &x) || !json_aiter_init(&jt, &x))
			continue;
		struct json_val call;
		while (json_aiter_next(&jt, &call) == 1) {
			struct json_val fn;
			if (call.kind != JSON_OBJECT || !json_get(call.raw, "function", &fn) || !json_get(fn.raw, "name", &name))
				continue;
			struct spop_slice a = empty;
			if (json_get(fn.raw, "arguments", &args)) { /* a JSON document inside a JSON string */
				long l = json_string_decode(&args, scratch + used, room - used);
				if (l < 0)
					return -1;
				a = (struct spop_slice){ (const uint8_t *)scratch + used, (size_t)l };
				used += (size_t)l + 1;
			}
			add_call(out, &n, max, &name, a);
		}
	}
	return n;
}
