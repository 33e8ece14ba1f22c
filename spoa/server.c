/* server.c: worker threads, listeners and connections. See server.h.
 *
 * Memory: a connection owns no buffer while it has nothing pending. Reads land in
 * the worker's scratch buffer and are parsed in place; only a trailing partial
 * frame is copied to the connection. Replies are built in the worker's scratch
 * reply buffer and written at once; only what the socket refuses is kept. So a
 * thousand idle HAProxy connections cost a thousand small structs.
 */
#include "server.h"

#include "bstore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "authload.h"
#include "buf.h"
#include "config.h"
#include "handler.h"
#include "jwksfetch.h"
#include "log.h"
#include "meter.h"
#include "prom.h"
#include "promserve.h"
#include "request.h"
#include "session.h"
#include "statsd.h"

#define READ_CHUNK      (64 * 1024)
#define READ_ROUNDS     8            /* reads per wake-up before yielding to others */
#define OUT_HIGH_WATER  (256 * 1024) /* stop reading a peer that does not read us */
#define OUT_LOW_WATER   (64 * 1024)
#define ACCEPT_BATCH    64
#define CLOSE_GRACE     1.0          /* seconds to flush a final DISCONNECT */

struct worker;

struct conn {
	struct conn *prev, *next;
	struct worker *w;
	int fd;
	ev_io rio, wio;
	ev_timer tmo;
	ev_tstamp last;        /* last byte received */
	bool read_paused;
	struct session s;
	struct buf in;         /* a partial frame carried to the next read */
	struct buf out;        /* replies the socket has not taken yet */
	char peer[64];
};

struct worker {
	int id;
	pthread_t th;
	struct ev_loop *loop;
	struct server *srv;
	ev_io lio[CONFIG_MAX_LISTEN];
	ev_timer accept_pause;
	ev_async stop_w;
	ev_timer drain_w;
	bool draining;
	struct conn *conns;
	int nconns;
	struct buf rbuf;       /* scratch for reads */
	struct buf wbuf;       /* scratch for replies */
	struct spoa_handlers handlers;
	struct handler_ctx hctx;
	struct session_cfg scfg;
	struct server_stats st;
	struct statsd sd;
	struct auth *auth;      /* the snapshot this worker decides with (a reference) */
	uint64_t auth_gen;
	ev_timer flush_w;       /* statsd: flush every flush_ms, new window every window_s */
	ev_tstamp window_end;
	int reported_conns;     /* last connections gauge sent */
	struct prom_reg *pm;    /* Prometheus: this worker's series, or NULL */
	char idtext[12];        /* the worker label */
	ev_timer mtick;         /* reads the meter's UDP socket (fd in srv->mfd[id]) */
	uint32_t meter_dropped; /* the socket's drop count last seen (SO_RXQ_OVFL) */
};

struct server {
	struct config cfg;
	struct request_cfg rcfg;      /* what handlers read; points into cfg */
	int nthreads;
	int *lfd;              /* nthreads * nlisten, row per worker */
	struct worker *workers;
	atomic_int nconns;
	bool started;
	/* The keys/JWT/policy snapshot. Each worker holds a reference to the one it
	 * decides with and swaps it between messages when `auth_gen` moves on; a
	 * snapshot is freed by whoever drops its last reference. Reloads (main loop,
	 * JWKS fetcher) and swaps take auth_mu; a decision takes no lock. */
	struct auth *auth;
	atomic_uint_fast64_t auth_gen;
	pthread_mutex_t auth_mu;
	struct jwks_fetcher *jwks;
	struct bstore *store;         /* budgets' and rate limits' spend: shared by the workers */
	int *mfd;                     /* per worker: the meter's UDP socket (SO_REUSEPORT), or -1 */
	int prom_fd;                  /* the /metrics listener until promserve owns it, else -1 */
	struct promserve *prom;
};

static void auth_unref_locked(struct auth *a, struct auth **to_free)
{
	*to_free = NULL;
	if (a && --a->refs == 0)
		*to_free = a; /* freed outside the lock */
}

