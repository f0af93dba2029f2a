/* request.c: decoding and validation of one intake request line.
 *
 * A line is decoded by jansson (which checks JSON syntax and UTF-8,
 * including overlong forms, stray bytes and lone surrogate escapes, and
 * refuses "\u0000" and duplicate keys); the object's op selects a table of
 * allowed fields and a validator that copies each field into struct
 * request. Validation is strict: an unknown top-level field is refused
 * rather than ignored, so a typo ("expire") cannot silently drop a
 * constraint. Types are strict too: JSON null is not "absent".
 *
 * The first problem found is the only one reported. Its message starts
 * with the JSON path of the field ("to.token: expected a string"). Every
 * message is printable ASCII: bytes taken from the request (an unknown op,
 * an unknown field name, jansson's "near '...'" excerpt) are escaped and
 * cut short, so a message can always be embedded in a JSON response.
 *
 * Borrowed strings and json_t pointers in struct request point into
 * req->root and live until request_release. The module is pure: no I/O,
 * no clock, no global state.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "channel.h"
#include "request.h"
#include "timefmt.h"

#define REQ_USER_MAX 200
#define REQ_TEMPLATE_MAX 100
#define REQ_LOCALE_MAX 35
#define REQ_TZ_MAX 64
#define REQ_TOKEN_MAX 4096
#define REQ_SOURCE_MAX 100
#define REQ_REASON_MAX 1000
#define REQ_JOB_MAX 64
#define REQ_VARS_DEPTH_MAX 32
#define REQ_NAME_MAX 128         /* sequence and event names */

/* How much of a client-supplied string is quoted back in a message. */
#define REQ_QUOTE_MAX 48

static const char *const request_fields_send[] = {
	"op", "id", "key", "user", "channel", "to", "template", "locale",
	"vars", "at", "expires", "tz", NULL
};
static const char *const request_fields_optout[] = {
	"op", "id", "user", "address", "channel", "source", "reason", NULL
};
static const char *const request_fields_status[] = {
	"op", "id", "job", "enrollment", NULL
};
static const char *const request_fields_preview[] = {
	"op", "id", "template", "channel", "locale", "vars", NULL
};
static const char *const request_fields_consent[] = {
	"op", "id", "user", "address", NULL
};
static const char *const request_fields_bare[] = { "op", "id", NULL };
static const char *const request_fields_enroll[] = {
	"op", "id", "user", "sequence", "locale", "tz", "contact", "vars", NULL
};
static const char *const request_fields_event[] = {
	"op", "id", "user", "name", NULL
};

struct request_op_def {
	const char *name;
	enum op op;
	const char *const *fields;   /* NULL: fields not checked here */
};

static const struct request_op_def request_ops[] = {
	{ "send", OP_SEND, request_fields_send },
	{ "unsubscribe", OP_UNSUBSCRIBE, request_fields_optout },
	{ "resubscribe", OP_RESUBSCRIBE, request_fields_optout },
	{ "status", OP_STATUS, request_fields_status },
	{ "preview", OP_PREVIEW, request_fields_preview },
	{ "stats", OP_STATS, request_fields_bare },
	{ "ping", OP_PING, request_fields_bare },
	{ "consent", OP_CONSENT, request_fields_consent },
	{ "enroll", OP_ENROLL, request_fields_enroll },
	{ "event", OP_EVENT, request_fields_event },
};

__attribute__((format(printf, 3, 4)))
static int request_fail(struct request_error *err, const char *code,
			const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

/* Copies s into buf as printable ASCII: '"' and '\\' and every byte outside
 * 0x20..0x7e become \xNN; cut at REQ_QUOTE_MAX input bytes with "...". */
static void request_quote(const char *s, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i;

	for (i = 0; s[i] && i < REQ_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (o + 1 >= cap)
				break;
			buf[o++] = (char)c;
		} else {
			if (o + 4 >= cap)
				break;
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		}
	}
	if (s[i] && o + 3 < cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

/* Copies jansson's error text, replacing anything outside printable ASCII. */
static void request_ascii(const char *s, char *buf, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 1 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[o] = '\0';
}

static const char *request_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

/* Fetches obj[key] as a string. Absent: *out = NULL and 0, or an error when
 * required. path is the field's name in messages. */
static int request_string(json_t *obj, const char *key, const char *path,
			  bool required, const char **out, size_t *len,
			  struct request_error *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (len)
		*len = 0;
	if (!v) {
		if (required)
			return request_fail(err, "bad_request", "%s: required", path);
		return 0;
	}
	if (!json_is_string(v))
		return request_fail(err, "bad_request",
				    "%s: expected a string, got %s", path,
				    request_type_name(v));
	*out = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	return 0;
}

/* C0 controls, DEL and the UTF-8 encodings of C1 controls (U+0080..U+009F).
 * The input is valid UTF-8 (jansson checked it). */
static bool request_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
		if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f)
			return true;
	}
	return false;
}

