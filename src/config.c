/* config.c: loads and validates the daemon's JSON configuration file, and
 * reads secrets named by `*_env` / `*_file` keys.
 *
 * DESIGN
 * The file is decoded by jansson with duplicate keys refused, then checked
 * in two passes, each stopping at the first problem:
 *   1. The whole tree is scanned for keys that look like inline secrets
 *      ("password", "token", "*_secret", ...). This runs first so that a
 *      secret pasted into a section this version does not support yet is
 *      still reported as a secret (the operator must rotate it), not as an
 *      unsupported section.
 *   2. Each section is walked by hand-written code that knows its keys:
 *      every object's keys are compared with the known list first (unknown
 *      key -> error, key of a feature not built yet -> "not supported
 *      yet"), then each value is type- and range-checked and copied into
 *      struct config. Absent keys take the defaults documented in
 *      config.h.
 * Every message starts with the key's full dotted path, array elements as
 * "[i]" ("limits.per_user[1].window: ..."). Keys and values quoted in
 * messages have control bytes escaped and are shortened, so a message is
 * always one line of bounded length.
 *
 * Paths are resolved textually: a relative path is joined to the absolute
 * directory of the config file (the realpath of the directory the file
 * name is in, so a symlinked config still resolves against where it was
 * named). Besides the config file itself, only the files it names for
 * reading at start-up must exist at load time (CA bundles, secret files,
 * the FCM service account and the APNs key); directories and outboxes
 * need not. Key files must not be readable by group or others, like every
 * secret file.
 *
 * email.smtp is checked in full whenever it is present, even when
 * email.transport is "maildir" and the section is unused: switching the
 * transport must not uncover a broken section (or an unset password
 * variable) only later.
 *
 * Secrets read by config_read_secret never appear in an error message:
 * messages name the key, the variable or the file, and buffers that held
 * a refused secret are wiped before they are freed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "address.h"
#include "channel.h"
#include "config.h"
#include "timefmt.h"
#include "tzdb.h"

#define CONFIG_KEYPATH_MAX 256   /* longest key path shown in a message */
#define CONFIG_SHOW_MAX 80       /* longest quoted value shown */
#define CONFIG_SECRET_MAX (64 * 1024)
#define CONFIG_MAX_LINE_MIN 256
#define CONFIG_MAX_LINE_MAX ((long long)64 * 1024 * 1024)
#define CONFIG_MAX_CONNECTIONS_MAX (1024 * 1024)
#define CONFIG_MAX_ATTEMPTS_MAX 1000
#define CONFIG_PER_USER_MAX 64
#define CONFIG_RATE_MAX 1e9
/* Upper bound for every duration: ten years keeps now + duration far
 * from int64 overflow anywhere downstream. */
#define CONFIG_DURATION_MAX (INT64_C(3650) * 24 * 3600 * 1000)
#define CONFIG_DURATION_HINT "(use e.g. 30s, 15m, 24h, 7d)"
#define CONFIG_SMTP_SESSIONS_MAX 64
#define CONFIG_SMTP_BATCH_MAX 10000
#define CONFIG_SMTP_TIMEOUT_MIN_MS INT64_C(1000)
#define CONFIG_SMTP_TIMEOUT_MAX_MS (INT64_C(10) * 60 * 1000)
#define CONFIG_HTTP_TIMEOUT_MIN_MS INT64_C(1000)
#define CONFIG_HTTP_TIMEOUT_MAX_MS (INT64_C(10) * 60 * 1000)
#define CONFIG_HTTP_CONNECTIONS_MAX 256
#define CONFIG_HTTP_CONNECTIONS_DEFAULT 16
#define CONFIG_APNS_CONNECTIONS_DEFAULT 2
#define CONFIG_SEQ_STEPS_MAX 64
#define CONFIG_HOSTNAME_MAX 253
#define CONFIG_LABEL_MAX 63

struct config_loader {
	struct config *cfg;
	char *err;
	size_t errlen;
};

/* ---- messages ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int config_set_error(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define config_fail(ld, ...) config_set_error((ld)->err, (ld)->errlen, __VA_ARGS__)

/* Appends src to dst (capacity cap, dst already NUL-terminated) with
 * control bytes escaped (and '"' '\\' too when `quotes`), stopping at
 * `limit` bytes of dst and marking the cut with "...". A cut never splits
 * a UTF-8 sequence. */
static void config_append_escaped(char *dst, size_t cap, const char *src,
				  size_t limit, bool quotes)
{
	size_t len = strlen(dst);
	if (limit > cap - 1)
		limit = cap - 1;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		char piece[8];
		size_t n;
		if (*p < 0x20 || *p == 0x7f) {
			n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", *p);
		} else if (quotes && (*p == '"' || *p == '\\')) {
			piece[0] = '\\';
			piece[1] = (char)*p;
			n = 2;
		} else {
			piece[0] = (char)*p;
			n = 1;
		}
		if (len + n + 3 > limit) {
			/* Drop a partly copied UTF-8 sequence before the cut. */
			while (len > 0 && ((unsigned char)dst[len - 1] & 0xc0) == 0x80)
				len--;
			if (len > 0 && ((unsigned char)dst[len - 1] & 0xc0) == 0xc0)
				len--;
			if (len + 3 <= limit) {
				memcpy(dst + len, "...", 3);
				len += 3;
			}
			break;
		}
		memcpy(dst + len, piece, n);
		len += n;
	}
	dst[len] = '\0';
}

/* Quoted, escaped, shortened form of a string value for a message. */
static const char *config_show(char *buf, size_t cap, const char *s)
{
	buf[0] = '\0';
	config_append_escaped(buf, cap, s, cap - 3, true);
	size_t len = strlen(buf);
	memmove(buf + 1, buf, len + 1);
	buf[0] = '"';
	buf[len + 1] = '"';
	buf[len + 2] = '\0';
	return buf;
}

/* dst = parent + "." + key (or key alone at the top level). */
static void config_path_key(char dst[CONFIG_KEYPATH_MAX], const char *parent,
			    const char *key)
{
	dst[0] = '\0';
	if (parent && parent[0]) {
		/* key paths are short; a too long one is cut, never overrun */
		size_t n = strnlen(parent, CONFIG_KEYPATH_MAX - 2);
		memcpy(dst, parent, n);
		dst[n] = '.';
		dst[n + 1] = '\0';
	}
	config_append_escaped(dst, CONFIG_KEYPATH_MAX, key,
			      CONFIG_KEYPATH_MAX - 1, true);
}

static void config_path_index(char dst[CONFIG_KEYPATH_MAX], const char *parent,
			      size_t i)
{
	char index[32];
	size_t n = strnlen(parent, CONFIG_KEYPATH_MAX - sizeof index);
	snprintf(index, sizeof index, "[%zu]", i);
	memcpy(dst, parent, n);
	memcpy(dst + n, index, strlen(index) + 1);
}

static const char *config_json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "an unknown value";
}

static int config_oom(struct config_loader *ld)
{
	return config_fail(ld, "out of memory while loading the configuration");
}

static void config_strerror(int errnum, char *buf, size_t cap)
{
	if (strerror_r(errnum, buf, cap) != 0)
		snprintf(buf, cap, "error %d", errnum);
}

/* ---- pass 1: inline secrets ------------------------------------------- */

static bool config_ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

