/* handler.c: message dispatch and the archestra handlers. See handler.h. */
#include "handler.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "archvars.h"
#include "bstore.h"
#include "budget.h"
#include "ctx.h"
#include "dlp.h"
#include "errjson.h"
#include "hdrs.h"
#include "jsonscan.h"
#include "meter.h"
#include "policy.h"
#include "pricing.h"
#include "prom.h"
#include "provider.h"
#include "request.h"
#include "sse.h"
#include "statsd.h"
#include "usage.h"

int spoa_dispatch(const struct spoa_handlers *hs, const struct spop_msg *m, struct spop_writer *acts)
{
	for (size_t i = 0; i < hs->n; i++) {
		const struct spoa_handler *h = &hs->list[i];
		if (spop_slice_eq(m->name, h->name, h->name_len)) {
			h->fn(hs->arg, m, acts);
			return 1;
		}
	}
	return 0;
}

/* The set-var actions, by the variable's entry in archvars.h. */
static void set_data(struct spop_writer *acts, enum arch_var v, const struct spop_data *d)
{
	spop_put_set_var(acts, SPOP_SCOPE_TXN, arch_var_names[v].s, arch_var_names[v].len, d);
}

void spoa_set_txn_str(struct spop_writer *acts, const char *name, const char *val, size_t len)
{
	struct spop_data d = { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)val, len } };
	spop_put_set_var(acts, SPOP_SCOPE_TXN, name, strlen(name), &d);
}

static void set_strn(struct spop_writer *acts, enum arch_var v, const char *val, size_t len)
{
	struct spop_data d = { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)val, len } };
	set_data(acts, v, &d);
}

static void set_str(struct spop_writer *acts, enum arch_var v, const char *val)
{
	set_strn(acts, v, val, strlen(val));
}

static void set_slice(struct spop_writer *acts, enum arch_var v, struct spop_slice s)
{
	struct spop_data d = { .type = SPOP_T_STRING, .v.s = s };
	set_data(acts, v, &d);
}

_Static_assert(AV_user_id == AV_agent_id + ID_USER && AV_session_id == AV_agent_id + ID_SESSION &&
               AV_execution_id == AV_agent_id + ID_EXECUTION, "identity variables in enum id_field's order");

