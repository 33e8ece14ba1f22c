/* ctx.c: see ctx.h. */
#include "ctx.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chars.h"

static bool put_field(char *dst, size_t room, size_t *o, struct spop_slice v)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = v.ptr[i];
		if (c == '%' || c == '|' || c <= 0x20 || c >= 0x7f) {
			if (*o + 3 >= room)
				return false;
			dst[(*o)++] = '%';
			dst[(*o)++] = hex[c >> 4];
			dst[(*o)++] = hex[c & 15];
		} else {
			if (*o + 1 >= room)
				return false;
			dst[(*o)++] = (char)c;
		}
	}
	if (*o + 1 >= room)
		return false;
	dst[(*o)++] = '|';
	return true;
}

size_t ctx_encode(const struct call_ctx *c, char *dst, size_t room)
{
	size_t o = 0;
	if (room < 4)
		return 0;
	dst[o++] = '1';
	dst[o++] = '|';
	if (!put_field(dst, room, &o, c->provider) || !put_field(dst, room, &o, c->model))
		return 0;
	for (int i = 0; i < ID_FIELDS; i++)
		if (!put_field(dst, room, &o, c->id[i]))
			return 0;
	if (!put_field(dst, room, &o, c->key_id))
		return 0;
	int n = snprintf(dst + o, room - o, "%" PRId64 "|%d", c->start_us, (c->stream ? 1 : 0) | (c->untrusted ? 2 : 0));
	if (n < 0 || (size_t)n >= room - o)
		return 0;
	return o + (size_t)n;
}

bool ctx_decode(struct spop_slice s, struct call_ctx *c, char *scratch, size_t room)
{
	struct spop_slice f[10];
	size_t nf = 0, start = 0;
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i <= s.len; i++) {
		if (i == s.len || s.ptr[i] == '|') {
			if (nf == 10)
				return false;
			f[nf++] = (struct spop_slice){ s.ptr + start, i - start };
			start = i + 1;
		}
	}
	if (nf != 10 || !SPOP_SLICE_IS(f[0], "1"))
		return false;
	size_t o = 0;
	for (size_t k = 1; k <= 7; k++) { /* the escaped text fields */
		char *out = scratch + o;
		size_t len = 0;
		for (size_t i = 0; i < f[k].len; i++) {
			unsigned char ch = f[k].ptr[i];
			if (ch == '%') {
				if (i + 2 >= f[k].len || hex_value(f[k].ptr[i + 1]) < 0 || hex_value(f[k].ptr[i + 2]) < 0)
					return false;
				ch = (unsigned char)(hex_value(f[k].ptr[i + 1]) << 4 | hex_value(f[k].ptr[i + 2]));
				i += 2;
			}
			if (o + len >= room)
				return false;
			out[len++] = (char)ch;
		}
		struct spop_slice v = { (const uint8_t *)out, len };
		o += len;
		if (k == 1)
			c->provider = v;
		else if (k == 2)
			c->model = v;
		else if (k == 7)
			c->key_id = v;
		else
			c->id[k - 3] = v;
	}
	int64_t t = 0;
	if (f[8].len == 0 || f[8].len > 19)
		return false;
	for (size_t i = 0; i < f[8].len; i++) {
		if (f[8].ptr[i] < '0' || f[8].ptr[i] > '9')
			return false;
		t = t * 10 + (f[8].ptr[i] - '0');
	}
	c->start_us = t;
	/* flags digit: bit 0 stream, bit 1 the conversation carries untrusted data */
	if (f[9].len != 1 || f[9].ptr[0] < '0' || f[9].ptr[0] > '3')
		return false;
	c->stream = (f[9].ptr[0] - '0') & 1;
	c->untrusted = (f[9].ptr[0] - '0') & 2;
	return true;
}