static bool config_is_secret_key(const char *key)
{
	static const char *const names[] = {
		"password", "token", "auth_token", "secret", "key",
		"private_key", "api_key",
	};
	static const char *const suffixes[] = {
		"_password", "_token", "_secret", "_key",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(key, names[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (config_ends_with(key, suffixes[i]))
			return true;
	return false;
}

static int config_scan_secrets(struct config_loader *ld, json_t *v,
			       const char *path)
{
	char child[CONFIG_KEYPATH_MAX];
	if (json_is_object(v)) {
		const char *key;
		json_t *sub;
		json_object_foreach(v, key, sub) {
			config_path_key(child, path, key);
			if (config_is_secret_key(key)) {
				char bare[CONFIG_KEYPATH_MAX] = "";
				config_append_escaped(bare, sizeof bare, key, 64, true);
				return config_fail(ld,
					"%s: secrets are not accepted inline; "
					"use %s_env or %s_file", child, bare, bare);
			}
			if (config_scan_secrets(ld, sub, child) != 0)
				return -1;
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *sub;
		json_array_foreach(v, i, sub) {
			config_path_index(child, path, i);
			if (config_scan_secrets(ld, sub, child) != 0)
				return -1;
		}
	}
	return 0;
}

/* ---- pass 2 helpers --------------------------------------------------- */

static bool config_in_list(const char *key, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* Refuses any key of obj not in `known`; keys in `later` are features this
 * version does not build yet. */
static int config_check_keys(struct config_loader *ld, json_t *obj,
			     const char *path, const char *const *known,
			     const char *const *later)
{
	char child[CONFIG_KEYPATH_MAX];
	const char *key;
	json_t *sub;
	json_object_foreach(obj, key, sub) {
		if (config_in_list(key, known))
			continue;
		config_path_key(child, path, key);
		if (config_in_list(key, later))
			return config_fail(ld, "not supported yet: %s", child);
		return config_fail(ld, "unknown key: %s", child);
	}
	return 0;
}

/* Section object obj[key]: *out is NULL when absent. */
static int config_get_object(struct config_loader *ld, json_t *obj,
			     const char *key, const char *parent, json_t **out)
{
	char path[CONFIG_KEYPATH_MAX];
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v)) {
		config_path_key(path, parent, key);
		return config_fail(ld, "%s: expected an object, got %s", path,
				   config_json_kind(v));
	}
	*out = v;
	return 0;
}

/* Non-empty string obj[key]; *out stays untouched when absent, is set to
 * NULL-free borrowed text otherwise. */
static int config_get_string(struct config_loader *ld, json_t *obj,
			     const char *key, const char *parent,
			     const char **out)
{
	char path[CONFIG_KEYPATH_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	config_path_key(path, parent, key);
	if (!json_is_string(v))
		return config_fail(ld, "%s: expected a string, got %s", path,
				   config_json_kind(v));
	if (json_string_length(v) == 0)
		return config_fail(ld, "%s: must not be empty", path);
	*out = json_string_value(v);
	return 0;
}

static int config_get_int(struct config_loader *ld, json_t *obj,
			  const char *key, const char *parent, long long min,
			  long long max, long long *out)
{
	char path[CONFIG_KEYPATH_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	config_path_key(path, parent, key);
	if (!json_is_integer(v))
		return config_fail(ld, "%s: expected an integer, got %s", path,
				   config_json_kind(v));
	long long n = (long long)json_integer_value(v);
	if (n < min || n > max)
		return config_fail(ld, "%s: %lld is out of range (%lld..%lld)",
				   path, n, min, max);
	*out = n;
	return 0;
}

/* A positive number no larger than CONFIG_RATE_MAX, >= min. */
static int config_get_number(struct config_loader *ld, json_t *obj,
			     const char *key, const char *parent, double min,
			     bool min_exclusive, double *out)
{
	char path[CONFIG_KEYPATH_MAX];
	json_t *v = json_object_get(obj, key);
	config_path_key(path, parent, key);
	if (!v)
		return config_fail(ld, "%s: missing", path);
	if (!json_is_number(v))
		return config_fail(ld, "%s: expected a number, got %s", path,
				   config_json_kind(v));
	double d = json_number_value(v);
	if (!isfinite(d) || d > CONFIG_RATE_MAX)
		return config_fail(ld, "%s: %g is too large", path, d);
	if (min_exclusive ? !(d > min) : !(d >= min))
		return config_fail(ld, "%s: %g must be %s %g", path, d,
				   min_exclusive ? "greater than" : "at least",
				   min);
	*out = d;
	return 0;
}

/* Duration obj[key] in (0 or min_ms)..CONFIG_DURATION_MAX; *text gets the
 * string as written. */
static int config_get_duration(struct config_loader *ld, json_t *obj,
			       const char *key, const char *parent,
			       int64_t min_ms, int64_t *out, const char **text)
{
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	config_path_key(path, parent, key);
	if (!json_is_string(v))
		return config_fail(ld, "%s: expected a duration string such as "
				   "\"30s\", got %s", path, config_json_kind(v));
	const char *s = json_string_value(v);
	int64_t ms;
	if (duration_parse(s, &ms) != 0)
		return config_fail(ld, "%s: invalid duration %s "
				   CONFIG_DURATION_HINT, path,
				   config_show(shown, sizeof shown, s));
	if (ms < min_ms)
		return config_fail(ld, "%s: duration %s must be greater than 0",
				   path, config_show(shown, sizeof shown, s));
	if (ms > CONFIG_DURATION_MAX)
		return config_fail(ld, "%s: duration %s is longer than 3650d",
				   path, config_show(shown, sizeof shown, s));
	*out = ms;
	if (text)
		*text = s;
	return 0;
}

/* Maps a string to one of `names` (NULL-terminated); *index stays put when
 * the key is absent. */
static int config_get_enum(struct config_loader *ld, json_t *obj,
			   const char *key, const char *parent,
			   const char *const *names, int *index)
{
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX], choices[128];
	const char *s = NULL;
	if (config_get_string(ld, obj, key, parent, &s) != 0)
		return -1;
	if (!s)
		return 0;
	for (int i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0) {
			*index = i;
			return 0;
		}
	}
	choices[0] = '\0';
	size_t used = 0;
	for (int i = 0; names[i] && used < sizeof choices; i++) {
		int n = snprintf(choices + used, sizeof choices - used, "%s\"%s\"",
				 i == 0 ? "" : (names[i + 1] ? ", " : " or "),
				 names[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	config_path_key(path, parent, key);
	return config_fail(ld, "%s: expected %s, got %s", path, choices,
			   config_show(shown, sizeof shown, s));
}

/* dir + "/" + rel, or a copy of rel when it is absolute. */
static char *config_join(const char *dir, const char *rel)
{
	if (rel[0] == '/')
		return strdup(rel);
	size_t ld = strlen(dir), lr = strlen(rel);
	bool slash = ld > 0 && dir[ld - 1] == '/';
	char *p = malloc(ld + lr + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, ld);
	if (!slash)
		p[ld++] = '/';
	memcpy(p + ld, rel, lr + 1);
	return p;
}

/* Replaces *slot with the resolved path obj[key] when present, else with
 * base joined with `fallback` when *slot is still NULL. */
static int config_get_path(struct config_loader *ld, json_t *obj,
			   const char *key, const char *parent,
			   const char *base, const char *fallback, char **slot)
{
	const char *s = NULL;
	if (obj && config_get_string(ld, obj, key, parent, &s) != 0)
		return -1;
	char *resolved = s ? config_join(ld->cfg->dir, s)
			   : config_join(base, fallback);
	if (!resolved)
		return config_oom(ld);
	free(*slot);
	*slot = resolved;
	return 0;
}

static int config_dup(struct config_loader *ld, char **slot, const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		return config_oom(ld);
	free(*slot);
	*slot = copy;
	return 0;
}

/* A plausible BCP 47 tag: a 2-3 letter language, then subtags of 1-8
 * letters or digits separated by '-' ("en", "zh-CN", "zh-Hant-TW",
 * "es-419"); at most 35 bytes. */
static bool config_locale_ok(const char *s)
{
	size_t len = strlen(s);
	if (len < 2 || len > 35)
		return false;
	size_t i = 0;
	while (i < len && ((s[i] >= 'a' && s[i] <= 'z') ||
			   (s[i] >= 'A' && s[i] <= 'Z')))
		i++;
	if (i < 2 || i > 3)
		return false;
	while (i < len) {
		if (s[i] != '-')
			return false;
		size_t start = ++i;
		while (i < len && ((s[i] >= 'a' && s[i] <= 'z') ||
				   (s[i] >= 'A' && s[i] <= 'Z') ||
				   (s[i] >= '0' && s[i] <= '9')))
			i++;
		if (i - start < 1 || i - start > 8)
			return false;
	}
	return true;
}

/* "local@domain" or "Display Name <local@domain>": exactly one '@' in the
 * address, both sides non-empty, no spaces, control bytes or angle
 * brackets in the address, and no control bytes anywhere (a CR or LF here
 * would end up in a mail header). */
static bool config_from_ok(const char *s)
{
	size_t len = strlen(s);
	if (len > 512)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	const char *addr = s;
	size_t alen = len;
	const char *lt = strchr(s, '<');
	if (lt) {
		if (s[len - 1] != '>' || strchr(lt + 1, '<'))
			return false;
		if (memchr(s, '>', (size_t)(lt - s)))
			return false;
		addr = lt + 1;
		alen = (size_t)(s + len - 1 - addr);
	}
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++) {
		char c = addr[i];
		if (c == ' ' || c == '<' || c == '>' || c == '"' || c == ',')
			return false;
		if (c == '@') {
			if (at)
				return false;
			at = addr + i;
		}
	}
	return at && at > addr && at < addr + alen - 1;
}

static bool config_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A DNS host name: dot-separated labels of letters, digits and '-' (not
 * at either end of a label), 1..63 bytes each, at most 253 in all, no
 * trailing dot. A name whose last label is all digits must be a valid
 * dotted IPv4 address ("999.1.1.1" is neither). */
static bool config_hostname_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > CONFIG_HOSTNAME_MAX)
		return false;
	const char *label = s;
	bool numeric = true;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			size_t n = (size_t)(s + i - label);
			if (n == 0 || n > CONFIG_LABEL_MAX || label[0] == '-' ||
			    label[n - 1] == '-')
				return false;
			if (c == '\0')
				break;
			label = s + i + 1;
			numeric = true;
			continue;
		}
		bool digit = c >= '0' && c <= '9';
		if (!digit && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    c != '-')
			return false;
		if (!digit)
			numeric = false;
	}
	if (numeric) {
		struct in_addr a4;
		return inet_pton(AF_INET, s, &a4) == 1;
	}
	return true;
}

/* email.smtp.host: a host name, a dotted IPv4 address or a bare IPv6
 * address ("::1", no brackets). */
static bool config_smtp_host_ok(const char *s)
{
	struct in6_addr a6;
	if (strchr(s, ':'))
		return strlen(s) < INET6_ADDRSTRLEN &&
		       inet_pton(AF_INET6, s, &a6) == 1;
	return config_hostname_ok(s);
}

/* email.smtp.helo: a host name, or an address literal as RFC 5321 4.1.3
 * spells it for EHLO ("[192.0.2.1]", "[IPv6:2001:db8::1]"). */
static bool config_helo_ok(const char *s)
{
	char inner[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);
	if (len == 0 || s[0] != '[')
		return config_hostname_ok(s);
	if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof inner)
		return false;
	memcpy(inner, s + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncmp(inner, "IPv6:", 5) == 0) {
		struct in6_addr a6;
		return inet_pton(AF_INET6, inner + 5, &a6) == 1;
	}
	struct in_addr a4;
	return inet_pton(AF_INET, inner, &a4) == 1;
}

