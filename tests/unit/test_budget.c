/* Unit tests of budget: the "budgets" and "rate_limits" sections as policy_parse
 * reads them, which limits a call is charged to, the charge list HAProxy carries
 * to the end-of-call record (and hostile versions of it), the per-bucket view of
 * spend, and the over-limit and Retry-After arithmetic. */
#include "testutil.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>

#include "budget.h"
#include "policy.h"
#include "window.h"

static struct policy pol;
static char err[512];

/* The JSON below is written with ' for ": none of it needs a quote inside a string. */
static const char *dq(const char *s)
{
	static char buf[65536];
	size_t n = strlen(s);
	assert_true(n < sizeof(buf));
	for (size_t i = 0; i <= n; i++)
		buf[i] = s[i] == '\'' ? '"' : s[i];
	return buf;
}

static void load(const char *json)
{
	policy_free(&pol);
	const char *j = dq(json);
	if (policy_parse(j, strlen(j), &pol, err, sizeof(err)) < 0)
		fail_msg("policy refused: %s", err);
}

/* policy_parse refuses json with an error that starts with want. */
static void refused(const char *json, const char *want)
{
	struct policy p;
	const char *j = dq(json);
	err[0] = '\0';
	if (policy_parse(j, strlen(j), &p, err, sizeof(err)) == 0) {
		policy_free(&p);
		fail_msg("accepted: %s", json);
	}
	assert_null(p.budgets); /* on -1 the policy holds nothing */
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("for %s\n  error: %s\n  want:  %s...", json, err, want);
	policy_free(&p);
}

static const struct budget *find(const char *id)
{
	const struct budget *b = budget_find(pol.budgets, S(id));
	if (!b)
		fail_msg("no budget %s", id);
	return b;
}

static int teardown(void **st)
{
	(void)st;
	policy_free(&pol);
	return 0;
}

/* ---- parsing ---- */

static void parses_budgets_and_rate_limits(void **st)
{
	(void)st;
	load("{'rules':[],'budgets':["
	     "{'id':'team-day','scope':'key_id','usd':50,'tokens':1000000,'requests':5000,'window':'day',"
	     " 'description':'for people'},"
	     "{'id':'u_week','scope':'user_id','usd':0.25,'window':'week','time_zone':'+05:30','shadow':true},"
	     "{'id':'A-month','scope':'agent_id','tokens':7,'window':'month','on_store_error':'deny',"
	     " 'when':{'provider':['openai','azure*'],'model':'gpt-4o*','jwt_claim':'team-*'}},"
	     "{'id':'claim','scope':'jwt_claim','requests':1,'window':'rolling 24h','on_store_error':'allow'},"
	     "{'id':'prov','scope':'provider','usd':0.000001,'window':'rolling 60s'},"
	     "{'id':'mod','scope':'model','requests':3,'window':'day','time_zone':'UTC'},"
	     "{'id':'everyone','scope':'all','usd':1000000000,'window':'month'}],"
	     "'rate_limits':[{'id':'rpm','scope':'user_id','requests_per_minute':60},"
	     "{'id':'tpm','scope':'all','tokens_per_minute':100000,'shadow':true,'on_store_error':'deny',"
	     " 'when':{'agent_id':'bot-*'}}]}");
	const struct budget_set *set = pol.budgets;
	assert_non_null(set);
	assert_int_equal(set->n, 9);
	assert_int_equal(set->nrate, 2);

	const struct budget *b = &set->b[0];
	assert_string_equal(b->id, "team-day");
	assert_int_equal(b->kind, BK_BUDGET);
	assert_int_equal(b->scope, BS_KEY);
	assert_int_equal(b->limit[BM_USD], 50000000); /* millionths */
	assert_int_equal(b->limit[BM_TOKENS], 1000000);
	assert_int_equal(b->limit[BM_REQUESTS], 5000);
	assert_int_equal(b->win.kind, WIN_DAY);
	assert_null(b->win.tz);
	assert_string_equal(b->tz_name, "");
	assert_false(b->shadow);
	assert_false(b->deny_on_store_error);
	for (int f = 0; f < SC_FIELDS; f++)
		assert_int_equal(b->when[f].n, 0);
	assert_int_equal(b->when_claim.n, 0);

	b = &set->b[1];
	assert_string_equal(b->id, "u_week");
	assert_int_equal(b->scope, BS_USER);
	assert_int_equal(b->limit[BM_USD], 250000);
	assert_int_equal(b->limit[BM_TOKENS], 0);
	assert_int_equal(b->limit[BM_REQUESTS], 0);
	assert_int_equal(b->win.kind, WIN_WEEK);
	assert_string_equal(b->tz_name, "+05:30");
	assert_true(b->shadow);

	b = &set->b[2];
	assert_int_equal(b->scope, BS_AGENT);
	assert_int_equal(b->win.kind, WIN_MONTH);
	assert_true(b->deny_on_store_error);
	assert_int_equal(b->when[SC_PROVIDER].n, 2);
	assert_string_equal(b->when[SC_PROVIDER].p[0], "openai");
	assert_string_equal(b->when[SC_PROVIDER].p[1], "azure*");
	assert_int_equal(b->when[SC_MODEL].n, 1);
	assert_string_equal(b->when[SC_MODEL].p[0], "gpt-4o*");
	assert_int_equal(b->when_claim.n, 1);
	assert_string_equal(b->when_claim.p[0], "team-*");

	b = &set->b[3];
	assert_int_equal(b->scope, BS_CLAIM);
	assert_int_equal(b->win.kind, WIN_ROLLING);
	assert_int_equal(b->win.secs, 86400);
	assert_false(b->deny_on_store_error);

	b = &set->b[4];
	assert_int_equal(b->scope, BS_PROVIDER);
	assert_int_equal(b->limit[BM_USD], 1);
	assert_int_equal(b->win.kind, WIN_ROLLING);
	assert_int_equal(b->win.secs, 60);

	assert_int_equal(set->b[5].scope, BS_MODEL);
	assert_string_equal(set->b[5].tz_name, "UTC");
	assert_int_equal(set->b[6].scope, BS_ALL);
	assert_int_equal(set->b[6].limit[BM_USD], 1000000000000000LL);

	b = &set->b[7];
	assert_string_equal(b->id, "rpm");
	assert_int_equal(b->kind, BK_RATE);
	assert_int_equal(b->scope, BS_USER);
	assert_int_equal(b->limit[BM_REQUESTS], 60);
	assert_int_equal(b->limit[BM_TOKENS], 0);
	assert_int_equal(b->limit[BM_USD], 0);
	assert_int_equal(b->win.kind, WIN_ROLLING); /* a rate limit is per rolling minute */
	assert_int_equal(b->win.secs, 60);

	b = &set->b[8];
	assert_int_equal(b->kind, BK_RATE);
	assert_int_equal(b->scope, BS_ALL);
	assert_int_equal(b->limit[BM_TOKENS], 100000);
	assert_int_equal(b->limit[BM_REQUESTS], 0);
	assert_true(b->shadow);
	assert_true(b->deny_on_store_error);
	assert_int_equal(b->when[SC_AGENT_ID].n, 1);

	/* lookup by id, as the end-of-call record names them */
	assert_ptr_equal(budget_find(set, S("rpm")), &set->b[7]);
	assert_ptr_equal(budget_find(set, S("team-day")), &set->b[0]);
	assert_null(budget_find(set, S("team")));      /* a prefix is not the id */
	assert_null(budget_find(set, S("team-day2")));
	assert_null(budget_find(set, S("")));
	assert_null(budget_find(NULL, S("rpm")));

	/* rate_limits before budgets, and each section alone */
	load("{'rate_limits':[{'id':'r','scope':'all','requests_per_minute':1}],'rules':[],"
	     "'budgets':[{'id':'b','scope':'all','requests':1,'window':'day'}]}");
	assert_int_equal(pol.budgets->n, 2);
	assert_int_equal(pol.budgets->nrate, 1);
	assert_int_equal(pol.budgets->b[0].kind, BK_RATE);
	assert_int_equal(pol.budgets->b[1].kind, BK_BUDGET);
	load("{'rules':[],'budgets':[]}");
	assert_non_null(pol.budgets);
	assert_int_equal(pol.budgets->n, 0);
	load("{'rules':[]}");
	assert_null(pol.budgets);

	/* dollars to millionths, rounded: 2.01 * 1e6 is 2009999.9999999998 in binary */
	load("{'rules':[],'budgets':[{'id':'a','scope':'all','usd':2.01,'window':'day'},"
	     "{'id':'b','scope':'all','usd':0.000249,'window':'day'},{'id':'c','scope':'all','usd':19.99,'window':'day'}]}");
	assert_int_equal(pol.budgets->b[0].limit[BM_USD], 2010000);
	assert_int_equal(pol.budgets->b[1].limit[BM_USD], 249);
	assert_int_equal(pol.budgets->b[2].limit[BM_USD], 19990000);

	/* the longest id fits (BUDGET_ID_MAX - 1 characters) */
	char json[512], id[BUDGET_ID_MAX];
	memset(id, 'x', BUDGET_ID_MAX - 1);
	id[BUDGET_ID_MAX - 1] = '\0';
	snprintf(json, sizeof(json), "{'rules':[],'budgets':[{'id':'%s','scope':'all','usd':1,'window':'day'}]}", id);
	load(json);
	assert_string_equal(pol.budgets->b[0].id, id);
}

