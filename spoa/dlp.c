/* dlp.c: one vector pass for trigger bytes, hand-written confirmers around them.
 *
 * Every built-in secret shape contains a byte that is rare in prose and sits at a
 * fixed place in the shape: '-' (sk-, glpat-, xoxb-, -----BEGIN), '_' (ghp_,
 * github_pat_), 'I' (AKIA, ASIA, AIza), 'J' (eyJ of a JWT), '@' (e-mail) and the
 * digits (cards, IBANs, phone numbers). The scan finds those bytes 16 at a time and
 * confirms the shape around each by hand; digit runs are consumed whole so a long
 * number costs one confirmation, not one per digit.
 *
 * The body is the attacker's, so no confirmer may read far ahead from every
 * trigger. Each reads a bounded number of bytes past its trigger (AKIA, ghp_,
 * private keys, IBANs), or bytes no later trigger of its kind reads again (e-mail
 * stops at the next '@'; a number resumes the scan past itself), or shares what it
 * read with the triggers after it (struct scan: token runs, JWT headers). So any
 * body costs a bounded amount per byte; tests/bench/dlp-bench.c times the worst
 * bodies we know. */
#include "dlp.h"

#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cfgjson.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char *const names[] = {   /* by enum dlp_detector, then "all" for the policy, then NULL */
	"openai_key", "anthropic_key", "google_api_key", "aws_access_key", "github_token", "gitlab_token", "slack_token",
	"private_key", "jwt", "credit_card", "iban", "email", "phone", "all", NULL,
};
_Static_assert(sizeof(names) / sizeof(names[0]) == DLP_BUILTIN + 2, "a name for each detector");
static const char *const reasons[DLP_BUILTIN] = {
	"dlp_openai_key", "dlp_anthropic_key", "dlp_google_api_key", "dlp_aws_access_key", "dlp_github_token",
	"dlp_gitlab_token", "dlp_slack_token", "dlp_private_key", "dlp_jwt", "dlp_credit_card", "dlp_iban", "dlp_email",
	"dlp_phone",
};

const char *dlp_name(const struct dlp_cfg *c, int d)
{
	if (d >= 0 && d < DLP_BUILTIN)
		return names[d];
	return d - DLP_BUILTIN < c->ncustom ? c->custom[d - DLP_BUILTIN].name : "?";
}

const char *dlp_reason(const struct dlp_cfg *c, int d)
{
	if (d >= 0 && d < DLP_BUILTIN)
		return reasons[d];
	return d - DLP_BUILTIN < c->ncustom ? c->custom[d - DLP_BUILTIN].reason : "dlp";
}

enum dlp_action dlp_action_of(const struct dlp_cfg *c, int d)
{
	if (d >= 0 && d < DLP_BUILTIN)
		return c->action[d];
	return d - DLP_BUILTIN < c->ncustom ? c->custom[d - DLP_BUILTIN].action : DLP_OFF;
}

/* ---- loading ---- */

static const char *const action_names[] = { [DLP_OFF] = "off", [DLP_MONITOR] = "monitor", [DLP_DENY] = "deny", NULL };
static const char action_want[] = "expected \"deny\", \"monitor\" or \"off\"";

/* "detectors": {"<name>" or "all": "deny|monitor|off"}, applied in file order */
static int parse_detectors(struct dlp_cfg *c, const cJSON *obj, char *err, size_t errlen)
{
	const cJSON *d;
	if (cfg_object(obj, "dlp", "detectors", 0, NULL, "expected an object {\"aws_access_key\": \"deny\", ...}", err,
	               errlen) < 0)
		return -1;
	cJSON_ArrayForEach(d, obj) {
		int k = cfg_lookup(d->string, names), a; /* names[DLP_BUILTIN] is "all" */
		if (k < 0)
			return cfg_unknown(err, errlen, "dlp.detectors", d->string, "detector", names);
		if (cfg_enum(d, "dlp.detectors", d->string, 0, action_names, &a, action_want, err, errlen) < 0)
			return -1;
		if (k == DLP_BUILTIN)
			for (int j = 0; j < DLP_BUILTIN; j++)
				c->action[j] = (enum dlp_action)a; /* "all" first, then exceptions: file order */
		else
			c->action[k] = (enum dlp_action)a;
	}
	return 0;
}

