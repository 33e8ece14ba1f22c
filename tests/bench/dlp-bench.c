/* dlp-bench: DLP scan throughput on a 100 KB chat body with every built-in
 * detector on, against a plain memchr pass over the same bytes (the ceiling),
 * measured in interleaved rounds in one run. Prints MB/s per core and the ratio.
 * Then the adversarial table: for each detector the most expensive 256 KB body we
 * know (its trigger repeated so every confirmer runs as far as it can), timed
 * beside 256 KB of prose in the same rounds, as MB/s and cost per byte relative
 * to prose. A scan that is quadratic anywhere shows there as a ratio in the
 * hundreds. */
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

/* pat repeated over at most cap bytes. */
static size_t repeat(char *b, size_t cap, const char *pat)
{
	size_t pl = strlen(pat), n = 0;
	for (; n + pl <= cap; n += pl)
		memcpy(b + n, pat, pl);
	return n;
}

/* Adversarial bodies: name, the repeated unit, and why it hurts a naive confirmer. */
static const struct { const char *name, *pat; } hostile[] = {
	{ "openai sk-", "sk-" },                 /* every '-' follows "sk" at a word start */
	{ "anthropic sk-ant-", "sk-ant-" },
	{ "gitlab glpat-", "glpat-" },
	{ "slack xoxb-", "xoxb-" },
	{ "private key BEGIN", "-----BEGIN " },  /* each looks 40 bytes ahead for PRIVATE KEY */
	{ "github ghp_", "ghp_" },
	{ "github github_pat_", "github_pat_" },
	{ "aws AKIA", "AKIAIOSFODNN7EXAMPL " },  /* 15 of 16 */
	{ "google AIza", "-AIza" },
	{ "jwt -eyJ", "-eyJ" },                  /* one endless header run */
	{ "jwt eyJ chain", "eyJhbGciOiJI.eyJzdWIiOiIx." }, /* each payload is the next header */
	{ "email @", "a@b.c" },
	{ "card digits", "4111 1111 1111 1112 " }, /* Luhn fails */
	{ "phone digits", "+1 415 555 2671 2345 6 " }, /* 17 digits: too long */
	{ "iban groups", "AB12 " },          /* 34 characters read at every group */
	{ "iban checksums", "AB12 AB12 AB12 AB12 AB12 AB12 AB12 AB12 AB. " }, /* mod-97 at 5 starts */
	{ "all dashes", "-" },
	{ "trigger mix", "0-@IJ_9 " },
	{ "custom PRJ-", "PRJ-" },               /* the anchor every 4 bytes */
};

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* MB/s of one body: scans repeated for at least 20 ms of CPU. */
static double mbps(const struct dlp_cfg *cfg, const char *b, size_t n)
{
	struct dlp_result r;
	int iters = 0;
	double t0 = now(), t;
	do {
		dlp_scan(cfg, (struct spop_slice){ (const uint8_t *)b, n }, &r);
		iters++;
		t = now() - t0;
	} while (t < 0.02);
	return (double)n * iters / t / 1e6;
}

static int adversarial(int rounds)
{
	size_t cap = 256 * 1024, nh = sizeof(hostile) / sizeof(hostile[0]);
	struct dlp_cfg cfg = { 0 };
	char err[256];
	cJSON *o = cJSON_Parse("{\"detectors\":{\"all\":\"deny\"},\"custom\":[{\"name\":\"project_code\","
	                       "\"anchor\":\"PRJ-\",\"regex\":\"PRJ-[0-9]{6}\"}]}");
	if (dlp_parse(&cfg, o, err, sizeof(err)) < 0) {
		fprintf(stderr, "dlp-bench: %s\n", err);
		return 1;
	}
	cJSON_Delete(o);
	char *prose = malloc(cap), *b = malloc(cap);
	size_t np = make_body(prose, cap);
	double pr[32 * 32], hr[32], ratio[32], worst = 0;
	const char *worst_name = "";
	printf("\nadversarial 256 KB bodies, all built-in detectors and one custom (anchor PRJ-), medians of %d rounds:\n"
	       "  %-20s %10s %8s  %s\n", rounds, "body", "MB/s", "x prose", "verdict");
	for (size_t h = 0; h < nh; h++) {
		size_t n = repeat(b, cap, hostile[h].pat);
		for (int k = 0; k < rounds; k++) { /* prose beside it: the same machine state */
			double p = pr[h * (size_t)rounds + (size_t)k] = mbps(&cfg, prose, np);
			hr[k] = mbps(&cfg, b, n);
			ratio[k] = p / hr[k];
		}
		qsort(hr, (size_t)rounds, sizeof(double), cmp);
		qsort(ratio, (size_t)rounds, sizeof(double), cmp);
		struct dlp_result r;
		dlp_scan(&cfg, (struct spop_slice){ (const uint8_t *)b, n }, &r);
		double x = ratio[rounds / 2];
		printf("  %-20s %10.0f %8.1f  %s\n", hostile[h].name, hr[rounds / 2], x, r.found ? dlp_reason(&cfg, r.deny) : "-");
		if (x > worst) {
			worst = x;
			worst_name = hostile[h].name;
		}
	}
	qsort(pr, nh * (size_t)rounds, sizeof(double), cmp);
	printf("  %-20s %10.0f %8.1f  (measured before each of the above)\nworst: %s at %.1fx the per-byte cost of prose (target <= 10x)\n",
	       "prose", pr[rounds / 2], 1.0, worst_name, worst);
	dlp_free(&cfg);
	free(prose);
	free(b);
	return 0;
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
	return adversarial(rounds);
}
