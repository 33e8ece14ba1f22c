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

#include "spop.h"

#define MAX_FRAME_CEILING (16u * 1024 * 1024)

const char config_usage[] =
	"usage: archestra-spoa [--listen ADDR]... [--config FILE] [--threads N] [--check]\n"
	"                      [--log-level error|warn|info|debug] [--version] [--help]\n"
	"       archestra-spoa keys new|list|revoke|rotate --file KEYS_FILE ...   (virtual keys)\n"
	"\n"
	"  --listen ADDR     HOST:PORT, [IPV6]:PORT or unix:/path (repeatable;\n"
	"                    default 127.0.0.1:12345)\n"
	"  --config FILE     JSON settings (see README.md); flags override it\n"
	"  --threads N       worker threads (default: one per core)\n"
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
	c->log_level = LOG_INFO;
	providers_builtin(&c->providers);
	prices_builtin(&c->prices);
	statsd_cfg_defaults(&c->statsd);
	c->truncated_body = TRUNC_DENY;
	char e[8];
	config_parse_listen("127.0.0.1:12345", &c->listen[0], e, sizeof(e));
	c->nlisten = 1;
}

int config_parse_log_level(const char *s, enum log_level *out)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

const char *config_log_level_name(enum log_level l)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	return (unsigned)l < 4 ? names[l] : "info";
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

static int json_uint(const cJSON *it, const char *path, long lo, long hi, long *out, char *err, size_t errlen)
{
	if (!cJSON_IsNumber(it) || it->valuedouble != (double)(long)it->valuedouble ||
	    it->valuedouble < (double)lo || it->valuedouble > (double)hi) {
		seterr(err, errlen, "%s: expected an integer from %ld to %ld", path, lo, hi);
		return -1;
	}
	*out = (long)it->valuedouble;
	return 0;
}

static int json_bool(const cJSON *it, const char *path, bool *out, char *err, size_t errlen)
{
	if (!cJSON_IsBool(it)) {
		seterr(err, errlen, "%s: expected true or false", path);
		return -1;
	}
	*out = cJSON_IsTrue(it);
	return 0;
}

static int apply_timeouts(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	if (!cJSON_IsObject(obj)) {
		seterr(err, errlen, "timeouts: expected an object like {\"hello_ms\": 5000}");
		return -1;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		unsigned *dst;
		if (strcmp(it->string, "hello_ms") == 0)
			dst = &c->hello_ms;
		else if (strcmp(it->string, "idle_ms") == 0)
			dst = &c->idle_ms;
		else if (strcmp(it->string, "drain_ms") == 0)
			dst = &c->drain_ms;
		else {
			seterr(err, errlen, "timeouts.%s: unknown key (known: hello_ms, idle_ms, drain_ms)", it->string);
			return -1;
		}
		char path[96];
		long v;
		snprintf(path, sizeof(path), "timeouts.%s", it->string);
		if (json_uint(it, path, 1, 86400000, &v, err, errlen) < 0)
			return -1;
		*dst = (unsigned)v;
	}
	return 0;
}

static int apply_caps(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	static const struct { const char *name; unsigned bit; } caps[] = {
		{ "pipelining", SPOP_CAP_PIPELINING },
		{ "async", SPOP_CAP_ASYNC },
		{ "fragmentation", SPOP_CAP_FRAGMENTATION },
	};
	if (!cJSON_IsObject(obj)) {
		seterr(err, errlen, "capabilities: expected an object like {\"async\": false}");
		return -1;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		size_t i;
		for (i = 0; i < 3; i++)
			if (strcmp(it->string, caps[i].name) == 0)
				break;
		if (i == 3) {
			seterr(err, errlen, "capabilities.%s: unknown capability (known: pipelining, async, fragmentation)",
			       it->string);
			return -1;
		}
		char path[96];
		bool on;
		snprintf(path, sizeof(path), "capabilities.%s", it->string);
		if (json_bool(it, path, &on, err, errlen) < 0)
			return -1;
		c->caps = on ? (c->caps | caps[i].bit) : (c->caps & ~caps[i].bit);
	}
	return 0;
}

