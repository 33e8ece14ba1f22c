/* spendcli.c: the `spend` subcommand: what each budget and rate limit has used
 * in its current window, from the fleet's Redis, and resetting it. I/O. */
#include "spendcli.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authload.h"
#include "bstore.h"
#include "budget.h"
#include "config.h"
#include "request.h"

static const char usage[] =
	"usage: archestra-spoa spend [--config FILE] [--redis ADDR]\n"
	"       archestra-spoa spend reset ID [SCOPE] [--config FILE] [--redis ADDR]\n"
	"  Lists what each budget and rate limit of the policy has used in its current\n"
	"  window, per scope value, from Redis (store.redis in the config, or --redis).\n"
	"  reset forgets a limit's spend: all of it, or one scope value's (a key id,\n"
	"  user, agent, claim value, provider or model; nothing for scope \"all\").\n"
	"  Running agents see a reset within a second.\n";

static redisContext *connect_redis(const char *addr)
{
	struct timeval tv = { 2, 0 };
	struct store_addr sa;
	char e[128];
	if (config_parse_store_addr(addr, &sa, e, sizeof(e)) < 0)
		return NULL;
	return sa.is_unix ? redisConnectUnixWithTimeout(sa.host, tv) : redisConnectWithTimeout(sa.host, sa.port, tv);
}

static long long field(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
}

/* Keys matching pattern, each passed to fn. Returns how many, or -1. */
static long scan(redisContext *c, const char *pattern, void (*fn)(redisContext *, const char *, void *), void *arg)
{
	char cursor[32] = "0";
	long n = 0;
	do {
		redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			if (r)
				freeReplyObject(r);
			return -1;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++, n++)
			fn(c, r->element[1]->element[i]->str, arg);
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return n;
}

struct row {
	uint64_t hash;
	char who[128];
	long long v[BM_COUNT];
};

struct listing {
	const struct budget *b;
	const char *prefix;
	char labels[WIN_BUCKETS][32];     /* the current window's buckets */
	int nlabels;
	struct row rows[1024];
	int nrows;
};

static void add_key(redisContext *c, const char *key, void *arg)
{
	struct listing *l = arg;
	/* <prefix>:{<id>:<hash>}:<label> */
	const char *open = strchr(key, '{'), *close = open ? strchr(open, '}') : NULL;
	if (!close || close[1] != ':')
		return;
	const char *label = close + 2;
	bool current = false;
	for (int i = 0; i < l->nlabels && !current; i++)
		current = strcmp(label, l->labels[i]) == 0;
	if (!current)
		return;
	const char *colon = memchr(open, ':', (size_t)(close - open));
	if (!colon)
		return;
	uint64_t h = strtoull(colon + 1, NULL, 16);
	redisReply *r = redisCommand(c, "HMGET %s u t r s", key);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		if (r)
			freeReplyObject(r);
		return;
	}
	struct row *row = NULL;
	for (int i = 0; i < l->nrows; i++)
		if (l->rows[i].hash == h)
			row = &l->rows[i];
	if (!row && l->nrows < (int)(sizeof(l->rows) / sizeof(l->rows[0]))) {
		row = &l->rows[l->nrows++];
		memset(row, 0, sizeof(*row));
		row->hash = h;
	}
	if (row) {
		for (int m = 0; m < BM_COUNT; m++)
			row->v[m] += field(r->element[m]);
		if (!row->who[0] && r->element[3]->type == REDIS_REPLY_STRING)
			snprintf(row->who, sizeof(row->who), "%s", r->element[3]->str);
	}
	freeReplyObject(r);
}

static void print_measure(int m, long long v, int64_t limit)
{
	if (m == BM_USD)
		printf("  usd %lld.%06lld", v / 1000000, v % 1000000);
	else
		printf("  %s %lld", bmeasure_names[m], v);
	if (limit) {
		if (m == BM_USD)
			printf("/%lld.%02lld", (long long)(limit / 1000000), (long long)(limit % 1000000 / 10000));
		else
			printf("/%lld", (long long)limit);
		if (v >= limit)
			printf(" OVER");
	}
}

static int list(redisContext *c, const struct config *cfg, const struct budget_set *set)
{
	int64_t now = bstore_now();
	struct listing *l = calloc(1, sizeof(*l));
	if (!l)
		return 1;
	for (int i = 0; set && i < set->n; i++) {
		const struct budget *b = &set->b[i];
		memset(l, 0, sizeof(*l));
		l->b = b;
		l->prefix = cfg->store.prefix;
		int64_t cur = window_bucket(&b->win, now);
		l->nlabels = window_nbuckets(&b->win);
		for (int k = 0; k < l->nlabels; k++)
			window_label(&b->win, cur - k, l->labels[k], sizeof(l->labels[k]));
		char pattern[128];
		snprintf(pattern, sizeof(pattern), "%s:{%s:*}:*", cfg->store.prefix, b->id);
		if (scan(c, pattern, add_key, l) < 0) {
			fprintf(stderr, "archestra-spoa: spend: reading Redis failed: %s\n", c->err ? c->errstr : "bad answer");
			free(l);
			return 1;
		}
		int64_t start, end;
		window_span(&b->win, cur, &start, &end);
		printf("%s %s (scope %s, %s%s%s): %d scope value%s\n", b->kind == BK_RATE ? "rate_limit" : "budget", b->id,
		       budget_scope_names[b->scope], b->win.kind == WIN_ROLLING ? "rolling window" : l->labels[0],
		       b->tz_name[0] ? " " : "", b->tz_name, l->nrows, l->nrows == 1 ? "" : "s");
		for (int r = 0; r < l->nrows; r++) {
			printf("  %-24s", l->rows[r].who[0] ? l->rows[r].who : b->scope == BS_ALL ? "(all)" : "(unnamed)");
			for (int m = 0; m < BM_COUNT; m++)
				if (b->limit[m] || l->rows[r].v[m])
					print_measure(m, l->rows[r].v[m], b->limit[m]);
			printf("\n");
		}
	}
	free(l);
	if (!set || !set->n)
		printf("the policy has no budgets or rate limits\n");
	return 0;
}

