/* statsd.c: see statsd.h. */
#include "statsd.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

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
}

int statsd_cfg_apply_json(struct statsd_cfg *c, const cJSON *obj, char *err, size_t errlen)
{
	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "statsd: expected an object like {\"address\": \"127.0.0.1:8125\"}");
		return -1;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		const char *k = it->string;
		if (strcmp(k, "address") == 0) {
			struct listen_addr la;
			char e[CONFIG_ERR_LEN];
			if (!cJSON_IsString(it) || config_parse_listen(it->valuestring, &la, e, sizeof(e)) < 0 || la.is_unix) {
				snprintf(err, errlen, "statsd.address: expected HOST:PORT or [IPV6]:PORT, like \"127.0.0.1:8125\"");
				return -1;
			}
			c->addr = la.ss;
			c->addr_len = la.sslen;
			snprintf(c->addr_text, sizeof(c->addr_text), "%s", la.text);
			c->enabled = true;
		} else if (strcmp(k, "enabled") == 0) {
			if (!cJSON_IsBool(it)) {
				snprintf(err, errlen, "statsd.enabled: expected true or false");
				return -1;
			}
			c->enabled = cJSON_IsTrue(it);
		} else if (strcmp(k, "prefix") == 0) {
			if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof(c->prefix) ||
			    strpbrk(it->valuestring, ":|#@, \n")) {
				snprintf(err, errlen, "statsd.prefix: expected a short name like \"archestra.\" (no : | # @ , or spaces)");
				return -1;
			}
			snprintf(c->prefix, sizeof(c->prefix), "%s", it->valuestring);
		} else if (strcmp(k, "tags") == 0) {
			if (cJSON_IsString(it) && strcmp(it->valuestring, "dogstatsd") == 0)
				c->style = STATSD_DOGSTATSD;
			else if (cJSON_IsString(it) && strcmp(it->valuestring, "dotted") == 0)
				c->style = STATSD_DOTTED;
			else {
				snprintf(err, errlen, "statsd.tags: expected \"dogstatsd\" (|#k:v tags) or \"dotted\" (names)");
				return -1;
			}
		} else {
			struct { const char *name; long lo, hi; } nums[] = {
				{ "max_payload", 512, 65000 }, { "flush_ms", 10, 10000 }, { "max_tag_values", 1, 1000 },
				{ "max_id_len", 8, 256 }, { "window_s", 1, 86400 },
			};
			size_t i;
			for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
				if (strcmp(k, nums[i].name) == 0)
					break;
			if (i == sizeof(nums) / sizeof(nums[0])) {
				snprintf(err, errlen,
				         "statsd.%s: unknown key (known: address, enabled, prefix, tags, max_payload, flush_ms, max_tag_values, max_id_len, window_s)",
				         k);
				return -1;
			}
			if (!cJSON_IsNumber(it) || it->valuedouble != (double)(long)it->valuedouble ||
			    it->valuedouble < nums[i].lo || it->valuedouble > nums[i].hi) {
				snprintf(err, errlen, "statsd.%s: expected an integer from %ld to %ld", k, nums[i].lo, nums[i].hi);
				return -1;
			}
			long v = (long)it->valuedouble;
			switch (i) {
			case 0: c->max_payload = (size_t)v; break;
			case 1: c->flush_ms = (unsigned)v; break;
			case 2: c->max_tag_values = (unsigned)v; break;
			case 3: c->max_id_len = (unsigned)v; break;
			default: c->window_s = (unsigned)v; break;
			}
		}
	}
	if (c->max_tag_values > STATSD_SEEN_SLOTS / 2)
		c->max_tag_values = STATSD_SEEN_SLOTS / 2;
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

void statsd_flush(struct statsd *s)
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

void statsd_new_window(struct statsd *s)
{
	for (int i = 0; i < STATSD_BOUNDED_KEYS; i++) {
		s->seen[i].count = 0;
		memset(s->seen[i].slot, 0, sizeof(s->seen[i].slot));
	}
}

static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h | 1; /* 0 marks an empty slot */
}

