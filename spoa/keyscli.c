/* keyscli.c: `archestra-spoa keys new|list|revoke|rotate --file F ...`.
 *
 * Every change is a locked read-modify-write of the keys file: flock on F.lock
 * (so concurrent `keys new` never lose each other's keys), then write F.tmp,
 * fsync, rename over F, fsync the directory. A running agent picks the new file
 * up by itself (it watches the file) or on SIGHUP. Keys are printed once, by
 * `new` and `rotate`, and only their SHA-256 is stored. */
#include "keyscli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"

static const char usage[] =
	"usage: archestra-spoa keys new    --file F [--name N] [--owner O] [--providers P1,P2] [--models GLOB1,GLOB2]\n"
	"                                  [--endpoint \"METHOD /path\"]... (beyond the provider's inference endpoints)\n"
	"                                  [--expires YYYY-MM-DD|UNIX_SECONDS] [--meta KEY=VALUE]...\n"
	"       archestra-spoa keys list   --file F\n"
	"       archestra-spoa keys revoke --file F ID\n"
	"       archestra-spoa keys rotate --file F ID [--overlap SECONDS]   (default 86400: the old key works 1 day more)\n";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "archestra-spoa keys: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 2;
}

/* Uniform random characters from an alphabet, by rejection sampling. */
static int random_chars(char *dst, size_t n, const char *alphabet)
{
	size_t m = strlen(alphabet);
	unsigned limit = 256 - 256 % (unsigned)m;
	size_t o = 0;
	while (o < n) {
		unsigned char b[64];
		if (RAND_bytes(b, sizeof(b)) != 1)
			return -1;
		for (size_t i = 0; i < sizeof(b) && o < n; i++)
			if (b[i] < limit)
				dst[o++] = alphabet[b[i] % m];
	}
	dst[n] = '\0';
	return 0;
}

/* A new key for id; hex of its SHA-256 into hash_hex (65 bytes). */
static int make_key(const char *id, char *key, char *hash_hex)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char secret[VKEY_SECRET_LEN + 1];
	if (random_chars(secret, VKEY_SECRET_LEN, b64url) < 0) /* 32 x 6 bits = 192 bits */
		return -1;
	snprintf(key, VKEY_LEN + 1, "%s%s_%s", VKEY_PREFIX, id, secret);
	uint8_t h[32];
	sha256(key, strlen(key), h);
	for (int i = 0; i < 32; i++)
		sprintf(hash_hex + 2 * i, "%02x", h[i]);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

struct locked {
	int lockfd;
	cJSON *root;
	const char *path;
};

static int open_locked(const char *path, struct locked *l)
{
	char lp[1024];
	snprintf(lp, sizeof(lp), "%s.lock", path);
	l->path = path;
	l->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->lockfd < 0 || flock(l->lockfd, LOCK_EX) < 0)
		return fail("cannot lock %s", lp);
	size_t len;
	char e[CONFIG_ERR_LEN];
	char *text = config_read_file(path, &len, e, sizeof(e));
	if (!text && errno != ENOENT)
		return fail("%s", e);
	l->root = text ? cJSON_ParseWithLength(text, len) : cJSON_Parse("{\"version\":1,\"keys\":[]}");
	free(text);
	if (!l->root || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(l->root, "keys")))
		return fail("%s is not a keys file ({\"keys\": [...]})", path);
	return 0;
}

/* Writes the file atomically: temp, fsync, rename, fsync directory. */
static int commit(struct locked *l)
{
	char *text = cJSON_Print(l->root);
	char e[CONFIG_ERR_LEN];
	struct keystore check;
	if (!text || keystore_parse(text, strlen(text), &check, e, sizeof(e)) < 0) {
		free(text);
		return fail("refusing to write an invalid keys file: %s", e);
	}
	keystore_free(&check);
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", l->path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t n = strlen(text);
	bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	free(text);
	if (!ok || rename(tmp, l->path) < 0) {
		unlink(tmp);
		return fail("cannot write %s", l->path);
	}
	char dirbuf[1024];
	snprintf(dirbuf, sizeof(dirbuf), "%s", l->path);
	int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void close_locked(struct locked *l)
{
	cJSON_Delete(l->root);
	if (l->lockfd >= 0)
		close(l->lockfd); /* releases the lock */
}

static cJSON *find_key(cJSON *root, const char *id)
{
	cJSON *k;
	cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(root, "keys")) {
		const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "id");
		if (cJSON_IsString(kid) && strcmp(kid->valuestring, id) == 0)
			return k;
	}
	return NULL;
}

