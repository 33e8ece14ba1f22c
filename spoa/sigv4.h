/* sigv4.h: AWS Signature Version 4 (AWS4-HMAC-SHA256) request signing, for the
 * calls the agent sends to AWS (Bedrock) with the gateway's own credentials.
 *
 * The caller describes the request exactly as it will be sent (method, path and
 * query as on the wire, host, the body it inspected) with the time and the
 * credentials; sigv4_sign fills the headers to add. The rules, from AWS's
 * "Create a signed AWS API request", for every service but S3:
 * - Path: empty and "." segments are dropped and ".." drops the segment before
 *   it (RFC 3986 5.2.4; a trailing "/" stays); then every segment is URI-encoded
 *   once more as it is sent, so a model id's "%3A" signs as "%253A".
 * - Query: each name and value is percent-decoded, then URI-encoded (RFC 3986
 *   unreserved kept, "+" is a literal plus); sorted by name, then value; a name
 *   without "=" has an empty value.
 * - Signed headers: host, x-amz-date, x-amz-content-sha256 (unless
 *   SIGV4_NO_SHA256_HEADER) and, with a session token, x-amz-security-token are
 *   the module's own; the caller adds any others it sends unchanged. For Bedrock
 *   that is content-type, as AWS's SDKs do: the body means what its type says,
 *   and HAProxy forwards the client's value untouched. Names are lower-cased;
 *   values trimmed, inner runs of spaces and tabs made one space, and a repeated
 *   name's values joined with "," in the order given.
 * Pure: no I/O, no clock, no allocation of its own (OpenSSL's EVP and HMAC calls
 * allocate inside). The secret key is read only as HMAC key material and the keys
 * derived from it are wiped (OPENSSL_cleanse) before returning. */
#ifndef SPOA_SIGV4_H
#define SPOA_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "spop.h"

#define SIGV4_MAX_HEADERS   16     /* caller's headers to sign */
#define SIGV4_MAX_QUERY     32     /* query parameters */
#define SIGV4_MAX_SEGMENTS  64     /* path segments */
#define SIGV4_SECRET_MAX    128    /* AWS's secret keys are 40 */
#define SIGV4_AUTH_MAX      1024   /* Authorization value, with its NUL */
#define SIGV4_TOKEN_MAX     4096   /* session token, with its NUL (STS's are ~1 KiB) */

/* Set in sigv4_req.flags. */
#define SIGV4_NO_SHA256_HEADER 0x1u   /* don't sign x-amz-content-sha256 (AWS's test suite doesn't) */

enum sigv4_status {
	SIGV4_OK = 0,
	SIGV4_EMETHOD,    /* method: 1 to 16 of A-Z */
	SIGV4_EPATH,      /* path: must start with '/', no '?', '#' or NUL */
	SIGV4_EQUERY,     /* query: no '#' or NUL */
	SIGV4_EHOST,      /* host: 1 to 255 visible ASCII characters */
	SIGV4_EHEADER,    /* a header: name not a token, one of the module's own, or a control in the value */
	SIGV4_EPAYLOAD,   /* payload: a length without bytes */
	SIGV4_ESCOPE,     /* region or service: 1 to 64 of a-z, 0-9, '-' */
	SIGV4_ECREDS,     /* key id (1 to 128 of A-Z, a-z, 0-9), secret (1 to SIGV4_SECRET_MAX) or token (visible ASCII) */
	SIGV4_ETIME,      /* time: before 1970 or after 9999 */
	SIGV4_ELIMIT,     /* more headers, query parameters or path segments than the limits above */
	SIGV4_ETOOBIG,    /* the Authorization value or the token does not fit sigv4_out (or a sigv4_canonical buffer) */
	SIGV4_ECRYPTO,    /* OpenSSL failed */
};

/* One header to sign, as it is sent. */
struct sigv4_header {
	struct spop_slice name, value;
};

/* The request as it will be sent. Everything is borrowed for the call only. */
struct sigv4_req {
	struct spop_slice method;            /* "POST" */
	struct spop_slice path;              /* as sent: "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse" */
	struct spop_slice query;             /* as sent, without '?'; empty: none */
	struct spop_slice host;              /* the Host header's value */
	const struct sigv4_header *headers;  /* others to sign (content-type); may be NULL when nheaders is 0 */
	size_t nheaders;
	struct spop_slice payload;           /* the exact body bytes sent */
	struct spop_slice region;            /* "us-east-1" */
	struct spop_slice service;           /* "bedrock" for bedrock-runtime */
	int64_t time;                        /* seconds since the epoch, UTC */
	unsigned flags;                      /* SIGV4_* */
};

/* The gateway's credentials. Borrowed; the secret is never copied anywhere. */
struct sigv4_creds {
	struct spop_slice access_key_id;
	struct spop_slice secret_key;
	struct spop_slice session_token;     /* empty: none (long-term keys) */
};

/* The headers to add, each a NUL-terminated value. The caller's. */
struct sigv4_out {
	char amz_date[17];                   /* x-amz-date: "20150830T123600Z" */
	char content_sha256[65];             /* x-amz-content-sha256: hex SHA-256 of the payload */
	char security_token[SIGV4_TOKEN_MAX];/* x-amz-security-token; "" without a session token: send none */
	char authorization[SIGV4_AUTH_MAX];  /* Authorization */
};

/* Signs req with creds into out. On any error out is all zeros, so a half-signed
 * set of headers can never be sent. Thread-safe. */
enum sigv4_status sigv4_sign(const struct sigv4_req *req, const struct sigv4_creds *creds,
                             struct sigv4_out *out);

/* The canonical request and the string to sign that sigv4_sign builds for these
 * inputs, NUL-terminated into the caller's buffers (either may be NULL): for tests,
 * and to compare with what AWS says it computed when it refuses a signature.
 * Neither holds a secret; of creds only the session token is read. SIGV4_ETOOBIG
 * when a buffer is too small. */
enum sigv4_status sigv4_canonical(const struct sigv4_req *req, const struct sigv4_creds *creds,
                                  char *creq, size_t creq_cap, char *sts, size_t sts_cap);

/* A fixed English phrase for a status, for logs. */
const char *sigv4_strerror(enum sigv4_status st);

#endif
