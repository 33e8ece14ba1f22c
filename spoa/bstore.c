/* bstore.c: see bstore.h. The I/O shell around budget.h's views. */
#include "bstore.h"

#include <errno.h>
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fasthash.h"
#include "log.h"

#define TABLE_SLOTS   4096        /* chains; entries are few (scopes in use) */
#define FLUSH_MS      10          /* increments wait at most this long to be sent */
#define INFLIGHT_MAX  65536       /* commands awaiting answers: beyond, adds wait in `unsent` */
#define IDLE_REFRESH  10          /* seconds: a scope unused longer is read every IDLE_EVERY ticks... */
#define IDLE_EVERY    10
#define IDLE_EVICT    900         /* ...and forgotten after this, once nothing is pending */

struct entry {
	struct entry *next, *dirty_next;
	char id[BUDGET_ID_MAX];
	size_t id_len;
	uint64_t hash;
	char who[128];                /* the scope's value, when a decision named it */
	size_t who_len;
	struct window win;            /* kind and length only: buckets are numbered by the caller's zone */
	int64_t want_b;               /* the newest bucket a decision asked about */
	int64_t last_use;
	int64_t limit[BM_COUNT];      /* the limit's, as last seen: to tell the fleet when it is reached */
	int64_t over_until;           /* when "reached" stops holding: the window's end, or a bucket on */
	int64_t forget_after;         /* when the last window it was used in is over */
	int64_t announced_b;          /* the bucket in which this agent last said it was reached */
	bool dirty;                   /* on the dirty list: some slot has unsent */
	struct bview view;
};

/* What a command's answer applies to. */
struct pending {
	struct bstore *s;
	uint64_t gen;
	char id[BUDGET_ID_MAX];
	uint64_t hash;
	int64_t b;
	bool is_add;
	int64_t sent[BM_COUNT];
	int over_idx;                 /* -1: a bucket's answer; >= 0: that limit's over-set; -2: ignored */
};

/* Scopes some agent found at a limit, per limit: Redis sorted set
 * <prefix>:over:{<id>} of scope hashes scored by when that stops holding. A
 * scope this agent has not read yet is refused while it is in the set, so a
 * first call to an agent that never saw the scope does not pass a spent budget. */
struct overset {
	char id[BUDGET_ID_MAX];
	uint64_t *h;
	int64_t *until;
	size_t n;
};

struct bstore {
	struct bstore_cfg cfg;
	pthread_mutex_t mu;
	struct overset over[BUDGET_MAX];
	int nover;
	struct entry *table[TABLE_SLOTS];
	struct entry *dirty;
	pthread_t th;
	struct ev_loop *loop;
	ev_async wake, stop;
	ev_timer tick, retry, flush;
	bool running;

	/* store thread only */
	redisAsyncContext *ac;
	bool connecting;
	unsigned backoff_ms;
	uint64_t gen;                 /* connection generation: answers of an older one are dropped */
	int64_t sent_at[INFLIGHT_MAX];/* monotonic ms per command awaiting an answer, in order */
	size_t head, inflight;
	uint64_t ticks;
	struct outcmd *out;           /* commands prepared under mu, sent after */
	size_t nout, capout;
	_Atomic bool want_read;       /* a decision met a scope or window not read yet */

	_Atomic bool healthy;
};

static _Atomic int64_t clock_offset;
static const char *clock_file;

int64_t bstore_now(void)
{
	return (int64_t)time(NULL) + atomic_load_explicit(&clock_offset, memory_order_relaxed);
}

