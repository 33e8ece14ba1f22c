/* Unit tests of the SPOP session state machine: bytes in, frames out. */
#include "testutil.h"

#include <stdlib.h>

#include "handler.h"
#include "session.h"

static struct session_cfg cfg;

/* The session is tested with a fixed handler: one verdict=allow per archestra-req.
 * The real decision logic has its own tests (test_request.c). */
static void allow_handler(void *arg, const struct spop_msg *m, struct spop_writer *acts)
{
	(void)arg;
	(void)m;
	spoa_set_txn_str(acts, "verdict", "allow", 5);
}
static const struct spoa_handler allow_list[] = { { "archestra-req", 13, allow_handler } };
static const struct spoa_handlers allow_handlers = { allow_list, 1, NULL };

static void reset_cfg(void)
{
	cfg.max_frame_size = 16384;
	cfg.caps = SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC | SPOP_CAP_FRAGMENTATION;
	cfg.max_reassembled = 4096;
	cfg.handlers = &allow_handlers;
}

struct fx {
	struct session s;
	struct buf in, out;
	size_t rd; /* read offset in out */
};

static int setup(void **state)
{
	reset_cfg();
	struct fx *f = calloc(1, sizeof(*f));
	session_init(&f->s, &cfg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	session_free(&f->s);
	buf_free(&f->in);
	buf_free(&f->out);
	free(f);
	return 0;
}

/* Feeds everything queued in f->in; returns what was consumed. */
static size_t feed(struct fx *f)
{
	size_t n = session_feed(&f->s, f->in.data, f->in.len, &f->out);
	buf_consume(&f->in, n);
	return n;
}

static void hello(struct fx *f, uint32_t mfs, const char *caps)
{
	BUILD_FRAME(&f->in, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0, put_hello_kv(w, "2.0", mfs, caps));
}

static void notify(struct buf *b, uint32_t flags, uint64_t sid, uint64_t fid, const char *msg)
{
	BUILD_FRAME(b, SPOP_FRM_NOTIFY, flags, sid, fid, {
		if (msg) {
			spop_put_name(w, msg, strlen(msg));
			spop_put_u8(w, 1);
			spop_put_kv_str(w, "id", "abc", 3);
		}
	});
}

static void expect_agent_hello(struct fx *f, uint32_t mfs, const char *caps)
{
	struct spop_frame fr;
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), 0);
	assert_int_equal(fr.type, SPOP_FRM_AGENT_HELLO);
	struct spop_reader r = { fr.payload.ptr, fr.payload.ptr + fr.payload.len };
	struct spop_kv kv;
	int seen = 0;
	while (r.p < r.end) {
		assert_int_equal(spop_get_kv(&r, &kv), 0);
		if (SPOP_SLICE_IS(kv.name, "max-frame-size")) {
			assert_int_equal(kv.val.v.u, mfs);
			seen++;
		} else if (SPOP_SLICE_IS(kv.name, "capabilities")) {
			assert_int_equal(kv.val.v.s.len, strlen(caps));
			assert_memory_equal(kv.val.v.s.ptr, caps, strlen(caps));
			seen++;
		} else if (SPOP_SLICE_IS(kv.name, "version")) {
			assert_true(SPOP_SLICE_IS(kv.val.v.s, "2.0"));
			seen++;
		}
	}
	assert_int_equal(seen, 3);
}

/* Checks the next frame is an ACK for sid/fid and returns its action count. */
static int expect_ack(struct fx *f, uint64_t sid, uint64_t fid)
{
	struct spop_frame fr;
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), 0);
	assert_int_equal(fr.type, SPOP_FRM_ACK);
	assert_int_equal(fr.flags, SPOP_FL_FIN);
	assert_true(fr.stream_id == sid);
	assert_true(fr.frame_id == fid);
	int n = 0;
	struct spop_reader r = { fr.payload.ptr, fr.payload.ptr + fr.payload.len };
	while (r.p < r.end) {
		assert_int_equal(*r.p++, SPOP_ACT_SET_VAR);
		assert_int_equal(*r.p++, 3);
		assert_int_equal(*r.p++, SPOP_SCOPE_TXN);
		struct spop_slice name;
		struct spop_data val;
		assert_int_equal(spop_get_name(&r, &name), 0);
		assert_int_equal(spop_get_data(&r, &val), 0);
		assert_true(SPOP_SLICE_IS(name, "verdict"));
		assert_true(SPOP_SLICE_IS(val.v.s, "allow"));
		n++;
	}
	return n;
}

