/* jsonscan.c: see jsonscan.h. */
#include "jsonscan.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "chars.h"

static inline const uint8_t *ws(const uint8_t *p, const uint8_t *end)
{
	if (p < end && *p > ' ')
		return p; /* compact JSON, the common case: no white space between tokens */
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Eight bytes at a time: stops at a word that may hold '"', '\\' or a control
 * byte (the test can fire early, never late; the byte loop then decides). Prompt
 * text is almost all ordinary bytes, so this is where scanning spends its time. */
static const uint8_t *skip_plain(const uint8_t *p, const uint8_t *end)
{
#ifdef __SSE2__
	/* Sixteen at a time where the CPU has SSE2 (every x86-64). */
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
		                           _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl)); /* v <= 0x1f */
		int m = _mm_movemask_epi8(hit);
		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (end - p >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
		uint64_t hit = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w);
		if (hit & HIGHS)
			break;
		p += 8;
	}
	while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
		p++;
	return p;
}

/* p at '"'; returns past the closing quote, or NULL. *escaped tells if any '\\'. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *end, bool *escaped)
{
	p++;
	while (p < end) {
		p = skip_plain(p, end);
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (*p < 0x20)
			return NULL;
		/* backslash */
		if (escaped)
			*escaped = true;
		if (end - p < 2)
			return NULL;
		uint8_t e = p[1];
		if (e == 'u') {
			if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
				return NULL;
			p += 6;
		} else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
			p += 2;
		} else {
			return NULL;
		}
	}
	return NULL;
}

static const uint8_t *skip_number(const uint8_t *p, const uint8_t *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const uint8_t *value(const uint8_t *p, const uint8_t *end, int depth, struct json_val *v);

static const uint8_t *container(const uint8_t *p, const uint8_t *end, int depth, bool obj)
{
	uint8_t close = obj ? '}' : ']';
	p = ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		struct json_val v;
		if (obj) {
			if (p >= end || *p != '"' || !(p = skip_string(p, end, NULL)))
				return NULL;
			p = ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p = ws(p + 1, end);
		}
		if (!(p = value(p, end, depth + 1, &v)))
			return NULL;
		p = ws(p, end);
		if (p >= end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = ws(p + 1, end);
	}
}

static const uint8_t *literal(const uint8_t *p, const uint8_t *end, const char *lit, size_t n)
{
	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

static const uint8_t *value(const uint8_t *p, const uint8_t *end, int depth, struct json_val *v)
{
	const uint8_t *start = p, *q = NULL;
	v->kind = JSON_BAD;
	if (p >= end || depth > JSON_MAX_DEPTH)
		return NULL;
	switch (*p) {
	case '{':
		q = container(p, end, depth, true);
		v->kind = JSON_OBJECT;
		break;
	case '[':
		q = container(p, end, depth, false);
		v->kind = JSON_ARRAY;
		break;
	case '"':
		q = skip_string(p, end, NULL);
		v->kind = JSON_STRING;
		break;
	case 't':
		q = literal(p, end, "true", 4);
		v->kind = JSON_TRUE;
		break;
	case 'f':
		q = literal(p, end, "false", 5);
		v->kind = JSON_FALSE;
		break;
	case 'n':
		q = literal(p, end, "null", 4);
		v->kind = JSON_NULL;
		break;
	default:
		q = skip_number(p, end);
		v->kind = JSON_NUMBER;
		break;
	}
	if (!q) {
		v->kind = JSON_BAD;
		return NULL;
	}
	v->raw.ptr = start;
	v->raw.len = (size_t)(q - start);
	return q;
}

bool json_parse_value(struct spop_slice doc, struct json_val *v)
{
	if (!doc.ptr)
		doc = (struct spop_slice){ (const uint8_t *)"", 0 };
	const uint8_t *end = doc.ptr + doc.len;
	const uint8_t *p = ws(doc.ptr, end);
	p = value(p, end, 0, v);
	return p && ws(p, end) == end;
}

bool json_iter_init(struct json_iter *it, struct spop_slice obj)
{
	if (!obj.ptr)
		obj = (struct spop_slice){ (const uint8_t *)"", 0 }; /* no arithmetic on NULL */
	it->end = obj.ptr + obj.len;
	it->p = ws(obj.ptr, it->end);
	it->first = true;
	it->failed = !(it->p < it->end && *it->p == '{');
	if (!it->failed)
		it->p++;
	return !it->failed;
}

int json_iter_next(struct json_iter *it, struct spop_slice *key, struct json_val *val)
{
	if (it->failed)
		return -1;
	const uint8_t *p = ws(it->p, it->end), *end = it->end;
	if (p >= end)
		goto bad;
	if (*p == '}')
		return 0;
	if (!it->first) {
		if (*p != ',')
			goto bad;
		p = ws(p + 1, end);
	}
	it->first = false;
	const uint8_t *k = p;
	if (p >= end || *p != '"' || !(p = skip_string(p, end, NULL)))
		goto bad;
	key->ptr = k + 1;
	key->len = (size_t)(p - k - 2);
	p = ws(p, end);
	if (p >= end || *p != ':')
		goto bad;
	p = ws(p + 1, end);
	if (!(p = value(p, end, 1, val)))
		goto bad;
	it->p = p;
	return 1;
bad:
	it->failed = true;
	return -1;
}

bool json_get(struct spop_slice obj, const char *key, struct json_val *out)
{
	struct json_iter it;
	struct spop_slice k;
	if (!json_iter_init(&it, obj))
		return false;
	size_t kl = strlen(key);
	while (json_iter_next(&it, &k, out) == 1)
		if ((k.len == kl && memcmp(k.ptr, key, kl) == 0) || (k.len > kl && json_key_is(k, key)))
			return true;
	return false;
}

bool json_get_path(struct spop_slice obj, const char *path, struct json_val *out)
{
	char seg[64];
	const char *p = path;
	struct spop_slice cur = obj;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof(seg))
			return false;
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (!json_get(cur, seg, out))
			return false;
		if (!dot)
			return true;
		if (out->kind != JSON_OBJECT)
			return false;
		cur = out->raw;
		p = dot + 1;
	}
}

