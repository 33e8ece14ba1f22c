/* spop-bench.c: SPOP 2.0 load generator for archestra-spoa.
 *
 * Plays HAProxy's side of SPOP: every connection sends HAPROXY-HELLO, reads
 * AGENT-HELLO, then keeps PIPELINE NOTIFY frames (one "archestra-req" message
 * shaped like a real OpenAI chat-completions request) in flight, sending a new
 * frame as each ACK comes back. ACKs are validated (type, FIN, ids of an
 * in-flight frame, well-formed action list) and their latency goes into a
 * log-linear histogram. One summary line of key=value pairs goes to stdout.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE spop-bench.c -lev -lm
 *
 * Wire notes (SPOE.txt section 3 and HAProxy's flt_spoe.c encoder):
 *   - KV names, message names and action variable names are <len varint><bytes>
 *     with no type byte; values are typed data.
 *   - Stream-ids and frame-ids are kept in [2288, 264432), the range whose
 *     "peers" varint is exactly 3 bytes, so the NOTIFY template never changes
 *     length: per frame only the ids and two hex fields of the unique-id are
 *     patched.
 *
 * Single-threaded, one libev loop, non-blocking sockets, no allocation after
 * the connections are set up.
 */
#include <ev.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Protocol constants                                                         */

enum {
	FRM_HAPROXY_HELLO = 1,
	FRM_HAPROXY_DISCONNECT = 2,
	FRM_NOTIFY = 3,
	FRM_AGENT_HELLO = 101,
	FRM_AGENT_DISCONNECT = 102,
	FRM_ACK = 103,
};
#define FL_FIN   0x00000001u
#define FL_ABORT 0x00000002u

enum {
	T_NULL = 0, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64,
	T_IPV4, T_IPV6, T_STRING, T_BINARY,
};
#define T_FL_TRUE 0x10

#define ID_BASE 2288u        /* smallest value whose varint takes 3 bytes */
#define ID_SPAN 262144u      /* [2288, 264432): all exactly 3 bytes */
#define OFF_SID 9            /* 4 (length) + 1 (type) + 4 (flags) */
#define OFF_FID 12
#define DEFAULT_MFS 16380u   /* what HAProxy offers with the default bufsize */
#define READ_CHUNK 65536u
#define IDLE_IN_CAP 1024u    /* idle connections only ever read HELLO/DISCONNECT */
#define MAX_HS_INFLIGHT 256u /* concurrent connects+HELLOs */
#define HS_TIMEOUT_NS 4500000000ull /* per connection, connect + HELLO */
#define HS_PHASE_MAX_S 60.0  /* whole handshake phase, however many idle conns */
#define DRAIN_TIMEOUT_S 2.0
#define MAX_ERR_LINES 100u

/* ------------------------------------------------------------------------- */
/* Options and global state                                                   */

static struct {
	unsigned conns, pipeline, idle, body;
	double duration, warmup;
	const char *message;
	long pid;
	const char *target;
	const char *auth;      /* the authorization header's value */
} opt = { 8, 32, 0, 2048, 5.0, 1.0, "archestra-req", 0, NULL,
          "Bearer sk-test-4f9c2a7be1d84c0fa3b6e5d7c9a1f2e3b4c5d6e7f8a9b0c1" };

enum phase { PH_HANDSHAKE, PH_WARMUP, PH_MEASURE, PH_DRAIN };
enum cstate { C_PENDING, C_CONNECTING, C_HELLO, C_RUN, C_DRAIN, C_CLOSED };

struct slot {
	uint64_t t_ns;   /* when the frame was queued; 0 = free */
	uint32_t sid;
};

struct conn {
	int fd;
	unsigned idx;
	enum cstate st;
	bool idle;
	bool started;
	ev_io rio, wio;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	uint8_t *in;
	size_t in_len, in_cap;
	uint32_t mfs;        /* largest frame accepted from / sent to the agent */
	uint64_t deadline;   /* handshake deadline (ns) */
	struct slot *slots;  /* indexed by frame-id - ID_BASE */
	uint32_t seq;        /* stream-id / request counter */
};

static struct ev_loop *loop;
static struct conn *conns;
static unsigned nconns;             /* active + idle */
static enum phase phase = PH_HANDSHAKE;
static ev_timer hs_timer, phase_timer;
static ev_signal sig_int, sig_term;

static struct sockaddr_storage addr;
static socklen_t addrlen;
static bool addr_is_unix;

static unsigned next_pending;       /* next conns[] index not yet started */
static unsigned hs_inflight;        /* started, handshake not finished */
static unsigned hs_remaining;       /* handshake not finished (incl. not started) */
static unsigned alive;              /* not closed */
static unsigned active_alive;       /* non-idle, not closed */
static unsigned active_running;     /* non-idle, HELLO done, not closed */
static uint64_t hs_phase_start;

static uint8_t *tpl;                /* NOTIFY template, with length prefix */
static size_t tpl_len;
static size_t tpl_off_port, tpl_off_rt;
static uint8_t hello_frame[256];
static size_t hello_len;
static uint32_t offer_mfs;
static uint8_t disc_frame[128];
static size_t disc_len;

/* stats (measurement window only, except errors) */
static uint64_t st_acks, st_acks_actions, st_errors, st_sent;
static uint64_t t_start, t_end;
static bool measured;
static unsigned err_lines;
static long rss_kb = -1, hwm_kb = -1;
static bool rss_read;

/* ------------------------------------------------------------------------- */
/* Helpers                                                                    */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t put_vint(uint8_t *d, uint64_t v)
{
	size_t n = 0;
	if (v < 240) {
		d[0] = (uint8_t)v;
		return 1;
	}
	d[n++] = (uint8_t)v | 240;
	v = (v - 240) >> 4;
	while (v >= 128) {
		d[n++] = (uint8_t)v | 128;
		v = (v - 128) >> 7;
	}
	d[n++] = (uint8_t)v;
	return n;
}

