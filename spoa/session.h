/* session.h: one SPOP connection's protocol state machine.
 *
 * Pure: bytes in, bytes out, no sockets, no clock. The I/O shell feeds whatever it
 * read; the session consumes every complete frame, appends its replies (AGENT-HELLO,
 * ACKs, AGENT-DISCONNECT) to `out`, and says when the connection must close once
 * `out` is written. Because it is pure it is unit-tested and fuzzed as a whole.
 */
#ifndef SPOA_SESSION_H
#define SPOA_SESSION_H

#include <stdbool.h>

#include "buf.h"
#include "spop.h"

struct spoa_handlers;   /* handler.h */

struct session_cfg {
	uint32_t max_frame_size;     /* the agent's ceiling; also the limit before HELLO */
	unsigned caps;               /* capabilities the agent is willing to use */
	size_t max_reassembled;      /* bound on a fragmented NOTIFY payload */
	const struct spoa_handlers *handlers;
};

enum session_state {
	SESS_HELLO,    /* waiting for HAPROXY-HELLO */
	SESS_READY,    /* handshake done, NOTIFY frames flow */
	SESS_CLOSING,  /* write out what is queued, then close */
};

struct session {
	const struct session_cfg *cfg;
	enum session_state state;
	uint32_t max_frame;          /* in force: cfg's before HELLO, negotiated after */
	unsigned caps;               /* negotiated */
	bool healthcheck;
	bool peer_disconnected;      /* HAProxy said HAPROXY-DISCONNECT */
	enum spop_status status;     /* why we close (SPOP_ST_OK for a normal close) */
	const char *detail;          /* static text for logs, may be NULL */

	/* A fragmented NOTIFY being reassembled; frag_buf is owned (session_free). */
	bool frag_active;
	uint64_t frag_sid, frag_fid;
	struct buf frag_buf;

	uint64_t notifies;
	uint64_t unhandled;          /* messages no handler knew */
};

void session_init(struct session *s, const struct session_cfg *cfg);
void session_free(struct session *s);

/* Consumes complete frames from in[0, len) and appends replies to out. Returns the
 * bytes consumed (a trailing partial frame is left for the next call). Stops early
 * once the session is SESS_CLOSING. */
size_t session_feed(struct session *s, const uint8_t *in, size_t len, struct buf *out);

/* Queues AGENT-DISCONNECT with `status` and moves to SESS_CLOSING (timeouts,
 * shutdown: decided by the shell). */
void session_disconnect(struct session *s, struct buf *out, enum spop_status status, const char *detail);

/* Bytes the next frame needs in total (prefix included), given what is buffered;
 * 0 when the length prefix itself is incomplete. Lets the shell size its buffer. */
size_t session_frame_need(const uint8_t *in, size_t len);

#endif