/* A worker's view: the current snapshot, re-taken only after a reload. */
static const struct auth *worker_auth(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->srv;
	uint64_t gen = atomic_load_explicit(&s->auth_gen, memory_order_acquire);
	if (gen != w->auth_gen) {
		struct auth *drop;
		pthread_mutex_lock(&s->auth_mu);
		auth_unref_locked(w->auth, &drop);
		w->auth = s->auth;
		if (w->auth)
			w->auth->refs++;
		w->auth_gen = atomic_load(&s->auth_gen);
		pthread_mutex_unlock(&s->auth_mu);
		auth_free(drop);
	}
	return w->auth;
}

int server_reload_auth(struct server *s, char *err, size_t errlen)
{
	size_t dl = 0;
	char *doc = s->jwks ? jwks_fetcher_latest(s->jwks, &dl) : NULL;
	struct auth *fresh = auth_load(&s->cfg, doc, dl, err, errlen); /* built off the hot path, unlocked */
	free(doc);
	if (!fresh)
		return -1;
	int n = fresh->keys.n;
	struct auth *drop;
	fresh->refs = 1; /* the server's own reference */
	pthread_mutex_lock(&s->auth_mu);
	auth_unref_locked(s->auth, &drop);
	s->auth = fresh;
	atomic_fetch_add_explicit(&s->auth_gen, 1, memory_order_release);
	pthread_mutex_unlock(&s->auth_mu);
	auth_free(drop);
	if (s->store)
		bstore_set_limits(s->store, fresh->policy.budgets); /* fresh: the server's reference holds it */
	return n;
}

/* The fetcher thread has a new JWKS: rebuild the snapshot with it. */
static void on_jwks_fetched(void *arg)
{
	char err[CONFIG_ERR_LEN], q[2 * CONFIG_ERR_LEN];
	if (server_reload_auth(arg, err, sizeof(err)) < 0)
		LOG(LL_ERROR, "reload", "trigger=jwks_url result=refused error=\"%s\" (the previous snapshot stays in force)",
		    log_quote(err, q, sizeof(q)));
	else
		LOG(LL_INFO, "reload", "trigger=jwks_url result=ok");
}

static void want_jwks(void *arg)
{
	jwks_fetcher_want(arg);
}

int server_threads(const struct server *s)
{
	return s->nthreads;
}

/* ---- connections ---- */

static void gauge_conns(struct worker *w)
{
	struct spop_slice id = { (const uint8_t *)w->idtext, strlen(w->idtext) };
	prom_record(w->pm, PM_CONNECTIONS, w->nconns, &id, 1);
}

static void conn_close(struct conn *c, const char *why)
{
	struct worker *w = c->w;
	if (c->s.status != SPOP_ST_OK && c->s.status != SPOP_ST_TIMEOUT)
		LOG(LL_WARN, "conn_close", "worker=%d peer=%s status=%d reason=\"%s\" detail=\"%s\"", w->id, c->peer,
		    c->s.status, spop_status_text(c->s.status), c->s.detail ? c->s.detail : why);
	else
		LOG(LL_DEBUG, "conn_close", "worker=%d peer=%s reason=\"%s\" notifies=%llu", w->id, c->peer,
		    c->s.detail ? c->s.detail : why, (unsigned long long)c->s.notifies);
	if (c->s.state == SESS_CLOSING && c->s.status != SPOP_ST_OK) {
		if (c->s.status == SPOP_ST_TIMEOUT)
			w->st.timeouts++;
		else
			w->st.proto_errors++;
		char code[12];
		snprintf(code, sizeof(code), "%d", (int)c->s.status);
		struct statsd_tag t = { "status", { (const uint8_t *)code, strlen(code) }, false };
		statsd_count(&w->sd, "spoa_protocol_errors", 1, &t, 1);
		prom_record(w->pm, PM_PROTOCOL_ERRORS, 1, &t.val, 1);
	}
	w->st.notifies += c->s.notifies;
	ev_io_stop(w->loop, &c->rio);
	ev_io_stop(w->loop, &c->wio);
	ev_timer_stop(w->loop, &c->tmo);
	close(c->fd);
	session_free(&c->s);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	gauge_conns(w);
	atomic_fetch_sub(&w->srv->nconns, 1);
	free(c);
	if (w->draining && w->nconns == 0)
		ev_break(w->loop, EVBREAK_ONE);
}