/* Exactly 3 bytes for v in [ID_BASE, ID_BASE + ID_SPAN). */
static inline void put_vint3(uint8_t *d, uint32_t v)
{
	uint32_t a = (v - 240) >> 4;
	d[0] = (uint8_t)v | 240;
	d[1] = (uint8_t)a | 128;
	d[2] = (uint8_t)((a - 128) >> 7);
}

static inline int get_vint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return -1;
	uint64_t v = *p++;
	if (v >= 240) {
		unsigned shift = 4;
		for (;;) {
			if (p >= end || shift > 60)
				return -1;
			uint64_t b = *p++;
			v += b << shift;
			if (b < 128)
				break;
			shift += 7;
		}
	}
	*pp = p;
	*out = v;
	return 0;
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void hex4(uint8_t *d, unsigned v)
{
	static const char hx[] = "0123456789ABCDEF";
	d[0] = (uint8_t)hx[(v >> 12) & 15];
	d[1] = (uint8_t)hx[(v >> 8) & 15];
	d[2] = (uint8_t)hx[(v >> 4) & 15];
	d[3] = (uint8_t)hx[v & 15];
}

/* A typed value, decoded enough for HELLO/DISCONNECT. */
struct tval {
	unsigned type;
	uint64_t u;
	const uint8_t *s;
	size_t len;
};

static int get_bytes(const uint8_t **pp, const uint8_t *end, const uint8_t **s, size_t *len)
{
	uint64_t n;
	if (get_vint(pp, end, &n) < 0 || n > (uint64_t)(end - *pp))
		return -1;
	*s = *pp;
	*len = (size_t)n;
	*pp += n;
	return 0;
}

static int get_data(const uint8_t **pp, const uint8_t *end, struct tval *v)
{
	if (*pp >= end)
		return -1;
	uint8_t tb = *(*pp)++;
	v->type = tb & 0x0f;
	v->u = 0;
	v->s = NULL;
	v->len = 0;
	switch (v->type) {
	case T_NULL:
		return 0;
	case T_BOOL:
		v->u = (tb & T_FL_TRUE) != 0;
		return 0;
	case T_INT32: case T_UINT32: case T_INT64: case T_UINT64:
		return get_vint(pp, end, &v->u);
	case T_IPV4: case T_IPV6: {
		size_t n = v->type == T_IPV4 ? 4 : 16;
		if ((size_t)(end - *pp) < n)
			return -1;
		v->s = *pp;
		v->len = n;
		*pp += n;
		return 0;
	}
	case T_STRING: case T_BINARY:
		return get_bytes(pp, end, &v->s, &v->len);
	}
	return -1;
}

static bool name_is(const uint8_t *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

/* Printable copy of a wire string for error lines. */
static const char *clean(const uint8_t *s, size_t len, char *buf, size_t room)
{
	size_t j = 0;
	for (size_t i = 0; i < len && j + 1 < room; i++)
		buf[j++] = (s[i] >= 32 && s[i] < 127) ? (char)s[i] : '?';
	buf[j] = 0;
	return buf;
}

/* ------------------------------------------------------------------------- */
/* Latency histogram: log-linear, 64 linear sub-buckets per power of two above
 * 128 ns (bucket width <= 1/64 of its lower bound, midpoint error < 0.8%).
 * Values are ns, clamped to 2^41 ns (~37 min). Fixed 18 KB.                  */

#define H_MAXSHIFT 34
#define H_N (64 * H_MAXSHIFT + 128)

static struct {
	uint64_t b[H_N];
	uint64_t count, sum, max, min;
} hist;

static inline void hist_add(uint64_t v)
{
	unsigned idx;
	if (v < 128) {
		idx = (unsigned)v;
	} else {
		unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 6;
		if (shift > H_MAXSHIFT) {
			shift = H_MAXSHIFT;
			v = ((uint64_t)128 << shift) - 1;
		}
		idx = 64 * shift + (unsigned)(v >> shift);
	}
	hist.b[idx]++;
	hist.count++;
	hist.sum += v;
	if (v > hist.max)
		hist.max = v;
	if (v < hist.min)
		hist.min = v;
}

static void hist_reset(void)
{
	memset(&hist, 0, sizeof(hist));
	hist.min = UINT64_MAX;
}

static double hist_mid(unsigned idx)
{
	unsigned shift = idx < 128 ? 0 : (idx >> 6) - 1;
	uint64_t lo = (uint64_t)(idx - 64 * shift) << shift;
	return (double)lo + (double)(((uint64_t)1 << shift) - 1) / 2.0;
}

static double hist_quantile(double q)
{
	if (!hist.count)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)hist.count);
	if (rank < 1)
		rank = 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < H_N; i++) {
		acc += hist.b[i];
		if (acc >= rank) {
			double v = hist_mid(i);
			if (v > (double)hist.max)
				v = (double)hist.max;
			if (v < (double)hist.min)
				v = (double)hist.min;
			return v;
		}
	}
	return (double)hist.max;
}

/* ------------------------------------------------------------------------- */
/* Frame construction (once, at start-up)                                     */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
};

static void wb_need(struct wbuf *w, size_t n)
{
	if (w->len + n <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + n)
		cap *= 2;
	uint8_t *p = realloc(w->p, cap);
	if (!p) {
		fprintf(stderr, "spop-bench: out of memory\n");
		exit(1);
	}
	w->p = p;
	w->cap = cap;
}