/* "custom": [{"name", "anchor", "regex", "action"}] */
static int parse_custom(struct dlp_cfg *c, const cJSON *arr, char *err, size_t errlen)
{
	const cJSON *e;
	if (cfg_array(arr, "dlp", "custom", 0, 0, INT_MAX, "{\"name\", \"anchor\", \"regex\", \"action\"} objects", err,
	              errlen) < 0)
		return -1;
	cJSON_ArrayForEach(e, arr) {
		char path[32], anchor_want[160];
		int i = c->ncustom, action = DLP_DENY;
		if (i == DLP_MAX_CUSTOM)
			return cfg_fail(err, errlen, "dlp", "custom", "at most %d custom detectors", DLP_MAX_CUSTOM);
		struct dlp_custom *cu = &c->custom[i];
		cfg_path_idx(path, sizeof(path), "dlp", "custom", i);
		snprintf(anchor_want, sizeof(anchor_want), "expected a literal of 1..%zu characters that every match contains "
		         "(it is searched first; the regex confirms)", sizeof(cu->anchor) - 1);
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"), *re = cJSON_GetObjectItemCaseSensitive(e, "regex");
		if (cfg_str(nm, path, "name", CFG_NONEMPTY, cu->name, sizeof(cu->name), NULL, err, errlen) < 0 ||
		    cfg_str(cJSON_GetObjectItemCaseSensitive(e, "anchor"), path, "anchor", CFG_NONEMPTY, cu->anchor,
		            sizeof(cu->anchor), anchor_want, err, errlen) < 0 ||
		    cfg_enum(cJSON_GetObjectItemCaseSensitive(e, "action"), path, "action", CFG_OPTIONAL, action_names, &action,
		             action_want, err, errlen) < 0)
			return -1;
		if (!cJSON_IsString(re))
			return cfg_fail(err, errlen, path, "regex", "expected a POSIX extended regex");
		regex_t *rx = malloc(sizeof(*rx));
		if (!rx || regcomp(rx, re->valuestring, REG_EXTENDED | REG_NOSUB) != 0) {
			free(rx);
			return cfg_fail(err, errlen, path, "regex", "not a valid POSIX extended regex");
		}
		cu->action = (enum dlp_action)action;
		snprintf(cu->reason, sizeof(cu->reason), "dlp_%s", nm->valuestring);
		cu->re = rx;
		c->ncustom++;
	}
	return 0;
}

int dlp_parse(struct dlp_cfg *c, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const keys[] = { "detectors", "custom", NULL };
	const cJSON *it;
	if (cfg_object(obj, NULL, "dlp", 0, NULL, "expected an object {\"detectors\": {...}, \"custom\": [...]}", err,
	               errlen) < 0)
		return -1;
	cJSON_ArrayForEach(it, obj) {
		int k = cfg_lookup(it->string, keys);
		if (k < 0)
			return cfg_unknown(err, errlen, "dlp", it->string, "key", keys);
		if ((k == 0 ? parse_detectors(c, it, err, errlen) : parse_custom(c, it, err, errlen)) < 0)
			return -1;
	}
	c->enabled = false;
	for (int k = 0; k < DLP_BUILTIN; k++)
		c->enabled |= c->action[k] != DLP_OFF;
	for (int k = 0; k < c->ncustom; k++)
		c->enabled |= c->custom[k].action != DLP_OFF;
	return 0;
}

void dlp_free(struct dlp_cfg *c)
{
	for (int i = 0; i < c->ncustom; i++)
		if (c->custom[i].re) {
			regfree(c->custom[i].re);
			free(c->custom[i].re);
		}
	memset(c, 0, sizeof(*c));
}

/* ---- confirmers: s[0..n) is the text, p the trigger ---- */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline int is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }
static inline int is_alnum(uint8_t c) { return is_digit(c) || is_upper(c) || (c >= 'a' && c <= 'z'); }
static inline int is_tok(uint8_t c) { return is_alnum(c) || c == '_' || c == '-'; }

/* Length of the run of bytes from p that pass f, at most max. */
static size_t run(const uint8_t *s, size_t n, size_t p, int (*f)(uint8_t), size_t max)
{
	size_t i = p;
	while (i < n && i - p < max && f(s[i]))
		i++;
	return i - p;
}

