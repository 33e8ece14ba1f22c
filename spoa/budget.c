/* budget.c: see budget.h. */
#include "budget.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgjson.h"
#include "fasthash.h"
#include "keys.h"

const char *const budget_scope_names[] = { "key_id", "user_id", "agent_id", "jwt_claim", "provider", "model", "all", NULL };
_Static_assert(sizeof(budget_scope_names) / sizeof(budget_scope_names[0]) == BS_COUNT + 1, "a name per scope");
const char *const bmeasure_names[] = { "usd", "tokens", "requests", NULL };

static bool id_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool id_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!id_char((uint8_t)*s))
			return false;
	return true;
}

static int parse_one(const cJSON *o, enum budget_kind kind, struct budget *b, const char *path, char *err,
                     size_t errlen)
{
	static const char *const bkeys[] = { "id", "scope", "when", "usd", "tokens", "requests", "window", "time_zone",
		                              "shadow", "on_store_error", "description", NULL };
	static const char *const rkeys[] = { "id", "scope", "when", "requests_per_minute", "tokens_per_minute", "shadow",
		                              "on_store_error", "description", NULL };
	static const char *const on_err[] = { "allow", "deny", NULL };
	const char *const *keys = kind == BK_BUDGET ? bkeys : rkeys;
	if (cfg_object(o, path, NULL, 0, keys, NULL, err, errlen) < 0)
		return -1;
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	if (cfg_str(cJSON_GetObjectItemCaseSensitive(o, "id"), path, "id", CFG_NONEMPTY, b->id, sizeof(b->id),
	            "expected a name of letters, digits, '_' and '-' (47 at most)", err, errlen) < 0)
		return -1;
	if (!id_ok(b->id))
		return cfg_fail(err, errlen, path, "id", "expected a name of letters, digits, '_' and '-' (47 at most)");
	int sc = BS_ALL; /* no scope: everyone's calls together */
	if (cfg_enum(cJSON_GetObjectItemCaseSensitive(o, "scope"), path, "scope", CFG_OPTIONAL, budget_scope_names, &sc,
	             NULL, err, errlen) < 0)
		return -1;
	b->scope = (enum budget_scope)sc;
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "when");
	if (w && policy_parse_when(w, path, "when", b->when, &b->when_claim, err, errlen) < 0)
		return -1;
	if (cfg_bool(cJSON_GetObjectItemCaseSensitive(o, "shadow"), path, "shadow", CFG_OPTIONAL, &b->shadow, NULL, err,
	             errlen) < 0)
		return -1;
	int oe = 0;
	if (cfg_enum(cJSON_GetObjectItemCaseSensitive(o, "on_store_error"), path, "on_store_error", CFG_OPTIONAL, on_err,
	             &oe, NULL, err, errlen) < 0)
		return -1;
	b->deny_on_store_error = oe == 1;

	if (kind == BK_RATE) {
		if (cfg_int(cJSON_GetObjectItemCaseSensitive(o, "requests_per_minute"), path, "requests_per_minute",
		            CFG_OPTIONAL, 1, 1000000000, &b->limit[BM_REQUESTS], NULL, err, errlen) < 0 ||
		    cfg_int(cJSON_GetObjectItemCaseSensitive(o, "tokens_per_minute"), path, "tokens_per_minute", CFG_OPTIONAL,
		            1, 1000000000000, &b->limit[BM_TOKENS], NULL, err, errlen) < 0)
			return -1;
		if (!b->limit[BM_REQUESTS] && !b->limit[BM_TOKENS])
			return cfg_fail(err, errlen, path, NULL, "expected requests_per_minute and/or tokens_per_minute");
		return window_parse("rolling 60s", &b->win, err, errlen);
	}
	double usd = 0;
	if (cfg_number(cJSON_GetObjectItemCaseSensitive(o, "usd"), path, "usd", CFG_OPTIONAL, 0.000001, 1e9, &usd,
	               "expected dollars, more than 0 (e.g. 50 or 0.25)", err, errlen) < 0 ||
	    cfg_int(cJSON_GetObjectItemCaseSensitive(o, "tokens"), path, "tokens", CFG_OPTIONAL, 1, 1000000000000000,
	            &b->limit[BM_TOKENS], NULL, err, errlen) < 0 ||
	    cfg_int(cJSON_GetObjectItemCaseSensitive(o, "requests"), path, "requests", CFG_OPTIONAL, 1, 1000000000000,
	            &b->limit[BM_REQUESTS], NULL, err, errlen) < 0)
		return -1;
	b->limit[BM_USD] = (int64_t)llround(usd * 1e6);
	if (!b->limit[BM_USD] && !b->limit[BM_TOKENS] && !b->limit[BM_REQUESTS])
		return cfg_fail(err, errlen, path, NULL, "expected a limit: usd, tokens and/or requests");
	char spec[48];
	if (cfg_str(cJSON_GetObjectItemCaseSensitive(o, "window"), path, "window", 0, spec, sizeof(spec),
	            "expected \"day\", \"week\", \"month\" or \"rolling <N><s|m|h|d>\" (e.g. \"rolling 24h\")", err,
	            errlen) < 0)
		return -1;
	char werr[160];
	if (window_parse(spec, &b->win, werr, sizeof(werr)) < 0)
		return cfg_fail(err, errlen, path, "window", "%s", werr);
	if (cfg_str(cJSON_GetObjectItemCaseSensitive(o, "time_zone"), path, "time_zone", CFG_OPTIONAL | CFG_NONEMPTY,
	            b->tz_name, sizeof(b->tz_name), "expected a zone like \"Europe/Berlin\", \"UTC\" or \"+05:30\"", err,
	            errlen) < 0)
		return -1;
	if (b->tz_name[0] && b->win.kind == WIN_ROLLING)
		return cfg_fail(err, errlen, path, "time_zone", "a rolling window has no time zone; drop it or use day, "
		                                                  "week or month");
	return 0;
}

