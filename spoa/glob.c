/* glob.c: iterative matcher with single backtrack point: linear in practice, no
 * recursion, so hostile patterns or inputs cannot blow the stack. */
#include "glob.h"

static inline unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* fold: ignore ASCII case; seg: a star never takes a '/' (paths) */
static bool match(const char *pat, const unsigned char *s, size_t n, bool fold, bool seg)
{
	const char *p = pat, *star = NULL;
	size_t i = 0, mark = 0;
	while (i < n) {
		if (*p == '*') {
			star = p++;
			mark = i;
		} else if (*p && ((*p == '?' && !(seg && s[i] == '/')) || (unsigned char)*p == s[i] ||
		                  (fold && lower((unsigned char)*p) == lower(s[i])))) {
			p++;
			i++;
		} else if (star && !(seg && s[mark] == '/')) {
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

bool glob_match(const char *pat, const unsigned char *s, size_t n)
{
	return match(pat, s, n, true, false);
}

bool glob_match_exact(const char *pat, const unsigned char *s, size_t n)
{
	return match(pat, s, n, false, false);
}

bool glob_match_path(const char *pat, const unsigned char *s, size_t n)
{
	return match(pat, s, n, false, true);
}