bool json_as_int(const struct json_val *v, int64_t *out)
{
	if (v->kind != JSON_NUMBER || v->raw.len == 0 || v->raw.len > 19)
		return false;
	const uint8_t *p = v->raw.ptr, *end = p + v->raw.len;
	bool neg = *p == '-';
	if (neg)
		p++;
	int64_t x = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false; /* fraction or exponent */
		x = x * 10 + (*p - '0');
	}
	*out = neg ? -x : x;
	return true;
}

static size_t utf8_put(char *d, uint32_t cp)
{
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | cp >> 6);
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | cp >> 12);
		d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | cp >> 18);
	d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The code point of \uXXXX at p (p at the backslash), and of a following low
 * surrogate when p holds a high one; *n gets the bytes consumed. json_check has
 * refused lone surrogates, so a pair is always whole here. */
static uint32_t u_escape(const uint8_t *p, const uint8_t *end, size_t *n)
{
	uint32_t cp = (uint32_t)(hex_value(p[2]) << 12 | hex_value(p[3]) << 8 | hex_value(p[4]) << 4 | hex_value(p[5]));
	*n = 6;
	if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
		uint32_t lo = (uint32_t)(hex_value(p[8]) << 12 | hex_value(p[9]) << 8 | hex_value(p[10]) << 4 | hex_value(p[11]));
		if (lo >= 0xdc00 && lo < 0xe000) {
			*n = 12;
			return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
	}
	return cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp;
}

/* One decoded character of an escape at p (p at the backslash) into d. */
static size_t unescape_one(const uint8_t *p, const uint8_t *end, char *d, size_t *used)
{
	*used = 2;
	switch (p[1]) {
	case 'b': *d = '\b'; return 1;
	case 'f': *d = '\f'; return 1;
	case 'n': *d = '\n'; return 1;
	case 'r': *d = '\r'; return 1;
	case 't': *d = '\t'; return 1;
	case 'u': return utf8_put(d, u_escape(p, end, used));
	default: *d = (char)p[1]; return 1; /* " \\ / */
	}
}

size_t json_unescape(struct spop_slice raw, char *dst)
{
	const uint8_t *p = raw.ptr, *end = raw.ptr + raw.len;
	size_t o = 0;
	while (p < end) {
		const uint8_t *b = memchr(p, '\\', (size_t)(end - p));
		size_t plain = (size_t)((b ? b : end) - p);
		memcpy(dst + o, p, plain);
		o += plain;
		p += plain;
		if (!b)
			break;
		size_t used;
		o += unescape_one(p, end, dst + o, &used);
		p += used;
	}
	return o;
}