void spoa_write_decision(const struct req_decision *d, const char *ctx, struct spop_writer *acts)
{
	set_str(acts, AV_reason, d->reason);
	if (d->prov)
		set_str(acts, AV_provider, d->prov->name);
	for (int f = 0; f < ID_FIELDS; f++) /* user_id: the credential's owner when it names one */
		if (d->id.v[f].len)
			set_slice(acts, (enum arch_var)(AV_agent_id + f), d->id.v[f]);
	if (d->key_id[0])
		set_str(acts, AV_key_id, d->key_id);
	if (d->policy.nshadow || d->budget_shadow) {
		char ids[256];
		size_t o = 0;
		for (int i = 0; i <= d->policy.nshadow; i++) {
			const char *id = i < d->policy.nshadow ? d->policy.shadow[i]->id : d->budget_shadow;
			if (!id)
				break;
			int n = snprintf(ids + o, sizeof(ids) - o, "%s%s", o ? "," : "", id);
			if (n < 0 || (size_t)n >= sizeof(ids) - o)
				break;
			o += (size_t)n;
		}
		set_strn(acts, AV_shadow, ids, o); /* rules that would have denied */
	}
	if (d->dlp_found) {
		/* Detector names only, never what matched. The refusal's own reason
		 * says which detector denied. */
		char names[256];
		size_t o = 0;
		for (int k = 0; k < 32 && d->dlp_cfg; k++) {
			if (!(d->dlp_found & (1u << k)))
				continue;
			int n = snprintf(names + o, sizeof(names) - o, "%s%s", o ? "," : "", dlp_name(d->dlp_cfg, k));
			if (n < 0 || (size_t)n >= sizeof(names) - o)
				break;
			o += (size_t)n;
		}
		set_strn(acts, AV_dlp, names, o);
	}
	if (d->model.len)
		set_slice(acts, AV_model, d->model);
	if (d->status) {
		char body[800];
		size_t n = errjson_format(d->prov ? d->prov->shape : SHAPE_OPENAI, d->status, d->reason, d->message,
		                          body, sizeof(body));
		struct spop_data st = { .type = SPOP_T_INT32, .v.i = d->status };
		set_str(acts, AV_verdict, "deny");
		set_data(acts, AV_status, &st);
		set_strn(acts, AV_body, body, n);
		if (d->retry_after > 0) {
			struct spop_data ra = { .type = SPOP_T_INT64, .v.i = d->retry_after };
			set_data(acts, AV_retry_after, &ra);
		}
		return;
	}
	const struct provider *p = d->prov;
	set_str(acts, AV_verdict, "allow");
	set_str(acts, AV_stream, d->stream ? "1" : "0");
	if (d->hold_stream)
		set_str(acts, AV_hold, "1");
	if (d->add_usage_at > 0) {
		struct spop_data at = { .type = SPOP_T_INT64, .v.i = d->add_usage_at };
		set_data(acts, AV_add_usage, &at);
	}
	set_slice(acts, AV_upstream_path, d->upstream);
	if (d->ncharges) { /* which limits the end-of-call record's tokens and cost go to */
		char list[48 + BUDGET_MAX_CHARGES * (BUDGET_ID_MAX + 18)];
		size_t e = budget_estimate_encode(d->est_in, d->est_out, list, 48);
		size_t n = e ? budget_charges_encode(d->charges, d->ncharges, list + e, sizeof(list) - e) : 0;
		if (n)
			set_strn(acts, AV_budget, list, e + n);
	}
	if (d->truncated)
		set_str(acts, AV_truncated, "1"); /* passed uninspected (truncated_body: allow) */
	set_str(acts, AV_upstream_host, p->host);
	if (d->sig) { /* signed for AWS: the headers the signature covers */
		set_str(acts, AV_amz_date, d->sig->amz_date);
		set_str(acts, AV_amz_sha256, d->sig->content_sha256);
		if (d->sig->security_token[0])
			set_str(acts, AV_amz_token, d->sig->security_token);
	}
	if (d->auth_hdr) {
		set_str(acts, AV_auth_hdr, d->auth_hdr);
		spop_put_set_var_str2(acts, SPOP_SCOPE_TXN, arch_var_names[AV_auth_val].s, arch_var_names[AV_auth_val].len,
		                      d->auth_scheme, strlen(d->auth_scheme),
		                      d->auth_key.ptr, d->auth_key.len);
	}
	if (d->inspect_res) {
		set_str(acts, AV_inspect_res, "1");
		if (ctx)
			set_str(acts, AV_ctx, ctx);
	}
}