static void wb_raw(struct wbuf *w, const void *s, size_t n)
{
	wb_need(w, n);
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void wb_u8(struct wbuf *w, uint8_t v)
{
	wb_raw(w, &v, 1);
}

static void wb_vint(struct wbuf *w, uint64_t v)
{
	wb_need(w, 10);
	w->len += put_vint(w->p + w->len, v);
}

/* <len varint><bytes>: names, and the body of STRING/BINARY values. */
static void wb_bytes(struct wbuf *w, const void *s, size_t n)
{
	wb_vint(w, n);
	wb_raw(w, s, n);
}

static void wb_name(struct wbuf *w, const char *s)
{
	wb_bytes(w, s, strlen(s));
}

static void wb_kv_str(struct wbuf *w, const char *name, const void *s, size_t n)
{
	wb_name(w, name);
	wb_u8(w, T_STRING);
	wb_bytes(w, s, n);
}

static void wb_kv_u32(struct wbuf *w, const char *name, uint32_t v)
{
	wb_name(w, name);
	wb_u8(w, T_UINT32);
	wb_vint(w, v);
}

static void wb_frame_begin(struct wbuf *w, uint8_t type, uint32_t flags, uint32_t sid, uint32_t fid)
{
	uint8_t h[5];
	wb_raw(w, "\0\0\0\0", 4);
	h[0] = type;
	wr32(h + 1, flags);
	wb_raw(w, h, 5);
	wb_vint(w, sid);
	wb_vint(w, fid);
}

static void wb_frame_end(struct wbuf *w, size_t start)
{
	wr32(w->p + start, (uint32_t)(w->len - start - 4));
}

/* A realistic OpenAI chat-completions body of exactly n bytes. */
static char *make_body(size_t n)
{
	static const char pre[] =
		"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":"
		"\"You are a careful assistant for an engineering team. Answer concisely, "
		"cite the documents you rely on, and never reveal credentials or internal "
		"hostnames.\"},{\"role\":\"user\",\"content\":\"";
	static const char post[] =
		"\"}],\"temperature\":0.7,\"max_tokens\":1024,\"top_p\":1,\"stream\":false,"
		"\"user\":\"archestra-bench\"}";
	static const char pre_min[] = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"";
	static const char post_min[] = "\"}]}";
	static const char text[] =
		"Please review the incident summary below and draft a short status update "
		"for customers. On Tuesday the payments API returned intermittent errors "
		"for about forty minutes after a configuration change was rolled out to one "
		"region. Automatic retries hid most of the failures, but a share of checkout "
		"requests timed out and some customers were charged twice before the "
		"duplicate charges were reversed. The change has been rolled back, a canary "
		"stage has been added to the deployment pipeline, and alerting now fires on "
		"the error rate of each region separately. Keep the tone calm and factual, "
		"avoid internal jargon, and end with the time of the next update. ";
	char *b = malloc(n + 1);
	if (!b) {
		fprintf(stderr, "spop-bench: out of memory\n");
		exit(1);
	}
	const char *p1 = pre, *p2 = post;
	size_t l1 = sizeof(pre) - 1, l2 = sizeof(post) - 1;
	if (n < l1 + l2) {
		p1 = pre_min;
		p2 = post_min;
		l1 = sizeof(pre_min) - 1;
		l2 = sizeof(post_min) - 1;
	}
	if (n >= l1 + l2) {
		size_t pad = n - l1 - l2, o = 0;
		memcpy(b, p1, l1);
		while (o < pad) {
			size_t k = sizeof(text) - 1;
			if (k > pad - o)
				k = pad - o;
			memcpy(b + l1 + o, text, k);
			o += k;
		}
		memcpy(b + l1 + pad, p2, l2);
	} else {
		/* too small for any message: "{}" and JSON whitespace */
		memset(b, ' ', n);
		if (n >= 2) {
			b[0] = '{';
			b[1] = '}';
		}
	}
	b[n] = 0;
	return b;
}

/* HAProxy req.hdrs_bin: <name-len><name><value-len><value>... then 0x00 0x00. */
static void make_hdrs(struct wbuf *h, size_t body_len)
{
	char clen[24];
	snprintf(clen, sizeof(clen), "%zu", body_len);
	const char *kv[][2] = {
		{ "host", "archestra.internal:9000" },
		{ "content-type", "application/json" },
		{ "authorization", opt.auth },
		{ "user-agent", "OpenAI/Python 1.54.3" },
		{ "accept", "application/json" },
		{ "accept-encoding", "gzip, deflate" },
		{ "content-length", clen },
		{ "x-archestra-agent-id", "3b9f6c1e-8d2a-4f7b-9c0e-5a1d2f3e4b6c" },
		{ "x-archestra-user-id", "a7c4e2f1-0b3d-4e5f-8a9b-1c2d3e4f5a6b" },
		{ "x-archestra-session-id", "sess_01J9Z3K4M5N6P7Q8R9S0T1V2W3" },
		{ "x-stainless-lang", "python" },
		{ "x-stainless-package-version", "1.54.3" },
		{ "x-stainless-os", "Linux" },
		{ "x-stainless-arch", "x64" },
		{ "x-stainless-runtime", "CPython" },
		{ "x-stainless-runtime-version", "3.12.7" },
		{ "x-stainless-retry-count", "0" },
	};
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		wb_bytes(h, kv[i][0], strlen(kv[i][0]));
		wb_bytes(h, kv[i][1], strlen(kv[i][1]));
	}
	wb_u8(h, 0);
	wb_u8(h, 0);
}

