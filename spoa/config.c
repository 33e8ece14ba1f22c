/* config.c: defaults, JSON config and CLI. See config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgjson.h"
#include "spop.h"

#define MAX_FRAME_CEILING (16u * 1024 * 1024)

const char config_usage[] =
	"usage: archestra-spoa [--listen ADDR]... [--config FILE] [--threads N] [--meter ADDR|off] [--redis ADDR]\n"
	"                      [--check] [--log-level error|warn|info|debug] [--version] [--help]\n"
	"       archestra-spoa keys new|list|revoke|rotate --file KEYS_FILE ...   (virtual keys)\n"
	"       archestra-spoa haproxy-backends [--config FILE] > providers.cfg  (HAProxy backends)\n"
	"       archestra-spoa spend [reset ID [SCOPE]] [--config FILE] [--redis ADDR]  (budgets' spend)\n"
	"\n"
	"  --listen ADDR     HOST:PORT, [IPV6]:PORT or unix:/path (repeatable;\n"
	"                    default 127.0.0.1:12345)\n"
	"  --config FILE     JSON settings (see README.md); flags override it\n"
	"  --threads N       worker threads (default: one per core)\n"
	"  --meter ADDR|off  UDP HOST:PORT where HAProxy sends each call's record (tokens,\n"
	"                    cost, status; default " CONFIG_METER_DEFAULT ", shared by the agents)\n"
	"  --redis ADDR      Redis HOST:PORT or unix:/path holding the fleet's budget and\n"
	"                    rate-limit counters (default: none, counters per agent)\n"
	"  --check           validate the configuration and exit\n"
	"  --log-level L     error, warn, info (default) or debug; logs go to stderr\n"
	"  --ack-only        answer every message with no action (benchmarks only)\n"
	"  --version         print the version and exit\n"
	"  --help            print this help and exit\n";

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->threads = 0;
	c->max_connections = 10000;
	c->max_frame_size = 1024 * 1024;
	c->max_reassembled = 4 * 1024 * 1024;
	c->caps = SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC | SPOP_CAP_FRAGMENTATION;
	c->hello_ms = 5000;
	c->idle_ms = 300000;
	c->drain_ms = 10000;
	c->log_level = LL_INFO;
	providers_builtin(&c->providers);
	prices_builtin(&c->prices);
	statsd_cfg_defaults(&c->statsd);
	snprintf(c->store.prefix, sizeof(c->store.prefix), "archestra");
	c->store.refresh_ms = 100;
	c->store.timeout_ms = 500;
	prom_cfg_defaults(&c->prometheus);
	c->truncated_body = TRUNC_DENY;
	char e[CONFIG_ERR_LEN];
	config_parse_listen("127.0.0.1:12345", &c->listen[0], e, sizeof(e));
	c->nlisten = 1;
	config_parse_meter(CONFIG_METER_DEFAULT, c, e, sizeof(e));
}

int config_parse_meter(const char *s, struct config *c, char *err, size_t errlen)
{
	if (strcmp(s, "off") == 0) {
		c->meter_on = false;
		return 0;
	}
	struct listen_addr la;
	char e[CONFIG_ERR_LEN];
	if (config_parse_listen(s, &la, e, sizeof(e)) < 0 || la.is_unix) {
		seterr(err, errlen, "expected \"off\" or the UDP address HAProxy sends call records to, HOST:PORT or "
		       "[IPV6]:PORT, like \"%s\"", CONFIG_METER_DEFAULT);
		return -1;
	}
	c->meter = la;
	c->meter_on = true;
	return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int config_parse_listen(const char *s, struct listen_addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strlen(s) >= sizeof(out->text)) {
		seterr(err, errlen, "listen address too long: %.40s...", s);
		return -1;
	}
	strcpy(out->text, s);

	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
		const char *path = s + 5;
		if (*path == '\0' || strlen(path) >= sizeof(un->sun_path)) {
			seterr(err, errlen, "bad unix socket path in '%s' (empty or over %zu bytes)", s,
			       sizeof(un->sun_path) - 1);
			return -1;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		out->sslen = sizeof(*un);
		out->is_unix = true;
		return 0;
	}

	char host[128];
	const char *colon;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':') {
			seterr(err, errlen, "bad listen address '%s' (want [IPV6]:PORT)", s);
			return -1;
		}
		size_t hl = (size_t)(rb - s - 1);
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
		in6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1 || parse_port(colon + 1, &in6->sin6_port) < 0) {
			seterr(err, errlen, "bad listen address '%s' (want [IPV6]:PORT)", s);
			return -1;
		}
		in6->sin6_port = htons(in6->sin6_port);
		out->sslen = sizeof(*in6);
		return 0;
	}

	colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host)) {
		seterr(err, errlen, "bad listen address '%s' (want HOST:PORT, [IPV6]:PORT or unix:/path)", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
	in->sin_family = AF_INET;
	if (strcmp(host, "*") == 0)
		strcpy(host, "0.0.0.0");
	else if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1 || parse_port(colon + 1, &in->sin_port) < 0) {
		seterr(err, errlen, "bad listen address '%s' (want IPV4:PORT with a port 1-65535)", s);
		return -1;
	}
	in->sin_port = htons(in->sin_port);
	out->sslen = sizeof(*in);
	return 0;
}

/* ---- JSON ---- */