int budget_parse(const cJSON *v, enum budget_kind kind, struct budget_set *set, char *err, size_t errlen)
{
	const char *key = kind == BK_BUDGET ? "budgets" : "rate_limits";
	if (cfg_array(v, NULL, key, 0, 0, BUDGET_MAX, kind == BK_BUDGET ? "budgets" : "rate limits", err, errlen) < 0)
		return -1;
	int n = cJSON_GetArraySize(v);
	if (set->n + n > BUDGET_MAX)
		return cfg_fail(err, errlen, NULL, key, "at most %d budgets and rate limits in all", BUDGET_MAX);
	struct budget *nb = realloc(set->b, (size_t)(set->n + n + 1) * sizeof(*nb));
	if (!nb)
		return cfg_fail(err, errlen, NULL, key, "out of memory");
	set->b = nb;
	const cJSON *it;
	int i = 0;
	cJSON_ArrayForEach(it, v) {
		char path[48];
		cfg_path_idx(path, sizeof(path), NULL, key, i++);
		struct budget *b = &set->b[set->n];
		if (parse_one(it, kind, b, path, err, errlen) < 0)
			return -1;
		for (int j = 0; j < set->n; j++)
			if (strcmp(set->b[j].id, b->id) == 0)
				return cfg_fail(err, errlen, path, "id", "\"%s\" is already the id of another budget or rate limit",
				                b->id);
		b->win.tz = NULL; /* the loader points it at b->tz once loaded (the array may still move) */
		b->id_len = strlen(b->id);
		set->n++;
		set->nrate += kind == BK_RATE;
	}
	return 0;
}

void budget_set_free(struct budget_set *set)
{
	for (int i = 0; set->b && i < set->n; i++)
		tz_free(&set->b[i].tz);
	free(set->b);
	set->b = NULL;
	set->n = set->nrate = 0;
}

const struct budget *budget_find(const struct budget_set *set, struct spop_slice id)
{
	for (int i = 0; set && i < set->n; i++)
		if (set->b[i].id_len == id.len && memcmp(set->b[i].id, id.ptr, id.len) == 0)
			return &set->b[i];
	return NULL;
}

