/* request.c: see request.h. */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "hdrs.h"

static bool is_text(const struct spop_data *d)
{
	return d && (d->type == SPOP_T_STRING || d->type == SPOP_T_BINARY);
}

static bool as_int(const struct spop_data *d, int64_t *out)
{
	if (!d)
		return false;
	switch (d->type) {
	case SPOP_T_INT32:
	case SPOP_T_INT64:
		*out = d->v.i;
		return true;
	case SPOP_T_UINT32:
	case SPOP_T_UINT64:
		*out = d->v.u > INT64_MAX ? INT64_MAX : (int64_t)d->v.u;
		return true;
	default:
		return false;
	}
}

/* Records one more credential value; returns false once two differ. */
static bool note_cred(struct spop_slice v, unsigned at, struct spop_slice *value, unsigned *found_at, int *n)
{
	if (v.len == 0)
		return true;
	if (*n == 0) {
		*value = v;
		*found_at = at;
		*n = 1;
		return true;
	}
	if (v.len == value->len && memcmp(v.ptr, value->ptr, v.len) == 0)
		return true; /* the same key twice is one credential */
	*n = 2;
	return false;
}

int request_credential(const struct spop_data *hdrs, const struct spop_data *query, unsigned where,
                       struct spop_slice *value, unsigned *found_at)
{
	int n = 0;
	*found_at = 0;
	value->ptr = NULL;
	value->len = 0;
	if (is_text(hdrs)) {
		struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
		struct spop_slice name, val;
		while (hdrs_next(&r, &name, &val) == 1) {
			val = slice_trim(val);
			if ((where & CRED_BEARER) && SLICE_IEQ(name, "authorization")) {
				struct spop_slice scheme = { val.ptr, val.len < 7 ? val.len : 7 };
				if (SLICE_IEQ(scheme, "bearer ")) {
					struct spop_slice tok = slice_trim((struct spop_slice){ val.ptr + 7, val.len - 7 });
					if (!note_cred(tok, CRED_BEARER, value, found_at, &n))
						return 2;
				}
			} else if ((where & CRED_X_API_KEY) && SLICE_IEQ(name, "x-api-key")) {
				if (!note_cred(val, CRED_X_API_KEY, value, found_at, &n))
					return 2;
			} else if ((where & CRED_GOOG) && SLICE_IEQ(name, "x-goog-api-key")) {
				if (!note_cred(val, CRED_GOOG, value, found_at, &n))
					return 2;
			}
		}
	}
	if ((where & CRED_QUERY_KEY) && is_text(query)) {
		const uint8_t *p = query->v.s.ptr, *end = p + query->v.s.len;
		while (p < end) {
			const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
			const uint8_t *pe = amp ? amp : end;
			if (pe - p >= 4 && memcmp(p, "key=", 4) == 0) {
				struct spop_slice v = { p + 4, (size_t)(pe - p - 4) };
				if (!note_cred(v, CRED_QUERY_KEY, value, found_at, &n))
					return 2;
			}
			p = amp ? amp + 1 : end;
		}
	}
	return n;
}

static const char *cred_hint(unsigned where)
{
	if (where & CRED_X_API_KEY)
		return "an x-api-key header";
	if (where & CRED_GOOG)
		return "an x-goog-api-key header";
	return "an Authorization: Bearer header";
}

static void refuse(struct req_decision *d, int status, const char *reason, const char *msg, const char *tail)
{
	d->status = status;
	d->reason = reason;
	snprintf(d->message, sizeof(d->message), "archestra: %s%s", msg, tail ? tail : "");
}

void request_decide(const struct request_cfg *cfg, const struct spop_msg *m, struct req_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->reason = "allowed";

	const struct spop_data *path = SPOP_MSG_ARG(m, "path");
	if (!is_text(path) || path->v.s.len == 0) {
		refuse(d, 400, "bad_request", "the request has no path", NULL);
		return;
	}
	d->prov = provider_match(cfg->providers, path->v.s, &d->rest);
	if (!d->prov) {
		char known[160];
		providers_list(cfg->providers, known, sizeof(known));
		refuse(d, 404, "unknown_provider", "no LLM provider is routed at this path; known prefixes: ", known);
		return;
	}

	int64_t len, size;
	if (cfg->truncated == TRUNC_DENY && as_int(SPOP_MSG_ARG(m, "body_len"), &len) &&
	    as_int(SPOP_MSG_ARG(m, "body_size"), &size) && size > len && len >= 0) {
		d->status = 413;
		d->reason = "body_truncated";
		snprintf(d->message, sizeof(d->message),
		         "archestra: the request body (%lld bytes) is larger than what HAProxy buffers for inspection "
		         "(%lld bytes, tune.bufsize); send a smaller request or raise tune.bufsize",
		         (long long)size, (long long)len);
		return;
	}

	int n = request_credential(SPOP_MSG_ARG(m, "hdrs"), SPOP_MSG_ARG(m, "query"), d->prov->cred, &d->credential,
	                           &d->cred_where);
	if (n > 1) {
		refuse(d, 400, "ambiguous_credential", "the request carries more than one different API key; send exactly one",
		       NULL);
		return;
	}
	if (n == 0 && d->prov->require_key) {
		refuse(d, 401, "missing_credential", "missing API key; send it in ", cred_hint(d->prov->cred));
		return;
	}
	if (n == 1 && !d->prov->direct_keys) {
		refuse(d, 401, "direct_key_refused",
		       "provider API keys are not accepted for this provider; use a key issued by the gateway", NULL);
		return;
	}
	d->inspect_res = cfg->inspect_responses;
}
