/* glob.h: shell-style patterns ('*' any run, '?' one byte) over byte slices. Pure.
 *
 * glob_match ignores ASCII case: model and tool names, identities and the text a
 * deny list watches for must not slip past it by their spelling ("GPT-5" is
 * "gpt-5*"). glob_match_exact is for values whose case means something (a tool
 * call's argument conditions). */
#ifndef SPOA_GLOB_H
#define SPOA_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool glob_match(const char *pat, const unsigned char *s, size_t n);
bool glob_match_exact(const char *pat, const unsigned char *s, size_t n);
/* Case kept, and '*' stays within one path segment (never takes a '/'). */
bool glob_match_path(const char *pat, const unsigned char *s, size_t n);

#endif
