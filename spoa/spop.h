/* spop.h: SPOP 2.0 codec (HAProxy's Stream Processing Offload Protocol).
 *
 * Pure: no I/O, no allocation. Decoders read from a bounded cursor and hand back
 * slices that point into the caller's frame buffer; encoders write into a bounded
 * writer that records overflow instead of writing past its end.
 *
 * Wire facts (SPOE.txt section 3, and HAProxy's own encoder where the text is vague):
 *   frame   = <LENGTH:4 BE> <TYPE:1> <FLAGS:4 BE> <STREAM-ID:varint> <FRAME-ID:varint> <PAYLOAD>
 *   names   = <LEN:varint><BYTES> (KV names, message names, variable names: no type byte)
 *   values  = <TYPE:low 4 bits | FLAGS:high 4 bits> <DATA>
 *   max-frame-size counts the frame without its 4-byte length prefix.
 */
#ifndef SPOP_H
#define SPOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOP_LEN_PREFIX     4
#define SPOP_MIN_FRAME_SIZE 256
#define SPOP_MIN_FRAME_HDR  7   /* type + flags + 1-byte stream-id + 1-byte frame-id */
#define SPOP_VARINT_MAX     10  /* bytes for UINT64_MAX */
#define SPOP_MAX_ARGS       255 /* NB-ARGS is one byte */

enum spop_frame_type {
	SPOP_FRM_UNSET              = 0,
	SPOP_FRM_HAPROXY_HELLO      = 1,
	SPOP_FRM_HAPROXY_DISCONNECT = 2,
	SPOP_FRM_NOTIFY             = 3,
	SPOP_FRM_AGENT_HELLO        = 101,
	SPOP_FRM_AGENT_DISCONNECT   = 102,
	SPOP_FRM_ACK                = 103,
};

#define SPOP_FL_FIN   0x00000001u
#define SPOP_FL_ABORT 0x00000002u

enum spop_type {
	SPOP_T_NULL = 0, SPOP_T_BOOL, SPOP_T_INT32, SPOP_T_UINT32, SPOP_T_INT64,
	SPOP_T_UINT64, SPOP_T_IPV4, SPOP_T_IPV6, SPOP_T_STRING, SPOP_T_BINARY,
};
#define SPOP_T_MASK    0x0f
#define SPOP_FL_TRUE   0x10

/* Status codes of HAPROXY-DISCONNECT / AGENT-DISCONNECT (SPOE.txt 3.5). */
enum spop_status {
	SPOP_ST_OK               = 0,
	SPOP_ST_IO               = 1,
	SPOP_ST_TIMEOUT          = 2,
	SPOP_ST_TOO_BIG          = 3,
	SPOP_ST_INVALID          = 4,
	SPOP_ST_NO_VSN           = 5,
	SPOP_ST_NO_FRAME_SIZE    = 6,
	SPOP_ST_NO_CAP           = 7,
	SPOP_ST_BAD_VSN          = 8,
	SPOP_ST_BAD_FRAME_SIZE   = 9,
	SPOP_ST_FRAG_UNSUPPORTED = 10,
	SPOP_ST_INTERLACED       = 11,
	SPOP_ST_FRAMEID_NOTFOUND = 12,
	SPOP_ST_RES              = 13,
	SPOP_ST_UNKNOWN          = 99,
};

enum spop_scope {
	SPOP_SCOPE_PROC = 0, SPOP_SCOPE_SESS, SPOP_SCOPE_TXN, SPOP_SCOPE_REQ, SPOP_SCOPE_RES,
};

enum spop_action_type { SPOP_ACT_SET_VAR = 1, SPOP_ACT_UNSET_VAR = 2 };

/* Capabilities, as a bit set. */
#define SPOP_CAP_PIPELINING    0x1u
#define SPOP_CAP_ASYNC         0x2u
#define SPOP_CAP_FRAGMENTATION 0x4u

/* A borrowed view of bytes; never owns them. */
struct spop_slice {
	const uint8_t *ptr;
	size_t len;
};

static inline bool spop_slice_eq(struct spop_slice s, const char *lit, size_t n)
{
	return s.len == n && (n == 0 || __builtin_memcmp(s.ptr, lit, n) == 0);
}
#define SPOP_SLICE_IS(s, lit) spop_slice_eq((s), (lit), sizeof(lit) - 1)

struct spop_data {
	enum spop_type type;
	union {
		bool b;
		int64_t i;          /* INT32, INT64 */
		uint64_t u;         /* UINT32, UINT64 */
		const uint8_t *ip;  /* IPV4: 4 bytes, IPV6: 16 bytes, network order */
		struct spop_slice s;/* STRING, BINARY */
	} v;
};

struct spop_kv {
	struct spop_slice name;
	struct spop_data val;
};

/* Decoding cursor over [p, end). */
struct spop_reader {
	const uint8_t *p;
	const uint8_t *end;
};

/* Each getter returns 0 and advances, or -1 (truncated or malformed) and leaves
 * the cursor unspecified. */
int spop_get_varint(struct spop_reader *r, uint64_t *out);
int spop_get_name(struct spop_reader *r, struct spop_slice *out);
int spop_get_data(struct spop_reader *r, struct spop_data *out);
int spop_get_kv(struct spop_reader *r, struct spop_kv *out);