long json_string_decode(const struct json_val *v, char *dst, size_t room)
{
	if (v->kind != JSON_STRING || v->raw.len < 2 || v->raw.len - 2 >= room)
		return -1; /* decoded text is never longer than its raw form */
	size_t n = json_unescape((struct spop_slice){ v->raw.ptr + 1, v->raw.len - 2 }, dst);
	dst[n] = '\0';
	return (long)n;
}

bool json_as_string(const struct json_val *v, struct json_arena *a, struct spop_slice *out)
{
	if (v->kind != JSON_STRING || v->raw.len < 2)
		return false;
	struct spop_slice raw = { v->raw.ptr + 1, v->raw.len - 2 };
	if (!memchr(raw.ptr, '\\', raw.len)) {
		*out = raw;
		return true;
	}
	if (!a || a->cap - a->used < raw.len)
		return false;
	char *d = a->buf + a->used;
	out->ptr = (const uint8_t *)d;
	out->len = json_unescape(raw, d);
	a->used += out->len;
	return true;
}

/* Reads a raw string's (checked) decoded bytes one at a time. */
struct dcursor {
	const uint8_t *p, *end;
	char c[4];
	size_t n, i;
};

static int dnext(struct dcursor *d)
{
	if (d->i == d->n) {
		if (d->p >= d->end)
			return -1;
		size_t used = 1;
		if (*d->p == '\\') {
			d->n = unescape_one(d->p, d->end, d->c, &used);
		} else {
			d->c[0] = (char)*d->p;
			d->n = 1;
		}
		d->p += used;
		d->i = 0;
	}
	return (uint8_t)d->c[d->i++];
}

bool json_key_is(struct spop_slice k, const char *lit)
{
	size_t n = strlen(lit);
	if (k.len == n && memcmp(k.ptr, lit, n) == 0)
		return true;
	if (k.len < n || !memchr(k.ptr, '\\', k.len))
		return false; /* an escape only makes a key longer than its text */
	struct dcursor d = { k.ptr, k.ptr + k.len, { 0 }, 0, 0 };
	const uint8_t *l = (const uint8_t *)lit;
	for (int c; (c = dnext(&d)) >= 0;)
		if (!*l || *l++ != c) /* \u0000 never matches the literal's end */
			return false;
	return *l == '\0';
}

bool json_aiter_init(struct json_aiter *it, const struct json_val *arr)
{
	it->failed = arr->kind != JSON_ARRAY;
	it->first = true;
	it->open = false;
	it->end = arr->raw.ptr + arr->raw.len;
	it->p = it->failed ? it->end : arr->raw.ptr + 1;
	return !it->failed;
}

/* Where the next element starts: 1 with *at set, 0 at the end of the array, -1
 * malformed (the iterator is then failed). */
static int aiter_step(struct json_aiter *it, const uint8_t **at)
{
	const uint8_t *p = ws(it->p, it->end);
	if (p >= it->end)
		goto bad;
	if (*p == ']')
		return 0;
	if (!it->first) {
		if (*p != ',')
			goto bad;
		p = ws(p + 1, it->end);
	}
	it->first = false;
	*at = p;
	return 1;
bad:
	it->failed = true;
	return -1;
}

/* The element at p, read whole. */
static int aiter_value(struct json_aiter *it, const uint8_t *p, struct json_val *el)
{
	if (!(p = value(p, it->end, 1, el))) {
		it->failed = true;
		return -1;
	}
	it->p = p;
	return 1;
}

int json_aiter_next(struct json_aiter *it, struct json_val *el)
{
	const uint8_t *p;
	int rc = it->failed ? -1 : aiter_step(it, &p);
	return rc <= 0 ? rc : aiter_value(it, p, el);
}

