/* request.h: the decision on one `archestra-req` message.
 *
 * Pure: reads the message arguments (slices of the frame) and the settings, and
 * fills a decision; handler.c turns it into set-var actions. What the decision
 * reads is what the provider will execute, or the call is refused: the path is
 * normalized (or refused) before it is matched and it is the path forwarded; the
 * body is one JSON reading (jsonscan.h's json_check) and its values are read
 * decoded; a body HAProxy could not buffer whole is never taken as inspected.
 *
 * Lifetimes: each pointer and slice of struct req_decision says where it points,
 * and so how long it may be read:
 *   [frame]    the NOTIFY frame being answered: until its ACK is written
 *   [scratch]  the read_scratch arena (decide_env.scratch, or the thread's own when
 *              NULL): until the next decision on it, which may move it
 *   [snapshot] the struct auth decided with (decide_env.auth): the worker holds it
 *              until it takes a newer one, at a later message
 *   [config]   the request_cfg's provider table: as long as the server
 *   [static]   string literals and static tables
 *   [self]     a member of the decision itself: as long as the decision (do not
 *              copy the decision and drop the original)
 * Nothing in a decision is owned or freed by it. */
#ifndef SPOA_REQUEST_H
#define SPOA_REQUEST_H

#include <stdbool.h>

#include "budget.h"
#include "identity.h"
#include "jwt.h"
#include "keys.h"
#include "policy.h"
#include "request_types.h"   /* enum truncated_policy, struct request_cfg, struct read_scratch */
#include "spop.h"

struct provider;

/* What authentication needs that can change at run time (SIGHUP, file change):
 * one immutable snapshot, swapped whole. */
struct auth {
	uint64_t gen;                     /* tells snapshots apart (JWT cache entries) */
	int refs;                         /* holders; managed by the server under its lock */
	struct keystore keys;
	struct provider_keys provider_keys;
	bool jwt_enabled;
	struct jwt_cfg jwt;
	struct jwks jwks;
	struct policy policy;
};

/* Verified JWTs, per worker: a repeated token costs a hash and a lookup, not a
 * signature check, until it expires or the snapshot changes. */
#define JWT_CACHE_SLOTS     256
#define JWT_CACHE_TOKEN_MAX 2048   /* longer tokens are verified every time */
struct jwt_cache {
	struct {
		uint64_t gen;              /* 0: empty */
		uint16_t len;
		char key_id[24];
		struct jwt_claims claims;
		uint8_t tok[JWT_CACHE_TOKEN_MAX];   /* the whole token: a hit is an exact match */
	} e[JWT_CACHE_SLOTS];
	uint64_t hits, misses;
};

/* Room for a body of body_len bytes and `extra` bytes of paths and names; false
 * when memory is short. */
bool read_scratch_fit(struct read_scratch *s, size_t body_len, size_t extra);
void read_scratch_free(struct read_scratch *s);

/* What a decision may consult besides the message: all optional. */
struct decide_env {
	const struct auth *auth;          /* NULL: no keys, no JWT */
	int64_t now;                      /* unix seconds */
	struct jwt_cache *cache;          /* NULL: verify every time */
	struct read_scratch *scratch;     /* NULL: a per-thread one (tests) */
};

