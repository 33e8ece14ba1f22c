/* endpoint.c: see endpoint.h. */
#include "endpoint.h"

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

int endpoint_list_parse(const cJSON *arr, struct endpoint_list *out, const char *where, char *err, size_t errlen)
{
	const cJSON *it;
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) > ENDPOINTS_MAX)
		goto bad;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it) || endpoint_check(it->valuestring) < 0)
			goto bad;
		snprintf(out->e[out->n++], ENDPOINT_LEN, "%s", it->valuestring);
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: expected a list of at most %d endpoints like [\"POST /files\", \"GET /files/*\"] "
	         "(METHOD, one space, a path after the provider's prefix; '*' matches within one segment)",
	         where, ENDPOINTS_MAX);
	return -1;
}