static uint32_t expect_disconnect(struct fx *f)
{
	struct spop_frame fr;
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), 0);
	assert_int_equal(f->s.state, SESS_CLOSING);
	uint32_t st = disconnect_status(&fr);
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), -1); /* nothing after it */
	return st;
}

static void handshake_negotiates_size_and_caps(void **state)
{
	struct fx *f = *state;
	hello(f, 1000, "pipelining, async");
	assert_true(feed(f) > 0);
	assert_int_equal(f->s.state, SESS_READY);
	expect_agent_hello(f, 1000, "pipelining,async");
	assert_int_equal(f->s.max_frame, 1000);
}

static void handshake_never_above_agent_max_nor_unoffered_caps(void **state)
{
	struct fx *f = *state;
	cfg.caps = SPOP_CAP_PIPELINING;
	hello(f, 1u << 30, "async,fragmentation,pipelining");
	feed(f);
	expect_agent_hello(f, 16384, "pipelining");
	assert_int_equal(f->s.caps, SPOP_CAP_PIPELINING);
}

static void healthcheck_answers_then_closes(void **state)
{
	struct fx *f = *state;
	BUILD_FRAME(&f->in, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0, {
		put_hello_kv(w, "2.0", 16380, "");
		struct spop_data t = { .type = SPOP_T_BOOL, .v.b = true };
		spop_put_name(w, "healthcheck", 11);
		spop_put_data(w, &t);
	});
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(f->s.state, SESS_CLOSING);
	assert_int_equal(f->s.status, SPOP_ST_OK);
	struct spop_frame fr;
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), -1);
}

static void hello_faults(void **state)
{
	struct { uint32_t flags; uint64_t sid; int type; uint32_t status; } cases[] = {
		{ 0, 0, SPOP_FRM_HAPROXY_HELLO, SPOP_ST_FRAG_UNSUPPORTED },
		{ SPOP_FL_FIN, 1, SPOP_FRM_HAPROXY_HELLO, SPOP_ST_INVALID },
		{ SPOP_FL_FIN, 0, SPOP_FRM_NOTIFY, SPOP_ST_INVALID },
		{ SPOP_FL_FIN, 0, SPOP_FRM_UNSET, SPOP_ST_INVALID },
		{ SPOP_FL_FIN, 0, 50, SPOP_ST_INVALID },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *f;
		setup((void **)&f);
		BUILD_FRAME(&f->in, (uint8_t)cases[i].type, cases[i].flags, cases[i].sid, 0,
		            put_hello_kv(w, "2.0", 16380, ""));
		feed(f);
		assert_int_equal(expect_disconnect(f), cases[i].status);
		teardown((void **)&f);
	}
}

static void hello_payload_statuses_reach_the_wire(void **state)
{
	struct fx *f = *state;
	BUILD_FRAME(&f->in, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0, put_hello_kv(w, "1.0", 16380, ""));
	feed(f);
	assert_int_equal(expect_disconnect(f), SPOP_ST_BAD_VSN);
}

static void disconnect_before_hello_is_graceful(void **state)
{
	struct fx *f = *state;
	BUILD_FRAME(&f->in, SPOP_FRM_HAPROXY_DISCONNECT, SPOP_FL_FIN, 0, 0, {
		spop_put_kv_u32(w, "status-code", 0);
		spop_put_kv_str(w, "message", "bye", 3);
	});
	feed(f);
	assert_int_equal(expect_disconnect(f), SPOP_ST_OK);
	assert_true(f->s.peer_disconnected);
}

static void notify_gets_ack_with_verdict(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "pipelining");
	notify(&f->in, SPOP_FL_FIN, 2288, 264432, "archestra-req");
	notify(&f->in, SPOP_FL_FIN, 3, 4, "something-else");
	notify(&f->in, SPOP_FL_FIN, 5, 6, NULL);
	feed(f);
	expect_agent_hello(f, 16380, "pipelining");
	assert_int_equal(expect_ack(f, 2288, 264432), 1);
	assert_int_equal(expect_ack(f, 3, 4), 0);
	assert_int_equal(expect_ack(f, 5, 6), 0);
	assert_int_equal(f->s.notifies, 3);
	assert_int_equal(f->s.unhandled, 1);
}

