/* archvars.h: the variables the agent sets in HAProxy (txn.arch.<name>): the one
 * list of their names. haproxy-cfg/make-snippet.sh writes spoe-archestra.conf's
 * register-var-names lines from ARCH_VARS and checks that haproxy.cfg reads no
 * txn.arch variable that neither list declares. Pure. */
#ifndef SPOA_ARCHVARS_H
#define SPOA_ARCHVARS_H

#include <stddef.h>

/* Set by the agent. agent_id..execution_id follow enum id_field's order. */
#define ARCH_VARS(X)                                                                                      \
	X(verdict) X(status) X(body) X(reason) X(provider) X(upstream_path) X(upstream_host) X(auth_hdr)  \
	X(auth_val) X(inspect_res) X(agent_id) X(user_id) X(session_id) X(execution_id) X(key_id) X(model) \
	X(stream) X(ctx) X(shadow) X(dlp) X(res_verdict) X(res_status) X(res_body) X(truncated)           \
	X(amz_date) X(amz_sha256) X(amz_token) X(add_usage) X(hold) X(budget) X(retry_after)

/* Set by HAProxy itself (SPOE's error and processing time, haproxy.cfg's retry
 * count, relay mark and the auth-failure throttle's client+credential key,
 * providers.cfg's usage counts: usage_field_names, the alternative mark, and the
 * provider's own status); the agent never sets them. */
#define ARCH_HAPROXY_VARS(X) X(error) X(ptime) X(retry) X(relay) X(cred_key) X(u_in) X(u_out) X(u_cr) X(u_cw) X(u_rs) X(u_alt) X(up_status) X(ttft)

enum arch_var {
#define ARCH_VAR_ENUM(n) AV_##n,
	ARCH_VARS(ARCH_VAR_ENUM)
#undef ARCH_VAR_ENUM
	AV_COUNT
};

struct arch_var_name {
	const char *s;
	size_t len;
};

/* By enum arch_var: the name without "txn.arch.", and its length. */
extern const struct arch_var_name arch_var_names[AV_COUNT];

/* ARCH_HAPROXY_VARS' names, NULL-terminated. */
extern const char *const arch_haproxy_var_names[];

#endif
