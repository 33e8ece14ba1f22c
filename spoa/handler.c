/* handler.c: message dispatch and the archestra handlers. See handler.h. */
#include "handler.h"

#include <string.h>

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

static void on_archestra_req(void *arg, const struct spop_msg *msg, struct spop_writer *acts)
{
	(void)arg;
	(void)msg;
	spoa_set_txn_str(acts, "verdict", "allow", 5);
}

static const struct spoa_handler archestra_list[] = {
	{ "archestra-req", sizeof("archestra-req") - 1, on_archestra_req },
};

const struct spoa_handlers spoa_handlers_archestra = { archestra_list, 1, NULL };
const struct spoa_handlers spoa_handlers_ack_only = { NULL, 0, NULL };
