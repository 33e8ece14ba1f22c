/* errjson.h: error bodies shaped like each provider's own, so client SDKs show
 * the agent's refusals the way they show the provider's. Pure. */
#ifndef SPOA_ERRJSON_H
#define SPOA_ERRJSON_H

#include <stddef.h>

enum err_shape { SHAPE_OPENAI = 0, SHAPE_ANTHROPIC, SHAPE_GEMINI, SHAPE_COHERE, SHAPE_BEDROCK, SHAPE_COUNT };

/* Writes the JSON error for `status` into dst (NUL-terminated). `code` is the
 * machine-readable reason, `msg` the human text (escaped here). Returns the
 * length, or 0 when it does not fit. */
size_t errjson_format(enum err_shape shape, int status, const char *code, const char *msg,
                      char *dst, size_t room);

/* Escapes s as the inside of a JSON string. Returns the length written, or 0
 * (with dst empty) when it does not fit. */
size_t json_escape(const char *s, size_t n, char *dst, size_t room);

extern const char *const errjson_shape_names[];   /* by enum err_shape, then NULL: "openai", ... */

#endif
