/* sigv4.c: see sigv4.h. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <string.h>

#include "chars.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
/* "AWS4-HMAC-SHA256\n" date "\n" scope "\n" hash, with a 64-byte region and service. */
#define STS_MAX 320

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

/* ---- where bytes go ----
 * The canonical request streams into a digest (and, for sigv4_canonical, a copy);
 * the string to sign and Authorization go to fixed buffers. A buffer (of cap > 0)
 * always ends in a NUL and never takes a byte past cap: a write that does not fit
 * is cut there and marks it full, which the caller turns into SIGV4_ETOOBIG. */
struct sink {
	EVP_MD_CTX *md;        /* NULL: no digest */
	char *buf;             /* NULL: no copy */
	size_t cap, len;
	bool full, failed;
};

static void sink_buf(struct sink *s, EVP_MD_CTX *md, char *buf, size_t cap)
{
	*s = (struct sink){ .md = md, .buf = buf, .cap = cap };
	if (buf && cap > 0)
		buf[0] = '\0';
}

static void put(struct sink *s, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (s->md && EVP_DigestUpdate(s->md, p, n) != 1)
		s->failed = true;
	if (!s->buf || s->full)
		return;
	if (s->cap == 0) {
		s->full = true;
		return;
	}
	if (n > s->cap - 1 - s->len) { /* keep what fits, for a reader of a cut copy */
		n = s->cap - 1 - s->len;
		s->full = true;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

static void put_str(struct sink *s, const char *z)
{
	put(s, z, strlen(z));
}

static void put_slice(struct sink *s, struct spop_slice v)
{
	put(s, v.ptr, v.len);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = HEX_LOWER[in[i] >> 4];
		out[2 * i + 1] = HEX_LOWER[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- URI encoding ---- */

/* Yields the canonical form of a path segment or a query name or value one byte
 * at a time, so that query parameters sort by it without a copy: every byte but
 * the unreserved as %XX. A query component is percent-decoded first (AWS wants it
 * encoded once); a path segment is not (AWS wants it encoded twice, and the
 * caller's is the first). */
struct enc {
	const uint8_t *p, *end;
	bool decode;
	char esc[3];
	int ei, en;
};

static struct enc enc_start(struct spop_slice v, bool decode)
{
	return (struct enc){ .p = v.ptr, .end = v.ptr + v.len, .decode = decode };
}

static int enc_next(struct enc *e)
{
	if (e->ei < e->en)
		return (uint8_t)e->esc[e->ei++];
	if (e->p == e->end)
		return -1;
	uint8_t c = *e->p++;
	if (e->decode && c == '%' && e->end - e->p >= 2 && hex_value(e->p[0]) >= 0 && hex_value(e->p[1]) >= 0) {
		c = (uint8_t)(hex_value(e->p[0]) << 4 | hex_value(e->p[1]));
		e->p += 2;
	}
	if (uri_unreserved(c))
		return c;
	e->esc[0] = '%';
	e->esc[1] = HEX_UPPER[c >> 4];
	e->esc[2] = HEX_UPPER[c & 15];
	e->en = 3;
	e->ei = 1;
	return '%';
}

static void put_encoded(struct sink *s, struct spop_slice v, bool decode)
{
	char tmp[128];
	size_t n = 0;
	struct enc e = enc_start(v, decode);
	for (int c; (c = enc_next(&e)) >= 0;) {
		tmp[n++] = (char)c;
		if (n == sizeof(tmp)) {
			put(s, tmp, n);
			n = 0;
		}
	}
	put(s, tmp, n);
}

/* Byte order of two query components' canonical forms; a prefix sorts first. */
static int enc_cmp(struct spop_slice a, struct spop_slice b)
{
	struct enc x = enc_start(a, true), y = enc_start(b, true);
	for (;;) {
		int c = enc_next(&x), d = enc_next(&y);
		if (c != d)
			return c - d;
		if (c < 0)
			return 0;
	}
}

/* ---- the request's parts, checked and put in canonical order ---- */

struct path {
	struct spop_slice seg[SIGV4_MAX_SEGMENTS];   /* the segments kept, as sent */
	int n;
	bool slash;                                  /* ends in '/' */
};

struct param {
	struct spop_slice name, value;
};

struct prep {
	char amz_date[17];
	char payload_hex[65];
	struct path path;
	struct param query[SIGV4_MAX_QUERY];
	int nquery;
	struct sigv4_header h[SIGV4_MAX_HEADERS + 4];   /* + host, date, content hash, token */
	int nh;
};

static bool present(struct spop_slice s)
{
	return s.len == 0 || s.ptr != NULL;
}

/* RFC 3986 5.2.4 on segments, as AWS does for every service but S3: empty and "."
 * segments go, ".." takes the one before with it. */
static enum sigv4_status path_parse(struct spop_slice p, struct path *out)
{
	if (!present(p) || p.len == 0 || p.ptr[0] != '/')
		return SIGV4_EPATH;
	out->n = 0;
	for (size_t i = 1;;) {
		size_t j = i;
		for (; j < p.len && p.ptr[j] != '/'; j++)
			if (p.ptr[j] == '?' || p.ptr[j] == '#' || p.ptr[j] == '\0')
				return SIGV4_EPATH;
		struct spop_slice seg = { p.ptr + i, j - i };
		bool dot = SPOP_SLICE_IS(seg, "."), dotdot = SPOP_SLICE_IS(seg, "..");
		if (dotdot) {
			if (out->n > 0)
				out->n--;
		} else if (seg.len > 0 && !dot) {
			if (out->n == SIGV4_MAX_SEGMENTS)
				return SIGV4_ELIMIT;
			out->seg[out->n++] = seg;
		}
		out->slash = seg.len == 0 || dot || dotdot;
		if (j == p.len)
			return SIGV4_OK;
		i = j + 1;
	}
}

static void put_path(struct sink *s, const struct path *p)
{
	for (int i = 0; i < p->n; i++) {
		put(s, "/", 1);
		put_encoded(s, p->seg[i], false);
	}
	if (p->n == 0 || p->slash)
		put(s, "/", 1);
}

static int param_cmp(const struct param *a, const struct param *b)
{
	int c = enc_cmp(a->name, b->name);
	return c ? c : enc_cmp(a->value, b->value);
}

static enum sigv4_status query_parse(struct spop_slice q, struct prep *p)
{
	if (!present(q))
		return SIGV4_EQUERY;
	p->nquery = 0;
	for (size_t i = 0; i < q.len;) {
		size_t j = i;
		for (; j < q.len && q.ptr[j] != '&'; j++)
			if (q.ptr[j] == '#' || q.ptr[j] == '\0')
				return SIGV4_EQUERY;
		if (j > i) { /* "a&&b" has no empty parameter */
			if (p->nquery == SIGV4_MAX_QUERY)
				return SIGV4_ELIMIT;
			const uint8_t *eq = memchr(q.ptr + i, '=', j - i);
			const uint8_t *vend = q.ptr + j;
			struct param *pm = &p->query[p->nquery++];
			pm->name = (struct spop_slice){ q.ptr + i, (size_t)((eq ? eq : vend) - (q.ptr + i)) };
			pm->value = eq ? (struct spop_slice){ eq + 1, (size_t)(vend - eq - 1) }
			               : (struct spop_slice){ vend, 0 };
		}
		i = j + 1;
	}
	/* Insertion sort: a handful of parameters, and no allocation. */
	for (int a = 1; a < p->nquery; a++) {
		struct param x = p->query[a];
		int b = a;
		for (; b > 0 && param_cmp(&p->query[b - 1], &x) > 0; b--)
			p->query[b] = p->query[b - 1];
		p->query[b] = x;
	}
	return SIGV4_OK;
}

static void put_query(struct sink *s, const struct prep *p)
{
	for (int i = 0; i < p->nquery; i++) {
		if (i > 0)
			put(s, "&", 1);
		put_encoded(s, p->query[i].name, true);
		put(s, "=", 1);
		put_encoded(s, p->query[i].value, true);
	}
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static int name_cmp(struct spop_slice a, struct spop_slice b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	for (size_t i = 0; i < n; i++)
		if (lower(a.ptr[i]) != lower(b.ptr[i]))
			return lower(a.ptr[i]) - lower(b.ptr[i]);
	return (a.len > b.len) - (a.len < b.len);
}

/* RFC 9110 tchar. */
static bool token_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_sp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* The names the module signs itself, and Authorization, which is never signed. */
static bool own_name(struct spop_slice n)
{
	static const char *const own[] = { "host", "x-amz-date", "x-amz-content-sha256",
	                                   "x-amz-security-token", "authorization" };
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (name_cmp(n, (struct spop_slice){ (const uint8_t *)own[i], strlen(own[i]) }) == 0)
			return true;
	return false;
}

static bool header_ok(const struct sigv4_header *h)
{
	if (!present(h->name) || !present(h->value) || h->name.len == 0 || own_name(h->name))
		return false;
	for (size_t i = 0; i < h->name.len; i++)
		if (!token_char(h->name.ptr[i]))
			return false;
	/* Controls would end the header line early (obs-fold is not taken). */
	for (size_t i = 0; i < h->value.len; i++)
		if ((h->value.ptr[i] < 0x20 && h->value.ptr[i] != '\t') || h->value.ptr[i] == 0x7f)
			return false;
	return true;
}

static struct spop_slice lit(const char *z)
{
	return (struct spop_slice){ (const uint8_t *)z, strlen(z) };
}

/* The module's own headers and the caller's, sorted by name; a stable sort keeps a
 * repeated name's values in the order given. */
static enum sigv4_status headers_prep(const struct sigv4_req *req, const struct sigv4_creds *cr, struct prep *p)
{
	if (req->nheaders > SIGV4_MAX_HEADERS)
		return SIGV4_ELIMIT;
	if (req->nheaders > 0 && !req->headers)
		return SIGV4_EHEADER;
	p->nh = 0;
	p->h[p->nh++] = (struct sigv4_header){ lit("host"), req->host };
	/* Their values are filled in later: slices of fixed length into p. */
	p->h[p->nh++] = (struct sigv4_header){ lit("x-amz-date"), { (const uint8_t *)p->amz_date, 16 } };
	if (!(req->flags & SIGV4_NO_SHA256_HEADER))
		p->h[p->nh++] = (struct sigv4_header){ lit("x-amz-content-sha256"), { (const uint8_t *)p->payload_hex, 64 } };
	if (cr->session_token.len > 0)
		p->h[p->nh++] = (struct sigv4_header){ lit("x-amz-security-token"), cr->session_token };
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!header_ok(&req->headers[i]))
			return SIGV4_EHEADER;
		p->h[p->nh++] = req->headers[i];
	}
	for (int a = 1; a < p->nh; a++) {
		struct sigv4_header x = p->h[a];
		int b = a;
		for (; b > 0 && name_cmp(p->h[b - 1].name, x.name) > 0; b--)
			p->h[b] = p->h[b - 1];
		p->h[b] = x;
	}
	return SIGV4_OK;
}

static void put_lower(struct sink *s, struct spop_slice v)
{
	char tmp[64];
	for (size_t i = 0; i < v.len;) {
		size_t n = 0;
		for (; n < sizeof(tmp) && i < v.len; i++)
			tmp[n++] = (char)lower(v.ptr[i]);
		put(s, tmp, n);
	}
}

/* Trimmed, and each inner run of spaces and tabs one space. */
static void put_value(struct sink *s, struct spop_slice v)
{
	size_t i = 0, end = v.len;
	while (i < end && is_sp(v.ptr[i]))
		i++;
	while (end > i && is_sp(v.ptr[end - 1]))
		end--;
	size_t run = i;
	while (i < end) {
		if (!is_sp(v.ptr[i])) {
			i++;
			continue;
		}
		put(s, v.ptr + run, i - run);
		put(s, " ", 1);
		while (is_sp(v.ptr[i])) /* stops before end: v.ptr[end - 1] is no space */
			i++;
		run = i;
	}
	put(s, v.ptr + run, end - run);
}

static bool same_name(const struct prep *p, int i)
{
	return i > 0 && name_cmp(p->h[i - 1].name, p->h[i].name) == 0;
}

/* "name:value[,value]\n" for each name. */
static void put_headers(struct sink *s, const struct prep *p)
{
	for (int i = 0; i < p->nh; i++) {
		if (same_name(p, i)) {
			put(s, ",", 1);
		} else {
			if (i > 0)
				put(s, "\n", 1);
			put_lower(s, p->h[i].name);
			put(s, ":", 1);
		}
		put_value(s, p->h[i].value);
	}
	put(s, "\n", 1);
}

/* "name;name": the SignedHeaders list, in the request and in Authorization. */
static void put_signed(struct sink *s, const struct prep *p)
{
	for (int i = 0; i < p->nh; i++) {
		if (same_name(p, i))
			continue;
		if (i > 0)
			put(s, ";", 1);
		put_lower(s, p->h[i].name);
	}
}

static void put_scope(struct sink *s, const struct sigv4_req *req, const struct prep *p)
{
	put(s, p->amz_date, 8);
	put(s, "/", 1);
	put_slice(s, req->region);
	put(s, "/", 1);
	put_slice(s, req->service);
	put_str(s, "/aws4_request");
}

/* ---- checks ---- */

static bool all_of(struct spop_slice v, size_t max, bool (*ok)(uint8_t))
{
	if (!present(v) || v.len == 0 || v.len > max)
		return false;
	for (size_t i = 0; i < v.len; i++)
		if (!ok(v.ptr[i]))
			return false;
	return true;
}

static bool upper_char(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

static bool scope_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool alnum_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool visible_char(uint8_t c)
{
	return c > 0x20 && c < 0x7f;
}

static void digits(char *out, int64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
}

/* "YYYYMMDDTHHMMSSZ" from Unix time, by Howard Hinnant's days-to-civil arithmetic
 * ("chrono-Compatible Low-Level Date Algorithms"): exact from 1970 to 9999, with
 * no libc time (and its time_t range) to trust. */
static bool amz_date(int64_t t, char out[17])
{
	if (t < 0 || t > INT64_C(253402300799)) /* 9999-12-31T23:59:59Z */
		return false;
	int64_t z = t / 86400 + 719468, sec = t % 86400;
	int64_t era = z / 146097, doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (m <= 2);
	digits(out, y, 4);
	digits(out + 4, m, 2);
	digits(out + 6, d, 2);
	out[8] = 'T';
	digits(out + 9, sec / 3600, 2);
	digits(out + 11, sec / 60 % 60, 2);
	digits(out + 13, sec % 60, 2);
	out[15] = 'Z';
	out[16] = '\0';
	return true;
}

static enum sigv4_status check(const struct sigv4_req *req, const struct sigv4_creds *cr, bool signing)
{
	if (!all_of(req->method, 16, upper_char))
		return SIGV4_EMETHOD;
	if (!all_of(req->host, 255, visible_char))
		return SIGV4_EHOST;
	if (!all_of(req->region, 64, scope_char) || !all_of(req->service, 64, scope_char))
		return SIGV4_ESCOPE;
	if (!present(req->payload))
		return SIGV4_EPAYLOAD;
	if (signing && (!all_of(cr->access_key_id, 128, alnum_char) || !present(cr->secret_key) ||
	                cr->secret_key.len == 0 || cr->secret_key.len > SIGV4_SECRET_MAX))
		return SIGV4_ECREDS;
	if (cr->session_token.len >= SIGV4_TOKEN_MAX)
		return SIGV4_ETOOBIG;
	if (cr->session_token.len > 0 && !all_of(cr->session_token, SIGV4_TOKEN_MAX, visible_char))
		return SIGV4_ECREDS;
	return SIGV4_OK;
}

/* ---- signing ---- */

/* Checks the inputs, hashes the payload and the canonical request (copied into creq
 * when given) and writes the string to sign into sts. */
static enum sigv4_status build(const struct sigv4_req *req, const struct sigv4_creds *cr, bool signing,
                               struct prep *p, char *creq, size_t creq_cap, char *sts, size_t sts_cap)
{
	enum sigv4_status st = check(req, cr, signing);
	if (st == SIGV4_OK && !amz_date(req->time, p->amz_date))
		st = SIGV4_ETIME;
	if (st == SIGV4_OK)
		st = path_parse(req->path, &p->path);
	if (st == SIGV4_OK)
		st = query_parse(req->query, p);
	if (st == SIGV4_OK)
		st = headers_prep(req, cr, p);
	if (st != SIGV4_OK)
		return st;

	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t h[32];
	unsigned int hn = 0;
	bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	          EVP_DigestUpdate(md, req->payload.len ? req->payload.ptr : (const uint8_t *)"", req->payload.len) == 1 &&
	          EVP_DigestFinal_ex(md, h, &hn) == 1 && hn == 32;
	if (ok)
		hex(h, 32, p->payload_hex);
	struct sink s;
	sink_buf(&s, md, creq, creq_cap);
	if (ok && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		put_slice(&s, req->method);
		put(&s, "\n", 1);
		put_path(&s, &p->path);
		put(&s, "\n", 1);
		put_query(&s, p);
		put(&s, "\n", 1);
		put_headers(&s, p);
		put(&s, "\n", 1);
		put_signed(&s, p);
		put(&s, "\n", 1);
		put(&s, p->payload_hex, 64);
		ok = !s.failed && EVP_DigestFinal_ex(md, h, &hn) == 1 && hn == 32;
	} else {
		ok = false;
	}
	EVP_MD_CTX_free(md);
	if (!ok)
		return SIGV4_ECRYPTO;
	if (s.full)
		return SIGV4_ETOOBIG;

	char creq_hex[65];
	hex(h, 32, creq_hex);
	sink_buf(&s, NULL, sts, sts_cap);
	put_str(&s, ALGORITHM "\n");
	put(&s, p->amz_date, 16);
	put(&s, "\n", 1);
	put_scope(&s, req, p);
	put(&s, "\n", 1);
	put(&s, creq_hex, 64);
	return s.full ? SIGV4_ETOOBIG : SIGV4_OK;
}

static bool hmac(const uint8_t *key, size_t klen, const void *msg, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	return HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len) && len == 32;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request");
 * the signature is HMAC(kSigning, string to sign). Every key on the way is wiped. */
static bool signature(const struct sigv4_req *req, const struct sigv4_creds *cr, const char *date8,
                      const char *sts, char sig_hex[65])
{
	uint8_t k[4 + SIGV4_SECRET_MAX], a[32], b[32], sig[32];
	memcpy(k, "AWS4", 4);
	memcpy(k + 4, cr->secret_key.ptr, cr->secret_key.len);
	bool ok = hmac(k, 4 + cr->secret_key.len, date8, 8, a) &&
	          hmac(a, 32, req->region.ptr, req->region.len, b) &&
	          hmac(b, 32, req->service.ptr, req->service.len, a) &&
	          hmac(a, 32, "aws4_request", 12, b) &&
	          hmac(b, 32, sts, strlen(sts), sig);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	if (ok)
		hex(sig, 32, sig_hex);
	return ok;
}

static enum sigv4_status sign(const struct sigv4_req *req, const struct sigv4_creds *cr, struct sigv4_out *out)
{
	struct prep p;
	char sts[STS_MAX], sig[65];
	enum sigv4_status st = build(req, cr, true, &p, NULL, 0, sts, sizeof(sts));
	if (st != SIGV4_OK)
		return st;
	if (!signature(req, cr, p.amz_date, sts, sig))
		return SIGV4_ECRYPTO;

	memcpy(out->amz_date, p.amz_date, sizeof(out->amz_date));
	memcpy(out->content_sha256, p.payload_hex, sizeof(out->content_sha256));
	/* check() kept the token under SIGV4_TOKEN_MAX. */
	if (cr->session_token.len > 0)
		memcpy(out->security_token, cr->session_token.ptr, cr->session_token.len);
	out->security_token[cr->session_token.len] = '\0';

	struct sink s;
	sink_buf(&s, NULL, out->authorization, sizeof(out->authorization));
	put_str(&s, ALGORITHM " Credential=");
	put_slice(&s, cr->access_key_id);
	put(&s, "/", 1);
	put_scope(&s, req, &p);
	put_str(&s, ", SignedHeaders=");
	put_signed(&s, &p);
	put_str(&s, ", Signature=");
	put(&s, sig, 64);
	return s.full ? SIGV4_ETOOBIG : SIGV4_OK;
}

enum sigv4_status sigv4_sign(const struct sigv4_req *req, const struct sigv4_creds *creds, struct sigv4_out *out)
{
	enum sigv4_status st = sign(req, creds, out);
	if (st != SIGV4_OK)
		memset(out, 0, sizeof(*out));
	return st;
}

enum sigv4_status sigv4_canonical(const struct sigv4_req *req, const struct sigv4_creds *creds,
                                  char *creq, size_t creq_cap, char *sts, size_t sts_cap)
{
	struct prep p;
	char own_sts[STS_MAX];
	return build(req, creds, false, &p, creq, creq_cap, sts ? sts : own_sts, sts ? sts_cap : sizeof(own_sts));
}

const char *sigv4_strerror(enum sigv4_status st)
{
	switch (st) {
	case SIGV4_OK: return "ok";
	case SIGV4_EMETHOD: return "bad method";
	case SIGV4_EPATH: return "bad path";
	case SIGV4_EQUERY: return "bad query";
	case SIGV4_EHOST: return "bad host";
	case SIGV4_EHEADER: return "bad header to sign";
	case SIGV4_EPAYLOAD: return "payload without bytes";
	case SIGV4_ESCOPE: return "bad region or service";
	case SIGV4_ECREDS: return "bad credentials";
	case SIGV4_ETIME: return "time out of range";
	case SIGV4_ELIMIT: return "too many headers, query parameters or path segments";
	case SIGV4_ETOOBIG: return "output does not fit";
	case SIGV4_ECRYPTO: return "OpenSSL failed";
	}
	return "unknown status";
}
