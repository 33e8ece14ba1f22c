/* Unit tests of sse: reading a held stream's events, and the tool calls they make
 * as each provider streams them (shapes from the providers' streaming references),
 * assembled as SDKs assemble them; and the streams that must not be read as
 * harmless: fragments that never make JSON, events that are not JSON, a call with
 * no name, input for a block that was never a tool call. */
#include <stdio.h>

#include "testutil.h"

#include "jsonscan.h"
#include "policy.h"
#include "sse.h"

static char arena_buf[1 << 20];
static struct json_key keybuf[4096];

static int calls(enum err_shape shape, const char *body, struct tool_call *out, int max)
{
	struct json_arena a = { arena_buf, sizeof(arena_buf), 0 };
	struct json_keytab keys = { keybuf, 4096 };
	return sse_tool_calls(shape, S(body), out, max, &a, &keys);
}

static bool is(struct spop_slice v, const char *want)
{
	return v.len == strlen(want) && memcmp(v.ptr, want, v.len) == 0;
}

static void sse_events(void **st)
{
	(void)st;
	struct json_arena a = { arena_buf, sizeof(arena_buf), 0 };
	const char *body = ": comment\r\nevent: x\r\ndata: {\"a\":1}\r\n\r\n"
	                   "data:{\"b\":\n"
	                   "data: 2}\n\n"
	                   "id: 7\n\n"
	                   "data: [DONE]\r\r"
	                   "data: cut";
	struct sse_iter it = { S(body) };
	struct spop_slice d;
	assert_int_equal(sse_next(&it, &d, &a), 1);
	assert_true(is(d, "{\"a\":1}"));
	assert_int_equal(sse_next(&it, &d, &a), 1);
	assert_true(is(d, "{\"b\":\n2}")); /* data lines joined with LF */
	assert_int_equal(sse_next(&it, &d, &a), 1);
	assert_true(is(d, "[DONE]"));
	assert_int_equal(sse_next(&it, &d, &a), 1); /* cut off by the end: read all the same */
	assert_true(is(d, "cut"));
	assert_int_equal(sse_next(&it, &d, &a), 0);
}

static void openai_chat_fragments(void **st)
{
	(void)st;
	struct tool_call c[4];
	/* two parallel calls, interleaved; the first's name in two fragments */
	const char *body =
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me\"}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\","
		"\"function\":{\"name\":\"send_\",\"arguments\":\"\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"type\":\"function\","
		"\"function\":{\"name\":\"lookup\",\"arguments\":\"{}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"email\","
		"\"arguments\":\"{\\\"to\\\":\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
		"\"\\\"x@evil.example\\\"}\"}}]}}]}\n\n"
		"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n"
		"data: [DONE]\n\n";
	assert_int_equal(calls(SHAPE_OPENAI, body, c, 4), 2);
	assert_true(is(c[0].name, "send_email"));
	assert_true(is(c[0].args, "{\"to\":\"x@evil.example\"}"));
	assert_true(is(c[1].name, "lookup"));
	assert_true(is(c[1].args, "{}"));
	/* text only: no call */
	assert_int_equal(calls(SHAPE_OPENAI, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
	                                     "data: [DONE]\n\n", c, 4), 0);
	/* the legacy function_call */
	assert_int_equal(calls(SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"function_call\":{\"name\":\"f\","
	                                     "\"arguments\":\"{\\\"a\\\"\"}}}]}\n\n"
	                                     "data: {\"choices\":[{\"delta\":{\"function_call\":{\"arguments\":\":1}\"}}}]}\n\n",
	                       c, 4), 1);
	assert_true(is(c[0].name, "f") && is(c[0].args, "{\"a\":1}"));
}

static void openai_responses_stream(void **st)
{
	(void)st;
	struct tool_call c[4];
	const char *body =
		"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"output\":[]}}\n\n"
		"event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\","
		"\"delta\":\"{\\\"to\\\"\"}\n\n"
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"output\":["
		"{\"type\":\"function_call\",\"name\":\"send_email\",\"arguments\":\"{\\\"to\\\":\\\"a@b\\\"}\"}]}}\n\n";
	assert_int_equal(calls(SHAPE_OPENAI, body, c, 4), 1);
	assert_true(is(c[0].name, "send_email"));
	/* no final event: the calls are not known, so the stream is not passed */
	const char *cut = "data: {\"type\":\"response.created\",\"response\":{\"output\":[]}}\n\n";
	assert_int_equal(calls(SHAPE_OPENAI, cut, c, 4), -1);
}

