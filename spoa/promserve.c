/* promserve.c: see promserve.h. */
#include "promserve.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "prom.h"

#define MAX_SCRAPES    8
#define SCRAPE_TIMEOUT 10.0   /* seconds from accept to the last byte written */

struct scrape {
	struct promserve *ps;
	int fd;                   /* -1: a free slot */
	ev_io io;
	ev_timer tmo;
	char req[PROM_REQ_MAX];
	size_t len;
	struct buf out;           /* the whole response */
	size_t sent;
};

struct promserve {
	int lfd;
	struct ev_loop *loop;
	ev_io lio;
	ev_timer accept_pause;
	ev_async stop_w;
	pthread_t th;
	promserve_render render;
	void *arg;
	struct scrape sc[MAX_SCRAPES];
};

static void scrape_close(struct scrape *c)
{
	struct ev_loop *loop = c->ps->loop;
	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->tmo);
	close(c->fd);
	c->fd = -1;
	buf_free(&c->out);
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct scrape *c = io->data;
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				scrape_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	scrape_close(c); /* one request per connection */
}

/* Builds the whole response, then writes it as the socket takes it. */
static void respond(struct scrape *c, enum prom_route route)
{
	static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";
	struct buf body = { 0 };
	int status = route == PROM_METRICS ? 200 : route == PROM_NOT_FOUND ? 404 : 400;
	const char *text = route == PROM_NOT_FOUND ? "not found: the metrics are at GET /metrics\n" : "bad request\n";
	if (route == PROM_METRICS && c->ps->render(c->ps->arg, &body) < 0) {
		buf_free(&body);
		status = 500;
		text = "out of memory\n";
	}
	if (status != 200 && buf_append(&body, text, strlen(text)) < 0)
		body.len = 0;
	char head[256];
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
	                  status == 200 ? "OK" : status == 404 ? "Not Found" : status == 400 ? "Bad Request"
	                                                                     : "Internal Server Error",
	                  status == 200 ? metrics_type : "text/plain; charset=utf-8", body.len);
	if (buf_append(&c->out, head, (size_t)hl) < 0 || buf_append(&c->out, body.data, body.len) < 0) {
		buf_free(&body);
		scrape_close(c);
		return;
	}
	buf_free(&body);
	LOG(LL_DEBUG, "scrape", "status=%d bytes=%zu", status, c->out.len);
	ev_io_stop(c->ps->loop, &c->io);
	ev_io_init(&c->io, on_writable, c->fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(c->ps->loop, &c->io);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	struct scrape *c = io->data;
	ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - c->len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		scrape_close(c);
		return;
	}
	if (n < 0)
		return;
	c->len += (size_t)n;
	enum prom_route r = prom_route(c->req, c->len);
	if (r != PROM_MORE)
		respond(c, r);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	scrape_close(t->data);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)revents;
	struct promserve *ps = io->data;
	for (;;) {
		int fd = accept4(ps->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) { /* out of descriptors: pause, not spin */
				ev_io_stop(loop, &ps->lio);
				ev_timer_start(loop, &ps->accept_pause);
			}
			return;
		}
		struct scrape *c = NULL;
		for (int i = 0; i < MAX_SCRAPES && !c; i++)
			if (ps->sc[i].fd < 0)
				c = &ps->sc[i];
		if (!c) {
			close(fd); /* busy: a scraper retries at its next interval */
			continue;
		}
		c->fd = fd;
		c->len = c->sent = 0;
		c->out = (struct buf){ 0 };
		ev_io_init(&c->io, on_readable, fd, EV_READ);
		c->io.data = c;
		ev_io_start(loop, &c->io);
		ev_timer_init(&c->tmo, on_timeout, SCRAPE_TIMEOUT, 0.);
		c->tmo.data = c;
		ev_timer_start(loop, &c->tmo);
	}
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)revents;
	struct promserve *ps = t->data;
	ev_io_start(loop, &ps->lio);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)a;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void *serve(void *arg)
{
	struct promserve *ps = arg;
	ev_run(ps->loop, 0);
	for (int i = 0; i < MAX_SCRAPES; i++)
		if (ps->sc[i].fd >= 0)
			scrape_close(&ps->sc[i]);
	return NULL;
}

struct promserve *promserve_start(int lfd, promserve_render render, void *arg, char *err, size_t errlen)
{
	struct promserve *ps = calloc(1, sizeof(*ps));
	if (!ps) {
		snprintf(err, errlen, "prometheus: out of memory");
		return NULL;
	}
	ps->lfd = lfd;
	ps->render = render;
	ps->arg = arg;
	for (int i = 0; i < MAX_SCRAPES; i++) {
		ps->sc[i].fd = -1;
		ps->sc[i].ps = ps;
	}
	ps->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!ps->loop) {
		snprintf(err, errlen, "prometheus: cannot create event loop");
		free(ps);
		return NULL;
	}
	ev_io_init(&ps->lio, on_accept, lfd, EV_READ);
	ps->lio.data = ps;
	ev_io_start(ps->loop, &ps->lio);
	ev_timer_init(&ps->accept_pause, on_accept_resume, 1.0, 0.);
	ps->accept_pause.data = ps;
	ev_async_init(&ps->stop_w, on_stop);
	ev_async_start(ps->loop, &ps->stop_w);
	int rc = pthread_create(&ps->th, NULL, serve, ps);
	if (rc != 0) {
		snprintf(err, errlen, "prometheus: cannot start its thread: %s", strerror(rc));
		ev_loop_destroy(ps->loop);
		free(ps);
		return NULL;
	}
	return ps;
}

void promserve_stop(struct promserve *ps)
{
	if (!ps)
		return;
	ev_async_send(ps->loop, &ps->stop_w);
	pthread_join(ps->th, NULL);
	ev_loop_destroy(ps->loop);
	close(ps->lfd);
	free(ps);
}
