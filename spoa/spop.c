/* spop.c: SPOP 2.0 codec. See spop.h. */
#include "spop.h"

#include <string.h>

/* ---- varints ("peers" encoding: 4 bits in the first byte past 240, then 7 per byte) ---- */

size_t spop_varint_len(uint64_t v)
{
	size_t n = 1;
	if (v < 240)
		return 1;
	v = (v - 240) >> 4;
	while (v >= 128) {
		v = (v - 128) >> 7;
		n++;
	}
	return n + 1;
}

size_t spop_put_varint(uint8_t *dst, size_t room, uint64_t v)
{
	size_t n = spop_varint_len(v);
	if (n > room)
		return 0;
	if (v < 240) {
		dst[0] = (uint8_t)v;
		return 1;
	}
	uint8_t *p = dst;
	*p++ = (uint8_t)v | 240;
	v = (v - 240) >> 4;
	while (v >= 128) {
		*p++ = (uint8_t)v | 128;
		v = (v - 128) >> 7;
	}
	*p++ = (uint8_t)v;
	return n;
}

int spop_get_varint(struct spop_reader *r, uint64_t *out)
{
	if (r->p >= r->end)
		return -1;
	uint64_t v = *r->p++;
	if (v < 240) {
		*out = v;
		return 0;
	}
	unsigned shift = 4;
	for (;;) {
		if (r->p >= r->end || shift > 60)
			return -1;
		uint64_t b = *r->p++;
		uint64_t add = b << shift;
		if ((add >> shift) != b || __builtin_add_overflow(v, add, &v))
			return -1;
		if (b < 128)
			break;
		shift += 7;
	}
	*out = v;
	return 0;
}

/* ---- typed data ---- */

static int get_bytes(struct spop_reader *r, struct spop_slice *out)
{
	uint64_t n;
	if (spop_get_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
		return -1;
	out->ptr = r->p;
	out->len = (size_t)n;
	r->p += n;
	return 0;
}

int spop_get_name(struct spop_reader *r, struct spop_slice *out)
{
	return get_bytes(r, out);
}

int spop_get_data(struct spop_reader *r, struct spop_data *d)
{
	if (r->p >= r->end)
		return -1;
	uint8_t tb = *r->p++;
	uint64_t u;
	d->type = (enum spop_type)(tb & SPOP_T_MASK);
	switch (d->type) {
	case SPOP_T_NULL:
		return 0;
	case SPOP_T_BOOL:
		d->v.b = (tb & SPOP_FL_TRUE) != 0;
		return 0;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (spop_get_varint(r, &u) < 0)
			return -1;
		d->v.i = (int64_t)u;
		return 0;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		return spop_get_varint(r, &d->v.u);
	case SPOP_T_IPV4:
	case SPOP_T_IPV6: {
		size_t n = d->type == SPOP_T_IPV4 ? 4 : 16;
		if ((size_t)(r->end - r->p) < n)
			return -1;
		d->v.ip = r->p;
		r->p += n;
		return 0;
	}
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		return get_bytes(r, &d->v.s);
	}
	return -1; /* types 10..15 are reserved */
}

int spop_get_kv(struct spop_reader *r, struct spop_kv *kv)
{
	if (get_bytes(r, &kv->name) < 0)
		return -1;
	return spop_get_data(r, &kv->val);
}

/* ---- frames ---- */

int spop_parse_frame(const uint8_t *frame, size_t len, struct spop_frame *f)
{
	if (len < SPOP_MIN_FRAME_HDR)
		return -1;
	struct spop_reader r = { frame + 5, frame + len };
	f->type = frame[0];
	f->flags = spop_read_len(frame + 1);
	if (spop_get_varint(&r, &f->stream_id) < 0 || spop_get_varint(&r, &f->frame_id) < 0)
		return -1;
	f->payload.ptr = r.p;
	f->payload.len = (size_t)(r.end - r.p);
	return 0;
}

/* Splits a comma list and calls fn on each trimmed item; stops when fn returns true. */
static bool each_item(struct spop_slice list, bool (*fn)(const uint8_t *s, size_t n, void *arg), void *arg)
{
	const uint8_t *p = list.ptr, *end = list.ptr + list.len;
	while (p < end) {
		const uint8_t *comma = memchr(p, ',', (size_t)(end - p));
		const uint8_t *ie = comma ? comma : end;
		const uint8_t *s = p;
		while (s < ie && (*s == ' ' || *s == '\t'))
			s++;
		const uint8_t *e = ie;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s && fn(s, (size_t)(e - s), arg))
			return true;
		p = comma ? comma + 1 : end;
	}
	return false;
}