/* Free text: non-empty unless allow_empty, at most max bytes, and (when
 * no_control) without control characters. */
static int request_check_text(const char *path, const char *s, size_t len,
			      size_t max, bool allow_empty, bool no_control,
			      struct request_error *err)
{
	if (len == 0 && !allow_empty)
		return request_fail(err, "bad_request", "%s: empty", path);
	if (len > max)
		return request_fail(err, "bad_request",
				    "%s: longer than %zu bytes", path, max);
	if (no_control && request_has_control(s, len))
		return request_fail(err, "bad_request",
				    "%s: contains a control character", path);
	return 0;
}

/* A short token made only of the bytes listed in `extra` plus ASCII
 * letters and digits. */
static int request_check_token(const char *path, const char *s, size_t len,
			       size_t max, const char *extra,
			       const char *what, struct request_error *err)
{
	if (len == 0)
		return request_fail(err, "bad_request", "%s: empty", path);
	if (len > max)
		return request_fail(err, "bad_request",
				    "%s: longer than %zu bytes", path, max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c != '\0' && strchr(extra, c) != NULL)
			continue;
		return request_fail(err, "bad_request", "%s: %s", path, what);
	}
	return 0;
}

static int request_user(struct request *req, bool required,
			struct request_error *err)
{
	size_t len;

	if (request_string(req->root, "user", "user", required, &req->user,
			   &len, err) != 0)
		return -1;
	if (!req->user)
		return 0;
	return request_check_text("user", req->user, len, REQ_USER_MAX, false,
				  true, err);
}

static int request_key(struct request *req, struct request_error *err)
{
	size_t len;

	if (request_string(req->root, "key", "key", false, &req->key, &len,
			   err) != 0)
		return -1;
	if (!req->key)
		return 0;
	return request_check_text("key", req->key, len, REQ_KEY_MAX, false,
				  false, err);
}

/* channel: email|sms|push, plus "all" when allow_all. */
static int request_channel(struct request *req, bool allow_all,
			   struct request_error *err)
{
	const char *name;
	char quoted[REQ_QUOTE_MAX * 4 + 8];

	if (request_string(req->root, "channel", "channel", true, &name, NULL,
			   err) != 0)
		return -1;
	req->channel = channel_parse(name, allow_all);
	if (req->channel == -2) {
		request_quote(name, quoted, sizeof quoted);
		return request_fail(err, "unknown_channel",
				    "channel: unknown channel \"%s\" (expected "
				    "email, sms, push%s)", quoted,
				    allow_all ? " or all" : "");
	}
	return 0;
}

static int request_template(struct request *req, struct request_error *err)
{
	size_t len;

	if (request_string(req->root, "template", "template", true,
			   &req->template_name, &len, err) != 0)
		return -1;
	return request_check_token("template", req->template_name, len,
				   REQ_TEMPLATE_MAX, "_-",
				   "only letters, digits, '_' and '-' allowed",
				   err);
}

static int request_locale(struct request *req, struct request_error *err)
{
	size_t len;

	if (request_string(req->root, "locale", "locale", false, &req->locale,
			   &len, err) != 0)
		return -1;
	if (!req->locale)
		return 0;
	return request_check_token("locale", req->locale, len, REQ_LOCALE_MAX,
				   "-", "not a language tag (e.g. zh-CN)", err);
}

/* depth: nesting level of v, where vars itself is level 1; only objects
 * and arrays count as levels. */
static bool request_depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *child;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return true;
	if (depth > REQ_VARS_DEPTH_MAX)
		return false;
	if (json_is_object(v)) {
		json_object_foreach(v, k, child) {
			if (!request_depth_ok(child, depth + 1))
				return false;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			if (!request_depth_ok(child, depth + 1))
				return false;
		}
	}
	return true;
}

static int request_vars(struct request *req, struct request_error *err)
{
	json_t *v = json_object_get(req->root, "vars");

	if (!v)
		return 0;
	if (!json_is_object(v))
		return request_fail(err, "bad_request",
				    "vars: expected an object, got %s",
				    request_type_name(v));
	if (!request_depth_ok(v, 1))
		return request_fail(err, "bad_request",
				    "vars: nested deeper than %d",
				    REQ_VARS_DEPTH_MAX);
	req->vars = v;
	return 0;
}