/* Writes data, keeping what the socket refuses. Returns -1 when the connection
 * is dead (and already closed). */
static int conn_send(struct conn *c, const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	if (c->out.len == 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len)
			return 0;
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_close(c, "write error");
				return -1;
			}
			n = 0;
		}
		data += n;
		len -= (size_t)n;
		ev_io_start(c->w->loop, &c->wio);
	}
	if (buf_append(&c->out, data, len) < 0) {
		conn_close(c, "out of memory");
		return -1;
	}
	if (c->out.len > OUT_HIGH_WATER && !c->read_paused) {
		c->read_paused = true;
		ev_io_stop(c->w->loop, &c->rio);
	}
	return 0;
}

/* Sends the worker's queued replies for c, then closes c if its session ended
 * and everything is written. Returns -1 when c is gone. */
static int conn_flush_replies(struct conn *c)
{
	struct worker *w = c->w;
	int rc = conn_send(c, w->wbuf.data, w->wbuf.len);
	w->wbuf.len = 0;
	if (rc < 0)
		return -1;
	if (c->s.state == SESS_CLOSING) {
		if (c->out.len == 0) {
			conn_close(c, "closed");
			return -1;
		}
		/* Stop reading; give the last frames a moment to leave. */
		ev_io_stop(w->loop, &c->rio);
		ev_timer_stop(w->loop, &c->tmo);
		ev_timer_set(&c->tmo, CLOSE_GRACE, 0.);
		ev_timer_start(w->loop, &c->tmo);
	}
	return 0;
}

static void conn_drain_now(struct conn *c)
{
	session_disconnect(&c->s, &c->w->wbuf, SPOP_ST_OK, "agent shutting down");
	conn_flush_replies(c);
}

/* Reads and answers what the socket holds. Returns -1 when c is gone. */
static int conn_read(struct conn *c)
{
	struct worker *w = c->w;

	for (int round = 0; round < READ_ROUNDS; round++) {
		struct buf *b;
		size_t room;
		if (c->in.len == 0) {
			b = &w->rbuf;
			room = READ_CHUNK;
		} else {
			b = &c->in;
			size_t need = session_frame_need(c->in.data, c->in.len);
			room = need > c->in.len + READ_CHUNK ? need - c->in.len : READ_CHUNK;
		}
		if (!buf_reserve(b, room)) {
			conn_close(c, "out of memory");
			return -1;
		}
		ssize_t n = recv(c->fd, b->data + b->len, room, 0);
		if (n == 0) {
			conn_close(c, c->in.len ? "peer closed mid-frame" : "peer closed");
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_close(c, "read error");
				return -1;
			}
			return 0;
		}
		c->last = ev_now(w->loop);
		size_t total = b->len + (size_t)n;
		size_t used = session_feed(&c->s, b->data, total, &w->wbuf);
		if (b == &w->rbuf) {
			if (used < total && c->s.state != SESS_CLOSING && buf_append(&c->in, b->data + used, total - used) < 0) {
				conn_close(c, "out of memory");
				return -1;
			}
		} else {
			b->len = total;
			buf_consume(b, used);
			if (b->len == 0)
				buf_free(b); /* big frames are rare: give the memory back */
		}
		if (w->draining && c->in.len == 0)
			session_disconnect(&c->s, &w->wbuf, SPOP_ST_OK, "agent shutting down");
		if (conn_flush_replies(c) < 0)
			return -1;
		if (c->s.state == SESS_CLOSING || c->read_paused || (size_t)n < room)
			return 0;
	}
	return 0;
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	conn_read(io->data);
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	struct conn *c = io->data;
	while (c->out.len) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_close(c, "write error");
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	ev_io_stop(loop, &c->wio);
	buf_free(&c->out);
	if (c->s.state == SESS_CLOSING) {
		conn_close(c, "closed");
		return;
	}
	if (c->read_paused) {
		c->read_paused = false;
		ev_io_start(loop, &c->rio);
	}
}