static void anthropic_blocks(void **st)
{
	(void)st;
	struct tool_call c[4];
	const char *body =
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n"
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
		"{\"type\":\"text\",\"text\":\"\"}}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
		"{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n"
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
		"{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"send_email\",\"input\":{}}}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
		"{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"to\\\": \\\"x@\"}}\n\n"
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
		"{\"type\":\"input_json_delta\",\"partial_json\":\"evil.example\\\"}\"}}\n\n"
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
	assert_int_equal(calls(SHAPE_ANTHROPIC, body, c, 4), 1);
	assert_true(is(c[0].name, "send_email"));
	assert_true(is(c[0].args, "{\"to\": \"x@evil.example\"}"));
	/* a tool block with no input deltas: its own input */
	assert_int_equal(calls(SHAPE_ANTHROPIC, "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
	                                        "{\"type\":\"tool_use\",\"name\":\"f\",\"input\":{\"a\":1}}}\n\n", c, 4), 1);
	assert_true(is(c[0].args, "{\"a\":1}"));
	/* input for a block that never started as a tool call */
	assert_int_equal(calls(SHAPE_ANTHROPIC, "data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":"
	                                        "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n", c, 4), -1);
}

static void gemini_chunks(void **st)
{
	(void)st;
	struct tool_call c[4];
	const char *body = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}\r\n\r\n"
	                   "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"send_email\","
	                   "\"args\":{\"to\":\"x\"}}}]}}],\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n";
	assert_int_equal(calls(SHAPE_GEMINI, body, c, 4), 1);
	assert_true(is(c[0].name, "send_email") && is(c[0].args, "{\"to\":\"x\"}"));
}

static void unreadable_streams(void **st)
{
	(void)st;
	struct tool_call c[2];
	static const struct { enum err_shape shape; const char *body; } bad[] = {
		/* arguments that never become one JSON document */
		{ SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\","
		                "\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n" },
		/* two documents in one: {} followed by {} */
		{ SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\","
		                "\"arguments\":\"{}{}\"}}]}}]}\n\n" },
		/* a call with no name */
		{ SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
		                "{\"arguments\":\"{}\"}}]}}]}\n\n" },
		/* an event that is not JSON, or has a duplicate key */
		{ SHAPE_OPENAI, "data: {oops\n\n" },
		{ SHAPE_OPENAI, "data: {\"choices\":[],\"choices\":[]}\n\n" },
		{ SHAPE_ANTHROPIC, "data: [1,2]\n\n" },
		/* a custom tool's free text (not read in streams) */
		{ SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"custom\":{\"name\":\"f\","
		                "\"input\":\"rm -rf\"}}]}}]}\n\n" },
		/* more calls than the caller checks */
		{ SHAPE_GEMINI, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"a\"}},"
		                "{\"functionCall\":{\"name\":\"b\"}},{\"functionCall\":{\"name\":\"c\"}}]}}]}\n\n" },
		/* a shape whose streams are not read */
		{ SHAPE_COHERE, "data: {}\n\n" },
		{ SHAPE_BEDROCK, "data: {}\n\n" },
		/* an index that is not a whole number */
		{ SHAPE_OPENAI, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":\"0\",\"function\":"
		                "{\"name\":\"f\"}}]}}]}\n\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (calls(bad[i].shape, bad[i].body, c, 2) != -1)
			fail_msg("case %zu read as harmless: %s", i, bad[i].body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sse_events),
		cmocka_unit_test(openai_chat_fragments),
		cmocka_unit_test(openai_responses_stream),
		cmocka_unit_test(anthropic_blocks),
		cmocka_unit_test(gemini_chunks),
		cmocka_unit_test(unreadable_streams),
	};
	return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