static void clock_read(void)
{
	if (!clock_file)
		return;
	FILE *f = fopen(clock_file, "r");
	long long v = 0;
	if (f) {
		if (fscanf(f, "%lld", &v) == 1)
			atomic_store(&clock_offset, (int64_t)v);
		fclose(f);
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under mu. The scope hash is uniform already; the id tells apart the limits
 * of one scope kind, whose values hash alike. */
static struct entry *find(struct bstore *s, const char *id, size_t idlen, uint64_t hash, bool create)
{
	if (idlen >= BUDGET_ID_MAX)
		return NULL;
	size_t i = (size_t)((hash ^ (idlen * 0x9e3779b97f4a7c15ULL) ^ (uint8_t)id[0]) % TABLE_SLOTS);
	for (struct entry *e = s->table[i]; e; e = e->next)
		if (e->hash == hash && e->id_len == idlen && memcmp(e->id, id, idlen) == 0)
			return e;
	if (!create)
		return NULL;
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->id, id, idlen);
	e->id[idlen] = '\0';
	e->id_len = idlen;
	e->hash = hash;
	e->want_b = INT64_MIN;
	e->announced_b = INT64_MIN;
	bview_init(&e->view);
	e->next = s->table[i];
	s->table[i] = e;
	return e;
}

/* The entry for a budget as the policy states it now: a changed window makes
 * the old buckets meaningless. Under mu. */
static struct entry *entry_for(struct bstore *s, const struct budget *b, uint64_t hash, struct spop_slice who,
                               int64_t now)
{
	struct entry *e = find(s, b->id, b->id_len, hash, true);
	if (!e)
		return NULL;
	if (e->win.kind != b->win.kind || e->win.secs != b->win.secs) {
		if (e->want_b != INT64_MIN || e->last_use)
			bview_init(&e->view);
		e->win.kind = b->win.kind;
		e->win.secs = b->win.secs;
		e->win.tz = NULL;
	}
	if (e->last_use != now) { /* once a second is enough for what follows */
		memcpy(e->limit, b->limit, sizeof(e->limit));
		int64_t start, end;
		if (b->win.kind == WIN_ROLLING) {
			e->over_until = now + b->win.secs / WIN_BUCKETS;
			e->forget_after = now + b->win.secs;
		} else {
			window_span(&b->win, window_bucket(&b->win, now), &start, &end);
			e->over_until = e->forget_after = end;
		}
	}
	if (who.len && !e->who_len) {
		e->who_len = who.len < sizeof(e->who) ? who.len : sizeof(e->who);
		memcpy(e->who, who.ptr, e->who_len);
	}
	e->last_use = now;
	return e;
}

/* Under mu: until when the fleet says this scope is at its limit, or 0. */
static int64_t over_listed(const struct bstore *s, const char *id, uint64_t hash, int64_t now)
{
	for (int i = 0; i < s->nover; i++) {
		if (strcmp(s->over[i].id, id) != 0)
			continue;
		for (size_t k = 0; k < s->over[i].n; k++)
			if (s->over[i].h[k] == hash && s->over[i].until[k] > now)
				return s->over[i].until[k];
		return 0;
	}
	return 0;
}

static bool has_redis(const struct bstore *s)
{
	return s->cfg.redis[0] != '\0';
}

void bstore_set_limits(struct bstore *s, const struct budget_set *set)
{
	if (set && set->n && !has_redis(s))
		LOG(LL_WARN, "budgets_local", "limits=%d msg=\"no store.redis: budgets count per agent; with N agents "
		                              "a limit allows up to N times its size\"", set->n);
	pthread_mutex_lock(&s->mu);
	struct overset old[BUDGET_MAX];
	int nold = s->nover;
	memcpy(old, s->over, sizeof(old));
	memset(s->over, 0, sizeof(s->over));
	s->nover = 0;
	for (int i = 0; set && i < set->n; i++) {
		struct overset *o = &s->over[s->nover++];
		memcpy(o->id, set->b[i].id, sizeof(o->id));
		for (int k = 0; k < nold; k++) /* keep what is known of a limit that stays */
			if (strcmp(old[k].id, o->id) == 0) {
				*o = old[k];
				old[k].h = NULL;
				old[k].until = NULL;
			}
	}
	pthread_mutex_unlock(&s->mu);
	for (int k = 0; k < nold; k++) {
		free(old[k].h);
		free(old[k].until);
	}
}


/* Under mu. */
static int check_locked(struct bstore *s, const struct budget_charge *c, int64_t now, int64_t spent[BM_COUNT],
                        int64_t *retry_after, struct entry **found)
{
	int64_t cur = window_bucket(&c->b->win, now);
	struct entry *e = *found = entry_for(s, c->b, c->hash, c->who, now);
	if (!e) {
		memset(spent, 0, sizeof(int64_t) * BM_COUNT);
		return -1;
	}
	if (e->want_b != cur) {
		e->want_b = cur;
		if (has_redis(s)) { /* a new scope or window: read it now */
			atomic_store(&s->want_read, true);
			ev_async_send(s->loop, &s->wake);
		}
	}
	bview_sum(&e->view, &c->b->win, now, spent);
	int m = budget_over(c->b, spent);
	if (m >= 0 && retry_after)
		*retry_after = budget_retry_after(c->b, &e->view, now, m);
	const struct bslot *sl = &e->view.s[bview_ring(cur)];
	int64_t until;
	if (m < 0 && has_redis(s) && !(sl->b == cur && sl->loaded) && (until = over_listed(s, c->b->id, c->hash, now))) {
		for (m = 0; m < BM_COUNT && !c->b->limit[m]; m++)
			;
		if (retry_after)
			*retry_after = until - now > 1 ? until - now : 1;
	}
	return m;
}

/* Under mu. e: the entry when the caller has it, else NULL. */
static void add_locked(struct bstore *s, const struct budget *b, uint64_t hash, struct spop_slice who, int64_t now,
                       const int64_t add[BM_COUNT], struct entry *e)
{
	int64_t cur = window_bucket(&b->win, now);
	if (!e && !(e = entry_for(s, b, hash, who, now)))
		return;
	struct bslot *sl = bview_slot(&e->view, cur);
	if (!sl) /* the clock went back: counted in the newer bucket, never lost */
		sl = &e->view.s[bview_ring(cur)];
	for (int m = 0; m < BM_COUNT; m++)
		sl->unsent[m] += add[m];
	if (e->want_b < cur)
		e->want_b = cur;
	if (!e->dirty && has_redis(s)) { /* sent by the next flush tick, coalesced */
		e->dirty = true;
		e->dirty_next = s->dirty;
		s->dirty = e;
	}
}

void bstore_add(struct bstore *s, const struct budget *b, uint64_t hash, struct spop_slice who, int64_t now,
                const int64_t add[BM_COUNT])
{
	pthread_mutex_lock(&s->mu);
	add_locked(s, b, hash, who, now, add, NULL);
	pthread_mutex_unlock(&s->mu);
}

int bstore_charge(struct bstore *s, const struct budget_charge *c, int n, int64_t now, bool shadow_all,
                  int64_t (*spent)[BM_COUNT], int *over, int64_t *retry_after)
{
	bool down = has_redis(s) && !atomic_load(&s->healthy);
	int refuse = -1;
	struct entry *e[BUDGET_MAX_CHARGES];
	if (n > BUDGET_MAX_CHARGES)
		n = BUDGET_MAX_CHARGES;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < n; i++) {
		over[i] = check_locked(s, &c[i], now, spent[i], &retry_after[i], &e[i]);
		if (down && c[i].b->deny_on_store_error)
			over[i] = BSTORE_DOWN;
		if (refuse < 0 && over[i] != -1 && !c[i].b->shadow && !shadow_all)
			refuse = i;
	}
	if (refuse < 0) /* the call goes: one request to each limit */
		for (int i = 0; i < n; i++)
			add_locked(s, c[i].b, c[i].hash, c[i].who, now, (const int64_t[BM_COUNT]){ [BM_REQUESTS] = 1 }, e[i]);
	pthread_mutex_unlock(&s->mu);
	return refuse;
}

