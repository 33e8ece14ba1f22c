/* glob.h: shell-style patterns ('*' any run, '?' one byte) over byte slices. Pure. */
#ifndef SPOA_GLOB_H
#define SPOA_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool glob_match(const char *pat, const unsigned char *s, size_t n);

#endif
