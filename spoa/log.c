/* log.c: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cfgjson.h"

enum log_level log_threshold = LL_INFO;

const char *const log_level_names[] = { [LL_ERROR] = "error", [LL_WARN] = "warn", [LL_INFO] = "info",
                                        [LL_DEBUG] = "debug", NULL };

int log_level_parse(const char *s, enum log_level *out)
{
	int i = cfg_lookup(s, log_level_names);
	if (i < 0)
		return -1;
	*out = (enum log_level)i;
	return 0;
}

const char *log_level_name(enum log_level l)
{
	return (unsigned)l <= LL_DEBUG ? log_level_names[l] : "info";
}

const char *log_quote(const char *s, char *dst, size_t room)
{
	size_t o = 0;
	for (; *s && o + 2 < room; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == '"' || c == '\\')
			dst[o++] = '\\';
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return dst;
}

void log_event(enum log_level l, const char *event, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, log_level_name(l), event);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