/* ---- the store thread ---- */

static void key_of(const struct bstore *s, const struct entry *e, int64_t b, char *out, size_t cap)
{
	char label[32];
	window_label(&e->win, b, label, sizeof(label));
	snprintf(out, cap, "%s:{%s:%016llx}:%s", s->cfg.prefix, e->id, (unsigned long long)e->hash, label);
}

/* How long a bucket's key outlives its window. */
static int64_t ttl_of(const struct entry *e)
{
	switch (e->win.kind) {
	case WIN_DAY: return 3 * 86400;
	case WIN_WEEK: return 9 * 86400;
	case WIN_MONTH: return 33 * 86400;
	default: return e->win.secs + e->win.secs / WIN_BUCKETS + 60;
	}
}

static void maybe_announce(struct bstore *s, struct entry *e);

static bool reply_int(const redisReply *r, int64_t *out)
{
	if (r->type == REDIS_REPLY_NIL) {
		*out = 0;
		return true;
	}
	if (r->type == REDIS_REPLY_INTEGER) {
		*out = r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(r->str, &end, 10);
	if (errno || end != r->str + r->len)
		return false;
	*out = v;
	return true;
}

/* An answer came for p: the oldest command in flight on its link, since
 * answers come in order. */
static void answered(struct bstore *s, const struct pending *p)
{
	if (p->gen == s->gen && s->inflight) {
		s->head = (s->head + 1) % INFLIGHT_MAX;
		s->inflight--;
	}
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct pending *p = priv;
	struct bstore *s = p->s;
	redisReply *r = reply;
	answered(s, p);
	int64_t total[BM_COUNT];
	bool ok = r && p->gen == s->gen && r->type == REDIS_REPLY_ARRAY && r->elements == BM_COUNT;
	for (int m = 0; ok && m < BM_COUNT; m++)
		ok = reply_int(r->element[m], &total[m]);
	if (r && !ok && p->gen == s->gen) {
		LOG(LL_WARN, "store_error", "msg=\"unexpected answer from redis\" type=%d%s%.*s", r->type,
		    r->type == REDIS_REPLY_ERROR ? " error=" : "", r->type == REDIS_REPLY_ERROR ? (int)r->len : 0,
		    r->type == REDIS_REPLY_ERROR ? r->str : "");
	}
	if (ok) {
		pthread_mutex_lock(&s->mu);
		struct entry *e = find(s, p->id, strlen(p->id), p->hash, false);
		if (e) {
			bview_reply(&e->view, p->b, total, p->is_add ? p->sent : NULL);
			maybe_announce(s, e);
		}
		pthread_mutex_unlock(&s->mu);
	}
	free(p);
}

static void on_over_reply(redisAsyncContext *ac, void *reply, void *priv);
static bool send_cmd_cb(struct bstore *s, struct pending *p, redisCallbackFn *fn, int argc, const char **argv,
                        const size_t *lens);

/* Under mu, store thread: a scope this agent sees at its limit in its newest
 * bucket is told to the fleet, once per bucket. */
static void maybe_announce(struct bstore *s, struct entry *e)
{
	if (e->want_b == INT64_MIN || e->announced_b == e->want_b || !s->ac || s->connecting)
		return;
	int64_t t[BM_COUNT];
	bview_sum_at(&e->view, window_nbuckets(&e->win), e->want_b, t);
	bool reached = false;
	for (int m = 0; m < BM_COUNT; m++)
		reached |= e->limit[m] && t[m] >= e->limit[m];
	if (!reached)
		return;
	e->announced_b = e->want_b;
	char key[96], score[24], member[24];
	snprintf(key, sizeof(key), "%s:over:{%s}", s->cfg.prefix, e->id);
	snprintf(score, sizeof(score), "%lld", (long long)e->over_until);
	snprintf(member, sizeof(member), "%016llx", (unsigned long long)e->hash);
	const char *argv[] = { "ZADD", key, score, member };
	size_t lens[] = { 4, strlen(key), strlen(score), strlen(member) };
	struct pending *p = calloc(1, sizeof(*p));
	if (p) {
		p->over_idx = -2; /* an answer nobody reads */
		send_cmd_cb(s, p, on_over_reply, 4, argv, lens);
	}
	/* and the scopes whose limit stopped holding leave the set */
	char upto[24];
	snprintf(upto, sizeof(upto), "(%lld", (long long)bstore_now());
	const char *zargv[] = { "ZREMRANGEBYSCORE", key, "-inf", upto };
	size_t zlens[] = { 16, strlen(key), 4, strlen(upto) };
	if ((p = calloc(1, sizeof(*p)))) {
		p->over_idx = -2;
		send_cmd_cb(s, p, on_over_reply, 4, zargv, zlens);
	}
}

/* Increments: fields, expiry, the scope's name once; answers the new totals. */
static const char add_script[] =
	"local k=KEYS[1] "
	"redis.call('HINCRBY',k,'u',ARGV[1]) redis.call('HINCRBY',k,'t',ARGV[2]) redis.call('HINCRBY',k,'r',ARGV[3]) "
	"if ARGV[5]~='' then redis.call('HSETNX',k,'s',ARGV[5]) end "
	"redis.call('EXPIRE',k,ARGV[4]) "
	"return redis.call('HMGET',k,'u','t','r')";

static bool send_cmd_cb(struct bstore *s, struct pending *p, redisCallbackFn *fn, int argc, const char **argv,
                        const size_t *lens)
{
	if (!s->ac || s->connecting || s->inflight >= INFLIGHT_MAX) {
		free(p);
		return false;
	}
	p->s = s;
	p->gen = s->gen;
	if (redisAsyncCommandArgv(s->ac, fn, p, argc, argv, lens) != REDIS_OK) {
		free(p);
		return false;
	}
	s->sent_at[(s->head + s->inflight) % INFLIGHT_MAX] = mono_ms();
	s->inflight++;
	return true;
}

static bool send_cmd(struct bstore *s, struct pending *p, int argc, const char **argv, const size_t *lens)
{
	return send_cmd_cb(s, p, on_reply, argc, argv, lens);
}

/* The over-set of limit p->over_idx: replaces what this agent knew of it. */
static void on_over_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	struct pending *p = priv;
	struct bstore *s = p->s;
	redisReply *r = reply;
	answered(s, p);
	if (r && p->gen == s->gen && p->over_idx >= 0 && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0) {
		size_t n = r->elements / 2;
		uint64_t *h = calloc(n + 1, sizeof(*h));
		int64_t *until = calloc(n + 1, sizeof(*until));
		size_t k = 0;
		for (size_t i = 0; h && until && i < n; i++) {
			const redisReply *m = r->element[2 * i], *sc = r->element[2 * i + 1];
			int64_t u;
			if (m->type != REDIS_REPLY_STRING || m->len != 16 || !reply_int(sc, &u))
				continue;
			h[k] = strtoull(m->str, NULL, 16);
			until[k++] = u;
		}
		pthread_mutex_lock(&s->mu);
		if (p->over_idx < s->nover && strcmp(s->over[p->over_idx].id, p->id) == 0 && h && until) {
			struct overset *o = &s->over[p->over_idx];
			free(o->h);
			free(o->until);
			o->h = h;
			o->until = until;
			o->n = k;
			h = NULL;
			until = NULL;
		}
		pthread_mutex_unlock(&s->mu);
		free(h);
		free(until);
	}
	free(p);
}

