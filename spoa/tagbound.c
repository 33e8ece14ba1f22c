/* tagbound.c: see tagbound.h. */
#include "tagbound.h"

#include <string.h>

#include "fasthash.h"

static const struct spop_slice too_long = { (const uint8_t *)"too_long", 8 };
static const struct spop_slice other = { (const uint8_t *)"other", 5 };

struct spop_slice tagbound_apply(struct tagbound *b, const char *key, struct spop_slice v, unsigned max_len,
                                 unsigned max_values)
{
	if (v.len > max_len)
		return too_long;
	if (max_values > TAGBOUND_SLOTS / 2)
		max_values = TAGBOUND_SLOTS / 2; /* keeps probing short and always ending */
	int k;
	for (k = 0; k < TAGBOUND_KEYS; k++)
		if (!b->seen[k].key || b->seen[k].key == key || strcmp(b->seen[k].key, key) == 0)
			break;
	if (k == TAGBOUND_KEYS)
		return other;
	b->seen[k].key = key;
	uint64_t h = fasthash(v.ptr, v.len, 0) | 1; /* 0 marks an empty slot */
	size_t i = h % TAGBOUND_SLOTS;
	for (;;) {
		if (b->seen[k].slot[i] == h)
			return v;
		if (b->seen[k].slot[i] == 0)
			break;
		i = (i + 1) % TAGBOUND_SLOTS;
	}
	if (b->seen[k].count >= max_values)
		return other;
	b->seen[k].slot[i] = h;
	b->seen[k].count++;
	return v;
}

bool tagbound_is_overflow(struct spop_slice v)
{
	return (v.len == other.len && memcmp(v.ptr, other.ptr, other.len) == 0) ||
	       (v.len == too_long.len && memcmp(v.ptr, too_long.ptr, too_long.len) == 0);
}

void tagbound_reset(struct tagbound *b)
{
	for (int i = 0; i < TAGBOUND_KEYS; i++) {
		b->seen[i].count = 0;
		memset(b->seen[i].slot, 0, sizeof(b->seen[i].slot));
	}
}
