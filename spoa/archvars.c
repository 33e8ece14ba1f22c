/* archvars.c: see archvars.h. */
#include "archvars.h"

const struct arch_var_name arch_var_names[AV_COUNT] = {
#define ARCH_VAR_NAME(n) [AV_##n] = { #n, sizeof(#n) - 1 },
	ARCH_VARS(ARCH_VAR_NAME)
#undef ARCH_VAR_NAME
};

const char *const arch_haproxy_var_names[] = {
#define ARCH_VAR_STR(n) #n,
	ARCH_HAPROXY_VARS(ARCH_VAR_STR)
#undef ARCH_VAR_STR
	NULL
};
