/* Unit tests of usage: the token counts in each provider's response body. Bodies
 * follow the providers' API references. */
#include "testutil.h"

#include "usage.h"

static void usage_openai(void **st)
{
	(void)st;
	struct usage u;
	const char *chat = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
	                   "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],"
	                   "\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":300,\"total_tokens\":1500,"
	                   "\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
	                   "\"completion_tokens_details\":{\"reasoning_tokens\":128}}}";
	assert_true(usage_extract(SHAPE_OPENAI, S(chat), &u));
	assert_int_equal(u.in, 1200);
	assert_int_equal(u.out, 300);
	assert_int_equal(u.cached, 1024);
	assert_int_equal(u.reasoning, 128);
	const char *responses = "{\"id\":\"resp_1\",\"object\":\"response\",\"output\":[],\"usage\":{\"input_tokens\":50,"
	                        "\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":20,"
	                        "\"output_tokens_details\":{\"reasoning_tokens\":5},\"total_tokens\":70}}";
	assert_true(usage_extract(SHAPE_OPENAI, S(responses), &u));
	assert_int_equal(u.in, 50);
	assert_int_equal(u.out, 20);
	assert_int_equal(u.cached, 10);
	assert_int_equal(u.reasoning, 5);
}

static void usage_anthropic(void **st)
{
	(void)st;
	struct usage u;
	const char *msg = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
	                  "\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],"
	                  "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":100,"
	                  "\"cache_read_input_tokens\":2000,\"output_tokens\":45}}";
	assert_true(usage_extract(SHAPE_ANTHROPIC, S(msg), &u));
	assert_int_equal(u.in, 2120);
	assert_int_equal(u.out, 45);
	assert_int_equal(u.cached, 2000);
}

static void usage_gemini(void **st)
{
	(void)st;
	struct usage u;
	const char *g = "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\","
	                "\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":90,"
	                "\"candidatesTokenCount\":12,\"thoughtsTokenCount\":30,\"cachedContentTokenCount\":64,"
	                "\"totalTokenCount\":132},\"modelVersion\":\"gemini-2.5-flash\"}";
	assert_true(usage_extract(SHAPE_GEMINI, S(g), &u));
	assert_int_equal(u.in, 90);
	assert_int_equal(u.out, 42);
	assert_int_equal(u.reasoning, 30);
	assert_int_equal(u.cached, 64);
	/* An OpenAI-shaped body read as Gemini has no usageMetadata. */
	assert_false(usage_extract(SHAPE_GEMINI, S("{\"usage\":{\"prompt_tokens\":1}}"), &u));
	/* Cohere v2: the tokens the model used, else the billed units */
	assert_true(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":3},"
	                                          "\"tokens\":{\"input_tokens\":71,\"output_tokens\":3}}}"), &u));
	assert_int_equal(u.in, 71);
	assert_int_equal(u.out, 3);
	assert_true(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":2}}}"),
	                          &u));
	assert_int_equal(u.in, 5);
	assert_int_equal(u.out, 2);
	assert_false(usage_extract(SHAPE_COHERE, S("{\"usage\":{\"prompt_tokens\":1}}"), &u));
	/* Bedrock Converse: camelCase, cache reads and writes are input too */
	assert_true(usage_extract(SHAPE_BEDROCK, S("{\"usage\":{\"inputTokens\":10,\"outputTokens\":4,\"totalTokens\":14,"
	                                           "\"cacheReadInputTokens\":6,\"cacheWriteInputTokens\":2}}"), &u));
	assert_int_equal(u.in, 18);
	assert_int_equal(u.cached, 6);
	assert_int_equal(u.out, 4);
	assert_false(usage_extract(SHAPE_BEDROCK, S("{\"usage\":{\"prompt_tokens\":1}}"), &u));
}

static void usage_missing_truncated_or_not_json(void **st)
{
	(void)st;
	struct usage u;
	const char *bad[] = {
		"{\"id\":\"x\",\"choices\":[]}",                                      /* no usage */
		"{\"usage\":{\"prompt_tokens\":\"12\"}}",                             /* not numbers */
		"{\"choices\":[{\"message\":{\"content\":\"long answer cut off",      /* truncated before usage */
		"<html>502 Bad Gateway</html>",                                       /* not JSON */
		"",
		"{\"usage\":[1,2]}",
		"{\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":-1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (usage_extract(SHAPE_OPENAI, S(bad[i]), &u))
			fail_msg("case %zu counted", i);
	/* Usage before a truncation point still counts. */
	assert_true(usage_extract(SHAPE_OPENAI, S("{\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3},\"choi"), &u));
	assert_int_equal(u.in, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(usage_openai),
		cmocka_unit_test(usage_anthropic),
		cmocka_unit_test(usage_gemini),
		cmocka_unit_test(usage_missing_truncated_or_not_json),
	};
	return cmocka_run_group_tests_name("usage", tests, NULL, NULL);
}
