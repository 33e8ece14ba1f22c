/* buf.c: see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->data && b->cap - b->len >= n)
		return b->data + b->len;
	if (n > SIZE_MAX / 2 - b->len)
		return NULL;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return NULL;
	b->data = d;
	b->cap = cap;
	return d + b->len;
}

int buf_append(struct buf *b, const void *src, size_t n)
{
	uint8_t *p = buf_reserve(b, n);
	if (!p)
		return -1;
	if (n)
		memcpy(p, src, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
