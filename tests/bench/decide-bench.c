/* decide-bench: the request decision alone, in process, on realistic agent calls:
 * no sockets, no SPOP framing, so what it measures is the agent's reading and
 * deciding. Prints CPU ns per decision for each body (and, run under
 * `valgrind --tool=cachegrind`, gives exact instruction counts that a noisy
 * machine cannot disturb). Built against any tree with the same request API, so
 * an older build can be measured the same way.
 *
 * usage: decide-bench [iterations [body-size]]   (default 200000, all sizes) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"
#include "provider.h"
#include "request.h"

static size_t put_name(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)n; /* every header here is shorter than 240 bytes: a one-byte varint */
	memcpy(p + 1, s, n);
	return n + 1;
}

/* An agent's chat call of about `size` bytes: a system prompt, turns with tool
 * calls and results, and five tool schemas, the way SDKs write them (newlines
 * escaped, some non-ASCII). */
static char *agent_body(size_t size, size_t *len)
{
	char *b = malloc(size + 4096);
	size_t o = (size_t)sprintf(b, "{\"model\":\"gpt-4o-mini\",\"max_tokens\":800,\"temperature\":0.2,\"messages\":["
	                              "{\"role\":\"system\",\"content\":\"You are a support agent for Example Corp.\\n"
	                              "Answer briefly; use the tools when a lookup helps. Never share internal notes.\"}");
	int turn = 0;
	while (o < size - 1200) {
		o += (size_t)sprintf(b + o,
		                     ",{\"role\":\"user\",\"content\":\"Order %d arrived damaged \\u2014 the box was crushed and "
		                     "two items are broken. Can you check the status and arrange a replacement?\\n"
		                     "Thanks, M\\u00fcller\"}"
		                     ",{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_%d\",\"type\":"
		                     "\"function\",\"function\":{\"name\":\"lookup_order\",\"arguments\":\"{\\\"order_id\\\":"
		                     "\\\"%d\\\"}\"}}]}"
		                     ",{\"role\":\"tool\",\"tool_call_id\":\"call_%d\",\"content\":\"{\\\"status\\\":\\\"delivered"
		                     "\\\",\\\"carrier\\\":\\\"DHL\\\",\\\"items\\\":3}\"}",
		                     40000 + turn, turn, 40000 + turn, turn);
		turn++;
	}
	o += (size_t)sprintf(b + o, "],\"tools\":[");
	static const char *const tools[] = { "lookup_order", "create_replacement", "refund", "escalate", "send_email" };
	for (int i = 0; i < 5; i++)
		o += (size_t)sprintf(b + o,
		                     "%s{\"type\":\"function\",\"function\":{\"name\":\"%s\",\"description\":\"Tool %d of the "
		                     "support desk\",\"parameters\":{\"type\":\"object\",\"properties\":{\"order_id\":{\"type\":"
		                     "\"string\"},\"reason\":{\"type\":\"string\"}},\"required\":[\"order_id\"]}}}",
		                     i ? "," : "", tools[i], i);
	o += (size_t)sprintf(b + o, "]}");
	*len = o;
	return b;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	static struct provider_table providers;
	providers_builtin(&providers);
	struct request_cfg cfg = { .providers = &providers };
	static struct auth auth;
	char err[256];
	if (policy_parse(policy_default_json, strlen(policy_default_json), &auth.policy, err, sizeof(err)) < 0) {
		fprintf(stderr, "decide-bench: default policy: %s\n", err);
		return 1;
	}
	struct decide_env env = { .auth = &auth, .now = 1800000000 };

	uint8_t hdrs[1024];
	size_t h = 0;
	const char *pairs[][2] = {
		{ "host", "llm.example.internal" }, { "content-type", "application/json" },
		{ "authorization", "Bearer sk-proj-bench0000000000000000000000" }, { "user-agent", "OpenAI/Python 1.52.0" },
		{ "accept", "application/json" }, { "x-stainless-lang", "python" }, { "x-archestra-agent-id", "support-bot" },
		{ "x-archestra-session-id", "conv-4711" }, { "x-archestra-execution-id", "run-2026-12-02-001" },
		{ "content-length", "0" },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		h += put_name(hdrs + h, pairs[i][0]);
		h += put_name(hdrs + h, pairs[i][1]);
	}
	hdrs[h++] = 0;
	hdrs[h++] = 0;

	size_t sizes[] = { 2048, 11000, 50000 };
	size_t only = argc > 2 ? (size_t)atol(argv[2]) : 0;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		if (only && sizes[s] != only)
			continue;
		size_t blen;
		char *body = agent_body(sizes[s], &blen);
		struct spop_msg m = { .name = { (const uint8_t *)"archestra-req", 13 }, .nargs = 7 };
		m.args[0] = (struct spop_kv){ { (const uint8_t *)"method", 6 }, { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"POST", 4 } } };
		m.args[1] = (struct spop_kv){ { (const uint8_t *)"path", 4 },
		                              { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"/v1/openai/chat/completions", 27 } } };
		m.args[2] = (struct spop_kv){ { (const uint8_t *)"hdrs", 4 }, { .type = SPOP_T_BINARY, .v.s = { hdrs, h } } };
		m.args[3] = (struct spop_kv){ { (const uint8_t *)"body", 4 }, { .type = SPOP_T_BINARY, .v.s = { (const uint8_t *)body, blen } } };
		m.args[4] = (struct spop_kv){ { (const uint8_t *)"body_len", 8 }, { .type = SPOP_T_INT32, .v.i = (int64_t)blen } };
		m.args[5] = (struct spop_kv){ { (const uint8_t *)"body_size", 9 }, { .type = SPOP_T_INT32, .v.i = (int64_t)blen } };
		m.args[6] = (struct spop_kv){ { (const uint8_t *)"query", 5 }, { .type = SPOP_T_NULL } };
		struct req_decision d;
		request_decide(&cfg, &env, &m, &d);
		if (d.status) {
			fprintf(stderr, "decide-bench: the %zu-byte call was refused: %d %s\n", blen, d.status, d.message);
			return 1;
		}
		long n = sizes[s] > 4096 ? iters / 8 : iters;
		struct timespec t0, t1;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
		for (long i = 0; i < n; i++)
			request_decide(&cfg, &env, &m, &d);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
		double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n;
		printf("decide body=%zu decisions=%ld cpu_ns_per_decision=%.0f MB_per_s=%.0f\n", blen, n, ns,
		       (double)blen / ns * 1e3);
		free(body);
	}
	policy_free(&auth.policy);
	return 0;
}
