/* Unit tests of the SPOP codec: varints, typed data, frames, HELLO, messages, writer. */
#include "testutil.h"

#include <stdlib.h>

static const struct { uint64_t v; size_t len; } varints[] = {
	{ 0, 1 }, { 1, 1 }, { 239, 1 }, { 240, 2 }, { 241, 2 }, { 2287, 2 }, { 2288, 3 },
	{ 264431, 3 }, { 264432, 4 }, { 33818863, 4 }, { 33818864, 5 }, { 4328786159ULL, 5 },
	{ 4328786160ULL, 6 }, { UINT32_MAX, 5 }, { 1ULL << 40, 7 }, { UINT64_MAX - 1, 10 }, { UINT64_MAX, 10 },
};

static void varint_round_trip_at_boundaries(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
		uint8_t b[16];
		size_t n = spop_put_varint(b, sizeof(b), varints[i].v);
		assert_int_equal(n, varints[i].len);
		assert_int_equal(spop_varint_len(varints[i].v), varints[i].len);
		struct spop_reader r = { b, b + n };
		uint64_t got;
		assert_int_equal(spop_get_varint(&r, &got), 0);
		assert_true(got == varints[i].v);
		assert_ptr_equal(r.p, b + n);
		/* Every strict prefix is truncated. */
		for (size_t k = 0; k < n; k++) {
			struct spop_reader t = { b, b + k };
			assert_int_equal(spop_get_varint(&t, &got), -1);
		}
	}
}

static void varint_known_bytes(void **st)
{
	(void)st;
	uint8_t b[8];
	assert_int_equal(spop_put_varint(b, 8, 240), 2);
	assert_memory_equal(b, "\xf0\x00", 2);
	assert_int_equal(spop_put_varint(b, 8, 2287), 2);
	assert_memory_equal(b, "\xff\x7f", 2);
	assert_int_equal(spop_put_varint(b, 8, 2288), 3);
	assert_memory_equal(b, "\xf0\x80\x00", 3);
	assert_int_equal(spop_put_varint(b, 8, 16380), 3);
	assert_memory_equal(b, "\xfc\xf0\x06", 3);
}

static void varint_rejects_overflow_and_no_room(void **st)
{
	(void)st;
	uint8_t ff[12];
	memset(ff, 0xff, sizeof(ff));
	ff[11] = 0x01;
	struct spop_reader r = { ff, ff + sizeof(ff) };
	uint64_t v;
	assert_int_equal(spop_get_varint(&r, &v), -1);
	/* 10 bytes whose last one overflows 64 bits. */
	uint8_t big[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };
	struct spop_reader r2 = { big, big + 10 };
	assert_int_equal(spop_get_varint(&r2, &v), -1);
	uint8_t b[4];
	assert_int_equal(spop_put_varint(b, 0, 1), 0);
	assert_int_equal(spop_put_varint(b, 1, 240), 0);
	assert_int_equal(spop_put_varint(b, 2, 2288), 0);
}

static void round_trip(const struct spop_data *in, struct spop_data *out, uint8_t *b, size_t room)
{
	struct spop_writer w;
	spop_writer_init(&w, b, room);
	spop_put_data(&w, in);
	assert_false(w.overflow);
	struct spop_reader r = { b, w.p };
	assert_int_equal(spop_get_data(&r, out), 0);
	assert_ptr_equal(r.p, w.p);
	assert_int_equal(out->type, in->type);
	size_t n = (size_t)(w.p - b);
	for (size_t k = 0; k < n; k++) {
		struct spop_reader t = { b, b + k };
		struct spop_data d;
		if (in->type == SPOP_T_NULL || in->type == SPOP_T_BOOL)
			break;
		assert_int_equal(spop_get_data(&t, &d), -1);
	}
}