/* Reads every limit's over-set (scores still to come). */
static void refresh_over(struct bstore *s, int64_t now)
{
	char ids[BUDGET_MAX][BUDGET_ID_MAX];
	pthread_mutex_lock(&s->mu);
	int n = s->nover;
	for (int i = 0; i < n; i++)
		memcpy(ids[i], s->over[i].id, BUDGET_ID_MAX);
	pthread_mutex_unlock(&s->mu);
	char min[24];
	snprintf(min, sizeof(min), "(%lld", (long long)now);
	for (int i = 0; i < n; i++) {
		struct pending *p = calloc(1, sizeof(*p));
		if (!p)
			return;
		p->over_idx = i;
		memcpy(p->id, ids[i], BUDGET_ID_MAX);
		char key[128];
		snprintf(key, sizeof(key), "%.31s:over:{%.47s}", s->cfg.prefix, ids[i]);
		const char *argv[] = { "ZRANGEBYSCORE", key, min, "+inf", "WITHSCORES" };
		size_t lens[] = { 13, strlen(key), strlen(min), 4, 10 };
		send_cmd_cb(s, p, on_over_reply, 5, argv, lens);
	}
}

/* Under mu: sends a slot's unsent increments. */
/* A command prepared under mu and sent after it is released: hiredis formats
 * and buffers outside the lock the workers decide under. Store thread only. */
