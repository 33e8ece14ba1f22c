/* identity.h: who makes an LLM call, from Archestra's headers.
 *
 *   X-Archestra-Agent-Id, X-Archestra-User-Id, X-Archestra-Session-Id,
 *   X-Archestra-Execution-Id, and X-Archestra-Meta: agent-id/execution-id/session-id
 *
 * Names are case-insensitive; values are trimmed; an empty value is no value. A
 * value is 1..IDENTITY_MAX_LEN bytes of A-Z a-z 0-9 . _ - : @ + ~ (anything else,
 * '/' and spaces included, is invalid); so is a Meta without exactly three segments. A header repeated with
 * the same value counts once; with different values it is invalid. An individual
 * header wins over the same field in Meta. Values are slices of req.hdrs_bin. Pure. */
#ifndef SPOA_IDENTITY_H
#define SPOA_IDENTITY_H

#include <stdbool.h>

#include "spop.h"

#define IDENTITY_MAX_LEN 128

enum id_field { ID_AGENT = 0, ID_USER, ID_SESSION, ID_EXECUTION, ID_FIELDS };

struct identity {
	struct spop_slice v[ID_FIELDS];   /* len 0: absent */
};

struct identity_error {
	const char *header;   /* e.g. "X-Archestra-Agent-Id" */
	const char *why;      /* e.g. "contains '/'" */
};

/* Reads the identity headers. Returns 0, or -1 with *err describing the first
 * invalid header. With drop_invalid, invalid values are dropped instead (the
 * field stays absent), *dropped counts them, and the call returns 0. */
int identity_parse(const struct spop_data *hdrs, bool drop_invalid, struct identity *id,
                   struct identity_error *err, unsigned *dropped);

const char *identity_field_name(enum id_field f);   /* "agent_id", ... */
extern const char *const identity_field_names[ID_FIELDS + 1];   /* by enum id_field, then NULL */

/* Is c in the identity character set? */
bool identity_char_ok(uint8_t c);

#endif