static void refuses_bad_budgets(void **st)
{
	(void)st;
	static const char ok[] = "{'id':'ok','scope':'all','usd':1,'window':'day'}";
	char json[1024];
#define BAD(item, want)                                                                               \
	do {                                                                                          \
		snprintf(json, sizeof(json), "{'rules':[],'budgets':[%s,%s]}", ok, item);             \
		refused(json, want);                                                                  \
	} while (0)
	/* keys */
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','limit':3}", "budgets[1].limit: unknown key (known: id,");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','requests_per_minute':3}",
	    "budgets[1].requests_per_minute: unknown key");
	BAD("{'id':'x','scope':'all','usd':1,'usd':2,'window':'day'}", "budgets[1].usd: given twice");
	/* a limit */
	BAD("{'id':'x','scope':'all','window':'day'}", "budgets[1]: expected a limit: usd, tokens and/or requests");
	BAD("{'id':'x','scope':'all','window':'day','shadow':true}", "budgets[1]: expected a limit");
	/* ids: they are part of store keys and of the meter record */
	BAD("{'scope':'all','usd':1,'window':'day'}", "budgets[1].id: missing; expected a name of letters");
	BAD("{'id':'','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a:b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a,b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a{b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a}b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'a.b','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'caf\\u00e9','scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':7,'scope':'all','usd':1,'window':'day'}", "budgets[1].id: expected a name of letters");
	BAD("{'id':'ok','scope':'all','usd':1,'window':'day'}", "budgets[1].id: \"ok\" is already the id of another");
	char id[BUDGET_ID_MAX + 1], item[256];
	memset(id, 'x', BUDGET_ID_MAX);
	id[BUDGET_ID_MAX] = '\0';
	snprintf(item, sizeof(item), "{'id':'%s','scope':'all','usd':1,'window':'day'}", id);
	BAD(item, "budgets[1].id: expected a name of letters, digits, '_' and '-' (47 at most)");
	/* amounts */
	BAD("{'id':'x','scope':'all','usd':-5,'window':'day'}", "budgets[1].usd: expected dollars, more than 0");
	BAD("{'id':'x','scope':'all','usd':0,'window':'day'}", "budgets[1].usd: expected dollars, more than 0");
	BAD("{'id':'x','scope':'all','usd':0.0000001,'window':'day'}", "budgets[1].usd: expected dollars");
	BAD("{'id':'x','scope':'all','usd':2e9,'window':'day'}", "budgets[1].usd: expected dollars");
	BAD("{'id':'x','scope':'all','usd':'50','window':'day'}", "budgets[1].usd: expected dollars");
	BAD("{'id':'x','scope':'all','tokens':0,'window':'day'}", "budgets[1].tokens: expected an integer from 1 to");
	BAD("{'id':'x','scope':'all','tokens':1.5,'window':'day'}", "budgets[1].tokens: expected an integer from 1 to");
	BAD("{'id':'x','scope':'all','requests':-1,'window':'day'}", "budgets[1].requests: expected an integer from 1");
	BAD("{'id':'x','scope':'all','requests':true,'window':'day'}", "budgets[1].requests: expected an integer");
	/* windows */
	BAD("{'id':'x','scope':'all','usd':1}", "budgets[1].window: missing; expected \"day\"");
	BAD("{'id':'x','scope':'all','usd':1,'window':'fortnight'}", "budgets[1].window: window \"fortnight\": expected");
	BAD("{'id':'x','scope':'all','usd':1,'window':'rolling'}", "budgets[1].window: window \"rolling\": expected");
	BAD("{'id':'x','scope':'all','usd':1,'window':'rolling 6s'}", "budgets[1].window: window \"rolling 6s\": a rolling");
	BAD("{'id':'x','scope':'all','usd':1,'window':'rolling 13s'}", "budgets[1].window: window \"rolling 13s\": a rolling");
	BAD("{'id':'x','scope':'all','usd':1,'window':'Day'}", "budgets[1].window: ");
	BAD("{'id':'x','scope':'all','usd':1,'window':1}", "budgets[1].window: expected \"day\"");
	BAD("{'id':'x','scope':'all','usd':1,'window':'rolling 24h','time_zone':'Europe/Berlin'}",
	    "budgets[1].time_zone: a rolling window has no time zone");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','time_zone':''}", "budgets[1].time_zone: expected a zone");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','time_zone':5}", "budgets[1].time_zone: expected a zone");
	/* scope, when, flags */
	BAD("{'id':'x','scope':'team','usd':1,'window':'day'}", "budgets[1].scope: expected one of key_id, user_id, "
	                                                        "agent_id, jwt_claim, provider, model, all");
	BAD("{'id':'x','scope':'key_owner','usd':1,'window':'day'}", "budgets[1].scope: expected one of");
	BAD("{'id':'x','scope':['all'],'usd':1,'window':'day'}", "budgets[1].scope: expected one of");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','when':['openai']}", "budgets[1].when: expected an object");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','when':{'team':'a'}}", "budgets[1].when.team: unknown scope");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','when':{'model':5}}", "budgets[1].when.model: ");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','shadow':'yes'}", "budgets[1].shadow: expected true or false");
	BAD("{'id':'x','scope':'all','usd':1,'window':'day','on_store_error':'maybe'}",
	    "budgets[1].on_store_error: expected one of allow, deny");
	BAD("'x'", "budgets[1]: expected an object");
	BAD("[]", "budgets[1]: expected an object");
#undef BAD
	refused("{'rules':[],'budgets':{}}", "budgets: expected an array of at most 64 budgets");
	refused("{'rules':[],'budgets':'x'}", "budgets: expected an array");
	refused("{'rules':[],'rate_limits':null}", "rate_limits: expected an array of at most 64 rate limits");

	/* rate limits */