/* Encodes v at dst; returns the bytes written, 0 when room is too small. */
size_t spop_put_varint(uint8_t *dst, size_t room, uint64_t v);
size_t spop_varint_len(uint64_t v);

/* Reads the 4-byte big-endian length prefix. */
static inline uint32_t spop_read_len(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t stream_id;
	uint64_t frame_id;
	struct spop_slice payload;
};

/* Parses a frame (without its length prefix). Returns 0, or -1 when the metadata
 * is truncated. */
int spop_parse_frame(const uint8_t *frame, size_t len, struct spop_frame *f);

/* HAPROXY-HELLO payload. */
struct spop_hello {
	struct spop_slice versions;
	struct spop_slice caps;
	struct spop_slice engine_id;
	uint32_t max_frame_size;
	bool healthcheck;
};

/* Decodes and checks a HAPROXY-HELLO KV list; returns SPOP_ST_OK or the status
 * the agent must disconnect with. Unknown keys are ignored. */
enum spop_status spop_parse_hello(struct spop_slice payload, struct spop_hello *h);

/* Does a comma-separated "Major.Minor" list (spaces ignored) include SPOP 2.x? */
bool spop_version_supported(struct spop_slice versions);

/* Comma-separated capability names (spaces ignored, unknown ones skipped) to a bit set. */
unsigned spop_parse_caps(struct spop_slice caps);

/* HAPROXY-DISCONNECT payload (both keys optional on read: we reply either way). */
struct spop_disconnect {
	uint32_t status;
	struct spop_slice message;
};
int spop_parse_disconnect(struct spop_slice payload, struct spop_disconnect *d);

/* One message of a NOTIFY payload, its arguments decoded as slices of the frame. */
struct spop_msg {
	struct spop_slice name;
	unsigned nargs;
	struct spop_kv args[SPOP_MAX_ARGS];
};

/* Decodes the next message of a LIST-OF-MESSAGES. Returns 1 with *m filled, 0 at
 * the end of the list, -1 when malformed. */
int spop_next_msg(struct spop_reader *r, struct spop_msg *m);

/* STRING or BINARY. */
static inline bool spop_data_is_text(const struct spop_data *d)
{
	return d && (d->type == SPOP_T_STRING || d->type == SPOP_T_BINARY);
}

/* Any integer type, clamped into int64. */
static inline bool spop_data_as_int(const struct spop_data *d, int64_t *out)
{
	if (!d)
		return false;
	if (d->type == SPOP_T_INT32 || d->type == SPOP_T_INT64)
		*out = d->v.i;
	else if (d->type == SPOP_T_UINT32 || d->type == SPOP_T_UINT64)
		*out = d->v.u > INT64_MAX ? INT64_MAX : (int64_t)d->v.u;
	else
		return false;
	return true;
}

/* Finds an argument by name; NULL when absent. */
const struct spop_data *spop_msg_arg(const struct spop_msg *m, const char *name, size_t n);
#define SPOP_MSG_ARG(m, lit) spop_msg_arg((m), (lit), sizeof(lit) - 1)

/* ---- encoding ---- */

/* Bounded writer: once something did not fit, `overflow` stays set and further
 * writes are dropped, so callers check once at the end. */
struct spop_writer {
	uint8_t *start;
	uint8_t *p;
	uint8_t *end;
	uint8_t *frame;  /* start of the frame being built (its length prefix) */
	bool overflow;
};

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t room);
void spop_put_u8(struct spop_writer *w, uint8_t v);
void spop_put_raw(struct spop_writer *w, const void *src, size_t n);
void spop_put_vint(struct spop_writer *w, uint64_t v);
void spop_put_name(struct spop_writer *w, const void *s, size_t n);
void spop_put_data(struct spop_writer *w, const struct spop_data *d);
void spop_put_kv_str(struct spop_writer *w, const char *name, const void *s, size_t n);
void spop_put_kv_u32(struct spop_writer *w, const char *name, uint32_t v);

/* Starts a frame: reserves the length prefix and writes the metadata. */
void spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id);
/* Finishes the frame begun last: patches its length. Returns the frame's size
 * with its prefix, or 0 on overflow or when it exceeds max_frame_size. */
size_t spop_frame_end(struct spop_writer *w, uint32_t max_frame_size);

/* Actions of an ACK payload. */
void spop_put_set_var(struct spop_writer *w, enum spop_scope scope,
                      const char *name, size_t name_len, const struct spop_data *val);
/* set-var with a STRING value made of two pieces, written without joining them. */
void spop_put_set_var_str2(struct spop_writer *w, enum spop_scope scope, const char *name, size_t name_len,
                           const void *a, size_t alen, const void *b, size_t blen);
void spop_put_unset_var(struct spop_writer *w, enum spop_scope scope,
                        const char *name, size_t name_len);

/* Whole frames the agent sends. Each returns the bytes written (prefix included),
 * or 0 when they did not fit. */
size_t spop_encode_agent_hello(uint8_t *dst, size_t room, uint32_t max_frame_size, unsigned caps);
size_t spop_encode_disconnect(uint8_t *dst, size_t room, enum spop_status status, const char *msg);

/* The capability list the agent announces, e.g. "pipelining,async". Returns its length. */
size_t spop_caps_string(unsigned caps, char *dst, size_t room);

/* Human text for a status code (never NULL). */
const char *spop_status_text(enum spop_status st);

#endif