static uint64_t hash_uncached(enum budget_scope scope, struct spop_slice who)
{
	/* Names the scope's counters in the store, the same on every agent and
	 * version: a fixed cryptographic hash, not the process's table hash. */
	uint8_t buf[1025], h[32];
	size_t n = who.len;
	buf[0] = (uint8_t)('a' + scope);
	if (n > sizeof(buf) - 1) { /* longer than any identity value: its digest stands for it */
		sha256(who.ptr, who.len, buf + 1);
		n = 32;
	} else if (n) {
		memcpy(buf + 1, who.ptr, n);
	}
	sha256(buf, n + 1, h);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

/* The same scope values come back call after call (an agent, its key, its
 * user): each thread keeps the last hashes, checked by the whole value. */
#define HASH_MEMO 64
static _Thread_local struct {
	uint8_t scope;
	uint8_t len;                       /* 0: empty slot (values of 1 to 96 bytes are kept) */
	uint8_t v[96];
	uint64_t hash;
} hash_memo[HASH_MEMO];

uint64_t budget_hash(enum budget_scope scope, struct spop_slice who)
{
	if (who.len == 0 || who.len > sizeof(hash_memo[0].v))
		return hash_uncached(scope, who);
	size_t i = (size_t)(fasthash(who.ptr, who.len, (uint64_t)scope) % HASH_MEMO);
	if (hash_memo[i].len == who.len && hash_memo[i].scope == scope && memcmp(hash_memo[i].v, who.ptr, who.len) == 0)
		return hash_memo[i].hash;
	uint64_t h = hash_uncached(scope, who);
	hash_memo[i].scope = (uint8_t)scope;
	hash_memo[i].len = (uint8_t)who.len;
	memcpy(hash_memo[i].v, who.ptr, who.len);
	hash_memo[i].hash = h;
	return h;
}

int budget_charges(const struct budget_set *set, const struct policy_input *in, struct budget_charge *out, int max)
{
	int n = 0;
	for (int i = 0; set && i < set->n && n < max; i++) {
		const struct budget *b = &set->b[i];
		if (!policy_when_match(b->when, &b->when_claim, in))
			continue;
		static const int field[BS_COUNT] = { [BS_KEY] = SC_KEY_ID, [BS_USER] = SC_USER_ID, [BS_AGENT] = SC_AGENT_ID,
			                              [BS_PROVIDER] = SC_PROVIDER, [BS_MODEL] = SC_MODEL, [BS_CLAIM] = -1,
			                              [BS_ALL] = -1 };
		if (b->scope == BS_CLAIM) { /* one charge per value the token carries */
			for (int c = 0; c < in->nclaims && n < max; c++) {
				struct spop_slice who = { (const uint8_t *)in->claims[c], strlen(in->claims[c]) };
				if (who.len)
					out[n++] = (struct budget_charge){ b, who, budget_hash(b->scope, who) };
			}
			continue;
		}
		struct spop_slice who = b->scope == BS_ALL ? (struct spop_slice){ (const uint8_t *)"", 0 } : in->v[field[b->scope]];
		if (b->scope != BS_ALL && !who.len)
			continue; /* not attributable to this scope: the call is not charged to it */
		out[n++] = (struct budget_charge){ b, who, budget_hash(b->scope, who) };
	}
	return n;
}

size_t budget_charges_encode(const struct budget_charge *c, int n, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		size_t l = c[i].b->id_len;
		if (o + (i > 0) + l + 1 + 16 + 1 > cap) /* and the NUL */
			return 0;
		if (i)
			out[o++] = ',';
		memcpy(out + o, c[i].b->id, l);
		o += l;
		out[o++] = ':';
		for (int k = 15; k >= 0; k--)
			out[o++] = hex[(c[i].hash >> (4 * k)) & 15];
	}
	if (cap)
		out[o < cap ? o : cap - 1] = '\0';
	return o;
}

static bool read_count(struct spop_slice list, size_t *p, int64_t *v)
{
	int64_t n = 0;
	size_t start = *p;
	while (*p < list.len && list.ptr[*p] >= '0' && list.ptr[*p] <= '9' && *p - start < 15)
		n = n * 10 + (list.ptr[(*p)++] - '0');
	*v = n;
	return *p > start && !(*p < list.len && list.ptr[*p] >= '0' && list.ptr[*p] <= '9');
}