/* "2.N" with N digits: SPOP 2.x includes 2.0, which is what we speak. */
static bool is_v2(const uint8_t *s, size_t n, void *arg)
{
	(void)arg;
	if (n < 3 || s[0] != '2' || s[1] != '.')
		return false;
	for (size_t i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

bool spop_version_supported(struct spop_slice versions)
{
	return each_item(versions, is_v2, NULL);
}

static bool add_cap(const uint8_t *s, size_t n, void *arg)
{
	unsigned *caps = arg;
	struct spop_slice it = { s, n };
	if (SPOP_SLICE_IS(it, "pipelining"))
		*caps |= SPOP_CAP_PIPELINING;
	else if (SPOP_SLICE_IS(it, "async"))
		*caps |= SPOP_CAP_ASYNC;
	else if (SPOP_SLICE_IS(it, "fragmentation"))
		*caps |= SPOP_CAP_FRAGMENTATION;
	return false;
}

unsigned spop_parse_caps(struct spop_slice caps)
{
	unsigned set = 0;
	each_item(caps, add_cap, &set);
	return set;
}

/* Integers of any integer type, as long as they fit in 32 unsigned bits. */
static bool data_to_u32(const struct spop_data *d, uint32_t *out)
{
	switch (d->type) {
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		if (d->v.u > UINT32_MAX)
			return false;
		*out = (uint32_t)d->v.u;
		return true;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		if (d->v.i < 0 || d->v.i > (int64_t)UINT32_MAX)
			return false;
		*out = (uint32_t)d->v.i;
		return true;
	default:
		return false;
	}
}

enum spop_status spop_parse_hello(struct spop_slice payload, struct spop_hello *h)
{
	struct spop_reader r = { payload.ptr, payload.ptr + payload.len };
	bool have_vsn = false, have_mfs = false, have_caps = false;

	memset(h, 0, sizeof(*h));
	while (r.p < r.end) {
		struct spop_kv kv;
		if (spop_get_kv(&r, &kv) < 0)
			return SPOP_ST_INVALID;
		if (SPOP_SLICE_IS(kv.name, "supported-versions")) {
			if (kv.val.type != SPOP_T_STRING)
				return SPOP_ST_NO_VSN;
			h->versions = kv.val.v.s;
			have_vsn = true;
		} else if (SPOP_SLICE_IS(kv.name, "max-frame-size")) {
			if (!data_to_u32(&kv.val, &h->max_frame_size))
				return SPOP_ST_NO_FRAME_SIZE;
			have_mfs = true;
		} else if (SPOP_SLICE_IS(kv.name, "capabilities")) {
			if (kv.val.type != SPOP_T_STRING)
				return SPOP_ST_NO_CAP;
			h->caps = kv.val.v.s;
			have_caps = true;
		} else if (SPOP_SLICE_IS(kv.name, "healthcheck")) {
			h->healthcheck = kv.val.type == SPOP_T_BOOL && kv.val.v.b;
		} else if (SPOP_SLICE_IS(kv.name, "engine-id")) {
			if (kv.val.type == SPOP_T_STRING)
				h->engine_id = kv.val.v.s;
		}
	}
	if (!have_vsn)
		return SPOP_ST_NO_VSN;
	if (!have_mfs)
		return SPOP_ST_NO_FRAME_SIZE;
	if (!have_caps)
		return SPOP_ST_NO_CAP;
	if (!spop_version_supported(h->versions))
		return SPOP_ST_BAD_VSN;
	if (h->max_frame_size < SPOP_MIN_FRAME_SIZE)
		return SPOP_ST_BAD_FRAME_SIZE;
	return SPOP_ST_OK;
}

int spop_parse_disconnect(struct spop_slice payload, struct spop_disconnect *d)
{
	struct spop_reader r = { payload.ptr, payload.ptr + payload.len };
	memset(d, 0, sizeof(*d));
	while (r.p < r.end) {
		struct spop_kv kv;
		if (spop_get_kv(&r, &kv) < 0)
			return -1;
		if (SPOP_SLICE_IS(kv.name, "status-code"))
			data_to_u32(&kv.val, &d->status);
		else if (SPOP_SLICE_IS(kv.name, "message") && kv.val.type == SPOP_T_STRING)
			d->message = kv.val.v.s;
	}
	return 0;
}

int spop_next_msg(struct spop_reader *r, struct spop_msg *m)
{
	if (r->p >= r->end)
		return 0;
	if (get_bytes(r, &m->name) < 0 || r->p >= r->end)
		return -1;
	m->nargs = *r->p++;
	for (unsigned i = 0; i < m->nargs; i++)
		if (spop_get_kv(r, &m->args[i]) < 0)
			return -1;
	return 1;
}

const struct spop_data *spop_msg_arg(const struct spop_msg *m, const char *name, size_t n)
{
	for (unsigned i = 0; i < m->nargs; i++)
		if (spop_slice_eq(m->args[i].name, name, n))
			return &m->args[i].val;
	return NULL;
}

/* ---- encoding ---- */

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t room)
{
	w->start = w->p = w->frame = buf;
	w->end = buf + room;
	w->overflow = false;
}

static inline bool reserve(struct spop_writer *w, size_t n)
{
	if (w->overflow || (size_t)(w->end - w->p) < n) {
		w->overflow = true;
		return false;
	}
	return true;
}

void spop_put_u8(struct spop_writer *w, uint8_t v)
{
	if (reserve(w, 1))
		*w->p++ = v;
}

void spop_put_raw(struct spop_writer *w, const void *src, size_t n)
{
	if (reserve(w, n)) {
		if (n)
			memcpy(w->p, src, n);
		w->p += n;
	}
}

void spop_put_vint(struct spop_writer *w, uint64_t v)
{
	if (w->overflow)
		return;
	size_t n = spop_put_varint(w->p, (size_t)(w->end - w->p), v);
	if (n == 0)
		w->overflow = true;
	w->p += n;
}

void spop_put_name(struct spop_writer *w, const void *s, size_t n)
{
	spop_put_vint(w, n);
	spop_put_raw(w, s, n);
}

void spop_put_data(struct spop_writer *w, const struct spop_data *d)
{
	switch (d->type) {
	case SPOP_T_NULL:
		spop_put_u8(w, SPOP_T_NULL);
		break;
	case SPOP_T_BOOL:
		spop_put_u8(w, SPOP_T_BOOL | (d->v.b ? SPOP_FL_TRUE : 0));
		break;
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		spop_put_u8(w, (uint8_t)d->type);
		spop_put_vint(w, (uint64_t)d->v.i);
		break;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		spop_put_u8(w, (uint8_t)d->type);
		spop_put_vint(w, d->v.u);
		break;
	case SPOP_T_IPV4:
	case SPOP_T_IPV6:
		spop_put_u8(w, (uint8_t)d->type);
		spop_put_raw(w, d->v.ip, d->type == SPOP_T_IPV4 ? 4 : 16);
		break;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		spop_put_u8(w, (uint8_t)d->type);
		spop_put_name(w, d->v.s.ptr, d->v.s.len);
		break;
	default:
		w->overflow = true; /* not a type we can write: fail the frame */
	}
}

void spop_put_kv_str(struct spop_writer *w, const char *name, const void *s, size_t n)
{
	spop_put_name(w, name, strlen(name));
	spop_put_u8(w, SPOP_T_STRING);
	spop_put_name(w, s, n);
}

void spop_put_kv_u32(struct spop_writer *w, const char *name, uint32_t v)
{
	spop_put_name(w, name, strlen(name));
	spop_put_u8(w, SPOP_T_UINT32);
	spop_put_vint(w, v);
}

void spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id)
{
	w->frame = w->p;
	if (reserve(w, SPOP_LEN_PREFIX + 5)) {
		uint8_t *p = w->p;
		p[4] = type;
		p[5] = (uint8_t)(flags >> 24);
		p[6] = (uint8_t)(flags >> 16);
		p[7] = (uint8_t)(flags >> 8);
		p[8] = (uint8_t)flags;
		w->p += SPOP_LEN_PREFIX + 5;
	}
	spop_put_vint(w, stream_id);
	spop_put_vint(w, frame_id);
}

