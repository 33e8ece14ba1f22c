/* jsonscan.h: reading a few fields out of a JSON document without building it.
 *
 * LLM requests and responses are large; the agent needs a handful of members
 * ("model", "stream", "usage"...). Two steps, so that what the agent reads is what
 * a standard parser gives the provider:
 *  1. json_check walks the whole document once: RFC 8259 syntax, valid UTF-8, no
 *     lone surrogate escape, nesting at most JSON_MAX_DEPTH, and no object with two
 *     keys that are equal once decoded. A document that passes has one reading:
 *     first-wins and last-wins agree, and escapes are the only difference between
 *     the bytes and the values.
 *  2. The lazy readers below hand back members and values as slices of the buffer
 *     and compare keys DECODED ("m\u006fdel" is "model"); strings come back
 *     decoded, as a slice of the document when they hold no escape and in a
 *     caller's arena otherwise.
 * No allocation (json_check's key table and the arena are the caller's). Pure. */
#ifndef SPOA_JSONSCAN_H
#define SPOA_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spop.h"

#define JSON_MAX_DEPTH 64

/* Why a document was refused by json_check. */
enum json_err { JSON_OK = 0, JSON_ERR_SYNTAX, JSON_ERR_DEPTH, JSON_ERR_DUPKEY, JSON_ERR_UTF8 };

/* Room for the keys of the objects open at once, for duplicate detection; owned by
 * the caller (one per worker). A document needs at most len/4 + 1 entries. */
struct json_key { uint64_t hash; const uint8_t *raw; uint32_t len; bool esc; };
struct json_keytab { struct json_key *k; size_t cap; };

struct json_report {
	enum json_err err;
	size_t at;                 /* byte offset of the problem */
};

/* Called for each string (key or value) holding an escape other than \n \r \t \b
 * \f (those read as separators raw too): the raw bytes between the quotes. The DLP
 * scans those decoded. */
typedef void (*json_escaped_fn)(void *arg, struct spop_slice raw);

struct json_top;
/* Validates doc whole (see above). Returns true when it has one reading. `top`
 * (may be NULL) receives the top-level members when doc is an object. */
bool json_check(struct spop_slice doc, struct json_keytab *keys, json_escaped_fn on_escaped, void *arg,
                struct json_top *top, struct json_report *r);
const char *json_err_text(enum json_err e);   /* "duplicate key", ... */

/* Decoded strings: a bump allocator over the caller's buffer, reset per message.
 * Slices it hands out live until the caller resets or frees the buffer. */
struct json_arena { char *buf; size_t cap, used; };

enum json_kind { JSON_BAD = 0, JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL };

/* A value: its kind and its bytes (for a string, with the quotes). */
struct json_val {
	enum json_kind kind;
	struct spop_slice raw;
};

/* The members of a top-level object as json_check saw them, so that readers of
 * the top level need not walk the body again; count is the number of elements
 * of an array value. */
#define JSON_TOP_MAX 64
struct json_member {
	struct spop_slice key;     /* raw, as json_iter_next gives it */
	struct json_val val;
	long count;
};
struct json_top {
	struct json_member m[JSON_TOP_MAX];
	int n;
	bool more;                 /* more members than m holds: walk the body instead */
};

/* Iterates the members of the object `obj` (raw bytes starting at '{'). */
struct json_iter {
	const uint8_t *p, *end;
	bool first;
	bool failed;
};

bool json_iter_init(struct json_iter *it, struct spop_slice obj);
/* Next member: 1 with key (raw, without quotes, escapes left as is: compare it
 * with json_key_is) and value; 0 at the end of the object; -1 when malformed. */
int json_iter_next(struct json_iter *it, struct spop_slice *key, struct json_val *val);

/* The top-level value of a document (leading/trailing space allowed). The whole
 * document must be that one value. */
bool json_parse_value(struct spop_slice doc, struct json_val *v);

/* Is the raw key (as json_iter_next gives it) equal to lit once decoded? */
bool json_key_is(struct spop_slice raw_key, const char *lit);
/* The same for a string literal, deciding by length first: an escape only ever
 * makes a raw key longer than its text, so only longer keys need decoding. */
#define JSON_KEY_IS(k, lit)                                                                          \
	((k).len == sizeof(lit) - 1 ? memcmp((k).ptr, (lit), sizeof(lit) - 1) == 0                    \
	                            : (k).len > sizeof(lit) - 1 && json_key_is((k), (lit)))

/* Member `key` of object obj (compared decoded; after json_check there is at most
 * one); false if absent or malformed. */
bool json_get(struct spop_slice obj, const char *key, struct json_val *out);

/* Follows a dotted path of object members: "usage.prompt_tokens". */
bool json_get_path(struct spop_slice obj, const char *path, struct json_val *out);

/* An integer value (no fraction or exponent) in int64 range. */
bool json_as_int(const struct json_val *v, int64_t *out);

/* A number read by its value, as a parser would: 1e5, 100000.0 and 1E+5 are
 * 100000. Returns 1 with *out for a whole number (clamped to INT64_MAX / INT64_MIN
 * when beyond), 0 when it is a number with a fraction, -1 when not a number. */
int json_as_whole(const struct json_val *v, int64_t *out);

/* A string value decoded: a slice of the document when it holds no escape, else
 * decoded into the arena. False when not a string, or the arena is full (or NULL
 * and the string has an escape). */
bool json_as_string(const struct json_val *v, struct json_arena *a, struct spop_slice *out);


/* Decodes the raw bytes between a string's quotes (checked by json_check) into dst,
 * which has room for at least raw.len bytes; returns the decoded length. */
size_t json_unescape(struct spop_slice raw, char *dst);

/* A string value decoded (escapes resolved, \\u to UTF-8) into dst; returns the
 * length, or -1 when it is not a string or does not fit. */
long json_string_decode(const struct json_val *v, char *dst, size_t room);

/* Elements of an array value; -1 when it is not a well-formed array. */
long json_array_len(const struct json_val *v);

/* Iterates the elements of an array value: 1 with *el, 0 at the end, -1 malformed. */
struct json_aiter {
	const uint8_t *p, *end;
	bool first, failed;
	bool open;                 /* json_aiter_next_obj handed out an object still being read */
};
bool json_aiter_init(struct json_aiter *it, const struct json_val *arr);
int json_aiter_next(struct json_aiter *it, struct json_val *el);

/* Like json_aiter_next, for arrays of objects read member by member (tools with
 * their schemas): an object element comes with *mi ready to iterate its members,
 * and el->raw runs to the end of the array (its own end is not looked for); the
 * next call finishes it, so no element is walked twice. Use the same mi throughout. */
int json_aiter_next_obj(struct json_aiter *it, struct json_val *el, struct json_iter *mi);

#endif
