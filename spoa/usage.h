/* usage.h: token usage, as each provider's response reports it, and the tool
 * calls a response makes. Pure.
 *
 * Usage is read by HAProxy, not here: providers.cfg (provider_backends_text)
 * turns usage_shapes into json_query rules that set txn.arch.u_* from the
 * response body, and the call's log record carries them to the agents' meter
 * (meter.h), which normalizes them with usage_normalize. One table, read where
 * the body is, so counting costs no SPOP exchange.
 *
 *  OpenAI     usage.prompt_tokens / completion_tokens (Responses API: input_tokens /
 *             output_tokens); cached and reasoning tokens are included in them
 *  Anthropic  usage.input_tokens + cache_read_input_tokens + cache_creation_input_tokens
 *             in, output_tokens out
 *  Gemini     usageMetadata.promptTokenCount in, candidatesTokenCount +
 *             thoughtsTokenCount out
 *  Bedrock    Converse's usage.inputTokens + cacheRead/WriteInputTokens, outputTokens
 *             (InvokeModel with an Anthropic model: Anthropic's names)
 *  Cohere     usage.tokens.input_tokens / output_tokens, else usage.billed_units
 *
 * usage.in counts every prompt token (cached ones too); usage.out every generated
 * one (reasoning too). */
#ifndef SPOA_USAGE_H
#define SPOA_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "errjson.h"
#include "spop.h"

struct json_arena;    /* jsonscan.h */
struct json_keytab;   /* jsonscan.h */

struct usage {
	int64_t in, out, cached, reasoning;
};

/* The counts a response may carry, each in its own txn.arch variable
 * (usage_field_names: u_in, u_out, u_cr, u_cw, u_rs). */
enum usage_field { UF_IN, UF_OUT, UF_CACHE_READ, UF_CACHE_WRITE, UF_REASONING, UF_COUNT };

#define USAGE_ALTS 2
#define USAGE_MAX  ((int64_t)1 << 40)   /* a count above this is not believed (read as 0) */

/* Where a shape's counts are: JSON paths from the body's root (dotted, NULL:
 * not reported). The first alternative that has UF_IN or UF_OUT is read. */
struct usage_shape {
	const char *alt[USAGE_ALTS][UF_COUNT];
	/* The same counts in a server-sent event stream's events (each event's JSON;
	 * a later event's count replaces an earlier one). All NULL: not read (Bedrock's
	 * streams are AWS event-stream frames, not server-sent events). */
	const char *stream[USAGE_ALTS][UF_COUNT];
	bool in_excludes_cache;        /* in + cache read + cache write is every prompt token */
	bool out_excludes_reasoning;   /* out + reasoning is every generated token */
};

extern const struct usage_shape usage_shapes[SHAPE_COUNT];

/* What HAProxy inserts after the opening brace of an OpenAI stream's body that
 * does not ask for usage (txn.arch.add_usage; archestra.lua). */
#define USAGE_STREAM_OPTION "\"stream_options\":{\"include_usage\":true},"
extern const char *const usage_field_names[UF_COUNT];

/* Normalizes the raw counts one alternative gave (-1: absent) into u. False when
 * neither input nor output is there (nothing to count). */
bool usage_normalize(enum err_shape shape, const int64_t raw[UF_COUNT], struct usage *u);

struct tool_call;
/* The tool calls a non-streaming response makes, from a body json_check accepted:
 * OpenAI choices[].message.tool_calls[] (function or custom), the legacy
 * message.function_call, and the Responses API's output[] function_call and
 * custom_tool_call items (arguments: a JSON string, decoded into the arena and
 * checked like a body), Anthropic content[]
 * blocks of type tool_use (name, input), Gemini candidates[].content.parts[]
 * .functionCall (name, args), and the Responses API's built-in tool calls
 * (local_shell_call, computer_call, ...: named by type). Names are decoded. Returns
 * how many; -1 when a call cannot be read (no name, arguments that are not one
 * JSON reading, a full arena) or there are more than max, so callers refuse
 * rather than check only some. */
int tool_calls_extract(enum err_shape shape, struct spop_slice body, struct tool_call *out, int max,
                       struct json_arena *a, struct json_keytab *keys);

#endif
