/* cfgjson.c: see cfgjson.h. */
#include "cfgjson.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct cJSON *cfg_parse(const char *text, size_t len, unsigned flags, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *root;
	if (flags & CFG_WHOLE) {
		if (memchr(text, '\0', len) || text[len] != '\0') {
			snprintf(err, errlen, "not valid JSON (contains a NUL byte)");
			return NULL;
		}
		/* The length includes the terminator: cJSON checks that nothing trails the value. */
		root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
	} else {
		root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	}
	if (!root) {
		size_t at = end && end >= text ? (size_t)(end - text) : 0, line = 1;
		for (size_t i = 0; i < at && i < len; i++)
			line += text[i] == '\n';
		snprintf(err, errlen, "not valid JSON (near byte %zu, line %zu)", at, line);
	}
	return root;
}

const char *cfg_path(char *dst, size_t room, const char *path, const char *key)
{
	bool top = !path || !*path;
	if (!key)
		snprintf(dst, room, "%s", top ? "" : path);
	else
		snprintf(dst, room, "%s%s%.64s", top ? "" : path, top ? "" : ".", key);
	return dst;
}

const char *cfg_path_idx(char *dst, size_t room, const char *path, const char *key, int idx)
{
	size_t n = strlen(cfg_path(dst, room, path, key));
	snprintf(dst + n, room - n, "[%d]", idx);
	return dst;
}

/* err = "path.key: " lead, then fmt. */
static void vfail(char *err, size_t errlen, const char *path, const char *key, const char *lead, const char *fmt,
                  va_list ap)
{
	char p[CFG_PATH_MAX];
	if (!err || !errlen)
		return;
	int n = snprintf(err, errlen, "%s: %s", cfg_path(p, sizeof(p), path, key), lead);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
}

int cfg_fail(char *err, size_t errlen, const char *path, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, errlen, path, key, "", fmt, ap);
	va_end(ap);
	return -1;
}

/* What is wrong with v: the caller's hint when it gave one, else the default
 * problem; "missing; " first when v is absent. */
