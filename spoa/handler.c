/* handler.c: message dispatch and the archestra handlers. See handler.h. */
#include "handler.h"

#include <string.h>

#include "errjson.h"

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

void spoa_write_decision(const struct req_decision *d, struct spop_writer *acts)
{
	set_str(acts, "reason", d->reason);
	if (d->prov)
		set_str(acts, "provider", d->prov->name);
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
	spop_put_set_var_str2(acts, SPOP_SCOPE_TXN, "upstream_path", 13, p->upstream_base, strlen(p->upstream_base),
	                      d->rest.ptr, d->rest.len);
	set_str(acts, "upstream_host", p->host);
	if (d->inspect_res)
		set_str(acts, "inspect_res", "1");
}

static void on_archestra_req(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	struct req_decision d;
	request_decide(arg, msg, &d);
	spoa_write_decision(&d, acts);
}

static void on_archestra_res(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	(void)arg;
	(void)msg;
	spoa_set_txn_str(acts, "res_verdict", "allow", 5);
}

static const struct spoa_handler archestra_list[] = {
	{ "archestra-req", sizeof("archestra-req") - 1, on_archestra_req },
	{ "archestra-res", sizeof("archestra-res") - 1, on_archestra_res },
};

const struct spoa_handlers spoa_handlers_archestra = { archestra_list, 2, NULL };
const struct spoa_handlers spoa_handlers_ack_only = { NULL, 0, NULL };
