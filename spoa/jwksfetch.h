/* jwksfetch.h: keeping a JWKS fetched from an https:// URL, off the decision path.
 *
 * A thread of its own fetches the document at start, every refresh_s seconds, and
 * when a worker meets an unknown "kid" (at most once per min_refetch_s, so a
 * stream of forged kids cannot turn the agent into a fetch loop). Each good
 * document is kept and the owner's callback told (it rebuilds the auth snapshot);
 * a failed fetch keeps the previous keys. Certificates are verified (system CAs
 * or ca_file) and the host name checked. I/O. */
#ifndef SPOA_JWKSFETCH_H
#define SPOA_JWKSFETCH_H

#include <stdbool.h>
#include <stddef.h>

struct jwks_fetcher;

typedef void (*jwks_fetched_fn)(void *arg);

/* Fetches once (blocking, bounded by timeouts), then starts the thread. */
struct jwks_fetcher *jwks_fetcher_start(const char *url, const char *ca_file, unsigned refresh_s, unsigned min_refetch_s,
                                        jwks_fetched_fn cb, void *arg, char *err, size_t errlen);
/* Asks for a refetch soon (thread-safe, never blocks on the network). */
void jwks_fetcher_want(struct jwks_fetcher *f);
/* A copy of the last good document (caller frees), or NULL. */
char *jwks_fetcher_latest(struct jwks_fetcher *f, size_t *len);
void jwks_fetcher_stop(struct jwks_fetcher *f);

#endif