static int bad(const cJSON *v, char *err, size_t errlen, const char *path, const char *key, const char *want,
               const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int bad(const cJSON *v, char *err, size_t errlen, const char *path, const char *key, const char *want,
               const char *fmt, ...)
{
	const char *lead = v ? "" : "missing; ";
	if (want)
		return cfg_fail(err, errlen, path, key, "%s%s", lead, want);
	va_list ap;
	va_start(ap, fmt);
	vfail(err, errlen, path, key, lead, fmt, ap);
	va_end(ap);
	return -1;
}

int cfg_lookup(const char *name, const char *const *names)
{
	for (int i = 0; name && names[i]; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

/* "a, b, c" */
static const char *join(char *dst, size_t room, const char *const *names)
{
	size_t o = 0;
	dst[0] = '\0';
	for (int i = 0; names[i]; i++) {
		int n = snprintf(dst + o, room - o, "%s%s", i ? ", " : "", names[i]);
		if (n < 0 || (size_t)n >= room - o)
			break;
		o += (size_t)n;
	}
	return dst;
}

int cfg_unknown(char *err, size_t errlen, const char *path, const char *key, const char *what,
                const char *const *known)
{
	char list[512];
	if (!known)
		return cfg_fail(err, errlen, path, key, "unknown %s", what);
	return cfg_fail(err, errlen, path, key, "unknown %s (known: %s)", what, join(list, sizeof(list), known));
}

int cfg_object(const cJSON *v, const char *path, const char *key, unsigned flags, const char *const *only,
               const char *want, char *err, size_t errlen)
{
	char p[CFG_PATH_MAX];
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (!cJSON_IsObject(v))
		return bad(v, err, errlen, path, key, want, "expected an object");
	if (!only)
		return 0;
	cfg_path(p, sizeof(p), path, key);
	for (const cJSON *m = v->child; m; m = m->next) {
		bool known = cfg_lookup(m->string, only) >= 0, twice = false;
		for (const cJSON *o = m->next; o && known && !twice; o = o->next)
			twice = strcmp(o->string, m->string) == 0;
		if (known && !twice)
			continue;
		if (want)
			return cfg_fail(err, errlen, path, key, "%s", want);
		return twice ? cfg_fail(err, errlen, p, m->string, "given twice") : cfg_unknown(err, errlen, p, m->string, "key", only);
	}
	return 0;
}

int cfg_array(const cJSON *v, const char *path, const char *key, unsigned flags, int min, int max, const char *what,
              char *err, size_t errlen)
{
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
	if (n >= min && n <= max)
		return 0;
	if (!what)
		what = "items";
	if (max == INT_MAX)
		return min > 0 ? bad(v, err, errlen, path, key, NULL, "expected an array of at least %d %s", min, what)
		               : bad(v, err, errlen, path, key, NULL, "expected an array of %s", what);
	if (min == 0)
		return bad(v, err, errlen, path, key, NULL, "expected an array of at most %d %s", max, what);
	return bad(v, err, errlen, path, key, NULL, "expected an array of %d to %d %s", min, max, what);
}

int cfg_bool(const cJSON *v, const char *path, const char *key, unsigned flags, bool *out, const char *want,
             char *err, size_t errlen)
{
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (!cJSON_IsBool(v))
		return bad(v, err, errlen, path, key, want, "expected true or false");
	*out = cJSON_IsTrue(v);
	return 0;
}

int cfg_int(const cJSON *v, const char *path, const char *key, unsigned flags, int64_t lo, int64_t hi,
            int64_t *out, const char *want, char *err, size_t errlen)
{
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	/* the range first: converting a double beyond int64 is undefined */
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
	if (!cJSON_IsNumber(v) || !(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
		return bad(v, err, errlen, path, key, want, "expected an integer from %lld to %lld", (long long)lo,
		           (long long)hi);
	*out = (int64_t)d;
	return 0;
}

int cfg_number(const cJSON *v, const char *path, const char *key, unsigned flags, double lo, double hi,
               double *out, const char *want, char *err, size_t errlen)
{
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
		return bad(v, err, errlen, path, key, want, "expected a number from %g to %g", lo, hi);
	*out = v->valuedouble;
	return 0;
}

/* Is v a string that fits room (and is not empty, when asked)? Its length in *len. */
static bool fits(const cJSON *v, unsigned flags, size_t room, size_t *len)
{
	if (!cJSON_IsString(v))
		return false;
	*len = strlen(v->valuestring);
	return *len < room && !(*len == 0 && (flags & CFG_NONEMPTY));
}

#define STR_PROBLEM(flags) \
	((flags) & CFG_NONEMPTY ? "expected a non-empty string of at most %zu bytes" : "expected a string of at most %zu bytes")

int cfg_str(const cJSON *v, const char *path, const char *key, unsigned flags, char *dst, size_t room,
            const char *want, char *err, size_t errlen)
{
	size_t n;
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (!fits(v, flags, room, &n))
		return bad(v, err, errlen, path, key, want, STR_PROBLEM(flags), room - 1);
	memcpy(dst, v->valuestring, n + 1);
	return 0;
}

int cfg_enum(const cJSON *v, const char *path, const char *key, unsigned flags, const char *const *names, int *out,
             const char *want, char *err, size_t errlen)
{
	char list[512];
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	int i = cJSON_IsString(v) ? cfg_lookup(v->valuestring, names) : -1;
	if (i < 0)
		return bad(v, err, errlen, path, key, want, "expected one of %s", join(list, sizeof(list), names));
	*out = i;
	return 0;
}

int cfg_enum_set(const cJSON *v, const char *path, const char *key, unsigned flags, const char *const *names,
                 unsigned *out, const char *want, char *err, size_t errlen)
{
	char list[512];
	unsigned set = 0;
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (cJSON_IsString(v) && (flags & CFG_SCALAR)) {
		int i = cfg_lookup(v->valuestring, names);
		if (i < 0)
			goto bad;
		set = 1u << i;
	} else if (cJSON_IsArray(v) && v->child) {
		const cJSON *a;
		cJSON_ArrayForEach(a, v) {
			int i = cJSON_IsString(a) ? cfg_lookup(a->valuestring, names) : -1;
			if (i < 0)
				goto bad;
			set |= 1u << i;
		}
	} else {
		goto bad;
	}
	*out = set;
	return 0;
bad:
	join(list, sizeof(list), names);
	if (flags & CFG_SCALAR)
		return bad(v, err, errlen, path, key, want, "expected one of %s, or an array of them", list);
	return bad(v, err, errlen, path, key, want, "expected an array of %s", list);
}

int cfg_strings(const cJSON *v, const char *path, const char *key, unsigned flags, int min, int max, char *dst,
                size_t width, int *n, const char *want, char *err, size_t errlen)
{
	char p[CFG_PATH_MAX];
	size_t len;
	if (!v && (flags & CFG_OPTIONAL))
		return 0;
	if (cJSON_IsString(v) && (flags & CFG_SCALAR) && min <= 1 && max >= 1) {
		if (cfg_str(v, path, key, flags & CFG_NONEMPTY, dst, width, want, err, errlen) < 0)
			return -1;
		*n = 1;
		return 0;
	}
	int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
	if (count < min || count > max) {
		const char *either = flags & CFG_SCALAR ? "a string or " : "";
		if (min == 0)
			return bad(v, err, errlen, path, key, want, "expected %san array of at most %d strings", either, max);
		return bad(v, err, errlen, path, key, want, "expected %san array of %d to %d strings", either, min, max);
	}
	const cJSON *it;
	*n = 0;
	cJSON_ArrayForEach(it, v) {
		if (!fits(it, flags, width, &len))
			return bad(it, err, errlen, want ? path : cfg_path_idx(p, sizeof(p), path, key, *n), want ? key : NULL, want,
			           STR_PROBLEM(flags), width - 1);
		memcpy(dst + (size_t)*n * width, it->valuestring, len + 1);
		(*n)++;
	}
	return 0;
}
