/* request_types.h: the decision's settings and each worker's room for reading a
 * message: what config.h and handler.h hold by value, apart from request.h (the
 * auth snapshot, the decision itself and the policy, JWT and keys headers those
 * pull in) and from its functions. */
#ifndef SPOA_REQUEST_TYPES_H
#define SPOA_REQUEST_TYPES_H

#include <stdbool.h>

#include "jsonscan.h"
#include "sigv4.h"

struct provider_table;

/* What the agent does when HAProxy could not buffer the whole body. */
enum truncated_policy { TRUNC_DENY = 0, TRUNC_ALLOW };

struct request_cfg {
	const struct provider_table *providers;
	enum truncated_policy truncated;
	bool inspect_responses;         /* ask HAProxy for the response (archestra-res) */
	bool drop_invalid_identity;     /* invalid X-Archestra-* values: drop (true) or 400 */
};

/* Per-worker room for reading one message: decoded identifiers and the rewritten
 * path (arena), the decoded text of strings holding \u escapes (text, for the
 * DLP), and json_check's key table. Grown to the largest body seen (an allocation
 * only then), reset per message, freed with the worker (read_scratch_free, in
 * request.h). */
struct read_scratch {
	struct json_arena arena, text;
	struct json_keytab keys;
	struct sigv4_out sig;   /* the headers of a call the agent signed (Bedrock with IAM credentials) */
};

#endif