static void build_frames(void)
{
	struct wbuf w = { 0 }, h = { 0 };
	char *body = make_body(opt.body);
	make_hdrs(&h, opt.body);

	char uid[64];
	/* %ci:%cp_%fi:%fp_%Ts_%rt:%pid; cp and rt are patched per frame */
	snprintf(uid, sizeof(uid), "7F000001:0000_7F000001:01BB_%08X_0000:%04X",
	         (unsigned)time(NULL), (unsigned)getpid() & 0xffff);
	size_t uid_len = strlen(uid);

	wb_frame_begin(&w, FRM_NOTIFY, FL_FIN, ID_BASE, ID_BASE);
	if (w.len != OFF_FID + 3) {
		fprintf(stderr, "spop-bench: internal error: header layout\n");
		exit(1);
	}
	wb_name(&w, opt.message);
	wb_u8(&w, 10);
	wb_name(&w, "id");
	wb_u8(&w, T_STRING);
	wb_vint(&w, uid_len);
	size_t uid_off = w.len;
	wb_raw(&w, uid, uid_len);
	tpl_off_port = uid_off + 9;
	tpl_off_rt = uid_off + 37;
	wb_kv_str(&w, "method", "POST", 4);
	wb_kv_str(&w, "path", "/v1/openai/chat/completions", 27);
	wb_name(&w, "query");
	wb_u8(&w, T_NULL);
	wb_name(&w, "hdrs");
	wb_u8(&w, T_BINARY);
	wb_bytes(&w, h.p, h.len);
	wb_name(&w, "body");
	wb_u8(&w, T_BINARY);
	wb_bytes(&w, body, opt.body);
	wb_name(&w, "body_len");
	wb_u8(&w, T_INT32);
	wb_vint(&w, opt.body);
	wb_name(&w, "body_size");
	wb_u8(&w, T_INT32);
	wb_vint(&w, opt.body);
	wb_name(&w, "src");
	wb_u8(&w, T_IPV4);
	wb_raw(&w, "\x7f\x00\x00\x01", 4);
	wb_name(&w, "tls");
	wb_u8(&w, T_BOOL | T_FL_TRUE);
	wb_frame_end(&w, 0);
	tpl = w.p;
	tpl_len = w.len;
	free(body);
	free(h.p);

	offer_mfs = DEFAULT_MFS;
	if (tpl_len - 4 > offer_mfs) {
		offer_mfs = (uint32_t)(tpl_len - 4);
		fprintf(stderr, "spop-bench: note: NOTIFY frame is %zu bytes, offering max-frame-size %u "
		        "instead of %u\n", tpl_len - 4, offer_mfs, DEFAULT_MFS);
	}

	struct wbuf x = { 0 };
	wb_frame_begin(&x, FRM_HAPROXY_HELLO, FL_FIN, 0, 0);
	wb_kv_str(&x, "supported-versions", "2.0", 3);
	wb_kv_u32(&x, "max-frame-size", offer_mfs);
	wb_kv_str(&x, "capabilities", "pipelining,async", 16);
	wb_kv_str(&x, "engine-id", "5E1B2C3D-4F5A-6B7C-8D9E-0F1A2B3C4D5E", 36);
	wb_frame_end(&x, 0);
	memcpy(hello_frame, x.p, x.len);
	hello_len = x.len;
	x.len = 0;
	wb_frame_begin(&x, FRM_HAPROXY_DISCONNECT, FL_FIN, 0, 0);
	wb_kv_u32(&x, "status-code", 0);
	wb_kv_str(&x, "message", "benchmark finished", 18);
	wb_frame_end(&x, 0);
	memcpy(disc_frame, x.p, x.len);
	disc_len = x.len;
	free(x.p);
}

/* ------------------------------------------------------------------------- */
/* Connection handling                                                        */

static void on_read(struct ev_loop *l, ev_io *w, int revents);
static void on_write(struct ev_loop *l, ev_io *w, int revents);
static void begin_drain(void);
static void measure_end(void);
static void check_handshake(void);

static void err_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err_line(const char *fmt, ...)
{
	if (err_lines >= MAX_ERR_LINES) {
		if (err_lines == MAX_ERR_LINES)
			fprintf(stderr, "spop-bench: further errors not printed\n");
		err_lines = MAX_ERR_LINES + 1;
		return;
	}
	err_lines++;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "spop-bench: %s\n", buf);
}

static const char *cname(const struct conn *c)
{
	return c->idle ? "idle" : "active";
}

static void conn_close(struct conn *c)
{
	if (c->st == C_CLOSED)
		return;
	enum cstate was = c->st;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->st = C_CLOSED;
	alive--;
	if (!c->idle) {
		active_alive--;
		if (was == C_RUN || was == C_DRAIN)
			active_running--;
	}
	if (was == C_PENDING || was == C_CONNECTING || was == C_HELLO) {
		hs_remaining--;
		if (c->started)
			hs_inflight--;
	}

	if (phase == PH_DRAIN) {
		if (alive == 0)
			ev_break(loop, EVBREAK_ALL);
	} else if (phase == PH_HANDSHAKE) {
		check_handshake();
	} else if (!c->idle && active_running == 0) {
		err_line("all active connections are closed, ending the run early");
		if (phase == PH_MEASURE)
			measure_end();
		else
			begin_drain();
	}
}

static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	st_errors++;
	err_line("conn %u (%s): %s", c->idx, cname(c), buf);
	conn_close(c);
}

/* Count a protocol error on a connection that stays open. */
static void conn_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(struct conn *c, const char *fmt, ...)
{
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	st_errors++;
	err_line("conn %u (%s): %s", c->idx, cname(c), buf);
}

static inline uint8_t *out_reserve(struct conn *c, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + n > c->out_cap) { /* cannot happen: output is bounded */
			size_t cap = (c->out_len + n) * 2;
			uint8_t *p = realloc(c->out, cap);
			if (!p) {
				fprintf(stderr, "spop-bench: out of memory\n");
				exit(1);
			}
			c->out = p;
			c->out_cap = cap;
		}
	}
	uint8_t *p = c->out + c->out_len;
	c->out_len += n;
	return p;
}

static int parse_frames(struct conn *c, uint64_t now);

/* After a failed write (the agent closed, typically right after an
 * AGENT-DISCONNECT): parse what is still readable so the reason is reported. */
static void salvage_read(struct conn *c)
{
	for (int i = 0; i < 8 && c->st != C_CLOSED; i++) {
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n <= 0)
			return;
		c->in_len += (size_t)n;
		if (parse_frames(c, now_ns()) < 0)
			return;
	}
}

/* One write() of everything queued. Returns -1 when the connection failed. */
static int flush_out(struct conn *c)
{
	if (c->out_off == c->out_len)
		return 0;
	for (;;) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n >= 0) {
			c->out_off += (size_t)n;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		int err = errno;
		salvage_read(c);
		if (c->st != C_CLOSED)
			conn_fail(c, "write: %s", strerror(err));
		return -1;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (ev_is_active(&c->wio))
			ev_io_stop(loop, &c->wio);
	} else if (!ev_is_active(&c->wio)) {
		ev_io_start(loop, &c->wio);
	}
	return 0;
}