struct outcmd {
	struct pending *p;
	char key[160], v[BM_COUNT][24], ttl[24], who[128];
	size_t who_len;
};

static struct outcmd *outbox_push(struct bstore *s)
{
	if (s->nout == s->capout) {
		size_t cap = s->capout ? 2 * s->capout : 64;
		struct outcmd *n = realloc(s->out, cap * sizeof(*n));
		if (!n)
			return NULL;
		s->out = n;
		s->capout = cap;
	}
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	struct outcmd *o = &s->out[s->nout++];
	o->p = p;
	return o;
}

/* Under mu: a slot's unsent increments, into the outbox (counted as pending). */
static void queue_add(struct bstore *s, struct entry *e, struct bslot *sl)
{
	struct outcmd *o = outbox_push(s);
	if (!o)
		return;
	struct pending *p = o->p;
	memcpy(p->id, e->id, sizeof(p->id));
	p->hash = e->hash;
	p->b = sl->b;
	p->is_add = true;
	memcpy(p->sent, sl->unsent, sizeof(p->sent));
	key_of(s, e, sl->b, o->key, sizeof(o->key));
	for (int m = 0; m < BM_COUNT; m++) {
		snprintf(o->v[m], sizeof(o->v[m]), "%lld", (long long)sl->unsent[m]);
		sl->pend[m] += sl->unsent[m];
		sl->unsent[m] = 0;
	}
	snprintf(o->ttl, sizeof(o->ttl), "%lld", (long long)ttl_of(e));
	memcpy(o->who, e->who, e->who_len);
	o->who_len = e->who_len;
}

