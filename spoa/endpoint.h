/* endpoint.h: which provider endpoints a credential the gateway substitutes may reach.
 *
 * An endpoint is "METHOD /path" relative to the provider's prefix, where '*' matches
 * within one path segment (never '/'): "GET /models/<id>" is written with a star for <id>.
 * A provider has a default list (its inference endpoints and model listing); a
 * virtual key, the JWT section or the provider's config entry may name more. Pure. */
#ifndef SPOA_ENDPOINT_H
#define SPOA_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "spop.h"

#define ENDPOINTS_MAX 16
#define ENDPOINT_LEN  96

struct endpoint_list {
	char e[ENDPOINTS_MAX][ENDPOINT_LEN];
	int n;
};

/* Does "METHOD /path" match an entry of l? */
bool endpoint_allowed(const struct endpoint_list *l, struct spop_slice method, struct spop_slice path);

/* Reads a JSON array of "METHOD /path" strings (at most ENDPOINTS_MAX) that sits at
 * path.key ("keys[3]", "endpoints"; see cfgjson.h). Returns 0, or -1 with err set.
 * The strings are copied into out; nothing to free. */
struct cJSON;
int endpoint_list_parse(const struct cJSON *arr, const char *path, const char *key, struct endpoint_list *out, char *err,
                        size_t errlen);

/* One "METHOD /path" string: 0 when well-formed. */
int endpoint_check(const char *s);

#endif
