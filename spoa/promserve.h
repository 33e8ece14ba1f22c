/* promserve.h: the Prometheus endpoint's I/O. One thread with its own libev loop
 * accepts scrapes, reads a request head (at most PROM_REQ_MAX bytes, 10 s), and
 * answers GET /metrics with what the render callback writes (200), anything
 * else with 404 (400 when it is not HTTP), HTTP/1.0 style: one request per
 * connection, then close. At most 8 scrapes at once; more are closed at accept.
 * The decision workers never see a scrape: the callback reads their registries
 * (prom.h) from this thread. */
#ifndef SPOA_PROMSERVE_H
#define SPOA_PROMSERVE_H

#include <stddef.h>

struct buf;
struct promserve;

/* Appends the exposition to out; returns 0, or -1 (the scrape gets a 500). */
typedef int (*promserve_render)(void *arg, struct buf *out);

/* Starts serving on lfd, a listening socket it then owns. Returns NULL with err
 * set on failure (lfd is then still the caller's). */
struct promserve *promserve_start(int lfd, promserve_render render, void *arg, char *err, size_t errlen);

/* Stops the thread, closes every socket and frees ps (NULL: nothing). */
void promserve_stop(struct promserve *ps);

#endif
