/* usage.c: see usage.h. */
#include "usage.h"

#include <string.h>

#include "jsonscan.h"
#include "policy.h"

const struct usage_shape usage_shapes[SHAPE_COUNT] = {
	[SHAPE_OPENAI] = { .alt = {
		/* chat completions; then the Responses API */
		{ [UF_IN] = "usage.prompt_tokens", [UF_OUT] = "usage.completion_tokens" },
		{ [UF_IN] = "usage.input_tokens", [UF_OUT] = "usage.output_tokens" } },
		/* the last chunk (stream_options.include_usage); Responses API: response.completed */
		.stream = { { [UF_IN] = "usage.prompt_tokens", [UF_OUT] = "usage.completion_tokens" },
		            { [UF_IN] = "response.usage.input_tokens", [UF_OUT] = "response.usage.output_tokens" } } },
	[SHAPE_ANTHROPIC] = { .in_excludes_cache = true, .alt = {
		{ [UF_IN] = "usage.input_tokens", [UF_OUT] = "usage.output_tokens",
		  [UF_CACHE_READ] = "usage.cache_read_input_tokens",
		  [UF_CACHE_WRITE] = "usage.cache_creation_input_tokens" } },
		/* message_start has the input; message_delta the output so far (the last: all) */
		.stream = { { [UF_IN] = "message.usage.input_tokens", [UF_OUT] = "usage.output_tokens",
		              [UF_CACHE_READ] = "message.usage.cache_read_input_tokens",
		              [UF_CACHE_WRITE] = "message.usage.cache_creation_input_tokens" } } },
	[SHAPE_GEMINI] = { .out_excludes_reasoning = true, .alt = {
		{ [UF_IN] = "usageMetadata.promptTokenCount", [UF_OUT] = "usageMetadata.candidatesTokenCount",
		  [UF_REASONING] = "usageMetadata.thoughtsTokenCount" } },
		/* every chunk has the counts so far */
		.stream = { { [UF_IN] = "usageMetadata.promptTokenCount", [UF_OUT] = "usageMetadata.candidatesTokenCount",
		              [UF_REASONING] = "usageMetadata.thoughtsTokenCount" } } },
	[SHAPE_BEDROCK] = { .in_excludes_cache = true, .alt = {
		/* Converse's camelCase; then an Anthropic model's own answer (InvokeModel) */
		{ [UF_IN] = "usage.inputTokens", [UF_OUT] = "usage.outputTokens",
		  [UF_CACHE_READ] = "usage.cacheReadInputTokens", [UF_CACHE_WRITE] = "usage.cacheWriteInputTokens" },
		{ [UF_IN] = "usage.input_tokens", [UF_OUT] = "usage.output_tokens",
		  [UF_CACHE_READ] = "usage.cache_read_input_tokens",
		  [UF_CACHE_WRITE] = "usage.cache_creation_input_tokens" } } },
	[SHAPE_COHERE] = { .alt = {
		/* tokens: what the model read and wrote; else billed_units: what is charged */
		{ [UF_IN] = "usage.tokens.input_tokens", [UF_OUT] = "usage.tokens.output_tokens" },
		{ [UF_IN] = "usage.billed_units.input_tokens", [UF_OUT] = "usage.billed_units.output_tokens" } },
		/* message-end */
		.stream = { { [UF_IN] = "delta.usage.tokens.input_tokens", [UF_OUT] = "delta.usage.tokens.output_tokens" },
		            { [UF_IN] = "delta.usage.billed_units.input_tokens",
		              [UF_OUT] = "delta.usage.billed_units.output_tokens" } } },
};

const char *const usage_field_names[UF_COUNT] = {
	[UF_IN] = "u_in", [UF_OUT] = "u_out", [UF_CACHE_READ] = "u_cr", [UF_CACHE_WRITE] = "u_cw",
	[UF_REASONING] = "u_rs",
};

bool usage_normalize(enum err_shape shape, const int64_t raw[UF_COUNT], struct usage *u)
{
	memset(u, 0, sizeof(*u));
	if ((unsigned)shape >= SHAPE_COUNT || (raw[UF_IN] < 0 && raw[UF_OUT] < 0))
		return false;
	const struct usage_shape *s = &usage_shapes[shape];
	int64_t v[UF_COUNT];
	for (int f = 0; f < UF_COUNT; f++)
		v[f] = raw[f] < 0 || raw[f] > USAGE_MAX ? 0 : raw[f];
	u->in = v[UF_IN] + (s->in_excludes_cache ? v[UF_CACHE_READ] + v[UF_CACHE_WRITE] : 0);
	u->out = v[UF_OUT] + (s->out_excludes_reasoning ? v[UF_REASONING] : 0);
	u->cached = v[UF_CACHE_READ];
	u->reasoning = v[UF_REASONING];
	return true;
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
		struct json_val whole;
		if (json_parse_value(body, &whole) && whole.kind == JSON_ARRAY) {
			/* streamGenerateContent without alt=sse: an array of responses */
			if (!json_aiter_init(&it, &whole))
				return -1;
			while (json_aiter_next(&it, &el) == 1) {
				int k = el.kind == JSON_OBJECT ? tool_calls_extract(SHAPE_GEMINI, el.raw, out + (n < max ? n : max),
				                                                    max - (n < max ? n : max), a, keys)
				                               : 0;
				if (k < 0)
					return -1;
				n += k;
			}
			return n > max ? -1 : n;
		}
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
