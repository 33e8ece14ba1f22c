/* meter.h: the record HAProxy writes at the end of every call, for the agents to
 * count what the decision could not know yet: the upstream status, the duration
 * and the tokens the response reported. Pure.
 *
 * haproxy.cfg's frontend sends each call's log line, RFC 5424 with this
 * structured-data element, to the agents' meter address over UDP; every agent
 * (every worker) binds that address with SO_REUSEPORT, so each line reaches one
 * of them, and a dead agent's share goes to the live ones:
 *
 *   <134>1 TIMESTAMP HOST haproxy PID - [archestra@32473 p="openai" m="gpt-4o" ...] msg
 *
 * Parameters (haproxy.cfg's log-format-sd names them; "-" or "" is absent):
 *   p provider  m model  a agent id  u user id  k key id  v verdict
 *   s HTTP status to the client (%ST)  us the provider's status (before any
 *   refusal of the response replaced it)  ta total time, ms (%Ta)  st stream ("1")
 *   tf a stream's time to its first byte of body, ms (archestra.lua)
 *   b  the budgets and rate limits the call is charged to (budget.h)
 *   u_in u_out u_cr u_cw u_rs  the raw usage counts (usage.h)
 * Unknown parameters are ignored; a repeated one, a value with an escape or a
 * record without ours is refused whole. */
#ifndef SPOA_METER_H
#define SPOA_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "usage.h"

#define METER_SDID "archestra@32473"
#define METER_MAX  4096   /* a longer datagram is not ours */

enum meter_field {
	MF_PROVIDER, MF_MODEL, MF_AGENT, MF_USER, MF_KEY, MF_VERDICT, MF_STATUS, MF_UP_STATUS, MF_TOTAL_MS, MF_STREAM, MF_TTFT_MS, MF_BUDGET,
	MF_U0,                       /* MF_U0 + enum usage_field */
	MF_COUNT = MF_U0 + UF_COUNT
};

/* By enum meter_field: the parameter names. */
extern const char *const meter_param_names[MF_COUNT];

struct meter_rec {
	struct spop_slice v[MF_COUNT];   /* slices of the datagram; len 0: absent */
};

/* Reads one datagram. Returns 0, or -1 when it is not a well-formed RFC 5424
 * line carrying exactly one METER_SDID element. */
int meter_parse(const char *d, size_t len, struct meter_rec *r);

/* A count: 1 to 15 decimal digits, nothing else. -1 when absent or not one. */
int64_t meter_int(struct spop_slice v);

#endif