/* Applies the bounds; returns the value to report. */
static struct spop_slice bound(struct statsd *s, const char *key, struct spop_slice v)
{
	static const struct spop_slice too_long = { (const uint8_t *)"too_long", 8 };
	static const struct spop_slice other = { (const uint8_t *)"other", 5 };
	if (v.len > s->cfg->max_id_len)
		return too_long;
	int k;
	for (k = 0; k < STATSD_BOUNDED_KEYS; k++)
		if (!s->seen[k].key || s->seen[k].key == key || strcmp(s->seen[k].key, key) == 0)
			break;
	if (k == STATSD_BOUNDED_KEYS)
		return other;
	s->seen[k].key = key;
	uint64_t h = hash(v.ptr, v.len);
	size_t i = h % STATSD_SEEN_SLOTS;
	for (;;) {
		if (s->seen[k].slot[i] == h)
			return v;
		if (s->seen[k].slot[i] == 0)
			break;
		i = (i + 1) % STATSD_SEEN_SLOTS;
	}
	if (s->seen[k].count >= s->cfg->max_tag_values)
		return other;
	s->seen[k].slot[i] = h;
	s->seen[k].count++;
	return v;
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

void statsd_emit(struct statsd *s, const char *name, const char *value, const char *type,
                 const struct statsd_tag *tags, int ntags)
{
	if (!s->cfg || !s->cfg->enabled)
		return;
	char line[1024];
	size_t o = 0, room = sizeof(line) - 2;
	bool dotted = s->cfg->style == STATSD_DOTTED;
	struct spop_slice vals[16];
	if (ntags > 16)
		ntags = 16;
	for (int i = 0; i < ntags; i++)
		vals[i] = tags[i].bounded ? bound(s, tags[i].key, tags[i].val) : tags[i].val;
	int n = snprintf(line, room, "%s%s", s->cfg->prefix, name);
	if (n < 0 || (size_t)n >= room)
		return;
	o = (size_t)n;
	if (dotted) {
		for (int i = 0; i < ntags && o + 2 < room; i++) {
			if (vals[i].len == 0)
				continue;
			n = snprintf(line + o, room - o, ".%s.", tags[i].key);
			if (n < 0 || (size_t)n >= room - o)
				return;
			o += (size_t)n;
			o += put_clean(line + o, room - o, vals[i], false);
		}
	}
	if (strcmp(type, "s") == 0) {
		struct spop_slice sv = { (const uint8_t *)value, strlen(value) };
		if (o + 1 >= room)
			return;
		line[o++] = ':';
		o += put_clean(line + o, room - o, sv, true);
		n = snprintf(line + o, room - o, "|s");
	} else {
		n = snprintf(line + o, room - o, ":%s|%s", value, type);
	}
	if (n < 0 || (size_t)n >= room - o)
		return;
	o += (size_t)n;
	if (!dotted) {
		bool first = true;
		for (int i = 0; i < ntags; i++) {
			if (vals[i].len == 0)
				continue;
			n = snprintf(line + o, room - o, "%s%s:", first ? "|#" : ",", tags[i].key);
			if (n < 0 || (size_t)n >= room - o)
				return;
			o += (size_t)n;
			o += put_clean(line + o, room - o, vals[i], true);
			first = false;
		}
	}
	line[o++] = '\n';
	size_t max = s->cfg->max_payload + 1; /* the last newline is not sent */
	if (o > max)
		return; /* a single line over the payload size: refuse rather than fragment */
	if (s->len + o > max)
		statsd_flush(s);
	memcpy(s->buf + s->len, line, o);
	s->len += o;
	s->lines++;
}

void statsd_count(struct statsd *s, const char *name, int64_t n, const struct statsd_tag *tags, int ntags)
{
	char v[24];
	snprintf(v, sizeof(v), "%" PRId64, n);
	statsd_emit(s, name, v, "c", tags, ntags);
}

void statsd_timing_us(struct statsd *s, const char *name, int64_t us, const struct statsd_tag *tags, int ntags)
{
	char v[32];
	snprintf(v, sizeof(v), "%.3f", (double)us / 1000.0);
	statsd_emit(s, name, v, "ms", tags, ntags);
}