static void data_round_trip_every_type(void **st)
{
	(void)st;
	uint8_t b[256];
	struct spop_data d, o;
	static const uint8_t ip4[4] = { 127, 0, 0, 1 };
	static const uint8_t ip6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

	d.type = SPOP_T_NULL;
	round_trip(&d, &o, b, sizeof(b));
	assert_int_equal(b[0], 0);

	d.type = SPOP_T_BOOL;
	d.v.b = true;
	round_trip(&d, &o, b, sizeof(b));
	assert_true(o.v.b);
	assert_int_equal(b[0], 0x11);
	d.v.b = false;
	round_trip(&d, &o, b, sizeof(b));
	assert_false(o.v.b);
	assert_int_equal(b[0], 0x01);

	int64_t ints[] = { 0, 1, -1, INT32_MIN, INT32_MAX, INT64_MIN, INT64_MAX };
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		d.type = (ints[i] >= INT32_MIN && ints[i] <= INT32_MAX) ? SPOP_T_INT32 : SPOP_T_INT64;
		d.v.i = ints[i];
		round_trip(&d, &o, b, sizeof(b));
		assert_true(o.v.i == ints[i]);
	}
	uint64_t uints[] = { 0, 239, 240, UINT32_MAX, UINT64_MAX };
	for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) {
		d.type = uints[i] <= UINT32_MAX ? SPOP_T_UINT32 : SPOP_T_UINT64;
		d.v.u = uints[i];
		round_trip(&d, &o, b, sizeof(b));
		assert_true(o.v.u == uints[i]);
	}
	d.type = SPOP_T_IPV4;
	d.v.ip = ip4;
	round_trip(&d, &o, b, sizeof(b));
	assert_memory_equal(o.v.ip, ip4, 4);
	d.type = SPOP_T_IPV6;
	d.v.ip = ip6;
	round_trip(&d, &o, b, sizeof(b));
	assert_memory_equal(o.v.ip, ip6, 16);

	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0, 'x' };
	d.type = SPOP_T_BINARY;
	d.v.s = (struct spop_slice){ bin, sizeof(bin) };
	round_trip(&d, &o, b, sizeof(b));
	assert_int_equal(o.v.s.len, sizeof(bin));
	assert_memory_equal(o.v.s.ptr, bin, sizeof(bin));
	/* Decoding points into the buffer: no copy. */
	assert_true(o.v.s.ptr > b && o.v.s.ptr < b + sizeof(b));

	d.type = SPOP_T_STRING;
	d.v.s = (struct spop_slice){ (const uint8_t *)"", 0 };
	round_trip(&d, &o, b, sizeof(b));
	assert_int_equal(o.v.s.len, 0);

	/* A 300-byte string needs a 2-byte length. */
	uint8_t big[300];
	memset(big, 'a', sizeof(big));
	d.v.s = (struct spop_slice){ big, sizeof(big) };
	uint8_t bb[400];
	round_trip(&d, &o, bb, sizeof(bb));
	assert_int_equal(o.v.s.len, 300);
}

