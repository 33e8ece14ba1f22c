/* meter.c: see meter.h. */
#include "meter.h"

#include <string.h>

const char *const meter_param_names[MF_COUNT] = {
	[MF_PROVIDER] = "p", [MF_MODEL] = "m", [MF_AGENT] = "a", [MF_USER] = "u", [MF_KEY] = "k",
	[MF_VERDICT] = "v", [MF_STATUS] = "s", [MF_UP_STATUS] = "us", [MF_TOTAL_MS] = "ta", [MF_STREAM] = "st", [MF_TTFT_MS] = "tf",
	[MF_BUDGET] = "b",
	[MF_U0 + UF_IN] = "u_in", [MF_U0 + UF_OUT] = "u_out", [MF_U0 + UF_CACHE_READ] = "u_cr",
	[MF_U0 + UF_CACHE_WRITE] = "u_cw", [MF_U0 + UF_REASONING] = "u_rs",
};

struct cur {
	const char *p, *end;
};

/* RFC 5424 PRINTUSASCII: a header field or an SD-NAME's characters. */
static bool printable(char c)
{
	return c >= 33 && c <= 126;
}

/* One header field up to the next space, which it consumes. */
static bool header_field(struct cur *c)
{
	const char *s = c->p;
	while (c->p < c->end && printable(*c->p))
		c->p++;
	if (c->p == s || c->p >= c->end || *c->p != ' ')
		return false;
	c->p++;
	return true;
}

/* An SD-NAME (an SD-ID or a PARAM-NAME): 1 to 32 of PRINTUSASCII but = SP ] ". */
static bool sd_name(struct cur *c, struct spop_slice *out)
{
	const char *s = c->p;
	while (c->p < c->end && printable(*c->p) && *c->p != '=' && *c->p != ']' && *c->p != '"')
		c->p++;
	size_t n = (size_t)(c->p - s);
	*out = (struct spop_slice){ (const uint8_t *)s, n };
	return n >= 1 && n <= 32;
}

/* A quoted PARAM-VALUE. Escapes (\" \\ \]) are allowed in others' elements,
 * refused in ours (mine): nothing we log needs one. */
static bool sd_value(struct cur *c, bool mine, struct spop_slice *out)
{
	if (c->p >= c->end || *c->p != '"')
		return false;
	const char *s = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\\') {
			if (mine || c->end - c->p < 2)
				return false;
			c->p++;
		} else if (*c->p == ']' && mine) {
			return false;
		}
		c->p++;
	}
	if (c->p >= c->end)
		return false;
	*out = (struct spop_slice){ (const uint8_t *)s, (size_t)(c->p - s) };
	c->p++;
	return true;
}

static bool absent(struct spop_slice v)
{
	return v.len == 0 || (v.len == 1 && v.ptr[0] == '-');
}

int meter_parse(const char *d, size_t len, struct meter_rec *r)
{
	memset(r, 0, sizeof(*r));
	if (len > METER_MAX)
		return -1;
	struct cur c = { d, d + len };
	/* <PRI>1 SP */
	if (c.p >= c.end || *c.p++ != '<')
		return -1;
	int digits = 0;
	while (c.p < c.end && *c.p >= '0' && *c.p <= '9' && digits < 4)
		c.p++, digits++;
	if (digits < 1 || digits > 3 || c.end - c.p < 3 || memcmp(c.p, ">1 ", 3) != 0)
		return -1;
	c.p += 3;
	/* TIMESTAMP HOSTNAME APP-NAME PROCID MSGID */
	for (int f = 0; f < 5; f++)
		if (!header_field(&c))
			return -1;
	if (c.p < c.end && *c.p == '-')
		return -1; /* no structured data */
	bool found = false;
	while (c.p < c.end && *c.p == '[') {
		c.p++;
		struct spop_slice id;
		if (!sd_name(&c, &id))
			return -1;
		bool mine = SPOP_SLICE_IS(id, METER_SDID);
		if (mine && found)
			return -1;
		found |= mine;
		while (c.p < c.end && *c.p == ' ') {
			c.p++;
			struct spop_slice name, val;
			if (!sd_name(&c, &name) || c.p >= c.end || *c.p++ != '=' || !sd_value(&c, mine, &val))
				return -1;
			if (!mine)
				continue;
			for (int f = 0; f < MF_COUNT; f++) {
				if (!spop_slice_eq(name, meter_param_names[f], strlen(meter_param_names[f])))
					continue;
				if (r->v[f].ptr)
					return -1; /* said twice */
				r->v[f] = val;
				if (absent(val))
					r->v[f] = (struct spop_slice){ val.ptr, 0 };
			}
		}
		if (c.p >= c.end || *c.p++ != ']')
			return -1;
	}
	if (!found || (c.p < c.end && *c.p != ' '))
		return -1;
	return 0;
}

int64_t meter_int(struct spop_slice v)
{
	if (v.len == 0 || v.len > 15)
		return -1;
	int64_t x = 0;
	for (size_t i = 0; i < v.len; i++) {
		if (v.ptr[i] < '0' || v.ptr[i] > '9')
			return -1;
		x = x * 10 + (v.ptr[i] - '0');
	}
	return x;
}