/* A portable environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
static bool config_env_name_ok(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* A file named for reading at start-up: it must exist, be a regular file
 * and open for reading now. Refused with `key` and the path. */
static int config_check_readable(struct config_loader *ld, const char *key,
				 const char *file)
{
	char ebuf[128], shown[512] = "";
	struct stat st;
	int rc = -1;
	config_append_escaped(shown, sizeof shown, file, sizeof shown - 1, false);
	/* O_NONBLOCK: a FIFO named here is refused below, not waited on. */
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0) {
		config_strerror(errno, ebuf, sizeof ebuf);
		config_fail(ld, "%s: %s: %s", key, shown, ebuf);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_fail(ld, "%s: %s is not a regular file", key, shown);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- sections --------------------------------------------------------- */

static int config_intake(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"socket", "max_line", "max_connections", "max_pending", NULL
	};
	struct config *cfg = ld->cfg;
	json_t *o;
	if (config_get_object(ld, root, "intake", NULL, &o) != 0)
		return -1;
	if (o && config_check_keys(ld, o, "intake", known, NULL) != 0)
		return -1;
	if (config_get_path(ld, o, "socket", "intake", cfg->data_dir,
			    "rouse.sock", &cfg->socket_path) != 0)
		return -1;
	struct sockaddr_un sun;
	if (strlen(cfg->socket_path) >= sizeof sun.sun_path) {
		char shown[512];
		return config_fail(ld, "intake.socket: %s is %zu bytes, longer "
				   "than a Unix socket path may be (%zu)",
				   config_show(shown, sizeof shown, cfg->socket_path),
				   strlen(cfg->socket_path),
				   sizeof sun.sun_path - 1);
	}
	if (!o)
		return 0;
	long long n = (long long)cfg->max_line;
	if (config_get_int(ld, o, "max_line", "intake", CONFIG_MAX_LINE_MIN,
			   CONFIG_MAX_LINE_MAX, &n) != 0)
		return -1;
	cfg->max_line = (size_t)n;
	n = cfg->max_connections;
	if (config_get_int(ld, o, "max_connections", "intake", 1,
			   CONFIG_MAX_CONNECTIONS_MAX, &n) != 0)
		return -1;
	cfg->max_connections = (int)n;
	n = cfg->max_pending;
	if (config_get_int(ld, o, "max_pending", "intake", 1, INT_MAX, &n) != 0)
		return -1;
	cfg->max_pending = (int)n;
	return 0;
}

/* email.smtp.password_env / password_file into smtp.password; run last,
 * once every other key of the section is known to be good. */
static int config_smtp_password(struct config_loader *ld, const char *env,
				const char *file)
{
	struct smtp_conf *sc = &ld->cfg->smtp;
	char *path = NULL;
	int rc = -1;
	if (env) {
		rc = config_read_secret("email.smtp.password_env", env, NULL,
					&sc->password, ld->err, ld->errlen);
		goto out;
	}
	path = config_join(ld->cfg->dir, file);
	if (!path) {
		config_oom(ld);
		goto out;
	}
	rc = config_read_secret("email.smtp.password_file", NULL, path,
				&sc->password, ld->err, ld->errlen);
out:
	free(path);
	return rc;
}

/* email.smtp: checked whenever present; `required` (email.transport is
 * "smtp") makes the section and its host mandatory. */
static int config_smtp(struct config_loader *ld, json_t *email, bool required)
{
	static const char *const known[] = {
		"host", "port", "starttls", "username", "password_env",
		"password_file", "sessions", "batch", "ca_file", "timeout",
		"helo", "envelope_from", NULL
	};
	static const char *const starttls[] = {
		"no", "if_available", "required", NULL
	};
	static const char section[] = "email.smtp";
	struct smtp_conf *sc = &ld->cfg->smtp;
	char shown[CONFIG_SHOW_MAX], addr[320];
	const char *s, *pw_env = NULL, *pw_file = NULL, *timeout_text = NULL;
	json_t *o;
	if (config_get_object(ld, email, "smtp", "email", &o) != 0)
		return -1;
	if (!o) {
		if (required)
			return config_fail(ld, "email.smtp: required when "
					   "email.transport is \"smtp\"");
		return 0;
	}
	if (config_check_keys(ld, o, section, known, NULL) != 0)
		return -1;

	s = NULL;
	if (config_get_string(ld, o, "host", section, &s) != 0)
		return -1;
	if (!s && required)
		return config_fail(ld, "email.smtp.host: required when "
				   "email.transport is \"smtp\"");
	if (s) {
		if (!config_smtp_host_ok(s))
			return config_fail(ld, "email.smtp.host: %s is not a host "
					   "name or IP address",
					   config_show(shown, sizeof shown, s));
		if (config_dup(ld, &sc->host, s) != 0)
			return -1;
	}

	long long n = sc->port;
	if (config_get_int(ld, o, "port", section, 1, 65535, &n) != 0)
		return -1;
	sc->port = (int)n;
	int t = (int)sc->starttls;
	if (config_get_enum(ld, o, "starttls", section, starttls, &t) != 0)
		return -1;
	sc->starttls = (enum smtp_starttls)t;

	s = NULL;
	if (config_get_string(ld, o, "username", section, &s) != 0)
		return -1;
	if (s) {
		if (config_has_control(s))
			return config_fail(ld, "email.smtp.username: must not "
					   "contain control characters");
		if (config_dup(ld, &sc->username, s) != 0)
			return -1;
	}
	if (config_get_string(ld, o, "password_env", section, &pw_env) != 0 ||
	    config_get_string(ld, o, "password_file", section, &pw_file) != 0)
		return -1;
	if (pw_env && pw_file)
		return config_fail(ld, "email.smtp.password_file: give only one "
				   "of email.smtp.password_env or "
				   "email.smtp.password_file");
	if (pw_env && !config_env_name_ok(pw_env))
		return config_fail(ld, "email.smtp.password_env: %s is not an "
				   "environment variable name",
				   config_show(shown, sizeof shown, pw_env));
	if (pw_file && config_has_control(pw_file))
		return config_fail(ld, "email.smtp.password_file: must not "
				   "contain control characters");
	if (sc->username && !pw_env && !pw_file)
		return config_fail(ld, "email.smtp.username: needs "
				   "email.smtp.password_env or "
				   "email.smtp.password_file");
	if (!sc->username && (pw_env || pw_file))
		return config_fail(ld, "%s: needs email.smtp.username",
				   pw_env ? "email.smtp.password_env"
					  : "email.smtp.password_file");

	n = sc->sessions;
	if (config_get_int(ld, o, "sessions", section, 1,
			   CONFIG_SMTP_SESSIONS_MAX, &n) != 0)
		return -1;
	sc->sessions = (int)n;
	n = sc->batch;
	if (config_get_int(ld, o, "batch", section, 1, CONFIG_SMTP_BATCH_MAX,
			   &n) != 0)
		return -1;
	sc->batch = (int)n;

	s = NULL;
	if (config_get_string(ld, o, "ca_file", section, &s) != 0)
		return -1;
	if (s) {
		sc->ca_file = config_join(ld->cfg->dir, s);
		if (!sc->ca_file)
			return config_oom(ld);
		if (config_check_readable(ld, "email.smtp.ca_file",
					  sc->ca_file) != 0)
			return -1;
	}

	if (config_get_duration(ld, o, "timeout", section, 0, &sc->timeout_ms,
				&timeout_text) != 0)
		return -1;
	if (timeout_text && (sc->timeout_ms < CONFIG_SMTP_TIMEOUT_MIN_MS ||
			     sc->timeout_ms > CONFIG_SMTP_TIMEOUT_MAX_MS))
		return config_fail(ld, "email.smtp.timeout: duration %s is out "
				   "of range (1s..10m)",
				   config_show(shown, sizeof shown, timeout_text));

	s = NULL;
	if (config_get_string(ld, o, "helo", section, &s) != 0)
		return -1;
	if (s) {
		if (!config_helo_ok(s))
			return config_fail(ld, "email.smtp.helo: %s is not a host "
					   "name or address literal (e.g. "
					   "mail.example.com, [192.0.2.1])",
					   config_show(shown, sizeof shown, s));
		if (config_dup(ld, &sc->helo, s) != 0)
			return -1;
	}
	s = NULL;
	if (config_get_string(ld, o, "envelope_from", section, &s) != 0)
		return -1;
	if (s) {
		if (address_email_normalize(s, addr, sizeof addr) != 0)
			return config_fail(ld, "email.smtp.envelope_from: %s is "
					   "not an address \"user@domain\"",
					   config_show(shown, sizeof shown, s));
		if (config_dup(ld, &sc->envelope_from, s) != 0)
			return -1;
	}

	if (pw_env || pw_file)
		return config_smtp_password(ld, pw_env, pw_file);
	return 0;
}