struct req_decision {
	int status;                     /* 0: allow; else the HTTP status of the refusal */
	const char *reason;             /* machine-readable, e.g. "unknown_provider": [static], or a policy rule's
	                                 * id or a custom DLP detector's reason [snapshot] */
	char message[240];              /* human text of a refusal; never holds a secret */
	const struct provider *prov;    /* NULL when the path matched none [config] */
	struct spop_slice rest;         /* normalized path after the provider prefix: [frame], or [scratch] when
	                                 * percent escapes were decoded */
	struct spop_slice upstream;     /* what goes upstream: base + rest [+ '?' + query] [scratch] */
	struct spop_slice credential;   /* from a header or the query [frame]; never logged */
	unsigned cred_where;            /* CRED_* bit it was found at, 0 if none */
	bool inspect_res;               /* HAProxy should send archestra-res for this call */
	bool truncated;                 /* HAProxy could not buffer the whole body */
	bool user_overridden;           /* X-Archestra-User-Id differed from the credential's owner */
	bool stream;                    /* the call asks for server-sent events */
	bool has_stream_options;        /* the body has a stream_options member */
	bool hold_stream;               /* a stream whose tool calls are checked: HAProxy holds it whole */
	int64_t add_usage_at;           /* > 0: where HAProxy inserts stream_options.include_usage */
	struct spop_slice model;        /* from the body (or the path for Gemini); may be empty. [frame], or
	                                 * [scratch] when decoded (escapes in the JSON string), or [self]
	                                 * (path_model, a path's %XX decoded) */
	char path_model[257];           /* a model named in the path with %XX escapes (Bedrock's "v1%3A0"), decoded */
	struct identity id;             /* X-Archestra-* values [frame]; v[ID_USER] is owner's slice [scratch]
	                                 * once the credential named its owner */
	unsigned id_dropped;            /* invalid identity values dropped */
	struct identity_error id_err;   /* set when status is 400 for an identity header [static] */
	char key_id[24];                /* "dk_<hash>" for a direct key, the id of a virtual key */
	const char *auth_hdr;           /* set when the agent substitutes the real provider key [static] */
	const char *auth_scheme;        /* "Bearer " or "" before the real key [static] */
	struct spop_slice auth_key;     /* the real key [snapshot], or the Authorization value of a signed call
	                                 * [scratch]; never logged */
	const struct sigv4_out *sig;    /* a call the agent signed with AWS credentials: the x-amz-* headers to
	                                 * set [scratch]; NULL otherwise */
	struct spop_slice owner;        /* the virtual key's owner, or the JWT's user (safe characters): [scratch]
	                                 * once decided; before that the key's [snapshot] or jwt_user [self] */
	const struct endpoint_list *grant;  /* the credential's own endpoint grant, or NULL [snapshot] */
	char jwt_user[128];             /* backing store for owner with a JWT */
	char jwt_scope[8][64];          /* the token's scope_claim values */
	int njwt_scope;
	int64_t output_tokens;          /* asked for in the body (times the choices); -1: not said */
	int64_t choices;                /* n (OpenAI), candidateCount (Gemini); -1: not said */
	bool background;                /* OpenAI background mode: the output is fetched later */
	bool tools_unknown;             /* a stored prompt or cached content may declare tools */
	int64_t messages;               /* messages / contents in the body; -1: unknown */
	struct policy_result policy;    /* the deciding rule, and shadow rules that would have denied: rules of
	                                 * the policy [snapshot]; why [self] */
	bool untrusted;                 /* a tool result from an untrusted tool is in the conversation */
	uint32_t dlp_found;             /* detectors that matched (never the matched text) */
	const struct dlp_cfg *dlp_cfg;  /* names the detectors [snapshot] */
	bool dlp_shadow;                /* a deny detector matched under global shadow */
	struct budget_charge charges[BUDGET_MAX_CHARGES];  /* budgets and rate limits in scope: limits [snapshot],
	                                                    * values as the policy input's */
	int ncharges;
	int64_t est_in, est_out;        /* tokens charged to the limits when the call ends without usage (a
	                                 * client gone before the last event, a stream told not to report) */
	int64_t retry_after;            /* seconds, for a 429 or 402 over a limit; 0: none */
	const char *budget_shadow;      /* a limit in shadow mode the call is over [snapshot], or NULL */
	struct spop_slice tools[POLICY_MAX_TOOLS];   /* tools offered: [frame], or [scratch] when decoded */
	int ntools;
	bool tools_truncated;
};

void request_decide(const struct request_cfg *cfg, const struct decide_env *env, const struct spop_msg *m,
                    struct req_decision *d);

/* The credential of a request, wherever the provider's clients put it. Returns
 * the number of distinct values found (0, 1, or 2 meaning "conflicting"). */
int request_credential(const struct spop_data *hdrs, const struct spop_data *query, unsigned where,
                       struct spop_slice *value, unsigned *found_at);

#endif
