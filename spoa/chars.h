/* chars.h: byte classes the parsers share (hex digits, RFC 3986's unreserved set),
 * so each one reads them the same way. Pure; inline only. */
#ifndef SPOA_CHARS_H
#define SPOA_CHARS_H

#include <stdbool.h>
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

#endif