static int config_email(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"from", "transport", "maildir", "smtp", NULL
	};
	static const char *const transports[] = { "maildir", "smtp", NULL };
	struct config *cfg = ld->cfg;
	char shown[CONFIG_SHOW_MAX];
	json_t *o;
	if (config_get_object(ld, root, "email", NULL, &o) != 0)
		return -1;
	if (o && config_check_keys(ld, o, "email", known, NULL) != 0)
		return -1;
	if (o) {
		int t = EMAIL_TRANSPORT_MAILDIR;
		if (config_get_enum(ld, o, "transport", "email", transports, &t) != 0)
			return -1;
		cfg->email_transport = (enum email_transport)t;
		if (config_smtp(ld, o, t == EMAIL_TRANSPORT_SMTP) != 0)
			return -1;
		const char *from = NULL;
		if (config_get_string(ld, o, "from", "email", &from) != 0)
			return -1;
		if (from) {
			if (!config_from_ok(from))
				return config_fail(ld, "email.from: %s is not "
					"\"user@domain\" or \"Name <user@domain>\"",
					config_show(shown, sizeof shown, from));
			if (config_dup(ld, &cfg->email_from, from) != 0)
				return -1;
		}
	}
	return config_get_path(ld, o, "maildir", "email", cfg->data_dir,
			       "outbox/email", &cfg->maildir);
}

static void config_locale_texts_free(struct locale_text *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].locale);
		free(items[i].text);
	}
	free(items);
}

/* A per-locale text map parent[key] ({"en": "...", "zh": "..."}) replacing
 * *items / *n (the built-in defaults) when present. */
static int config_locale_texts(struct config_loader *ld, json_t *parent,
			       const char *parent_path, const char *key,
			       struct locale_text **items_slot, size_t *n_slot)
{
	char section[CONFIG_KEYPATH_MAX], path[CONFIG_KEYPATH_MAX];
	char shown[CONFIG_SHOW_MAX];
	json_t *f;
	config_path_key(section, parent_path, key);
	if (config_get_object(ld, parent, key, parent_path, &f) != 0)
		return -1;
	if (!f)
		return 0;
	if (json_object_size(f) == 0)
		return config_fail(ld, "%s: must name at least one locale "
				   "(leave it out for the built-in texts)",
				   section);
	struct locale_text *items = calloc(json_object_size(f), sizeof *items);
	if (!items)
		return config_oom(ld);
	config_locale_texts_free(*items_slot, *n_slot);
	*items_slot = items;
	*n_slot = 0;

	const char *loc;
	json_t *v;
	json_object_foreach(f, loc, v) {
		config_path_key(path, section, loc);
		if (!config_locale_ok(loc))
			return config_fail(ld, "%s: %s is not a BCP 47 language "
					   "tag (e.g. en, zh-CN)", path,
					   config_show(shown, sizeof shown, loc));
		for (size_t i = 0; i < *n_slot; i++)
			if (strcasecmp(items[i].locale, loc) == 0)
				return config_fail(ld, "%s: same locale as "
						   "%s.%s", path, section,
						   items[i].locale);
		const char *text = NULL;
		if (config_get_string(ld, f, loc, section, &text) != 0)
			return -1;
		struct locale_text *it = &items[*n_slot];
		it->locale = strdup(loc);
		it->text = strdup(text);
		(*n_slot)++;
		if (!it->locale || !it->text)
			return config_oom(ld);
	}
	return 0;
}

/* A key file read at start-up: it must be readable and not readable by
 * group or others (the checks of config_read_secret); its content is not
 * kept here (the transport loads it). */
static void config_wipe_free(char *s, size_t cap);
static int config_check_secret_file(struct config_loader *ld, const char *key,
				    const char *file)
{
	char *content = NULL;
	if (config_read_secret(key, NULL, file, &content, ld->err,
			       ld->errlen) != 0)
		return -1;
	config_wipe_free(content, strlen(content));
	return 0;
}

/* ---- HTTP transports (sms.http, push.fcm, push.apns) ------------------ */

/* A secret named by `<base>_env` / `<base>_file` in o (exactly one may be
 * given); *out stays NULL when neither is. */
static int config_secret_pair(struct config_loader *ld, json_t *o,
			      const char *section, const char *base,
			      char **out)
{
	char env_key[64], file_key[64], env_path[CONFIG_KEYPATH_MAX],
	     file_path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	const char *env = NULL, *file = NULL;
	snprintf(env_key, sizeof env_key, "%s_env", base);
	snprintf(file_key, sizeof file_key, "%s_file", base);
	config_path_key(env_path, section, env_key);
	config_path_key(file_path, section, file_key);
	if (config_get_string(ld, o, env_key, section, &env) != 0 ||
	    config_get_string(ld, o, file_key, section, &file) != 0)
		return -1;
	if (env && file)
		return config_fail(ld, "%s: give only one of %s or %s",
				   file_path, env_path, file_path);
	if (env && !config_env_name_ok(env))
		return config_fail(ld, "%s: %s is not an environment variable "
				   "name", env_path,
				   config_show(shown, sizeof shown, env));
	if (env)
		return config_read_secret(env_path, env, NULL, out, ld->err,
					  ld->errlen);
	if (!file)
		return 0;
	char *path = config_join(ld->cfg->dir, file);
	if (!path)
		return config_oom(ld);
	int rc = config_read_secret(file_path, NULL, path, out, ld->err,
				    ld->errlen);
	free(path);
	return rc;
}

/* A base URL: http or https, a host, no credentials, query or fragment.
 * Parsed by libcurl's URL API, so the transports and the check agree. */
static int config_base_url(struct config_loader *ld, const char *path,
			   const char *s, char **slot)
{
	char shown[CONFIG_SHOW_MAX];
	char *scheme = NULL, *part = NULL;
	int rc = -1;
	CURLU *u = curl_url();
	if (!u)
		return config_oom(ld);
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, s, 0);
	if (uc != CURLUE_OK) {
		config_fail(ld, "%s: %s is not a URL (%s)", path,
			    config_show(shown, sizeof shown, s),
			    curl_url_strerror(uc));
		goto out;
	}
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	if (!scheme || (strcmp(scheme, "http") != 0 &&
			strcmp(scheme, "https") != 0)) {
		config_fail(ld, "%s: %s must start with https:// (or http://)",
			    path, config_show(shown, sizeof shown, s));
		goto out;
	}
	static const struct { CURLUPart part; const char *what; } banned[] = {
		{ CURLUPART_USER, "credentials (use the *_env / *_file keys)" },
		{ CURLUPART_PASSWORD, "credentials (use the *_env / *_file keys)" },
		{ CURLUPART_QUERY, "a query" },
		{ CURLUPART_FRAGMENT, "a fragment" },
	};
	for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++) {
		if (curl_url_get(u, banned[i].part, &part, 0) == CURLUE_OK) {
			config_fail(ld, "%s: must not carry %s", path,
				    banned[i].what);
			goto out;
		}
	}
	if (config_has_control(s)) {
		config_fail(ld, "%s: must not contain control characters", path);
		goto out;
	}
	char *copy = strdup(s);
	if (!copy) {
		config_oom(ld);
		goto out;
	}
	size_t n = strlen(copy);
	while (n > 0 && copy[n - 1] == '/')
		copy[--n] = '\0';
	free(*slot);
	*slot = copy;
	rc = 0;
out:
	curl_free(part);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

/* url, ca_file, timeout, connections of one HTTP transport section. */
static int config_http_common(struct config_loader *ld, json_t *o,
			      const char *section, const char *default_url,
			      int default_connections, struct http_conf *h)
{
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	const char *s = NULL, *timeout_text = NULL;
	config_path_key(path, section, "url");
	if (config_get_string(ld, o, "url", section, &s) != 0)
		return -1;
	if (!s && !default_url)
		return config_fail(ld, "%s: missing", path);
	if (config_base_url(ld, path, s ? s : default_url, &h->url) != 0)
		return -1;
	s = NULL;
	if (config_get_string(ld, o, "ca_file", section, &s) != 0)
		return -1;
	if (s) {
		config_path_key(path, section, "ca_file");
		h->ca_file = config_join(ld->cfg->dir, s);
		if (!h->ca_file)
			return config_oom(ld);
		if (config_check_readable(ld, path, h->ca_file) != 0)
			return -1;
	}
	h->timeout_ms = 30 * 1000;
	if (config_get_duration(ld, o, "timeout", section, 0, &h->timeout_ms,
				&timeout_text) != 0)
		return -1;
	if (timeout_text && (h->timeout_ms < CONFIG_HTTP_TIMEOUT_MIN_MS ||
			     h->timeout_ms > CONFIG_HTTP_TIMEOUT_MAX_MS)) {
		config_path_key(path, section, "timeout");
		return config_fail(ld, "%s: duration %s is out of range "
				   "(1s..10m)", path,
				   config_show(shown, sizeof shown, timeout_text));
	}
	long long n = default_connections;
	if (config_get_int(ld, o, "connections", section, 1,
			   CONFIG_HTTP_CONNECTIONS_MAX, &n) != 0)
		return -1;
	h->connections = (int)n;
	return 0;
}

/* An identifier-like value (account sid, key id, team id, topic): printable
 * ASCII without spaces, slashes or anything that would need escaping in a
 * URL path or header. */
static int config_get_ident(struct config_loader *ld, json_t *o,
			    const char *key, const char *section, bool required,
			    char **slot)
{
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	const char *s = NULL;
	config_path_key(path, section, key);
	if (config_get_string(ld, o, key, section, &s) != 0)
		return -1;
	if (!s)
		return required ? config_fail(ld, "%s: missing", path) : 0;
	if (strlen(s) > 128)
		return config_fail(ld, "%s: longer than 128 characters", path);
	for (const char *c = s; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
		      *c == '_'))
			return config_fail(ld, "%s: %s may hold only letters, "
					   "digits, '.', '-' and '_'", path,
					   config_show(shown, sizeof shown, s));
	return config_dup(ld, slot, s);
}