int json_aiter_next_obj(struct json_aiter *it, struct json_val *el, struct json_iter *mi)
{
	if (it->failed)
		return -1;
	if (it->open) { /* finish the object the caller was reading, then step past it */
		struct spop_slice k;
		struct json_val v;
		int rc;
		it->open = false;
		while ((rc = json_iter_next(mi, &k, &v)) == 1)
			;
		const uint8_t *q = rc == 0 ? ws(mi->p, it->end) : it->end;
		if (q >= it->end || *q != '}') {
			it->failed = true;
			return -1;
		}
		it->p = q + 1;
	}
	const uint8_t *p;
	int rc = aiter_step(it, &p);
	if (rc <= 0)
		return rc;
	if (p < it->end && *p == '{') {
		el->kind = JSON_OBJECT;
		el->raw = (struct spop_slice){ p, (size_t)(it->end - p) };
		json_iter_init(mi, el->raw);
		it->open = true;
		it->p = p;
		return 1;
	}
	return aiter_value(it, p, el);
}

long json_array_len(const struct json_val *v)
{
	struct json_aiter it;
	struct json_val e;
	long n = 0;
	int rc;
	if (!json_aiter_init(&it, v))
		return -1;
	while ((rc = json_aiter_next(&it, &e)) == 1)
		n++;
	return rc < 0 ? -1 : n;
}

int json_as_whole(const struct json_val *v, int64_t *out)
{
	if (v->kind != JSON_NUMBER || v->raw.len == 0)
		return -1;
	const uint8_t *p = v->raw.ptr, *end = p + v->raw.len;
	bool neg = *p == '-';
	p += neg;
	/* digits of the mantissa (integer and fraction parts, leading zeros dropped),
	 * and the power of ten that places the last one */
	uint8_t dig[24];
	size_t nd = 0;
	int64_t scale = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (nd == 0 && *p == '0')
			continue;
		if (nd < sizeof(dig))
			dig[nd++] = *p;
		else
			scale++; /* more than 24 significant digits: beyond int64 anyway */
	}
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
			if (nd == 0 && *p == '0') {
				scale--;
				continue;
			}
			if (nd < sizeof(dig)) {
				dig[nd++] = *p;
				scale--;
			} else if (*p != '0') {
				return 0; /* a fraction digit beyond what we keep: not whole */
			}
		}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		bool eneg = p < end && *p == '-';
		p += p < end && (*p == '-' || *p == '+');
		int64_t e = 0;
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		scale += eneg ? -e : e;
	}
	/* trailing zeros of the mantissa move into the scale */
	while (nd && dig[nd - 1] == '0') {
		nd--;
		scale++;
	}
	if (nd == 0) {
		*out = 0;
		return 1;
	}
	if (scale < 0)
		return 0;
	if ((int64_t)nd + scale > 19) {
		*out = neg ? INT64_MIN : INT64_MAX;
		return 1;
	}
	uint64_t x = 0;
	for (size_t i = 0; i < nd; i++)
		x = x * 10 + (uint64_t)(dig[i] - '0');
	for (int64_t i = 0; i < scale; i++)
		x *= 10;
	if (x > (uint64_t)INT64_MAX)
		*out = neg ? INT64_MIN : INT64_MAX;
	else
		*out = neg ? -(int64_t)x : (int64_t)x;
	return 1;
}

/* ---- json_check ---- */

const char *json_err_text(enum json_err e)
{
	switch (e) {
	case JSON_OK: return "ok";
	case JSON_ERR_DEPTH: return "nested deeper than 64 levels";
	case JSON_ERR_DUPKEY: return "an object has the same key twice";
	case JSON_ERR_UTF8: return "invalid UTF-8 or a lone surrogate escape";
	default: return "not valid JSON";
	}
}

/* Like skip_plain, but also stops at bytes >= 0x80 so they get validated. */
static const uint8_t *skip_ascii(const uint8_t *p, const uint8_t *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
		                           _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
		int m = _mm_movemask_epi8(hit) | _mm_movemask_epi8(v); /* high bit: non-ASCII */
		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80)
		p++;
	return p;
}

static uint32_t hex4(const uint8_t *p)
{
	return (uint32_t)(hex_value(p[0]) << 12 | hex_value(p[1]) << 8 | hex_value(p[2]) << 4 | hex_value(p[3]));
}

/* A string at p ('"'): returns past the closing quote, or NULL with *err. Sets
 * *esc when it holds any escape and *uesc when it holds one whose decoded byte
 * reads differently from its raw text (all but the white-space escapes). */
