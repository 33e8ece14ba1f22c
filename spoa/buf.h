/* buf.h: a growable byte buffer. The owner calls buf_free(). */
#ifndef SPOA_BUF_H
#define SPOA_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;  /* bytes in use, from data[0] */
	size_t cap;
};

/* Makes room for n more bytes; returns the free space, or NULL when out of memory
 * (the buffer is then unchanged). */
uint8_t *buf_reserve(struct buf *b, size_t n);
/* Appends n bytes; returns 0, or -1 when out of memory. */
int buf_append(struct buf *b, const void *src, size_t n);
/* Drops the first n bytes, moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

#endif