/* Under mu: a read of bucket b. */
static void queue_read(struct bstore *s, struct entry *e, int64_t b)
{
	if (!bview_slot(&e->view, b)) /* so the answer has a slot to land in */
		return;
	struct outcmd *o = outbox_push(s);
	if (!o)
		return;
	memcpy(o->p->id, e->id, sizeof(o->p->id));
	o->p->hash = e->hash;
	o->p->b = b;
	key_of(s, e, b, o->key, sizeof(o->key));
}

/* Sends the outbox, mu released. An increment that could not go is put back
 * as unsent, for the next flush. */
static void outbox_send(struct bstore *s)
{
	for (size_t i = 0; i < s->nout; i++) {
		struct outcmd *o = &s->out[i];
		struct pending *p = o->p;
		bool add = p->is_add, ok;
		int64_t sent[BM_COUNT], b = p->b, hash = (int64_t)p->hash;
		char id[BUDGET_ID_MAX];
		memcpy(sent, p->sent, sizeof(sent));
		memcpy(id, p->id, sizeof(id));
		if (add) {
			const char *argv[] = { "EVAL", add_script, "1", o->key, o->v[0], o->v[1], o->v[2], o->ttl, o->who };
			size_t lens[] = { 4, sizeof(add_script) - 1, 1, strlen(o->key), strlen(o->v[0]), strlen(o->v[1]),
				          strlen(o->v[2]), strlen(o->ttl), o->who_len };
			ok = send_cmd(s, p, 9, argv, lens); /* frees p when it fails */
		} else {
			const char *argv[] = { "HMGET", o->key, "u", "t", "r" };
			size_t lens[] = { 5, strlen(o->key), 1, 1, 1 };
			ok = send_cmd(s, p, 5, argv, lens);
		}
		if (!ok && add) {
			pthread_mutex_lock(&s->mu);
			struct entry *e = find(s, id, strlen(id), (uint64_t)hash, false);
			struct bslot *sl = e ? &e->view.s[bview_ring(b)] : NULL;
			if (sl && sl->b == b) {
				for (int m = 0; m < BM_COUNT; m++) {
					sl->pend[m] -= sent[m];
					sl->unsent[m] += sent[m];
				}
				if (!e->dirty) {
					e->dirty = true;
					e->dirty_next = s->dirty;
					s->dirty = e;
				}
			}
			pthread_mutex_unlock(&s->mu);
		}
	}
	s->nout = 0;
}

static void flush_dirty(struct bstore *s)
{
	pthread_mutex_lock(&s->mu);
	struct entry *e = s->dirty;
	s->dirty = NULL;
	while (e) {
		struct entry *next = e->dirty_next;
		for (int k = 0; k < WIN_BUCKETS; k++) {
			struct bslot *sl = &e->view.s[k];
			if (sl->b != INT64_MIN && (sl->unsent[0] | sl->unsent[1] | sl->unsent[2]))
				queue_add(s, e, sl);
		}
		e->dirty = false;
		e = next;
	}
	pthread_mutex_unlock(&s->mu);
	outbox_send(s);
}

/* Every scope in use: its current bucket, and the window's buckets not read yet.
 * A scope idle for a while is read less often, never not at all: a view left
 * stale could refuse a call after `spend reset`, or pass one after another
 * agent used the budget up. */