size_t spop_frame_end(struct spop_writer *w, uint32_t max_frame_size)
{
	if (w->overflow)
		return 0;
	size_t total = (size_t)(w->p - w->frame);
	size_t len = total - SPOP_LEN_PREFIX;
	if (len > max_frame_size)
		return 0;
	w->frame[0] = (uint8_t)(len >> 24);
	w->frame[1] = (uint8_t)(len >> 16);
	w->frame[2] = (uint8_t)(len >> 8);
	w->frame[3] = (uint8_t)len;
	return total;
}

void spop_put_set_var(struct spop_writer *w, enum spop_scope scope,
                      const char *name, size_t name_len, const struct spop_data *val)
{
	spop_put_u8(w, SPOP_ACT_SET_VAR);
	spop_put_u8(w, 3);
	spop_put_u8(w, (uint8_t)scope);
	spop_put_name(w, name, name_len);
	spop_put_data(w, val);
}

void spop_put_set_var_str2(struct spop_writer *w, enum spop_scope scope, const char *name, size_t name_len,
                           const void *a, size_t alen, const void *b, size_t blen)
{
	spop_put_u8(w, SPOP_ACT_SET_VAR);
	spop_put_u8(w, 3);
	spop_put_u8(w, (uint8_t)scope);
	spop_put_name(w, name, name_len);
	spop_put_u8(w, SPOP_T_STRING);
	spop_put_vint(w, alen + blen);
	spop_put_raw(w, a, alen);
	spop_put_raw(w, b, blen);
}

