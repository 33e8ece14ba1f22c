/* jsonscan.c: see jsonscan.h. */
#include "jsonscan.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const uint8_t *ws(const uint8_t *p, const uint8_t *end)
{
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
	const uint8_t *end = doc.ptr + doc.len;
	const uint8_t *p = ws(doc.ptr, end);
	p = value(p, end, 0, v);
	return p && ws(p, end) == end;
}

bool json_iter_init(struct json_iter *it, struct spop_slice obj)
{
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
	size_t kl = strlen(key);
	if (!json_iter_init(&it, obj))
		return false;
	while (json_iter_next(&it, &k, out) == 1)
		if (k.len == kl && memcmp(k.ptr, key, kl) == 0)
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

static int hexval(uint8_t c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
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

long json_string_decode(const struct json_val *v, char *dst, size_t room)
{
	if (v->kind != JSON_STRING || v->raw.len < 2)
		return -1;
	const uint8_t *p = v->raw.ptr + 1, *end = v->raw.ptr + v->raw.len - 1; /* the scanner checked the escapes */
	size_t o = 0;
	while (p < end) {
		if (o + 4 >= room)
			return -1;
		if (*p != '\\') {
			dst[o++] = (char)*p++;
			continue;
		}
		uint8_t e = p[1];
		p += 2;
		switch (e) {
		case 'b': dst[o++] = '\b'; break;
		case 'f': dst[o++] = '\f'; break;
		case 'n': dst[o++] = '\n'; break;
		case 'r': dst[o++] = '\r'; break;
		case 't': dst[o++] = '\t'; break;
		case 'u': {
			uint32_t cp = (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
				uint32_t lo = (uint32_t)(hexval(p[2]) << 12 | hexval(p[3]) << 8 | hexval(p[4]) << 4 | hexval(p[5]));
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
			}
			if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd; /* a lone surrogate */
			o += utf8_put(dst + o, cp);
			break;
		}
		default: dst[o++] = (char)e; break; /* " \\ / */
		}
	}
	dst[o] = '\0';
	return (long)o;
}

bool json_aiter_init(struct json_aiter *it, const struct json_val *arr)
{
	it->failed = arr->kind != JSON_ARRAY;
	it->first = true;
	it->end = arr->raw.ptr + arr->raw.len;
	it->p = it->failed ? it->end : arr->raw.ptr + 1;
	return !it->failed;
}

int json_aiter_next(struct json_aiter *it, struct json_val *el)
{
	if (it->failed)
		return -1;
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
	if (!(p = value(p, it->end, 1, el)))
		goto bad;
	it->p = p;
	return 1;
bad:
	it->failed = true;
	return -1;
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

bool json_as_plain_string(const struct json_val *v, struct spop_slice *out)
{
	if (v->kind != JSON_STRING || v->raw.len < 2)
		return false;
	out->ptr = v->raw.ptr + 1;
	out->len = v->raw.len - 2;
	return memchr(out->ptr, '\\', out->len) == NULL;
}
