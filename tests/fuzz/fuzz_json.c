/* libFuzzer harness for the agent's reading of JSON, against an independent one.
 *
 * First byte, modulo 3, selects the property:
 *  0: differential with cJSON. Whatever json_check accepts, cJSON accepts
 *    too, and every member cJSON reads (recursively) is what the agent's decoded
 *    readers give: same kind, same decoded string, same whole number. Whole vs
 *    cut: a strict prefix of an accepted document is never accepted (a body cut
 *    short can never pass as whole) unless it is itself a complete number.
 *  1: escaping cannot hide a secret. The rest is text (bytes that would need
 *    an escape become '?'); it goes into a chat body twice, once as it is and once
 *    with some characters as \uXXXX (chosen by the input). The DLP verdict of the agent on the escaped body
 *    includes every detector found in the plain one.
 *  2: a held stream, read for its tool calls (sse.h) in the shape the next byte
 *    picks: every call read has a name and arguments that are one JSON document.
 * Nothing may crash, leak or read out of bounds; a broken property traps. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "policy.h"
#include "provider.h"
#include "request.h"
#include "sse.h"

static struct json_key keybuf[16384];
static struct json_keytab keys = { keybuf, 16384 };
static char arena_buf[65536];

static void compare(const cJSON *c, const struct json_val *v, int depth);

static void compare_object(const cJSON *c, struct spop_slice obj, int depth)
{
	const cJSON *it;
	int n = 0;
	/* cJSON keys are C strings: "a\u0000" and "a" are one key to it, two to every
	 * standard parser (and to us), so such objects are compared by count only. */
	bool nul_keys = memmem(obj.ptr, obj.len, "\\u0000", 6) != NULL;
	cJSON_ArrayForEach(it, c) {
		struct json_val v;
		n++;
		if (nul_keys || !it->string)
			continue;
		if (!json_get(obj, it->string, &v))
			__builtin_trap();
		compare(it, &v, depth + 1);
	}
	struct json_iter ji;
	struct spop_slice k;
	struct json_val v;
	int m = 0;
	json_iter_init(&ji, obj);
	while (json_iter_next(&ji, &k, &v) == 1)
		m++;
	if (m != n)
		__builtin_trap();
}

static void compare(const cJSON *c, const struct json_val *v, int depth)
{
	if (depth > JSON_MAX_DEPTH + 2)
		__builtin_trap();
	struct json_arena a = { arena_buf, sizeof(arena_buf), 0 };
	if (cJSON_IsObject(c)) {
		if (v->kind != JSON_OBJECT)
			__builtin_trap();
		compare_object(c, v->raw, depth);
	} else if (cJSON_IsArray(c)) {
		struct json_aiter it;
		struct json_val el;
		const cJSON *e = c->child;
		if (v->kind != JSON_ARRAY || !json_aiter_init(&it, v))
			__builtin_trap();
		while (json_aiter_next(&it, &el) == 1) {
			if (!e)
				__builtin_trap();
			compare(e, &el, depth + 1);
			e = e->next;
		}
		if (e)
			__builtin_trap();
	} else if (cJSON_IsString(c)) {
		struct spop_slice s;
		if (v->kind != JSON_STRING || !json_as_string(v, &a, &s))
			__builtin_trap();
		size_t cl = strlen(c->valuestring);
		/* cJSON stops at a \u0000; up to there the texts agree */
		if (cl > s.len || memcmp(c->valuestring, s.ptr, cl) != 0 || (cl < s.len && s.ptr[cl] != 0))
			__builtin_trap();
	} else if (cJSON_IsNumber(c)) {
		int64_t x;
		if (v->kind != JSON_NUMBER)
			__builtin_trap();
		int r = json_as_whole(v, &x);
		double d = c->valuedouble;
		if (r == 1 && d > -1e15 && d < 1e15 && (double)x != d)
			__builtin_trap(); /* whole and small: exactly representable, must agree */
		if (r == 0 && d != 0 && d > -1e15 && d < 1e15 && d == (double)(int64_t)d && v->raw.len < 16 &&
		    !memchr(v->raw.ptr, 'e', v->raw.len) && !memchr(v->raw.ptr, 'E', v->raw.len))
			__builtin_trap(); /* short, whole to cJSON, not whole to us */
	} else if (cJSON_IsTrue(c)) {
		if (v->kind != JSON_TRUE)
			__builtin_trap();
	} else if (cJSON_IsFalse(c)) {
		if (v->kind != JSON_FALSE)
			__builtin_trap();
	} else if (cJSON_IsNull(c)) {
		if (v->kind != JSON_NULL)
			__builtin_trap();
	}
}

