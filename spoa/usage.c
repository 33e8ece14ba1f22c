/* usage.c: see usage.h. */
#include "usage.h"

#include <string.h>

#include "jsonscan.h"
#include "policy.h"

static int64_t get(struct spop_slice obj, const char *path)
{
	struct json_val v;
	int64_t x;
	if (json_get_path(obj, path, &v) && json_as_whole(&v, &x) == 1 && x >= 0)
		return x;
	return -1;
}

static int64_t or0(int64_t x)
{
	return x < 0 ? 0 : x;
}

/* The input and output counts under these names; false when neither is there. */
static bool counts(struct spop_slice o, const char *in_key, const char *out_key, int64_t *in, int64_t *out)
{
	*in = get(o, in_key);
	*out = get(o, out_key);
	return *in >= 0 || *out >= 0;
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
		if (!counts(o, "input_tokens", "output_tokens", &in, &out))
			return false;
		u->cached = or0(get(o, "cache_read_input_tokens"));
		u->in = or0(in) + u->cached + or0(get(o, "cache_creation_input_tokens"));
		u->out = or0(out);
		return true;
	case SHAPE_GEMINI:
		if (!counts(o, "promptTokenCount", "candidatesTokenCount", &in, &out))
			return false;
		u->reasoning = or0(get(o, "thoughtsTokenCount"));
		u->in = or0(in);
		u->out = or0(out) + u->reasoning;
		u->cached = or0(get(o, "cachedContentTokenCount"));
		return true;
	case SHAPE_BEDROCK:
		/* Converse's camelCase, else an Anthropic model's own answer (InvokeModel) */
		if (!counts(o, "inputTokens", "outputTokens", &in, &out) &&
		    !counts(o, "input_tokens", "output_tokens", &in, &out))
			return false;
		u->cached = or0(get(o, "cacheReadInputTokens"));
		u->in = or0(in) + u->cached + or0(get(o, "cacheWriteInputTokens"));
		u->out = or0(out);
		return true;
	case SHAPE_COHERE:
		/* tokens: what the model read and wrote; billed_units: what is charged */
		if (!counts(o, "tokens.input_tokens", "tokens.output_tokens", &in, &out) &&
		    !counts(o, "billed_units.input_tokens", "billed_units.output_tokens", &in, &out))
			return false;
		u->in = or0(in);
		u->out = or0(out);
		return true;
	default:
		/* chat completions, else the Responses API */
		if (counts(o, "prompt_tokens", "completion_tokens", &in, &out)) {
			u->cached = or0(get(o, "prompt_tokens_details.cached_tokens"));
			u->reasoning = or0(get(o, "completion_tokens_details.reasoning_tokens"));
		} else if (counts(o, "input_tokens", "output_tokens", &in, &out)) {
			u->cached = or0(get(o, "input_tokens_details.cached_tokens"));
			u->reasoning = or0(get(o, "output_tokens_details.reasoning_tokens"));
		} else {
			return false;
		}
		u->in = or0(in);
		u->out = or0(out);
		return true;
	}
}

/* Records one call; more than the caller can check is counted past max so that
 * tool_calls_extract refuses the response instead of checking only the first ones. */
static void add_call(struct tool_call *out, int *n, int max, struct spop_slice name, struct spop_slice args)
{
	if (*n < max) {
		out[*n].name = name;
		out[*n].args = args;
	}
	(*n)++;
}

/* A member that must be a string the agent compares, decoded ("type", "name"). */
static bool text(struct spop_slice obj, const char *key, struct json_arena *a, struct spop_slice *out)
{
	struct json_val v;
	return json_get(obj, key, &v) && json_as_string(&v, a, out);
}

/* One OpenAI call, read where its `type` says, as an SDK reads it: chat
 * completions' {type: function, function: {name, arguments}} and {type: custom,
 * custom: {name, input}}; an object with its own name: the legacy function_call,
 * Responses function_call {name, arguments} and custom_tool_call {name, input}.
 * Arguments are a JSON document in a string, decoded and checked like a body since
 * the client will parse them; a custom tool's input is free text, so its
 * conditions read the call object (path "input"). A call of a shape we do not
 * know is not waved through: -1. */
static int openai_call(const struct json_val *call, bool chat, struct tool_call *out, int *n, int max,
                       struct json_arena *a, struct json_keytab *keys)
{
	static const struct spop_slice empty = { (const uint8_t *)"{}", 2 };
	struct json_val fn, args;
	struct spop_slice name, arg = empty, type;
	if (call->kind != JSON_OBJECT)
		return -1;
	const struct json_val *o = call;
	if (chat) {
		if (!text(call->raw, "type", a, &type))
			type = (struct spop_slice){ (const uint8_t *)"function", 8 }; /* older responses omit it */
		if (SPOP_SLICE_IS(type, "function") ? !json_get(call->raw, "function", &fn)
		    : SPOP_SLICE_IS(type, "custom") ? !json_get(call->raw, "custom", &fn) : true)
			return -1;
		o = &fn;
	}
	if (o->kind != JSON_OBJECT || !text(o->raw, "name", a, &name))
		return -1;
	if (json_get(o->raw, "arguments", &args) && args.kind != JSON_NULL) {
		struct json_report r;
		if (!json_as_string(&args, a, &arg) || !json_check(arg, keys, NULL, NULL, NULL, &r))
			return -1;
	} else if (json_get(o->raw, "input", &args)) {
		arg = o->raw;
	}
	add_call(out, n, max, name, arg);
	return 0;
}

