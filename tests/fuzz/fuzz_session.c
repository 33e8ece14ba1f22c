/* libFuzzer harness for the SPOP decoder: the whole session state machine.
 *
 * Input: two bytes of settings (max-frame-size, capabilities), then the bytes a
 * peer sends. The same bytes are fed twice, whole and in small chunks: the replies
 * must be identical (partial frames change nothing) and every reply must be a
 * well-formed agent frame within the negotiated size. The metrics the handlers
 * record go to statsd and to a Prometheus registry, whose exposition must stay
 * well-formed whatever the fuzzed models and ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"
#include "pricing.h"
#include "prom.h"
#include "provider.h"
#include "request.h"
#include "session.h"
#include "statsd.h"

static void check_replies(const struct buf *out, uint32_t max_frame)
{
	size_t off = 0;
	while (off < out->len) {
		if (out->len - off < SPOP_LEN_PREFIX)
			__builtin_trap();
		uint32_t len = spop_read_len(out->data + off);
		if (len > out->len - off - SPOP_LEN_PREFIX)
			__builtin_trap();
		struct spop_frame f;
		if (spop_parse_frame(out->data + off + SPOP_LEN_PREFIX, len, &f) < 0)
			__builtin_trap();
		if (!(f.flags & SPOP_FL_FIN))
			__builtin_trap();
		if (f.type == SPOP_FRM_ACK) {
			if (len > max_frame)
				__builtin_trap();
			struct spop_reader r = { f.payload.ptr, f.payload.ptr + f.payload.len };
			while (r.p < r.end) { /* set-var actions only */
				struct spop_slice name;
				struct spop_data val;
				if (r.end - r.p < 3 || r.p[0] != SPOP_ACT_SET_VAR || r.p[1] != 3)
					__builtin_trap();
				r.p += 3;
				if (spop_get_name(&r, &name) < 0 || spop_get_data(&r, &val) < 0)
					__builtin_trap();
			}
		} else if (f.type == SPOP_FRM_AGENT_DISCONNECT) {
			struct spop_disconnect d;
			if (spop_parse_disconnect(f.payload, &d) < 0 || off + SPOP_LEN_PREFIX + len != out->len)
				__builtin_trap(); /* a DISCONNECT is always the last frame */
		} else if (f.type == SPOP_FRM_AGENT_HELLO) {
			struct spop_hello h;
			(void)h;
		} else {
			__builtin_trap();
		}
		off += SPOP_LEN_PREFIX + len;
	}
}

static void run(const uint8_t *data, size_t size, const struct session_cfg *cfg, size_t chunk, struct buf *out)
{
	struct session s;
	struct buf in = { 0 };
	session_init(&s, cfg);
	size_t off = 0;
	while (off < size && s.state != SESS_CLOSING) {
		size_t n = chunk ? chunk : size;
		if (n > size - off)
			n = size - off;
		if (buf_append(&in, data + off, n) < 0)
			abort();
		off += n;
		size_t used = session_feed(&s, in.data, in.len, out);
		buf_consume(&in, used);
		chunk = chunk ? (chunk * 7 + 3) % 61 + 1 : 0;
	}
	check_replies(out, s.max_frame);
	session_free(&s);
	buf_free(&in);
}

static struct provider_table providers;
static struct price_table prices;
static struct statsd_cfg sdcfg;
static struct statsd sd;
/* No inspect_responses: its ctx carries a timestamp, so whole and chunked runs
 * would differ; archestra-res messages still decode fuzzed ctx strings. */
static struct request_cfg rcfg = { .providers = &providers, .truncated = TRUNC_DENY };
static struct auth auth;
static struct handler_ctx hctx = { &rcfg, &prices, &sd };
static struct prom_cfg pcfg;

/* Every line of the exposition is a comment or `name{label="value",...} number`,
 * values escaped as the format says. */