static inline void queue_notify(struct conn *c, uint32_t slot, uint64_t now)
{
	uint8_t *d = out_reserve(c, tpl_len);
	memcpy(d, tpl, tpl_len);
	uint32_t seq = c->seq++;
	uint32_t sid = ID_BASE + (seq & (ID_SPAN - 1));
	put_vint3(d + OFF_SID, sid);
	put_vint3(d + OFF_FID, ID_BASE + slot);
	hex4(d + tpl_off_port, 0xC000 + (c->idx & 0x3fff));
	hex4(d + tpl_off_rt, seq & 0xffff);
	c->slots[slot].t_ns = now;
	c->slots[slot].sid = sid;
	st_sent++;
}

static void start_conn(struct conn *c);

static void start_pending(void)
{
	while (next_pending < nconns && hs_inflight < MAX_HS_INFLIGHT && phase == PH_HANDSHAKE) {
		struct conn *c = &conns[next_pending++];
		c->started = true;
		hs_inflight++;
		c->deadline = now_ns() + HS_TIMEOUT_NS;
		start_conn(c);
	}
}

static void start_conn(struct conn *c)
{
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_fail(c, "socket: %s", strerror(errno));
		return;
	}
	if (!addr_is_unix) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->fd = fd;
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	if (connect(fd, (struct sockaddr *)&addr, addrlen) == 0 || errno == EINPROGRESS) {
		/* completion (or failure) is reported by writability */
		c->st = C_CONNECTING;
		ev_io_start(loop, &c->wio);
		return;
	}
	if (errno == EAGAIN && addr_is_unix) {
		/* listen backlog full: retried by the handshake timer */
		close(fd);
		c->fd = -1;
		c->st = C_PENDING;
		return;
	}
	conn_fail(c, "connect to %s: %s", opt.target, strerror(errno));
}

static void hello_done(struct conn *c)
{
	c->st = C_RUN;
	hs_remaining--;
	hs_inflight--;
	if (!c->idle) {
		active_running++;
		uint64_t now = now_ns();
		for (uint32_t s = 0; s < opt.pipeline; s++)
			queue_notify(c, s, now);
	}
	if (phase == PH_HANDSHAKE) {
		start_pending();
		check_handshake();
	}
}

static void handle_agent_hello(struct conn *c, uint32_t flags, uint64_t sid, uint64_t fid,
                               const uint8_t *p, const uint8_t *end)
{
	const uint8_t *vs = NULL, *caps = NULL;
	size_t vs_len = 0, caps_len = 0;
	uint64_t mfs = 0;
	bool have_mfs = false;
	char tmp[128];

	if (!(flags & FL_FIN) || sid || fid) {
		conn_fail(c, "AGENT-HELLO with flags=%#x stream-id=%" PRIu64 " frame-id=%" PRIu64
		          " (want FIN, 0, 0)", flags, sid, fid);
		return;
	}
	while (p < end) {
		const uint8_t *name;
		size_t nlen;
		struct tval v;
		if (get_bytes(&p, end, &name, &nlen) < 0 || get_data(&p, end, &v) < 0) {
			conn_fail(c, "malformed AGENT-HELLO KV list");
			return;
		}
		if (name_is(name, nlen, "version") && v.type == T_STRING) {
			vs = v.s;
			vs_len = v.len;
		} else if (name_is(name, nlen, "max-frame-size") && v.type >= T_INT32 && v.type <= T_UINT64) {
			mfs = v.u;
			have_mfs = true;
		} else if (name_is(name, nlen, "capabilities") && v.type == T_STRING) {
			caps = v.s;
			caps_len = v.len;
		}
	}
	if (!vs || !have_mfs || !caps) {
		conn_fail(c, "AGENT-HELLO lacks %s", !vs ? "version" : !have_mfs ? "max-frame-size" : "capabilities");
		return;
	}
	size_t i = 0;
	while (i < vs_len && vs[i] == ' ')
		i++;
	if (vs_len - i < 2 || vs[i] != '2' || vs[i + 1] != '.') {
		conn_fail(c, "AGENT-HELLO version \"%s\" is not 2.x", clean(vs, vs_len, tmp, sizeof(tmp)));
		return;
	}
	if (mfs < 256 || mfs > offer_mfs) {
		conn_fail(c, "AGENT-HELLO max-frame-size %" PRIu64 " outside [256, %u]", mfs, offer_mfs);
		return;
	}
	c->mfs = (uint32_t)mfs;
	if (!c->idle && tpl_len - 4 > c->mfs) {
		conn_fail(c, "NOTIFY frame (%zu bytes) exceeds the negotiated max-frame-size %u; use a smaller -b",
		          tpl_len - 4, c->mfs);
		return;
	}
	if (opt.pipeline > 1 && !c->idle) {
		bool pipelining = false;
		size_t k = 0;
		while (k < caps_len) {
			size_t e = k;
			while (e < caps_len && caps[e] != ',')
				e++;
			size_t a = k, b = e;
			while (a < b && isspace(caps[a]))
				a++;
			while (b > a && isspace(caps[b - 1]))
				b--;
			if (name_is(caps + a, b - a, "pipelining"))
				pipelining = true;
			k = e + 1;
		}
		if (!pipelining)
			conn_error(c, "agent did not accept \"pipelining\" (capabilities \"%s\"), pipelining anyway",
			           clean(caps, caps_len, tmp, sizeof(tmp)));
	}
	hello_done(c);
}

/* AGENT-DISCONNECT: fine only as the reply to our HAPROXY-DISCONNECT. */
static void handle_agent_disconnect(struct conn *c, const uint8_t *p, const uint8_t *end)
{
	uint64_t status = UINT64_MAX;
	const uint8_t *msg = NULL;
	size_t msg_len = 0;
	char tmp[200];
	bool ok = true;
	while (p < end) {
		const uint8_t *name;
		size_t nlen;
		struct tval v;
		if (get_bytes(&p, end, &name, &nlen) < 0 || get_data(&p, end, &v) < 0) {
			ok = false;
			break;
		}
		if (name_is(name, nlen, "status-code") && v.type >= T_INT32 && v.type <= T_UINT64)
			status = v.u;
		else if (name_is(name, nlen, "message") && v.type == T_STRING) {
			msg = v.s;
			msg_len = v.len;
		}
	}
	if (c->st == C_DRAIN && ok && status == 0) {
		conn_close(c);
		return;
	}
	if (status == UINT64_MAX)
		conn_fail(c, "AGENT-DISCONNECT%s without status-code, message=\"%s\"", ok ? "" : " (malformed)",
		          clean(msg, msg_len, tmp, sizeof(tmp)));
	else
		conn_fail(c, "AGENT-DISCONNECT%s status-code=%" PRIu64 " message=\"%s\"", ok ? "" : " (malformed)",
		          status, clean(msg, msg_len, tmp, sizeof(tmp)));
}

