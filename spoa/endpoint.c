/* endpoint.c: see endpoint.h. */
#include "endpoint.h"

#include "cfgjson.h"
#include "glob.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

bool endpoint_allowed(const struct endpoint_list *l, struct spop_slice method, struct spop_slice path)
{
	for (int i = 0; i < l->n; i++) {
		const char *e = l->e[i], *sp = strchr(e, ' ');
		if (!sp || (size_t)(sp - e) != method.len || memcmp(e, method.ptr, method.len) != 0)
			continue;
		if (glob_match_path(sp + 1, path.ptr, path.len))
			return true;
	}
	return false;
}

int endpoint_check(const char *s)
{
	const char *sp = strchr(s, ' ');
	if (!sp || sp == s || sp[1] != '/' || strlen(s) >= ENDPOINT_LEN)
		return -1;
	for (const char *c = s; c < sp; c++)
		if (*c < 'A' || *c > 'Z')
			return -1;
	for (const char *c = sp + 1; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '?' || *c == '%' || *c == '#')
			return -1;
	return 0;
}

#define STR_(x) #x
#define STR(x) STR_(x)

int endpoint_list_parse(const cJSON *arr, const char *path, const char *key, struct endpoint_list *out, char *err,
                        size_t errlen)
{
	static const char want[] = "expected a list of at most " STR(ENDPOINTS_MAX) " endpoints like [\"POST /files\", "
	                           "\"GET /files/*\"] (METHOD, one space, a path after the provider's prefix; '*' matches "
	                           "within one segment)";
	memset(out, 0, sizeof(*out));
	if (cfg_strings(arr, path, key, 0, 0, ENDPOINTS_MAX, out->e[0], ENDPOINT_LEN, &out->n, want, err, errlen) < 0)
		return -1;
	for (int i = 0; i < out->n; i++)
		if (endpoint_check(out->e[i]) < 0)
			return cfg_fail(err, errlen, path, key, "%s", want);
	return 0;
}