/* "provider_keys": {"openai": {"env": "OPENAI_API_KEY"}, "anthropic": {"file": "/run/..."}} */
static int apply_provider_keys(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	const cJSON *it;
	if (!cJSON_IsObject(obj)) {
		seterr(err, errlen, "provider_keys: expected an object like {\"openai\": {\"env\": \"OPENAI_API_KEY\"}}");
		return -1;
	}
	c->npkeys = 0;
	cJSON_ArrayForEach(it, obj) {
		const cJSON *env = cJSON_GetObjectItemCaseSensitive(it, "env");
		const cJSON *file = cJSON_GetObjectItemCaseSensitive(it, "file");
		if (c->npkeys == PROVIDER_KEYS_MAX || strlen(it->string) >= sizeof(c->pkeys[0].provider) ||
		    !cJSON_IsObject(it) || cJSON_GetArraySize(it) != 1 || (!cJSON_IsString(env) && !cJSON_IsString(file)) ||
		    (env && strlen(env->valuestring) >= sizeof(c->pkeys[0].env)) ||
		    (file && strlen(file->valuestring) >= sizeof(c->pkeys[0].file))) {
			seterr(err, errlen, "provider_keys.%s: expected {\"env\": \"VARIABLE\"} or {\"file\": \"/path\"}",
			       it->string);
			return -1;
		}
		strcpy(c->pkeys[c->npkeys].provider, it->string);
		strcpy(c->pkeys[c->npkeys].env, env ? env->valuestring : "");
		strcpy(c->pkeys[c->npkeys].file, file ? file->valuestring : "");
		c->npkeys++;
	}
	return 0;
}

/* "jwt": {"issuer", "audience", "jwks_file", "algorithms", "leeway_s", "user_claim",
 *         "providers_claim", "models_claim", "hs256_secret_env"} */
