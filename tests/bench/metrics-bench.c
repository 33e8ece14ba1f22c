/* metrics-bench: what recording metrics costs the decision path. Runs the agent's
 * archestra-req handler on a 2 KB chat call (with agent and run ids), and its
 * archestra-res handler on a response with usage, in process, with no metrics,
 * with statsd (formatted, then discarded by a null sink, as an unreachable
 * collector would), with Prometheus (the worker's registry), and with both.
 * Modes alternate for several rounds; the median CPU ns per message is printed.
 *
 * usage: metrics-bench [iterations [rounds]]   (default 200000, 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "handler.h"
#include "policy.h"
#include "pricing.h"
#include "prom.h"
#include "provider.h"
#include "request.h"
#include "statsd.h"

static size_t put_name(uint8_t *p, const char *s)
{
	size_t n = strlen(s);
	p[0] = (uint8_t)n; /* every name here is shorter than 240 bytes: a one-byte varint */
	memcpy(p + 1, s, n);
	return n + 1;
}

static size_t hdrs_bin(uint8_t *p, const char *const (*pairs)[2], size_t n)
{
	size_t h = 0;
	for (size_t i = 0; i < n; i++) {
		h += put_name(p + h, pairs[i][0]);
		h += put_name(p + h, pairs[i][1]);
	}
	p[h++] = 0;
	p[h++] = 0;
	return h;
}

static struct spop_kv kv_str(const char *name, int type, const void *v, size_t n)
{
	return (struct spop_kv){ { (const uint8_t *)name, strlen(name) }, { .type = type, .v.s = { v, n } } };
}

static struct spop_kv kv_int(const char *name, int64_t i)
{
	return (struct spop_kv){ { (const uint8_t *)name, strlen(name) }, { .type = SPOP_T_INT64, .v.i = i } };
}

static void null_sink(void *arg, const uint8_t *d, size_t n)
{
	(void)arg;
	(void)d;
	(void)n;
}

static struct auth auth;

