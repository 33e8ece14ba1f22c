/* usage.c: see usage.h. */
#include "usage.h"

#include <string.h>

#include "jsonscan.h"

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
