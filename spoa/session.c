/* session.c: SPOP connection state machine. See session.h. */
#include "session.h"

#include <stdio.h>
#include <string.h>

#include "handler.h"

/* Room reserved in `out` for one ACK before handlers write into it; an ACK can
 * never be larger than the negotiated max-frame-size. */
#define ACK_ROOM(s) ((size_t)(s)->max_frame + SPOP_LEN_PREFIX)

void session_init(struct session *s, const struct session_cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->state = SESS_HELLO;
	s->max_frame = cfg->max_frame_size;
}

void session_free(struct session *s)
{
	buf_free(&s->frag_buf);
	s->frag_active = false;
}

size_t session_frame_need(const uint8_t *in, size_t len)
{
	if (len < SPOP_LEN_PREFIX)
		return 0;
	return SPOP_LEN_PREFIX + (size_t)spop_read_len(in);
}

void session_disconnect(struct session *s, struct buf *out, enum spop_status status, const char *detail)
{
	if (s->state == SESS_CLOSING)
		return;
	char msg[160];
	if (detail)
		snprintf(msg, sizeof(msg), "%s: %s", spop_status_text(status), detail);
	else
		snprintf(msg, sizeof(msg), "%s", spop_status_text(status));
	uint8_t *p = buf_reserve(out, sizeof(msg) + 64);
	if (p)
		out->len += spop_encode_disconnect(p, sizeof(msg) + 64, status, msg);
	s->state = SESS_CLOSING;
	s->status = status;
	s->detail = detail;
	session_free(s);
}

static void on_hello(struct session *s, const struct spop_frame *f, struct buf *out)
{
	if (!(f->flags & SPOP_FL_FIN)) {
		session_disconnect(s, out, SPOP_ST_FRAG_UNSUPPORTED, "HAPROXY-HELLO cannot be fragmented");
		return;
	}
	if (f->stream_id || f->frame_id) {
		session_disconnect(s, out, SPOP_ST_INVALID, "HAPROXY-HELLO with non-zero stream-id/frame-id");
		return;
	}
	struct spop_hello h;
	enum spop_status st = spop_parse_hello(f->payload, &h);
	if (st != SPOP_ST_OK) {
		session_disconnect(s, out, st, "in HAPROXY-HELLO");
		return;
	}
	/* Never above what HAProxy offers; announce only capabilities it offered. */
	if (h.max_frame_size < s->max_frame)
		s->max_frame = h.max_frame_size;
	s->caps = spop_parse_caps(h.caps) & s->cfg->caps;
	s->healthcheck = h.healthcheck;

	uint8_t *p = buf_reserve(out, 128);
	if (!p) {
		s->state = SESS_CLOSING;
		s->status = SPOP_ST_RES;
		return;
	}
	out->len += spop_encode_agent_hello(p, 128, s->max_frame, s->caps);
	if (h.healthcheck) {
		/* SPOE.txt 3.2.5: after a health check the agent may just close. */
		s->state = SESS_CLOSING;
		s->status = SPOP_ST_OK;
		s->detail = "healthcheck";
		return;
	}
	s->state = SESS_READY;
}

/* Answers one complete NOTIFY payload with its ACK. */
static void on_notify(struct session *s, uint64_t sid, uint64_t fid, struct spop_slice payload, struct buf *out)
{
	if (!buf_reserve(out, ACK_ROOM(s))) {
		session_disconnect(s, out, SPOP_ST_RES, "no memory for the ACK");
		return;
	}
	struct spop_writer w;
	struct spop_reader r = { payload.ptr, payload.ptr + payload.len };
	struct spop_msg m;
	int rc;

	spop_writer_init(&w, out->data + out->len, out->cap - out->len);
	spop_frame_begin(&w, SPOP_FRM_ACK, SPOP_FL_FIN, sid, fid);
	uint8_t *actions = w.p;
	while ((rc = spop_next_msg(&r, &m)) == 1)
		if (!spoa_dispatch(s->cfg->handlers, &m, &w))
			s->unhandled++;
	if (rc < 0) {
		session_disconnect(s, out, SPOP_ST_INVALID, "malformed NOTIFY payload");
		return;
	}
	size_t n = spop_frame_end(&w, s->max_frame);
	if (n == 0) {
		/* The actions outgrew the frame size: still ACK, without them, so the
		 * stream does not wait for a timeout. */
		w.p = actions;
		w.overflow = false;
		n = spop_frame_end(&w, s->max_frame);
	}
	out->len += n;
	s->notifies++;
}