static void two_messages_one_ack(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "");
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, SPOP_FL_FIN, 1, 1, {
		spop_put_name(w, "other", 5);
		spop_put_u8(w, 0);
		spop_put_name(w, "archestra-req", 13);
		spop_put_u8(w, 0);
	});
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_ack(f, 1, 1), 1);
}

static void ack_only_handlers_answer_nothing(void **state)
{
	struct fx *f = *state;
	cfg.handlers = &spoa_handlers_ack_only;
	hello(f, 16380, "");
	notify(&f->in, SPOP_FL_FIN, 1, 1, "archestra-req");
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_ack(f, 1, 1), 0);
}

static void pipelined_frames_byte_by_byte(void **state)
{
	struct fx *f = *state;
	struct buf all = { 0 };
	BUILD_FRAME(&all, SPOP_FRM_HAPROXY_HELLO, SPOP_FL_FIN, 0, 0, put_hello_kv(w, "2.0", 16380, "pipelining"));
	for (int i = 0; i < 50; i++)
		notify(&all, SPOP_FL_FIN, (uint64_t)i * 1000, (uint64_t)i, "archestra-req");
	/* Feed one byte at a time: partial frames are left unconsumed. */
	for (size_t i = 0; i < all.len; i++) {
		buf_append(&f->in, all.data + i, 1);
		feed(f);
	}
	assert_int_equal(f->in.len, 0);
	expect_agent_hello(f, 16380, "pipelining");
	for (int i = 0; i < 50; i++)
		assert_int_equal(expect_ack(f, (uint64_t)i * 1000, (uint64_t)i), 1);
	buf_free(&all);
}

static void size_judged_from_prefix_alone(void **state)
{
	struct fx *f = *state;
	/* Before HELLO the agent's own maximum applies: 16385 > 16384. */
	uint8_t pfx[4] = { 0, 0, 0x40, 0x01 };
	buf_append(&f->in, pfx, 4);
	assert_int_equal(feed(f), 0);
	assert_int_equal(expect_disconnect(f), SPOP_ST_TOO_BIG);
}

static void size_limits_after_hello(void **state)
{
	for (int over = 0; over <= 1; over++) {
		struct fx *f;
		(void)state;
		setup((void **)&f);
		hello(f, 300, "");
		feed(f);
		expect_agent_hello(f, 300, "");
		/* A NOTIFY of exactly 300 (+over) bytes. */
		BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, SPOP_FL_FIN, 1, 1, {
			spop_put_name(w, "m", 1);
			spop_put_u8(w, 1);
			spop_put_name(w, "b", 1);
			spop_put_u8(w, SPOP_T_BINARY);
			spop_put_vint(w, 300 - 7 - 2 - 1 - 2 - 1 - 2 + over);
			uint8_t pad[300] = { 0 };
			spop_put_raw(w, pad, 300 - 7 - 2 - 1 - 2 - 1 - 2 + over);
		});
		assert_int_equal(spop_read_len(f->in.data), 300 + over);
		feed(f);
		if (over)
			assert_int_equal(expect_disconnect(f), SPOP_ST_TOO_BIG);
		else
			assert_int_equal(expect_ack(f, 1, 1), 0);
		teardown((void **)&f);
	}
}

static void short_and_malformed_frames(void **state)
{
	struct fx *f = *state;
	uint8_t tiny[] = { 0, 0, 0, 3, 3, 0, 0 };
	buf_append(&f->in, tiny, sizeof(tiny));
	feed(f);
	assert_int_equal(expect_disconnect(f), SPOP_ST_INVALID);
}

static void malformed_notify_payload(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "");
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, SPOP_FL_FIN, 1, 1, {
		spop_put_name(w, "archestra-req", 13);
		spop_put_u8(w, 2);
		spop_put_kv_str(w, "id", "x", 1);
	});
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_disconnect(f), SPOP_ST_INVALID);
}

static void bad_type_in_args(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "");
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, SPOP_FL_FIN, 1, 1, {
		spop_put_name(w, "archestra-req", 13);
		spop_put_u8(w, 1);
		spop_put_name(w, "x", 1);
		spop_put_u8(w, 12);
	});
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_disconnect(f), SPOP_ST_INVALID);
}