static int is_awsc(uint8_t c) { return is_upper(c) || is_digit(c); }

/* What the confirmers share during one scan. */
struct scan {
	uint32_t found;
	size_t tok_from, tok_end; /* s[tok_from..tok_end) are token bytes, s[tok_end] is not (or is the end) */
	size_t jwt_next;          /* a 'J' before it lies in a header run already judged */
};

/* End of the run of token bytes from q. Triggers come in increasing order and ask
 * from just past themselves, so when many sit in one long run (sk-sk-sk-...,
 * -eyJ-eyJ...) the first reads it and the others get its end here; a run is read
 * once per scan. */
static size_t tok_end(struct scan *st, const uint8_t *s, size_t n, size_t q)
{
	if (q < st->tok_from || q > st->tok_end) {
		size_t e = q;
		while (e < n && is_tok(s[e]))
			e++;
		st->tok_from = q;
		st->tok_end = e;
	}
	return st->tok_end;
}

/* Does a token start at i (nothing word-like just before)? A JSON escape such as
 * the \n in "key:\nAKIA..." ends a word too. */
static inline int starts(const uint8_t *s, size_t i)
{
	if (i == 0 || !is_alnum(s[i - 1]))
		return 1;
	uint8_t e = s[i - 1];
	return i >= 2 && s[i - 2] == '\\' && (e == 'n' || e == 'r' || e == 't' || e == 'b' || e == 'f');
}

static inline int at(const uint8_t *s, size_t n, size_t i, const char *lit)
{
	size_t l = strlen(lit);
	return i + l <= n && memcmp(s + i, lit, l) == 0;
}

/* '-' triggers: sk-, sk-ant-, glpat-, xox?-, -----BEGIN ... PRIVATE KEY-----.
 * The token after sk-, glpat- or xox?- is measured with tok_end (shared); the
 * private key header looks at most 40 bytes ahead. */
static void on_dash(struct scan *st, const uint8_t *s, size_t n, size_t p)
{
	if (p >= 2 && s[p - 2] == 's' && s[p - 1] == 'k' && starts(s, p - 2)) {
		if (tok_end(st, s, n, p + 1) - (p + 1) >= 20)
			st->found |= 1u << (at(s, n, p + 1, "ant-") ? DLP_ANTHROPIC_KEY : DLP_OPENAI_KEY);
		return;
	}
	if (p >= 5 && memcmp(s + p - 5, "glpat", 5) == 0 && starts(s, p - 5)) {
		if (tok_end(st, s, n, p + 1) - (p + 1) >= 20)
			st->found |= 1u << DLP_GITLAB_TOKEN;
		return;
	}
	if (p >= 4 && memcmp(s + p - 4, "xox", 3) == 0 && strchr("baprs", s[p - 1]) && s[p - 1] && starts(s, p - 4)) {
		if (tok_end(st, s, n, p + 1) - (p + 1) >= 10)
			st->found |= 1u << DLP_SLACK_TOKEN;
		return;
	}
	if (at(s, n, p, "-----BEGIN ")) {
		size_t lim = p + 11 + 40 < n ? p + 11 + 40 : n;
		for (size_t i = p + 11; i + 16 <= lim; i++)
			if (memcmp(s + i, "PRIVATE KEY-----", 16) == 0) {
				st->found |= 1u << DLP_PRIVATE_KEY;
				return;
			}
	}
}

/* '_' triggers: gh[pousr]_ + 36, github_pat_ + 22 or more. Reading past 36
 * alphanumerics cannot change the verdict, so ghp_ reads no further. */
static void on_underscore(struct scan *st, const uint8_t *s, size_t n, size_t p)
{
	if (p >= 3 && s[p - 3] == 'g' && s[p - 2] == 'h' && strchr("pousr", s[p - 1]) && s[p - 1] && starts(s, p - 3)) {
		if (run(s, n, p + 1, is_alnum, 36) >= 36)
			st->found |= 1u << DLP_GITHUB_TOKEN;
	} else if (p >= 10 && memcmp(s + p - 10, "github_pat", 10) == 0 && starts(s, p - 10)) {
		if (tok_end(st, s, n, p + 1) - (p + 1) >= 22)
			st->found |= 1u << DLP_GITHUB_TOKEN;
	}
}

