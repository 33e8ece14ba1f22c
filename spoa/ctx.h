/* ctx.h: what the response message needs to know about its request.
 *
 * The agent keeps no memory between the two messages of a call (any instance
 * may get either), so the request decision hands HAProxy a compact string,
 * txn.arch.ctx, that comes back with archestra-res:
 *   "1|provider|model|agent_id|user_id|session_id|execution_id|key_id|start_us|flags"
 * (flags: 1 stream, 2 untrusted data in the conversation)
 * Fields are percent-escaped where they hold '%', '|' or bytes outside 0x21-0x7e. Pure. */
#ifndef SPOA_CTX_H
#define SPOA_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "spop.h"

/* Room for the worst case: identity values of 128 safe bytes (an owner's %XX
 * escapes escaped again), a 256-byte model, the rest short. */
#define CTX_MAX 4096

struct call_ctx {
	struct spop_slice provider, model, key_id;
	struct spop_slice id[ID_FIELDS];
	int64_t start_us;       /* wall clock, microseconds */
	bool stream;
	bool untrusted;         /* the request carried a tool result from an untrusted tool */
};

/* Returns the length written (NUL-terminated), 0 when it does not fit. */
size_t ctx_encode(const struct call_ctx *c, char *dst, size_t room);

/* Decodes s; unescaped fields are written to scratch, which must outlive c. */
bool ctx_decode(struct spop_slice s, struct call_ctx *c, char *scratch, size_t room);

#endif
