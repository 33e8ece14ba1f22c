/* Unit tests of glob: shell-style patterns ('*', '?') as model lists and prices use them. */
#include "testutil.h"

#include "glob.h"

static void globs(void **st)
{
	(void)st;
	const unsigned char *s = (const unsigned char *)"gpt-4o-mini-2024-07-18";
	assert_true(glob_match("gpt-4o*", s, 22));
	assert_true(glob_match("*mini*", s, 22));
	assert_true(glob_match("gpt-4?-mini*", s, 22));
	assert_false(glob_match("gpt-4o", s, 22));
	assert_false(glob_match("claude*", s, 22));
	assert_true(glob_match("*", s, 0));
	assert_false(glob_match("?", s, 0));
	/* A pathological pattern stays fast (no exponential backtracking). */
	char a[4001];
	memset(a, 'a', 4000);
	a[4000] = '\0';
	assert_false(glob_match("*a*a*a*a*a*a*a*a*b", (const unsigned char *)a, 4000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(globs),
	};
	return cmocka_run_group_tests_name("glob", tests, NULL, NULL);
}
