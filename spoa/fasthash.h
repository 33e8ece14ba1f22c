/* fasthash.h: a quick 64-bit hash, eight bytes per step, for picking slots in
 * per-worker tables (metric series, seen tag values, the JWT cache). Not for
 * security: every table confirms a hit by comparing the real thing or accepts a
 * 2^-64 collision as harmless. */
#ifndef SPOA_FASTHASH_H
#define SPOA_FASTHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t fasthash(const void *data, size_t n, uint64_t h)
{
	const uint8_t *p = data;
	h ^= (uint64_t)n * 0x9e3779b97f4a7c15ULL;
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	uint64_t w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

#endif
