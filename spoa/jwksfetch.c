/* jwksfetch.c: see jwksfetch.h. */
#include "jwksfetch.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define FETCH_MAX (1024 * 1024)

struct jwks_fetcher {
	char host[256], port[8], path[1024], ca_file[512];
	unsigned refresh_s, min_refetch_s;
	jwks_fetched_fn cb;
	void *cb_arg;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, wanted;
	char *latest;            /* the last good document; guarded by mu */
	size_t latest_len;
	time_t last_fetch;
};

static int parse_url(struct jwks_fetcher *f, const char *url, char *err, size_t errlen)
{
	if (strncmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "jwt.jwks_url: only https:// URLs (keys must not travel in clear)");
		return -1;
	}
	const char *h = url + 8, *slash = strchr(h, '/');
	const char *hend = slash ? slash : h + strlen(h);
	const char *colon = memchr(h, ':', (size_t)(hend - h));
	size_t hl = (size_t)((colon ? colon : hend) - h);
	if (hl == 0 || hl >= sizeof(f->host)) {
		snprintf(err, errlen, "jwt.jwks_url: no host in '%s'", url);
		return -1;
	}
	memcpy(f->host, h, hl);
	f->host[hl] = '\0';
	snprintf(f->port, sizeof(f->port), "%.*s", colon ? (int)(hend - colon - 1) : 3, colon ? colon + 1 : "443");
	snprintf(f->path, sizeof(f->path), "%s", slash ? slash : "/");
	return 0;
}

/* The body of an HTTP/1.1 response (chunked or not) in place; -1 unless 200. */
static long http_body(char *buf, size_t len)
{
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 9, "200", 3) != 0)
		return -1;
	char *hend = memmem(buf, len, "\r\n\r\n", 4);
	if (!hend)
		return -1;
	*hend = '\0';
	bool chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
	char *body = hend + 4;
	size_t blen = len - (size_t)(body - buf);
	if (!chunked) {
		memmove(buf, body, blen);
		return (long)blen;
	}
	size_t o = 0;
	char *p = body, *end = body + blen;
	for (;;) {
		char *e;
		unsigned long n = strtoul(p, &e, 16);
		char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!crlf || e == p)
			return -1;
		p = crlf + 2;
		if (n == 0)
			break;
		if (n > (size_t)(end - p))
			return -1;
		memmove(buf + o, p, n);
		o += n;
		p += n + 2;
		if (p > end)
			return -1;
	}
	return (long)o;
}

/* One blocking GET with timeouts; the fetcher thread is the only caller. */
static char *fetch(struct jwks_fetcher *f, size_t *len, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1, rc = getaddrinfo(f->host, f->port, &hints, &ai);
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char *buf = NULL;
	if (rc) {
		snprintf(err, errlen, "%.64s: %s", f->host, gai_strerror(rc));
		goto out;
	}
	struct timeval tv = { 10, 0 };
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %.64s:%s", f->host, f->port);
		goto out;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    (f->ca_file[0] ? SSL_CTX_load_verify_locations(ctx, f->ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
		snprintf(err, errlen, "TLS setup failed (CA file?)");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, f->host) != 1 || SSL_set1_host(ssl, f->host) != 1 ||
	    SSL_connect(ssl) != 1) {
		snprintf(err, errlen, "TLS handshake with %.64s failed (certificate not trusted or wrong name)", f->host);
		goto out;
	}
	char req[1400];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nConnection: close\r\n"
	                 "User-Agent: archestra-spoa\r\n\r\n", f->path, f->host);
	if (SSL_write(ssl, req, n) != n) {
		snprintf(err, errlen, "cannot send the request to %.64s", f->host);
		goto out;
	}
	buf = malloc(FETCH_MAX + 1);
	size_t got = 0;
	while (buf && got < FETCH_MAX) {
		int r = SSL_read(ssl, buf + got, (int)(FETCH_MAX - got));
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	long bl = buf ? http_body(buf, got) : -1;
	if (bl < 0 || got >= FETCH_MAX) {
		snprintf(err, errlen, "%.64s%.96s: not a 200 response with a JWKS (or over 1 MB)", f->host, f->path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[bl] = '\0';
	*len = (size_t)bl;
out:
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	if (ai)
		freeaddrinfo(ai);
	ERR_clear_error();
	return buf;
}

/* Fetches once; on success keeps the document and tells the owner. */
static void fetch_once(struct jwks_fetcher *f, const char *why)
{
	char err[256] = "";
	size_t len = 0;
	char *doc = fetch(f, &len, err, sizeof(err));
	pthread_mutex_lock(&f->mu);
	f->last_fetch = time(NULL);
	if (doc) {
		free(f->latest);
		f->latest = doc;
		f->latest_len = len;
	}
	pthread_mutex_unlock(&f->mu);
	if (doc) {
		LOG(LL_INFO, "jwks_fetch", "trigger=%s result=ok bytes=%zu", why, len);
		f->cb(f->cb_arg);
	} else {
		LOG(LL_ERROR, "jwks_fetch", "trigger=%s result=failed error=\"%s\" (the previous keys stay in force)", why, err);
	}
}

static void *fetch_main(void *arg)
{
	struct jwks_fetcher *f = arg;
	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += f->refresh_s;
		while (!f->stop && !f->wanted)
			if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT)
				break;
		if (f->stop)
			break;
		bool asked = f->wanted;
		f->wanted = false;
		/* An unknown kid asks for a refetch, but no more often than min_refetch_s. */
		if (asked && time(NULL) - f->last_fetch < (time_t)f->min_refetch_s)
			continue;
		pthread_mutex_unlock(&f->mu);
		fetch_once(f, asked ? "unknown_kid" : "refresh");
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct jwks_fetcher *jwks_fetcher_start(const char *url, const char *ca_file, unsigned refresh_s, unsigned min_refetch_s,
                                        jwks_fetched_fn cb, void *arg, char *err, size_t errlen)
{
	struct jwks_fetcher *f = calloc(1, sizeof(*f));
	if (!f || parse_url(f, url, err, errlen) < 0) {
		free(f);
		return NULL;
	}
	snprintf(f->ca_file, sizeof(f->ca_file), "%s", ca_file ? ca_file : "");
	f->refresh_s = refresh_s;
	f->min_refetch_s = min_refetch_s;
	f->cb = cb;
	f->cb_arg = arg;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	/* The first fetch happens now, so the agent starts with keys when it can. */
	char e[256] = "";
	size_t len = 0;
	f->latest = fetch(f, &len, e, sizeof(e));
	f->latest_len = len;
	f->last_fetch = time(NULL);
	if (!f->latest)
		LOG(LL_ERROR, "jwks_fetch", "trigger=start result=failed error=\"%s\" (JWTs are refused until a fetch works)", e);
	if (pthread_create(&f->th, NULL, fetch_main, f) != 0) {
		snprintf(err, errlen, "cannot start the JWKS fetcher thread");
		free(f->latest);
		free(f);
		return NULL;
	}
	return f;
}

void jwks_fetcher_want(struct jwks_fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->wanted = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

char *jwks_fetcher_latest(struct jwks_fetcher *f, size_t *len)
{
	char *copy = NULL;
	pthread_mutex_lock(&f->mu);
	if (f->latest && (copy = malloc(f->latest_len + 1))) {
		memcpy(copy, f->latest, f->latest_len + 1);
		*len = f->latest_len;
	}
	pthread_mutex_unlock(&f->mu);
	return copy;
}

void jwks_fetcher_stop(struct jwks_fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
	free(f->latest);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}
