/* usage.h: token usage out of a provider's response body. Pure.
 *
 *  OpenAI     usage.prompt_tokens / completion_tokens (Responses API: input_tokens /
 *             output_tokens), cached: *_tokens_details.cached_tokens, reasoning:
 *             *_tokens_details.reasoning_tokens
 *  Anthropic  usage.input_tokens + cache_read_input_tokens + cache_creation_input_tokens
 *             in, output_tokens out
 *  Gemini     usageMetadata.promptTokenCount in, candidatesTokenCount +
 *             thoughtsTokenCount out, cachedContentTokenCount cached
 *
 * tokens_in counts every prompt token (cached ones too); cached is reported apart. */
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

/* False when the body is not JSON, is truncated before its usage, or has none. */
bool usage_extract(enum err_shape shape, struct spop_slice body, struct usage *u);

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