static int apply_jwt(struct config *c, const cJSON *obj, char *err, size_t errlen)
{
	static const struct { const char *name; size_t off, size; } strs[] = {
		{ "issuer", offsetof(struct config, jwt.cfg.issuer), sizeof(((struct config *)0)->jwt.cfg.issuer) },
		{ "audience", offsetof(struct config, jwt.cfg.audience), sizeof(((struct config *)0)->jwt.cfg.audience) },
		{ "jwks_file", offsetof(struct config, jwt.jwks_file), sizeof(((struct config *)0)->jwt.jwks_file) },
		{ "jwks_url", offsetof(struct config, jwt.jwks_url), sizeof(((struct config *)0)->jwt.jwks_url) },
		{ "jwks_ca_file", offsetof(struct config, jwt.jwks_ca_file), sizeof(((struct config *)0)->jwt.jwks_ca_file) },
		{ "user_claim", offsetof(struct config, jwt.cfg.user_claim), sizeof(((struct config *)0)->jwt.cfg.user_claim) },
		{ "providers_claim", offsetof(struct config, jwt.cfg.providers_claim),
		  sizeof(((struct config *)0)->jwt.cfg.providers_claim) },
		{ "scope_claim", offsetof(struct config, jwt.cfg.scope_claim), sizeof(((struct config *)0)->jwt.cfg.scope_claim) },
		{ "models_claim", offsetof(struct config, jwt.cfg.models_claim), sizeof(((struct config *)0)->jwt.cfg.models_claim) },
		{ "hs256_secret_env", offsetof(struct config, jwt.hs256_secret_env), sizeof(((struct config *)0)->jwt.hs256_secret_env) },
	};
	if (!cJSON_IsObject(obj)) {
		seterr(err, errlen, "jwt: expected an object with issuer, audience, jwks_file and algorithms");
		return -1;
	}
	c->jwt.cfg.leeway = 30;
	c->jwt.jwks_refresh_s = 300;
	c->jwt.jwks_min_refetch_s = 30;
	c->jwt.cfg.algs = 1u << JWT_RS256;
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		size_t i;
		for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
			if (strcmp(it->string, strs[i].name) == 0)
				break;
		if (i < sizeof(strs) / sizeof(strs[0])) {
			if (!cJSON_IsString(it) || strlen(it->valuestring) >= strs[i].size) {
				seterr(err, errlen, "jwt.%s: expected a string of at most %zu bytes", it->string, strs[i].size - 1);
				return -1;
			}
			strcpy((char *)c + strs[i].off, it->valuestring);
		} else if (strcmp(it->string, "algorithms") == 0) {
			const cJSON *a;
			c->jwt.cfg.algs = 0;
			if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) == 0) {
				seterr(err, errlen, "jwt.algorithms: expected a list like [\"RS256\", \"ES256\"]");
				return -1;
			}
			cJSON_ArrayForEach(a, it) {
				int alg = cJSON_IsString(a) ? jwt_alg_parse(a->valuestring) : -1;
				if (alg < 0) {
					seterr(err, errlen, "jwt.algorithms: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA or HS256 (\"none\" never)");
					return -1;
				}
				c->jwt.cfg.algs |= 1u << alg;
			}
		} else if (strcmp(it->string, "jwks_refresh_s") == 0 || strcmp(it->string, "jwks_min_refetch_s") == 0) {
			long v;
			char path[64];
			snprintf(path, sizeof(path), "jwt.%s", it->string);
			if (json_uint(it, path, 1, 86400, &v, err, errlen) < 0)
				return -1;
			*(it->string[5] == 'r' ? &c->jwt.jwks_refresh_s : &c->jwt.jwks_min_refetch_s) = (unsigned)v;
		} else if (strcmp(it->string, "endpoints") == 0) {
			if (endpoint_list_parse(it, &c->jwt.cfg.endpoints, "jwt.endpoints", err, errlen) < 0)
				return -1;
		} else if (strcmp(it->string, "leeway_s") == 0) {
			long v;
			if (json_uint(it, "jwt.leeway_s", 0, 300, &v, err, errlen) < 0)
				return -1;
			c->jwt.cfg.leeway = v;
		} else {
			seterr(err, errlen, "jwt.%s: unknown key (known: issuer, audience, jwks_file, jwks_url, jwks_ca_file, jwks_refresh_s, jwks_min_refetch_s, algorithms, leeway_s, endpoints, user_claim, scope_claim, providers_claim, models_claim, hs256_secret_env)",
			       it->string);
			return -1;
		}
	}
	if (!c->jwt.cfg.issuer[0] || !c->jwt.cfg.audience[0]) {
		seterr(err, errlen, "jwt: \"issuer\" and \"audience\" are required (tokens are checked against both)");
		return -1;
	}
	bool hs = c->jwt.cfg.algs & (1u << JWT_HS256);
	if (hs != (c->jwt.hs256_secret_env[0] != 0)) {
		seterr(err, errlen, "jwt: HS256 needs \"hs256_secret_env\", and that secret is used for HS256 only");
		return -1;
	}
	if ((c->jwt.cfg.algs & ~(1u << JWT_HS256)) && !c->jwt.jwks_file[0] == !c->jwt.jwks_url[0]) {
		seterr(err, errlen, "jwt: give one of jwks_file or jwks_url for the asymmetric algorithms");
		return -1;
	}
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

