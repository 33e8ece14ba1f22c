/* chars.h: byte classes the parsers share (hex digits, RFC 3986's unreserved set,
 * UTF-8 sequences), so each one reads them the same way. Pure; inline only. */
#ifndef SPOA_CHARS_H
#define SPOA_CHARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0-15 for a hex digit (either case), -1 for anything else. */
static inline int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3986 unreserved: A-Z a-z 0-9 - . _ ~ */
static inline bool uri_unreserved(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

/* One UTF-8 sequence at p (p[0] >= 0x80): its length, 0 when invalid (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static inline size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
	uint8_t c = p[0];
	size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (!n || (size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
	    (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

#endif