static const struct auth *get_auth(void *arg)
{
	(void)arg;
	return &auth;
}

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (rounds < 1 || rounds > 64)
		rounds = 5;
	static struct provider_table providers;
	static struct price_table prices;
	providers_builtin(&providers);
	prices_builtin(&prices);
	char err[256];
	if (policy_parse(policy_default_json, strlen(policy_default_json), &auth.policy, err, sizeof(err)) < 0) {
		fprintf(stderr, "metrics-bench: default policy: %s\n", err);
		return 1;
	}
	struct request_cfg rcfg = { .providers = &providers, .inspect_responses = true };

	/* The request: a 2 KB chat call from an agent, within a run. */
	static const char *const req_pairs[][2] = {
		{ "host", "llm.example.internal" }, { "content-type", "application/json" },
		{ "authorization", "Bearer sk-proj-bench0000000000000000000000" }, { "x-archestra-agent-id", "support-bot" },
		{ "x-archestra-session-id", "conv-4711" }, { "x-archestra-run-id", "run-2026-12-02-001" },
	};
	uint8_t rqh[512], rsh[256];
	size_t rqhl = hdrs_bin(rqh, req_pairs, sizeof(req_pairs) / sizeof(req_pairs[0]));
	char body[2300];
	int bl = snprintf(body, sizeof(body), "{\"model\":\"gpt-4o-mini\",\"max_tokens\":800,\"messages\":[");
	for (int i = 0; bl < 2000; i++)
		bl += snprintf(body + bl, sizeof(body) - (size_t)bl,
		               "%s{\"role\":\"user\",\"content\":\"Order %d arrived damaged: the box was crushed and two "
		               "items are broken. Can you arrange a replacement?\"}", i ? "," : "", 40000 + i);
	bl += snprintf(body + bl, sizeof(body) - (size_t)bl, "]}");
	struct spop_msg req = { .name = { (const uint8_t *)"archestra-req", 13 }, .nargs = 7 };
	req.args[0] = kv_str("method", SPOP_T_STRING, "POST", 4);
	req.args[1] = kv_str("path", SPOP_T_STRING, "/v1/openai/chat/completions", 27);
	req.args[2] = kv_str("hdrs", SPOP_T_BINARY, rqh, rqhl);
	req.args[3] = kv_str("body", SPOP_T_BINARY, body, (size_t)bl);
	req.args[4] = kv_int("body_len", bl);
	req.args[5] = kv_int("body_size", bl);
	req.args[6] = (struct spop_kv){ { (const uint8_t *)"query", 5 }, { .type = SPOP_T_NULL } };

	/* The response, with the context the request's decision would have sent. */
	static const char *const res_pairs[][2] = { { "content-type", "application/json" } };
	size_t rshl = hdrs_bin(rsh, res_pairs, 1);
	static const char res_body[] =
		"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":"
		"[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"A replacement is on its way.\"},"
		"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":512,\"completion_tokens\":12,\"total_tokens\":524}}";
	struct call_ctx c = { .provider = { (const uint8_t *)"openai", 6 }, .model = { (const uint8_t *)"gpt-4o-mini", 11 },
	                      .start_us = (int64_t)time(NULL) * 1000000 };
	c.id[ID_AGENT] = (struct spop_slice){ (const uint8_t *)"support-bot", 11 };
	char ctx[CTX_MAX];
	size_t cl = ctx_encode(&c, ctx, sizeof(ctx));
	struct spop_msg res = { .name = { (const uint8_t *)"archestra-res", 13 }, .nargs = 6 };
	res.args[0] = kv_int("status", 200);
	res.args[1] = kv_str("hdrs", SPOP_T_BINARY, rsh, rshl);
	res.args[2] = kv_str("body", SPOP_T_BINARY, res_body, sizeof(res_body) - 1);
	res.args[3] = kv_int("body_len", sizeof(res_body) - 1);
	res.args[4] = kv_int("body_size", sizeof(res_body) - 1);
	res.args[5] = kv_str("ctx", SPOP_T_STRING, ctx, cl);

	static struct statsd_cfg sdcfg;
	static struct statsd sd;
	statsd_cfg_defaults(&sdcfg);
	static struct prom_cfg pcfg;
	prom_cfg_defaults(&pcfg);
	pcfg.enabled = true;
	struct prom_reg *pm = prom_reg_new(&pcfg);
	if (!pm)
		return 1;
	static const char *const modes[] = { "no metrics", "statsd", "prometheus", "statsd+prometheus" };
	static double ns[4][2][64];
	static uint8_t ack[65536];
	for (int r = 0; r < rounds; r++) {
		for (int m = 0; m < 4; m++) {
			sdcfg.enabled = m & 1;
			sd = (struct statsd){ .cfg = &sdcfg, .fd = -1, .sink = null_sink };
			struct handler_ctx hc = { .rcfg = &rcfg, .prices = &prices, .sd = &sd, .auth_get = get_auth,
			                          .pm = (m & 2) ? pm : NULL };
			struct spoa_handlers hs = spoa_handlers_archestra;
			hs.arg = &hc;
			const struct spop_msg *msgs[2] = { &req, &res };
			for (int k = 0; k < 2; k++) {
				double t0 = cpu_ns();
				for (long i = 0; i < iters; i++) {
					struct spop_writer w;
					spop_writer_init(&w, ack, sizeof(ack));
					spoa_dispatch(&hs, msgs[k], &w);
					if (i % 1000 == 999)
						statsd_flush(&sd); /* as the worker's timer does */
				}
				ns[m][k][r] = (cpu_ns() - t0) / (double)iters;
			}
			read_scratch_free(&hc.scratch);
		}
	}
	for (int m = 0; m < 4; m++) {
		qsort(ns[m][0], (size_t)rounds, sizeof(double), cmp_double);
		qsort(ns[m][1], (size_t)rounds, sizeof(double), cmp_double);
		printf("metrics-bench %-18s archestra-req %5.0f ns (+%4.0f)   archestra-res %5.0f ns (+%4.0f)\n", modes[m],
		       ns[m][0][rounds / 2], ns[m][0][rounds / 2] - ns[0][0][rounds / 2], ns[m][1][rounds / 2],
		       ns[m][1][rounds / 2] - ns[0][1][rounds / 2]);
	}
	prom_reg_free(pm);
	policy_free(&auth.policy);
	return 0;
}