static int apply_timeouts(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const keys[] = { "hello_ms", "idle_ms", "drain_ms", NULL };
	unsigned *const dst[] = { &c->hello_ms, &c->idle_ms, &c->drain_ms };
	const cJSON *it;
	if (cfg_object(obj, NULL, "timeouts", 0, NULL, "expected an object like {\"hello_ms\": 5000}", err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, obj) {
		int k = cfg_lookup(it->string, keys);
		int64_t v;
		if (k < 0)
			return cfg_unknown(err, errlen, "timeouts", it->string, "key", keys);
		if (cfg_int(it, "timeouts", it->string, 0, 1, 86400000, &v, NULL, err, errlen) < 0)
			return -1;
		*dst[k] = (unsigned)v;
	}
	return 0;
}

static int apply_caps(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const names[] = { "pipelining", "async", "fragmentation", NULL };
	static const unsigned bits[] = { SPOP_CAP_PIPELINING, SPOP_CAP_ASYNC, SPOP_CAP_FRAGMENTATION };
	const cJSON *it;
	if (cfg_object(obj, NULL, "capabilities", 0, NULL, "expected an object like {\"async\": false}", err, errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, obj) {
		int k = cfg_lookup(it->string, names);
		bool on;
		if (k < 0)
			return cfg_unknown(err, errlen, "capabilities", it->string, "capability", names);
		if (cfg_bool(it, "capabilities", it->string, 0, &on, NULL, err, errlen) < 0)
			return -1;
		c->caps = on ? (c->caps | bits[k]) : (c->caps & ~bits[k]);
	}
	return 0;
}

/* "provider_keys": {"openai": {"env": "OPENAI_API_KEY"}, "anthropic": {"file": "/run/..."}} */
static int apply_provider_keys(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const fields[] = { "env", "file", NULL };
	static const char want[] = "expected {\"env\": \"VARIABLE\"} or {\"file\": \"/path\"}";
	const cJSON *it;
	if (cfg_object(obj, NULL, "provider_keys", 0, NULL,
	               "expected an object like {\"openai\": {\"env\": \"OPENAI_API_KEY\"}}", err, errlen) < 0)
		return -1;
	c->npkeys = 0;
	cJSON_ArrayForEach(it, obj) {
		const char *name = it->string;
		/* exactly one of env and file */
		if (c->npkeys == PROVIDER_KEYS_MAX || strlen(name) >= sizeof(c->pkeys[0].provider) ||
		    cfg_object(it, "provider_keys", name, 0, fields, want, err, errlen) < 0 || cJSON_GetArraySize(it) != 1)
			return cfg_fail(err, errlen, "provider_keys", name, "%s", want);
		c->pkeys[c->npkeys].env[0] = c->pkeys[c->npkeys].file[0] = '\0';
		if (cfg_str(cJSON_GetObjectItemCaseSensitive(it, "env"), "provider_keys", name, CFG_OPTIONAL,
		            c->pkeys[c->npkeys].env, sizeof(c->pkeys[0].env), want, err, errlen) < 0 ||
		    cfg_str(cJSON_GetObjectItemCaseSensitive(it, "file"), "provider_keys", name, CFG_OPTIONAL,
		            c->pkeys[c->npkeys].file, sizeof(c->pkeys[0].file), want, err, errlen) < 0)
			return -1;
		strcpy(c->pkeys[c->npkeys].provider, name);
		c->npkeys++;
	}
	return 0;
}

/* "jwt": {"issuer", "audience", "jwks_file", "algorithms", "leeway_s", "user_claim",
 *         "providers_claim", "models_claim", "hs256_secret_env", ...} */
static int apply_jwt(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	enum { K_ISSUER, K_AUDIENCE, K_JWKS_FILE, K_JWKS_URL, K_JWKS_CA_FILE, K_JWKS_REFRESH_S, K_JWKS_MIN_REFETCH_S,
	       K_ALGORITHMS, K_LEEWAY_S, K_ENDPOINTS, K_USER_CLAIM, K_SCOPE_CLAIM, K_PROVIDERS_CLAIM, K_MODELS_CLAIM,
	       K_HS256_SECRET_ENV, NKEYS };
	static const char *const keys[] = {
		"issuer", "audience", "jwks_file", "jwks_url", "jwks_ca_file", "jwks_refresh_s", "jwks_min_refetch_s",
		"algorithms", "leeway_s", "endpoints", "user_claim", "scope_claim", "providers_claim", "models_claim",
		"hs256_secret_env", NULL,
	};
	_Static_assert(sizeof(keys) / sizeof(keys[0]) == NKEYS + 1, "a name for each key");
	struct jwt_cfg *j = &c->jwt.cfg;
	const struct { char *dst; size_t room; } strs[NKEYS] = {   /* the string settings, by key */
		[K_ISSUER] = { j->issuer, sizeof(j->issuer) },
		[K_AUDIENCE] = { j->audience, sizeof(j->audience) },
		[K_JWKS_FILE] = { c->jwt.jwks_file, sizeof(c->jwt.jwks_file) },
		[K_JWKS_URL] = { c->jwt.jwks_url, sizeof(c->jwt.jwks_url) },
		[K_JWKS_CA_FILE] = { c->jwt.jwks_ca_file, sizeof(c->jwt.jwks_ca_file) },
		[K_USER_CLAIM] = { j->user_claim, sizeof(j->user_claim) },
		[K_SCOPE_CLAIM] = { j->scope_claim, sizeof(j->scope_claim) },
		[K_PROVIDERS_CLAIM] = { j->providers_claim, sizeof(j->providers_claim) },
		[K_MODELS_CLAIM] = { j->models_claim, sizeof(j->models_claim) },
		[K_HS256_SECRET_ENV] = { c->jwt.hs256_secret_env, sizeof(c->jwt.hs256_secret_env) },
	};
	if (cfg_object(obj, NULL, "jwt", 0, NULL, "expected an object with issuer, audience, jwks_file and algorithms",
	               err, errlen) < 0)
		return -1;
	j->leeway = 30;
	c->jwt.jwks_refresh_s = 300;
	c->jwt.jwks_min_refetch_s = 30;
	j->algs = 1u << JWT_RS256;
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		int k = cfg_lookup(it->string, keys);
		int64_t v;
		if (k < 0)
			return cfg_unknown(err, errlen, "jwt", it->string, "key", keys);
		if (strs[k].dst) {
			if (cfg_str(it, "jwt", it->string, 0, strs[k].dst, strs[k].room, NULL, err, errlen) < 0)
				return -1;
		} else if (k == K_ALGORITHMS) {
			if (cfg_enum_set(it, "jwt", it->string, 0, jwt_alg_names, &j->algs,
			                 "expected an array of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA or "
			                 "HS256 (\"none\" never)", err, errlen) < 0)
				return -1;
		} else if (k == K_ENDPOINTS) {
			if (endpoint_list_parse(it, "jwt", it->string, &j->endpoints, err, errlen) < 0)
				return -1;
		} else if (k == K_LEEWAY_S) {
			if (cfg_int(it, "jwt", it->string, 0, 0, 300, &v, NULL, err, errlen) < 0)
				return -1;
			j->leeway = v;
		} else { /* the JWKS fetcher's intervals */
			if (cfg_int(it, "jwt", it->string, 0, 1, 86400, &v, NULL, err, errlen) < 0)
				return -1;
			*(k == K_JWKS_REFRESH_S ? &c->jwt.jwks_refresh_s : &c->jwt.jwks_min_refetch_s) = (unsigned)v;
		}
	}
	if (!j->issuer[0] || !j->audience[0])
		return cfg_fail(err, errlen, "jwt", NULL, "\"issuer\" and \"audience\" are required (tokens are checked against both)");
	bool hs = j->algs & (1u << JWT_HS256);
	if (hs != (c->jwt.hs256_secret_env[0] != 0))
		return cfg_fail(err, errlen, "jwt", NULL, "HS256 needs \"hs256_secret_env\", and that secret is used for HS256 only");
	if ((j->algs & ~(1u << JWT_HS256)) && !c->jwt.jwks_file[0] == !c->jwt.jwks_url[0])
		return cfg_fail(err, errlen, "jwt", NULL, "give one of jwks_file or jwks_url for the asymmetric algorithms");
	c->jwt.enabled = true;
	return 0;
}

static int apply_listen(struct config *c, const cJSON *it, char *err, size_t errlen)
{
	if (cJSON_IsString(it)) {
		c->nlisten = 1;
		return config_parse_listen(it->valuestring, &c->listen[0], err, errlen) < 0 ? -1 : 0;
	}
	if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) == 0 || cJSON_GetArraySize(it) > CONFIG_MAX_LISTEN) {
		seterr(err, errlen, "listen: expected a string or an array of 1 to %d strings", CONFIG_MAX_LISTEN);
		return -1;
	}
	int n = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, it) {
		char e[CONFIG_ERR_LEN];
		if (!cJSON_IsString(a)) {
			seterr(err, errlen, "listen[%d]: expected a string like \"127.0.0.1:12345\"", n);
			return -1;
		}
		if (config_parse_listen(a->valuestring, &c->listen[n], e, sizeof(e)) < 0) {
			seterr(err, errlen, "listen[%d]: %s", n, e);
			return -1;
		}
		n++;
	}
	c->nlisten = n;
	return 0;
}