/* Hello and idle timeouts share one timer, re-armed lazily from `last` so that
 * traffic never touches the timer heap (libev's recommended pattern). */
static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct conn *c = t->data;
	const struct config *cfg = &c->w->srv->cfg;
	if (c->s.state == SESS_CLOSING) {
		conn_close(c, "peer did not read its last frames");
		return;
	}
	ev_tstamp limit = (c->s.state == SESS_HELLO ? cfg->hello_ms : cfg->idle_ms) / 1000.0;
	ev_tstamp left = c->last + limit - ev_now(loop);
	if (left > 0.001 && c->s.state == SESS_READY) {
		ev_timer_set(t, left, 0.);
		ev_timer_start(loop, t);
		return;
	}
	session_disconnect(&c->s, &c->w->wbuf,  SPOP_ST_TIMEOUT,
	                   c->s.state == SESS_HELLO ? "no HAPROXY-HELLO in time" : "idle connection");
	conn_flush_replies(c);
}

static void conn_new(struct worker *w, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		atomic_fetch_sub(&w->srv->nconns, 1);
		return;
	}
	c->w = w;
	c->fd = fd;
	session_init(&c->s, &w->scfg);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", a, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		char a[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(c->peer, sizeof(c->peer), "unix");
	}
	if (ss->ss_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	c->last = ev_now(w->loop);
	ev_timer_init(&c->tmo, on_timeout, w->srv->cfg.hello_ms / 1000.0, 0.);
	c->tmo.data = c;
	ev_timer_start(w->loop, &c->tmo);
	ev_io_start(w->loop, &c->rio);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	gauge_conns(w);
	w->st.accepted++;
	LOG(LL_DEBUG, "conn_open", "worker=%d peer=%s", w->id, c->peer);
}

/* Once the HELLO is done the timer switches from hello to idle; checked lazily
 * in on_timeout, which compares against the state. */

static void on_accept_resume(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct worker *w = t->data;
	for (int i = 0; i < w->srv->cfg.nlisten; i++)
		ev_io_start(loop, &w->lio[i]);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	struct worker *w = io->data;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: pause accepting instead of spinning. */
				LOG(LL_ERROR, "accept_paused", "worker=%d error=\"%s\"", w->id, strerror(errno));
				for (int k = 0; k < w->srv->cfg.nlisten; k++)
					ev_io_stop(loop, &w->lio[k]);
				ev_timer_set(&w->accept_pause, 0.1, 0.);
				ev_timer_start(loop, &w->accept_pause);
			}
			return;
		}
		if (atomic_fetch_add(&w->srv->nconns, 1) >= w->srv->cfg.max_connections) {
			atomic_fetch_sub(&w->srv->nconns, 1);
			close(fd);
			w->st.rejected++;
			LOG(LL_WARN, "conn_rejected", "worker=%d reason=max_connections limit=%d", w->id,
			    w->srv->cfg.max_connections);
			continue;
		}
		if (ss.ss_family == 0)
			ss.ss_family = AF_UNIX;
		conn_new(w, fd, &ss);
	}
}

/* ---- meter: HAProxy's end-of-call records ---- */

/* The meter's socket is read on a timer, not when a record comes: a record per
 * call would wake a sleeping worker per call (a context switch, and an IPI the
 * sending HAProxy pays for), which measured at about half of what counting
 * cost. Records wait at most METER_TICK in the socket's queue (SO_RCVBUF); the
 * kernel's drop count (SO_RXQ_OVFL) says if it ever overflows. */
#define METER_TICK   0.010   /* seconds */
#define METER_BATCH  64      /* datagrams per recvmmsg */
#define METER_ROUNDS 64      /* batches per tick, at most */

static void meter_count(struct worker *w, const char *outcome, double n)
{
	struct spop_slice o = { (const uint8_t *)outcome, strlen(outcome) };
	prom_record(w->pm, PM_METER_RECORDS, n, &o, 1);
}

