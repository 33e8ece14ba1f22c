/* config.h: the agent's settings, from built-in defaults, a JSON file and the CLI.
 *
 * Pure: parsing works on strings and argv; reading the file is the caller's job
 * (config_read_file is the one helper that touches the filesystem). Errors come
 * back as one line of text naming the flag or the JSON path.
 */
#ifndef SPOA_CONFIG_H
#define SPOA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "jwt.h"             /* struct jwt_cfg */
#include "keys.h"            /* PROVIDER_KEYS_MAX */
#include "log.h"             /* enum log_level */
#include "pricing.h"         /* struct price_table */
#include "prom.h"            /* struct prom_cfg */
#include "provider.h"        /* struct provider_table */
#include "request_types.h"   /* enum truncated_policy */
#include "statsd.h"          /* struct statsd_cfg */

#define CONFIG_MAX_LISTEN 16
#define CONFIG_ERR_LEN    256
#define CONFIG_METER_DEFAULT "127.0.0.1:9465"

struct listen_addr {
	char text[128];                /* as the user wrote it, for logs */
	struct sockaddr_storage ss;
	socklen_t sslen;
	bool is_unix;
};

/* The store budgets and rate limits share (bstore.h). */
struct bstore_cfg {
	char redis[256];              /* "host:port", "unix:/path", or "" for none */
	char prefix[32];              /* key prefix, default "archestra" */
	unsigned refresh_ms;          /* how often the view of scopes in use is read (default 100) */
	unsigned timeout_ms;          /* an answer later than this: the store counts as down (default 500) */
};

/* store.redis as the Redis client needs it: "unix:/path", "HOST:PORT", "[V6]:PORT". */
struct store_addr {
	bool is_unix;
	char host[256];               /* or the socket's path */
	int port;
};
int config_parse_store_addr(const char *a, struct store_addr *out, char *err, size_t errlen);

struct config {
	struct listen_addr listen[CONFIG_MAX_LISTEN];
	int nlisten;
	int threads;                  /* 0: one per core */
	int max_connections;          /* whole process */
	uint32_t max_frame_size;      /* the most the agent accepts and announces */
	size_t max_reassembled;       /* bound on a fragmented NOTIFY */
	unsigned caps;                /* SPOP_CAP_* the agent may use */
	unsigned hello_ms, idle_ms, drain_ms;
	enum log_level log_level;
	bool ack_only;                /* benchmark knob: answer every NOTIFY with no action */
	struct provider_table providers;
	enum truncated_policy truncated_body;
	bool inspect_responses;       /* show responses to the agent (costs a second SPOP exchange) */
	bool drop_invalid_identity;   /* invalid X-Archestra-* values: dropped, else 400 */
	struct statsd_cfg statsd;
	struct prom_cfg prometheus;   /* the /metrics endpoint */
	struct listen_addr meter;     /* UDP: HAProxy's end-of-call records (meter.h) */
	bool meter_on;
	struct bstore_cfg store;
	struct price_table prices;
	char keys_file[512];          /* virtual keys; "" when none */
	char policy_file[512];        /* "" : the embedded default policy */
	struct {
		char provider[32];
		char env[64];             /* the variable that holds the real key, or "" */
		char file[256];           /* the file that holds it (systemd credentials), or "" */
	} pkeys[PROVIDER_KEYS_MAX];
	int npkeys;
	struct {
		bool enabled;
		char jwks_file[512];
		char jwks_url[512];
		char jwks_ca_file[512];
		unsigned jwks_refresh_s, jwks_min_refetch_s;
		char hs256_secret_env[64];
		struct jwt_cfg cfg;       /* issuer, audience, algorithms, leeway, claims */
	} jwt;
	char config_path[512];        /* "" when none */
};

enum cli_result {
	CLI_RUN,      /* start the agent */
	CLI_CHECK,    /* validate and exit */
	CLI_HELP,     /* print usage, exit 0 */
	CLI_VERSION,  /* print version, exit 0 */
	CLI_ERROR,    /* err holds one line */
};

void config_defaults(struct config *c);

/* Parses argv (after argv[0]). --config is read and applied first, then the other
 * flags override it, whatever their order. */
enum cli_result config_from_args(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Applies a JSON document over c; text[len] must be '\0'. Returns 0, or -1 with err set ("path: problem").
 * c holds nothing allocated (strings are copied into its arrays); the caller owns text. */
int config_apply_json(struct config *c, const char *text, size_t len, char *err, size_t errlen);

/* "HOST:PORT", "[IPV6]:PORT", "unix:/path". Returns 0 or -1 with err set. */
int config_parse_listen(const char *s, struct listen_addr *out, char *err, size_t errlen);
/* "off", or the meter's UDP HOST:PORT, into c->meter / c->meter_on. */
int config_parse_meter(const char *s, struct config *c, char *err, size_t errlen);

/* Reads a whole file into a NUL-terminated malloc'd string (caller frees). */
char *config_read_file(const char *path, size_t *len, char *err, size_t errlen);

extern const char config_usage[];

#endif