static inline int skip_data(const uint8_t **pp, const uint8_t *end)
{
	struct tval v;
	return get_data(pp, end, &v);
}

/* LIST-OF-ACTIONS well-formedness; returns the number of actions or -1. */
static inline int check_actions(const uint8_t *p, const uint8_t *end)
{
	int n = 0;
	while (p < end) {
		if (end - p < 2)
			return -1;
		uint8_t type = *p++, nargs = *p++;
		if (type == 1 || type == 2) { /* set-var, unset-var */
			const uint8_t *name;
			size_t nlen;
			if (nargs != (type == 1 ? 3 : 2) || p >= end || *p > 4)
				return -1;
			p++; /* scope */
			if (get_bytes(&p, end, &name, &nlen) < 0)
				return -1;
			if (type == 1 && skip_data(&p, end) < 0)
				return -1;
		} else {
			for (unsigned i = 0; i < nargs; i++)
				if (skip_data(&p, end) < 0)
					return -1;
		}
		n++;
	}
	return n;
}

static inline void handle_ack(struct conn *c, uint32_t flags, uint64_t sid, uint64_t fid,
                              const uint8_t *p, const uint8_t *end, uint64_t now)
{
	uint64_t slot = fid - ID_BASE;
	if (fid < ID_BASE || slot >= opt.pipeline || !c->slots[slot].t_ns || c->slots[slot].sid != sid) {
		conn_error(c, "ACK for no in-flight frame: stream-id=%" PRIu64 " frame-id=%" PRIu64, sid, fid);
		return;
	}
	if ((flags & (FL_FIN | FL_ABORT)) != FL_FIN)
		conn_error(c, "ACK stream-id=%" PRIu64 " frame-id=%" PRIu64 " flags=%#x (want FIN only)",
		           sid, fid, flags);
	int nact = check_actions(p, end);
	if (nact < 0)
		conn_error(c, "malformed ACK action list (stream-id=%" PRIu64 " frame-id=%" PRIu64 ", %zu bytes)",
		           sid, fid, (size_t)(end - p));
	uint64_t t0 = c->slots[slot].t_ns;
	c->slots[slot].t_ns = 0;
	if (phase == PH_MEASURE) {
		st_acks++;
		if (nact > 0)
			st_acks_actions++;
		hist_add(now > t0 ? now - t0 : 0);
	}
	if (c->st == C_RUN)
		queue_notify(c, (uint32_t)slot, now);
}

static const char *ftype_name(unsigned t)
{
	switch (t) {
	case 0: return "UNSET";
	case FRM_HAPROXY_HELLO: return "HAPROXY-HELLO";
	case FRM_HAPROXY_DISCONNECT: return "HAPROXY-DISCONNECT";
	case FRM_NOTIFY: return "NOTIFY";
	case FRM_AGENT_HELLO: return "AGENT-HELLO";
	case FRM_AGENT_DISCONNECT: return "AGENT-DISCONNECT";
	case FRM_ACK: return "ACK";
	}
	return "unknown";
}

/* Parses every complete frame in c->in. Returns -1 when the connection closed. */
static int parse_frames(struct conn *c, uint64_t now)
{
	size_t pos = 0;
	uint32_t limit = c->mfs;
	if (c->idle && limit > IDLE_IN_CAP - 4)
		limit = IDLE_IN_CAP - 4;
	while (c->in_len - pos >= 4) {
		const uint8_t *f = c->in + pos;
		uint32_t flen = rd32(f);
		if (flen > limit) {
			conn_fail(c, "received frame of %u bytes, larger than max-frame-size %u", flen, limit);
			return -1;
		}
		if (c->in_len - pos - 4 < flen)
			break;
		pos += 4 + (size_t)flen;
		f += 4;
		const uint8_t *end = f + flen, *p = f + 5;
		uint64_t sid, fid;
		if (flen < 7 || get_vint(&p, end, &sid) < 0 || get_vint(&p, end, &fid) < 0) {
			conn_fail(c, "received truncated frame (%u bytes)", flen);
			return -1;
		}
		uint8_t type = f[0];
		uint32_t flags = rd32(f + 1);
		if (type == FRM_ACK && c->st != C_HELLO) {
			handle_ack(c, flags, sid, fid, p, end, now);
		} else if (type == FRM_AGENT_DISCONNECT) {
			handle_agent_disconnect(c, p, end);
			return -1;
		} else if (type == FRM_AGENT_HELLO && c->st == C_HELLO) {
			handle_agent_hello(c, flags, sid, fid, p, end);
			if (c->st == C_CLOSED)
				return -1;
		} else {
			conn_error(c, "unexpected %s frame (type %u, %u bytes) %s", ftype_name(type), type, flen,
			           c->st == C_HELLO ? "instead of AGENT-HELLO" : "after HELLO");
			if (c->st == C_HELLO) {
				conn_close(c);
				return -1;
			}
		}
	}
	if (pos) {
		c->in_len -= pos;
		if (c->in_len)
			memmove(c->in, c->in + pos, c->in_len);
	}
	return 0;
}

static void on_read(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = w->data;
	(void)l;
	(void)revents;
	for (int iter = 0; iter < 4; iter++) {
		size_t room = c->in_cap - c->in_len;
		ssize_t n = read(c->fd, c->in + c->in_len, room);
		if (n == 0) {
			if (c->st == C_DRAIN)
				conn_fail(c, "connection closed without AGENT-DISCONNECT after HAPROXY-DISCONNECT");
			else
				conn_fail(c, "connection closed by the agent%s", c->st == C_HELLO ? " during HELLO" : "");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_fail(c, "read: %s", strerror(errno));
			return;
		}
		c->in_len += (size_t)n;
		if (parse_frames(c, now_ns()) < 0)
			return;
		if ((size_t)n < room)
			break;
	}
	if (c->out_len != c->out_off && !ev_is_active(&c->wio))
		flush_out(c);
}