static void meter_read(struct worker *w)
{
	int fd = w->srv->mfd[w->id];
	static __thread char d[METER_BATCH][METER_MAX + 1];
	static __thread char ctl[METER_BATCH][CMSG_SPACE(sizeof(uint32_t))];
	struct mmsghdr mm[METER_BATCH];
	struct iovec iov[METER_BATCH];
	for (int round = 0; round < METER_ROUNDS; round++) {
		for (int i = 0; i < METER_BATCH; i++) {
			iov[i] = (struct iovec){ d[i], sizeof(d[i]) };
			mm[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1, .msg_control = ctl[i],
			                                 .msg_controllen = sizeof(ctl[i]) };
		}
		int n = recvmmsg(fd, mm, METER_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return; /* EAGAIN, or nothing to do about another error on a datagram socket */
		int read = 0, refused = 0;
		for (int i = 0; i < n; i++) {
			struct meter_rec r;
			size_t len = mm[i].msg_len;
			if (!(mm[i].msg_hdr.msg_flags & MSG_TRUNC) && len <= METER_MAX && meter_parse(d[i], len, &r) == 0) {
				spoa_meter_account(&w->hctx, &r);
				read++;
			} else {
				LOG(LL_DEBUG, "meter_refused", "worker=%d len=%zu", w->id, len);
				refused++;
			}
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&mm[i].msg_hdr); c; c = CMSG_NXTHDR(&mm[i].msg_hdr, c))
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
					uint32_t dropped;
					memcpy(&dropped, CMSG_DATA(c), sizeof(dropped));
					if (dropped != w->meter_dropped) {
						meter_count(w, "dropped", (double)(uint32_t)(dropped - w->meter_dropped));
						LOG(LL_WARN, "meter_dropped", "worker=%d dropped=%u msg=\"the meter's socket queue "
						    "overflowed: raise net.core.rmem_max\"", w->id, dropped - w->meter_dropped);
						w->meter_dropped = dropped;
					}
				}
		}
		if (read)
			meter_count(w, "read", read);
		if (refused)
			meter_count(w, "refused", refused);
		if (n < METER_BATCH)
			return;
	}
}

static void on_meter_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	meter_read(t->data);
}

/* A stopping worker reads what is queued for it, then closes its socket so the
 * kernel sends later records to the agents that stay. */
static void meter_close(struct worker *w)
{
	int *fd = &w->srv->mfd[w->id];
	if (*fd < 0)
		return;
	ev_timer_stop(w->loop, &w->mtick);
	meter_read(w);
	close(*fd);
	*fd = -1;
}

/* ---- draining ---- */

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct worker *w = t->data;
	LOG(LL_WARN, "drain_timeout", "worker=%d open=%d", w->id, w->nconns);
	while (w->conns)
		conn_close(w->conns, "drain timeout");
	ev_break(loop, EVBREAK_ONE);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)revents;
	struct worker *w = a->data;
	if (w->draining)
		return;
	w->draining = true;
	for (int i = 0; i < w->srv->cfg.nlisten; i++)
		ev_io_stop(loop, &w->lio[i]);
	if (w->srv->mfd)
		meter_close(w);
	ev_timer_stop(loop, &w->accept_pause);
	/* Answer what is already readable, then say goodbye to whoever is between
	 * frames; the others get it after their frame (on_readable). */
	struct conn *c = w->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->s.state == SESS_CLOSING || (!c->read_paused && conn_read(c) < 0))
			continue;
		if (c->s.state != SESS_CLOSING && c->in.len == 0)
			conn_drain_now(c);
	}
	if (w->nconns == 0) {
		ev_break(loop, EVBREAK_ONE);
		return;
	}
	ev_timer_init(&w->drain_w, on_drain_timeout, w->srv->cfg.drain_ms / 1000.0, 0.);
	w->drain_w.data = w;
	ev_timer_start(loop, &w->drain_w);
}

