/* hdrs.c: see hdrs.h. */
#include "hdrs.h"

#include <string.h>

int hdrs_next(struct spop_reader *r, struct spop_slice *name, struct spop_slice *value)
{
	if (r->p >= r->end)
		return 0;
	if (spop_get_name(r, name) < 0 || spop_get_name(r, value) < 0)
		return -1;
	if (name->len == 0 && value->len == 0)
		return 0;
	return 1;
}

struct spop_slice hdrs_get(const struct spop_data *hdrs, const char *lower, bool *again)
{
	struct spop_slice n, v, found = { NULL, 0 };
	size_t len = strlen(lower);
	bool seen = false;
	if (again)
		*again = false;
	if (!spop_data_is_text(hdrs))
		return found;
	struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
	while (hdrs_next(&r, &n, &v) == 1) {
		if (!slice_ieq(n, lower, len))
			continue;
		if (seen) {
			if (again)
				*again = true;
			break;
		}
		found = slice_trim(v);
		seen = true;
		if (!again)
			break;
	}
	return found;
}

bool slice_ieq(struct spop_slice s, const char *lower, size_t n)
{
	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s.ptr[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		if (c != (unsigned char)lower[i])
			return false;
	}
	return true;
}

struct spop_slice slice_trim(struct spop_slice s)
{
	while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
		s.ptr++;
		s.len--;
	}
	while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}