static void on_write(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = w->data;
	(void)l;
	(void)revents;
	if (c->st == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			conn_fail(c, "connect to %s: %s", opt.target, strerror(err));
			return;
		}
		c->st = C_HELLO;
		memcpy(out_reserve(c, hello_len), hello_frame, hello_len);
		ev_io_start(loop, &c->rio);
	}
	flush_out(c);
}

/* ------------------------------------------------------------------------- */
/* Phases                                                                     */

static void read_rss(void)
{
	if (rss_read || opt.pid <= 0)
		return;
	rss_read = true;
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/status", opt.pid);
	FILE *f = fopen(path, "r");
	if (!f) {
		st_errors++;
		err_line("cannot read %s: %s", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			rss_kb = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "VmHWM:", 6))
			hwm_kb = strtol(line + 6, NULL, 10);
	}
	fclose(f);
	if (rss_kb < 0) {
		st_errors++;
		err_line("no VmRSS in %s", path);
	}
}

static void on_drain_timeout(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].st != C_CLOSED)
			conn_fail(&conns[i], "no AGENT-DISCONNECT within %.0f s of HAPROXY-DISCONNECT",
			          DRAIN_TIMEOUT_S);
	ev_break(loop, EVBREAK_ALL);
}

static void begin_drain(void)
{
	if (phase == PH_DRAIN)
		return;
	phase = PH_DRAIN;
	read_rss();
	ev_timer_stop(loop, &hs_timer);
	ev_timer_stop(loop, &phase_timer);
	ev_timer_init(&phase_timer, on_drain_timeout, DRAIN_TIMEOUT_S, 0);
	ev_timer_start(loop, &phase_timer);
	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		if (c->st == C_RUN) {
			c->st = C_DRAIN;
			memcpy(out_reserve(c, disc_len), disc_frame, disc_len);
			if (!ev_is_active(&c->wio))
				flush_out(c);
		} else if (c->st != C_DRAIN && c->st != C_CLOSED) {
			conn_close(c); /* never finished its handshake */
		}
	}
	if (alive == 0)
		ev_break(loop, EVBREAK_ALL);
}

static void measure_end(void)
{
	if (phase != PH_MEASURE)
		return;
	t_end = now_ns();
	measured = true;
	read_rss(); /* while every connection is still open */
	begin_drain();
}

static void on_measure_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	measure_end();
}

static void measure_begin(void)
{
	phase = PH_MEASURE;
	st_acks = st_acks_actions = 0;
	hist_reset();
	t_start = now_ns();
	ev_timer_stop(loop, &phase_timer);
	ev_timer_init(&phase_timer, on_measure_timer, opt.duration, 0);
	ev_timer_start(loop, &phase_timer);
}

static void on_warmup_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	if (phase == PH_WARMUP)
		measure_begin();
}

static void check_handshake(void)
{
	if (phase != PH_HANDSHAKE)
		return;
	if (active_alive == 0) {
		err_line("no active connection to %s could be established", opt.target);
		begin_drain();
		return;
	}
	if (hs_remaining > 0)
		return;
	ev_timer_stop(loop, &hs_timer);
	phase = PH_WARMUP;
	if (opt.warmup > 0) {
		ev_timer_init(&phase_timer, on_warmup_timer, opt.warmup, 0);
		ev_timer_start(loop, &phase_timer);
	} else {
		measure_begin();
	}
}

/* Every 50 ms during the handshake phase: time out slow handshakes, retry
 * connects refused with EAGAIN, start queued connections. */
static void on_hs_timer(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	uint64_t now = now_ns();
	bool phase_over = (double)(now - hs_phase_start) / 1e9 > HS_PHASE_MAX_S;
	for (unsigned i = 0; i < next_pending && phase == PH_HANDSHAKE; i++) {
		struct conn *c = &conns[i];
		if (c->st != C_PENDING && c->st != C_CONNECTING && c->st != C_HELLO)
			continue;
		if (now > c->deadline || phase_over)
			conn_fail(c, "%s timed out", c->st == C_HELLO ? "HELLO handshake" : "connect");
		else if (c->st == C_PENDING)
			start_conn(c);
	}
	if (phase == PH_HANDSHAKE) {
		start_pending();
		check_handshake();
	}
}

static void on_signal(struct ev_loop *l, ev_signal *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	if (phase == PH_MEASURE) {
		measure_end();
	} else if (phase == PH_DRAIN) {
		ev_break(loop, EVBREAK_ALL);
	} else {
		begin_drain();
	}
}

/* ------------------------------------------------------------------------- */
/* Start-up                                                                   */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spop-bench [-c CONNS] [-p PIPELINE] [-d SECONDS] [-w WARMUP_SECONDS]\n"
		"                  [-b BODY_BYTES] [-m MESSAGE] [-i IDLE_CONNS] [-P AGENT_PID] [-a AUTHORIZATION]\n"
		"                  HOST:PORT | unix:/path\n"
		"  -c  active connections (default 8)\n"
		"  -p  NOTIFY frames in flight per active connection (default 32)\n"
		"  -d  measured duration in seconds (default 5)\n"
		"  -w  warm-up seconds, excluded from the figures (default 1)\n"
		"  -b  request body size in bytes (default 2048)\n"
		"  -m  SPOE message name (default archestra-req)\n"
		"  -i  extra connections that only do the HELLO and stay idle (default 0)\n"
		"  -a  the authorization header's value (default a direct OpenAI-style key)\n"
		"  -P  pid of the agent: report its VmRSS/VmHWM at the end of the run\n"
		"Prints one key=value summary line; exits 0 when there were ACKs and no errors.\n");
}