static void check_exposition(const struct buf *t)
{
	const char *p = (const char *)t->data, *end = p + t->len;
	if (t->len == 0 || end[-1] != '\n')
		__builtin_trap();
	while (p < end) {
		if (*p == '#') {
			p = memchr(p, '\n', (size_t)(end - p)) + 1;
			continue;
		}
		while (*p == '_' || (*p >= 'a' && *p <= 'z'))
			p++;
		if (*p == '{') {
			do {
				p++;
				while (*p == '_' || (*p >= 'a' && *p <= 'z'))
					p++;
				if (p[0] != '=' || p[1] != '"')
					__builtin_trap();
				for (p += 2; *p != '"'; p++)
					if (*p == '\n' || (*p == '\\' && *++p != '\\' && *p != '"' && *p != 'n'))
						__builtin_trap();
				p++;
			} while (*p == ',');
			if (*p++ != '}')
				__builtin_trap();
		}
		if (*p++ != ' ')
			__builtin_trap();
		char *num;
		strtod(p, &num);
		if (num == p || *num != '\n')
			__builtin_trap();
		p = num + 1;
	}
}

/* A policy with every check, so fuzzed requests go through the rule engine too. */
static const char fuzz_policy[] =
	"{\"rules\":[{\"id\":\"m\",\"when\":{\"provider\":\"openai\"},\"models\":{\"deny\":[\"bad*\"]}},"
	"{\"id\":\"t\",\"tools\":{\"deny\":[\"send_*\"]}},{\"id\":\"c\",\"max_output_tokens\":1000,\"max_messages\":50},"
	"{\"id\":\"s\",\"stream\":false,\"shadow\":true},{\"id\":\"h\",\"when\":{\"agent_id\":\"x*\"},"
	"\"require_headers\":[\"session_id\"]}],"
	"\"dlp\":{\"detectors\":{\"all\":\"monitor\",\"aws_access_key\":\"deny\"},"
	"\"custom\":[{\"name\":\"c\",\"anchor\":\"PRJ-\",\"regex\":\"PRJ-[0-9]{3}\"}]},"
	"\"trusted_data\":{\"untrusted_tools\":\"web_*\",\"trusted_tools\":\"lookup_*\",\"default\":\"untrusted\","
	"\"sensitive_tools\":[\"send_*\",\"export_*\"]}}";

static const struct auth *get_auth(void *arg)
{
	(void)arg;
	return &auth;
}
static struct spoa_handlers archestra;

/* Metrics are formatted for real (the formatter is fuzzed too) and discarded. */
static void null_sink(void *arg, const uint8_t *d, size_t n)
{
	(void)arg;
	(void)d;
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!archestra.list) {
		providers_builtin(&providers);
		prices_builtin(&prices);
		statsd_cfg_defaults(&sdcfg);
		sdcfg.enabled = true;
		sd.cfg = &sdcfg;
		sd.fd = -1;
		sd.sink = null_sink;
		char err[256];
		if (policy_parse(fuzz_policy, strlen(fuzz_policy), &auth.policy, err, sizeof(err)) < 0)
			abort();
		hctx.auth_get = get_auth;
		prom_cfg_defaults(&pcfg);
		pcfg.enabled = true;
		if (!(hctx.pm = prom_reg_new(&pcfg)))
			abort();
		archestra = spoa_handlers_archestra;
		archestra.arg = &hctx;
	}
	struct session_cfg cfg = {
		.max_frame_size = 256 + (uint32_t)data[0] * 64,
		.caps = data[1] & 7u,
		.max_reassembled = 8192,
		.handlers = (data[1] & 8) ? &spoa_handlers_ack_only : &archestra,
	};
	struct buf whole = { 0 }, chunked = { 0 };
	run(data + 2, size - 2, &cfg, 0, &whole);
	run(data + 2, size - 2, &cfg, 1, &chunked);
	if (whole.len != chunked.len || (whole.len && memcmp(whole.data, chunked.data, whole.len) != 0))
		__builtin_trap();
	buf_free(&whole);
	buf_free(&chunked);
	static unsigned inputs;
	if (++inputs % 64 == 0) {
		struct buf text = { 0 };
		if (prom_render(&hctx.pm, 1, &text) < 0)
			abort();
		check_exposition(&text);
		buf_free(&text);
	}
	return 0;
}
