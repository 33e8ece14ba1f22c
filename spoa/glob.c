/* glob.c: iterative matcher with single backtrack point: linear in practice, no
 * recursion, so hostile patterns or inputs cannot blow the stack. */
#include "glob.h"

bool glob_match(const char *pat, const unsigned char *s, size_t n)
{
	const char *p = pat, *star = NULL;
	size_t i = 0, mark = 0;
	while (i < n) {
		if (*p == '*') {
			star = p++;
			mark = i;
		} else if (*p && (*p == '?' || (unsigned char)*p == s[i])) {
			p++;
			i++;
		} else if (star) {
			p = star + 1;
			i = ++mark;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}