#define BAD(item, want)                                                                                  \
	do {                                                                                             \
		snprintf(json, sizeof(json), "{'rules':[],'budgets':[%s],'rate_limits':[%s]}", ok, item); \
		refused(json, want);                                                                     \
	} while (0)
	BAD("{'id':'r','scope':'all'}", "rate_limits[0]: expected requests_per_minute and/or tokens_per_minute");
	BAD("{'id':'r','scope':'all','requests_per_minute':0}", "rate_limits[0].requests_per_minute: expected an integer "
	                                                        "from 1 to 1000000000");
	BAD("{'id':'r','scope':'all','tokens_per_minute':-3}", "rate_limits[0].tokens_per_minute: expected an integer");
	BAD("{'id':'r','scope':'all','requests_per_minute':'60'}", "rate_limits[0].requests_per_minute: expected");
	BAD("{'id':'r','scope':'all','requests_per_minute':6,'window':'day'}", "rate_limits[0].window: unknown key");
	BAD("{'id':'r','scope':'all','requests_per_minute':6,'usd':1}", "rate_limits[0].usd: unknown key");
	BAD("{'id':'r','scope':'all','requests_per_minute':6,'time_zone':'UTC'}", "rate_limits[0].time_zone: unknown key");
	BAD("{'id':'ok','scope':'all','requests_per_minute':6}", "rate_limits[0].id: \"ok\" is already the id of another");
	BAD("{'id':'r','scope':'all','requests_per_minute':6},{'id':'r','scope':'user_id','tokens_per_minute':6}",
	    "rate_limits[1].id: \"r\" is already the id");
	BAD("{'id':'r:1','scope':'all','requests_per_minute':6}", "rate_limits[0].id: expected a name of letters");
#undef BAD
	/* a duplicate found from the budgets side, the rate limit read first */
	refused("{'rules':[],'rate_limits':[{'id':'dup','scope':'all','requests_per_minute':6}],"
	        "'budgets':[{'id':'dup','scope':'all','usd':1,'window':'day'}]}",
	        "budgets[0].id: \"dup\" is already the id of another budget or rate limit");
	/* an error after a valid section frees that section (ASan checks) */
	refused("{'budgets':[{'id':'a','scope':'all','usd':1,'window':'day'}],'rules':[{'id':'r'}]}", "rules[0] (\"r\"): a rule needs");
}

static void refuses_too_many(void **st)
{
	(void)st;
	static char json[32768];
	/* nb budgets and nr rate limits */
#define BUILD(nb, nr)                                                                                       \
	do {                                                                                                \
		size_t o_ = (size_t)snprintf(json, sizeof(json), "{'rules':[],'budgets':[");               \
		for (int i_ = 0; i_ < (nb); i_++)                                                           \
			o_ += (size_t)snprintf(json + o_, sizeof(json) - o_,                                \
			                       "%s{'id':'b%d','scope':'all','usd':1,'window':'day'}", i_ ? "," : "", i_); \
		o_ += (size_t)snprintf(json + o_, sizeof(json) - o_, "],'rate_limits':[");                  \
		for (int i_ = 0; i_ < (nr); i_++)                                                           \
			o_ += (size_t)snprintf(json + o_, sizeof(json) - o_,                                \
			                       "%s{'id':'r%d','scope':'all','requests_per_minute':1}", i_ ? "," : "", i_); \
		snprintf(json + o_, sizeof(json) - o_, "]}");                                               \
		assert_true(o_ + 2 < sizeof(json));                                                         \
	} while (0)
	BUILD(BUDGET_MAX, 0);
	load(json);
	assert_int_equal(pol.budgets->n, BUDGET_MAX);
	assert_string_equal(pol.budgets->b[BUDGET_MAX - 1].id, "b63");
	BUILD(40, BUDGET_MAX - 40);
	load(json);
	assert_int_equal(pol.budgets->n, BUDGET_MAX);
	assert_int_equal(pol.budgets->nrate, BUDGET_MAX - 40);
	BUILD(BUDGET_MAX + 1, 0);
	refused(json, "budgets: expected an array of at most 64 budgets");
	BUILD(0, BUDGET_MAX + 1);
	refused(json, "rate_limits: expected an array of at most 64 rate limits");
	BUILD(40, BUDGET_MAX - 39);
	refused(json, "rate_limits: at most 64 budgets and rate limits in all");
#undef BUILD
}

/* ---- charges ---- */

static const char claims2[][64] = { "team-a", "team-b" };
static const char claims_empty[][64] = { "", "team-c" };

static struct policy_input full_input(void)
{
	struct policy_input in = { .output_tokens = -1, .messages = -1 };
	in.v[SC_PROVIDER] = S("openai");
	in.v[SC_MODEL] = S("gpt-4o-mini");
	in.v[SC_KEY_ID] = S("k1");
	in.v[SC_KEY_OWNER] = S("owner");
	in.v[SC_AGENT_ID] = S("a1");
	in.v[SC_USER_ID] = S("alice");
	in.claims = claims2;
	in.nclaims = 2;
	return in;
}

static const char charges_policy[] =
	"{'rules':[],'budgets':["
	"{'id':'per-key','scope':'key_id','usd':10,'window':'day'},"
	"{'id':'per-user','scope':'user_id','tokens':1000,'window':'week','when':{'provider':'openai'}},"
	"{'id':'per-agent','scope':'agent_id','requests':5,'window':'month','when':{'model':['gpt-4o*','claude-*']}},"
	"{'id':'per-team','scope':'jwt_claim','usd':100,'window':'rolling 24h'},"
	"{'id':'per-provider','scope':'provider','usd':1000,'window':'day'},"
	"{'id':'per-model','scope':'model','tokens':1000000,'window':'day'},"
	"{'id':'global','scope':'all','usd':5000,'window':'month'}],"
	"'rate_limits':[{'id':'rl-user','scope':'user_id','requests_per_minute':60,'when':{'jwt_claim':'team-*'}}]}";

/* "id=who" for each charge, checking its hash on the way. */
static const char *describe(const struct budget_charge *c, int n)
{
	static char out[1024];
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		assert_int_equal(c[i].hash, budget_hash(c[i].b->scope, c[i].who));
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s=%.*s", i ? " " : "", c[i].b->id, (int)c[i].who.len,
		                      (const char *)c[i].who.ptr);
	}
	return out;
}

static const char *charged(const struct policy_input *in, int max)
{
	struct budget_charge c[32];
	assert_true(max <= 32);
	memset(c, 0xa5, sizeof(c));
	int n = budget_charges(pol.budgets, in, c, max);
	assert_true(n >= 0 && n <= max);
	return describe(c, n);
}

