/* log.h: one line per event on stderr, key=value, written with a single write(2)
 * so lines from several threads never interleave. Never pass a secret. */
#ifndef SPOA_LOG_H
#define SPOA_LOG_H

#include "config.h"

extern enum log_level log_threshold;

#define log_enabled(l) ((l) <= log_threshold)

/* Writes "ts=... level=L event=EVENT " followed by fmt. */
void log_event(enum log_level l, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies s into dst (NUL-terminated) with '"' and '\\' escaped and control bytes
 * dropped, so a value can sit inside key="..." without breaking the line. */
const char *log_quote(const char *s, char *dst, size_t room);

#define LOG(l, event, ...) do { if (log_enabled(l)) log_event((l), (event), __VA_ARGS__); } while (0)

#endif
