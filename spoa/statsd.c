/* statsd.c: see statsd.h. */
#include "statsd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cfgjson.h"
#include "config.h"
#include "fasthash.h"

void statsd_cfg_defaults(struct statsd_cfg *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->prefix, sizeof(c->prefix), "archestra.");
	c->style = STATSD_DOGSTATSD;
	c->max_payload = 1432;
	c->flush_ms = 100;
	c->max_tag_values = 100;
	c->max_id_len = 64;
	c->window_s = 60;
	c->timer_sample = 10;
}

int statsd_cfg_apply_json(struct statsd_cfg *c, const cJSON *obj, char *err, size_t errlen)
{
	enum { K_ADDRESS, K_ENABLED, K_PREFIX, K_TAGS, K_MAX_PAYLOAD, K_FLUSH_MS, K_MAX_TAG_VALUES, K_MAX_ID_LEN, K_WINDOW_S,
	       K_TIMER_SAMPLE, NKEYS };
	static const char *const keys[] = {
		"address", "enabled", "prefix", "tags", "max_payload", "flush_ms", "max_tag_values", "max_id_len", "window_s",
		"timer_sample", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	static const char *const styles[] = { [STATSD_DOGSTATSD] = "dogstatsd", [STATSD_DOTTED] = "dotted", NULL };
	static const struct { int64_t lo, hi; } range[NKEYS] = {   /* the numbers, by key */
		[K_MAX_PAYLOAD] = { 512, 65000 }, [K_FLUSH_MS] = { 10, 10000 }, [K_MAX_TAG_VALUES] = { 1, 1000 },
		[K_MAX_ID_LEN] = { 8, 256 }, [K_WINDOW_S] = { 1, 86400 }, [K_TIMER_SAMPLE] = { 1, 1000 },
	};
	const cJSON *it;
	if (cfg_object(obj, NULL, "statsd", 0, NULL, "expected an object like {\"address\": \"127.0.0.1:8125\"}", err,
	               errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, obj) {
		const char *k = it->string;
		struct listen_addr la;
		char e[CONFIG_ERR_LEN];
		int key = cfg_lookup(k, keys), style;
		int64_t v;
		switch (key) {
		case -1:
			return cfg_unknown(err, errlen, "statsd", k, "key", keys);
		case K_ADDRESS:
			if (!cJSON_IsString(it) || config_parse_listen(it->valuestring, &la, e, sizeof(e)) < 0 || la.is_unix)
				return cfg_fail(err, errlen, "statsd", k, "expected HOST:PORT or [IPV6]:PORT, like \"127.0.0.1:8125\"");
			c->addr = la.ss;
			c->addr_len = la.sslen;
			snprintf(c->addr_text, sizeof(c->addr_text), "%s", la.text);
			c->enabled = true;
			break;
		case K_ENABLED:
			if (cfg_bool(it, "statsd", k, 0, &c->enabled, NULL, err, errlen) < 0)
				return -1;
			break;
		case K_PREFIX:
			if (!cJSON_IsString(it) || strpbrk(it->valuestring, ":|#@, \n") ||
			    cfg_str(it, "statsd", k, 0, c->prefix, sizeof(c->prefix), NULL, err, errlen) < 0)
				return cfg_fail(err, errlen, "statsd", k, "expected a short name like \"archestra.\" (no : | # @ , or spaces)");
			break;
		case K_TAGS:
			if (cfg_enum(it, "statsd", k, 0, styles, &style, "expected \"dogstatsd\" (|#k:v tags) or \"dotted\" (names)",
			             err, errlen) < 0)
				return -1;
			c->style = (enum statsd_style)style;
			break;
		default:
			if (cfg_int(it, "statsd", k, 0, range[key].lo, range[key].hi, &v, NULL, err, errlen) < 0)
				return -1;
			switch (key) {
			case K_MAX_PAYLOAD: c->max_payload = (size_t)v; break;
			case K_FLUSH_MS: c->flush_ms = (unsigned)v; break;
			case K_MAX_TAG_VALUES: c->max_tag_values = (unsigned)v; break;
			case K_MAX_ID_LEN: c->max_id_len = (unsigned)v; break;
			case K_WINDOW_S: c->window_s = (unsigned)v; break;
			default: c->timer_sample = (unsigned)v; break;
			}
		}
	}
	if (c->max_tag_values > TAGBOUND_SLOTS / 2)
		c->max_tag_values = TAGBOUND_SLOTS / 2;
	return 0;
}

static void udp_sink(void *arg, const uint8_t *data, size_t len)
{
	struct statsd *s = arg;
	if (send(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		s->dropped++; /* collector down, buffer full: metrics are best effort */
}

int statsd_open(struct statsd *s, const struct statsd_cfg *cfg, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->fd = -1;
	if (!cfg->enabled)
		return 0;
	s->fd = socket(cfg->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || connect(s->fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) < 0) {
		snprintf(err, errlen, "statsd %s: %s", cfg->addr_text, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		return -1;
	}
	s->sink = udp_sink;
	s->sink_arg = s;
	return 0;
}

void statsd_close(struct statsd *s)
{
	statsd_flush(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void flush_series(struct statsd *s);

/* Sends the datagram being built. */
static void send_datagram(struct statsd *s)
{
	if (s->len == 0)
		return;
	if (s->sink) {
		/* The trailing newline is a separator, not part of the last line. */
		s->sink(s->sink_arg, s->buf, s->len - 1);
		s->datagrams++;
	}
	s->len = 0;
}

void statsd_flush(struct statsd *s)
{
	flush_series(s);
	send_datagram(s);
}

void statsd_new_window(struct statsd *s)
{
	tagbound_reset(&s->seen);
}

/* Applies the bounds; returns the value to report. */
static struct spop_slice bound(struct statsd *s, const char *key, struct spop_slice v)
{
	return tagbound_apply(&s->seen, key, v, s->cfg->max_id_len, s->cfg->max_tag_values);
}

/* Writes v with anything outside [A-Za-z0-9_.-] as '_' ('.' too in dotted names). */
static size_t put_clean(char *dst, size_t room, struct spop_slice v, bool dots_ok)
{
	size_t n = v.len < room ? v.len : room;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v.ptr[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		          c == '-' || (c == '.' && dots_ok);
		dst[i] = ok ? (char)c : '_';
	}
	return n;
}

/* Bounded string builder over a fixed buffer. */
struct sb {
	char *p;
	size_t len, room;
	bool full;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->full || n > b->room - b->len) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_str(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_clean(struct sb *b, struct spop_slice v, bool dots_ok)
{
	if (b->full || v.len > b->room - b->len) {
		b->full = true;
		return;
	}
	b->len += put_clean(b->p + b->len, b->room - b->len, v, dots_ok);
}

/* The parts of a line around its value: head ends with ':' (a set's head also
 * holds the member), tail starts with '|type'. */
static bool format_parts(struct statsd *s, const char *name, char type, const char *rate,
                         const struct spop_slice *vals, const struct statsd_tag *tags, int ntags,
                         const struct spop_slice *member, struct sb *head, struct sb *tail)
{
	bool dotted = s->cfg->style == STATSD_DOTTED;
	sb_str(head, s->cfg->prefix);
	sb_str(head, name);
	if (dotted)
		for (int i = 0; i < ntags; i++) {
			if (vals[i].len == 0)
				continue;
			sb_str(head, ".");
			sb_str(head, tags[i].key);
			sb_str(head, ".");
			sb_clean(head, vals[i], false);
		}
	sb_str(head, ":");
	if (member)
		sb_clean(head, *member, true);
	char t[4] = { '|', type, type == 'm' ? 's' : 0, 0 };
	sb_str(tail, t);
	if (rate)
		sb_str(tail, rate);
	if (!dotted) {
		bool first = true;
		for (int i = 0; i < ntags; i++) {
			if (vals[i].len == 0)
				continue;
			sb_str(tail, first ? "|#" : ",");
			sb_str(tail, tags[i].key);
			sb_str(tail, ":");
			sb_clean(tail, vals[i], true);
			first = false;
		}
	}
	return !head->full && !tail->full;
}

/* Appends one line to the datagram being built, sending it first if full. */
static void queue_line(struct statsd *s, const char *head, size_t hl, const char *val, size_t vl, const char *tail,
                       size_t tl)
{
	size_t n = hl + vl + tl + 1;
	size_t max = s->cfg->max_payload + 1; /* the last newline is not sent */
	if (n > max)
		return; /* one line over the payload size: refuse rather than fragment */
	if (s->len + n > max)
		send_datagram(s);
	memcpy(s->buf + s->len, head, hl);
	memcpy(s->buf + s->len + hl, val, vl);
	memcpy(s->buf + s->len + hl + vl, tail, tl);
	s->buf[s->len + n - 1] = '\n';
	s->len += n;
	s->lines++;
}

static size_t fmt_value(char *dst, size_t room, double v)
{
	int n;
	if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
		n = snprintf(dst, room, "%" PRId64, (int64_t)v);
	else
		n = snprintf(dst, room, "%.9f", v);
	return n < 0 || (size_t)n >= room ? 0 : (size_t)n;
}

static void mix(uint64_t *h, const void *p, size_t n)
{
	*h = fasthash(p, n, *h); /* the length is mixed in: fields cannot run together */
}

static void series(struct statsd *s, char type, const char *name, double v, const struct statsd_tag *tags,
                   int ntags, const struct spop_slice *member)
{
	if (!s || !s->cfg || !s->cfg->enabled)
		return;
	struct spop_slice vals[16];
	if (ntags > 16)
		ntags = 16;
	uint64_t h = 1469598103934665603ULL;
	mix(&h, &type, 1);
	mix(&h, name, strlen(name));
	for (int i = 0; i < ntags; i++) {
		vals[i] = tags[i].bounded ? bound(s, tags[i].key, tags[i].val) : tags[i].val;
		mix(&h, tags[i].key, strlen(tags[i].key));
		mix(&h, vals[i].ptr, vals[i].len);
	}
	if (member)
		mix(&h, member->ptr, member->len);
	h |= 1;
	size_t idx = h % STATSD_AGG_SLOTS;
	for (int probe = 0; probe < 16; probe++, idx = (idx + 1) % STATSD_AGG_SLOTS) {
		struct statsd_series *e = &s->agg[idx];
		if (e->h == h) {
			if (type == 'c')
				e->v += v;
			else if (type == 'g')
				e->v = v;
			return;
		}
		if (e->h == 0 && s->nseries < STATSD_AGG_SLOTS * 3 / 4) {
			struct sb head = { e->text, 0, sizeof(e->text) / 2, false };
			struct sb tail = { e->text + sizeof(e->text) / 2, 0, sizeof(e->text) / 2, false };
			if (!format_parts(s, name, type, NULL, vals, tags, ntags, member, &head, &tail))
				return;
			e->h = h;
			e->v = v;
			e->type = type;
			e->head = (uint16_t)head.len;
			e->tail = (uint16_t)tail.len;
			s->order[s->nseries++] = (uint16_t)idx;
			return;
		}
	}
	/* No room to aggregate: send this one as it is. */
	char hb[STATSD_AGG_TEXT], tb[STATSD_AGG_TEXT], vb[40];
	struct sb head = { hb, 0, sizeof(hb), false }, tail = { tb, 0, sizeof(tb), false };
	if (!format_parts(s, name, type, NULL, vals, tags, ntags, member, &head, &tail))
		return;
	size_t vl = member ? 0 : fmt_value(vb, sizeof(vb), v);
	queue_line(s, hb, head.len, vb, vl, tb, tail.len);
}

void statsd_count(struct statsd *s, const char *name, double n, const struct statsd_tag *tags, int ntags)
{
	series(s, 'c', name, n, tags, ntags, NULL);
}

void statsd_gauge(struct statsd *s, const char *name, double v, const struct statsd_tag *tags, int ntags)
{
	series(s, 'g', name, v, tags, ntags, NULL);
}

void statsd_set(struct statsd *s, const char *name, struct spop_slice member, const struct statsd_tag *tags, int ntags)
{
	if (!s || !s->cfg)
		return;
	if (member.len > s->cfg->max_id_len * 4u)
		member.len = s->cfg->max_id_len * 4u; /* a set member is not a tag, but stays bounded */
	series(s, 's', name, 0, tags, ntags, &member);
}

bool statsd_timing_due(const struct statsd *s)
{
	if (!s)
		return false;
	unsigned every = s->cfg && s->cfg->timer_sample ? s->cfg->timer_sample : 1;
	return s->cfg && s->cfg->enabled && s->timings % every == 0;
}

void statsd_timing_us(struct statsd *s, const char *name, int64_t us, const struct statsd_tag *tags, int ntags)
{
	if (!s || !s->cfg || !s->cfg->enabled)
		return;
	unsigned every = s->cfg->timer_sample ? s->cfg->timer_sample : 1;
	if (s->timings++ % every != 0)
		return;
	struct spop_slice vals[16];
	if (ntags > 16)
		ntags = 16;
	for (int i = 0; i < ntags; i++)
		vals[i] = tags[i].bounded ? bound(s, tags[i].key, tags[i].val) : tags[i].val;
	char hb[STATSD_AGG_TEXT], tb[STATSD_AGG_TEXT], vb[40], rate[24] = "";
	if (every > 1)
		snprintf(rate, sizeof(rate), "|@%g", 1.0 / every);
	struct sb head = { hb, 0, sizeof(hb), false }, tail = { tb, 0, sizeof(tb), false };
	if (!format_parts(s, name, 'm', every > 1 ? rate : NULL, vals, tags, ntags, NULL, &head, &tail))
		return;
	int vl = snprintf(vb, sizeof(vb), "%.3f", (double)us / 1000.0);
	queue_line(s, hb, head.len, vb, (size_t)vl, tb, tail.len);
}

static void flush_series(struct statsd *s)
{
	unsigned n = s->nseries;
	s->nseries = 0;
	for (unsigned i = 0; i < n; i++) {
		struct statsd_series *e = &s->agg[s->order[i]];
		char vb[40];
		size_t vl = e->type == 's' ? 0 : fmt_value(vb, sizeof(vb), e->v);
		queue_line(s, e->text, e->head, vb, vl, e->text + STATSD_AGG_TEXT / 2, e->tail);
		e->h = 0;
	}
}