static void differential(const uint8_t *d, size_t n)
{
	struct json_report r;
	struct spop_slice doc = { d, n };
	static struct json_top top;
	bool ours = json_check(doc, &keys, NULL, NULL, &top, &r);
	if (!ours)
		return;
	/* the top-level index is what a walk of the object gives */
	struct json_iter ji;
	struct spop_slice k;
	struct json_val jv;
	int i = 0;
	if (json_iter_init(&ji, doc)) {
		while (json_iter_next(&ji, &k, &jv) == 1 && i < JSON_TOP_MAX) {
			const struct json_member *m = &top.m[i++];
			if (i > top.n || m->key.ptr != k.ptr || m->key.len != k.len || m->val.kind != jv.kind ||
			    m->val.raw.ptr != jv.raw.ptr || m->val.raw.len != jv.raw.len ||
			    (jv.kind == JSON_ARRAY && m->count != json_array_len(&jv)))
				__builtin_trap();
		}
	}
	if (i != top.n)
		__builtin_trap();
	cJSON *c = cJSON_ParseWithLength((const char *)d, n);
	if (!c)
		__builtin_trap(); /* we accepted what a standard parser refuses */
	struct json_val v;
	if (!json_parse_value(doc, &v))
		__builtin_trap();
	compare(c, &v, 0);
	cJSON_Delete(c);
	/* every strict prefix that ends inside the document is refused */
	for (size_t cut = n / 2; cut < n; cut += 1 + n / 8) {
		struct spop_slice pre = { d, cut };
		struct json_val pv;
		if (json_check(pre, &keys, NULL, NULL, NULL, &r) && v.kind != JSON_NUMBER && json_parse_value(pre, &pv) &&
		    pv.kind != JSON_NUMBER) {
			size_t end = (size_t)(v.raw.ptr + v.raw.len - d);
			if (cut >= end)
				continue; /* only trailing white space was cut */
			__builtin_trap();
		}
	}
}

static struct policy pol;
static struct provider_table providers;

static void init(void)
{
	char err[128];
	const char *p = "{\"rules\":[],\"dlp\":{\"detectors\":{\"all\":\"deny\"}}}";
	if (policy_parse(p, strlen(p), &pol, err, sizeof(err)) < 0)
		abort();
	providers_builtin(&providers);
}

/* The agent's DLP findings for a chat body whose content is `text`, written
 * with \u escapes where `mask` says (plain JSON escapes otherwise). */
static uint32_t findings(const uint8_t *text, size_t n, const uint8_t *mask, size_t mn, char *body)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = (size_t)sprintf(body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"");
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = text[i];
		bool esc = mn && (mask[i % mn] >> (i % 8) & 1);
		if (ch >= 0x80 || ch < 0x20 || ch == '"' || ch == '\\')
			ch = '?'; /* so the plain body needs no escape at all (its raw bytes are its text) */
		if (esc) {
			o += (size_t)sprintf(body + o, "\\u00%c%c", hex[ch >> 4], hex[ch & 15]);
		} else {
			body[o++] = (char)ch;
		}
	}
	o += (size_t)sprintf(body + o, "\"}]}");
	struct spop_msg m = { .name = { (const uint8_t *)"archestra-req", 13 }, .nargs = 3 };
	m.args[0] = (struct spop_kv){ { (const uint8_t *)"path", 4 },
	                              { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"/v1/local/chat/completions", 26 } } };
	m.args[1] = (struct spop_kv){ { (const uint8_t *)"body", 4 }, { .type = SPOP_T_BINARY, .v.s = { (const uint8_t *)body, o } } };
	m.args[2] = (struct spop_kv){ { (const uint8_t *)"method", 6 }, { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"POST", 4 } } };
	static struct auth auth;
	auth.policy = pol;
	struct request_cfg cfg = { .providers = &providers };
	struct decide_env env = { .auth = &auth };
	struct req_decision d;
	request_decide(&cfg, &env, &m, &d);
	return d.dlp_found;
}

static void escapes_hide_nothing(const uint8_t *d, size_t n)
{
	if (n < 2)
		return;
	size_t mn = d[0] % 8;
	if (mn + 1 > n)
		return;
	const uint8_t *mask = d + 1, *text = d + 1 + mn;
	size_t tn = n - 1 - mn;
	if (tn > 2048)
		return;
	static char b1[2048 * 6 + 128], b2[2048 * 6 + 128];
	uint32_t plain = findings(text, tn, NULL, 0, b1);
	uint32_t escaped = findings(text, tn, mask, mn, b2);
	if ((plain & escaped) != plain)
		__builtin_trap();
}

static unsigned long runs[3];

static void report_runs(void)
{
	fprintf(stderr, "fuzz_json: %lu differential runs, %lu escaping runs, %lu stream runs\n", runs[0], runs[1],
	        runs[2]);
}

/* 2: a held stream (sse.h), in the shape the second byte picks: whatever the agent
 * reads as calls has a name and arguments that are one JSON document, inside the
 * input or the arena; anything else is -1. */
static void streams_read_whole(const uint8_t *data, size_t size)
{
	static char sbuf[1 << 20];
	static struct json_key skeys[8192];
	if (size < 1)
		return;
	enum err_shape shape = (enum err_shape)(data[0] % SHAPE_COUNT);
	char *body = malloc(size - 1 ? size - 1 : 1); /* exactly its size: ASan sees any read past it */
	memcpy(body, data + 1, size - 1);
	struct json_arena a = { sbuf, sizeof(sbuf), 0 };
	struct json_keytab k = { skeys, 8192 };
	struct tool_call calls[8];
	int n = sse_tool_calls(shape, (struct spop_slice){ (const uint8_t *)body, size - 1 }, calls, 8, &a, &k);
	if (n < -1 || n > 8)
		__builtin_trap();
	for (int i = 0; i < n; i++) {
		struct json_report r;
		if (!calls[i].name.len || !json_check(calls[i].args, &k, NULL, NULL, NULL, &r))
			__builtin_trap();
	}
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		init();
		atexit(report_runs);
		ready = true;
	}
	if (size < 1)
		return 0;
	int mode = data[0] % 3;
	runs[mode]++;
	if (mode == 2)
		streams_read_whole(data + 1, size - 1);
	else if (mode == 1)
		escapes_hide_nothing(data + 1, size - 1);
	else
		differential(data + 1, size - 1);
	return 0;
}