static void on_flush(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct worker *w = t->data;
	if (w->nconns != w->reported_conns) {
		char id[12];
		snprintf(id, sizeof(id), "%d", w->id);
		struct statsd_tag tag = { "worker", { (const uint8_t *)id, strlen(id) }, false };
		statsd_gauge(&w->sd, "spoa_connections", w->nconns, &tag, 1);
		w->reported_conns = w->nconns;
	}
	statsd_flush(&w->sd);
	if (ev_now(loop) >= w->window_end) {
		statsd_new_window(&w->sd);
		w->window_end = ev_now(loop) + w->srv->cfg.statsd.window_s;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	ev_run(w->loop, 0);
	while (w->conns)
		conn_close(w->conns, "stopped");
	statsd_close(&w->sd); /* flushes what the last frames produced */
	return NULL;
}

/* ---- listeners ---- */

static int open_listener(const struct listen_addr *la, bool reuseport, char *err, size_t errlen)
{
	int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", la->text, strerror(errno));
		return -1;
	}
	int one = 1;
	if (!la->is_unix) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
			snprintf(err, errlen, "cannot listen on %s: SO_REUSEPORT: %s", la->text, strerror(errno));
			close(fd);
			return -1;
		}
		if (la->ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&la->ss, la->sslen) < 0 || listen(fd, 1024) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", la->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The meter's UDP socket: every worker of every agent binds the same address,
 * and the kernel gives each datagram to one of them. */
static int open_meter(const struct listen_addr *la, char *err, size_t errlen)
{
	int fd = socket(la->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, rcvbuf = 4 << 20;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)&la->ss, la->sslen) < 0) {
		snprintf(err, errlen, "cannot listen on udp %s (meter): %s", la->text, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Room for the records of a tick and for bursts (capped by net.core.rmem_max;
	 * root may go past it); a full queue drops records, which the kernel counts. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	return fd;
}

/* A stale socket file from a dead agent is removed; a live one is an error. */
static int clear_unix_path(const struct listen_addr *la, char *err, size_t errlen)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&la->ss;
	if (access(un->sun_path, F_OK) != 0)
		return 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (const struct sockaddr *)un, la->sslen) == 0) {
		close(fd);
		snprintf(err, errlen, "cannot listen on %s: Address already in use", la->text);
		return -1;
	}
	if (fd >= 0)
		close(fd);
	unlink(un->sun_path);
	return 0;
}