int config_parse_store_addr(const char *a, struct store_addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(a, "unix:", 5) == 0) {
		if (!a[5] || strlen(a + 5) >= sizeof(out->host)) {
			seterr(err, errlen, "expected unix:/path (a path of 1 to %zu bytes)", sizeof(out->host) - 1);
			return -1;
		}
		out->is_unix = true;
		snprintf(out->host, sizeof(out->host), "%s", a + 5);
		return 0;
	}
	const char *colon = strrchr(a, ':'), *h = a, *he = colon;
	if (a[0] == '[') { /* [v6]:port */
		const char *close = strchr(a, ']');
		if (!close || close[1] != ':') {
			seterr(err, errlen, "expected [IPV6]:PORT");
			return -1;
		}
		h = a + 1;
		he = close;
		colon = close + 1;
	} else if (colon && memchr(a, ':', (size_t)(colon - a))) {
		seterr(err, errlen, "an IPv6 address goes in brackets: [IPV6]:PORT");
		return -1;
	}
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || he == h || (size_t)(he - h) >= sizeof(out->host) || !colon[1] || *end || port < 1 || port > 65535) {
		seterr(err, errlen, "expected HOST:PORT, [IPV6]:PORT or unix:/path");
		return -1;
	}
	memcpy(out->host, h, (size_t)(he - h));
	out->port = (int)port;
	return 0;
}