static const uint8_t *check_string(const uint8_t *p, const uint8_t *end, bool *esc, bool *uesc, enum json_err *err)
{
	*esc = *uesc = false;
	*err = JSON_ERR_SYNTAX;
	p++;
	for (;;) {
		p = skip_ascii(p, end);
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (*p >= 0x80) {
			size_t n = utf8_seq(p, end);
			if (!n) {
				*err = JSON_ERR_UTF8;
				return NULL;
			}
			p += n;
			continue;
		}
		if (*p != '\\' || end - p < 2)
			return NULL; /* a control byte, or the end */
		*esc = true;
		uint8_t e = p[1];
		if (e != 'u') {
			switch (e) {
			case '"': case '\\': case '/':
				*uesc = true; /* decoded, it is another byte than the raw text shows */
				/* fall through */
			case 'b': case 'f': case 'n': case 'r': case 't':
				p += 2;
				continue;
			default:
				return NULL;
			}
		}
		*uesc = true;
		if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
			return NULL;
		uint32_t cp = hex4(p + 2);
		p += 6;
		if (cp >= 0xdc00 && cp < 0xe000) {
			*err = JSON_ERR_UTF8; /* a low surrogate alone */
			return NULL;
		}
		if (cp >= 0xd800 && cp < 0xdc00) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
			    !is_hex(p[5]) || hex4(p + 2) < 0xdc00 || hex4(p + 2) >= 0xe000) {
				*err = JSON_ERR_UTF8; /* a high surrogate without its low half */
				return NULL;
			}
			p += 6;
		}
	}
}

/* FNV-1a over the decoded bytes of a key (byte by byte, so a key with escapes
 * hashes like its plain twin). */
static uint64_t key_hash(const uint8_t *raw, size_t len, bool esc)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	if (!esc) {
		for (const uint8_t *p = raw; p < raw + len; p++)
			h = (h ^ *p) * 0x100000001b3ULL;
		return h;
	}
	struct dcursor d = { raw, raw + len, { 0 }, 0, 0 };
	for (int c; (c = dnext(&d)) >= 0;)
		h = (h ^ (uint8_t)c) * 0x100000001b3ULL;
	return h;
}

/* Equal once decoded? */
static bool key_eq(const struct json_key *a, const struct json_key *b)
{
	if (!a->esc && !b->esc)
		return a->len == b->len && memcmp(a->raw, b->raw, a->len) == 0;
	struct dcursor x = { a->raw, a->raw + a->len, { 0 }, 0, 0 }, y = { b->raw, b->raw + b->len, { 0 }, 0, 0 };
	for (;;) {
		int cx = dnext(&x), cy = dnext(&y);
		if (cx != cy)
			return false;
		if (cx < 0)
			return true;
	}
}

static int key_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct json_key *)a)->hash, y = ((const struct json_key *)b)->hash;
	return x < y ? -1 : x > y;
}

/* Do keys [from, to) of the table hold two equal ones? Small objects pairwise,
 * larger ones sorted by hash (so a hostile object of 50,000 keys costs n log n). */
static bool has_dup(struct json_key *k, size_t from, size_t to)
{
	size_t n = to - from;
	if (n < 2)
		return false;
	if (n <= 8) {
		for (size_t i = from; i < to; i++)
			for (size_t j = i + 1; j < to; j++)
				if (k[i].hash == k[j].hash && key_eq(&k[i], &k[j]))
					return true;
		return false;
	}
	qsort(k + from, n, sizeof(*k), key_cmp);
	for (size_t i = from; i + 1 < to; i++)
		for (size_t j = i + 1; j < to && k[j].hash == k[i].hash; j++)
			if (key_eq(&k[i], &k[j]))
				return true;
	return false;
}

static enum json_kind kind_at(uint8_t c)
{
	switch (c) {
	case '{': return JSON_OBJECT;
	case '[': return JSON_ARRAY;
	case '"': return JSON_STRING;
	case 't': return JSON_TRUE;
	case 'f': return JSON_FALSE;
	case 'n': return JSON_NULL;
	default: return JSON_NUMBER;
	}
}