struct server *server_open(const struct config *cfg, char *err, size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->prom_fd = -1;
	s->cfg = *cfg;
	s->rcfg.providers = &s->cfg.providers;
	s->rcfg.truncated = s->cfg.truncated_body;
	s->rcfg.inspect_responses = s->cfg.inspect_responses;
	s->rcfg.drop_invalid_identity = s->cfg.drop_invalid_identity;
	s->nthreads = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (s->nthreads < 1)
		s->nthreads = 1;
	s->lfd = malloc(sizeof(int) * (size_t)(s->nthreads * cfg->nlisten));
	s->workers = calloc((size_t)s->nthreads, sizeof(*s->workers));
	if (!s->lfd || !s->workers) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < s->nthreads * cfg->nlisten; i++)
		s->lfd[i] = -1;
	pthread_mutex_init(&s->auth_mu, NULL);
	if (cfg->jwt.enabled && cfg->jwt.jwks_url[0]) {
		s->jwks = jwks_fetcher_start(cfg->jwt.jwks_url, cfg->jwt.jwks_ca_file, cfg->jwt.jwks_refresh_s,
		                             cfg->jwt.jwks_min_refetch_s, on_jwks_fetched, s, err, errlen);
		if (!s->jwks)
			goto fail;
	}
	if (server_reload_auth(s, err, errlen) < 0)
		goto fail;
	if (!(s->store = bstore_new(&cfg->store, err, errlen)))
		goto fail;
	bstore_set_limits(s->store, s->auth->policy.budgets);

	for (int l = 0; l < cfg->nlisten; l++) {
		const struct listen_addr *la = &cfg->listen[l];
		if (la->is_unix) {
			if (clear_unix_path(la, err, errlen) < 0)
				goto fail;
			int fd = open_listener(la, false, err, errlen);
			if (fd < 0)
				goto fail;
			for (int t = 0; t < s->nthreads; t++)
				s->lfd[t * cfg->nlisten + l] = fd; /* shared: Unix sockets have no REUSEPORT balancing */
			continue;
		}
		/* A probe without SO_REUSEPORT fails when anyone already listens there,
		 * even another agent: two agents silently sharing a port is a surprise. */
		int probe = open_listener(la, false, err, errlen);
		if (probe < 0)
			goto fail;
		close(probe);
		for (int t = 0; t < s->nthreads; t++) {
			int fd = open_listener(la, true, err, errlen);
			if (fd < 0)
				goto fail;
			s->lfd[t * cfg->nlisten + l] = fd;
		}
	}
	if (cfg->meter_on) {
		if (!(s->mfd = malloc(sizeof(int) * (size_t)s->nthreads))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (int t = 0; t < s->nthreads; t++)
			s->mfd[t] = -1;
		for (int t = 0; t < s->nthreads; t++)
			if ((s->mfd[t] = open_meter(&cfg->meter, err, errlen)) < 0)
				goto fail;
	}
	if (cfg->prometheus.enabled) { /* bound now: "address in use" is reported before anything starts */
		struct listen_addr la = { .ss = cfg->prometheus.addr, .sslen = cfg->prometheus.addr_len };
		snprintf(la.text, sizeof(la.text), "%.100s (prometheus.listen)", cfg->prometheus.addr_text);
		if ((s->prom_fd = open_listener(&la, false, err, errlen)) < 0)
			goto fail;
	}
	return s;
fail:
	server_free(s);
	return NULL;
}

/* A scrape, on promserve's thread: every worker's registry, summed. */
static int render_metrics(void *arg, struct buf *out)
{
	struct server *s = arg;
	struct prom_reg *regs[256];
	int n = s->nthreads < 256 ? s->nthreads : 256;
	for (int t = 0; t < n; t++)
		regs[t] = s->workers[t].pm; /* set before promserve's thread started */
	return prom_render(regs, n, out);
}

