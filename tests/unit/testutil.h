/* testutil.h: small helpers shared by the cmocka unit tests. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "spop.h"

/* A C string as a slice (without its NUL); NULL is the empty slice. */
static inline struct spop_slice S(const char *s)
{
	return (struct spop_slice){ (const uint8_t *)s, s ? strlen(s) : 0 };
}

/* Builds one frame into b with the codec's writer; `body` fills the payload. */
#define BUILD_FRAME(b, type, flags, sid, fid, ...)                                    \
	do {                                                                           \
		struct spop_writer w_;                                                 \
		uint8_t *p_ = buf_reserve((b), 65536);                                 \
		assert_non_null(p_);                                                   \
		spop_writer_init(&w_, p_, 65536);                                      \
		spop_frame_begin(&w_, (type), (flags), (sid), (fid));                  \
		{ struct spop_writer *w = &w_; (void)w; __VA_ARGS__; }                      \
		size_t n_ = spop_frame_end(&w_, UINT32_MAX);                           \
		assert_true(n_ > 0);                                                   \
		(b)->len += n_;                                                        \
	} while (0)

static inline void put_hello_kv(struct spop_writer *w, const char *versions, uint32_t mfs, const char *caps)
{
	if (versions)
		spop_put_kv_str(w, "supported-versions", versions, strlen(versions));
	spop_put_kv_u32(w, "max-frame-size", mfs);
	if (caps)
		spop_put_kv_str(w, "capabilities", caps, strlen(caps));
}

/* Reads the frame at *off in out; returns 0, or -1 at the end. */
static inline int next_frame(const struct buf *out, size_t *off, struct spop_frame *f)
{
	if (*off + SPOP_LEN_PREFIX > out->len)
		return -1;
	uint32_t len = spop_read_len(out->data + *off);
	assert_true(*off + SPOP_LEN_PREFIX + len <= out->len);
	assert_int_equal(spop_parse_frame(out->data + *off + SPOP_LEN_PREFIX, len, f), 0);
	*off += SPOP_LEN_PREFIX + len;
	return 0;
}

/* Status code of an AGENT-DISCONNECT frame. */
static inline uint32_t disconnect_status(const struct spop_frame *f)
{
	struct spop_disconnect d;
	assert_int_equal(f->type, SPOP_FRM_AGENT_DISCONNECT);
	assert_true(f->flags & SPOP_FL_FIN);
	assert_int_equal(f->stream_id, 0);
	assert_int_equal(f->frame_id, 0);
	assert_int_equal(spop_parse_disconnect(f->payload, &d), 0);
	assert_true(d.message.len > 0);
	return d.status;
}

#endif