static int config_sms_http(struct config_loader *ld, json_t *sms,
			   bool required)
{
	static const char *const known[] = {
		"kind", "url", "account_sid", "auth_token_env",
		"auth_token_file", "connections", "ca_file", "timeout", NULL
	};
	static const char *const kinds[] = { "twilio", "json", NULL };
	static const char section[] = "sms.http";
	struct sms_http_conf *h = &ld->cfg->sms_http;
	json_t *o;
	if (config_get_object(ld, sms, "http", "sms", &o) != 0)
		return -1;
	if (!o)
		return required ? config_fail(ld, "sms.http: required when "
					      "sms.transport is \"http\"") : 0;
	if (config_check_keys(ld, o, section, known, NULL) != 0)
		return -1;
	int k = SMS_GATEWAY_TWILIO;
	if (config_get_enum(ld, o, "kind", section, kinds, &k) != 0)
		return -1;
	h->kind = (enum sms_gateway)k;
	bool twilio = h->kind == SMS_GATEWAY_TWILIO;
	if (config_http_common(ld, o, section,
			       twilio ? "https://api.twilio.com" : NULL,
			       CONFIG_HTTP_CONNECTIONS_DEFAULT, &h->http) != 0)
		return -1;
	if (config_get_ident(ld, o, "account_sid", section, twilio,
			     &h->account_sid) != 0)
		return -1;
	if (config_secret_pair(ld, o, section, "auth_token", &h->auth_token) != 0)
		return -1;
	if (twilio && !h->auth_token)
		return config_fail(ld, "sms.http.auth_token_env: required for "
				   "kind \"twilio\" (or sms.http.auth_token_file)");
	return 0;
}

/* A required key file o[key] (resolved against the config's directory):
 * readable, and not by group or others. */
static int config_key_file(struct config_loader *ld, json_t *o,
			   const char *section, const char *key, char **slot)
{
	char path[CONFIG_KEYPATH_MAX];
	const char *s = NULL;
	config_path_key(path, section, key);
	if (config_get_string(ld, o, key, section, &s) != 0)
		return -1;
	if (!s)
		return config_fail(ld, "%s: missing", path);
	*slot = config_join(ld->cfg->dir, s);
	if (!*slot)
		return config_oom(ld);
	return config_check_secret_file(ld, path, *slot);
}

static int config_fcm(struct config_loader *ld, json_t *push)
{
	static const char *const known[] = {
		"url", "project_id", "service_account_file", "ca_file",
		"timeout", "connections", NULL
	};
	static const char section[] = "push.fcm";
	struct fcm_conf *f = &ld->cfg->fcm;
	json_t *o;
	if (config_get_object(ld, push, "fcm", "push", &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, section, known, NULL) != 0)
		return -1;
	f->set = true;
	if (config_http_common(ld, o, section, "https://fcm.googleapis.com",
			       CONFIG_HTTP_CONNECTIONS_DEFAULT, &f->http) != 0 ||
	    config_get_ident(ld, o, "project_id", section, false,
			     &f->project_id) != 0)
		return -1;
	return config_key_file(ld, o, section, "service_account_file",
			       &f->service_account_file);
}

static int config_apns(struct config_loader *ld, json_t *push)
{
	static const char *const known[] = {
		"url", "topic", "key_file", "key_id", "team_id", "ca_file",
		"timeout", "connections", NULL
	};
	static const char section[] = "push.apns";
	struct apns_conf *a = &ld->cfg->apns;
	json_t *o;
	if (config_get_object(ld, push, "apns", "push", &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, section, known, NULL) != 0)
		return -1;
	a->set = true;
	if (config_http_common(ld, o, section, "https://api.push.apple.com",
			       CONFIG_APNS_CONNECTIONS_DEFAULT, &a->http) != 0 ||
	    config_get_ident(ld, o, "topic", section, true, &a->topic) != 0 ||
	    config_get_ident(ld, o, "key_id", section, true, &a->key_id) != 0 ||
	    config_get_ident(ld, o, "team_id", section, true, &a->team_id) != 0)
		return -1;
	return config_key_file(ld, o, section, "key_file", &a->key_file);
}

static void config_http_free(struct http_conf *h)
{
	free(h->url);
	free(h->ca_file);
}

static int config_sms(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"transport", "file", "from", "on_ambiguous", "footer", "http",
		NULL
	};
	static const char *const transports[] = { "file", "http", NULL };
	static const char *const ambiguous[] = { "fail", "retry", NULL };
	struct config *cfg = ld->cfg;
	char shown[CONFIG_SHOW_MAX];
	json_t *o;
	if (config_get_object(ld, root, "sms", NULL, &o) != 0)
		return -1;
	if (o) {
		if (config_check_keys(ld, o, "sms", known, NULL) != 0)
			return -1;
		int t = TRANSPORT_FILE;
		if (config_get_enum(ld, o, "transport", "sms", transports, &t) != 0)
			return -1;
		cfg->sms_transport = (enum file_or_http)t;
		if (config_sms_http(ld, o, t == TRANSPORT_HTTP) != 0)
			return -1;
		const char *from = NULL;
		if (config_get_string(ld, o, "from", "sms", &from) != 0)
			return -1;
		if (from) {
			if (config_has_control(from) || strlen(from) > 32)
				return config_fail(ld, "sms.from: %s is not a "
					"sender number or name",
					config_show(shown, sizeof shown, from));
			if (config_dup(ld, &cfg->sms_from, from) != 0)
				return -1;
		}
		int a = (int)cfg->sms_on_ambiguous;
		if (config_get_enum(ld, o, "on_ambiguous", "sms", ambiguous, &a) != 0)
			return -1;
		cfg->sms_on_ambiguous = (enum on_ambiguous)a;
		if (config_locale_texts(ld, o, "sms", "footer", &cfg->sms_footer,
					&cfg->n_sms_footer) != 0)
			return -1;
	}
	return config_get_path(ld, o, "file", "sms", cfg->data_dir,
			       "outbox/sms.jsonl", &cfg->sms_file);
}

static int config_push(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"transport", "file", "fcm", "apns", NULL
	};
	static const char *const transports[] = { "file", "http", NULL };
	struct config *cfg = ld->cfg;
	json_t *o;
	if (config_get_object(ld, root, "push", NULL, &o) != 0)
		return -1;
	if (o) {
		if (config_check_keys(ld, o, "push", known, NULL) != 0)
			return -1;
		int t = TRANSPORT_FILE;
		if (config_get_enum(ld, o, "transport", "push", transports, &t) != 0)
			return -1;
		cfg->push_transport = (enum file_or_http)t;
		if (config_fcm(ld, o) != 0 || config_apns(ld, o) != 0)
			return -1;
		if (t == TRANSPORT_HTTP && !cfg->fcm.set && !cfg->apns.set)
			return config_fail(ld, "push.fcm: push.transport \"http\" "
					   "needs push.fcm or push.apns (or both)");
	}
	return config_get_path(ld, o, "file", "push", cfg->data_dir,
			       "outbox/push.jsonl", &cfg->push_file);
}

/* ---- quiet_hours, unsubscribe, sequences ------------------------------ */

static int config_url_path(struct config_loader *ld, const char *url,
			   char **slot);
static bool config_name_ok(const char *s);

/* "HH:MM" (00:00..23:59) into minutes after midnight. */
static int config_get_clock(struct config_loader *ld, json_t *o,
			    const char *key, const char *section, int *out)
{
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	const char *s = NULL;
	config_path_key(path, section, key);
	if (config_get_string(ld, o, key, section, &s) != 0)
		return -1;
	if (!s)
		return config_fail(ld, "%s: missing", path);
	if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' ||
	    s[1] < '0' || s[1] > '9' || s[3] < '0' || s[3] > '5' ||
	    s[4] < '0' || s[4] > '9' || (s[0] - '0') * 10 + (s[1] - '0') > 23)
		return config_fail(ld, "%s: %s is not a time of day \"HH:MM\" "
				   "(00:00 to 23:59)", path,
				   config_show(shown, sizeof shown, s));
	*out = ((s[0] - '0') * 10 + (s[1] - '0')) * 60 +
	       (s[3] - '0') * 10 + (s[4] - '0');
	return 0;
}

static int config_quiet(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"start", "end", "default_tz", "channels", NULL
	};
	static const char section[] = "quiet_hours";
	struct quiet_conf *q = &ld->cfg->quiet;
	char path[CONFIG_KEYPATH_MAX], shown[CONFIG_SHOW_MAX];
	json_t *o;
	if (config_get_object(ld, root, "quiet_hours", NULL, &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, section, known, NULL) != 0 ||
	    config_get_clock(ld, o, "start", section, &q->start_min) != 0 ||
	    config_get_clock(ld, o, "end", section, &q->end_min) != 0)
		return -1;
	if (q->start_min == q->end_min)
		return config_fail(ld, "quiet_hours.end: the same time as "
				   "quiet_hours.start (leave quiet_hours out "
				   "for none)");
	const char *tz = "UTC";
	if (config_get_string(ld, o, "default_tz", section, &tz) != 0)
		return -1;
	if (!tzdb_get(tz))
		return config_fail(ld, "quiet_hours.default_tz: %s is not a "
				   "time zone of the system's tz database "
				   "(e.g. Asia/Shanghai)",
				   config_show(shown, sizeof shown, tz));
	if (config_dup(ld, &q->default_tz, tz) != 0)
		return -1;
	json_t *chs = json_object_get(o, "channels");
	if (!chs) {
		q->channels[CH_SMS] = q->channels[CH_PUSH] = true;
	} else {
		if (!json_is_array(chs) || json_array_size(chs) == 0)
			return config_fail(ld, "quiet_hours.channels: expected a "
					   "non-empty array of \"email\", \"sms\" "
					   "or \"push\"");
		size_t i;
		json_t *c;
		json_array_foreach(chs, i, c) {
			config_path_index(path, "quiet_hours.channels", i);
			int ch = json_is_string(c)
					 ? channel_parse(json_string_value(c), 0)
					 : -1;
			if (ch < 0)
				return config_fail(ld, "%s: expected \"email\", "
						   "\"sms\" or \"push\"", path);
			q->channels[ch] = true;
		}
	}
	q->set = true;
	return 0;
}