/* "store": {"redis": "127.0.0.1:6379", "prefix", "refresh_ms", "timeout_ms"} */
static int apply_store(struct config *c, const cJSON *v, char *err, size_t errlen)
{
	static const char *const keys[] = { "redis", "prefix", "refresh_ms", "timeout_ms", NULL };
	int64_t n;
	if (cfg_object(v, NULL, "store", 0, keys, NULL, err, errlen) < 0)
		return -1;
	const cJSON *it;
	if ((it = cJSON_GetObjectItemCaseSensitive(v, "redis"))) {
		struct store_addr sa;
		char e[128];
		if (cfg_str(it, "store", "redis", 0, c->store.redis, sizeof(c->store.redis),
		            "expected \"HOST:PORT\", \"unix:/path\" or \"\" (none)", err, errlen) < 0)
			return -1;
		if (c->store.redis[0] && config_parse_store_addr(c->store.redis, &sa, e, sizeof(e)) < 0)
			return cfg_fail(err, errlen, "store", "redis", "%s", e);
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(v, "prefix")) &&
	    cfg_str(it, "store", "prefix", CFG_NONEMPTY, c->store.prefix, sizeof(c->store.prefix), NULL, err, errlen) < 0)
		return -1;
	if ((it = cJSON_GetObjectItemCaseSensitive(v, "refresh_ms"))) {
		if (cfg_int(it, "store", "refresh_ms", 0, 10, 60000, &n, NULL, err, errlen) < 0)
			return -1;
		c->store.refresh_ms = (unsigned)n;
	}
	if ((it = cJSON_GetObjectItemCaseSensitive(v, "timeout_ms"))) {
		if (cfg_int(it, "store", "timeout_ms", 0, 10, 60000, &n, NULL, err, errlen) < 0)
			return -1;
		c->store.timeout_ms = (unsigned)n;
	}
	return 0;
}