static int request_time(struct request *req, const char *key, int64_t *ms,
			bool *present, struct request_error *err)
{
	const char *s;

	*present = false;
	if (request_string(req->root, key, key, false, &s, NULL, err) != 0)
		return -1;
	if (!s)
		return 0;
	if (rfc3339_parse(s, ms) != 0)
		return request_fail(err, "bad_request",
				    "%s: not an RFC 3339 date-time "
				    "(e.g. 2026-11-24T02:00:00Z)", key);
	*present = true;
	return 0;
}

/* An IANA zone name's shape ("Asia/Shanghai", "Etc/GMT+8"); whether the
 * zone exists is checked where it is loaded. The name ends up in a path
 * under the zoneinfo directory, so "..", a leading or trailing '/' and
 * "//" are refused here. */
static int request_tz(struct request *req, struct request_error *err)
{
	size_t len;

	if (request_string(req->root, "tz", "tz", false, &req->tz, &len,
			   err) != 0)
		return -1;
	if (!req->tz)
		return 0;
	if (request_check_token("tz", req->tz, len, REQ_TZ_MAX, "_+/-",
				"not an IANA time zone name (e.g. Asia/Shanghai)",
				err) != 0)
		return -1;
	if (strstr(req->tz, "..") || strstr(req->tz, "//") ||
	    req->tz[0] == '/' || req->tz[len - 1] == '/')
		return request_fail(err, "bad_request",
				    "tz: not an IANA time zone name "
				    "(e.g. Asia/Shanghai)");
	return 0;
}

/* {"platform": "fcm"|"apns", "token": "..."} at path ("to",
 * "contact.push[0]"). */
static int request_push_target(json_t *to, const char *path, int *platform,
			       const char **token, size_t *len,
			       struct request_error *err)
{
	const char *k;
	json_t *v;
	const char *name;
	char quoted[REQ_QUOTE_MAX * 4 + 8], sub[64];

	if (!json_is_object(to))
		return request_fail(err, "bad_request",
				    "%s: expected an object "
				    "{\"platform\",\"token\"}, got %s", path,
				    request_type_name(to));
	json_object_foreach(to, k, v) {
		if (strcmp(k, "platform") != 0 && strcmp(k, "token") != 0) {
			request_quote(k, quoted, sizeof quoted);
			return request_fail(err, "bad_request",
					    "%s.%s: unknown field", path, quoted);
		}
	}
	snprintf(sub, sizeof sub, "%s.platform", path);
	if (request_string(to, "platform", sub, true, &name, NULL, err) != 0)
		return -1;
	if (strcmp(name, "fcm") == 0)
		*platform = 0;
	else if (strcmp(name, "apns") == 0)
		*platform = 1;
	else
		return request_fail(err, "bad_request",
				    "%s: expected \"fcm\" or \"apns\"", sub);
	snprintf(sub, sizeof sub, "%s.token", path);
	if (request_string(to, "token", sub, true, token, len, err) != 0)
		return -1;
	if (*len == 0)
		return request_fail(err, "bad_request", "%s: empty", sub);
	if (*len > REQ_TOKEN_MAX)
		return request_fail(err, "bad_request",
				    "%s: longer than %d bytes", sub,
				    REQ_TOKEN_MAX);
	for (size_t i = 0; i < *len; i++) {
		unsigned char c = (unsigned char)(*token)[i];
		if (c <= 0x20 || c >= 0x7f)
			return request_fail(err, "bad_request",
					    "%s: only printable ASCII "
					    "without spaces allowed", sub);
	}
	return 0;
}

static int request_push_to(struct request *req, json_t *to,
			   struct request_error *err)
{
	size_t len;
	if (request_push_target(to, "to", &req->push_platform,
				&req->push_token, &len, err) != 0)
		return -1;
	if (len < sizeof req->to)
		memcpy(req->to, req->push_token, len + 1);
	return 0;
}

static int request_to(struct request *req, struct request_error *err)
{
	json_t *to = json_object_get(req->root, "to");
	const char *s;

	if (!to)
		return request_fail(err, "bad_request", "to: required");
	if (req->channel == CH_PUSH)
		return request_push_to(req, to, err);
	if (request_string(req->root, "to", "to", true, &s, NULL, err) != 0)
		return -1;
	if (req->channel == CH_EMAIL) {
		if (address_email_normalize(s, req->to, sizeof req->to) != 0)
			return request_fail(err, "bad_request",
					    "to: not a valid email address");
	} else {
		if (address_phone_normalize(s, req->to, sizeof req->to) != 0)
			return request_fail(err, "bad_request",
					    "to: not an E.164 number "
					    "(e.g. +8613800138000)");
	}
	return 0;
}