/* "127.0.0.1:8025" or "[::1]:8025": a numeric address and a port. */
static int config_listen(struct config_loader *ld, const char *path,
			 const char *s, struct unsubscribe_conf *u)
{
	char shown[CONFIG_SHOW_MAX], host[INET6_ADDRSTRLEN + 2];
	unsigned char probe[sizeof(struct in6_addr)];
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h = s + 1;
		hl -= 2;
	}
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || hl == 0 || hl >= sizeof host || !end || *end ||
	    end == colon + 1 || port < 1 || port > 65535)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, probe) != 1 &&
	    inet_pton(AF_INET6, host, probe) != 1)
		goto bad;
	u->listen_port = (int)port;
	return config_dup(ld, &u->listen_host, host);
bad:
	return config_fail(ld, "%s: %s is not \"address:port\" with a numeric "
			   "address (e.g. 127.0.0.1:8025, [::1]:8025)", path,
			   config_show(shown, sizeof shown, s));
}

static int config_unsubscribe(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"listen", "public_url", "secret_env", "secret_file", "mailto",
		"footer", NULL
	};
	static const char section[] = "unsubscribe";
	struct unsubscribe_conf *u = &ld->cfg->unsub;
	char shown[CONFIG_SHOW_MAX], addr[320];
	const char *s = NULL;
	json_t *o;
	if (config_get_object(ld, root, "unsubscribe", NULL, &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, section, known, NULL) != 0)
		return -1;
	if (config_get_string(ld, o, "listen", section, &s) != 0)
		return -1;
	if (config_listen(ld, "unsubscribe.listen", s ? s : "127.0.0.1:8025",
			  u) != 0)
		return -1;
	s = NULL;
	if (config_get_string(ld, o, "public_url", section, &s) != 0)
		return -1;
	if (!s)
		return config_fail(ld, "unsubscribe.public_url: missing (the "
				   "https:// address the listener is reached "
				   "at from outside)");
	if (config_base_url(ld, "unsubscribe.public_url", s,
			    &u->public_url) != 0)
		return -1;
	if (config_url_path(ld, u->public_url, &u->public_path) != 0)
		return -1;
	s = NULL;
	if (config_get_string(ld, o, "mailto", section, &s) != 0)
		return -1;
	if (s) {
		if (address_email_normalize(s, addr, sizeof addr) != 0)
			return config_fail(ld, "unsubscribe.mailto: %s is not an "
					   "address \"user@domain\"",
					   config_show(shown, sizeof shown, s));
		if (config_dup(ld, &u->mailto, s) != 0)
			return -1;
	}
	if (config_locale_texts(ld, o, section, "footer", &u->footer,
				&u->n_footer) != 0)
		return -1;
	for (size_t i = 0; i < u->n_footer; i++)
		if (!strstr(u->footer[i].text, "{{unsubscribe_url}}"))
			return config_fail(ld, "unsubscribe.footer.%s: must "
					   "contain {{unsubscribe_url}}",
					   u->footer[i].locale);
	if (config_secret_pair(ld, o, section, "secret", &u->secret) != 0)
		return -1;
	if (!u->secret)
		return config_fail(ld, "unsubscribe.secret_env: missing (or "
				   "unsubscribe.secret_file): the key that "
				   "signs unsubscribe links");
	u->set = true;
	return 0;
}

/* The path part of a base URL ("" or "/rouse"). */
static int config_url_path(struct config_loader *ld, const char *url,
			   char **slot)
{
	char *path = NULL;
	CURLU *u = curl_url();
	if (!u)
		return config_oom(ld);
	int rc = -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
		size_t n = strlen(path);
		while (n > 0 && path[n - 1] == '/')
			path[--n] = '\0';
		rc = config_dup(ld, slot, path);
	} else {
		config_oom(ld);
	}
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static int config_step(struct config_loader *ld, json_t *o, const char *path,
		       struct seq_step *st)
{
	static const char *const known[] = {
		"after", "channel", "template", "vars", "expires_after", NULL
	};
	char key[CONFIG_KEYPATH_MAX];
	const char *s = NULL;
	if (!json_is_object(o))
		return config_fail(ld, "%s: expected an object, got %s", path,
				   config_json_kind(o));
	if (config_check_keys(ld, o, path, known, NULL) != 0)
		return -1;
	config_path_key(key, path, "after");
	if (!json_object_get(o, "after"))
		return config_fail(ld, "%s: missing", key);
	if (config_get_duration(ld, o, "after", path, 0, &st->after_ms,
				NULL) != 0 ||
	    config_get_duration(ld, o, "expires_after", path, 1,
				&st->expires_after_ms, NULL) != 0)
		return -1;
	config_path_key(key, path, "channel");
	if (config_get_string(ld, o, "channel", path, &s) != 0)
		return -1;
	if (!s)
		return config_fail(ld, "%s: missing", key);
	st->channel = channel_parse(s, 0);
	if (st->channel < 0)
		return config_fail(ld, "%s: expected \"email\", \"sms\" or "
				   "\"push\"", key);
	s = NULL;
	config_path_key(key, path, "template");
	if (config_get_string(ld, o, "template", path, &s) != 0)
		return -1;
	if (!s)
		return config_fail(ld, "%s: missing", key);
	if (config_dup(ld, &st->template_name, s) != 0)
		return -1;
	json_t *vars = json_object_get(o, "vars");
	if (vars) {
		config_path_key(key, path, "vars");
		if (!json_is_object(vars))
			return config_fail(ld, "%s: expected an object, got %s",
					   key, config_json_kind(vars));
		st->vars_json = json_dumps(vars, JSON_COMPACT);
		if (!st->vars_json)
			return config_oom(ld);
	}
	return 0;
}

static int config_sequence(struct config_loader *ld, const char *name,
			   json_t *o, struct sequence *seq)
{
	static const char *const known[] = { "exit_on", "steps", NULL };
	char path[CONFIG_KEYPATH_MAX], item[CONFIG_KEYPATH_MAX];
	config_path_key(path, "sequences", name);
	if (!json_is_object(o))
		return config_fail(ld, "%s: expected an object, got %s", path,
				   config_json_kind(o));
	if (config_check_keys(ld, o, path, known, NULL) != 0)
		return -1;
	if (config_dup(ld, &seq->name, name) != 0)
		return -1;
	json_t *exits = json_object_get(o, "exit_on");
	config_path_key(item, path, "exit_on");
	if (exits && !json_is_array(exits))
		return config_fail(ld, "%s: expected an array of event names",
				   item);
	if (exits && json_array_size(exits)) {
		seq->exit_on = calloc(json_array_size(exits), sizeof(char *));
		if (!seq->exit_on)
			return config_oom(ld);
		size_t i;
		json_t *e;
		json_array_foreach(exits, i, e) {
			config_path_index(item, item, 0);
			if (!json_is_string(e) || json_string_length(e) == 0 ||
			    json_string_length(e) > 128)
				return config_fail(ld, "%s.exit_on[%zu]: expected "
						   "an event name", path, i);
			if (config_dup(ld, &seq->exit_on[seq->n_exit_on++],
				       json_string_value(e)) != 0)
				return -1;
		}
	}
	json_t *steps = json_object_get(o, "steps");
	config_path_key(item, path, "steps");
	if (!json_is_array(steps) || json_array_size(steps) == 0)
		return config_fail(ld, "%s: expected a non-empty array of "
				   "steps", item);
	if (json_array_size(steps) > CONFIG_SEQ_STEPS_MAX)
		return config_fail(ld, "%s: more than %d steps", item,
				   CONFIG_SEQ_STEPS_MAX);
	seq->steps = calloc(json_array_size(steps), sizeof *seq->steps);
	if (!seq->steps)
		return config_oom(ld);
	size_t i;
	json_t *st;
	json_array_foreach(steps, i, st) {
		char sp[CONFIG_KEYPATH_MAX];
		config_path_index(sp, item, i);
		seq->n_steps = i + 1;
		if (config_step(ld, st, sp, &seq->steps[i]) != 0)
			return -1;
	}
	return 0;
}

static int config_sequences(struct config_loader *ld, json_t *root)
{
	struct config *cfg = ld->cfg;
	char shown[CONFIG_SHOW_MAX];
	json_t *o;
	if (config_get_object(ld, root, "sequences", NULL, &o) != 0)
		return -1;
	if (!o || json_object_size(o) == 0)
		return 0;
	cfg->sequences = calloc(json_object_size(o), sizeof *cfg->sequences);
	if (!cfg->sequences)
		return config_oom(ld);
	const char *name;
	json_t *seq;
	json_object_foreach(o, name, seq) {
		if (!config_name_ok(name))
			return config_fail(ld, "sequences: %s is not a sequence "
					   "name (letters, digits, '_', '-', "
					   "'.', at most 64)",
					   config_show(shown, sizeof shown, name));
		cfg->n_sequences++;
		if (config_sequence(ld, name, seq,
				    &cfg->sequences[cfg->n_sequences - 1]) != 0)
			return -1;
	}
	return 0;
}

