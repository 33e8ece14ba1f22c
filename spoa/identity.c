/* identity.c: see identity.h. */
#include "identity.h"

#include <string.h>

#include "hdrs.h"

static const char *const header_names[ID_FIELDS] = {
	"X-Archestra-Agent-Id", "X-Archestra-User-Id", "X-Archestra-Session-Id", "X-Archestra-Execution-Id",
};
const char *const identity_field_names[ID_FIELDS + 1] = { "agent_id", "user_id", "session_id", "execution_id", NULL };

const char *identity_field_name(enum id_field f)
{
	return (unsigned)f < ID_FIELDS ? identity_field_names[f] : "?";
}

/* A-Z a-z 0-9 . _ - : @ + ~ */
static const uint64_t ok_lo = 0x07ff680000000000ULL;  /* bytes 0..63: '+' '-' '.' '0'-'9' ':' */
static const uint64_t ok_hi = 0x47fffffe87ffffffULL;  /* bytes 64..127: '@' 'A'-'Z' '_' 'a'-'z' '~' */

bool identity_char_ok(uint8_t c)
{
	return c < 64 ? (ok_lo >> c) & 1 : c < 128 && ((ok_hi >> (c - 64)) & 1);
}

/* NULL when valid, else why not. Values travel into a key=value log line, metric
 * tags and the call context: a small character set keeps every one of them safe. */
static const char *check_value(struct spop_slice v)
{
	if (v.len > IDENTITY_MAX_LEN)
		return "longer than 128 bytes";
	for (size_t i = 0; i < v.len; i++) {
		if (v.ptr[i] == '/')
			return "contains '/'";
		if (!identity_char_ok(v.ptr[i]))
			return "contains a character outside A-Z a-z 0-9 . _ - : @ + ~";
	}
	return NULL;
}

static bool same(struct spop_slice a, struct spop_slice b)
{
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

struct state {
	struct identity *id;
	struct spop_slice meta[3];
	bool have_meta;
	bool bad[ID_FIELDS + 1];     /* last slot: Meta */
	bool drop;
	bool run_and_exec;           /* both X-Archestra-Run-Id and -Execution-Id were sent */
	bool seen_run, seen_exec;
	unsigned dropped;
	struct identity_error *err;
};

/* Records an invalid header; returns false when the whole call must fail. */
static bool invalid(struct state *st, int slot, const char *header, const char *why)
{
	if (!st->drop) {
		st->err->header = header;
		st->err->why = why;
		return false;
	}
	if (!st->bad[slot])
		st->dropped++;
	st->bad[slot] = true;
	return true;
}

/* header: the name the client used (Archestra renamed X-Archestra-Execution-Id to
 * X-Archestra-Run-Id; both name the same field and must agree when both come). */
static bool take_field(struct state *st, int f, const char *header, struct spop_slice v)
{
	const char *why = check_value(v);
	if (why)
		return invalid(st, f, header, why);
	if (v.len == 0)
		return true;
	struct spop_slice *cur = &st->id->v[f];
	if (cur->len && !same(*cur, v))
		return invalid(st, f, header, f == ID_EXECUTION && st->run_and_exec
		                                  ? "differs from X-Archestra-Execution-Id (or X-Archestra-Run-Id): they name "
		                                    "the same run"
		                                  : "repeated with different values");
	*cur = v;
	return true;
}

static bool take_meta(struct state *st, struct spop_slice v)
{
	if (v.len == 0)
		return true;
	struct spop_slice seg[3];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= v.len; i++) {
		if (i == v.len || v.ptr[i] == '/') {
			if (n == 3)
				return invalid(st, ID_FIELDS, "X-Archestra-Meta",
				               "needs exactly 3 segments: agent-id/execution-id/session-id");
			seg[n++] = slice_trim((struct spop_slice){ v.ptr + start, i - start });
			start = i + 1;
		}
	}
	if (n != 3)
		return invalid(st, ID_FIELDS, "X-Archestra-Meta", "needs exactly 3 segments: agent-id/execution-id/session-id");
	for (int i = 0; i < 3; i++) {
		const char *why = check_value(seg[i]);
		if (why)
			return invalid(st, ID_FIELDS, "X-Archestra-Meta", why);
	}
	if (st->have_meta && !(same(seg[0], st->meta[0]) && same(seg[1], st->meta[1]) && same(seg[2], st->meta[2])))
		return invalid(st, ID_FIELDS, "X-Archestra-Meta", "repeated with different values");
	memcpy(st->meta, seg, sizeof(seg));
	st->have_meta = true;
	return true;
}

int identity_parse(const struct spop_data *hdrs, bool drop_invalid, struct identity *id,
                   struct identity_error *err, unsigned *dropped)
{
	struct state st = { .id = id, .drop = drop_invalid, .err = err };
	memset(id, 0, sizeof(*id));
	*dropped = 0;
	if (!hdrs || (hdrs->type != SPOP_T_BINARY && hdrs->type != SPOP_T_STRING))
		return 0;
	struct spop_reader r = { hdrs->v.s.ptr, hdrs->v.s.ptr + hdrs->v.s.len };
	struct spop_slice name, val;
	while (hdrs_next(&r, &name, &val) == 1) {
		if (name.len < 12 || !slice_ieq((struct spop_slice){ name.ptr, 12 }, "x-archestra-", 12))
			continue; /* the common case: one compare per header */
		val = slice_trim(val);
		struct spop_slice tail = { name.ptr + 12, name.len - 12 };
		bool ok = true;
		if (SLICE_IEQ(tail, "agent-id"))
			ok = take_field(&st, ID_AGENT, header_names[ID_AGENT], val);
		else if (SLICE_IEQ(tail, "user-id"))
			ok = take_field(&st, ID_USER, header_names[ID_USER], val);
		else if (SLICE_IEQ(tail, "session-id"))
			ok = take_field(&st, ID_SESSION, header_names[ID_SESSION], val);
		else if (SLICE_IEQ(tail, "execution-id") || SLICE_IEQ(tail, "run-id")) {
			bool run = SLICE_IEQ(tail, "run-id");
			*(run ? &st.seen_run : &st.seen_exec) = true;
			st.run_and_exec = st.seen_run && st.seen_exec;
			ok = take_field(&st, ID_EXECUTION, run ? "X-Archestra-Run-Id" : header_names[ID_EXECUTION], val);
		}
		else if (SLICE_IEQ(tail, "meta"))
			ok = take_meta(&st, val);
		if (!ok)
			return -1;
	}
	for (int f = 0; f < ID_FIELDS; f++)
		if (st.bad[f])
			id->v[f].len = 0;
	/* Meta fills what no (valid) individual header gave: agent-id/execution-id/session-id. */
	if (st.have_meta && !st.bad[ID_FIELDS]) {
		static const int order[3] = { ID_AGENT, ID_EXECUTION, ID_SESSION };
		for (int i = 0; i < 3; i++)
			if (id->v[order[i]].len == 0)
				id->v[order[i]] = st.meta[i];
	}
	*dropped = st.dropped;
	return 0;
}