static unsigned long parse_ul(const char *s, const char *what, unsigned long lo, unsigned long hi)
{
	char *e;
	errno = 0;
	unsigned long v = strtoul(s, &e, 10);
	if (errno || e == s || *e || v < lo || v > hi || s[0] == '-') {
		fprintf(stderr, "spop-bench: bad %s \"%s\" (want %lu..%lu)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static double parse_secs(const char *s, const char *what, double lo)
{
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e || !(v >= lo) || v > 86400) {
		fprintf(stderr, "spop-bench: bad %s \"%s\"\n", what, s);
		exit(2);
	}
	return v;
}

static void resolve(const char *target)
{
	memset(&addr, 0, sizeof(addr));
	if (!strncmp(target, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&addr;
		const char *path = target + 5;
		if (!*path || strlen(path) >= sizeof(un->sun_path)) {
			fprintf(stderr, "spop-bench: bad unix socket path \"%s\"\n", path);
			exit(2);
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
		addr_is_unix = true;
		return;
	}
	char host[256];
	const char *colon = strrchr(target, ':');
	if (!colon || !colon[1] || (size_t)(colon - target) >= sizeof(host)) {
		fprintf(stderr, "spop-bench: target must be HOST:PORT or unix:/path, got \"%s\"\n", target);
		exit(2);
	}
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = 0;
	char *h = host;
	size_t hl = strlen(h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = 0;
		h++;
	}
	if (!*h)
		h = "127.0.0.1";
	struct addrinfo hints = { 0 }, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(h, colon + 1, &hints, &res);
	if (rc || !res) {
		fprintf(stderr, "spop-bench: cannot resolve %s: %s\n", target, gai_strerror(rc));
		exit(1);
	}
	memcpy(&addr, res->ai_addr, res->ai_addrlen);
	addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)nconns + 32;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		fprintf(stderr, "spop-bench: %u connections need %lu file descriptors, limit is %lu\n",
		        nconns, (unsigned long)need, (unsigned long)rl.rlim_cur);
		exit(2);
	}
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);
	if (!p) {
		fprintf(stderr, "spop-bench: out of memory\n");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	int ch;
	while ((ch = getopt(argc, argv, "c:p:d:w:b:m:i:P:a:h")) != -1) {
		switch (ch) {
		case 'c': opt.conns = (unsigned)parse_ul(optarg, "-c", 1, 100000); break;
		case 'p': opt.pipeline = (unsigned)parse_ul(optarg, "-p", 1, 65536); break;
		case 'd': opt.duration = parse_secs(optarg, "-d", 0.001); break;
		case 'w': opt.warmup = parse_secs(optarg, "-w", 0); break;
		case 'b': opt.body = (unsigned)parse_ul(optarg, "-b", 0, 64u << 20); break;
		case 'm':
			opt.message = optarg;
			if (!*optarg || strlen(optarg) > 255) {
				fprintf(stderr, "spop-bench: bad -m\n");
				return 2;
			}
			break;
		case 'i': opt.idle = (unsigned)parse_ul(optarg, "-i", 0, 1000000); break;
		case 'P': opt.pid = (long)parse_ul(optarg, "-P", 1, 1ul << 31); break;
		case 'a': opt.auth = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	opt.target = argv[optind];
	resolve(opt.target);
	nconns = opt.conns + opt.idle;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	build_frames();
	hist_reset();

	/* Active connections first, so they are connected before the idle ones. */
	conns = xcalloc(nconns, sizeof(*conns));
	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];
		c->fd = -1;
		c->idx = i;
		c->st = C_PENDING;
		c->idle = i >= opt.conns;
		c->mfs = offer_mfs;
		if (c->idle) {
			c->in_cap = IDLE_IN_CAP;
			c->out_cap = hello_len + disc_len + 64;
		} else {
			c->in_cap = READ_CHUNK + offer_mfs + 4;
			c->out_cap = (size_t)opt.pipeline * tpl_len + hello_len + disc_len + 64;
			c->slots = xcalloc(opt.pipeline, sizeof(*c->slots));
		}
		c->in = xcalloc(1, c->in_cap);
		c->out = xcalloc(1, c->out_cap);
	}
	alive = hs_remaining = nconns;
	active_alive = opt.conns;

	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		fprintf(stderr, "spop-bench: cannot initialise libev\n");
		return 1;
	}
	ev_signal_init(&sig_int, on_signal, SIGINT);
	ev_signal_init(&sig_term, on_signal, SIGTERM);
	ev_signal_start(loop, &sig_int);
	ev_signal_start(loop, &sig_term);
	ev_unref(loop);
	ev_unref(loop);
	ev_timer_init(&hs_timer, on_hs_timer, 0.05, 0.05);
	ev_timer_start(loop, &hs_timer);
	hs_phase_start = now_ns();
	start_pending();
	if (alive > 0)
		ev_run(loop, 0);

	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);

	double dur = measured ? (double)(t_end - t_start) / 1e9 : 0;
	double rate = dur > 0 ? (double)st_acks / dur : 0;
	printf("decisions_per_sec=%.0f acks=%" PRIu64 " errors=%" PRIu64
	       " p50_us=%.1f p99_us=%.1f p999_us=%.1f conns=%u pipeline=%u body=%u duration_s=%.2f"
	       " acked_with_actions=%" PRIu64,
	       rate, st_acks, st_errors, hist_quantile(0.50) / 1e3, hist_quantile(0.99) / 1e3,
	       hist_quantile(0.999) / 1e3, opt.conns, opt.pipeline, opt.body, dur, st_acks_actions);
	if (opt.pid > 0)
		printf(" agent_rss_kb=%ld agent_hwm_kb=%ld", rss_kb, hwm_kb);
	printf(" idle_conns=%u frame_bytes=%zu p90_us=%.1f max_us=%.1f mean_us=%.1f\n", opt.idle, tpl_len,
	       hist_quantile(0.90) / 1e3, (double)hist.max / 1e3,
	       hist.count ? (double)hist.sum / (double)hist.count / 1e3 : 0.0);
	fflush(stdout);
	if (err_lines > MAX_ERR_LINES)
		fprintf(stderr, "spop-bench: %" PRIu64 " errors in total\n", st_errors);
	return st_errors == 0 && st_acks > 0 ? 0 : 1;
}