static bool config_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
		      *s == '.'))
			return false;
	return true;
}

static void config_sequences_free(struct sequence *seqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(seqs[i].name);
		for (size_t j = 0; j < seqs[i].n_exit_on; j++)
			free(seqs[i].exit_on[j]);
		free(seqs[i].exit_on);
		for (size_t j = 0; j < seqs[i].n_steps; j++) {
			free(seqs[i].steps[j].template_name);
			free(seqs[i].steps[j].vars_json);
		}
		free(seqs[i].steps);
	}
	free(seqs);
}

static int config_per_user(struct config_loader *ld, json_t *limits)
{
	static const char *const known[] = { "channel", "max", "window", NULL };
	struct config *cfg = ld->cfg;
	char path[CONFIG_KEYPATH_MAX], item[CONFIG_KEYPATH_MAX];
	char shown[CONFIG_SHOW_MAX];
	json_t *arr = json_object_get(limits, "per_user");
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return config_fail(ld, "limits.per_user: expected an array, got %s",
				   config_json_kind(arr));
	if (json_array_size(arr) > CONFIG_PER_USER_MAX)
		return config_fail(ld, "limits.per_user: %zu rules, at most %d "
				   "allowed", json_array_size(arr),
				   CONFIG_PER_USER_MAX);
	if (json_array_size(arr) == 0)
		return 0;
	cfg->caps = calloc(json_array_size(arr), sizeof *cfg->caps);
	if (!cfg->caps)
		return config_oom(ld);
	size_t i;
	json_t *rule;
	json_array_foreach(arr, i, rule) {
		config_path_index(item, "limits.per_user", i);
		if (!json_is_object(rule))
			return config_fail(ld, "%s: expected an object, got %s",
					   item, config_json_kind(rule));
		if (config_check_keys(ld, rule, item, known, NULL) != 0)
			return -1;
		for (size_t k = 0; known[k]; k++) {
			if (!json_object_get(rule, known[k])) {
				config_path_key(path, item, known[k]);
				return config_fail(ld, "%s: missing", path);
			}
		}
		struct cap_rule *cap = &cfg->caps[i];
		const char *ch = NULL;
		if (config_get_string(ld, rule, "channel", item, &ch) != 0)
			return -1;
		if (strcmp(ch, "*") == 0) {
			cap->channel = CH_ALL;
		} else {
			cap->channel = channel_parse(ch, 0);
			if (cap->channel < 0) {
				config_path_key(path, item, "channel");
				return config_fail(ld, "%s: expected \"email\", "
					"\"sms\", \"push\" or \"*\", got %s", path,
					config_show(shown, sizeof shown, ch));
			}
		}
		long long max = 0;
		if (config_get_int(ld, rule, "max", item, 1, INT_MAX, &max) != 0)
			return -1;
		cap->max = (int)max;
		if (config_get_duration(ld, rule, "window", item, 1,
					&cap->window_ms, NULL) != 0)
			return -1;
		cfg->n_caps = i + 1;
	}
	return 0;
}

static int config_limits(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"per_user", "on_limit", "transports", NULL
	};
	static const char *const channels[] = { "email", "sms", "push", NULL };
	static const char *const bucket_keys[] = { "rate", "burst", NULL };
	static const char *const on_limit[] = { "defer", "drop", NULL };
	struct config *cfg = ld->cfg;
	char path[CONFIG_KEYPATH_MAX];
	json_t *o, *t;
	if (config_get_object(ld, root, "limits", NULL, &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, "limits", known, NULL) != 0 ||
	    config_per_user(ld, o) != 0)
		return -1;
	int l = (int)cfg->on_limit;
	if (config_get_enum(ld, o, "on_limit", "limits", on_limit, &l) != 0)
		return -1;
	cfg->on_limit = (enum on_limit)l;
	if (config_get_object(ld, o, "transports", "limits", &t) != 0)
		return -1;
	if (!t)
		return 0;
	if (config_check_keys(ld, t, "limits.transports", channels, NULL) != 0)
		return -1;
	for (int ch = 0; ch < CH_COUNT; ch++) {
		json_t *b;
		if (config_get_object(ld, t, channels[ch], "limits.transports",
				      &b) != 0)
			return -1;
		if (!b)
			continue;
		config_path_key(path, "limits.transports", channels[ch]);
		struct bucket_conf *bc = &cfg->buckets[ch];
		if (config_check_keys(ld, b, path, bucket_keys, NULL) != 0 ||
		    config_get_number(ld, b, "rate", path, 0, true, &bc->rate) != 0 ||
		    config_get_number(ld, b, "burst", path, 1, false, &bc->burst) != 0)
			return -1;
		bc->set = true;
	}
	return 0;
}

static int config_retry(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"max_attempts", "base", "max", NULL
	};
	struct config *cfg = ld->cfg;
	char shown_max[CONFIG_SHOW_MAX], shown_base[CONFIG_SHOW_MAX];
	const char *base_text = "30s", *max_text = "1h";
	json_t *o;
	if (config_get_object(ld, root, "retry", NULL, &o) != 0)
		return -1;
	if (!o)
		return 0;
	if (config_check_keys(ld, o, "retry", known, NULL) != 0)
		return -1;
	long long n = cfg->retry_max_attempts;
	if (config_get_int(ld, o, "max_attempts", "retry", 1,
			   CONFIG_MAX_ATTEMPTS_MAX, &n) != 0)
		return -1;
	cfg->retry_max_attempts = (int)n;
	if (config_get_duration(ld, o, "base", "retry", 1, &cfg->retry_base_ms,
				&base_text) != 0 ||
	    config_get_duration(ld, o, "max", "retry", 1, &cfg->retry_max_ms,
				&max_text) != 0)
		return -1;
	if (cfg->retry_max_ms < cfg->retry_base_ms)
		return config_fail(ld, "retry.max: %s is shorter than retry.base %s",
				   config_show(shown_max, sizeof shown_max, max_text),
				   config_show(shown_base, sizeof shown_base,
					       base_text));
	return 0;
}

static int config_top(struct config_loader *ld, json_t *root)
{
	static const char *const known[] = {
		"data_dir", "templates", "default_locale", "intake", "email",
		"sms", "push", "limits", "retry", "sequences", "quiet_hours",
		"unsubscribe", NULL
	};
	struct config *cfg = ld->cfg;
	char shown[CONFIG_SHOW_MAX];
	if (config_check_keys(ld, root, "", known, NULL) != 0)
		return -1;
	if (config_get_path(ld, root, "data_dir", NULL, cfg->dir, "../var",
			    &cfg->data_dir) != 0 ||
	    config_get_path(ld, root, "templates", NULL, cfg->dir,
			    "../templates", &cfg->templates_dir) != 0)
		return -1;
	const char *locale = NULL;
	if (config_get_string(ld, root, "default_locale", NULL, &locale) != 0)
		return -1;
	if (locale) {
		if (!config_locale_ok(locale))
			return config_fail(ld, "default_locale: %s is not a BCP 47 "
					   "language tag (e.g. en, zh-CN)",
					   config_show(shown, sizeof shown, locale));
		if (config_dup(ld, &cfg->default_locale, locale) != 0)
			return -1;
	}
	if (config_intake(ld, root) != 0 || config_email(ld, root) != 0 ||
	    config_sms(ld, root) != 0 || config_push(ld, root) != 0 ||
	    config_limits(ld, root) != 0 || config_retry(ld, root) != 0 ||
	    config_quiet(ld, root) != 0 || config_unsubscribe(ld, root) != 0 ||
	    config_sequences(ld, root) != 0)
		return -1;
	return 0;
}

struct config_default_text { const char *locale, *text; };

static int config_default_texts(const struct config_default_text *d, size_t n,
				struct locale_text **items, size_t *n_items)
{
	*items = calloc(n, sizeof **items);
	if (!*items)
		return -1;
	for (size_t i = 0; i < n; i++) {
		(*items)[i].locale = strdup(d[i].locale);
		(*items)[i].text = strdup(d[i].text);
		*n_items = i + 1;
		if (!(*items)[i].locale || !(*items)[i].text)
			return -1;
	}
	return 0;
}

/* Fields that do not depend on the file's location or data_dir. */
static int config_defaults(struct config *cfg)
{
	static const struct config_default_text sms_footers[] = {
		{ "en", "Reply STOP to opt out" },
		{ "zh", "\xe5\x9b\x9e\xe5\xa4\x8d" "TD" "\xe9\x80\x80\xe8\xae\xa2" },
	};
	static const struct config_default_text unsub_footers[] = {
		{ "en", "Unsubscribe: {{unsubscribe_url}}" },
		{ "zh", "\xe9\x80\x80\xe8\xae\xa2: {{unsubscribe_url}}" },
	};
	cfg->default_locale = strdup("en");
	cfg->email_from = strdup("rouse <noreply@localhost>");
	cfg->max_line = 1048576;
	cfg->max_connections = 1024;
	cfg->max_pending = 65536;
	cfg->email_transport = EMAIL_TRANSPORT_MAILDIR;
	cfg->smtp.port = 25;
	cfg->smtp.starttls = STARTTLS_IF_AVAILABLE;
	cfg->smtp.sessions = 4;
	cfg->smtp.batch = 50;
	cfg->smtp.timeout_ms = 60 * 1000;
	cfg->sms_transport = TRANSPORT_FILE;
	cfg->sms_on_ambiguous = AMBIGUOUS_FAIL;
	cfg->push_transport = TRANSPORT_FILE;
	cfg->on_limit = ON_LIMIT_DEFER;
	cfg->retry_max_attempts = 8;
	cfg->retry_base_ms = 30 * 1000;
	cfg->retry_max_ms = 3600 * 1000;
	if (!cfg->default_locale || !cfg->email_from)
		return -1;
	if (config_default_texts(sms_footers, 2, &cfg->sms_footer,
				 &cfg->n_sms_footer) != 0 ||
	    config_default_texts(unsub_footers, 2, &cfg->unsub.footer,
				 &cfg->unsub.n_footer) != 0)
		return -1;
	return 0;
}