static int64_t now_us(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct spop_slice lit(const char *s)
{
	return (struct spop_slice){ (const uint8_t *)s, strlen(s) };
}

static const char *money(int64_t micro, char *buf, size_t cap)
{
	snprintf(buf, cap, "$%lld.%02lld", (long long)(micro / 1000000), (long long)(micro % 1000000 / 10000));
	return buf;
}

/* Spend against limit, per limit and scope value, as statsd gauges (a
 * gauge keeps the last value each flush). USD in dollars. */
static void gauge_budget(struct handler_ctx *hc, const struct budget_charge *c, const int64_t spent[BM_COUNT])
{
	for (int m = 0; m < BM_COUNT; m++) {
		if (!c->b->limit[m])
			continue;
		struct statsd_tag t[] = { { "budget", lit(c->b->id), false },
			                  { "scope", c->who.len ? c->who : lit("all"), true },
			                  { "measure", lit(bmeasure_names[m]), false } };
		double k = m == BM_USD ? 1e-6 : 1;
		statsd_gauge(hc->sd, "llm_budget_used", (double)spent[m] * k, t, 3);
		statsd_gauge(hc->sd, "llm_budget_limit", (double)c->b->limit[m] * k, t, 3);
	}
}

/* Budgets and rate limits, once everything else allowed the call: against the
 * store's view, never waiting on it. A limit in shadow mode (or under a shadow
 * policy) is reported, not enforced. An allowed call counts as one request to
 * each limit it is charged to. */
static void check_budgets(struct handler_ctx *hc, const struct auth *auth, struct req_decision *d, int64_t now)
{
	int64_t spent[BUDGET_MAX_CHARGES][BM_COUNT], retry[BUDGET_MAX_CHARGES];
	int over[BUDGET_MAX_CHARGES];
	int r = bstore_charge(hc->store, d->charges, d->ncharges, now, auth->policy.shadow, spent, over, retry);
	bool gauges = hc->sd && hc->sd->cfg && hc->sd->cfg->enabled;
	for (int i = 0; i < d->ncharges; i++) {
		if (gauges)
			gauge_budget(hc, &d->charges[i], spent[i]);
		if (over[i] != -1 && (d->charges[i].b->shadow || auth->policy.shadow))
			d->budget_shadow = d->charges[i].b->id; /* over, but in shadow mode */
	}
	if (r < 0)
		return;
	const struct budget *b = d->charges[r].b;
	int m = over[r];
	d->auth_hdr = NULL;
	if (m == BSTORE_DOWN) {
		d->status = 503;
		d->reason = "budget_store_unavailable";
		d->retry_after = 1;
		snprintf(d->message, sizeof(d->message),
		         "archestra: %s \"%s\" cannot be checked right now (the spend store is unavailable); "
		         "try again shortly", b->kind == BK_RATE ? "rate limit" : "budget", b->id);
		return;
	}
	char lim[32];
	if (m == BM_USD)
		money(b->limit[m], lim, sizeof(lim));
	else
		snprintf(lim, sizeof(lim), "%lld %s", (long long)b->limit[m], bmeasure_names[m]);
	d->retry_after = retry[r];
	if (b->kind == BK_RATE) {
		d->status = 429;
		d->reason = "rate_limit_exceeded";
		snprintf(d->message, sizeof(d->message), "archestra: rate limit \"%s\" (%s per minute) reached; retry in %lld s",
		         b->id, lim, (long long)retry[r]);
	} else {
		static const char *const per[] = { [WIN_DAY] = "day", [WIN_WEEK] = "week", [WIN_MONTH] = "month",
			                           [WIN_ROLLING] = "window" };
		d->status = 402;
		d->reason = "token_cost_limit_exceeded";
		snprintf(d->message, sizeof(d->message),
		         "archestra: budget \"%s\" (%s per %s) is used up; it allows calls again in %lld s", b->id, lim,
		         per[b->win.kind], (long long)retry[r]);
	}
}

static void on_archestra_req(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	struct handler_ctx *hc = arg;
	bool metrics = hc->sd && hc->sd->cfg && hc->sd->cfg->enabled;
	struct prom_reg *pm = hc->pm;
	bool timed = pm || (metrics && statsd_timing_due(hc->sd)); /* statsd samples; a histogram counts each */
	int64_t t0 = timed ? now_us(CLOCK_MONOTONIC) : 0;
	struct req_decision d;
	char ctx[CTX_MAX];
	const char *ctxp = NULL;

	struct decide_env env = {
		.auth = hc->auth_get ? hc->auth_get(hc->auth_arg) : NULL,
		.now = (int64_t)time(NULL),
		.cache = hc->jwt_cache,
		.scratch = &hc->scratch,
	};
	request_decide(hc->rcfg, &env, msg, &d);
	if (d.status == 0 && d.ncharges && hc->store)
		check_budgets(hc, env.auth, &d, bstore_now());
	if (hc->on_unknown_kid && d.status == 401 && strcmp(d.reason, "jwt_unknown_kid") == 0)
		hc->on_unknown_kid(hc->hook_arg); /* the issuer may have rotated its keys */
	if (d.inspect_res && d.status == 0) {
		struct call_ctx c = { .provider = lit(d.prov->name), .model = d.model, .start_us = now_us(CLOCK_REALTIME),
		                      .stream = d.stream, .key_id = lit(d.key_id),
		                      .untrusted = d.untrusted };
		memcpy(c.id, d.id.v, sizeof(c.id));
		if (ctx_encode(&c, ctx, sizeof(ctx))) {
			ctxp = ctx;
		} else { /* cannot happen with bounded fields; never answer without it */
			d.status = 500;
			d.reason = "call_context_overflow";
			snprintf(d.message, sizeof(d.message), "archestra: the call's context does not fit; the call was not sent");
			d.auth_hdr = NULL;
		}
	}
	spoa_write_decision(&d, ctxp, acts);
	if (!metrics && !pm)
		return;

	/* The same events to statsd (when on) and to Prometheus (when on). */
	struct spop_slice prov = d.prov ? lit(d.prov->name) : lit("none");
	struct spop_slice model = d.model.len ? d.model : lit("unknown");
	struct spop_slice agent = d.id.v[ID_AGENT].len ? d.id.v[ID_AGENT] : lit("none");
	struct spop_slice verdict = lit(d.status ? "deny" : "allow"), reason = lit(d.reason);
	struct spop_slice stream = lit(d.stream ? "true" : "false");
	struct statsd_tag tags[] = {
		{ "provider", prov, false },
		{ "model", model, true },
		{ "verdict", verdict, false },
		{ "reason", reason, false },
		{ "external_agent_id", agent, true },
		{ "stream", stream, false },
	};
	statsd_count(hc->sd, "llm_requests", 1, tags, 6);
	prom_record(pm, PM_LLM_REQUESTS, 1, (struct spop_slice[]){ prov, model, agent, verdict, reason, stream }, 6);
	if (d.id.v[ID_EXECUTION].len) {
		statsd_set(hc->sd, "agent_executions", d.id.v[ID_EXECUTION], &tags[4], 1);
		prom_run(pm, agent, d.id.v[ID_EXECUTION]);
	}
	if (d.user_overridden) {
		struct statsd_tag ht[] = { { "header", lit("X-Archestra-User-Id"), false }, { "action", lit("overridden"), false } };
		statsd_count(hc->sd, "spoa_header_rejections", 1, ht, 2);
		prom_record(pm, PM_HEADER_REJECTIONS, 1, (struct spop_slice[]){ ht[0].val, ht[1].val }, 2);
	}
	if (d.id_dropped || (d.status == 400 && d.id_err.header)) {
		struct statsd_tag ht[] = { { "header", lit(d.id_err.header ? d.id_err.header : "several"), false },
		                           { "action", lit(d.id_dropped ? "dropped" : "rejected"), false } };
		statsd_count(hc->sd, "spoa_header_rejections", d.id_dropped ? d.id_dropped : 1, ht, 2);
		prom_record(pm, PM_HEADER_REJECTIONS, d.id_dropped ? d.id_dropped : 1,
		            (struct spop_slice[]){ ht[0].val, ht[1].val }, 2);
	}
	for (int i = 0; i < d.policy.nshadow; i++) {
		struct statsd_tag st[] = { { "rule", lit(d.policy.shadow[i]->id), false }, { "provider", prov, false } };
		statsd_count(hc->sd, "policy_shadow_denials", 1, st, 2);
		prom_record(pm, PM_SHADOW_DENIALS, 1, (struct spop_slice[]){ st[0].val, prov }, 2);
	}
	if (d.budget_shadow) {
		struct statsd_tag st[] = { { "rule", lit(d.budget_shadow), false }, { "provider", prov, false } };
		statsd_count(hc->sd, "policy_shadow_denials", 1, st, 2);
		prom_record(pm, PM_SHADOW_DENIALS, 1, (struct spop_slice[]){ st[0].val, prov }, 2);
	}
	for (int k = 0; d.dlp_found && d.dlp_cfg && k < 32; k++) {
		if (!(d.dlp_found & (1u << k)))
			continue;
		enum dlp_action a = dlp_action_of(d.dlp_cfg, k);
		const char *act = a == DLP_DENY ? (d.dlp_shadow ? "shadow" : "deny") : "monitor";
		struct statsd_tag dt[] = { { "detector", lit(dlp_name(d.dlp_cfg, k)), false }, { "action", lit(act), false },
		                           { "provider", prov, false } };
		statsd_count(hc->sd, "dlp_detections", 1, dt, 3);
		prom_record(pm, PM_DLP_DETECTIONS, 1, (struct spop_slice[]){ dt[0].val, dt[1].val, prov }, 3);
	}
	if (d.truncated) {
		struct statsd_tag tt[] = { { "provider", prov, false }, { "verdict", verdict, false } };
		statsd_count(hc->sd, "spoa_truncated_bodies", 1, tt, 2);
		prom_record(pm, PM_TRUNCATED_BODIES, 1, (struct spop_slice[]){ prov, verdict }, 2);
	}
	struct statsd_tag mt[] = { { "message", lit("req"), false } };
	int64_t took = timed ? now_us(CLOCK_MONOTONIC) - t0 : 0;
	statsd_timing_us(hc->sd, "spoa_decision_time", took, mt, 1);
	prom_record(pm, PM_DECISION_TIME, (double)took / 1e6, &mt[0].val, 1);
}

#define is_text spop_data_is_text
#define as_int  spop_data_as_int

/* Is the response a server-sent event stream (its body then is not buffered)? */
static bool is_sse(const struct spop_data *hdrs)
{
	struct spop_slice v = hdrs_get(hdrs, "content-type", NULL);
	return v.len >= 17 && slice_ieq((struct spop_slice){ v.ptr, 17 }, "text/event-stream", 17);
}

/* Is the whole response body here, as the client will get it? Not when
 * compressed or truncated (more announced than buffered, or no end of message in
 * the buffer). */
static bool res_whole(const struct spop_msg *msg)
{
	bool again;
	struct spop_slice ce = hdrs_get(SPOP_MSG_ARG(msg, "hdrs"), "content-encoding", &again);
	if (again || (ce.len && !SLICE_IEQ(ce, "identity")))
		return false;
	int64_t len = 0, size = 0;
	const struct spop_data *eom = SPOP_MSG_ARG(msg, "eom");
	if (as_int(SPOP_MSG_ARG(msg, "body_len"), &len) && as_int(SPOP_MSG_ARG(msg, "body_size"), &size) && size > len)
		return false;
	return !(eom && eom->type == SPOP_T_BOOL && !eom->v.b);
}

/* ...and one JSON reading. An empty body reads as nothing. */
static bool res_readable(const struct spop_msg *msg, struct spop_slice body, struct read_scratch *sc)
{
	if (!res_whole(msg))
		return false;
	if (body.len == 0)
		return true;
	struct json_report jr;
	return read_scratch_fit(sc, 2 * body.len, 1024) && json_check(body, &sc->keys, NULL, NULL, NULL, &jr);
}

static void res_refuse(struct spop_writer *acts, enum err_shape shape, int status, const char *reason, const char *why)
{
	char body_json[800], msg_text[240];
	snprintf(msg_text, sizeof(msg_text), "archestra: %s", why);
	size_t bl = errjson_format(shape, status, reason, msg_text, body_json, sizeof(body_json));
	struct spop_data st = { .type = SPOP_T_INT32, .v.i = status };
	set_str(acts, AV_res_verdict, "deny");
	set_str(acts, AV_reason, reason);
	set_data(acts, AV_res_status, &st);
	set_strn(acts, AV_res_body, body_json, bl);
}

static void on_archestra_res(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	struct handler_ctx *hc = arg;
	bool metrics = hc->sd && hc->sd->cfg && hc->sd->cfg->enabled;
	struct prom_reg *pm = hc->pm;
	int64_t t0 = metrics || pm ? now_us(CLOCK_MONOTONIC) : 0;
	char scratch[CTX_MAX];
	struct call_ctx c;
	const struct spop_data *ctxd = SPOP_MSG_ARG(msg, "ctx");
	bool have_ctx = is_text(ctxd) && ctx_decode(ctxd->v.s, &c, scratch, sizeof(scratch));
	if (!have_ctx) {
		memset(&c, 0, sizeof(c));
		c.provider = lit("unknown");
	}
	const struct provider *cp = provider_named(hc->rcfg->providers, c.provider);
	enum err_shape shape = cp ? cp->shape : SHAPE_OPENAI;

	const struct spop_data *body = SPOP_MSG_ARG(msg, "body");
	struct spop_slice bs = is_text(body) ? body->v.s : (struct spop_slice){ NULL, 0 };
	bool sse = is_sse(SPOP_MSG_ARG(msg, "hdrs"));
	/* A stream HAProxy held for the agent (txn.arch.hold) is read whole, event by
	 * event (sse.h); one it did not hold was seen at its headers only. */
	const struct spop_data *heldd = SPOP_MSG_ARG(msg, "held");
	bool held = sse && is_text(heldd) && SPOP_SLICE_IS(heldd->v.s, "1");
	bool readable = sse ? held && res_whole(msg) &&
	                              read_scratch_fit(&hc->scratch, 4 * bs.len + 320 * 1024, 1024)
	                    : res_readable(msg, bs, &hc->scratch);
	struct policy_result pr = { 0 };
	const char *refused = NULL, *why = NULL;
	int rstatus = 502;
	const struct auth *auth = hc->auth_get ? hc->auth_get(hc->auth_arg) : NULL;
	/* Tool-call rules and trusted data fail closed: a response they cannot read,
	 * or one whose request context is lost, does not pass. A stream nobody asked
	 * for is not read, nor passed; one asked for is read when HAProxy held it. */
	if (auth && auth->policy.has_tool_calls && (!sse || !have_ctx || !c.stream || held)) {
		struct tool_call calls[32];
		int n = 0;
		if (!have_ctx) {
			refused = "response_context_missing";
			why = "the call's context did not come back with the response; it is not passed unchecked";
		} else if (!readable) {
			refused = "response_unreadable";
			why = "the response could not be read whole (compressed, truncated or not valid JSON); it is not "
			      "passed unchecked";
		} else if ((n = (sse ? sse_tool_calls : tool_calls_extract)(shape, bs, calls, 32, &hc->scratch.arena,
		                                                             &hc->scratch.keys)) < 0) {
			refused = "tool_arguments_unreadable";
			rstatus = 403;
			why = "a tool call in the response cannot be read unambiguously";
		}
		struct policy_input pin = { .id = NULL };
		pin.v[SC_PROVIDER] = c.provider;
		pin.v[SC_MODEL] = c.model;
		pin.v[SC_KEY_ID] = c.key_id;
		pin.v[SC_AGENT_ID] = c.id[ID_AGENT];
		pin.v[SC_USER_ID] = c.id[ID_USER];
		pin.untrusted = c.untrusted;
		if (!refused && n > 0)
			policy_eval_calls(&auth->policy, &pin, calls, n, &pr);
	}
	if (refused) {
		res_refuse(acts, shape, rstatus, refused, why);
	} else if (pr.deny) {
		char w[240];
		snprintf(w, sizeof(w), "policy %.63s: %.150s", pr.deny->id, pr.why);
		res_refuse(acts, shape, 403, pr.deny->id, w);
	} else {
		set_str(acts, AV_res_verdict, "allow");
	}
	if (!metrics && !pm)
		return;

	struct spop_slice model = c.model.len ? c.model : lit("unknown");
	struct spop_slice agent = c.id[ID_AGENT].len ? c.id[ID_AGENT] : lit("none");
	struct statsd_tag tags[] = { { "provider", c.provider, false } };
	if (pr.deny || refused) {
		struct statsd_tag bt[] = { { "rule", lit(pr.deny ? pr.deny->id : refused), false }, tags[0] };
		statsd_count(hc->sd, "llm_blocked_tools_total", 1, bt, 2);
		prom_record(pm, PM_BLOCKED_TOOLS, 1, (struct spop_slice[]){ c.provider, model, agent, bt[0].val }, 4);
	}
	for (int i = 0; i < pr.nshadow; i++) {
		struct statsd_tag st2[] = { { "rule", lit(pr.shadow[i]->id), false }, tags[0] };
		statsd_count(hc->sd, "policy_shadow_denials", 1, st2, 2);
		prom_record(pm, PM_SHADOW_DENIALS, 1, (struct spop_slice[]){ st2[0].val, c.provider }, 2);
	}
	struct statsd_tag mt[] = { { "message", lit("res"), false } };
	int64_t took = now_us(CLOCK_MONOTONIC) - t0;
	statsd_timing_us(hc->sd, "spoa_decision_time", took, mt, 1);
	prom_record(pm, PM_DECISION_TIME, (double)took / 1e6, &mt[0].val, 1);
}

/* Did a provider answer the call with success (2xx), as far as the record tells? */
static bool provider_answered(const struct meter_rec *r)
{
	int64_t st = meter_int(r->v[MF_UP_STATUS]);
	if (st < 0)
		st = meter_int(r->v[MF_STATUS]);
	return st >= 200 && st < 300;
}

/* A call's tokens and cost, to the limits its record names (as the policy
 * states them now: a limit removed since is not charged). */
static void charge_usage(struct handler_ctx *hc, struct spop_slice list, int64_t usd_micro, int64_t tokens)
{
	const struct auth *auth = hc->auth_get ? hc->auth_get(hc->auth_arg) : NULL;
	if (!auth || !auth->policy.budgets)
		return;
	int64_t now = bstore_now();
	size_t pos = 0;
	int64_t ein, eout;
	budget_estimate_next(list, &pos, &ein, &eout); /* skipped here: the response reported usage */
	struct spop_slice id;
	uint64_t hash;
	for (int i = 0; i < BUDGET_MAX_CHARGES && budget_charge_next(list, &pos, &id, &hash); i++) {
		const struct budget *b = budget_find(auth->policy.budgets, id);
		if (b)
			bstore_add(hc->store, b, hash, (struct spop_slice){ NULL, 0 }, now,
			           (const int64_t[BM_COUNT]){ [BM_USD] = usd_micro, [BM_TOKENS] = tokens });
	}
}

void spoa_meter_account(struct handler_ctx *hc, const struct meter_rec *r)
{
	struct prom_reg *pm = hc->pm;
	/* Only calls that went to a provider: a refusal was counted at its decision. */
	if (!SPOP_SLICE_IS(r->v[MF_VERDICT], "allow") || !r->v[MF_PROVIDER].len)
		return;
	bool metrics = (hc->sd && hc->sd->cfg && hc->sd->cfg->enabled) || pm;
	if (!metrics && !r->v[MF_BUDGET].len)
		return;
	struct spop_slice provider = r->v[MF_PROVIDER];
	struct spop_slice model = r->v[MF_MODEL].len ? r->v[MF_MODEL] : lit("unknown");
	struct spop_slice agent = r->v[MF_AGENT].len ? r->v[MF_AGENT] : lit("none");
	/* The provider's status; HAProxy's own when no provider answered (503...). */
	struct spop_slice status = r->v[MF_UP_STATUS].len ? r->v[MF_UP_STATUS]
	                         : r->v[MF_STATUS].len  ? r->v[MF_STATUS] : lit("0");
	struct statsd_tag tags[] = {
		{ "provider", provider, false },
		{ "model", model, true },
		{ "external_agent_id", agent, true },
		{ "status", status, false },
		{ "type", lit("input"), false },
	};
	if (metrics) {
		statsd_count(hc->sd, "llm_upstream_status", 1, (struct statsd_tag[]){ tags[0], tags[1], tags[3] }, 3);
		prom_record(pm, PM_UPSTREAM_STATUS, 1, (struct spop_slice[]){ provider, model, status }, 3);
	}

	const struct provider *pv = provider_named(hc->rcfg->providers, provider);
	int64_t raw[UF_COUNT];
	for (int f = 0; f < UF_COUNT; f++)
		raw[f] = meter_int(r->v[MF_U0 + f]);
	struct usage u;
	bool have_usage = pv && usage_normalize(pv->shape, raw, &u);
	const struct price *p = pv ? price_find(hc->prices, pv->name, r->v[MF_MODEL]) : NULL;
	double cost = p && have_usage ? price_cost(p, u.in, u.out) : 0;
	if (r->v[MF_BUDGET].len && hc->store) {
		size_t pos = 0;
		int64_t ein, eout;
		if (have_usage)
			charge_usage(hc, r->v[MF_BUDGET], (int64_t)llround(cost * 1e6), u.in + u.out);
		/* The provider answered but no usage reached HAProxy: a client gone
		 * before the last event, a stream told not to report it, a response
		 * too big to read. The call is charged what it may have cost, so a
		 * budget cannot be walked around by never letting usage through. */
		else if (provider_answered(r) && budget_estimate_next(r->v[MF_BUDGET], &pos, &ein, &eout))
			charge_usage(hc, r->v[MF_BUDGET], p ? (int64_t)llround(price_cost(p, ein, eout) * 1e6) : 0, ein + eout);
	}
	if (!metrics)
		return;
	if (have_usage) {
		statsd_count(hc->sd, "llm_tokens_total", (double)u.in, (struct statsd_tag[]){ tags[0], tags[1], tags[2], tags[4] }, 4);
		prom_record(pm, PM_TOKENS, (double)u.in, (struct spop_slice[]){ provider, model, agent, lit("input") }, 4);
		tags[4].val = lit("output");
		statsd_count(hc->sd, "llm_tokens_total", (double)u.out, (struct statsd_tag[]){ tags[0], tags[1], tags[2], tags[4] }, 4);
		prom_record(pm, PM_TOKENS, (double)u.out, (struct spop_slice[]){ provider, model, agent, lit("output") }, 4);
		if (p) {
			statsd_count(hc->sd, "llm_cost_total", cost, tags, 3);
			prom_record(pm, PM_COST, cost, (struct spop_slice[]){ provider, model, agent }, 3);
		}
	}
	int64_t tf = meter_int(r->v[MF_TTFT_MS]);
	if (tf >= 0) {
		statsd_timing_us(hc->sd, "llm_time_to_first_token", tf * 1000, tags, 3);
		prom_record(pm, PM_TTFT, (double)tf / 1e3, (struct spop_slice[]){ provider, model }, 2);
	}
	int64_t ta = meter_int(r->v[MF_TOTAL_MS]);
	if (ta >= 0) {
		statsd_timing_us(hc->sd, "llm_request_duration", ta * 1000, tags, 3);
		prom_record(pm, PM_REQUEST_DURATION, (double)ta / 1e3, (struct spop_slice[]){ provider, model }, 2);
	}
}

static const struct spoa_handler archestra_list[] = {
	{ "archestra-req", sizeof("archestra-req") - 1, on_archestra_req },
	{ "archestra-res", sizeof("archestra-res") - 1, on_archestra_res },
};

const struct spoa_handlers spoa_handlers_archestra = { archestra_list, 2, NULL };
const struct spoa_handlers spoa_handlers_ack_only = { NULL, 0, NULL };