/* The top level's member `k`, one of those config_apply_json knows. */
static int apply_member(struct config *c, const char *k, const cJSON *it, char *err, size_t errlen)
{
	static const char *const trunc_names[] = { [TRUNC_DENY] = "deny", [TRUNC_ALLOW] = "allow", NULL };
	static const char *const identity_names[] = { "reject", "drop", NULL };   /* index: drop_invalid_identity */
	int64_t v;
	int e;
	if (strcmp(k, "listen") == 0)
		return apply_listen(c, it, err, errlen);
	if (strcmp(k, "capabilities") == 0)
		return apply_caps(c, it, err, errlen);
	if (strcmp(k, "timeouts") == 0)
		return apply_timeouts(c, it, err, errlen);
	if (strcmp(k, "providers") == 0)
		return providers_apply_json(&c->providers, it, err, errlen);
	if (strcmp(k, "provider_keys") == 0)
		return apply_provider_keys(c, it, err, errlen);
	if (strcmp(k, "jwt") == 0)
		return apply_jwt(c, it, err, errlen);
	if (strcmp(k, "statsd") == 0)
		return statsd_cfg_apply_json(&c->statsd, it, err, errlen);
	if (strcmp(k, "prometheus") == 0)
		return prom_cfg_apply_json(&c->prometheus, it, err, errlen);
	if (strcmp(k, "meter") == 0) {
		char e2[CONFIG_ERR_LEN];
		if (!cJSON_IsString(it) || config_parse_meter(it->valuestring, c, e2, sizeof(e2)) < 0)
			return cfg_fail(err, errlen, NULL, k, "expected \"off\" or a UDP address like \"%s\"",
			                CONFIG_METER_DEFAULT);
		return 0;
	}
	if (strcmp(k, "store") == 0)
		return apply_store(c, it, err, errlen);
	if (strcmp(k, "prices") == 0)
		return prices_apply_json(&c->prices, it, err, errlen);
	if (strcmp(k, "inspect_responses") == 0)
		return cfg_bool(it, NULL, k, 0, &c->inspect_responses, NULL, err, errlen);
	if (strcmp(k, "ack_only") == 0)
		return cfg_bool(it, NULL, k, 0, &c->ack_only, NULL, err, errlen);
	if (strcmp(k, "keys_file") == 0)
		return cfg_str(it, NULL, k, CFG_NONEMPTY, c->keys_file, sizeof(c->keys_file),
		               "expected the path of the virtual keys file", err, errlen);
	if (strcmp(k, "policy_file") == 0)
		return cfg_str(it, NULL, k, CFG_NONEMPTY, c->policy_file, sizeof(c->policy_file),
		               "expected the path of a policy (see policy/schema.json)", err, errlen);
	if (strcmp(k, "log_level") == 0) {
		if (cfg_enum(it, NULL, k, 0, log_level_names, &e, NULL, err, errlen) < 0)
			return -1;
		c->log_level = (enum log_level)e;
	} else if (strcmp(k, "truncated_body") == 0) {
		if (cfg_enum(it, NULL, k, 0, trunc_names, &e, "expected \"deny\" (413) or \"allow\"", err, errlen) < 0)
			return -1;
		c->truncated_body = (enum truncated_policy)e;
	} else if (strcmp(k, "invalid_identity") == 0) {
		if (cfg_enum(it, NULL, k, 0, identity_names, &e, "expected \"reject\" (400) or \"drop\"", err, errlen) < 0)
			return -1;
		c->drop_invalid_identity = e;
	} else if (strcmp(k, "threads") == 0) {
		if (cfg_int(it, NULL, k, 0, 0, 256, &v, NULL, err, errlen) < 0)
			return -1;
		c->threads = (int)v;
	} else if (strcmp(k, "max_connections") == 0) {
		if (cfg_int(it, NULL, k, 0, 1, 1000000, &v, NULL, err, errlen) < 0)
			return -1;
		c->max_connections = (int)v;
	} else if (strcmp(k, "max_frame_size") == 0) {
		if (cfg_int(it, NULL, k, 0, SPOP_MIN_FRAME_SIZE, MAX_FRAME_CEILING, &v, NULL, err, errlen) < 0)
			return -1;
		c->max_frame_size = (uint32_t)v;
	} else if (strcmp(k, "max_reassembled") == 0) {
		if (cfg_int(it, NULL, k, 0, SPOP_MIN_FRAME_SIZE, 64L * 1024 * 1024, &v, NULL, err, errlen) < 0)
			return -1;
		c->max_reassembled = (size_t)v;
	} else {
		return cfg_fail(err, errlen, NULL, k, "unknown key (see README.md, section Configuration)");
	}
	return 0;
}