static void charges_follow_scope_and_when(void **st)
{
	(void)st;
	load(charges_policy);
	struct policy_input in = full_input();
	assert_string_equal(charged(&in, 32), "per-key=k1 per-user=alice per-agent=a1 per-team=team-a per-team=team-b "
	                                      "per-provider=openai per-model=gpt-4o-mini global= rl-user=alice");
	/* at most max, in policy order; a claim's values count one each */
	assert_string_equal(charged(&in, BUDGET_MAX_CHARGES), "per-key=k1 per-user=alice per-agent=a1 per-team=team-a "
	                                                      "per-team=team-b per-provider=openai per-model=gpt-4o-mini "
	                                                      "global=");
	assert_string_equal(charged(&in, 4), "per-key=k1 per-user=alice per-agent=a1 per-team=team-a");
	assert_string_equal(charged(&in, 1), "per-key=k1");
	assert_string_equal(charged(&in, 0), "");
	/* "when" filters */
	in.v[SC_PROVIDER] = S("anthropic");
	in.v[SC_MODEL] = S("claude-haiku-4-5");
	assert_string_equal(charged(&in, 32), "per-key=k1 per-agent=a1 per-team=team-a per-team=team-b "
	                                      "per-provider=anthropic per-model=claude-haiku-4-5 global= rl-user=alice");
	in.v[SC_MODEL] = S("o1");
	assert_string_equal(charged(&in, 32), "per-key=k1 per-team=team-a per-team=team-b per-provider=anthropic "
	                                      "per-model=o1 global= rl-user=alice");
	/* a scope value missing: not charged to that scope */
	in = full_input();
	in.v[SC_USER_ID] = S(NULL);
	in.v[SC_KEY_ID] = S("");
	in.v[SC_MODEL] = S(NULL); /* and the model-scoped "when" of per-agent no longer matches */
	assert_string_equal(charged(&in, 32), "per-team=team-a per-team=team-b per-provider=openai global=");
	/* no token: no claim charges, and the claim-scoped rate limit does not apply */
	in = full_input();
	in.claims = NULL;
	in.nclaims = 0;
	assert_string_equal(charged(&in, 32), "per-key=k1 per-user=alice per-agent=a1 per-provider=openai "
	                                      "per-model=gpt-4o-mini global=");
	/* an empty claim value is no one's; the other still counts, but not for team-* */
	in.claims = claims_empty;
	in.nclaims = 2;
	assert_string_equal(charged(&in, 32), "per-key=k1 per-user=alice per-agent=a1 per-team=team-c "
	                                      "per-provider=openai per-model=gpt-4o-mini global= rl-user=alice");
	/* nothing known about the call: only "all" */
	struct policy_input none = { .output_tokens = -1, .messages = -1 };
	assert_string_equal(charged(&none, 32), "global=");
	/* no budgets */
	struct budget_charge c[4];
	assert_int_equal(budget_charges(NULL, &none, c, 4), 0);

	/* the charge's fields: the budget, the scope's value as a slice of the input */
	in = full_input();
	struct budget_charge cc[16];
	int n = budget_charges(pol.budgets, &in, cc, 16);
	assert_int_equal(n, 9);
	assert_ptr_equal(cc[0].b, find("per-key"));
	assert_ptr_equal(cc[0].who.ptr, in.v[SC_KEY_ID].ptr);
	assert_ptr_equal(cc[3].who.ptr, (const uint8_t *)claims2[0]);
	assert_ptr_equal(cc[4].who.ptr, (const uint8_t *)claims2[1]);
	assert_int_equal(cc[7].who.len, 0);
	assert_int_equal(cc[7].hash, budget_hash(BS_ALL, S("")));
	assert_true(cc[1].hash == cc[8].hash); /* the same user: the same name in the store, for both limits */
	assert_true(cc[3].hash != cc[4].hash);
}

/* SHA-256 of the scope's letter and the value, the first 8 bytes big-endian: computed here independently. */
static uint64_t ref_hash(enum budget_scope scope, const char *who)
{
	unsigned char buf[512], h[SHA256_DIGEST_LENGTH];
	size_t n = strlen(who);
	buf[0] = (unsigned char)('a' + scope);
	memcpy(buf + 1, who, n);
	SHA256(buf, n + 1, h);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

static void hashes_are_stable_and_per_scope(void **st)
{
	(void)st;
	/* Known values (python3 hashlib.sha256(b"balice")): the names in the store must
	 * not change between versions, or every budget would start again from zero. */
	assert_true(budget_hash(BS_USER, S("alice")) == 0x4000cc270b72074bULL);
	assert_true(ref_hash(BS_USER, "alice") == 0x4000cc270b72074bULL);
	assert_true(budget_hash(BS_ALL, S("")) == 0xcd0aa9856147b6c5ULL);
	assert_true(budget_hash(BS_AGENT, S("bot-7")) == 0x182a5374a9a85b02ULL);
	static const char *const who[] = { "alice", "x", "", "team-a", "gpt-4o", "a much longer value, with spaces" };
	for (int s = 0; s < BS_COUNT; s++)
		for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
			uint64_t h = budget_hash((enum budget_scope)s, S(who[i]));
			assert_true(h == ref_hash((enum budget_scope)s, who[i]));
			assert_true(h == budget_hash((enum budget_scope)s, S(who[i])));
			for (int t = 0; t < s; t++) /* the same value in two scopes: two names */
				assert_true(h != budget_hash((enum budget_scope)t, S(who[i])));
		}
	assert_true(budget_hash(BS_USER, S("x")) != budget_hash(BS_AGENT, S("x")));
	assert_true(budget_hash(BS_USER, S("alice")) != budget_hash(BS_USER, S("alicf")));
	/* the slice's length counts, not a NUL */
	assert_true(budget_hash(BS_USER, (struct spop_slice){ (const uint8_t *)"alice-and-more", 5 }) ==
	            budget_hash(BS_USER, S("alice")));
}

/* ---- the charge list ---- */

/* budget_charge_next over exactly len bytes on the heap (ASan sees a read past them);
 * returns how many elements it read, and the ids/hashes in ids/hashes. */
static int read_list(const void *data, size_t len, char ids[][BUDGET_ID_MAX + 8], uint64_t *hashes, int max,
                     size_t *end)
{
	uint8_t *d = malloc(len ? len : 1);
	assert_non_null(d);
	memcpy(d, data, len);
	struct spop_slice list = { d, len };
	size_t pos = 0;
	int n = 0;
	struct spop_slice id;
	uint64_t h;
	for (; n <= max; n++) {
		size_t before = pos;
		if (!budget_charge_next(list, &pos, &id, &h)) {
			assert_int_equal(pos, before); /* a refusal does not move */
			break;
		}
		assert_true(n < max);
		assert_true(pos > before && pos <= len);
		assert_true(id.ptr >= d + before && id.ptr + id.len <= d + len && id.len > 0 && id.len < BUDGET_ID_MAX);
		if (ids) {
			memcpy(ids[n], id.ptr, id.len);
			ids[n][id.len] = '\0';
		}
		if (hashes)
			hashes[n] = h;
	}
	if (end)
		*end = pos;
	free(d);
	return n;
}

static int nread(const char *s)
{
	return read_list(s, strlen(s), NULL, NULL, 64, NULL);
}

static void charge_list_round_trip(void **st)
{
	(void)st;
	load(charges_policy);
	struct policy_input in = full_input();
	struct budget_charge c[BUDGET_MAX_CHARGES];
	int n = budget_charges(pol.budgets, &in, c, BUDGET_MAX_CHARGES);
	assert_int_equal(n, BUDGET_MAX_CHARGES);
	char list[BUDGET_MAX_CHARGES * (BUDGET_ID_MAX + 18)];
	size_t len = budget_charges_encode(c, n, list, sizeof(list));
	assert_true(len > 0 && len < sizeof(list));
	assert_int_equal(strlen(list), len);
	char want[64];
	snprintf(want, sizeof(want), "per-key:%016llx,per-user:%016llx,", (unsigned long long)c[0].hash,
	         (unsigned long long)c[1].hash);
	assert_memory_equal(list, want, strlen(want));
	snprintf(want, sizeof(want), ",global:%016llx", (unsigned long long)budget_hash(BS_ALL, S("")));
	assert_string_equal(list + len - strlen(want), want);

	char ids[16][BUDGET_ID_MAX + 8];
	uint64_t hs[16];
	size_t end;
	assert_int_equal(read_list(list, len, ids, hs, 16, &end), n);
	assert_int_equal(end, len);
	for (int i = 0; i < n; i++) {
		assert_string_equal(ids[i], c[i].b->id);
		assert_true(hs[i] == c[i].hash);
		assert_ptr_equal(budget_find(pol.budgets, S(ids[i])), c[i].b);
	}
	/* one charge, and hashes with high bits and leading zeros */
	struct budget_charge one = { find("global"), S(""), 0x00000000000000ffULL };
	assert_int_equal(budget_charges_encode(&one, 1, list, sizeof(list)), strlen("global:") + 16);
	assert_string_equal(list, "global:00000000000000ff");
	assert_int_equal(read_list(list, strlen(list), ids, hs, 16, NULL), 1);
	assert_true(hs[0] == 0xff);
	one.hash = UINT64_MAX;
	budget_charges_encode(&one, 1, list, sizeof(list));
	assert_string_equal(list, "global:ffffffffffffffff");
	assert_int_equal(read_list(list, strlen(list), ids, hs, 16, NULL), 1);
	assert_true(hs[0] == UINT64_MAX);
	/* none, or no room: 0 */
	assert_int_equal(budget_charges_encode(c, 0, list, sizeof(list)), 0);
	size_t full = budget_charges_encode(c, 2, list, sizeof(list));
	assert_int_equal(full, strlen("per-key:") + 16 + 1 + strlen("per-user:") + 16);
	assert_int_equal(budget_charges_encode(c, 2, list, full + 1), full); /* room for the NUL */
	assert_int_equal(budget_charges_encode(c, 2, list, full), 0);
	assert_int_equal(budget_charges_encode(c, 2, list, 10), 0);
	assert_int_equal(budget_charges_encode(c, 2, list, 0), 0);
}