static void on_fragment(struct session *s, const struct spop_frame *f, struct buf *out)
{
	if (!(s->caps & SPOP_CAP_FRAGMENTATION)) {
		session_disconnect(s, out, SPOP_ST_FRAG_UNSUPPORTED, "fragmentation was not negotiated");
		return;
	}
	if (!s->frag_active || f->stream_id != s->frag_sid || f->frame_id != s->frag_fid) {
		session_disconnect(s, out, SPOP_ST_FRAMEID_NOTFOUND, "continuation of no fragmented frame");
		return;
	}
	if (f->flags & SPOP_FL_ABORT) {
		s->frag_active = false;
		s->frag_buf.len = 0;
		return;
	}
	if (f->payload.len > s->cfg->max_reassembled - s->frag_buf.len) {
		session_disconnect(s, out, SPOP_ST_TOO_BIG, "reassembled payload too big");
		return;
	}
	if (buf_append(&s->frag_buf, f->payload.ptr, f->payload.len) < 0) {
		session_disconnect(s, out, SPOP_ST_RES, "no memory for reassembly");
		return;
	}
	if (f->flags & SPOP_FL_FIN) {
		s->frag_active = false;
		struct spop_slice whole = { s->frag_buf.data, s->frag_buf.len };
		on_notify(s, s->frag_sid, s->frag_fid, whole, out);
		s->frag_buf.len = 0;
	}
}

static void on_notify_frame(struct session *s, const struct spop_frame *f, struct buf *out)
{
	if (s->frag_active) {
		session_disconnect(s, out, SPOP_ST_INTERLACED, "NOTIFY while a fragmented frame is in progress");
		return;
	}
	if (f->flags & SPOP_FL_FIN) {
		on_notify(s, f->stream_id, f->frame_id, f->payload, out);
		return;
	}
	if (!(s->caps & SPOP_CAP_FRAGMENTATION)) {
		session_disconnect(s, out, SPOP_ST_FRAG_UNSUPPORTED, "NOTIFY without FIN");
		return;
	}
	if (f->flags & SPOP_FL_ABORT)
		return; /* aborted before it started: nothing to drop */
	if (f->payload.len > s->cfg->max_reassembled) {
		session_disconnect(s, out, SPOP_ST_TOO_BIG, "reassembled payload too big");
		return;
	}
	s->frag_buf.len = 0;
	if (buf_append(&s->frag_buf, f->payload.ptr, f->payload.len) < 0) {
		session_disconnect(s, out, SPOP_ST_RES, "no memory for reassembly");
		return;
	}
	s->frag_active = true;
	s->frag_sid = f->stream_id;
	s->frag_fid = f->frame_id;
}

static void on_frame(struct session *s, const struct spop_frame *f, struct buf *out)
{
	if (f->type == SPOP_FRM_HAPROXY_DISCONNECT) {
		s->peer_disconnected = true;
		session_disconnect(s, out, SPOP_ST_OK, "HAProxy disconnected");
		return;
	}
	if (s->state == SESS_HELLO) {
		if (f->type == SPOP_FRM_HAPROXY_HELLO)
			on_hello(s, f, out);
		else
			session_disconnect(s, out, SPOP_ST_INVALID, "expected HAPROXY-HELLO first");
		return;
	}
	switch (f->type) {
	case SPOP_FRM_NOTIFY:
		on_notify_frame(s, f, out);
		return;
	case SPOP_FRM_UNSET:
		on_fragment(s, f, out);
		return;
	case SPOP_FRM_HAPROXY_HELLO:
		session_disconnect(s, out, SPOP_ST_INVALID, "second HAPROXY-HELLO");
		return;
	case SPOP_FRM_AGENT_HELLO:
	case SPOP_FRM_AGENT_DISCONNECT:
	case SPOP_FRM_ACK:
		session_disconnect(s, out, SPOP_ST_INVALID, "agent frame type sent to the agent");
		return;
	default:
		return; /* SPOE.txt 3.2.2: unknown frames may be silently skipped */
	}
}

size_t session_feed(struct session *s, const uint8_t *in, size_t len, struct buf *out)
{
	size_t off = 0;
	while (s->state != SESS_CLOSING && len - off >= SPOP_LEN_PREFIX) {
		uint32_t flen = spop_read_len(in + off);
		/* Judge the size from the prefix alone: never wait for a body we refuse. */
		if (flen > s->max_frame) {
			session_disconnect(s, out, SPOP_ST_TOO_BIG, "frame longer than max-frame-size");
			break;
		}
		if (flen < SPOP_MIN_FRAME_HDR) {
			session_disconnect(s, out, SPOP_ST_INVALID, "frame shorter than its metadata");
			break;
		}
		if (len - off - SPOP_LEN_PREFIX < flen)
			break;
		struct spop_frame f;
		if (spop_parse_frame(in + off + SPOP_LEN_PREFIX, flen, &f) < 0) {
			session_disconnect(s, out, SPOP_ST_INVALID, "truncated frame metadata");
			break;
		}
		off += SPOP_LEN_PREFIX + flen;
		on_frame(s, &f, out);
	}
	return off;
}
