/* b64url.h: base64url without padding, for the tests, fuzzers and benches that
 * build JWTs and JWKS by hand. out needs 4*ceil(n/3)+1 bytes. */
#ifndef TEST_B64URL_H
#define TEST_B64URL_H

#include <stddef.h>

static inline size_t b64url(const unsigned char *in, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0u);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = t[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = t[v & 63];
	}
	out[o] = '\0';
	return o;
}

#endif