int server_run(struct server *s, char *err, size_t errlen)
{
	const struct config *cfg = &s->cfg;
	sigset_t all, old;
	sigfillset(&all);
	/* Workers never take signals: the main thread's loop does. */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int t = 0; t < s->nthreads; t++) {
		struct worker *w = &s->workers[t];
		w->id = t;
		w->srv = s;
		w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		if (!w->loop) {
			snprintf(err, errlen, "cannot create event loop");
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
		if (statsd_open(&w->sd, &cfg->statsd, err, errlen) < 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
		snprintf(w->idtext, sizeof(w->idtext), "%d", t);
		if (cfg->prometheus.enabled) {
			if (!(w->pm = prom_reg_new(&cfg->prometheus))) {
				snprintf(err, errlen, "out of memory");
				pthread_sigmask(SIG_SETMASK, &old, NULL);
				return -1;
			}
			gauge_conns(w); /* 0 until the first connection */
		}
		w->hctx.pm = w->pm;
		w->hctx.rcfg = &s->rcfg;
		w->hctx.prices = &cfg->prices;
		w->hctx.sd = &w->sd;
		w->hctx.auth_get = worker_auth;
		w->hctx.auth_arg = w;
		w->hctx.store = s->store;
		w->hctx.jwt_cache = calloc(1, sizeof(*w->hctx.jwt_cache)); /* none: every token is verified */
		if (s->jwks) {
			w->hctx.on_unknown_kid = want_jwks;
			w->hctx.hook_arg = s->jwks;
		}
		w->handlers = cfg->ack_only ? spoa_handlers_ack_only : spoa_handlers_archestra;
		w->handlers.arg = &w->hctx;
		if (cfg->statsd.enabled) {
			ev_timer_init(&w->flush_w, on_flush, cfg->statsd.flush_ms / 1000.0, cfg->statsd.flush_ms / 1000.0);
			w->flush_w.data = w;
			w->window_end = ev_now(w->loop) + cfg->statsd.window_s;
			ev_timer_start(w->loop, &w->flush_w);
		}
		w->scfg.max_frame_size = cfg->max_frame_size;
		w->scfg.caps = cfg->caps;
		w->scfg.max_reassembled = cfg->max_reassembled;
		w->scfg.handlers = &w->handlers;
		for (int l = 0; l < cfg->nlisten; l++) {
			ev_io_init(&w->lio[l], on_accept, s->lfd[t * cfg->nlisten + l], EV_READ);
			w->lio[l].data = w;
			ev_io_start(w->loop, &w->lio[l]);
		}
		if (s->mfd) {
			ev_timer_init(&w->mtick, on_meter_tick, METER_TICK, METER_TICK);
			w->mtick.data = w;
			ev_timer_start(w->loop, &w->mtick);
		}
		ev_timer_init(&w->accept_pause, on_accept_resume, 0.1, 0.);
		w->accept_pause.data = w;
		ev_async_init(&w->stop_w, on_stop);
		w->stop_w.data = w;
		ev_async_start(w->loop, &w->stop_w);
		if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
		s->started = true;
	}
	if (s->prom_fd >= 0) { /* started with signals blocked, like the workers */
		s->prom = promserve_start(s->prom_fd, render_metrics, s, err, errlen);
		if (!s->prom) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -1;
		}
		s->prom_fd = -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

void server_stop(struct server *s)
{
	for (int t = 0; t < s->nthreads; t++)
		if (s->workers[t].loop)
			ev_async_send(s->workers[t].loop, &s->workers[t].stop_w);
}

void server_wait(struct server *s, struct server_stats *st)
{
	if (st)
		memset(st, 0, sizeof(*st));
	for (int t = 0; t < s->nthreads; t++) {
		struct worker *w = &s->workers[t];
		if (!w->th)
			continue;
		pthread_join(w->th, NULL);
		w->th = 0;
		if (st) {
			st->accepted += w->st.accepted;
			st->rejected += w->st.rejected;
			st->notifies += w->st.notifies;
			st->proto_errors += w->st.proto_errors;
			st->timeouts += w->st.timeouts;
		}
	}
}

void server_free(struct server *s)
{
	if (!s)
		return;
	promserve_stop(s->prom); /* first: a scrape reads the workers' registries */
	if (s->prom_fd >= 0)
		close(s->prom_fd);
	jwks_fetcher_stop(s->jwks);
	bstore_free(s->store); /* the workers have stopped: nobody adds any more */
	const struct config *cfg = &s->cfg;
	if (s->mfd)
		for (int t = 0; t < s->nthreads; t++)
			if (s->mfd[t] >= 0)
				close(s->mfd[t]);
	free(s->mfd);
	if (s->lfd) {
		for (int l = 0; l < cfg->nlisten; l++) {
			const struct listen_addr *la = &cfg->listen[l];
			for (int t = 0; t < s->nthreads; t++) {
				int fd = s->lfd[t * cfg->nlisten + l];
				if (fd >= 0 && (!la->is_unix || t == 0))
					close(fd);
			}
			if (la->is_unix && s->lfd[l] >= 0)
				unlink(((const struct sockaddr_un *)&la->ss)->sun_path);
		}
	}
	if (s->workers) {
		for (int t = 0; t < s->nthreads; t++) {
			struct worker *w = &s->workers[t];
			if (w->loop)
				ev_loop_destroy(w->loop);
			buf_free(&w->rbuf);
			buf_free(&w->wbuf);
			free(w->hctx.jwt_cache);
			read_scratch_free(&w->hctx.scratch);
			prom_reg_free(w->pm);
		}
	}
	struct auth *drop;
	if (s->workers)
		for (int t = 0; t < s->nthreads; t++) {
			auth_unref_locked(s->workers[t].auth, &drop);
			auth_free(drop);
		}
	auth_unref_locked(s->auth, &drop);
	auth_free(drop);
	free(s->workers);
	free(s->lfd);
	free(s);
}
