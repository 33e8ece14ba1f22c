/* errjson.c: see errjson.h. */
#include "errjson.h"

#include <stdio.h>
#include <string.h>

size_t json_escape(const char *s, size_t n, char *dst, size_t room)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc = 0;
		switch (c) {
		case '"': esc = '"'; break;
		case '\\': esc = '\\'; break;
		case '\n': esc = 'n'; break;
		case '\r': esc = 'r'; break;
		case '\t': esc = 't'; break;
		default: break;
		}
		size_t need = esc ? 2 : (c < 0x20 || c == 0x7f) ? 6 : 1;
		if (o + need >= room) {
			if (room)
				dst[0] = '\0';
			return 0;
		}
		if (esc) {
			dst[o++] = '\\';
			dst[o++] = esc;
		} else if (need == 6) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex[c >> 4];
			dst[o + 5] = hex[c & 15];
			o += 6;
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
	return o;
}

struct kind { int status; const char *openai, *anthropic, *gemini; };

/* Error types as each provider names them for the statuses the agent returns. */
static const struct kind kinds[] = {
	{ 400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT" },
	{ 401, "authentication_error", "authentication_error", "UNAUTHENTICATED" },
	{ 402, "insufficient_quota", "billing_error", "RESOURCE_EXHAUSTED" },
	{ 403, "permission_error", "permission_error", "PERMISSION_DENIED" },
	{ 404, "invalid_request_error", "not_found_error", "NOT_FOUND" },
	{ 413, "invalid_request_error", "request_too_large", "INVALID_ARGUMENT" },
	{ 429, "rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED" },
	{ 500, "server_error", "api_error", "INTERNAL" },
	{ 502, "server_error", "api_error", "UNAVAILABLE" },
	{ 503, "server_error", "overloaded_error", "UNAVAILABLE" },
};

size_t errjson_format(enum err_shape shape, int status, const char *code, const char *msg,
                      char *dst, size_t room)
{
	const struct kind *k = &kinds[7]; /* 500 */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].status == status)
			k = &kinds[i];
	char m[512], c[96];
	if (!json_escape(msg, strlen(msg), m, sizeof(m)) && *msg)
		snprintf(m, sizeof(m), "request refused");
	if (!json_escape(code, strlen(code), c, sizeof(c)) && *code)
		snprintf(c, sizeof(c), "refused");
	int n;
	switch (shape) {
	case SHAPE_ANTHROPIC:
		n = snprintf(dst, room, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
		             k->anthropic, m);
		break;
	case SHAPE_GEMINI:
		n = snprintf(dst, room, "{\"error\":{\"code\":%d,\"message\":\"%s\",\"status\":\"%s\"}}", status, m,
		             k->gemini);
		break;
	case SHAPE_BEDROCK: /* AWS's JSON errors: a message (the type goes in a header) */
		n = snprintf(dst, room, "{\"message\":\"%s\",\"code\":\"%s\"}", m, c);
		break;
	case SHAPE_COHERE: /* Cohere's errors are a message; its SDKs show it */
		n = snprintf(dst, room, "{\"id\":\"archestra-%s\",\"message\":\"%s\",\"code\":\"%s\"}", c, m, c);
		break;
	default:
		n = snprintf(dst, room,
		             "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}", m,
		             k->openai, c);
		break;
	}
	if (n < 0 || (size_t)n >= room) {
		if (room)
			dst[0] = '\0';
		return 0;
	}
	return (size_t)n;
}

const char *const errjson_shape_names[] = { [SHAPE_OPENAI] = "openai", [SHAPE_ANTHROPIC] = "anthropic",
                                          [SHAPE_GEMINI] = "gemini", [SHAPE_COHERE] = "cohere",
                                          [SHAPE_BEDROCK] = "bedrock", NULL };