/* Sets cfg->dir (realpath of the directory named in path) and cfg->path. */
static int config_locate(struct config_loader *ld, const char *path)
{
	struct config *cfg = ld->cfg;
	char ebuf[128];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char *dirname = NULL;
	int rc = -1;
	if (path[0] == '\0') {
		config_fail(ld, "config file name is empty");
		goto out;
	}
	if (base[0] == '\0') {
		config_fail(ld, "%s: not a config file (names a directory)", path);
		goto out;
	}
	if (!slash)
		dirname = strdup(".");
	else if (slash == path)
		dirname = strdup("/");
	else
		dirname = strndup(path, (size_t)(slash - path));
	if (!dirname) {
		config_oom(ld);
		goto out;
	}
	cfg->dir = realpath(dirname, NULL);
	if (!cfg->dir) {
		config_strerror(errno, ebuf, sizeof ebuf);
		config_fail(ld, "%s: %s", path, ebuf);
		goto out;
	}
	cfg->path = config_join(cfg->dir, base);
	if (!cfg->path) {
		config_oom(ld);
		goto out;
	}
	struct stat st;
	if (stat(cfg->path, &st) != 0) {
		config_strerror(errno, ebuf, sizeof ebuf);
		config_fail(ld, "%s: %s", path, ebuf);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_fail(ld, "%s: not a regular file", path);
		goto out;
	}
	rc = 0;
out:
	free(dirname);
	return rc;
}

int config_load(const char *path, struct config **out, char *err,
		size_t errlen)
{
	struct config_loader ld = { .err = err, .errlen = errlen };
	json_t *root = NULL;
	json_error_t jerr;
	int rc = -1;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		config_set_error(err, errlen, "no config file given");
		return -1;
	}
	ld.cfg = calloc(1, sizeof *ld.cfg);
	if (!ld.cfg) {
		config_oom(&ld);
		return -1;
	}
	if (config_defaults(ld.cfg) != 0) {
		config_oom(&ld);
		goto out;
	}
	if (config_locate(&ld, path) != 0)
		goto out;
	root = json_load_file(ld.cfg->path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		char text[sizeof jerr.text] = "";
		config_append_escaped(text, sizeof text, jerr.text,
				      sizeof text - 1, false);
		config_fail(&ld, "%s:%d:%d: %s", ld.cfg->path, jerr.line,
			    jerr.column, text);
		goto out;
	}
	if (!json_is_object(root)) {
		config_fail(&ld, "%s: expected a JSON object at the top level, "
			    "got %s", ld.cfg->path, config_json_kind(root));
		goto out;
	}
	if (config_scan_secrets(&ld, root, "") != 0 ||
	    config_top(&ld, root) != 0)
		goto out;
	*out = ld.cfg;
	ld.cfg = NULL;
	rc = 0;
out:
	json_decref(root);
	config_free(ld.cfg);
	return rc;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->dir);
	free(cfg->data_dir);
	free(cfg->templates_dir);
	free(cfg->default_locale);
	free(cfg->socket_path);
	free(cfg->email_from);
	free(cfg->maildir);
	free(cfg->smtp.host);
	free(cfg->smtp.username);
	if (cfg->smtp.password) {
		explicit_bzero(cfg->smtp.password, strlen(cfg->smtp.password));
		free(cfg->smtp.password);
	}
	free(cfg->smtp.ca_file);
	free(cfg->smtp.helo);
	free(cfg->smtp.envelope_from);
	free(cfg->sms_file);
	free(cfg->sms_from);
	config_locale_texts_free(cfg->sms_footer, cfg->n_sms_footer);
	free(cfg->push_file);
	config_http_free(&cfg->sms_http.http);
	free(cfg->sms_http.account_sid);
	if (cfg->sms_http.auth_token)
		config_wipe_free(cfg->sms_http.auth_token,
				 strlen(cfg->sms_http.auth_token));
	config_http_free(&cfg->fcm.http);
	free(cfg->fcm.service_account_file);
	free(cfg->fcm.project_id);
	config_http_free(&cfg->apns.http);
	free(cfg->apns.topic);
	free(cfg->apns.key_file);
	free(cfg->apns.key_id);
	free(cfg->apns.team_id);
	free(cfg->unsub.listen_host);
	free(cfg->unsub.public_url);
	free(cfg->unsub.public_path);
	if (cfg->unsub.secret)
		config_wipe_free(cfg->unsub.secret, strlen(cfg->unsub.secret));
	free(cfg->unsub.mailto);
	config_locale_texts_free(cfg->unsub.footer, cfg->unsub.n_footer);
	free(cfg->quiet.default_tz);
	config_sequences_free(cfg->sequences, cfg->n_sequences);
	free(cfg->caps);
	free(cfg);
}

/* ---- secrets ---------------------------------------------------------- */

/* Drops one trailing "\n" or "\r\n". */
static size_t config_strip_newline(char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\n') {
		len--;
		if (len > 0 && s[len - 1] == '\r')
			len--;
	}
	s[len] = '\0';
	return len;
}

static void config_wipe_free(char *s, size_t cap)
{
	if (!s)
		return;
	explicit_bzero(s, cap);
	free(s);
}

static int config_secret_from_env(const char *key, const char *name,
				  char **out, char *err, size_t errlen)
{
	const char *v = getenv(name);
	if (!v)
		return config_set_error(err, errlen, "%s: environment variable "
					"%s is not set", key, name);
	size_t len = strlen(v);
	char *copy = malloc(len + 1);
	if (!copy)
		return config_set_error(err, errlen, "%s: out of memory", key);
	memcpy(copy, v, len + 1);
	if (config_strip_newline(copy, len) == 0) {
		config_wipe_free(copy, len + 1);
		return config_set_error(err, errlen, "%s: environment variable "
					"%s is empty", key, name);
	}
	*out = copy;
	return 0;
}

static int config_secret_from_file(const char *key, const char *file,
				   char **out, char *err, size_t errlen)
{
	char ebuf[128];
	char *buf = NULL;
	size_t cap = CONFIG_SECRET_MAX + 2, len = 0;
	int fd = -1, rc = -1;
	struct stat st;

	/* O_NONBLOCK: a FIFO named here is refused below, not waited on. */
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		config_strerror(errno, ebuf, sizeof ebuf);
		config_set_error(err, errlen, "%s: %s: %s", key, file, ebuf);
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		config_strerror(errno, ebuf, sizeof ebuf);
		config_set_error(err, errlen, "%s: %s: %s", key, file, ebuf);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		config_set_error(err, errlen, "%s: %s is not a regular file",
				 key, file);
		goto out;
	}
	if (st.st_mode & 044) {
		config_set_error(err, errlen, "%s: %s is readable by group or "
				 "others (chmod 600)", key, file);
		goto out;
	}
	if (st.st_mode & 033) {
		config_set_error(err, errlen, "%s: %s is writable or executable "
				 "by group or others (chmod 600)", key, file);
		goto out;
	}
	if (st.st_size > CONFIG_SECRET_MAX) {
		config_set_error(err, errlen, "%s: %s is larger than 64 KiB",
				 key, file);
		goto out;
	}
	buf = malloc(cap);
	if (!buf) {
		config_set_error(err, errlen, "%s: out of memory", key);
		goto out;
	}
	/* Read until EOF, not st_size: the file may change under us. */
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			config_strerror(errno, ebuf, sizeof ebuf);
			config_set_error(err, errlen, "%s: %s: %s", key, file, ebuf);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_SECRET_MAX) {
			config_set_error(err, errlen, "%s: %s is larger than "
					 "64 KiB", key, file);
			goto out;
		}
	}
	if (memchr(buf, '\0', len)) {
		config_set_error(err, errlen, "%s: %s contains a NUL byte",
				 key, file);
		goto out;
	}
	len = config_strip_newline(buf, len);
	if (len == 0) {
		config_set_error(err, errlen, "%s: %s is empty", key, file);
		goto out;
	}
	*out = malloc(len + 1);
	if (!*out) {
		config_set_error(err, errlen, "%s: out of memory", key);
		goto out;
	}
	memcpy(*out, buf, len + 1);
	rc = 0;
out:
	config_wipe_free(buf, cap);
	if (fd >= 0)
		close(fd);
	return rc;
}

int config_read_secret(const char *key, const char *env_name,
		       const char *file_path, char **out, char *err,
		       size_t errlen)
{
	*out = NULL;
	if (!key)
		key = "secret";
	if ((env_name == NULL) == (file_path == NULL))
		return config_set_error(err, errlen, "%s: give exactly one of "
					"%s_env or %s_file", key, key, key);
	if (env_name)
		return config_secret_from_env(key, env_name, out, err, errlen);
	return config_secret_from_file(key, file_path, out, err, errlen);
}