bool json_check(struct spop_slice doc, struct json_keytab *keys, json_escaped_fn on_escaped, void *arg,
                struct json_top *top, struct json_report *r)
{
	/* An explicit stack: per open container, whether it is an object and where its
	 * keys start in the table. */
	struct { bool obj; size_t kfrom; const uint8_t *start; } st[JSON_MAX_DEPTH + 1];
	int depth = 0;
	size_t nk = 0;
	if (!doc.ptr)
		doc = (struct spop_slice){ (const uint8_t *)"", 0 };
	const uint8_t *p = doc.ptr, *end = doc.ptr + doc.len;
	enum json_err err = JSON_ERR_SYNTAX;
	bool esc, uesc;
	const uint8_t *vstart = NULL; /* the top-level member's value being read */
	struct json_member *cur = NULL;

	r->err = JSON_OK;
	if (top) {
		top->n = 0;
		top->more = false;
	}
	p = ws(p, end);
	goto value;

value: /* p at a value */
	if (p >= end)
		goto bad;
	if (cur) {
		if (depth == 1)
			vstart = p;
		else if (depth == 2 && !st[1].obj && vstart == st[1].start)
			cur->count++; /* an element of the member's array */
	}
	if (*p == '{' || *p == '[') {
		if (depth == JSON_MAX_DEPTH) {
			err = JSON_ERR_DEPTH;
			goto bad;
		}
		st[depth].obj = *p == '{';
		st[depth].kfrom = nk;
		st[depth].start = p;
		depth++;
		p = ws(p + 1, end);
		if (p < end && *p == (st[depth - 1].obj ? '}' : ']')) {
			p++;
			goto close;
		}
		if (st[depth - 1].obj)
			goto key;
		goto value;
	}
	if (*p == '"') {
		const uint8_t *s = p;
		if (!(p = check_string(p, end, &esc, &uesc, &err))) {
			p = s;
			goto bad;
		}
		if (uesc && on_escaped)
			on_escaped(arg, (struct spop_slice){ s + 1, (size_t)(p - s - 2) });
	} else {
		const uint8_t *q;
		switch (*p) {
		case 't': q = literal(p, end, "true", 4); break;
		case 'f': q = literal(p, end, "false", 5); break;
		case 'n': q = literal(p, end, "null", 4); break;
		default: q = skip_number(p, end); break;
		}
		if (!q)
			goto bad;
		p = q;
	}
	goto after;

key: /* p at a key of the object on top */
	if (p >= end || *p != '"')
		goto bad;
	{
		const uint8_t *s = p;
		if (!(p = check_string(p, end, &esc, &uesc, &err))) {
			p = s;
			goto bad;
		}
		struct spop_slice raw = { s + 1, (size_t)(p - s - 2) };
		if (uesc && on_escaped)
			on_escaped(arg, raw);
		if (nk == keys->cap) {
			err = JSON_ERR_DEPTH; /* cannot happen with a table of len/4 + 1 */
			goto bad;
		}
		keys->k[nk++] = (struct json_key){ key_hash(raw.ptr, raw.len, esc), raw.ptr, (uint32_t)raw.len, esc };
		if (top && depth == 1) {
			cur = top->n < JSON_TOP_MAX ? &top->m[top->n] : NULL;
			if (cur)
				*cur = (struct json_member){ .key = raw, .count = 0 };
			else
				top->more = true;
		}
	}
	p = ws(p, end);
	if (p >= end || *p != ':')
		goto bad;
	p = ws(p + 1, end);
	goto value;

close: /* the container on top just closed */
	depth--;
	if (st[depth].obj) {
		if (has_dup(keys->k, st[depth].kfrom, nk)) {
			err = JSON_ERR_DUPKEY;
			goto bad;
		}
		nk = st[depth].kfrom;
	}
	/* fall through */
after: /* a value ended */
	if (cur && depth == 1) { /* a top-level member is complete */
		cur->val = (struct json_val){ kind_at(*vstart), { vstart, (size_t)(p - vstart) } };
		top->n++;
		cur = NULL;
	}
	p = ws(p, end);
	if (depth == 0) {
		if (p != end)
			goto bad;
		return true;
	}
	if (p >= end)
		goto bad;
	if (*p == ',') {
		p = ws(p + 1, end);
		if (st[depth - 1].obj)
			goto key;
		goto value;
	}
	if (*p == (st[depth - 1].obj ? '}' : ']')) {
		p++;
		goto close;
	}
bad:
	r->err = err;
	r->at = (size_t)(p - doc.ptr);
	return false;
}