static cJSON *csv_array(const char *csv)
{
	cJSON *a = cJSON_CreateArray();
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", csv);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (*t)
			cJSON_AddItemToArray(a, cJSON_CreateString(t));
	return a;
}

static int parse_expiry(const char *s, double *out)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	char *end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == '\0') {
		*out = (double)timegm(&tm);
		return 0;
	}
	char *e;
	long long v = strtoll(s, &e, 10);
	if (*s && *e == '\0' && v > 0) {
		*out = (double)v;
		return 0;
	}
	return -1;
}

static int cmd_new(const char *file, int argc, char **argv)
{
	cJSON *entry = cJSON_CreateObject(), *meta = cJSON_CreateObject();
	double expires = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			return fail("%s needs a value", a);
		if (strcmp(a, "--name") == 0)
			cJSON_AddStringToObject(entry, "name", v);
		else if (strcmp(a, "--owner") == 0)
			cJSON_AddStringToObject(entry, "owner", v);
		else if (strcmp(a, "--providers") == 0)
			cJSON_AddItemToObject(entry, "providers", csv_array(v));
		else if (strcmp(a, "--models") == 0)
			cJSON_AddItemToObject(entry, "models", csv_array(v));
		else if (strcmp(a, "--endpoint") == 0) {
			if (endpoint_check(v) < 0)
				return fail("--endpoint: expected \"METHOD /path\" like \"POST /files\", not '%s'", v);
			if (!cJSON_GetObjectItemCaseSensitive(entry, "endpoints"))
				cJSON_AddItemToObject(entry, "endpoints", cJSON_CreateArray());
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(entry, "endpoints"), cJSON_CreateString(v));
		}
		else if (strcmp(a, "--expires") == 0) {
			if (parse_expiry(v, &expires) < 0)
				return fail("--expires: expected YYYY-MM-DD or unix seconds, not '%s'", v);
		} else if (strcmp(a, "--meta") == 0) {
			const char *eq = strchr(v, '=');
			if (!eq || eq == v)
				return fail("--meta: expected KEY=VALUE, not '%s'", v);
			char k[128];
			snprintf(k, sizeof(k), "%.*s", (int)(eq - v), v);
			cJSON_AddStringToObject(meta, k, eq + 1);
		} else
			return fail("unknown option '%s' (try: archestra-spoa keys)", a);
		i++;
	}
	struct locked l = { -1, NULL, NULL };
	int rc = open_locked(file, &l);
	if (rc)
		return rc;
	char id[VKEY_ID_LEN + 1], key[VKEY_LEN + 1], hash[65];
	do {
		if (random_chars(id, VKEY_ID_LEN, "abcdefghijklmnopqrstuvwxyz0123456789") < 0)
			return fail("%s", "no randomness from the OS");
	} while (find_key(l.root, id));
	if (make_key(id, key, hash) < 0)
		return fail("%s", "no randomness from the OS");
	cJSON_AddStringToObject(entry, "id", id);
	cJSON_AddNumberToObject(entry, "created", (double)time(NULL));
	cJSON_AddNumberToObject(entry, "expires", expires);
	cJSON_AddBoolToObject(entry, "revoked", 0);
	cJSON *secrets = cJSON_AddArrayToObject(entry, "secrets"), *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "sha256", hash);
	cJSON_AddItemToArray(secrets, s);
	cJSON_AddItemToObject(entry, "metadata", meta);
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(l.root, "keys"), entry);
	rc = commit(&l);
	close_locked(&l);
	if (rc == 0) {
		printf("%s\n", key);
		fprintf(stderr, "key %s created; it is shown only now, store it safely\n", id);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

static int cmd_list(const char *file)
{
	struct locked l = { -1, NULL, NULL };
	int rc = open_locked(file, &l);
	if (rc)
		return rc;
	printf("%-13s %-20s %-16s %-20s %-20s %-10s %-8s %s\n", "ID", "NAME", "OWNER", "PROVIDERS", "MODELS", "EXPIRES",
	       "REVOKED", "SECRETS");
	cJSON *k;
	cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(l.root, "keys")) {
		char prov[128] = "*", models[128] = "*", exp[16] = "never";
		const cJSON *it;
		char *o = prov;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(k, "providers"))
			if (cJSON_IsString(it))
				o += snprintf(o, (size_t)(prov + sizeof(prov) - o), "%s%s", o == prov ? "" : ",", it->valuestring);
		o = models;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(k, "models"))
			if (cJSON_IsString(it))
				o += snprintf(o, (size_t)(models + sizeof(models) - o), "%s%s", o == models ? "" : ",", it->valuestring);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(k, "expires");
		if (cJSON_IsNumber(e) && e->valuedouble > 0) {
			time_t t = (time_t)e->valuedouble;
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(exp, sizeof(exp), "%Y-%m-%d", &tm);
		}
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "id"), *name = cJSON_GetObjectItemCaseSensitive(k, "name"),
		            *owner = cJSON_GetObjectItemCaseSensitive(k, "owner");
		printf("%-13s %-20s %-16s %-20s %-20s %-10s %-8s %d\n", cJSON_IsString(id) ? id->valuestring : "?",
		       cJSON_IsString(name) ? name->valuestring : "-", cJSON_IsString(owner) ? owner->valuestring : "-",
		       prov[0] ? prov : "*", models[0] ? models : "*", exp,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "revoked")) ? "yes" : "no",
		       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(k, "secrets")));
	}
	close_locked(&l);
	return 0;
}

