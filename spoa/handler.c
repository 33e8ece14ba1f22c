/* handler.c: message dispatch and the archestra handlers. See handler.h. */
#include "handler.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "errjson.h"
#include "hdrs.h"
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

void spoa_set_txn_str(struct spop_writer *acts, const char *name, const char *val, size_t len)
{
	struct spop_data d = { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)val, len } };
	spop_put_set_var(acts, SPOP_SCOPE_TXN, name, strlen(name), &d);
}

static void set_str(struct spop_writer *acts, const char *name, const char *val)
{
	spoa_set_txn_str(acts, name, val, strlen(val));
}

static void set_slice(struct spop_writer *acts, const char *name, struct spop_slice v)
{
	struct spop_data d = { .type = SPOP_T_STRING, .v.s = v };
	spop_put_set_var(acts, SPOP_SCOPE_TXN, name, strlen(name), &d);
}

static void set_int(struct spop_writer *acts, const char *name, int64_t v)
{
	struct spop_data d = { .type = SPOP_T_INT64, .v.i = v };
	spop_put_set_var(acts, SPOP_SCOPE_TXN, name, strlen(name), &d);
}

void spoa_write_decision(const struct req_decision *d, const char *ctx, struct spop_writer *acts)
{
	set_str(acts, "reason", d->reason);
	if (d->prov)
		set_str(acts, "provider", d->prov->name);
	for (int f = 0; f < ID_FIELDS; f++)
		if (d->id.v[f].len)
			set_slice(acts, identity_field_name((enum id_field)f), d->id.v[f]);
		else if (f == ID_USER && d->owner.len)
			set_slice(acts, "user_id", d->owner); /* a virtual key speaks for its owner */
	if (d->key_id[0])
		set_str(acts, "key_id", d->key_id);
	if (d->policy.nshadow) {
		char ids[256];
		size_t o = 0;
		for (int i = 0; i < d->policy.nshadow; i++) {
			int n = snprintf(ids + o, sizeof(ids) - o, "%s%s", i ? "," : "", d->policy.shadow[i]->id);
			if (n < 0 || (size_t)n >= sizeof(ids) - o)
				break;
			o += (size_t)n;
		}
		spoa_set_txn_str(acts, "shadow", ids, o); /* rules that would have denied */
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
		spoa_set_txn_str(acts, "dlp", names, o);
	}
	if (d->model.len)
		set_slice(acts, "model", d->model);
	if (d->status) {
		char body[800];
		size_t n = errjson_format(d->prov ? d->prov->shape : SHAPE_OPENAI, d->status, d->reason, d->message,
		                          body, sizeof(body));
		struct spop_data st = { .type = SPOP_T_INT32, .v.i = d->status };
		set_str(acts, "verdict", "deny");
		spop_put_set_var(acts, SPOP_SCOPE_TXN, "status", 6, &st);
		spoa_set_txn_str(acts, "body", body, n);
		return;
	}
	const struct provider *p = d->prov;
	set_str(acts, "verdict", "allow");
	set_str(acts, "stream", d->stream ? "1" : "0");
	spop_put_set_var_str2(acts, SPOP_SCOPE_TXN, "upstream_path", 13, p->upstream_base, strlen(p->upstream_base),
	                      d->rest.ptr, d->rest.len);
	set_str(acts, "upstream_host", p->host);
	if (d->auth_hdr) {
		set_str(acts, "auth_hdr", d->auth_hdr);
		spop_put_set_var_str2(acts, SPOP_SCOPE_TXN, "auth_val", 8, d->auth_scheme, strlen(d->auth_scheme),
		                      d->auth_key.ptr, d->auth_key.len);
	}
	if (d->inspect_res) {
		set_str(acts, "inspect_res", "1");
		if (ctx)
			set_str(acts, "ctx", ctx);
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

static void on_archestra_req(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	struct handler_ctx *hc = arg;
	bool metrics = hc->sd && hc->sd->cfg && hc->sd->cfg->enabled;
	bool timed = metrics && statsd_timing_due(hc->sd);
	int64_t t0 = timed ? now_us(CLOCK_MONOTONIC) : 0;
	struct req_decision d;
	char ctx[1024];
	const char *ctxp = NULL;

	struct decide_env env = {
		.auth = hc->auth_get ? hc->auth_get(hc->auth_arg) : NULL,
		.now = (int64_t)time(NULL),
		.cache = hc->jwt_cache,
	};
	request_decide(hc->rcfg, &env, msg, &d);
	if (hc->on_unknown_kid && d.status == 401 && strcmp(d.reason, "jwt_unknown_kid") == 0)
		hc->on_unknown_kid(hc->hook_arg); /* the issuer may have rotated its keys */
	if (d.inspect_res && d.status == 0) {
		struct call_ctx c = { .provider = lit(d.prov->name), .model = d.model, .start_us = now_us(CLOCK_REALTIME),
		                      .stream = d.stream, .key_id = lit(d.key_id),
		                      .untrusted = d.untrusted };
		memcpy(c.id, d.id.v, sizeof(c.id));
		if (ctx_encode(&c, ctx, sizeof(ctx)))
			ctxp = ctx;
	}
	spoa_write_decision(&d, ctxp, acts);
	if (!metrics)
		return;

	struct spop_slice prov = d.prov ? lit(d.prov->name) : lit("none");
	struct statsd_tag tags[] = {
		{ "provider", prov, false },
		{ "model", d.model.len ? d.model : lit("unknown"), true },
		{ "verdict", lit(d.status ? "deny" : "allow"), false },
		{ "reason", lit(d.reason), false },
		{ "external_agent_id", d.id.v[ID_AGENT].len ? d.id.v[ID_AGENT] : lit("none"), true },
		{ "stream", lit(d.stream ? "true" : "false"), false },
	};
	statsd_count(hc->sd, "llm_requests", 1, tags, 6);
	if (d.id.v[ID_EXECUTION].len)
		statsd_set(hc->sd, "agent_executions", d.id.v[ID_EXECUTION], &tags[4], 1);
	if (d.id_dropped || (d.status == 400 && d.id_err.header)) {
		struct statsd_tag ht[] = { { "header", lit(d.id_err.header ? d.id_err.header : "several"), false },
		                           { "action", lit(d.id_dropped ? "dropped" : "rejected"), false } };
		statsd_count(hc->sd, "spoa_header_rejections", d.id_dropped ? d.id_dropped : 1, ht, 2);
	}
	for (int i = 0; i < d.policy.nshadow; i++) {
		struct statsd_tag st[] = { { "rule", lit(d.policy.shadow[i]->id), false }, { "provider", prov, false } };
		statsd_count(hc->sd, "policy_shadow_denials", 1, st, 2);
	}
	for (int k = 0; d.dlp_found && d.dlp_cfg && k < 32; k++) {
		if (!(d.dlp_found & (1u << k)))
			continue;
		enum dlp_action a = dlp_action_of(d.dlp_cfg, k);
		const char *act = a == DLP_DENY ? (d.dlp_shadow ? "shadow" : "deny") : "monitor";
		struct statsd_tag dt[] = { { "detector", lit(dlp_name(d.dlp_cfg, k)), false }, { "action", lit(act), false },
		                           { "provider", prov, false } };
		statsd_count(hc->sd, "dlp_detections", 1, dt, 3);
	}
	if (d.truncated) {
		struct statsd_tag tt[] = { { "provider", prov, false }, { "verdict", tags[2].val, false } };
		statsd_count(hc->sd, "spoa_truncated_bodies", 1, tt, 2);
	}
	struct statsd_tag mt[] = { { "message", lit("req"), false } };
	statsd_timing_us(hc->sd, "spoa_decision_time", timed ? now_us(CLOCK_MONOTONIC) - t0 : 0, mt, 1);
}

#define is_text spop_data_is_text
#define as_int  spop_data_as_int

/* Is the response a server-sent event stream (its body then is not buffered)? */
static bool is_sse(const struct spop_data *hdrs)
{
	if (!is_text(hdrs))
		return false;
	struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
	struct spop_slice n, v;
	while (hdrs_next(&r, &n, &v) == 1)
		if (SLICE_IEQ(n, "content-type")) {
			v = slice_trim(v);
			return v.len >= 17 && slice_ieq((struct spop_slice){ v.ptr, 17 }, "text/event-stream", 17);
		}
	return false;
}

static void on_archestra_res(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	struct handler_ctx *hc = arg;
	bool metrics = hc->sd && hc->sd->cfg && hc->sd->cfg->enabled;
	int64_t t0 = metrics ? now_us(CLOCK_MONOTONIC) : 0;
	char scratch[1024];
	struct call_ctx c;
	const struct spop_data *ctxd = SPOP_MSG_ARG(msg, "ctx");
	bool have_ctx = is_text(ctxd) && ctx_decode(ctxd->v.s, &c, scratch, sizeof(scratch));
	if (!have_ctx) {
		memset(&c, 0, sizeof(c));
		c.provider = lit("unknown");
	}
	enum err_shape shape = SHAPE_OPENAI;
	for (int i = 0; i < hc->rcfg->providers->n; i++)
		if (spop_slice_eq(c.provider, hc->rcfg->providers->p[i].name, strlen(hc->rcfg->providers->p[i].name)))
			shape = hc->rcfg->providers->p[i].shape;

	struct usage u;
	const struct spop_data *body = SPOP_MSG_ARG(msg, "body");
	bool sse = is_sse(SPOP_MSG_ARG(msg, "hdrs"));
	bool counted = !sse && is_text(body) && usage_extract(shape, body->v.s, &u);
	struct policy_result pr = { 0 };
	bool too_big = false;
	const struct auth *auth = hc->auth_get ? hc->auth_get(hc->auth_arg) : NULL;
	if (auth && auth->policy.has_tool_calls && !sse && is_text(body)) {
		static __thread char args_buf[65536];
		struct tool_call calls[32];
		int n = tool_calls_extract(shape, body->v.s, calls, 32, args_buf, sizeof(args_buf));
		struct policy_input pin = { .id = NULL };
		pin.v[SC_PROVIDER] = c.provider;
		pin.v[SC_MODEL] = c.model;
		pin.v[SC_KEY_ID] = c.key_id;
		pin.v[SC_AGENT_ID] = c.id[ID_AGENT];
		pin.v[SC_USER_ID] = c.id[ID_USER];
		pin.untrusted = c.untrusted;
		if (n > 0)
			policy_eval_calls(&auth->policy, &pin, calls, n, &pr);
		too_big = n < 0; /* arguments we cannot read whole are not waved through */
	}
	if (pr.deny || too_big) {
		char body_json[800], msg_text[240];
		const char *reason = pr.deny ? pr.deny->id : "tool_calls_too_large";
		snprintf(msg_text, sizeof(msg_text), "archestra: policy %.63s: %.150s", reason,
		         pr.deny ? pr.why : "the model's tool call arguments are too large to check");
		size_t bl = errjson_format(shape, 403, reason, msg_text, body_json, sizeof(body_json));
		struct spop_data st = { .type = SPOP_T_INT32, .v.i = 403 };
		set_str(acts, "res_verdict", "deny");
		spop_put_set_var(acts, SPOP_SCOPE_TXN, "res_status", 10, &st);
		spoa_set_txn_str(acts, "res_body", body_json, bl);
	} else {
		set_str(acts, "res_verdict", "allow");
	}
	if (counted) {
		set_int(acts, "tokens_in", u.in);
		set_int(acts, "tokens_out", u.out);
	}
	if (!metrics)
		return;

	int64_t status = 0;
	char st[16];
	snprintf(st, sizeof(st), "%lld", as_int(SPOP_MSG_ARG(msg, "status"), &status) ? (long long)status : 0LL);
	struct spop_slice model = c.model.len ? c.model : lit("unknown");
	struct spop_slice agent = c.id[ID_AGENT].len ? c.id[ID_AGENT] : lit("none");
	struct statsd_tag tags[] = {
		{ "provider", c.provider, false },
		{ "model", model, true },
		{ "external_agent_id", agent, true },
		{ "status", lit(st), false },
		{ "type", lit("input"), false },
	};
	statsd_count(hc->sd, "llm_upstream_status", 1, (struct statsd_tag[]){ tags[0], tags[1], tags[3] }, 3);
	if (pr.deny || too_big) {
		struct statsd_tag bt[] = { { "rule", lit(pr.deny ? pr.deny->id : "tool_calls_too_large"), false }, tags[0] };
		statsd_count(hc->sd, "llm_tool_calls_blocked", 1, bt, 2);
	}
	for (int i = 0; i < pr.nshadow; i++) {
		struct statsd_tag st2[] = { { "rule", lit(pr.shadow[i]->id), false }, tags[0] };
		statsd_count(hc->sd, "policy_shadow_denials", 1, st2, 2);
	}
	if (counted) {
		statsd_count(hc->sd, "llm_tokens", (double)u.in, (struct statsd_tag[]){ tags[0], tags[1], tags[2], tags[4] }, 4);
		tags[4].val = lit("output");
		statsd_count(hc->sd, "llm_tokens", (double)u.out, (struct statsd_tag[]){ tags[0], tags[1], tags[2], tags[4] }, 4);
		char pv[64];
		memcpy(pv, c.provider.ptr, c.provider.len < 63 ? c.provider.len : 63);
		pv[c.provider.len < 63 ? c.provider.len : 63] = '\0';
		const struct price *p = price_find(hc->prices, pv, c.model);
		if (p)
			statsd_count(hc->sd, "llm_cost_usd", price_cost(p, u.in, u.out), tags, 3);
	}
	if (have_ctx && c.start_us > 0) {
		int64_t d = now_us(CLOCK_REALTIME) - c.start_us;
		if (d >= 0)
			statsd_timing_us(hc->sd, "llm_request_duration", d, tags, 3);
	}
	struct statsd_tag mt[] = { { "message", lit("res"), false } };
	statsd_timing_us(hc->sd, "spoa_decision_time", now_us(CLOCK_MONOTONIC) - t0, mt, 1);
}

static const struct spoa_handler archestra_list[] = {
	{ "archestra-req", sizeof("archestra-req") - 1, on_archestra_req },
	{ "archestra-res", sizeof("archestra-res") - 1, on_archestra_res },
};

const struct spoa_handlers spoa_handlers_archestra = { archestra_list, 2, NULL };
const struct spoa_handlers spoa_handlers_ack_only = { NULL, 0, NULL };