static void frame_types_after_hello(void **state)
{
	int types[] = { SPOP_FRM_HAPROXY_HELLO, SPOP_FRM_AGENT_HELLO, SPOP_FRM_AGENT_DISCONNECT, SPOP_FRM_ACK };
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct fx *f;
		setup((void **)&f);
		hello(f, 16380, "");
		BUILD_FRAME(&f->in, (uint8_t)types[i], SPOP_FL_FIN, 0, 0, put_hello_kv(w, "2.0", 16380, ""));
		feed(f);
		expect_agent_hello(f, 16380, "");
		assert_int_equal(expect_disconnect(f), SPOP_ST_INVALID);
		teardown((void **)&f);
	}
}

static void unknown_frame_types_are_skipped(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "");
	BUILD_FRAME(&f->in, 50, SPOP_FL_FIN, 1, 1, spop_put_raw(w, "junk", 4));
	BUILD_FRAME(&f->in, 255, 0, 0, 0, );
	notify(&f->in, SPOP_FL_FIN, 9, 9, "archestra-req");
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_ack(f, 9, 9), 1);
	assert_int_equal(f->s.state, SESS_READY);
}

static void haproxy_disconnect_is_answered(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "");
	BUILD_FRAME(&f->in, SPOP_FRM_HAPROXY_DISCONNECT, SPOP_FL_FIN, 0, 0, {
		spop_put_kv_u32(w, "status-code", 2);
		spop_put_kv_str(w, "message", "timeout", 7);
	});
	notify(&f->in, SPOP_FL_FIN, 1, 1, "archestra-req"); /* ignored after it */
	feed(f);
	expect_agent_hello(f, 16380, "");
	assert_int_equal(expect_disconnect(f), SPOP_ST_OK);
	/* Once closing, nothing more is consumed. */
	notify(&f->in, SPOP_FL_FIN, 1, 1, "archestra-req");
	assert_int_equal(feed(f), 0);
}

static void fragmentation_without_negotiation(void **state)
{
	int types[] = { SPOP_FRM_NOTIFY, SPOP_FRM_UNSET };
	(void)state;
	for (int i = 0; i < 2; i++) {
		struct fx *f;
		setup((void **)&f);
		hello(f, 16380, "pipelining");
		BUILD_FRAME(&f->in, (uint8_t)types[i], i ? SPOP_FL_FIN : 0, 1, 1, spop_put_raw(w, "\x01m\x00", 3));
		feed(f);
		expect_agent_hello(f, 16380, "pipelining");
		assert_int_equal(expect_disconnect(f), SPOP_ST_FRAG_UNSUPPORTED);
		teardown((void **)&f);
	}
}

/* "archestra-req" with one STRING arg, split across three fragments. */
static void fragments(struct buf *b, uint64_t sid, uint64_t fid, uint64_t fid2)
{
	static const uint8_t p[] = "\x0d" "archestra-req" "\x01" "\x02" "id" "\x08\x03" "abc";
	BUILD_FRAME(b, SPOP_FRM_NOTIFY, 0, sid, fid, spop_put_raw(w, p, 5));
	BUILD_FRAME(b, SPOP_FRM_UNSET, 0, sid, fid2, spop_put_raw(w, p + 5, 10));
	BUILD_FRAME(b, SPOP_FRM_UNSET, SPOP_FL_FIN, sid, fid2, spop_put_raw(w, p + 15, sizeof(p) - 1 - 15));
}

static void fragmented_notify_is_reassembled(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "fragmentation");
	fragments(&f->in, 7, 8, 8);
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_ack(f, 7, 8), 1);
	assert_false(f->s.frag_active);
}

static void fragment_faults(void **state)
{
	(void)state;
	/* Continuation with another frame-id. */
	struct fx *f;
	setup((void **)&f);
	hello(f, 16380, "fragmentation");
	fragments(&f->in, 7, 8, 9);
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_disconnect(f), SPOP_ST_FRAMEID_NOTFOUND);
	teardown((void **)&f);

	/* Continuation of nothing. */
	setup((void **)&f);
	hello(f, 16380, "fragmentation");
	BUILD_FRAME(&f->in, SPOP_FRM_UNSET, SPOP_FL_FIN, 1, 1, spop_put_raw(w, "x", 1));
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_disconnect(f), SPOP_ST_FRAMEID_NOTFOUND);
	teardown((void **)&f);

	/* A NOTIFY interleaved in a fragmented frame. */
	setup((void **)&f);
	hello(f, 16380, "fragmentation");
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, 0, 1, 1, spop_put_raw(w, "\x01", 1));
	notify(&f->in, SPOP_FL_FIN, 2, 2, "archestra-req");
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_disconnect(f), SPOP_ST_INTERLACED);
	teardown((void **)&f);

	/* Reassembly bounded by max_reassembled (4096 here). */
	setup((void **)&f);
	hello(f, 16380, "fragmentation");
	uint8_t pad[3000] = { 0 };
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, 0, 1, 1, spop_put_raw(w, pad, sizeof(pad)));
	BUILD_FRAME(&f->in, SPOP_FRM_UNSET, 0, 1, 1, spop_put_raw(w, pad, sizeof(pad)));
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_disconnect(f), SPOP_ST_TOO_BIG);
	teardown((void **)&f);
}