static void data_rejects_reserved_types_and_overruns(void **st)
{
	(void)st;
	struct spop_data d;
	for (uint8_t t = 10; t <= 15; t++) {
		uint8_t b[4] = { t, 0, 0, 0 };
		struct spop_reader r = { b, b + 4 };
		assert_int_equal(spop_get_data(&r, &d), -1);
	}
	uint8_t s[] = { SPOP_T_STRING, 5, 'a', 'b' };
	struct spop_reader r = { s, s + sizeof(s) };
	assert_int_equal(spop_get_data(&r, &d), -1);
	uint8_t v4[] = { SPOP_T_IPV4, 1, 2, 3 };
	r = (struct spop_reader){ v4, v4 + sizeof(v4) };
	assert_int_equal(spop_get_data(&r, &d), -1);
	uint8_t v6[16] = { SPOP_T_IPV6 };
	r = (struct spop_reader){ v6, v6 + sizeof(v6) };
	assert_int_equal(spop_get_data(&r, &d), -1);
	struct spop_reader e = { s, s };
	assert_int_equal(spop_get_data(&e, &d), -1);
	/* A length near 2^64 must not wrap the bounds check. */
	uint8_t huge[] = { SPOP_T_BINARY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x' };
	r = (struct spop_reader){ huge, huge + sizeof(huge) };
	assert_int_equal(spop_get_data(&r, &d), -1);
}

static void frame_metadata(void **st)
{
	(void)st;
	uint8_t f[] = { SPOP_FRM_NOTIFY, 0, 0, 0, 1, 0xf0, 0x80, 0x00, 7, 'p' };
	struct spop_frame fr;
	assert_int_equal(spop_parse_frame(f, sizeof(f), &fr), 0);
	assert_int_equal(fr.type, SPOP_FRM_NOTIFY);
	assert_int_equal(fr.flags, SPOP_FL_FIN);
	assert_int_equal(fr.stream_id, 2288);
	assert_int_equal(fr.frame_id, 7);
	assert_int_equal(fr.payload.len, 1);
	assert_int_equal(spop_parse_frame(f, 6, &fr), -1);
	assert_int_equal(spop_parse_frame(f, 7, &fr), -1); /* frame-id missing */
}

static enum spop_status hello_status(const char *versions, int mfs_type, uint64_t mfs, const char *caps)
{
	uint8_t b[512];
	struct spop_writer w;
	spop_writer_init(&w, b, sizeof(b));
	if (versions)
		spop_put_kv_str(&w, "supported-versions", versions, strlen(versions));
	if (mfs_type >= 0) {
		struct spop_data d = { .type = (enum spop_type)mfs_type };
		if (mfs_type == SPOP_T_STRING)
			d.v.s = (struct spop_slice){ (const uint8_t *)"16380", 5 };
		else
			d.v.u = mfs;
		spop_put_name(&w, "max-frame-size", 14);
		spop_put_data(&w, &d);
	}
	if (caps)
		spop_put_kv_str(&w, "capabilities", caps, strlen(caps));
	struct spop_hello h;
	return spop_parse_hello((struct spop_slice){ b, (size_t)(w.p - b) }, &h);
}

static void hello_statuses(void **st)
{
	(void)st;
	assert_int_equal(hello_status("2.0", SPOP_T_UINT32, 16380, "pipelining,async"), SPOP_ST_OK);
	assert_int_equal(hello_status("2.5", SPOP_T_UINT32, 16380, ""), SPOP_ST_OK);
	assert_int_equal(hello_status(" 1.0 , 2.0 ", SPOP_T_UINT32, 256, ""), SPOP_ST_OK);
	assert_int_equal(hello_status("2.0", SPOP_T_UINT64, 16380, ""), SPOP_ST_OK);
	assert_int_equal(hello_status("1.0", SPOP_T_UINT32, 16380, ""), SPOP_ST_BAD_VSN);
	assert_int_equal(hello_status("3.0", SPOP_T_UINT32, 16380, ""), SPOP_ST_BAD_VSN);
	assert_int_equal(hello_status("2.x", SPOP_T_UINT32, 16380, ""), SPOP_ST_BAD_VSN);
	assert_int_equal(hello_status("", SPOP_T_UINT32, 16380, ""), SPOP_ST_BAD_VSN);
	assert_int_equal(hello_status(NULL, SPOP_T_UINT32, 16380, ""), SPOP_ST_NO_VSN);
	assert_int_equal(hello_status("2.0", -1, 0, ""), SPOP_ST_NO_FRAME_SIZE);
	assert_int_equal(hello_status("2.0", SPOP_T_STRING, 0, ""), SPOP_ST_NO_FRAME_SIZE);
	assert_int_equal(hello_status("2.0", SPOP_T_UINT64, 1ULL << 33, ""), SPOP_ST_NO_FRAME_SIZE);
	assert_int_equal(hello_status("2.0", SPOP_T_UINT32, 16380, NULL), SPOP_ST_NO_CAP);
	assert_int_equal(hello_status("2.0", SPOP_T_UINT32, 255, ""), SPOP_ST_BAD_FRAME_SIZE);
	assert_int_equal(hello_status("2.0", SPOP_T_UINT32, 0, ""), SPOP_ST_BAD_FRAME_SIZE);
	/* Malformed KV list. */
	uint8_t bad[] = { 5, 'a', 'b' };
	struct spop_hello h;
	assert_int_equal(spop_parse_hello((struct spop_slice){ bad, sizeof(bad) }, &h), SPOP_ST_INVALID);
}

static void hello_fields(void **st)
{
	(void)st;
	uint8_t b[512];
	struct spop_writer w;
	spop_writer_init(&w, b, sizeof(b));
	put_hello_kv(&w, "2.0", 16380, "pipelining,async");
	struct spop_data t = { .type = SPOP_T_BOOL, .v.b = true };
	spop_put_name(&w, "healthcheck", 11);
	spop_put_data(&w, &t);
	spop_put_kv_str(&w, "engine-id", "E1", 2);
	spop_put_kv_str(&w, "x-unknown", "ignored", 7);
	struct spop_hello h;
	assert_int_equal(spop_parse_hello((struct spop_slice){ b, (size_t)(w.p - b) }, &h), SPOP_ST_OK);
	assert_int_equal(h.max_frame_size, 16380);
	assert_true(h.healthcheck);
	assert_true(SPOP_SLICE_IS(h.engine_id, "E1"));
	assert_int_equal(spop_parse_caps(h.caps), SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC);
}

static void caps_parsing_and_printing(void **st)
{
	(void)st;
	struct spop_slice s = { (const uint8_t *)" pipelining , async,fragmentation, foo,,", 40 };
	assert_int_equal(spop_parse_caps(s), SPOP_CAP_PIPELINING | SPOP_CAP_ASYNC | SPOP_CAP_FRAGMENTATION);
	s = (struct spop_slice){ (const uint8_t *)"pipelininga,asyn", 16 };
	assert_int_equal(spop_parse_caps(s), 0);
	char out[64];
	assert_int_equal(spop_caps_string(SPOP_CAP_ASYNC | SPOP_CAP_PIPELINING, out, sizeof(out)), 16);
	assert_string_equal(out, "pipelining,async");
	assert_int_equal(spop_caps_string(0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

static void messages_and_args(void **st)
{
	(void)st;
	uint8_t b[512];
	struct spop_writer w;
	spop_writer_init(&w, b, sizeof(b));
	spop_put_name(&w, "archestra-req", 13);
	spop_put_u8(&w, 2);
	struct spop_data s = { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"POST", 4 } };
	struct spop_data n = { .type = SPOP_T_NULL };
	spop_put_name(&w, "method", 6);
	spop_put_data(&w, &s);
	spop_put_name(&w, "query", 5);
	spop_put_data(&w, &n);
	spop_put_name(&w, "other", 5);
	spop_put_u8(&w, 0);
	struct spop_reader r = { b, w.p };
	struct spop_msg m;
	assert_int_equal(spop_next_msg(&r, &m), 1);
	assert_true(SPOP_SLICE_IS(m.name, "archestra-req"));
	assert_int_equal(m.nargs, 2);
	const struct spop_data *a = SPOP_MSG_ARG(&m, "method");
	assert_non_null(a);
	assert_true(SPOP_SLICE_IS(a->v.s, "POST"));
	assert_int_equal(SPOP_MSG_ARG(&m, "query")->type, SPOP_T_NULL);
	assert_null(SPOP_MSG_ARG(&m, "body"));
	assert_int_equal(spop_next_msg(&r, &m), 1);
	assert_true(SPOP_SLICE_IS(m.name, "other"));
	assert_int_equal(m.nargs, 0);
	assert_int_equal(spop_next_msg(&r, &m), 0);

	/* Truncated anywhere inside the first message: malformed. */
	size_t first = 13 + 1 + 1 + 7 + 6 + 6 + 1; /* up to the end of "query" NULL */
	for (size_t k = 1; k < first; k++) {
		struct spop_reader t = { b, b + k };
		assert_int_equal(spop_next_msg(&t, &m), -1);
	}
	/* nb-args larger than what follows. */
	uint8_t more[] = { 1, 'm', 3, 1, 'a', 0 };
	struct spop_reader t = { more, more + sizeof(more) };
	assert_int_equal(spop_next_msg(&t, &m), -1);
}

static void writer_overflow_and_frame_size(void **st)
{
	(void)st;
	uint8_t b[64];
	struct spop_writer w;
	spop_writer_init(&w, b, 12);
	spop_frame_begin(&w, SPOP_FRM_ACK, SPOP_FL_FIN, 1, 1);
	assert_false(w.overflow);
	spop_put_raw(&w, "abcdef", 6);
	assert_true(w.overflow);
	assert_int_equal(spop_frame_end(&w, UINT32_MAX), 0);

	/* Exact fit works. */
	spop_writer_init(&w, b, 11 + 6);
	spop_frame_begin(&w, SPOP_FRM_ACK, SPOP_FL_FIN, 1, 1);
	spop_put_raw(&w, "abcdef", 6);
	assert_false(w.overflow);
	size_t n = spop_frame_end(&w, UINT32_MAX);
	assert_int_equal(n, 17);
	assert_int_equal(spop_read_len(b), 13);

	/* The frame must also fit the negotiated max-frame-size. */
	spop_writer_init(&w, b, sizeof(b));
	spop_frame_begin(&w, SPOP_FRM_ACK, SPOP_FL_FIN, 1, 1);
	spop_put_raw(&w, "abcdef", 6);
	assert_int_equal(spop_frame_end(&w, 12), 0);
	assert_int_equal(spop_frame_end(&w, 13), 17);
}

static void agent_frames_round_trip(void **st)
{
	(void)st;
	uint8_t b[256];
	size_t n = spop_encode_agent_hello(b, sizeof(b), 16380, SPOP_CAP_PIPELINING);
	assert_true(n > 0);
	struct spop_frame f;
	assert_int_equal(spop_parse_frame(b + 4, n - 4, &f), 0);
	assert_int_equal(f.type, SPOP_FRM_AGENT_HELLO);
	assert_int_equal(f.flags, SPOP_FL_FIN);
	struct spop_reader r = { f.payload.ptr, f.payload.ptr + f.payload.len };
	struct spop_kv kv;
	assert_int_equal(spop_get_kv(&r, &kv), 0);
	assert_true(SPOP_SLICE_IS(kv.name, "version") && SPOP_SLICE_IS(kv.val.v.s, "2.0"));
	assert_int_equal(spop_get_kv(&r, &kv), 0);
	assert_true(SPOP_SLICE_IS(kv.name, "max-frame-size") && kv.val.type == SPOP_T_UINT32 && kv.val.v.u == 16380);
	assert_int_equal(spop_get_kv(&r, &kv), 0);
	assert_true(SPOP_SLICE_IS(kv.name, "capabilities") && SPOP_SLICE_IS(kv.val.v.s, "pipelining"));
	assert_ptr_equal(r.p, r.end);

	n = spop_encode_disconnect(b, sizeof(b), SPOP_ST_TOO_BIG, "frame is too big");
	assert_int_equal(spop_parse_frame(b + 4, n - 4, &f), 0);
	assert_int_equal(disconnect_status(&f), SPOP_ST_TOO_BIG);
	assert_int_equal(spop_encode_disconnect(b, 10, SPOP_ST_OK, "x"), 0);
}

static void set_var_bytes(void **st)
{
	(void)st;
	uint8_t b[64];
	struct spop_writer w;
	spop_writer_init(&w, b, sizeof(b));
	struct spop_data v = { .type = SPOP_T_STRING, .v.s = { (const uint8_t *)"allow", 5 } };
	spop_put_set_var(&w, SPOP_SCOPE_TXN, "verdict", 7, &v);
	static const uint8_t want[] = "\x01\x03\x02\x07verdict\x08\x05" "allow";
	assert_int_equal(w.p - b, sizeof(want) - 1);
	assert_memory_equal(b, want, sizeof(want) - 1);
	spop_writer_init(&w, b, sizeof(b));
	spop_put_unset_var(&w, SPOP_SCOPE_RES, "x", 1);
	assert_memory_equal(b, "\x02\x02\x04\x01x", 5);
	for (int sc = SPOP_SCOPE_PROC; sc <= SPOP_SCOPE_RES; sc++) {
		spop_writer_init(&w, b, sizeof(b));
		spop_put_set_var(&w, (enum spop_scope)sc, "v", 1, &v);
		assert_int_equal(b[2], sc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(varint_round_trip_at_boundaries),
		cmocka_unit_test(varint_known_bytes),
		cmocka_unit_test(varint_rejects_overflow_and_no_room),
		cmocka_unit_test(data_round_trip_every_type),
		cmocka_unit_test(data_rejects_reserved_types_and_overruns),
		cmocka_unit_test(frame_metadata),
		cmocka_unit_test(hello_statuses),
		cmocka_unit_test(hello_fields),
		cmocka_unit_test(caps_parsing_and_printing),
		cmocka_unit_test(messages_and_args),
		cmocka_unit_test(writer_overflow_and_frame_size),
		cmocka_unit_test(agent_frames_round_trip),
		cmocka_unit_test(set_var_bytes),
	};
	return cmocka_run_group_tests_name("spop", tests, NULL, NULL);
}