static void charge_list_hostile(void **st)
{
	(void)st;
	static const char h16[] = "0123456789abcdef";
	char s[256], ids[16][BUDGET_ID_MAX + 8];
	uint64_t hs[16];
	size_t end;
	/* well formed */
	assert_int_equal(nread("a:0123456789abcdef"), 1);
	assert_int_equal(read_list(s, (size_t)snprintf(s, sizeof(s), "a:%s,B_-9:fedcba9876543210", h16), ids, hs, 16, &end), 2);
	assert_string_equal(ids[0], "a");
	assert_string_equal(ids[1], "B_-9");
	assert_true(hs[0] == 0x0123456789abcdefULL && hs[1] == 0xfedcba9876543210ULL);
	assert_int_equal(end, strlen(s));
	/* empty, and pieces missing */
	assert_int_equal(read_list("", 0, NULL, NULL, 16, &end), 0);
	assert_int_equal(end, 0);
	assert_int_equal(nread("abc"), 0);
	assert_int_equal(nread("abc,def"), 0);
	assert_int_equal(nread(":0123456789abcdef"), 0);
	assert_int_equal(nread("a:"), 0);
	assert_int_equal(nread("a:,"), 0);
	assert_int_equal(nread(":"), 0);
	assert_int_equal(nread(","), 0);
	assert_int_equal(nread("a0123456789abcdef"), 0);
	/* 15 and 17 digits, uppercase, non-hex, a sign, a space */
	assert_int_equal(nread("a:0123456789abcde"), 0);
	assert_int_equal(nread("a:0123456789abcdef0"), 0);
	assert_int_equal(nread("a:0123456789abcdef0,b:0123456789abcdef"), 0);
	assert_int_equal(nread("a:0123456789ABCDEF"), 0);
	assert_int_equal(nread("a:0123456789abcdeF"), 0);
	assert_int_equal(nread("a:0123456789abcdeg"), 0);
	assert_int_equal(nread("a:0x23456789abcdef"), 0);
	assert_int_equal(nread("a:-123456789abcdef"), 0);
	assert_int_equal(nread("a: 123456789abcdef"), 0);
	assert_int_equal(nread("a:0123456789abcdef "), 0);
	assert_int_equal(nread("a:0123456789abcdef;b:0123456789abcdef"), 0);
	/* a trailing comma ends the list; a bad element after a good one ends it there */
	assert_int_equal(read_list("a:0123456789abcdef,", 19, NULL, NULL, 16, &end), 1);
	assert_int_equal(end, 19);
	assert_int_equal(read_list("a:0123456789abcdef,,b:0123456789abcdef", 38, ids, NULL, 16, &end), 1);
	assert_int_equal(end, 19);
	assert_int_equal(nread("a:0123456789abcdef,b:0123"), 1);
	assert_int_equal(nread("a:0123456789abcdef,b"), 1);
	/* ids: BUDGET_ID_MAX - 1 characters at most, and only the characters ids have */
	memset(s, 'x', BUDGET_ID_MAX - 1);
	snprintf(s + BUDGET_ID_MAX - 1, sizeof(s) - (BUDGET_ID_MAX - 1), ":%s", h16);
	assert_int_equal(read_list(s, strlen(s), ids, NULL, 16, NULL), 1);
	assert_int_equal(strlen(ids[0]), BUDGET_ID_MAX - 1);
	memset(s, 'x', BUDGET_ID_MAX);
	snprintf(s + BUDGET_ID_MAX, sizeof(s) - BUDGET_ID_MAX, ":%s", h16);
	assert_int_equal(nread(s), 0);
	memset(s, 'x', 200);
	snprintf(s + 200, sizeof(s) - 200, ":%s", h16);
	assert_int_equal(nread(s), 0);
	static const char *const bad_ids[] = { "a b", "a{b", "a}b", "a.b", "a\"b", "a]b", "a\\b", "\xc3\xa9", "a\tb" };
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		snprintf(s, sizeof(s), "%s:%s", bad_ids[i], h16);
		if (nread(s) != 0)
			fail_msg("id \"%s\" accepted", bad_ids[i]);
	}
	/* a comma before the colon: no element has an id with a comma in it */
	assert_int_equal(nread("a,b:0123456789abcdef"), 0);
	/* embedded NUL, in the id and in the hash */
	static const char nul_id[] = "a\0b:0123456789abcdef";
	assert_int_equal(read_list(nul_id, sizeof(nul_id) - 1, NULL, NULL, 16, NULL), 0);
	static const char nul_hash[] = "a:01234567\0009abcdef";
	assert_int_equal(read_list(nul_hash, sizeof(nul_hash) - 1, NULL, NULL, 16, NULL), 0);
	static const char nul_after[] = "a:0123456789abcdef\0";
	assert_int_equal(read_list(nul_after, sizeof(nul_after) - 1, NULL, NULL, 16, NULL), 0);
	/* the list ends where the slice does, not at a NUL: an element cut off is refused */
	assert_int_equal(read_list("a:0123456789abcdef", 17, NULL, NULL, 16, NULL), 0);
	assert_int_equal(read_list("a:0123456789abcdef", 2, NULL, NULL, 16, NULL), 0);
	/* a position at or past the end */
	struct spop_slice l = S("a:0123456789abcdef"), id;
	uint64_t h;
	size_t pos = l.len;
	assert_false(budget_charge_next(l, &pos, &id, &h));
	pos = l.len + 100;
	assert_false(budget_charge_next(l, &pos, &id, &h));
	assert_int_equal(pos, l.len + 100);

	/* garbage: nothing read outside, every element read is well formed */
	static const char alphabet[] = "ab_-Z09:,:,fF \0\xff";
	uint32_t x = 2463534242u;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 64);
		uint8_t g[64];
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			g[i] = (round & 1) ? (uint8_t)x : (uint8_t)alphabet[x % (sizeof(alphabet) - 1)];
		}
		int n = read_list(g, len, ids, hs, 16, NULL);
		for (int i = 0; i < n; i++)
			for (const char *c = ids[i]; *c; c++)
				assert_true((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
				            *c == '_' || *c == '-');
	}
	/* and valid elements among garbage-generated ones do parse */
	snprintf(s, sizeof(s), "x-1:%s,y_2:%s", h16, h16);
	assert_int_equal(read_list(s, strlen(s), ids, hs, 16, NULL), 2);
	assert_string_equal(ids[1], "y_2");
}

/* ---- the view of spend ---- */

static struct window win(const char *spec)
{
	struct window w = { 0 };
	char e[160];
	if (window_parse(spec, &w, e, sizeof(e)) < 0)
		fail_msg("%s", e);
	w.tz = NULL;
	return w;
}

static void sum(const struct bview *v, const struct window *w, int64_t now, int64_t out[BM_COUNT])
{
	memset(out, 0x5a, sizeof(int64_t) * BM_COUNT);
	bview_sum(v, w, now, out);
}

#define T0 1796195360 /* 2026-12-02T07:09:20Z */

