/* dlp-bench: DLP scan throughput on a 100 KB chat body with every built-in
 * detector on, against a plain memchr pass over the same bytes (the ceiling),
 * measured in interleaved rounds in one run. Prints MB/s per core and the ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "dlp.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: one core's work */
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Prose, code and data as agents send it: words, hyphens, snake_case, dates,
 * numbers, a capital I now and then, JSON escapes. No secret. */
static size_t make_body(char *b, size_t cap)
{
	static const char *const words[] = {
		"the", "agent", "should", "summarise", "I", "think", "this", "follow-up", "report", "for", "Q3", "revenue",
		"user_id", "get_weather", "is", "2026-11-25", "at", "10:30", "and", "version", "1.4.2", "of", "the",
		"service", "returned", "HTTP", "503", "after", "1200", "ms;", "please", "retry", "with", "backoff,", "JSON",
		"payload", "config_file", "was", "updated", "by", "the", "on-call", "engineer", "In", "short", "we", "need",
		"to", "re-run", "the", "pipeline", "\\n", "def", "main():", "return", "x", "+", "42", "Jira", "ticket",
	};
	size_t n = 0, nw = sizeof(words) / sizeof(words[0]);
	unsigned seed = 12345;
	n += (size_t)snprintf(b + n, cap - n, "{\"model\":\"gpt-4o-mini\",\"max_tokens\":2048,\"messages\":[");
	int msg = 0;
	while (n + 2048 < cap) {
		n += (size_t)snprintf(b + n, cap - n, "%s{\"role\":\"%s\",\"content\":\"", msg ? "," : "",
		                      msg % 2 ? "assistant" : "user");
		for (int w = 0; w < 150 && n + 64 < cap; w++) {
			seed = seed * 1103515245u + 12345u;
			n += (size_t)snprintf(b + n, cap - n, "%s ", words[(seed >> 16) % nw]);
		}
		n += (size_t)snprintf(b + n, cap - n, "\"}");
		msg++;
	}
	n += (size_t)snprintf(b + n, cap - n, "]}");
	return n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	size_t cap = 100 * 1024;
	char *body = malloc(cap);
	size_t n = make_body(body, cap);

	struct dlp_cfg cfg = { 0 };
	char err[256];
	cJSON *o = cJSON_Parse("{\"detectors\":{\"all\":\"deny\"}}");
	if (dlp_parse(&cfg, o, err, sizeof(err)) < 0) {
		fprintf(stderr, "dlp-bench: %s\n", err);
		return 1;
	}
	cJSON_Delete(o);
	struct dlp_result r;
	dlp_scan(&cfg, (struct spop_slice){ (const uint8_t *)body, n }, &r);
	if (r.found) {
		fprintf(stderr, "dlp-bench: the benchmark body matched 0x%x; it must hold no secret\n", r.found);
		return 1;
	}

	double dlp[32], mc[32];
	if (rounds > 32)
		rounds = 32;
	volatile size_t sink = 0;
	for (int k = 0; k < rounds; k++) {
		int iters = 4000;
		double t0 = now();
		for (int i = 0; i < iters; i++) {
			dlp_scan(&cfg, (struct spop_slice){ (const uint8_t *)body, n }, &r);
			sink += r.found;
		}
		double t1 = now();
		for (int i = 0; i < iters; i++) {
			const char *p = memchr(body, 1, n); /* absent: one full pass */
			sink += p != NULL;
			__asm__ volatile("" ::: "memory");
		}
		double t2 = now();
		dlp[k] = (double)n * iters / (t1 - t0) / 1e6;
		mc[k] = (double)n * iters / (t2 - t1) / 1e6;
	}
	qsort(dlp, (size_t)rounds, sizeof(double), cmp);
	qsort(mc, (size_t)rounds, sizeof(double), cmp);
	double md = dlp[rounds / 2], mm = mc[rounds / 2];
	printf("dlp scan, %zu-byte chat body, all %d built-in detectors: %.0f MB/s per core (memchr ceiling %.0f MB/s, "
	       "ratio %.2f; medians of %d rounds; target >= 1000 MB/s)\n",
	       n, DLP_BUILTIN, md, mm, md / mm, rounds);
	dlp_free(&cfg);
	free(body);
	return 0;
}
