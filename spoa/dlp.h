/* dlp.h: sensitive data in what goes to the model.
 *
 * Built-in detectors for provider and cloud credentials, private keys, JWTs and
 * personal data, each with an action: deny, monitor (count and log the detector's
 * name, never the match) or off. Every detector has literal anchors ("AKIA",
 * "ghp_", "-----BEGIN", '@', a digit...) found with memchr/memmem, and a
 * hand-written confirmer with the exact shape and, where one exists, the checksum
 * (Luhn for cards, mod-97 for IBANs): no regex engine on the hot path, one pass
 * per anchor over the raw body (secrets sit in JSON strings as they are). Custom
 * detectors add a literal anchor and a POSIX extended regex confirmed around it.
 * Pure. */
#ifndef SPOA_DLP_H
#define SPOA_DLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"

enum dlp_detector {
	DLP_OPENAI_KEY = 0, DLP_ANTHROPIC_KEY, DLP_GOOGLE_API_KEY, DLP_AWS_ACCESS_KEY, DLP_GITHUB_TOKEN,
	DLP_GITLAB_TOKEN, DLP_SLACK_TOKEN, DLP_PRIVATE_KEY, DLP_JWT, DLP_CREDIT_CARD, DLP_IBAN, DLP_EMAIL,
	DLP_PHONE, DLP_BUILTIN,
};

enum dlp_action { DLP_OFF = 0, DLP_MONITOR, DLP_DENY };

#define DLP_MAX_CUSTOM 16

struct dlp_custom {
	char name[48];
	char reason[52];             /* "dlp_<name>" */
	char anchor[32];
	void *re;                    /* regex_t, owned */
	enum dlp_action action;
};

struct dlp_cfg {
	enum dlp_action action[DLP_BUILTIN];
	struct dlp_custom custom[DLP_MAX_CUSTOM];
	int ncustom;
	bool enabled;                /* any detector on */
};

struct dlp_result {
	uint32_t found;              /* bit per detector (builtin, then custom from bit DLP_BUILTIN) */
	int deny;                    /* first detector whose action is deny, or -1 */
};

/* "aws_access_key", ... or a custom name. */
const char *dlp_name(const struct dlp_cfg *c, int detector);
/* "dlp_aws_access_key", ...: the decision's reason. */
const char *dlp_reason(const struct dlp_cfg *c, int detector);
enum dlp_action dlp_action_of(const struct dlp_cfg *c, int detector);

/* The policy's "dlp" object: {"detectors": {"<name>": "deny|monitor|off"},
 * "custom": [{"name", "anchor", "regex", "action"}]}. Without it every detector
 * is off. Errors name the JSON path under "dlp". The compiled custom regexes
 * are c's: dlp_free releases them, after a failed parse too; obj stays the caller's. */
struct cJSON;
int dlp_parse(struct dlp_cfg *c, const struct cJSON *obj, char *err, size_t errlen);
void dlp_free(struct dlp_cfg *c);

/* Scans text (the raw body) with every detector that is not off. */
void dlp_scan(const struct dlp_cfg *c, struct spop_slice text, struct dlp_result *r);

#endif
