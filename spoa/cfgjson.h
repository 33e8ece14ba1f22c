/* cfgjson.h: reading settings out of a parsed JSON document (cJSON).
 *
 * The config file, the policy and the keys file are JSON. Every module that reads
 * a part of them checks its values with these helpers, so one kind of value is
 * checked one way everywhere and every problem is reported one way: one line
 * "<path>: <problem>", the path naming the field as the document spells it
 * ("statsd.flush_ms: expected an integer from 10 to 10000",
 * "rules[2] (\"no-mail\").require_headers: expected an array of agent_id, user_id,
 * session_id, execution_id"). A key that nothing reads is an error, never
 * skipped: a typo must not silently do nothing (cfg_unknown, cfg_object).
 *
 * Conventions of every reader here:
 *  - The value is a cJSON item, or NULL when absent. Where it sits is `path` (its
 *    parent's path; "" or NULL at the top of the document) and `key` (its name in
 *    the parent, or NULL when `path` already names the value): messages begin
 *    "path.key: ".
 *  - They return 0 with the result stored, or -1 with err[errlen] holding the one
 *    line (NUL-terminated, truncated to fit; "missing; " before the problem when
 *    a required value is absent). They never print. On -1 a scalar result is
 *    left as it was; a list may be partly written.
 *  - `want`, where a reader takes one, replaces the default problem text
 *    ("expected true or false") with the caller's own hint; NULL keeps the default.
 *  - Name tables are arrays of strings ended by NULL. The enum readers give a
 *    name's index in its table.
 *
 * Ownership: nothing here allocates but cfg_parse, whose tree the caller frees with
 * cJSON_Delete. Strings are copied into arrays the caller owns, never pointed at,
 * so nothing a reader stores refers into the tree once it is freed. Pure. */
#ifndef SPOA_CFGJSON_H
#define SPOA_CFGJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define CFG_OPTIONAL 0x1u   /* absent (NULL) is no error: the result keeps what it held */
#define CFG_NONEMPTY 0x2u   /* strings, or each string of a list: "" is refused */
#define CFG_SCALAR   0x4u   /* lists: one value alone stands for a list of one */
#define CFG_WHOLE    0x8u   /* cfg_parse: text[len] is the NUL; no NUL inside, nothing after the value */

#define CFG_PATH_MAX 256    /* room for a path; longer ones are cut (keys at 64 bytes) */

/* The document: a tree the caller frees with cJSON_Delete, or NULL with err set
 * ("not valid JSON (near byte 12, line 2)"). Without CFG_WHOLE, what follows the
 * first value is ignored (as cJSON_ParseWithLength does). */
struct cJSON *cfg_parse(const char *text, size_t len, unsigned flags, char *err, size_t errlen);

/* "path.key", "key" at the top, "path" without a key; into dst, which it returns. */
const char *cfg_path(char *dst, size_t room, const char *path, const char *key);
/* "path.key[idx]" (or "path[idx]" without a key). */
const char *cfg_path_idx(char *dst, size_t room, const char *path, const char *key, int idx);

/* Sets err to "path.key: " and the formatted problem. Returns -1, so that a
 * caller can `return cfg_fail(...)`. */
int cfg_fail(char *err, size_t errlen, const char *path, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* The index of name in a name table, or -1 (also for a NULL name). */
int cfg_lookup(const char *name, const char *const *names);

/* For a member no one reads: "path.key: unknown <what> (known: a, b, c)", the list
 * made from `known` (NULL: no list). Returns -1. */
int cfg_unknown(char *err, size_t errlen, const char *path, const char *key, const char *what,
                const char *const *known);

/* An object. With `only`, every member must be named in it, and none twice
 * ("path.key.member: unknown key (known: ...)", "...: given twice"); with `want`,
 * every one of these problems gives that text instead. */
int cfg_object(const struct cJSON *v, const char *path, const char *key, unsigned flags, const char *const *only,
               const char *want, char *err, size_t errlen);

/* An array of min to max elements (max INT_MAX: no bound), not yet read:
 * "expected an array of 1 to 4 <what>" (what: a plural noun; NULL: "items"). */
int cfg_array(const struct cJSON *v, const char *path, const char *key, unsigned flags, int min, int max,
              const char *what, char *err, size_t errlen);

/* true or false. */
int cfg_bool(const struct cJSON *v, const char *path, const char *key, unsigned flags, bool *out, const char *want,
             char *err, size_t errlen);

/* A whole number from lo to hi (1.0 is 1; 1.5 is refused). */
int cfg_int(const struct cJSON *v, const char *path, const char *key, unsigned flags, int64_t lo, int64_t hi,
            int64_t *out, const char *want, char *err, size_t errlen);

/* Any number from lo to hi. */
int cfg_number(const struct cJSON *v, const char *path, const char *key, unsigned flags, double lo, double hi,
               double *out, const char *want, char *err, size_t errlen);

/* A string shorter than room, copied into dst[room] (NUL-terminated). */
int cfg_str(const struct cJSON *v, const char *path, const char *key, unsigned flags, char *dst, size_t room,
            const char *want, char *err, size_t errlen);

/* A string that is one of names; *out is its index ("expected one of a, b, c"). */
int cfg_enum(const struct cJSON *v, const char *path, const char *key, unsigned flags, const char *const *names,
             int *out, const char *want, char *err, size_t errlen);

/* A non-empty list of names (with CFG_SCALAR, or one name alone) as a bit set:
 * bit i for names[i] (at most 32 names). A name may repeat. */
int cfg_enum_set(const struct cJSON *v, const char *path, const char *key, unsigned flags, const char *const *names,
                 unsigned *out, const char *want, char *err, size_t errlen);

/* A list of min to max strings (with CFG_SCALAR, or one string alone), each
 * shorter than width, copied into the rows of dst (row i at dst + i * width);
 * *n is how many. Without `want`, a bad element is named by its index
 * ("keys[0].models[2]: ..."); with it, every problem gives "path.key: want". */
int cfg_strings(const struct cJSON *v, const char *path, const char *key, unsigned flags, int min, int max, char *dst,
                size_t width, int *n, const char *want, char *err, size_t errlen);

#endif
