/* server.h: the I/O shell. Worker threads, each with its own libev loop and its
 * own SO_REUSEPORT listening sockets, move bytes between sockets and sessions.
 * Nothing here decides anything about the protocol: that is session.c. */
#ifndef SPOA_SERVER_H
#define SPOA_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct config;   /* config.h */
struct server;

/* Totals over all workers, read after server_wait(). */
struct server_stats {
	uint64_t accepted;
	uint64_t rejected;      /* over max_connections */
	uint64_t notifies;
	uint64_t proto_errors;  /* connections closed with an error status */
	uint64_t timeouts;
};

/* Binds every listener (so "address in use" is reported before anything starts)
 * and prepares the workers. Returns NULL with err set on failure. */
struct server *server_open(const struct config *c, char *err, size_t errlen);

/* Starts the worker threads. Returns 0 or -1 with err set. */
int server_run(struct server *s, char *err, size_t errlen);

/* Asks every worker to drain and stop (callable from the main thread's signal
 * watcher). */
void server_stop(struct server *s);

/* Joins the workers; fills stats if not NULL. */
void server_wait(struct server *s, struct server_stats *stats);

/* Closes listeners (unlinking Unix socket files) and frees everything. */
void server_free(struct server *s);

int server_threads(const struct server *s);

/* Re-reads the keys file and provider keys into a new snapshot and swaps it in
 * atomically; decisions under way finish on the old one. On error the old one
 * stays. Returns the number of virtual keys, or -1 with err set. */
int server_reload_auth(struct server *s, char *err, size_t errlen);

#endif
