/* authload.h: building an authentication snapshot (struct auth) from the config:
 * the keys file, and the real provider keys from the environment or files. I/O. */
#ifndef SPOA_AUTHLOAD_H
#define SPOA_AUTHLOAD_H

#include <stddef.h>

struct auth;     /* request.h */
struct config;   /* config.h */

/* A new snapshot (caller frees with auth_free), or NULL with err set. With a
 * jwks_url, `jwks_doc` is the last fetched document (NULL: none yet, JWTs are
 * then refused as unknown kid); otherwise the JWKS comes from jwks_file. */
struct auth *auth_load(const struct config *c, const char *jwks_doc, size_t jwks_len, char *err, size_t errlen);
void auth_free(struct auth *a);

#endif
