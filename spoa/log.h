/* log.h: one line per event on stderr, key=value, written with a single write(2)
 * so lines from several threads never interleave. Never pass a secret.
 *
 * It includes nothing of the agent's, so any module may log. The levels are
 * LL_*: <syslog.h> defines LOG_ERR, LOG_INFO, LOG_DEBUG... as macros. */
#ifndef SPOA_LOG_H
#define SPOA_LOG_H

#include <stddef.h>

enum log_level { LL_ERROR = 0, LL_WARN, LL_INFO, LL_DEBUG };

extern enum log_level log_threshold;

/* "error", "warn", "info", "debug": by level, then NULL. */
extern const char *const log_level_names[];
/* 0 with *out set, or -1 when s names no level. */
int log_level_parse(const char *s, enum log_level *out);
/* The level's name ("info" for a value that is none). */
const char *log_level_name(enum log_level l);

#define log_enabled(l) ((l) <= log_threshold)

/* Writes "ts=... level=L event=EVENT " followed by fmt. */
void log_event(enum log_level l, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies s into dst (NUL-terminated) with '"' and '\\' escaped and control bytes
 * dropped, so a value can sit inside key="..." without breaking the line. */
const char *log_quote(const char *s, char *dst, size_t room);

#define LOG(l, event, ...) do { if (log_enabled(l)) log_event((l), (event), __VA_ARGS__); } while (0)

#endif