static int cmd_revoke_rotate(const char *file, bool rotate, int argc, char **argv)
{
	const char *id = NULL;
	double overlap = 86400;
	for (int i = 0; i < argc; i++) {
		if (rotate && strcmp(argv[i], "--overlap") == 0 && i + 1 < argc) {
			char *e;
			overlap = strtod(argv[++i], &e);
			if (*e || overlap < 0 || overlap > 365 * 86400.0)
				return fail("--overlap: expected seconds from 0 to %s", "31536000");
		} else if (!id && argv[i][0] != '-') {
			id = argv[i];
		} else {
			return fail("unexpected argument '%s' (try: archestra-spoa keys)", argv[i]);
		}
	}
	if (!id)
		return fail("%s", "which key? give its ID (see: keys list)");
	struct locked l = { -1, NULL, NULL };
	int rc = open_locked(file, &l);
	if (rc)
		return rc;
	cJSON *k = find_key(l.root, id);
	if (!k) {
		close_locked(&l);
		return fail("no key with id '%s'", id);
	}
	char key[VKEY_LEN + 1] = "";
	if (!rotate) {
		cJSON_ReplaceItemInObjectCaseSensitive(k, "revoked", cJSON_CreateBool(1));
	} else {
		char hash[65];
		if (make_key(id, key, hash) < 0)
			return fail("%s", "no randomness from the OS");
		double now = (double)time(NULL);
		cJSON *secrets = cJSON_GetObjectItemCaseSensitive(k, "secrets"), *fresh = cJSON_CreateArray(), *s;
		cJSON *n = cJSON_CreateObject();
		cJSON_AddStringToObject(n, "sha256", hash);
		cJSON_AddItemToArray(fresh, n);
		/* Old secrets live on for the overlap; ones already past it are dropped. */
		cJSON_ArrayForEach(s, secrets) {
			const cJSON *na = cJSON_GetObjectItemCaseSensitive(s, "not_after");
			double until = cJSON_IsNumber(na) && na->valuedouble > 0 ? na->valuedouble : now + overlap;
			if (until > now + overlap)
				until = now + overlap;
			if (until <= now || cJSON_GetArraySize(fresh) == VKEY_MAX_SECRETS)
				continue;
			cJSON *old = cJSON_CreateObject();
			cJSON_AddItemToObject(old, "sha256", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s, "sha256"), 1));
			cJSON_AddNumberToObject(old, "not_after", until);
			cJSON_AddItemToArray(fresh, old);
		}
		cJSON_ReplaceItemInObjectCaseSensitive(k, "secrets", fresh);
	}
	rc = commit(&l);
	close_locked(&l);
	if (rc == 0 && rotate) {
		printf("%s\n", key);
		fprintf(stderr, "key %s rotated; the previous key stays valid for %.0f s\n", id, overlap);
	} else if (rc == 0) {
		fprintf(stderr, "key %s revoked\n", id);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int keys_cli(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1], *file = NULL;
	char *rest[64];
	int nrest = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strncmp(argv[i], "--file=", 7) == 0)
			file = argv[i] + 7;
		else if (nrest < 64)
			rest[nrest++] = argv[i];
	}
	if (!file)
		return fail("%s", "--file KEYS_FILE is required");
	if (strcmp(cmd, "new") == 0)
		return cmd_new(file, nrest, rest);
	if (strcmp(cmd, "list") == 0)
		return nrest ? fail("unexpected argument '%s'", rest[0]) : cmd_list(file);
	if (strcmp(cmd, "revoke") == 0)
		return cmd_revoke_rotate(file, false, nrest, rest);
	if (strcmp(cmd, "rotate") == 0)
		return cmd_revoke_rotate(file, true, nrest, rest);
	return fail("unknown command '%s' (new, list, revoke, rotate)", cmd);
}