static void view_calendar(void **st)
{
	(void)st;
	struct window w = win("day");
	struct bview v;
	bview_init(&v);
	for (int i = 0; i < WIN_BUCKETS; i++) {
		assert_true(v.s[i].b == INT64_MIN);
		assert_false(v.s[i].loaded);
	}
	int64_t out[BM_COUNT];
	sum(&v, &w, T0, out);
	assert_int_equal(out[BM_USD], 0);
	assert_int_equal(out[BM_TOKENS], 0);
	assert_int_equal(out[BM_REQUESTS], 0);

	int64_t day = window_bucket(&w, T0);
	assert_int_equal(day, T0 / 86400);
	struct bslot *s = bview_slot(&v, day);
	assert_true(s->b == day);
	s->val[BM_USD] = 100;
	s->pend[BM_USD] = 20;
	s->unsent[BM_USD] = 3;
	s->unsent[BM_REQUESTS] = 1;
	s->val[BM_TOKENS] = 7;
	assert_ptr_equal(bview_slot(&v, day), s); /* the same bucket: kept */
	assert_int_equal(s->val[BM_USD], 100);
	sum(&v, &w, T0, out);
	assert_int_equal(out[BM_USD], 123);
	assert_int_equal(out[BM_TOKENS], 7);
	assert_int_equal(out[BM_REQUESTS], 1);
	/* anywhere in that day, and not a second outside it */
	sum(&v, &w, day * 86400, out);
	assert_int_equal(out[BM_USD], 123);
	sum(&v, &w, day * 86400 + 86399, out);
	assert_int_equal(out[BM_USD], 123);
	sum(&v, &w, day * 86400 + 86400, out);
	assert_int_equal(out[BM_USD], 0);
	sum(&v, &w, day * 86400 - 1, out);
	assert_int_equal(out[BM_USD], 0);
	/* 12 days on, the same ring slot but not the same bucket */
	sum(&v, &w, T0 + WIN_BUCKETS * 86400, out);
	assert_int_equal(out[BM_USD], 0);
	assert_int_equal(out[BM_REQUESTS], 0);
	/* a calendar window sums one bucket: yesterday's is not today's */
	struct bslot *y = bview_slot(&v, day - 1);
	assert_ptr_not_equal(y, s);
	y->val[BM_USD] = 1000;
	sum(&v, &w, T0, out);
	assert_int_equal(out[BM_USD], 123);
	sum(&v, &w, T0 - 86400, out);
	assert_int_equal(out[BM_USD], 1000);

	/* the slot reused for a newer bucket starts empty */
	s->loaded = true;
	struct bslot *n = bview_slot(&v, day + WIN_BUCKETS);
	assert_ptr_equal(n, s);
	assert_true(n->b == day + WIN_BUCKETS);
	assert_false(n->loaded);
	for (int m = 0; m < BM_COUNT; m++)
		assert_true(n->val[m] == 0 && n->pend[m] == 0 && n->unsent[m] == 0);
	sum(&v, &w, T0, out);
	assert_int_equal(out[BM_USD], 0);
	assert_int_equal(y->val[BM_USD], 1000); /* the others untouched */

	/* negative buckets (before 1970) have slots too */
	bview_init(&v);
	bview_slot(&v, -5)->val[BM_TOKENS] = 9;
	sum(&v, &w, -5 * 86400 + 10, out);
	assert_int_equal(out[BM_TOKENS], 9);
	sum(&v, &w, 7 * 86400 + 10, out); /* bucket 7: the same ring slot as -5 */
	assert_int_equal(out[BM_TOKENS], 0);
}

static void view_rolling(void **st)
{
	(void)st;
	struct window w = win("rolling 60s"); /* buckets of 5 s */
	struct bview v;
	bview_init(&v);
	int64_t now = 1000002, cur = window_bucket(&w, now), out[BM_COUNT];
	assert_int_equal(cur, 200000);
	for (int k = 0; k < WIN_BUCKETS; k++)
		bview_slot(&v, cur - k)->val[BM_REQUESTS] = (int64_t)1 << k;
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], (1 << WIN_BUCKETS) - 1); /* all 12 */
	assert_int_equal(out[BM_USD], 0);
	/* a bucket on: the oldest (cur - 11) has left the window, no new one yet */
	sum(&v, &w, now + 5, out);
	assert_int_equal(out[BM_REQUESTS], (1 << WIN_BUCKETS) - 1 - (1 << 11));
	sum(&v, &w, now + 3 * 5, out);
	assert_int_equal(out[BM_REQUESTS], (1 << 9) - 1);
	sum(&v, &w, now + 11 * 5, out);
	assert_int_equal(out[BM_REQUESTS], 1);
	sum(&v, &w, now + 12 * 5, out);
	assert_int_equal(out[BM_REQUESTS], 0);
	/* a time before the view's buckets: slots holding later buckets are not counted */
	sum(&v, &w, now - 5, out);
	assert_int_equal(out[BM_REQUESTS], ((1 << WIN_BUCKETS) - 1) & ~1);
	/* reusing the oldest slot for the next bucket drops the oldest's spend */
	struct bslot *s = bview_slot(&v, cur + 1);
	assert_ptr_equal(s, &v.s[(cur - 11) % WIN_BUCKETS]);
	assert_int_equal(s->val[BM_REQUESTS], 0);
	s->unsent[BM_REQUESTS] = 1 << 20;
	sum(&v, &w, now + 5, out);
	assert_int_equal(out[BM_REQUESTS], (1 << WIN_BUCKETS) - 1 - (1 << 11) + (1 << 20));
	sum(&v, &w, now, out); /* at now, cur + 1 is the future and cur - 11 is gone */
	assert_int_equal(out[BM_REQUESTS], (1 << 11) - 1);

	/* rolling 24h: buckets of two hours */
	w = win("rolling 24h");
	bview_init(&v);
	cur = window_bucket(&w, T0);
	assert_int_equal(cur, T0 / 7200);
	bview_slot(&v, cur - 11)->val[BM_USD] = 5;
	bview_slot(&v, cur - 3)->pend[BM_USD] = 7;
	sum(&v, &w, T0, out);
	assert_int_equal(out[BM_USD], 12);
	sum(&v, &w, (cur + 1) * 7200, out);
	assert_int_equal(out[BM_USD], 7);
	sum(&v, &w, (cur + 1) * 7200 - 1, out);
	assert_int_equal(out[BM_USD], 12);
}

