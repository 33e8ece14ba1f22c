/* handler.h: what the agent answers to each SPOP message.
 *
 * The session decodes a NOTIFY into messages whose name and arguments are slices
 * of the frame buffer (nothing is copied) and asks the handler table for the
 * actions to put in the ACK. A handler writes its actions straight into the ACK
 * being built, so an answer costs no intermediate allocation either.
 */
#ifndef SPOA_HANDLER_H
#define SPOA_HANDLER_H

#include "request_types.h"   /* struct read_scratch, held by value */
#include "spop.h"

struct auth;           /* request.h */
struct bstore;         /* bstore.h */
struct jwt_cache;      /* request.h */
struct meter_rec;      /* meter.h */
struct price_table;    /* pricing.h */
struct prom_reg;       /* prom.h */
struct req_decision;   /* request.h */
struct statsd;         /* statsd.h */

/* What the archestra handlers read and write: settings (shared, read-only), the
 * worker's own metrics sender and Prometheus registry. One per worker, so no locks. */
struct handler_ctx {
	const struct request_cfg *rcfg;
	const struct price_table *prices;
	struct statsd *sd;
	const struct auth *(*auth_get)(void *); /* the snapshot to decide with, or NULL */
	void *auth_arg;
	struct jwt_cache *jwt_cache;        /* this worker's, or NULL */
	struct read_scratch scratch;        /* this worker's; read_scratch_free at exit */
	void (*on_unknown_kid)(void *);     /* asks for a JWKS refetch, or NULL */
	void *hook_arg;
	struct prom_reg *pm;                /* this worker's, or NULL: Prometheus off */
	struct bstore *store;               /* budgets' spend, shared by the workers; NULL: budgets not checked */
};

/* Writes the actions for one message into the ACK under construction.
 * `arg` is the table's context (read-only settings, so handlers need no locks). */
typedef void (*spoa_msg_fn)(void *arg, const struct spop_msg *msg, struct spop_writer *acts);

struct spoa_handler {
	const char *name;
	size_t name_len;
	spoa_msg_fn fn;
};

struct spoa_handlers {
	const struct spoa_handler *list;
	size_t n;
	void *arg;
};

/* Runs the handler registered for m's name; a message nobody handles gets no
 * action (SPOE.txt: the ACK is still owed). Returns 1 if a handler ran. */
int spoa_dispatch(const struct spoa_handlers *hs, const struct spop_msg *m, struct spop_writer *acts);

/* Sets a txn-scoped string variable: the common case for every handler. */
void spoa_set_txn_str(struct spop_writer *acts, const char *name, const char *val, size_t len);

/* The handler tables the agent ships:
 *  - archestra: `archestra-req` (routing, identity, refusals) and `archestra-res`
 *    (tool calls and trusted data in responses), arg: struct handler_ctx;
 *  - ack-only:  no handler at all, for measuring what the protocol path alone costs. */
extern const struct spoa_handlers spoa_handlers_archestra;
extern const struct spoa_handlers spoa_handlers_ack_only;

/* Counts one call's end-of-call record (meter.h): upstream status, duration,
 * tokens and cost, into this worker's statsd and Prometheus registry. */
void spoa_meter_account(struct handler_ctx *hc, const struct meter_rec *r);

/* Writes the variables of a request decision (exposed for tests). `ctx` is the
 * encoded call context for archestra-res, or NULL. */
void spoa_write_decision(const struct req_decision *d, const char *ctx, struct spop_writer *acts);

#endif
