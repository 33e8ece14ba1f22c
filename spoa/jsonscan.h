/* jsonscan.h: reading a few fields out of a JSON document without building it.
 *
 * LLM requests and responses are large; the agent needs a handful of members
 * ("model", "stream", "usage"...). The scanner walks the bytes once, hands back
 * members and values as slices of the buffer, skips everything else, and stops
 * at the first malformed byte. No allocation, no copy, bounded nesting. Pure. */
#ifndef SPOA_JSONSCAN_H
#define SPOA_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"

#define JSON_MAX_DEPTH 64

enum json_kind { JSON_BAD = 0, JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL };

/* A value: its kind and its bytes (for a string, with the quotes). */
struct json_val {
	enum json_kind kind;
	struct spop_slice raw;
};

/* Iterates the members of the object `obj` (raw bytes starting at '{'). */
struct json_iter {
	const uint8_t *p, *end;
	bool first;
	bool failed;
};

bool json_iter_init(struct json_iter *it, struct spop_slice obj);
/* Next member: 1 with key (raw, without quotes, escapes left as is) and value;
 * 0 at the end of the object; -1 when malformed or truncated. */
int json_iter_next(struct json_iter *it, struct spop_slice *key, struct json_val *val);

/* The top-level value of a document (leading/trailing space allowed). The whole
 * document must be that one value. */
bool json_parse_value(struct spop_slice doc, struct json_val *v);

/* Member `key` of object obj (first occurrence); false if absent or malformed. */
bool json_get(struct spop_slice obj, const char *key, struct json_val *out);

/* Follows a dotted path of object members: "usage.prompt_tokens". */
bool json_get_path(struct spop_slice obj, const char *path, struct json_val *out);

/* An integer value (no fraction or exponent) in int64 range. */
bool json_as_int(const struct json_val *v, int64_t *out);

/* A string value without escapes, as a slice of the buffer (no quotes). Strings
 * with escapes are refused: identifiers the agent reads never need them. */
bool json_as_plain_string(const struct json_val *v, struct spop_slice *out);

/* A string value decoded (escapes resolved, \\u to UTF-8) into dst; returns the
 * length, or -1 when it is not a string or does not fit. */
long json_string_decode(const struct json_val *v, char *dst, size_t room);

/* Elements of an array value; -1 when it is not a well-formed array. */
long json_array_len(const struct json_val *v);

/* Iterates the elements of an array value: 1 with *el, 0 at the end, -1 malformed. */
struct json_aiter {
	const uint8_t *p, *end;
	bool first, failed;
};
bool json_aiter_init(struct json_aiter *it, const struct json_val *arr);
int json_aiter_next(struct json_aiter *it, struct json_val *el);

#endif