static size_t put_count(int64_t v, char *dst)
{
	if (v < 0)
		v = 0;
	if (v > 999999999999999)
		v = 999999999999999;
	char tmp[16];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

size_t budget_estimate_encode(int64_t in, int64_t out, char *dst, size_t cap)
{
	if (cap < 40)
		return 0;
	size_t o = 0;
	dst[o++] = '~';
	o += put_count(in, dst + o);
	dst[o++] = ':';
	o += put_count(out, dst + o);
	dst[o++] = ',';
	dst[o] = '\0';
	return o;
}

bool budget_estimate_next(struct spop_slice list, size_t *pos, int64_t *in, int64_t *out)
{
	size_t p = *pos;
	if (p >= list.len || list.ptr[p] != '~')
		return false;
	p++;
	int64_t a, b;
	if (!read_count(list, &p, &a) || p >= list.len || list.ptr[p] != ':')
		return false;
	p++;
	if (!read_count(list, &p, &b) || (p < list.len && list.ptr[p] != ','))
		return false;
	*in = a;
	*out = b;
	*pos = p < list.len ? p + 1 : p;
	return true;
}

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool budget_charge_next(struct spop_slice list, size_t *pos, struct spop_slice *id, uint64_t *hash)
{
	size_t p = *pos;
	if (p >= list.len)
		return false;
	size_t start = p;
	while (p < list.len && list.ptr[p] != ':')
		if (!id_char(list.ptr[p++]))
			return false; /* an id has only the characters id_ok allows: not ',', NUL, ... */
	if (p == start || p >= list.len || p - start >= BUDGET_ID_MAX)
		return false;
	*id = (struct spop_slice){ list.ptr + start, p - start };
	p++;
	uint64_t h = 0;
	int digits = 0;
	for (; p < list.len && list.ptr[p] != ','; p++, digits++) {
		int v = hexval(list.ptr[p]);
		if (v < 0 || digits >= 16)
			return false;
		h = h << 4 | (uint64_t)v;
	}
	if (digits != 16)
		return false;
	*hash = h;
	*pos = p < list.len ? p + 1 : p;
	return true;
}

void bview_init(struct bview *v)
{
	memset(v, 0, sizeof(*v));
	for (int i = 0; i < WIN_BUCKETS; i++)
		v->s[i].b = INT64_MIN;
}

size_t bview_ring(int64_t b)
{
	int64_t r = b % WIN_BUCKETS;
	return (size_t)(r < 0 ? r + WIN_BUCKETS : r);
}

struct bslot *bview_slot(struct bview *v, int64_t b)
{
	struct bslot *s = &v->s[bview_ring(b)];
	if (s->b != INT64_MIN && s->b > b)
		return NULL; /* the clock went back: the newer bucket stays */
	if (s->b != b) {
		memset(s, 0, sizeof(*s));
		s->b = b;
	}
	return s;
}

void bview_sum_at(const struct bview *v, int nb, int64_t cur, int64_t out[BM_COUNT])
{
	memset(out, 0, sizeof(int64_t) * BM_COUNT);
	for (int k = 0; k < nb; k++) {
		const struct bslot *s = &v->s[bview_ring(cur - k)];
		if (s->b != cur - k)
			continue;
		for (int m = 0; m < BM_COUNT; m++)
			out[m] += s->val[m] + s->pend[m] + s->unsent[m];
	}
}

void bview_sum(const struct bview *v, const struct window *w, int64_t now, int64_t out[BM_COUNT])
{
	bview_sum_at(v, window_nbuckets(w), window_bucket(w, now), out);
}

void bview_reply(struct bview *v, int64_t b, const int64_t total[BM_COUNT], const int64_t *sent)
{
	struct bslot *s = &v->s[bview_ring(b)];
	if (s->b != b)
		return; /* the slot moved on to a newer bucket */
	for (int m = 0; m < BM_COUNT; m++) {
		s->val[m] = total[m];
		if (sent)
			s->pend[m] -= sent[m];
	}
	s->loaded = true;
}

int budget_over(const struct budget *b, const int64_t spent[BM_COUNT])
{
	for (int m = 0; m < BM_COUNT; m++)
		if (b->limit[m] && spent[m] >= b->limit[m])
			return m;
	return -1;
}

int64_t budget_retry_after(const struct budget *b, const struct bview *v, int64_t now, int m)
{
	const struct window *w = &b->win;
	int64_t cur = window_bucket(w, now), start, end;
	if (w->kind != WIN_ROLLING) {
		window_span(w, cur, &start, &end);
		return end - now > 1 ? end - now : 1;
	}
	int64_t total[BM_COUNT];
	bview_sum(v, w, now, total);
	int64_t left = total[m];
	/* Oldest bucket first: when it leaves the window its spend goes with it. */
	for (int k = WIN_BUCKETS - 1; k >= 0; k--) {
		int64_t bk = cur - k;
		const struct bslot *s = &v->s[bview_ring(bk)];
		if (s->b == bk)
			left -= s->val[m] + s->pend[m] + s->unsent[m];
		if (left < b->limit[m]) {
			window_span(w, bk + WIN_BUCKETS, &start, &end);
			return start - now > 1 ? start - now : 1;
		}
	}
	window_span(w, cur + WIN_BUCKETS, &start, &end);
	return start - now > 1 ? start - now : 1;
}