static int request_send(struct request *req, struct request_error *err)
{
	bool has_at, has_expires;

	if (request_key(req, err) != 0 ||
	    request_user(req, true, err) != 0 ||
	    request_channel(req, false, err) != 0 ||
	    request_to(req, err) != 0 ||
	    request_template(req, err) != 0 ||
	    request_locale(req, err) != 0 ||
	    request_vars(req, err) != 0 ||
	    request_time(req, "at", &req->at_ms, &has_at, err) != 0 ||
	    request_time(req, "expires", &req->expires_ms, &has_expires,
			 err) != 0 ||
	    request_tz(req, err) != 0)
		return -1;
	if (has_at && has_expires && req->expires_ms < req->at_ms)
		return request_fail(err, "bad_request", "expires: before at");
	return 0;
}

/* user and/or address, at least one; address normalised. */
static int request_subject(struct request *req, struct request_error *err)
{
	const char *addr;

	if (request_user(req, false, err) != 0)
		return -1;
	if (request_string(req->root, "address", "address", false, &addr,
			   NULL, err) != 0)
		return -1;
	if (!req->user && !addr)
		return request_fail(err, "bad_request",
				    "user or address: one is required");
	if (addr && address_normalize(addr, req->address,
				      sizeof req->address) != 0)
		return request_fail(err, "bad_request",
				    "address: not a valid email address or "
				    "E.164 number");
	return 0;
}

static int request_optout(struct request *req, struct request_error *err)
{
	size_t len;

	if (request_subject(req, err) != 0 ||
	    request_channel(req, true, err) != 0)
		return -1;
	if (request_string(req->root, "source", "source", false, &req->source,
			   &len, err) != 0)
		return -1;
	if (!req->source)
		req->source = "api";
	else if (request_check_text("source", req->source, len,
				    REQ_SOURCE_MAX, false, true, err) != 0)
		return -1;
	if (request_string(req->root, "reason", "reason", false, &req->reason,
			   &len, err) != 0)
		return -1;
	if (req->reason && request_check_text("reason", req->reason, len,
					      REQ_REASON_MAX, true, false,
					      err) != 0)
		return -1;
	return 0;
}

static int request_status(struct request *req, struct request_error *err)
{
	size_t len;
	const char *enr = NULL;

	if (request_string(req->root, "enrollment", "enrollment", false, &enr,
			   &len, err) != 0)
		return -1;
	if (enr) {
		if (json_object_get(req->root, "job"))
			return request_fail(err, "bad_request",
					    "job: give job or enrollment, "
					    "not both");
		req->enrollment = enr;
		return request_check_text("enrollment", enr, len, REQ_JOB_MAX,
					  false, true, err);
	}
	if (request_string(req->root, "job", "job", true, &req->job, &len,
			   err) != 0)
		return -1;
	return request_check_text("job", req->job, len, REQ_JOB_MAX, false,
				  true, err);
}

static int request_preview(struct request *req, struct request_error *err)
{
	if (request_template(req, err) != 0 ||
	    request_channel(req, false, err) != 0 ||
	    request_locale(req, err) != 0 ||
	    request_vars(req, err) != 0)
		return -1;
	return 0;
}

/* A sequence or event name: 1..REQ_NAME_MAX printable bytes. */
static int request_name(struct request *req, const char *key,
			const char **out, struct request_error *err)
{
	size_t len;
	if (request_string(req->root, key, key, true, out, &len, err) != 0)
		return -1;
	return request_check_text(key, *out, len, REQ_NAME_MAX, false, true,
				  err);
}

