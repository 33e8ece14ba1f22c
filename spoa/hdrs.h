/* hdrs.h: reading HAProxy's req.hdrs_bin / res.hdrs_bin without copying.
 *
 * Format: a sequence of <name><value>, each <varint length><bytes>, ended by an
 * empty name and an empty value. Names and values come back as slices of the
 * frame buffer. Pure. */
#ifndef SPOA_HDRS_H
#define SPOA_HDRS_H

#include <stdbool.h>

#include "spop.h"

/* Next header: 1 with name/value set, 0 at the end marker (or the end of the
 * buffer), -1 when malformed. */
int hdrs_next(struct spop_reader *r, struct spop_slice *name, struct spop_slice *value);

/* The trimmed value of the first header named `lower` (a lower-case name), empty
 * when absent; *again (may be NULL) tells whether the name appears more than once. */
struct spop_slice hdrs_get(const struct spop_data *hdrs, const char *lower, bool *again);

/* ASCII case-insensitive comparison of a slice with a lower-case literal. */
bool slice_ieq(struct spop_slice s, const char *lower, size_t n);
#define SLICE_IEQ(s, lit) slice_ieq((s), (lit), sizeof(lit) - 1)

/* Value with surrounding spaces and tabs removed. */
struct spop_slice slice_trim(struct spop_slice s);

#endif
