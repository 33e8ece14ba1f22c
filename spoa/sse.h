/* sse.h: a streamed response (server-sent events), read whole: HAProxy held the
 * stream of a call whose tool calls the policy checks, and shows it to the agent
 * like a whole body. Pure.
 *
 * Events are read as the SSE format says (lines end with LF, CRLF or CR; a blank
 * line ends an event; "data:" lines are joined with LF; comments and other fields
 * are skipped), and each event's data must be one JSON document (or OpenAI's
 * "[DONE]"), or the stream is unreadable. The tool calls are assembled as the
 * providers' SDKs assemble them:
 *  OpenAI chat   choices[].delta.tool_calls[] by (choice, index): name and
 *                arguments are the concatenation of their fragments; the legacy
 *                delta.function_call likewise
 *  Responses     the response of response.completed / .incomplete / .failed, read
 *                as a whole response (no final event: unreadable)
 *  Anthropic     content_block_start of tool_use / server_tool_use blocks, their
 *                input_json_delta partial_json concatenated (none: the block's input)
 *  Gemini        each event is a whole GenerateContentResponse: its functionCall parts
 * Assembled arguments must be one JSON document, as a client will parse them. */
#ifndef SPOA_SSE_H
#define SPOA_SSE_H

#include "errjson.h"
#include "spop.h"

struct json_arena;    /* jsonscan.h */
struct json_keytab;   /* jsonscan.h */
struct tool_call;     /* policy.h */

/* One event after another: its data (lines joined; in the arena when there are
 * several, else a slice of the body). Returns 1, 0 at the end, -1 when the arena
 * is full. Events without data are skipped. */
struct sse_iter {
	struct spop_slice rest;
};
int sse_next(struct sse_iter *it, struct spop_slice *data, struct json_arena *a);

/* The tool calls of a stream of the given shape: how many (at most max are
 * written), or -1 when the stream cannot be read unambiguously (an event that is
 * not JSON, a call without a name, arguments that are not one JSON document, more
 * calls than max, a full arena, a shape whose streams are not read). */
int sse_tool_calls(enum err_shape shape, struct spop_slice body, struct tool_call *out, int max,
                   struct json_arena *a, struct json_keytab *keys);

#endif
