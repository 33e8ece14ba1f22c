/* tzload.c: tz_load, window.h's one function that reads files. A zone's name
 * comes from the policy, so it is checked before it becomes a path: no "..", no
 * absolute path, nothing but the characters IANA names use. */
#include "window.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_FILE_MAX (1024 * 1024)   /* the largest TZif file is a few KB */

static bool name_ok(const char *name)
{
	if (!name[0] || name[0] == '/' || strstr(name, "..") || strlen(name) > 255)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '+' || *p == '-' || *p == '/'))
			return false;
	return true;
}

int tz_load(const char *name, struct tz *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(name, "UTC") == 0 || strcmp(name, "Z") == 0 || name[0] == '+' || name[0] == '-')
		return tz_fixed(name, out, err, errlen);
	if (!name_ok(name)) {
		snprintf(err, errlen, "time zone \"%.40s\": not a zone name (such as \"Europe/Berlin\"), \"UTC\" "
		         "or an offset (such as \"+05:30\")", name);
		return -1;
	}
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(err, errlen, "time zone \"%s\": path too long", name);
		return -1;
	}
	/* O_NONBLOCK: a FIFO where a zone should be must not hang the agent. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "time zone \"%s\": %s: %s", name, path,
		         errno == ENOENT ? "no such zone" : strerror(errno));
		return -1;
	}
	struct stat st;
	uint8_t *data = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_FILE_MAX) {
		snprintf(err, errlen, "time zone \"%s\": %s is not a zone file", name, path);
		goto fail;
	}
	size_t len = (size_t)st.st_size, got = 0;
	if (!(data = malloc(len ? len : 1))) {
		snprintf(err, errlen, "time zone \"%s\": out of memory", name);
		goto fail;
	}
	while (got < len) {
		ssize_t r = read(fd, data + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "time zone \"%s\": cannot read %s: %s", name, path,
			         r < 0 ? strerror(errno) : "file shrank");
			goto fail;
		}
		got += (size_t)r;
	}
	close(fd);
	fd = -1;
	char e[200];
	int rc = tz_parse(data, len, out, e, sizeof(e));
	if (rc < 0)
		snprintf(err, errlen, "time zone \"%s\": %s: %s", name, path, e);
	free(data);
	return rc;
fail:
	free(data);
	if (fd >= 0)
		close(fd);
	return -1;
}