static void refresh(struct bstore *s, int64_t now, bool all)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < TABLE_SLOTS; i++) {
		for (struct entry **pe = &s->table[i], *e; (e = *pe);) {
			bool busy = e->dirty;
			for (int k = 0; k < WIN_BUCKETS && !busy; k++)
				busy = e->view.s[k].pend[0] | e->view.s[k].pend[1] | e->view.s[k].pend[2];
			/* Forgotten when idle and its last window is over: before that,
			 * without Redis, the view is the only record of the spend. */
			if (now - e->last_use > IDLE_EVICT && !busy && now >= e->forget_after) {
				*pe = e->next;
				free(e);
				continue;
			}
			pe = &e->next;
			if (e->want_b == INT64_MIN || !s->ac || s->connecting ||
			    (!all && now - e->last_use > IDLE_REFRESH && s->ticks % IDLE_EVERY))
				continue;
			int nb = window_nbuckets(&e->win);
			for (int k = 0; k < nb; k++) {
				int64_t b = e->want_b - k;
				const struct bslot *sl = &e->view.s[bview_ring(b)];
				if (k == 0 || sl->b != b || !sl->loaded)
					queue_read(s, e, b);
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	outbox_send(s);
}

static void connect_store(struct bstore *s);

static void schedule_reconnect(struct bstore *s)
{
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
	if (s->backoff_ms > 5000)
		s->backoff_ms = 5000;
	ev_timer_stop(s->loop, &s->retry);
	ev_timer_set(&s->retry, s->backoff_ms / 1000.0, 0.);
	ev_timer_start(s->loop, &s->retry);
}

static void lost(struct bstore *s, const char *why)
{
	s->ac = NULL;
	s->connecting = false;
	s->gen++;
	s->head = s->inflight = 0;
	atomic_store(&s->healthy, false);
	LOG(LL_WARN, "store_down", "store=%s msg=\"%s; budgets decide by this agent's view and on_store_error\"",
	    s->cfg.redis, why);
	schedule_reconnect(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct bstore *s = ac->data;
	if (status != REDIS_OK) {
		lost(s, ac->errstr[0] ? ac->errstr : "cannot connect");
		return;
	}
	s->connecting = false;
	s->backoff_ms = 0;
	atomic_store(&s->healthy, true);
	LOG(LL_INFO, "store_up", "store=%s", s->cfg.redis);
	/* What was in flight on the old link may or may not have been applied: it
	 * is not sent again (at most once), and every bucket is read afresh. */
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		for (struct entry *e = s->table[i]; e; e = e->next)
			for (int k = 0; k < WIN_BUCKETS; k++) {
				memset(e->view.s[k].pend, 0, sizeof(e->view.s[k].pend));
				e->view.s[k].loaded = false;
			}
	pthread_mutex_unlock(&s->mu);
	flush_dirty(s);
	refresh_over(s, bstore_now());
	refresh(s, bstore_now(), true);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct bstore *s = ac->data;
	if (s->ac != ac)
		return; /* one we dropped on purpose */
	lost(s, status == REDIS_OK ? "disconnected" : ac->errstr[0] ? ac->errstr : "connection lost");
}

static void connect_store(struct bstore *s)
{
	struct store_addr sa;
	char e[128];
	redisAsyncContext *ac = NULL;
	if (config_parse_store_addr(s->cfg.redis, &sa, e, sizeof(e)) == 0) /* checked at start: it parses */
		ac = sa.is_unix ? redisAsyncConnectUnix(sa.host) : redisAsyncConnect(sa.host, sa.port);
	if (!ac || ac->err) {
		if (ac)
			redisAsyncFree(ac);
		lost(s, "cannot connect");
		return;
	}
	ac->data = s;
	s->ac = ac;
	s->connecting = true;
	s->gen++;
	s->head = s->inflight = 0;
	redisLibevAttach(s->loop, ac);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	connect_store(t->data);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	struct bstore *s = a->data;
	flush_dirty(s);
	if (atomic_exchange(&s->want_read, false) && s->ac && !s->connecting && atomic_load(&s->healthy))
		refresh(s, bstore_now(), false);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct bstore *s = t->data;
	s->ticks++;
	clock_read();
	if (!has_redis(s)) {
		refresh(s, bstore_now(), false); /* forgets idle scopes */
		return;
	}
	/* Answers late beyond timeout_ms: the store is down for deciding; much
	 * later, the link is dropped and made again. */
	if (s->ac && !s->connecting) {
		int64_t late = s->inflight ? mono_ms() - s->sent_at[s->head] : 0;
		bool was = atomic_load(&s->healthy);
		bool ok = late <= (int64_t)s->cfg.timeout_ms;
		atomic_store(&s->healthy, ok);
		if (was && !ok)
			LOG(LL_WARN, "store_slow", "store=%s late_ms=%lld msg=\"budgets decide by this agent's view and "
			                           "on_store_error\"", s->cfg.redis, (long long)late);
		else if (!was && ok)
			LOG(LL_INFO, "store_up", "store=%s", s->cfg.redis);
		if (late > 10 * (int64_t)s->cfg.timeout_ms + 5000) {
			redisAsyncContext *ac = s->ac;
			s->ac = NULL;
			redisAsyncFree(ac); /* answers pending get NULL: dropped */
			lost(s, "no answer");
			return;
		}
		if (!ok)
			return; /* no more reads onto a stalled link */
	}
	flush_dirty(s);
	if (s->ticks % 2 == 0)
		refresh_over(s, bstore_now());
	refresh(s, bstore_now(), false);
}

/* Increments go out every FLUSH_MS, one EVAL per bucket however many calls
 * added to it: a busy scope costs Redis a command per tick, not per call. */
static void on_flush(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	struct bstore *s = t->data;
	if (s->ac && !s->connecting && atomic_load(&s->healthy))
		flush_dirty(s);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)revents;
	struct bstore *s = a->data;
	ev_timer_stop(loop, &s->flush);
	ev_timer_stop(loop, &s->tick);
	ev_timer_stop(loop, &s->retry);
	ev_async_stop(loop, &s->wake);
	ev_async_stop(loop, &s->stop);
	if (s->ac) {
		redisAsyncContext *ac = s->ac;
		s->ac = NULL;
		redisAsyncFree(ac);
	}
}

static void *store_main(void *arg)
{
	struct bstore *s = arg;
	if (has_redis(s))
		connect_store(s);
	ev_run(s->loop, 0);
	return NULL;
}

struct bstore *bstore_new(const struct bstore_cfg *cfg, char *err, size_t errlen)
{
	struct bstore *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	if (!s->cfg.refresh_ms)
		s->cfg.refresh_ms = 100;
	if (!s->cfg.timeout_ms)
		s->cfg.timeout_ms = 500;
	/* Held for a lookup and a few adds: spinning briefly beats sleeping in the kernel. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!s->loop) {
		snprintf(err, errlen, "cannot create the store's event loop");
		pthread_mutex_destroy(&s->mu);
		free(s);
		return NULL;
	}
	clock_file = getenv("ARCHESTRA_CLOCK_FILE");
	clock_read();
	ev_async_init(&s->wake, on_wake);
	s->wake.data = s;
	ev_async_start(s->loop, &s->wake);
	ev_async_init(&s->stop, on_stop);
	s->stop.data = s;
	ev_async_start(s->loop, &s->stop);
	ev_timer_init(&s->tick, on_tick, s->cfg.refresh_ms / 1000.0, s->cfg.refresh_ms / 1000.0);
	s->tick.data = s;
	ev_timer_start(s->loop, &s->tick);
	ev_timer_init(&s->flush, on_flush, FLUSH_MS / 1000.0, FLUSH_MS / 1000.0);
	s->flush.data = s;
	if (has_redis(s))
		ev_timer_start(s->loop, &s->flush);
	ev_timer_init(&s->retry, on_retry, 0.1, 0.);
	s->retry.data = s;
	if (pthread_create(&s->th, NULL, store_main, s) != 0) {
		snprintf(err, errlen, "cannot start the store's thread");
		ev_loop_destroy(s->loop);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return NULL;
	}
	s->running = true;
	return s;
}

void bstore_free(struct bstore *s)
{
	if (!s)
		return;
	if (s->running) {
		ev_async_send(s->loop, &s->stop);
		pthread_join(s->th, NULL);
	}
	ev_loop_destroy(s->loop);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		for (struct entry *e = s->table[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	for (int i = 0; i < s->nover; i++) {
		free(s->over[i].h);
		free(s->over[i].until);
	}
	free(s->out);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
