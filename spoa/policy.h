/* policy.h: request rules, compiled once from JSON, evaluated without allocation.
 *
 * A policy is an ordered list of rules. A rule applies to all traffic or to what
 * its "when" matches (provider, model, key id, key owner, agent id, user id; glob
 * patterns), and holds checks: models allow/deny, providers allow/deny, a cap on
 * output tokens, on messages, on body size, streaming allowed or not, identity
 * headers required. Rules are evaluated in file order; the first rule with a
 * failing check denies, and its id becomes the decision's reason. A rule in shadow
 * mode (or every rule, with "shadow": true at the top) is evaluated and reported
 * but does not deny. Pure. */
#ifndef SPOA_POLICY_H
#define SPOA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlp.h"
#include "spop.h"

struct budget_set; /* budget.h */
struct cJSON;
struct identity;   /* identity.h */

#define POLICY_MAX_RULES    256
#define POLICY_MAX_PATTERNS 16
#define POLICY_MAX_TOOLS    128

struct pattern_list {
	char p[POLICY_MAX_PATTERNS][64];
	int n;                      /* 0: no list */
};

enum scope_field { SC_PROVIDER = 0, SC_MODEL, SC_KEY_ID, SC_KEY_OWNER, SC_AGENT_ID, SC_USER_ID, SC_FIELDS };

/* A condition on one argument of a tool call the model made. */
enum arg_op { ARG_EQUALS = 0, ARG_GLOB, ARG_REGEX, ARG_NOT_IN };
struct arg_cond {
	char path[64];                         /* dotted path in the arguments: "to", "recipient.email" */
	enum arg_op op;
	char value[128];                       /* equals / glob / regex (POSIX extended) */
	struct pattern_list not_in;
	void *re;                              /* compiled regex (regex_t), owned */
};

/* A tool the model may not call: by name, and when every condition holds. */
#define POLICY_MAX_ARGS 4
struct tool_call_rule {
	char name[64];                         /* glob */
	struct arg_cond args[POLICY_MAX_ARGS];
	int nargs;
};

struct policy_rule {
	char id[64];
	bool shadow;
	struct pattern_list when[SC_FIELDS];   /* all given lists must match */
	struct pattern_list when_claim;        /* a value of the JWT's scope_claim must match */
	struct pattern_list models_allow, models_deny, providers_allow, providers_deny;
	int64_t max_output_tokens;             /* 0: no cap */
	int64_t max_messages;
	int64_t max_body_bytes;
	int stream;                            /* -1: no rule, 0: refused, 1: allowed */
	unsigned require;                      /* bit set of 1 << enum id_field */
	struct pattern_list tools_allow, tools_deny;   /* tools offered in the request */
	struct tool_call_rule *calls;          /* tool calls in responses; owned */
	int ncalls;
};

/* Trusted data: tool results the request carries are classed by tool name; once
 * one is untrusted, the sensitive tools may not be called in the response. */
struct trusted_cfg {
	bool enabled;
	bool default_untrusted;                /* tools in neither list */
	struct pattern_list trusted, untrusted, sensitive;
	struct pattern_list untrusted_content;  /* globs on a result's text: untrusted whatever the tool */
	struct policy_rule rule;               /* its id and shadow flag, for the decision */
};

struct policy {
	struct policy_rule *rules;             /* owned: policy_free */
	int n;
	bool shadow;
	bool has_tool_calls;                   /* some rule checks responses */
	struct dlp_cfg dlp;                    /* sensitive data in requests ("dlp" section) */
	struct trusted_cfg trusted;            /* "trusted_data" section */
	struct budget_set *budgets;            /* "budgets" and "rate_limits"; owned, NULL: none */
};

/* A tool call the model made: its name, and its arguments as a JSON object. */
struct tool_call {
	struct spop_slice name;
	struct spop_slice args;
};

/* What a request offers to the rules: slices of the frame, nothing copied. */
struct policy_input {
	struct spop_slice v[SC_FIELDS];
	const struct identity *id;
	int64_t output_tokens;                 /* -1: not asked */
	int64_t messages;                      /* -1: unknown */
	int64_t body_bytes;
	bool stream;
	const struct spop_slice *tools;        /* names of the tools the request offers */
	int ntools;
	bool tools_truncated;                  /* more than POLICY_MAX_TOOLS: refused by any tools rule */
	bool tools_unknown;                    /* a stored prompt or cached content may hold more tools */
	bool model_unnamed;                    /* a call that should name its model does not */
	bool untrusted;                        /* responses: the conversation carried untrusted data */
	const char (*claims)[64];              /* the JWT's scope_claim values */
	int nclaims;
};

#define POLICY_MAX_SHADOW 8
struct policy_result {
	const struct policy_rule *deny;        /* NULL: allowed */
	char why[160];                         /* for the refusal message; no secret */
	const struct policy_rule *shadow[POLICY_MAX_SHADOW];   /* would have denied */
	int nshadow;
};

/* Compiles a policy document. Errors name the JSON path and give a hint. On 0,
 * p owns its rules, tool-call regexes and DLP config: the caller releases them
 * with policy_free. On -1 p holds nothing (policy_free is still safe). */
int policy_parse(const char *json, size_t len, struct policy *p, char *err, size_t errlen);
void policy_free(struct policy *p);

void policy_eval(const struct policy *p, const struct policy_input *in, struct policy_result *r);

/* The response side: the model's tool calls against the rules' tool_calls checks
 * (scope from `in`: provider, model, key id, agent id, user id). */
void policy_eval_calls(const struct policy *p, const struct policy_input *in, const struct tool_call *calls, int n,
                       struct policy_result *r);

/* Do response checks apply to this call: a rule with tool_calls in scope, or
 * trusted_data once in->untrusted, AND the request offers a tool their name globs
 * could match (a model calls only the tools its request declares)? 0: none, 1: only
 * in shadow, 2: enforced. */
int policy_calls_apply(const struct policy *p, const struct policy_input *in);

/* Is a tool's result trusted (trusted_data section)? content is the result as it
 * appears in the body (a JSON string's text or the raw JSON value). */
bool policy_tool_trusted(const struct policy *p, struct spop_slice tool, struct spop_slice content);

/* "when": the globs a rule's (or a budget's) scope fields must match: reading
 * them, and matching a call against them. */
int policy_parse_when(const struct cJSON *v, const char *path, const char *key, struct pattern_list when[SC_FIELDS],
                      struct pattern_list *claim, char *err, size_t errlen);
bool policy_when_match(const struct pattern_list when[SC_FIELDS], const struct pattern_list *claim,
                       const struct policy_input *in);

/* The policy built into the binary (policy/default.json). */
extern const char policy_default_json[];

#endif