int tool_calls_extract(enum err_shape shape, struct spop_slice body, struct tool_call *out, int max,
                       struct json_arena *a, struct json_keytab *keys)
{
	struct json_val v, el, x, args;
	struct json_aiter it, jt;
	struct spop_slice name, type;
	int n = 0;
	static const struct spop_slice empty = { (const uint8_t *)"{}", 2 };
	if (shape == SHAPE_BEDROCK) {
		/* Converse: output.message.content[] items {"toolUse": {"name", "input"}} */
		if (json_get_path(body, "output.message.content", &v) && json_aiter_init(&it, &v)) {
			while (json_aiter_next(&it, &el) == 1) {
				struct json_val tu;
				if (el.kind != JSON_OBJECT || !json_get(el.raw, "toolUse", &tu))
					continue;
				if (tu.kind != JSON_OBJECT || !text(tu.raw, "name", a, &name))
					return -1;
				add_call(out, &n, max, name, json_get(tu.raw, "input", &args) ? args.raw : empty);
			}
			return n > max ? -1 : n;
		}
		/* else an Anthropic model's own answer (InvokeModel): read as Anthropic's */
	}
	if (shape == SHAPE_ANTHROPIC || shape == SHAPE_BEDROCK) {
		if (!json_get(body, "content", &v) || !json_aiter_init(&it, &v))
			return 0;
		while (json_aiter_next(&it, &el) == 1) {
			if (el.kind != JSON_OBJECT || !text(el.raw, "type", a, &type) || !SPOP_SLICE_IS(type, "tool_use"))
				continue;
			if (!text(el.raw, "name", a, &name))
				return -1; /* a call we cannot name is not waved through */
			add_call(out, &n, max, name, json_get(el.raw, "input", &args) ? args.raw : empty);
		}
		return n > max ? -1 : n;
	}
	if (shape == SHAPE_GEMINI) {
		if (!json_get(body, "candidates", &v) || !json_aiter_init(&it, &v))
			return 0;
		while (json_aiter_next(&it, &el) == 1) {
			if (el.kind != JSON_OBJECT || !json_get_path(el.raw, "content.parts", &x) || !json_aiter_init(&jt, &x))
				continue;
			struct json_val part, fc;
			while (json_aiter_next(&jt, &part) == 1) {
				if (part.kind != JSON_OBJECT ||
				    !(json_get(part.raw, "functionCall", &fc) || json_get(part.raw, "function_call", &fc)))
					continue;
				if (fc.kind != JSON_OBJECT || !text(fc.raw, "name", a, &name))
					return -1;
				add_call(out, &n, max, name, json_get(fc.raw, "args", &args) ? args.raw : empty);
			}
		}
		return n > max ? -1 : n;
	}
	if (shape == SHAPE_COHERE) {
		/* Cohere v2 chat: message.tool_calls[], each as OpenAI's chat completions'; the
		 * v1 chat API (a caller's own key reaches it) puts {name, parameters} at the top. */
		struct json_val call;
		if (json_get_path(body, "message.tool_calls", &x) && json_aiter_init(&jt, &x))
			while (json_aiter_next(&jt, &call) == 1)
				if (openai_call(&call, true, out, &n, max, a, keys) < 0)
					return -1;
		if (json_get(body, "tool_calls", &x) && json_aiter_init(&jt, &x))
			while (json_aiter_next(&jt, &call) == 1) {
				if (call.kind != JSON_OBJECT || !text(call.raw, "name", a, &name))
					return -1;
				add_call(out, &n, max, name, json_get(call.raw, "parameters", &args) ? args.raw : empty);
			}
		return n > max ? -1 : n;
	}
	/* OpenAI: chat completions' choices[].message (tool_calls[], legacy function_call)
	 * and the Responses API's output[] items. */
	if (json_get(body, "choices", &v) && json_aiter_init(&it, &v)) {
		while (json_aiter_next(&it, &el) == 1) {
			struct json_val msg, call;
			if (el.kind != JSON_OBJECT || !json_get(el.raw, "message", &msg) || msg.kind != JSON_OBJECT)
				continue;
			if (json_get(msg.raw, "function_call", &call) && call.kind != JSON_NULL &&
			    openai_call(&call, false, out, &n, max, a, keys) < 0)
				return -1;
			if (!json_get(msg.raw, "tool_calls", &x) || !json_aiter_init(&jt, &x))
				continue;
			while (json_aiter_next(&jt, &call) == 1)
				if (openai_call(&call, true, out, &n, max, a, keys) < 0)
					return -1;
		}
	}
	if (json_get(body, "output", &v) && json_aiter_init(&it, &v))
		while (json_aiter_next(&it, &el) == 1) {
			if (el.kind != JSON_OBJECT || !text(el.raw, "type", a, &type))
				continue;
			if (SPOP_SLICE_IS(type, "function_call") || SPOP_SLICE_IS(type, "custom_tool_call")) {
				if (openai_call(&el, false, out, &n, max, a, keys) < 0)
					return -1;
			} else if (type.len > 5 && memcmp(type.ptr + type.len - 5, "_call", 5) == 0) {
				/* a built-in tool's call (local_shell_call, computer_call, mcp_call...):
				 * named by its own name, else by the tool type it belongs to; its
				 * conditions read the item ("action.command") */
				if (text(el.raw, "name", a, &name))
					;
				else if (SPOP_SLICE_IS(type, "computer_call"))
					name = (struct spop_slice){ (const uint8_t *)"computer_use_preview", 20 }; /* its tool's type */
				else
					name = (struct spop_slice){ type.ptr, type.len - 5 };
				add_call(out, &n, max, name, el.raw);
			}
		}
	return n > max ? -1 : n;
}