int config_apply_json(struct config *c, const char *text, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	if (memchr(text, '\0', len) || text[len] != '\0') {
		seterr(err, errlen, "not valid JSON (contains a NUL byte)");
		return -1;
	}
	/* The length includes the terminator: cJSON checks nothing trails the value. */
	cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
	if (!root) {
		size_t at = end && end >= text ? (size_t)(end - text) : 0;
		size_t line = 1;
		for (size_t i = 0; i < at && i < len; i++)
			line += text[i] == '\n';
		seterr(err, errlen, "not valid JSON (near byte %zu, line %zu)", at, line);
		return -1;
	}
	int rc = -1;
	if (!cJSON_IsObject(root)) {
		seterr(err, errlen, "$: expected a JSON object");
		goto out;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, root) {
		const char *k = it->string;
		long v;
		if (strcmp(k, "listen") == 0) {
			if (apply_listen(c, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "threads") == 0) {
			if (json_uint(it, "threads", 0, 256, &v, err, errlen) < 0)
				goto out;
			c->threads = (int)v;
		} else if (strcmp(k, "max_connections") == 0) {
			if (json_uint(it, "max_connections", 1, 1000000, &v, err, errlen) < 0)
				goto out;
			c->max_connections = (int)v;
		} else if (strcmp(k, "max_frame_size") == 0) {
			if (json_uint(it, "max_frame_size", SPOP_MIN_FRAME_SIZE, MAX_FRAME_CEILING, &v, err, errlen) < 0)
				goto out;
			c->max_frame_size = (uint32_t)v;
		} else if (strcmp(k, "max_reassembled") == 0) {
			if (json_uint(it, "max_reassembled", SPOP_MIN_FRAME_SIZE, 64L * 1024 * 1024, &v, err, errlen) < 0)
				goto out;
			c->max_reassembled = (size_t)v;
		} else if (strcmp(k, "capabilities") == 0) {
			if (apply_caps(c, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "timeouts") == 0) {
			if (apply_timeouts(c, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "log_level") == 0) {
			if (!cJSON_IsString(it) || config_parse_log_level(it->valuestring, &c->log_level) < 0) {
				seterr(err, errlen, "log_level: expected \"error\", \"warn\", \"info\" or \"debug\"");
				goto out;
			}
		} else if (strcmp(k, "providers") == 0) {
			if (providers_apply_json(&c->providers, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "truncated_body") == 0) {
			if (cJSON_IsString(it) && strcmp(it->valuestring, "deny") == 0)
				c->truncated_body = TRUNC_DENY;
			else if (cJSON_IsString(it) && strcmp(it->valuestring, "allow") == 0)
				c->truncated_body = TRUNC_ALLOW;
			else {
				seterr(err, errlen, "truncated_body: expected \"deny\" (413) or \"allow\"");
				goto out;
			}
		} else if (strcmp(k, "keys_file") == 0) {
			if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= sizeof(c->keys_file)) {
				seterr(err, errlen, "keys_file: expected the path of the virtual keys file");
				goto out;
			}
			strcpy(c->keys_file, it->valuestring);
		} else if (strcmp(k, "policy_file") == 0) {
			if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= sizeof(c->policy_file)) {
				seterr(err, errlen, "policy_file: expected the path of a policy (see policy/schema.json)");
				goto out;
			}
			strcpy(c->policy_file, it->valuestring);
		} else if (strcmp(k, "provider_keys") == 0) {
			if (apply_provider_keys(c, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "jwt") == 0) {
			if (apply_jwt(c, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "statsd") == 0) {
			if (statsd_cfg_apply_json(&c->statsd, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "prices") == 0) {
			if (prices_apply_json(&c->prices, it, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "invalid_identity") == 0) {
			if (cJSON_IsString(it) && strcmp(it->valuestring, "reject") == 0)
				c->drop_invalid_identity = false;
			else if (cJSON_IsString(it) && strcmp(it->valuestring, "drop") == 0)
				c->drop_invalid_identity = true;
			else {
				seterr(err, errlen, "invalid_identity: expected \"reject\" (400) or \"drop\"");
				goto out;
			}
		} else if (strcmp(k, "inspect_responses") == 0) {
			if (json_bool(it, "inspect_responses", &c->inspect_responses, err, errlen) < 0)
				goto out;
		} else if (strcmp(k, "ack_only") == 0) {
			if (json_bool(it, "ack_only", &c->ack_only, err, errlen) < 0)
				goto out;
		} else {
			seterr(err, errlen, "%s: unknown key (see README.md, section Configuration)", k);
			goto out;
		}
	}
	rc = 0;
out:
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
		} else if ((rc = flag_value(argc, argv, &i, "--threads", &val)) != 0) {
			char *end;
			long v = rc > 0 ? strtol(val, &end, 10) : -1;
			if (rc < 0 || *val == '\0' || *end != '\0' || v < 1 || v > 256) {
				seterr(err, errlen, "--threads needs a number from 1 to 256");
				return CLI_ERROR;
			}
			c->threads = (int)v;
		} else if ((rc = flag_value(argc, argv, &i, "--log-level", &val)) != 0) {
			if (rc < 0 || config_parse_log_level(val, &c->log_level) < 0) {
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