/* 'I' triggers: AKIA/ASIA + 16 [A-Z0-9] (17 bytes read at most), AIza + exactly 35 */
static void on_I(struct scan *st, const uint8_t *s, size_t n, size_t p)
{
	if (p >= 2 && s[p - 2] == 'A' && (s[p - 1] == 'K' || s[p - 1] == 'S') && p + 1 < n && s[p + 1] == 'A' &&
	    starts(s, p - 2)) {
		size_t l = run(s, n, p + 2, is_awsc, 17);
		if (l == 16 && (p + 18 >= n || !is_alnum(s[p + 18])))
			st->found |= 1u << DLP_AWS_ACCESS_KEY;
	} else if (p >= 1 && s[p - 1] == 'A' && at(s, n, p + 1, "za") && starts(s, p - 1)) {
		if (tok_end(st, s, n, p + 3) - (p + 3) == 35)
			st->found |= 1u << DLP_GOOGLE_API_KEY;
	}
}

/* 'J' triggers: eyJ<b64u>.eyJ<b64u>.<b64u>, any length. Every 'J' in one header
 * run shares the first one's fate (a shorter header, the same '.', payload and
 * signature after it), so the first judges the run and the others are skipped.
 * The payload is read once per header run, and payloads never overlap (a header
 * starting inside one ends where it ends), so each byte is read about twice. */
static void on_J(struct scan *st, const uint8_t *s, size_t n, size_t p)
{
	if (p < 2 || s[p - 2] != 'e' || s[p - 1] != 'y' || !starts(s, p - 2) || p < st->jwt_next)
		return;
	size_t i = p + 1, e = tok_end(st, s, n, i);
	st->jwt_next = e;
	if (e - i < 8 || e >= n || s[e] != '.')
		return;
	i = e + 1;
	if (!at(s, n, i, "eyJ"))
		return;
	size_t l = run(s, n, i, is_tok, SIZE_MAX);
	if (l < 8 || i + l >= n || s[i + l] != '.')
		return;
	if (run(s, n, i + l + 1, is_tok, 16) >= 16)
		st->found |= 1u << DLP_JWT;
}