static void view_replies(void **st)
{
	(void)st;
	struct window w = win("rolling 60s");
	struct bview v;
	bview_init(&v);
	int64_t now = 1000002, cur = window_bucket(&w, now), out[BM_COUNT];
	struct bslot *s = bview_slot(&v, cur);
	/* a read: val replaced, what is pending and unsent kept */
	s->pend[BM_TOKENS] = 40;
	s->unsent[BM_TOKENS] = 2;
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 1, 100, 3 }, NULL);
	assert_true(s->loaded);
	assert_int_equal(s->val[BM_USD], 1);
	assert_int_equal(s->val[BM_TOKENS], 100);
	assert_int_equal(s->val[BM_REQUESTS], 3);
	assert_int_equal(s->pend[BM_TOKENS], 40);
	assert_int_equal(s->unsent[BM_TOKENS], 2);
	/* an increment's answer: val replaced, that increment no longer pending */
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 1, 130, 3 }, (const int64_t[BM_COUNT]){ 0, 30, 0 });
	assert_int_equal(s->val[BM_TOKENS], 130);
	assert_int_equal(s->pend[BM_TOKENS], 10);
	assert_int_equal(s->unsent[BM_TOKENS], 2);
	/* a reply for a bucket the slot no longer holds changes nothing */
	bview_reply(&v, cur - WIN_BUCKETS, (const int64_t[BM_COUNT]){ 9, 9, 9 }, (const int64_t[BM_COUNT]){ 10, 10, 10 });
	bview_reply(&v, cur + WIN_BUCKETS, (const int64_t[BM_COUNT]){ 9, 9, 9 }, NULL);
	assert_int_equal(s->val[BM_TOKENS], 130);
	assert_int_equal(s->pend[BM_TOKENS], 10);
	assert_true(s->b == cur);
	/* nor for a bucket no slot holds */
	struct bview before;
	memcpy(&before, &v, sizeof(v));
	bview_reply(&v, cur - 3, (const int64_t[BM_COUNT]){ 9, 9, 9 }, NULL);
	assert_memory_equal(&before, &v, sizeof(v));

	/* No double count. The store moves unsent to pend when it sends, and answers
	 * each increment with the bucket's total after it, in order. true_total is
	 * what the fleet has spent, this agent included. */
	bview_init(&v);
	s = bview_slot(&v, cur);
	int64_t true_total = 50; /* others, before we read */
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 0, 0, true_total }, NULL);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	/* we allow 3 calls */
	s->unsent[BM_REQUESTS] += 3;
	true_total += 3;
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	/* the store sends them */
	int64_t sent1[BM_COUNT] = { 0, 0, 3 };
	s->pend[BM_REQUESTS] += s->unsent[BM_REQUESTS];
	s->unsent[BM_REQUESTS] = 0;
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	/* others spend 10 meanwhile; the answer's total has both */
	true_total += 10;
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 0, 0, true_total }, sent1);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	assert_int_equal(s->pend[BM_REQUESTS], 0);

	/* a read sent before an increment, answered after it was sent: the increment
	 * is still pending, counted once; its own answer later folds it into val */
	int64_t read_total = true_total + 4; /* others' 4 more, as of the read */
	true_total += 4;
	s->unsent[BM_REQUESTS] += 2; /* 2 more calls here */
	true_total += 2;
	int64_t sent2[BM_COUNT] = { 0, 0, 2 };
	s->pend[BM_REQUESTS] += 2;
	s->unsent[BM_REQUESTS] = 0;
	s->unsent[BM_REQUESTS] += 1; /* and one not sent yet */
	true_total += 1;
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 0, 0, read_total }, NULL);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	assert_int_equal(s->pend[BM_REQUESTS], 2);
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 0, 0, read_total + 2 }, sent2);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);
	assert_int_equal(s->pend[BM_REQUESTS], 0);
	assert_int_equal(s->unsent[BM_REQUESTS], 1);
	/* a read sent after the increment, answered after its answer: includes it */
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ 0, 0, read_total + 2 }, NULL);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_REQUESTS], true_total);

	/* two increments in flight, answered in order */
	int64_t a[BM_COUNT] = { 5, 50, 1 }, b[BM_COUNT] = { 7, 70, 1 };
	int64_t base[BM_COUNT];
	for (int m = 0; m < BM_COUNT; m++) {
		base[m] = s->val[m];
		s->pend[m] += a[m] + b[m];
	}
	s->unsent[BM_REQUESTS] = 0;
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_USD], base[BM_USD] + 12);
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ base[0] + 5, base[1] + 50, base[2] + 1 }, a);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_USD], base[BM_USD] + 12);
	assert_int_equal(out[BM_TOKENS], base[BM_TOKENS] + 120);
	assert_int_equal(out[BM_REQUESTS], base[BM_REQUESTS] + 2);
	bview_reply(&v, cur, (const int64_t[BM_COUNT]){ base[0] + 12, base[1] + 120, base[2] + 2 }, b);
	sum(&v, &w, now, out);
	assert_int_equal(out[BM_USD], base[BM_USD] + 12);
	assert_int_equal(out[BM_TOKENS], base[BM_TOKENS] + 120);
	assert_int_equal(out[BM_REQUESTS], base[BM_REQUESTS] + 2);
	for (int m = 0; m < BM_COUNT; m++)
		assert_int_equal(s->pend[m], 0);
}

/* ---- over the limit, and when to retry ---- */

static void over_limits(void **st)
{
	(void)st;
	struct budget b = { 0 };
	b.limit[BM_TOKENS] = 100;
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 0, 99, 0 }), -1);
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 0, 100, 0 }), BM_TOKENS); /* at the limit */
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 0, 101, 0 }), BM_TOKENS);
	/* 0: no limit on that measure, whatever the spend */
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ INT64_MAX, 5, INT64_MAX }), -1);
	b.limit[BM_USD] = 1000000;
	b.limit[BM_REQUESTS] = 3;
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 999999, 99, 2 }), -1);
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 999999, 99, 3 }), BM_REQUESTS);
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 1000000, 99, 2 }), BM_USD);
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 1000000, 100, 3 }), BM_USD); /* the first */
	assert_int_equal(budget_over(&b, (const int64_t[BM_COUNT]){ 0, 100, 3 }), BM_TOKENS);
	/* a limit of N requests allows N: the check is of spend before the call */
	struct budget r = { 0 };
	r.limit[BM_REQUESTS] = 2;
	int64_t spent[BM_COUNT] = { 0 };
	int allowed = 0;
	for (int i = 0; i < 5; i++)
		if (budget_over(&r, spent) < 0) {
			allowed++;
			spent[BM_REQUESTS]++;
		}
	assert_int_equal(allowed, 2);
	/* no limits at all */
	struct budget none = { 0 };
	assert_int_equal(budget_over(&none, (const int64_t[BM_COUNT]){ INT64_MAX, INT64_MAX, INT64_MAX }), -1);
	assert_string_equal(bmeasure_names[BM_USD], "usd");
	assert_string_equal(bmeasure_names[BM_TOKENS], "tokens");
	assert_string_equal(bmeasure_names[BM_REQUESTS], "requests");
	assert_null(bmeasure_names[BM_COUNT]);
	assert_string_equal(budget_scope_names[BS_CLAIM], "jwt_claim");
	assert_null(budget_scope_names[BS_COUNT]);
}

static void retry_after_calendar(void **st)
{
	(void)st;
	struct budget b = { 0 };
	b.limit[BM_USD] = 1;
	b.win = win("day");
	struct bview v;
	bview_init(&v);
	bview_slot(&v, window_bucket(&b.win, T0))->val[BM_USD] = 5;
	/* until the next midnight, UTC: 2026-12-03T00:00Z */
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 1796256000 - T0);
	assert_int_equal(budget_retry_after(&b, &v, 1796256000 - 1, BM_USD), 1);       /* the last second */
	assert_int_equal(budget_retry_after(&b, &v, 1796256000 - 86400, BM_USD), 86400); /* the first */
	/* in a zone: midnight at +05:30 is 18:30Z */
	char e[160];
	assert_int_equal(tz_fixed("+05:30", &b.tz, e, sizeof(e)), 0);
	b.win.tz = &b.tz;
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 1796256000 - 19800 - T0);
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 40840);
	assert_int_equal(budget_retry_after(&b, &v, 1796256000 - 19800 - 1, BM_USD), 1);
	assert_int_equal(budget_retry_after(&b, &v, 1796256000 - 19800, BM_USD), 86400); /* local midnight: a new day */
	/* a week (from Monday) and a month, UTC */
	b.win = win("week");
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 1796601600 - T0); /* Monday 2026-12-07 */
	b.win = win("month");
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 1798761600 - T0); /* 2027-01-01 */
	b.win.tz = &b.tz;
	assert_int_equal(budget_retry_after(&b, &v, T0, BM_USD), 1798761600 - 19800 - T0);
	tz_free(&b.tz);
	/* the same through a parsed budget, the loader's way (win.tz at the budget's own tz) */
	load("{'rules':[],'budgets':[{'id':'d','scope':'all','usd':1,'window':'day','time_zone':'+05:30'}]}");
	struct budget *pb = &pol.budgets->b[0];
	assert_int_equal(tz_fixed(pb->tz_name, &pb->tz, e, sizeof(e)), 0);
	pb->win.tz = &pb->tz;
	assert_int_equal(budget_retry_after(pb, &v, T0, BM_USD), 40840);
}