static void del_key(redisContext *c, const char *key, void *arg)
{
	(void)arg;
	redisReply *r = redisCommand(c, "UNLINK %s", key);
	if (r)
		freeReplyObject(r);
}

static int reset(redisContext *c, const struct config *cfg, const struct budget_set *set, const char *id,
                 const char *who)
{
	const struct budget *b = budget_find(set, (struct spop_slice){ (const uint8_t *)id, strlen(id) });
	if (!b) {
		fprintf(stderr, "archestra-spoa: spend reset: the policy has no budget or rate limit \"%s\"\n", id);
		return 2;
	}
	char pattern[128];
	if (who)
		snprintf(pattern, sizeof(pattern), "%s:{%s:%016llx}:*", cfg->store.prefix, b->id,
		         (unsigned long long)budget_hash(b->scope, (struct spop_slice){ (const uint8_t *)who, strlen(who) }));
	else
		snprintf(pattern, sizeof(pattern), "%s:{%s:*}:*", cfg->store.prefix, b->id);
	long n = scan(c, pattern, del_key, NULL);
	/* and the fleet's note that the scope (or any) reached the limit */
	redisReply *r = who ? redisCommand(c, "ZREM %s:over:{%s} %016llx", cfg->store.prefix, b->id,
	                                   (unsigned long long)budget_hash(b->scope, (struct spop_slice){
	                                           (const uint8_t *)who, strlen(who) }))
	                    : redisCommand(c, "UNLINK %s:over:{%s}", cfg->store.prefix, b->id);
	if (r)
		freeReplyObject(r);
	if (n < 0) {
		fprintf(stderr, "archestra-spoa: spend reset: Redis failed: %s\n", c->err ? c->errstr : "bad answer");
		return 1;
	}
	printf("reset %s%s%s: %ld key%s removed\n", b->id, who ? " for " : "", who ? who : "", n, n == 1 ? "" : "s");
	return 0;
}

int spend_cli(struct config *cfg, int argc, char **argv)
{
	/* Positional words apart; the flags go to the usual parser. */
	const char *pos[3] = { 0 };
	int npos = 0;
	char *flags[64];
	int nflags = 0;
	flags[nflags++] = argv[0];
	for (int i = 1; i < argc && nflags < 62; i++) {
		if (strncmp(argv[i], "--", 2) == 0) {
			flags[nflags++] = argv[i];
			if (strchr(argv[i], '=') == NULL && i + 1 < argc && strcmp(argv[i], "--help") != 0)
				flags[nflags++] = argv[++i];
		} else if (npos < 3) {
			pos[npos++] = argv[i];
		} else {
			fprintf(stderr, "archestra-spoa: spend: unexpected '%s'\n%s", argv[i], usage);
			return 2;
		}
	}
	flags[nflags] = NULL;
	char err[CONFIG_ERR_LEN];
	switch (config_from_args(cfg, nflags, flags, err, sizeof(err))) {
	case CLI_HELP:
		fputs(usage, stdout);
		return 0;
	case CLI_ERROR:
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 2;
	default:
		break;
	}
	bool do_reset = npos >= 1 && strcmp(pos[0], "reset") == 0;
	if ((npos && !do_reset) || (do_reset && npos < 2)) {
		fputs(usage, stderr);
		return 2;
	}
	if (!cfg->store.redis[0]) {
		fprintf(stderr, "archestra-spoa: spend: no Redis configured (store.redis in the config, or --redis): "
		                "without it each agent counts on its own\n");
		return 2;
	}
	struct auth *a = auth_load(cfg, NULL, 0, err, sizeof(err));
	if (!a) {
		fprintf(stderr, "archestra-spoa: %s\n", err);
		return 2;
	}
	redisContext *c = connect_redis(cfg->store.redis);
	if (!c || c->err) {
		fprintf(stderr, "archestra-spoa: spend: cannot reach Redis at %s: %s\n", cfg->store.redis,
		        c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		auth_free(a);
		return 1;
	}
	int rc = do_reset ? reset(c, cfg, a->policy.budgets, pos[1], npos > 2 ? pos[2] : NULL)
	                  : list(c, cfg, a->policy.budgets);
	redisFree(c);
	auth_free(a);
	return rc;
}