void spop_put_unset_var(struct spop_writer *w, enum spop_scope scope,
                        const char *name, size_t name_len)
{
	spop_put_u8(w, SPOP_ACT_UNSET_VAR);
	spop_put_u8(w, 2);
	spop_put_u8(w, (uint8_t)scope);
	spop_put_name(w, name, name_len);
}

size_t spop_caps_string(unsigned caps, char *dst, size_t room)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ SPOP_CAP_PIPELINING, "pipelining" },
		{ SPOP_CAP_ASYNC, "async" },
		{ SPOP_CAP_FRAGMENTATION, "fragmentation" },
	};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(caps & names[i].bit))
			continue;
		size_t l = strlen(names[i].name);
		if (n + (n ? 1 : 0) + l >= room)
			break;
		if (n)
			dst[n++] = ',';
		memcpy(dst + n, names[i].name, l);
		n += l;
	}
	if (room)
		dst[n] = '\0';
	return n;
}

size_t spop_encode_agent_hello(uint8_t *dst, size_t room, uint32_t max_frame_size, unsigned caps)
{
	char cs[64];
	size_t cl = spop_caps_string(caps, cs, sizeof(cs));
	struct spop_writer w;
	spop_writer_init(&w, dst, room);
	spop_frame_begin(&w, SPOP_FRM_AGENT_HELLO, SPOP_FL_FIN, 0, 0);
	spop_put_kv_str(&w, "version", "2.0", 3);
	spop_put_kv_u32(&w, "max-frame-size", max_frame_size);
	spop_put_kv_str(&w, "capabilities", cs, cl);
	return spop_frame_end(&w, UINT32_MAX);
}

size_t spop_encode_disconnect(uint8_t *dst, size_t room, enum spop_status status, const char *msg)
{
	struct spop_writer w;
	spop_writer_init(&w, dst, room);
	spop_frame_begin(&w, SPOP_FRM_AGENT_DISCONNECT, SPOP_FL_FIN, 0, 0);
	spop_put_kv_u32(&w, "status-code", (uint32_t)status);
	spop_put_kv_str(&w, "message", msg, strlen(msg));
	return spop_frame_end(&w, UINT32_MAX);
}

const char *spop_status_text(enum spop_status st)
{
	switch (st) {
	case SPOP_ST_OK:               return "normal";
	case SPOP_ST_IO:               return "I/O error";
	case SPOP_ST_TIMEOUT:          return "a timeout occurred";
	case SPOP_ST_TOO_BIG:          return "frame is too big";
	case SPOP_ST_INVALID:          return "invalid frame received";
	case SPOP_ST_NO_VSN:           return "version value not found";
	case SPOP_ST_NO_FRAME_SIZE:    return "max-frame-size value not found";
	case SPOP_ST_NO_CAP:           return "capabilities value not found";
	case SPOP_ST_BAD_VSN:          return "unsupported version";
	case SPOP_ST_BAD_FRAME_SIZE:   return "max-frame-size too big or too small";
	case SPOP_ST_FRAG_UNSUPPORTED: return "payload fragmentation is not supported";
	case SPOP_ST_INTERLACED:       return "invalid interlaced frames";
	case SPOP_ST_FRAMEID_NOTFOUND: return "frame-id not found";
	case SPOP_ST_RES:              return "resource allocation error";
	case SPOP_ST_UNKNOWN:          break;
	}
	return "unknown error";
}