static int request_contact(struct request *req, struct request_error *err)
{
	json_t *c = json_object_get(req->root, "contact");
	const char *k, *s;
	json_t *v;
	char quoted[REQ_QUOTE_MAX * 4 + 8], path[48];

	if (!c)
		return request_fail(err, "bad_request", "contact: required");
	if (!json_is_object(c))
		return request_fail(err, "bad_request",
				    "contact: expected an object, got %s",
				    request_type_name(c));
	json_object_foreach(c, k, v) {
		if (strcmp(k, "email") != 0 && strcmp(k, "phone") != 0 &&
		    strcmp(k, "push") != 0) {
			request_quote(k, quoted, sizeof quoted);
			return request_fail(err, "bad_request",
					    "contact.%s: unknown field", quoted);
		}
	}
	s = NULL;
	if (request_string(c, "email", "contact.email", false, &s, NULL,
			   err) != 0)
		return -1;
	if (s && address_email_normalize(s, req->contact_email,
					 sizeof req->contact_email) != 0)
		return request_fail(err, "bad_request",
				    "contact.email: not a valid email address");
	s = NULL;
	if (request_string(c, "phone", "contact.phone", false, &s, NULL,
			   err) != 0)
		return -1;
	if (s && address_phone_normalize(s, req->contact_phone,
					 sizeof req->contact_phone) != 0)
		return request_fail(err, "bad_request",
				    "contact.phone: not an E.164 number "
				    "(e.g. +8613800138000)");
	json_t *push = json_object_get(c, "push");
	if (!push)
		return 0;
	if (!json_is_array(push))
		return request_fail(err, "bad_request",
				    "contact.push: expected an array of "
				    "{\"platform\",\"token\"}, got %s",
				    request_type_name(push));
	if (json_array_size(push) > REQ_PUSH_TOKENS_MAX)
		return request_fail(err, "bad_request",
				    "contact.push: more than %d tokens",
				    REQ_PUSH_TOKENS_MAX);
	size_t i;
	json_array_foreach(push, i, v) {
		size_t len;
		snprintf(path, sizeof path, "contact.push[%zu]", i);
		if (request_push_target(v, path,
					&req->contact_push[i].platform,
					&req->contact_push[i].token, &len,
					err) != 0)
			return -1;
		req->n_contact_push = i + 1;
	}
	return 0;
}

static int request_enroll(struct request *req, struct request_error *err)
{
	if (request_user(req, true, err) != 0 ||
	    request_name(req, "sequence", &req->sequence, err) != 0 ||
	    request_locale(req, err) != 0 ||
	    request_tz(req, err) != 0 ||
	    request_vars(req, err) != 0 ||
	    request_contact(req, err) != 0)
		return -1;
	return 0;
}

static int request_event(struct request *req, struct request_error *err)
{
	if (request_user(req, true, err) != 0 ||
	    request_name(req, "name", &req->event_name, err) != 0)
		return -1;
	return 0;
}

static int request_check_fields(struct request *req,
				const struct request_op_def *def,
				struct request_error *err)
{
	const char *k;
	json_t *v;
	char quoted[REQ_QUOTE_MAX * 4 + 8];

	if (!def->fields)
		return 0;
	json_object_foreach(req->root, k, v) {
		size_t i;
		for (i = 0; def->fields[i]; i++)
			if (strcmp(k, def->fields[i]) == 0)
				break;
		if (!def->fields[i]) {
			request_quote(k, quoted, sizeof quoted);
			return request_fail(err, "bad_request",
					    "%s: unknown field for op %s",
					    quoted, def->name);
		}
	}
	return 0;
}

int request_parse(const char *line, size_t len, struct request *req,
		  struct request_error *err)
{
	json_error_t jerr;
	const char *opname;
	const struct request_op_def *def = NULL;
	char text[sizeof jerr.text];
	char quoted[REQ_QUOTE_MAX * 4 + 8];

	memset(req, 0, sizeof *req);
	err->code = NULL;
	err->message[0] = '\0';

	req->root = json_loadb(line, len,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req->root) {
		request_ascii(jerr.text, text, sizeof text);
		return request_fail(err, "bad_json",
				    "invalid JSON at column %d: %s",
				    jerr.column, text);
	}
	if (!json_is_object(req->root))
		return request_fail(err, "bad_json",
				    "request must be a JSON object, got %s",
				    request_type_name(req->root));
	req->id = json_object_get(req->root, "id");

	if (request_string(req->root, "op", "op", true, &opname, NULL,
			   err) != 0)
		return -1;
	for (size_t i = 0; i < sizeof request_ops / sizeof request_ops[0]; i++) {
		if (strcmp(opname, request_ops[i].name) == 0) {
			def = &request_ops[i];
			break;
		}
	}
	if (!def) {
		request_quote(opname, quoted, sizeof quoted);
		return request_fail(err, "unknown_op", "op: unknown op \"%s\"",
				    quoted);
	}
	req->op = def->op;
	if (request_check_fields(req, def, err) != 0)
		return -1;

	switch (req->op) {
	case OP_SEND:
		return request_send(req, err);
	case OP_UNSUBSCRIBE:
	case OP_RESUBSCRIBE:
		return request_optout(req, err);
	case OP_STATUS:
		return request_status(req, err);
	case OP_PREVIEW:
		return request_preview(req, err);
	case OP_CONSENT:
		return request_subject(req, err);
	case OP_ENROLL:
		return request_enroll(req, err);
	case OP_EVENT:
		return request_event(req, err);
	case OP_STATS:
	case OP_PING:
		return 0;
	}
	return 0;
}

void request_release(struct request *req)
{
	json_decref(req->root);
	memset(req, 0, sizeof *req);
}