int config_apply_json(struct config *c, const char *text, size_t len, char *err, size_t errlen)
{
	cJSON *root = cfg_parse(text, len, CFG_WHOLE, err, errlen);
	if (!root)
		return -1;
	int rc = cfg_object(root, "$", NULL, 0, NULL, "expected a JSON object", err, errlen);
	const cJSON *it;
	for (it = rc == 0 ? root->child : NULL; it && rc == 0; it = it->next)
		rc = apply_member(c, it->string, it, err, errlen);
	cJSON_Delete(root);
	return rc;
}

char *config_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	char *data = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (cap - n < 4096) {
			if (cap > 64u * 1024 * 1024) {
				seterr(err, errlen, "%s: file too large", path);
				goto fail;
			}
			cap = cap ? cap * 2 : 8192;
			char *d = realloc(data, cap);
			if (!d) {
				seterr(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			data = d;
		}
		size_t r = fread(data + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		seterr(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	data[n] = '\0';
	*len = n;
	return data;
fail:
	fclose(f);
	free(data);
	return NULL;
}

/* ---- CLI ---- */

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past what it used. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

enum cli_result config_from_args(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	const char *val;
	int rc;
	bool check = false;

	/* First pass: --help/--version win, and --config is applied under the flags. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return CLI_HELP;
		if (strcmp(argv[i], "--version") == 0)
			return CLI_VERSION;
	}
	for (int i = 1; i < argc; i++) {
		if ((rc = flag_value(argc, argv, &i, "--config", &val)) == 0)
			continue;
		if (rc < 0) {
			seterr(err, errlen, "--config needs a file name");
			return CLI_ERROR;
		}
		size_t len;
		char e[CONFIG_ERR_LEN];
		char *text = config_read_file(val, &len, e, sizeof(e));
		if (!text) {
			seterr(err, errlen, "config: %s", e);
			return CLI_ERROR;
		}
		rc = config_apply_json(c, text, len, e, sizeof(e));
		free(text);
		if (rc < 0) {
			seterr(err, errlen, "config %s: %s", val, e);
			return CLI_ERROR;
		}
		snprintf(c->config_path, sizeof(c->config_path), "%s", val);
	}

	int nlisten = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((rc = flag_value(argc, argv, &i, "--config", &val)) != 0)
			continue;
		if ((rc = flag_value(argc, argv, &i, "--listen", &val)) != 0) {
			char e[CONFIG_ERR_LEN];
			if (rc < 0) {
				seterr(err, errlen, "--listen needs an address (HOST:PORT, [IPV6]:PORT or unix:/path)");
				return CLI_ERROR;
			}
			if (nlisten == CONFIG_MAX_LISTEN) {
				seterr(err, errlen, "--listen: at most %d addresses", CONFIG_MAX_LISTEN);
				return CLI_ERROR;
			}
			if (config_parse_listen(val, &c->listen[nlisten], e, sizeof(e)) < 0) {
				seterr(err, errlen, "--listen: %s", e);
				return CLI_ERROR;
			}
			c->nlisten = ++nlisten;
		} else if ((rc = flag_value(argc, argv, &i, "--meter", &val)) != 0) {
			char e[CONFIG_ERR_LEN];
			if (rc < 0 || config_parse_meter(val, c, e, sizeof(e)) < 0) {
				seterr(err, errlen, "--meter: %s", rc < 0 ? "needs an address or off" : e);
				return CLI_ERROR;
			}
		} else if ((rc = flag_value(argc, argv, &i, "--redis", &val)) != 0) {
			struct store_addr sa;
			char e[128];
			if (rc < 0 || strlen(val) >= sizeof(c->store.redis) ||
			    (val[0] && config_parse_store_addr(val, &sa, e, sizeof(e)) < 0)) {
				seterr(err, errlen, "--redis needs HOST:PORT, [IPV6]:PORT or unix:/path (or \"\" for none)");
				return CLI_ERROR;
			}
			snprintf(c->store.redis, sizeof(c->store.redis), "%s", val);
		} else if ((rc = flag_value(argc, argv, &i, "--threads", &val)) != 0) {
			char *end;
			long v = rc > 0 ? strtol(val, &end, 10) : -1;
			if (rc < 0 || *val == '\0' || *end != '\0' || v < 1 || v > 256) {
				seterr(err, errlen, "--threads needs a number from 1 to 256");
				return CLI_ERROR;
			}
			c->threads = (int)v;
		} else if ((rc = flag_value(argc, argv, &i, "--log-level", &val)) != 0) {
			if (rc < 0 || log_level_parse(val, &c->log_level) < 0) {
				seterr(err, errlen, "--log-level needs one of error, warn, info, debug");
				return CLI_ERROR;
			}
		} else if (strcmp(a, "--check") == 0) {
			check = true;
		} else if (strcmp(a, "--ack-only") == 0) {
			c->ack_only = true;
		} else {
			seterr(err, errlen, "unknown argument '%s' (try --help)", a);
			return CLI_ERROR;
		}
	}
	return check ? CLI_CHECK : CLI_RUN;
}