static int is_local(uint8_t c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
static int is_dom(uint8_t c) { return is_alnum(c) || c == '-'; }

/* '@' triggers: local@label(.label)+ with an alphabetic TLD of 2 or more */
static void on_at(const uint8_t *s, size_t n, size_t p, uint32_t *found)
{
	if (p == 0 || !is_local(s[p - 1]) || s[p - 1] == '.')
		return;
	size_t i = p + 1, labels = 0, last = 0, alpha = 1;
	for (;;) {
		size_t l = run(s, n, i, is_dom, 63);
		if (l == 0)
			break;
		labels++;
		last = l;
		alpha = 1;
		for (size_t k = i; k < i + l; k++)
			alpha &= !is_digit(s[k]) && s[k] != '-';
		i += l;
		if (i + 1 < n && s[i] == '.' && is_dom(s[i + 1]))
			i++;
		else
			break;
	}
	if (labels >= 2 && last >= 2 && alpha)
		*found |= 1u << DLP_EMAIL;
}

static int luhn(const uint8_t *d, size_t nd)
{
	unsigned sum = 0;
	for (size_t i = 0; i < nd; i++) {
		unsigned v = d[nd - 1 - i];
		if (i & 1)
			v = v * 2 > 9 ? v * 2 - 9 : v * 2;
		sum += v;
	}
	return sum % 10 == 0;
}

/* IBAN at s[p-2]: CC + 2 check digits + up to 30 alphanumerics, in groups of 4
 * with single spaces allowed; mod-97 of the rearranged number must be 1. */
static size_t iban(const uint8_t *s, size_t n, size_t p)
{
	uint8_t ch[34];
	size_t nc = 0, i = p - 2;
	while (i < n && nc < 34) {
		uint8_t c = s[i];
		if (is_upper(c) || is_digit(c)) {
			ch[nc++] = c;
			i++;
		} else if (c == ' ' && nc % 4 == 0 && i + 1 < n && (is_upper(s[i + 1]) || is_digit(s[i + 1]))) {
			i++;
		} else {
			break;
		}
	}
	if (nc < 15 || (i < n && is_alnum(s[i])))
		return 0;
	/* A hostile body ("AB12 AB12 ...") makes this run at every group of 4, so
	 * reduce once per 8 characters (r < 97 * 100^8 < 2^64) instead of at each. */
	uint64_t r = 0;
	for (size_t k = 4; k < nc + 4; k++) {
		uint8_t c = ch[k < nc ? k : k - nc];
		r = is_digit(c) ? r * 10 + (c - '0') : r * 100 + (c - 'A' + 10);
		if (k % 8 == 3)
			r %= 97;
	}
	return r % 97 == 1 ? i : 0;
}

/* A digit at p starting a number: cards (13-19 digits, Luhn, groups separated by
 * one space or dash), phones (+ then 8-15 digits; or ddd-ddd-dddd, (ddd) ddd-dddd),
 * IBANs (two capitals before). Returns where scanning resumes. */
static size_t on_digit(const struct dlp_cfg *c, const uint8_t *s, size_t n, size_t p, uint32_t *found)
{
	if (p >= 2 && is_upper(s[p - 2]) && is_upper(s[p - 1]) && p + 1 < n && is_digit(s[p + 1]) &&
	    starts(s, p - 2) && c->action[DLP_IBAN] != DLP_OFF) {
		size_t e = iban(s, n, p);
		if (e) {
			*found |= 1u << DLP_IBAN;
			return e;
		}
	}
	if (!starts(s, p) || (p > 0 && s[p - 1] == '.'))
		return run(s, n, p, is_alnum, SIZE_MAX) + p; /* inside a word or a decimal */

	uint8_t d[24];
	size_t nd = 0, i = p, groups = 0, glen[8] = { 0 };
	uint8_t sep = 0;
	for (;;) {
		size_t l = 0;
		while (i < n && is_digit(s[i]) && nd < sizeof(d)) {
			d[nd++] = (uint8_t)(s[i++] - '0');
			l++;
		}
		if (groups < 8)
			glen[groups] = l;
		groups++;
		if (i < n && is_digit(s[i])) /* more than 24 digits: not a card nor a phone */
			return run(s, n, i, is_alnum, SIZE_MAX) + i;
		/* one separator, the same each time, then a digit */
		if (i + 1 < n && (s[i] == ' ' || s[i] == '-' || s[i] == '.') && (!sep || sep == s[i]) && is_digit(s[i + 1])) {
			sep = s[i];
			i++;
			continue;
		}
		break;
	}
	if (i < n && is_alnum(s[i]))
		return i;
	int plus = p > 0 && s[p - 1] == '+';
	int paren = p > 0 && s[p - 1] == '(' && groups == 1 && glen[0] == 3 && i + 10 <= n && s[i] == ')' &&
	            s[i + 1] == ' ' && run(s, n, i + 2, is_digit, 4) == 3 && s[i + 5] == '-' &&
	            run(s, n, i + 6, is_digit, 5) == 4;
	if (c->action[DLP_PHONE] != DLP_OFF) {
		if ((plus && nd >= 8 && nd <= 15) || paren ||
		    (groups == 3 && glen[0] == 3 && glen[1] == 3 && glen[2] == 4 && sep == '-')) {
			*found |= 1u << DLP_PHONE;
			return paren ? i + 10 : i;
		}
	}
	if (!plus && nd >= 13 && nd <= 19 && d[0] >= 2 && d[0] <= 6 && sep != '.' && luhn(d, nd))
		*found |= 1u << DLP_CREDIT_CARD;
	return i;
}

/* ---- the scan ---- */

#define CUSTOM_REACH 128 /* the regex sees this much text either side of an anchor hit */
#define CUSTOM_WIN 4096  /* at most this much per regexec */

/* Does the regex match s[from..to), at most CUSTOM_WIN bytes? REG_STARTEND makes a
 * NUL byte in the text an ordinary byte rather than the end; the terminated copy
 * is for sanitizers, whose regexec reads up to a NUL. */
static int custom_match(const struct dlp_custom *cu, const uint8_t *s, size_t from, size_t to)
{
	char win[CUSTOM_WIN + 1];
	memcpy(win, s + from, to - from);
	win[to - from] = 0;
	regmatch_t m = { .rm_so = 0, .rm_eo = (regoff_t)(to - from) };
	return regexec(cu->re, win, 1, &m, REG_STARTEND) == 0;
}

/* Hits whose windows overlap are merged, up to CUSTOM_WIN bytes, and confirmed by
 * one regexec: a match inside any hit's own window lies inside the merged one, so
 * none is lost, and each byte goes through the regex about once however dense the
 * hits (one regexec per hit made an anchor every few bytes quadratic). */
static void custom_scan(const struct dlp_cfg *c, const uint8_t *s, size_t n, uint32_t *found)
{
	for (int k = 0; k < c->ncustom; k++) {
		const struct dlp_custom *cu = &c->custom[k];
		if (cu->action == DLP_OFF)
			continue;
		size_t al = strlen(cu->anchor), h = 0, from = 0, to = 0;
		for (;;) {
			const uint8_t *m = h < n ? memmem(s + h, n - h, cu->anchor, al) : NULL;
			size_t a = 0, b = 0;
			if (m) {
				size_t hit = (size_t)(m - s);
				a = hit > CUSTOM_REACH ? hit - CUSTOM_REACH : 0;
				b = hit + al + CUSTOM_REACH < n ? hit + al + CUSTOM_REACH : n;
				h = hit + 1;
				if (to > from && a <= to && b - from <= CUSTOM_WIN) {
					to = b; /* overlaps the open window: widen it */
					continue;
				}
			}
			if (to > from && custom_match(cu, s, from, to)) {
				*found |= 1u << (DLP_BUILTIN + k);
				break;
			}
			if (!m)
				break;
			from = a;
			to = b;
		}
	}
}

static inline size_t trigger(const struct dlp_cfg *c, const uint8_t *s, size_t n, size_t p, struct scan *st)
{
	switch (s[p]) {
	case '-': on_dash(st, s, n, p); break;
	case '_': on_underscore(st, s, n, p); break;
	case 'I': on_I(st, s, n, p); break;
	case 'J': on_J(st, s, n, p); break;
	case '@': on_at(s, n, p, &st->found); break;
	default:
		if (is_digit(s[p]))
			return on_digit(c, s, n, p, &st->found);
	}
	return p + 1;
}

void dlp_scan(const struct dlp_cfg *c, struct spop_slice text, struct dlp_result *r)
{
	const uint8_t *s = text.ptr;
	size_t n = text.len, p = 0;
	struct scan st = { .tok_from = SIZE_MAX };
	r->found = 0;
	r->deny = -1;
	if (!c->enabled || !s)
		return;
#ifdef __SSE2__
	const __m128i dash = _mm_set1_epi8('-'), us = _mm_set1_epi8('_'), ci = _mm_set1_epi8('I'),
	              cj = _mm_set1_epi8('J'), atc = _mm_set1_epi8('@'), zero = _mm_set1_epi8('0'),
	              nine = _mm_set1_epi8(9);
	while (p + 16 <= n) {
		__m128i v = _mm_loadu_si128((const __m128i *)(s + p));
		__m128i dg = _mm_sub_epi8(v, zero);
		__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(v, us)),
		                         _mm_or_si128(_mm_cmpeq_epi8(v, ci), _mm_cmpeq_epi8(v, cj)));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(v, atc));
		m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_min_epu8(dg, nine), dg)); /* unsigned v-'0' <= 9 */
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (!bits) {
			p += 16;
			continue;
		}
		size_t base = p, next = p + 16;
		while (bits) {
			size_t q = base + (size_t)__builtin_ctz(bits);
			bits &= bits - 1;
			if (q < p)
				continue; /* consumed by the previous confirmer */
			p = trigger(c, s, n, q, &st);
		}
		if (p < next)
			p = next;
	}
#endif
	while (p < n)
		p = trigger(c, s, n, p, &st);
	uint32_t found = st.found;
	/* Detectors that are off may have been confirmed on the way; drop them. */
	for (int k = 0; k < DLP_BUILTIN; k++)
		if (c->action[k] == DLP_OFF)
			found &= ~(1u << k);
	if (c->ncustom)
		custom_scan(c, s, n, &found);
	r->found = found;
	for (int k = 0; k < DLP_BUILTIN + c->ncustom; k++)
		if ((found & (1u << k)) && dlp_action_of(c, k) == DLP_DENY) {
			r->deny = k;
			break;
		}
}