static void retry_after_rolling(void **st)
{
	(void)st;
	load("{'rules':[],'rate_limits':[{'id':'rpm','scope':'all','requests_per_minute':10}]}");
	const struct budget *b = find("rpm");
	struct bview v;
	bview_init(&v);
	int64_t now = 1000002, cur = window_bucket(&b->win, now), out[BM_COUNT];
	assert_int_equal(cur, 200000); /* buckets of 5 s; now is 2 s into one */
	/* 4 calls in cur-10, 6 in cur-2: 10, at the limit */
	bview_slot(&v, cur - 10)->val[BM_REQUESTS] = 4;
	bview_slot(&v, cur - 2)->val[BM_REQUESTS] = 6;
	bview_sum(&v, &b->win, now, out);
	assert_int_equal(budget_over(b, out), BM_REQUESTS);
	/* cur-10 leaves when cur+2 begins: 1000010 */
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 8);
	/* and then it is allowed */
	bview_sum(&v, &b->win, now + 8, out);
	assert_int_equal(budget_over(b, out), -1);
	bview_sum(&v, &b->win, now + 7, out);
	assert_int_equal(budget_over(b, out), BM_REQUESTS);
	/* 5 in cur-10, 10 in cur-2: both must go, at the start of cur+10 */
	bview_slot(&v, cur - 10)->val[BM_REQUESTS] = 5;
	bview_slot(&v, cur - 2)->val[BM_REQUESTS] = 10;
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 48);
	bview_sum(&v, &b->win, now + 47, out);
	assert_int_equal(budget_over(b, out), BM_REQUESTS);
	bview_sum(&v, &b->win, now + 48, out);
	assert_int_equal(budget_over(b, out), -1);
	/* what is pending and unsent counts like what was read */
	bview_init(&v);
	bview_slot(&v, cur - 11)->pend[BM_REQUESTS] = 3;
	bview_slot(&v, cur - 6)->unsent[BM_REQUESTS] = 7;
	bview_slot(&v, cur - 1)->val[BM_REQUESTS] = 1;
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 3);  /* cur-11 goes at cur+1: 11 -> 8 */
	bview_slot(&v, cur - 11)->pend[BM_REQUESTS] = 1;
	bview_slot(&v, cur - 6)->unsent[BM_REQUESTS] = 9;
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 28); /* 11 -> 10 is not under 10: cur-6 at cur+6 */
	/* all of it in the current bucket: a whole window */
	bview_init(&v);
	bview_slot(&v, cur)->val[BM_REQUESTS] = 100;
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 58);
	/* buckets older than the window count for nothing, and leave nothing to wait for */
	bview_slot(&v, cur - 13)->val[BM_REQUESTS] = 1000;
	assert_int_equal(budget_retry_after(b, &v, now, BM_REQUESTS), 58);
	/* at the last second of a bucket: at least 1 */
	bview_init(&v);
	bview_slot(&v, cur - 11)->val[BM_REQUESTS] = 10;
	assert_int_equal(budget_retry_after(b, &v, cur * 5 + 4, BM_REQUESTS), 1);
	assert_int_equal(budget_retry_after(b, &v, cur * 5, BM_REQUESTS), 5);
	/* on tokens, for a rate limit on both */
	load("{'rules':[],'rate_limits':[{'id':'tpm','scope':'all','requests_per_minute':100,'tokens_per_minute':1000}]}");
	b = find("tpm");
	bview_init(&v);
	bview_slot(&v, cur - 9)->val[BM_TOKENS] = 600;
	bview_slot(&v, cur - 4)->val[BM_TOKENS] = 500;
	bview_slot(&v, cur - 9)->val[BM_REQUESTS] = 1;
	bview_sum(&v, &b->win, now, out);
	assert_int_equal(budget_over(b, out), BM_TOKENS);
	assert_int_equal(budget_retry_after(b, &v, now, BM_TOKENS), 13); /* cur-9 goes at cur+3 */
	/* rolling 24h: two-hour buckets */
	load("{'rules':[],'budgets':[{'id':'r24','scope':'all','usd':10,'window':'rolling 24h'}]}");
	b = find("r24");
	bview_init(&v);
	cur = window_bucket(&b->win, T0);
	bview_slot(&v, cur - 5)->val[BM_USD] = 10000000;
	assert_int_equal(budget_retry_after(b, &v, T0, BM_USD), (cur + 7) * 7200 - T0);
	assert_true(budget_retry_after(b, &v, T0, BM_USD) >= 1);
}

/* The estimate ahead of the charges: "~in:out," then the list. */
static void estimate_prefix(void **st)
{
	(void)st;
	struct { const char *s; bool ok; int64_t in, out; size_t pos; } cases[] = {
		{ "~11000:800,a:0123456789abcdef", true, 11000, 800, 11 },
		{ "~0:4096", true, 0, 4096, 7 },
		{ "~1:2,", true, 1, 2, 5 },
		{ "a:0123456789abcdef", false, 0, 0, 0 },
		{ "~", false, 0, 0, 0 },
		{ "~:1,", false, 0, 0, 0 },
		{ "~1:,", false, 0, 0, 0 },
		{ "~1:2x,", false, 0, 0, 0 },
		{ "~-1:2,", false, 0, 0, 0 },
		{ "~1;2,", false, 0, 0, 0 },
		{ "~1234567890123456:1,", false, 0, 0, 0 },   /* 16 digits: more than any count */
		{ "", false, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].s);
		uint8_t *heap = malloc(n ? n : 1);   /* exactly its length: ASan sees any overread */
		memcpy(heap, cases[i].s, n);
		struct spop_slice l = { heap, n };
		size_t pos = 0;
		int64_t in = -7, out = -7;
		bool ok = budget_estimate_next(l, &pos, &in, &out);
		if (ok != cases[i].ok)
			fail_msg("\"%s\": %s", cases[i].s, ok ? "accepted" : "refused");
		if (ok) {
			assert_int_equal(in, cases[i].in);
			assert_int_equal(out, cases[i].out);
			assert_int_equal(pos, cases[i].pos);
		} else {
			assert_int_equal(pos, 0);
		}
		free(heap);
	}
	/* written as it is read */
	char w[40];
	assert_int_equal(budget_estimate_encode(11000, 800, w, sizeof(w)), 11);
	assert_string_equal(w, "~11000:800,");
	assert_int_equal(budget_estimate_encode(-5, INT64_MAX, w, sizeof(w)), 19);
	assert_string_equal(w, "~0:999999999999999,");
	assert_int_equal(budget_estimate_encode(1, 1, w, 39), 0);
	/* and the charges read on after it */
	const char *full = "~5:6,ab:0123456789abcdef,c-d:fedcba9876543210";
	struct spop_slice l = { (const uint8_t *)full, strlen(full) };
	size_t pos = 0;
	int64_t in, out;
	assert_true(budget_estimate_next(l, &pos, &in, &out));
	struct spop_slice id;
	uint64_t h;
	assert_true(budget_charge_next(l, &pos, &id, &h));
	assert_true(id.len == 2 && memcmp(id.ptr, "ab", 2) == 0 && h == 0x0123456789abcdefULL);
	assert_true(budget_charge_next(l, &pos, &id, &h));
	assert_true(id.len == 3 && h == 0xfedcba9876543210ULL);
	assert_false(budget_charge_next(l, &pos, &id, &h));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(parses_budgets_and_rate_limits, teardown),
		cmocka_unit_test_teardown(refuses_bad_budgets, teardown),
		cmocka_unit_test_teardown(refuses_too_many, teardown),
		cmocka_unit_test_teardown(charges_follow_scope_and_when, teardown),
		cmocka_unit_test_teardown(hashes_are_stable_and_per_scope, teardown),
		cmocka_unit_test_teardown(charge_list_round_trip, teardown),
		cmocka_unit_test_teardown(charge_list_hostile, teardown),
		cmocka_unit_test(estimate_prefix),
		cmocka_unit_test(view_calendar),
		cmocka_unit_test(view_rolling),
		cmocka_unit_test(view_replies),
		cmocka_unit_test(over_limits),
		cmocka_unit_test_teardown(retry_after_calendar, teardown),
		cmocka_unit_test_teardown(retry_after_rolling, teardown),
	};
	return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