static void aborted_fragments_are_dropped(void **state)
{
	struct fx *f = *state;
	hello(f, 16380, "fragmentation");
	BUILD_FRAME(&f->in, SPOP_FRM_NOTIFY, 0, 1, 1, spop_put_raw(w, "\x0d" "archestra", 10));
	BUILD_FRAME(&f->in, SPOP_FRM_UNSET, SPOP_FL_FIN | SPOP_FL_ABORT, 1, 1, );
	notify(&f->in, SPOP_FL_FIN, 2, 2, "archestra-req");
	feed(f);
	expect_agent_hello(f, 16380, "fragmentation");
	assert_int_equal(expect_ack(f, 2, 2), 1); /* and no ACK for 1/1 */
	struct spop_frame fr;
	assert_int_equal(next_frame(&f->out, &f->rd, &fr), -1);
}

/* A handler whose actions cannot fit the negotiated frame size. */
static void huge_actions(void *arg, const struct spop_msg *m, struct spop_writer *acts)
{
	(void)arg;
	(void)m;
	static char big[600];
	memset(big, 'x', sizeof(big));
	spoa_set_txn_str(acts, "big", big, sizeof(big));
}
static const struct spoa_handler huge_list[] = { { "archestra-req", 13, huge_actions } };
static const struct spoa_handlers huge = { huge_list, 1, NULL };

static void oversized_actions_still_ack(void **state)
{
	struct fx *f = *state;
	cfg.handlers = &huge;
	hello(f, 256, "");
	notify(&f->in, SPOP_FL_FIN, 1, 2, "archestra-req");
	feed(f);
	expect_agent_hello(f, 256, "");
	assert_int_equal(expect_ack(f, 1, 2), 0);
	assert_int_equal(f->s.state, SESS_READY);
}

static void shell_disconnect_is_idempotent(void **state)
{
	struct fx *f = *state;
	session_disconnect(&f->s, &f->out, SPOP_ST_TIMEOUT, "idle");
	session_disconnect(&f->s, &f->out, SPOP_ST_OK, "again");
	assert_int_equal(expect_disconnect(f), SPOP_ST_TIMEOUT);
	assert_int_equal(f->s.status, SPOP_ST_TIMEOUT);
}

static void frame_need(void **state)
{
	(void)state;
	uint8_t b[4] = { 0, 0, 1, 0 };
	assert_int_equal(session_frame_need(b, 3), 0);
	assert_int_equal(session_frame_need(b, 4), 260);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(handshake_negotiates_size_and_caps),
		T(handshake_never_above_agent_max_nor_unoffered_caps),
		T(healthcheck_answers_then_closes),
		T(hello_faults),
		T(hello_payload_statuses_reach_the_wire),
		T(disconnect_before_hello_is_graceful),
		T(notify_gets_ack_with_verdict),
		T(two_messages_one_ack),
		T(ack_only_handlers_answer_nothing),
		T(pipelined_frames_byte_by_byte),
		T(size_judged_from_prefix_alone),
		T(size_limits_after_hello),
		T(short_and_malformed_frames),
		T(malformed_notify_payload),
		T(bad_type_in_args),
		T(frame_types_after_hello),
		T(unknown_frame_types_are_skipped),
		T(haproxy_disconnect_is_answered),
		T(fragmentation_without_negotiation),
		T(fragmented_notify_is_reassembled),
		T(fragment_faults),
		T(aborted_fragments_are_dropped),
		T(oversized_actions_still_ack),
		T(shell_disconnect_is_idempotent),
		T(frame_need),
	};
	return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
