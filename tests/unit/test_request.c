/* test_request.c: request_parse on a table of lines (expected error code
 * and a substring of the message, usually the field path), then each op's
 * happy path with its fields checked, id echo, and generated edge cases
 * (key length, vars depth). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "request.h"
#include "testutil.h"

struct row {
	const char *line;
	size_t len;            /* 0: strlen(line) */
	const char *code;      /* NULL: must parse */
	const char *msg;       /* substring of the message */
};

#define SEND_HEAD "{\"op\":\"send\",\"user\":\"u42\",\"template\":\"winback\","

static const struct row rows[] = {
	/* bad JSON, checklist 36 */
	{ "{\"op\":\"ping\"", 0, "bad_json", "invalid JSON" },
	{ "not json", 0, "bad_json", "column" },
	{ "", 0, "bad_json", "invalid JSON" },
	{ "[{\"op\":\"ping\"}]", 0, "bad_json", "request must be a JSON object" },
	{ "42", 0, "bad_json", "request must be a JSON object" },
	{ "\"ping\"", 0, "bad_json", "request must be a JSON object" },
	{ "null", 0, "bad_json", "request must be a JSON object" },
	{ "{\"op\":\"ping\",\"id\":\"\xc0\xaf\"}", 0, "bad_json", "unable to decode byte 0xc0" },
	{ "{\"op\":\"ping\",\"id\":\"\\ud800\"}", 0, "bad_json", "invalid Unicode" },
	{ "{\"op\":\"ping\",\"id\":\"\\udc00x\"}", 0, "bad_json", "invalid Unicode" },
	{ "{\"op\":\"ping\",\"id\":\"\xff\"}", 0, "bad_json", "unable to decode byte 0xff" },
	{ "{\"op\":\"ping\",\"id\":\"\xed\xa0\x80\"}", 0, "bad_json", "unable to decode" },
	{ "{\"op\":\"ping\",\"id\":\"a\\u0000b\"}", 0, "bad_json", "\\u0000" },
	{ "{\"op\":\"ping\",\"op\":\"stats\"}", 0, "bad_json", "duplicate object key" },
	{ "{\"op\":\"ping\"} {}", 0, "bad_json", "end of file expected" },
	{ "{\"op\":\"ping\"}\0", 14, "bad_json", "invalid JSON" },
	{ "{\"op\":\"ping\",\"id\":\"\x01\"}", 0, "bad_json", "control character" },

	/* op */
	{ "{}", 0, "bad_request", "op: required" },
	{ "{\"id\":1}", 0, "bad_request", "op: required" },
	{ "{\"op\":7}", 0, "bad_request", "op: expected a string" },
	{ "{\"op\":null}", 0, "bad_request", "op: expected a string" },
	{ "{\"op\":\"foo\"}", 0, "unknown_op", "op: unknown op \"foo\"" },
	{ "{\"op\":\"PING\"}", 0, "unknown_op", "op: unknown op \"PING\"" },
	{ "{\"op\":\"\"}", 0, "unknown_op", "op: unknown op \"\"" },
	{ "{\"op\":\"a\\\"b\\n\"}", 0, "unknown_op", "op: unknown op \"a\\x22b\\x0a\"" },
	{ "{\"op\":\"\xe4\xb8\xad\"}", 0, "unknown_op", "\"\\xe4\\xb8\\xad\"" },

	/* unknown fields */
	{ "{\"op\":\"ping\",\"x\":1}", 0, "bad_request", "x: unknown field for op ping" },
	{ "{\"op\":\"stats\",\"verbose\":true}", 0, "bad_request", "verbose: unknown field" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"expire\":\"2026-11-30T00:00:00Z\"}", 0,
	  "bad_request", "expire: unknown field for op send" },
	{ "{\"op\":\"status\",\"job\":\"j1\",\"user\":\"u\"}", 0, "bad_request", "user: unknown field for op status" },
	{ "{\"op\":\"consent\",\"user\":\"u\",\"channel\":\"sms\"}", 0, "bad_request", "channel: unknown field for op consent" },
	{ "{\"op\":\"preview\",\"template\":\"t\",\"channel\":\"sms\",\"to\":\"+8613800138000\"}", 0,
	  "bad_request", "to: unknown field for op preview" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"all\",\"tz\":\"UTC\"}", 0,
	  "bad_request", "tz: unknown field for op unsubscribe" },

	/* send: required fields and types */
	{ "{\"op\":\"send\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"t\"}", 0, "bad_request", "user: required" },
	{ "{\"op\":\"send\",\"user\":42,\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"t\"}", 0,
	  "bad_request", "user: expected a string" },
	{ "{\"op\":\"send\",\"user\":\"\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"t\"}", 0, "bad_request", "user: empty" },
	{ "{\"op\":\"send\",\"user\":\"a\\nb\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"t\"}", 0,
	  "bad_request", "user: contains a control character" },
	{ "{\"op\":\"send\",\"user\":\"a\\u0085b\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"t\"}", 0,
	  "bad_request", "user: contains a control character" },
	{ SEND_HEAD "\"to\":\"a@b.co\"}", 0, "bad_request", "channel: required" },
	{ SEND_HEAD "\"channel\":1,\"to\":\"a@b.co\"}", 0, "bad_request", "channel: expected a string" },
	{ SEND_HEAD "\"channel\":\"fax\",\"to\":\"a@b.co\"}", 0, "unknown_channel", "channel: unknown channel \"fax\"" },
	{ SEND_HEAD "\"channel\":\"all\",\"to\":\"a@b.co\"}", 0, "unknown_channel", "channel:" },
	{ SEND_HEAD "\"channel\":\"Email\",\"to\":\"a@b.co\"}", 0, "unknown_channel", "channel:" },
	{ SEND_HEAD "\"channel\":\"email\"}", 0, "bad_request", "to: required" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":[\"a@b.co\"]}", 0, "bad_request", "to: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"not-an-address\"}", 0, "bad_request", "to: not a valid email address" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"A <a@b.co>\"}", 0, "bad_request", "to: not a valid email address" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\\r\\nBcc: x@y.co\"}", 0, "bad_request", "to: not a valid email address" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co, c@d.co\"}", 0, "bad_request", "to: not a valid email address" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":\"8613800138000\"}", 0, "bad_request", "to: not an E.164 number" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":\"+0613800138000\"}", 0, "bad_request", "to: not an E.164 number" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":\"+86 138 0013 8000\"}", 0, "bad_request", "to: not an E.164 number" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":\"+1234567\"}", 0, "bad_request", "to: not an E.164 number" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":\"+1234567890123456\"}", 0, "bad_request", "to: not an E.164 number" },
	{ SEND_HEAD "\"channel\":\"sms\",\"to\":13800138000}", 0, "bad_request", "to: expected a string" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":\"tok\"}", 0, "bad_request", "to: expected an object" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"token\":\"t\"}}", 0, "bad_request", "to.platform: required" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"gcm\",\"token\":\"t\"}}", 0,
	  "bad_request", "to.platform: expected \"fcm\" or \"apns\"" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":1,\"token\":\"t\"}}", 0,
	  "bad_request", "to.platform: expected a string" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\"}}", 0, "bad_request", "to.token: required" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\",\"token\":5}}", 0,
	  "bad_request", "to.token: expected a string" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\",\"token\":\"\"}}", 0, "bad_request", "to.token: empty" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\",\"token\":\"a b\"}}", 0, "bad_request", "to.token:" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\",\"token\":\"\xc3\xa9\"}}", 0, "bad_request", "to.token:" },
	{ SEND_HEAD "\"channel\":\"push\",\"to\":{\"platform\":\"fcm\",\"token\":\"t\",\"topic\":\"x\"}}", 0,
	  "bad_request", "to.topic: unknown field" },
	{ "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"email\",\"to\":\"a@b.co\"}", 0, "bad_request", "template: required" },
	{ "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"../etc\"}", 0,
	  "bad_request", "template: only letters" },
	{ "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":\"\"}", 0,
	  "bad_request", "template: empty" },
	{ "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"email\",\"to\":\"a@b.co\",\"template\":[]}", 0,
	  "bad_request", "template: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"key\":7}", 0, "bad_request", "key: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"key\":\"\"}", 0, "bad_request", "key: empty" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"locale\":\"zh_CN\"}", 0, "bad_request", "locale: not a language tag" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"locale\":true}", 0, "bad_request", "locale: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"locale\":\"zh-CN-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", 0,
	  "bad_request", "locale: longer than 35 bytes" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"vars\":[1]}", 0, "bad_request", "vars: expected an object" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"vars\":\"x\"}", 0, "bad_request", "vars: expected an object" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":1764000000}", 0, "bad_request", "at: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":null}", 0, "bad_request", "at: expected a string" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":\"tomorrow\"}", 0, "bad_request", "at: not an RFC 3339 date-time" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":\"2026-02-30T00:00:00Z\"}", 0,
	  "bad_request", "at: not an RFC 3339 date-time" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":\"2026-11-24 02:00:00\"}", 0,
	  "bad_request", "at: not an RFC 3339 date-time" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"expires\":\"x\"}", 0, "bad_request", "expires: not an RFC 3339" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":\"2026-11-24T02:00:00Z\",\"expires\":\"2026-11-24T01:59:59Z\"}", 0,
	  "bad_request", "expires: before at" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"../../etc/passwd\"}", 0, "bad_request", "tz: not an IANA" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"/etc/localtime\"}", 0, "bad_request", "tz: not an IANA" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"Asia Shanghai\"}", 0, "bad_request", "tz: not an IANA" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"\"}", 0, "bad_request", "tz: empty" },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":8}", 0, "bad_request", "tz: expected a string" },

	/* unsubscribe / resubscribe / consent / status / preview */
	{ "{\"op\":\"unsubscribe\",\"channel\":\"email\"}", 0, "bad_request", "user or address: one is required" },
	{ "{\"op\":\"resubscribe\",\"channel\":\"email\"}", 0, "bad_request", "user or address: one is required" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\"}", 0, "bad_request", "channel: required" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"fax\"}", 0, "unknown_channel", "channel: unknown channel \"fax\"" },
	{ "{\"op\":\"unsubscribe\",\"address\":\"nobody\",\"channel\":\"all\"}", 0, "bad_request", "address: not a valid" },
	{ "{\"op\":\"unsubscribe\",\"address\":\"+12\",\"channel\":\"sms\"}", 0, "bad_request", "address: not a valid" },
	{ "{\"op\":\"unsubscribe\",\"address\":[],\"channel\":\"sms\"}", 0, "bad_request", "address: expected a string" },
	{ "{\"op\":\"unsubscribe\",\"user\":7,\"channel\":\"sms\"}", 0, "bad_request", "user: expected a string" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"sms\",\"source\":\"\"}", 0, "bad_request", "source: empty" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"sms\",\"source\":1}", 0, "bad_request", "source: expected a string" },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"sms\",\"reason\":{}}", 0, "bad_request", "reason: expected a string" },
	{ "{\"op\":\"consent\"}", 0, "bad_request", "user or address: one is required" },
	{ "{\"op\":\"consent\",\"address\":\"a@@b.co\"}", 0, "bad_request", "address: not a valid" },
	{ "{\"op\":\"status\"}", 0, "bad_request", "job: required" },
	{ "{\"op\":\"status\",\"job\":12}", 0, "bad_request", "job: expected a string" },
	{ "{\"op\":\"status\",\"job\":\"\"}", 0, "bad_request", "job: empty" },
	{ "{\"op\":\"status\",\"job\":\"0123456789012345678901234567890123456789012345678901234567890123x\"}", 0,
	  "bad_request", "job: longer than 64 bytes" },
	{ "{\"op\":\"preview\",\"channel\":\"email\"}", 0, "bad_request", "template: required" },
	{ "{\"op\":\"preview\",\"template\":\"t\"}", 0, "bad_request", "channel: required" },
	{ "{\"op\":\"preview\",\"template\":\"t\",\"channel\":\"all\"}", 0, "unknown_channel", "channel:" },
	{ "{\"op\":\"preview\",\"template\":\"t\",\"channel\":\"sms\",\"vars\":3}", 0, "bad_request", "vars: expected an object" },

	/* accepted */
	{ "{\"op\":\"ping\"}", 0, NULL, NULL },
	{ " {\"op\":\"ping\"}\r", 0, NULL, NULL },
	{ "{\"op\":\"stats\",\"id\":null}", 0, NULL, NULL },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{}}", 0, NULL, NULL },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\"}", 0, "bad_request", "contact: required" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"contact\":{}}", 0, "bad_request", "sequence: required" },
	{ "{\"op\":\"enroll\",\"sequence\":\"s\",\"contact\":{}}", 0, "bad_request", "user: required" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{\"fax\":\"1\"}}", 0, "bad_request", "contact.fax: unknown field" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{\"email\":\"x\"}}", 0, "bad_request", "contact.email: not a valid email address" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{\"phone\":\"12\"}}", 0, "bad_request", "contact.phone: not an E.164 number" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{\"push\":{}}}", 0, "bad_request", "contact.push: expected an array" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{\"push\":[{\"platform\":\"wns\",\"token\":\"t\"}]}}", 0, "bad_request", "contact.push[0].platform: expected" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{},\"at\":\"x\"}", 0, "bad_request", "at: unknown field for op enroll" },
	{ "{\"op\":\"enroll\",\"user\":\"u\",\"sequence\":\"s\",\"contact\":{},\"tz\":\"Mars/Base\"}", 0, NULL, NULL },
	{ "{\"op\":\"event\",\"user\":\"u\"}", 0, "bad_request", "name: required" },
	{ "{\"op\":\"event\",\"user\":\"u\",\"name\":\"\"}", 0, "bad_request", "name: empty" },
	{ "{\"op\":\"event\",\"name\":\"p\"}", 0, "bad_request", "user: required" },
	{ "{\"op\":\"event\",\"user\":\"u\",\"name\":\"purchase\"}", 0, NULL, NULL },
	{ "{\"op\":\"unsubscribe\",\"address\":\"+8613800138000\",\"channel\":\"sms\"}", 0, NULL, NULL },
	{ "{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"sms\",\"reason\":\"\"}", 0, NULL, NULL },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"at\":\"2026-11-24T02:00:00Z\",\"expires\":\"2026-11-24T02:00:00Z\"}", 0, NULL, NULL },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"Etc/GMT+8\"}", 0, NULL, NULL },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\",\"tz\":\"America/Port-au-Prince\"}", 0, NULL, NULL },
	{ SEND_HEAD "\"channel\":\"email\",\"to\":\"a@xn--fiqs8s.xn--fiqs8s\"}", 0, NULL, NULL },
};

static bool is_printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Parses line and checks code and message; returns the parse result with
 * req still held (caller releases). */
static int check_line(const char *line, size_t len, const char *code,
		      const char *msg, struct request *req, int lineno)
{
	struct request_error err;
	int rc = request_parse(line, len, req, &err);

	if (!code) {
		if (rc != 0)
			fprintf(stderr, "row %d: unexpected error %s: %s\n",
				lineno, err.code, err.message);
		ASSERT_EQ_INT(rc, 0);
		return rc;
	}
	ASSERT_EQ_INT(rc, -1);
	if (rc != -1) {
		fprintf(stderr, "row %d: accepted, expected %s\n", lineno, code);
		return rc;
	}
	ASSERT_EQ_STR(err.code, code);
	ASSERT_TRUE(is_printable_ascii(err.message));
	if (!err.code || strcmp(err.code, code) != 0 ||
	    !strstr(err.message, msg)) {
		fprintf(stderr, "row %d: got %s \"%s\", expected %s \"...%s...\"\n",
			lineno, err.code ? err.code : "(null)", err.message,
			code, msg);
		testutil_failures++;
	}
	return rc;
}

static void test_table(void)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct request req;
		const struct row *r = &rows[i];
		size_t len = r->len ? r->len : strlen(r->line);
		check_line(r->line, len, r->code, r->msg, &req, (int)i);
		request_release(&req);
		ASSERT_TRUE(req.root == NULL);
	}
}

static int parse_str(const char *line, struct request *req,
		     struct request_error *err)
{
	return request_parse(line, strlen(line), req, err);
}

static void test_send_email(void)
{
	struct request req;
	struct request_error err;
	const char *line =
		"{\"op\":\"send\",\"id\":1,\"key\":\"winback-2026-11:u42:email\","
		"\"user\":\"u42\",\"channel\":\"email\",\"to\":\"Alice@Example.COM\","
		"\"template\":\"winback\",\"locale\":\"zh-CN\","
		"\"vars\":{\"name\":\"\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e\","
		"\"brand\":\"\xe5\x95\x86\xe5\xba\x97\",\"amount\":\"\xc2\xa5" "20\","
		"\"n\":3,\"items\":[{\"sku\":\"A\"}],\"ok\":true,\"none\":null},"
		"\"at\":\"2026-11-24T02:00:00Z\",\"expires\":\"2026-11-30T00:00:00Z\","
		"\"tz\":\"Asia/Shanghai\"}";

	ASSERT_EQ_INT(parse_str(line, &req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_SEND);
	ASSERT_TRUE(json_is_integer(req.id) && json_integer_value(req.id) == 1);
	ASSERT_EQ_STR(req.key, "winback-2026-11:u42:email");
	ASSERT_EQ_STR(req.user, "u42");
	ASSERT_EQ_INT(req.channel, CH_EMAIL);
	ASSERT_EQ_STR(req.to, "alice@example.com");
	ASSERT_EQ_STR(req.template_name, "winback");
	ASSERT_EQ_STR(req.locale, "zh-CN");
	ASSERT_TRUE(json_is_object(req.vars));
	ASSERT_EQ_STR(json_string_value(json_object_get(req.vars, "name")),
		      "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e");
	ASSERT_EQ_STR(json_string_value(json_object_get(req.vars, "brand")),
		      "\xe5\x95\x86\xe5\xba\x97");
	ASSERT_EQ_STR(json_string_value(json_object_get(req.vars, "amount")),
		      "\xc2\xa5" "20");
	ASSERT_EQ_INT(req.at_ms, INT64_C(1795485600000));
	ASSERT_EQ_INT(req.expires_ms, INT64_C(1795996800000));
	ASSERT_EQ_STR(req.tz, "Asia/Shanghai");
	ASSERT_TRUE(req.address[0] == '\0');
	request_release(&req);
}

static void test_send_minimal(void)
{
	struct request req;
	struct request_error err;

	ASSERT_EQ_INT(parse_str("{\"op\":\"send\",\"user\":\"u\",\"channel\":\"sms\","
				"\"to\":\"+8613800138000\",\"template\":\"otp_code-2\"}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_SEND);
	ASSERT_TRUE(req.id == NULL);
	ASSERT_TRUE(req.key == NULL);
	ASSERT_EQ_INT(req.channel, CH_SMS);
	ASSERT_EQ_STR(req.to, "+8613800138000");
	ASSERT_EQ_STR(req.template_name, "otp_code-2");
	ASSERT_TRUE(req.locale == NULL);
	ASSERT_TRUE(req.vars == NULL);
	ASSERT_EQ_INT(req.at_ms, 0);
	ASSERT_EQ_INT(req.expires_ms, 0);
	ASSERT_TRUE(req.tz == NULL);
	request_release(&req);
}

static void test_send_push(void)
{
	struct request req;
	struct request_error err;
	char line[6000];
	char token[4097];

	ASSERT_EQ_INT(parse_str("{\"op\":\"send\",\"user\":\"u\",\"channel\":\"push\","
				"\"to\":{\"platform\":\"apns\",\"token\":\"abc123:def\"},"
				"\"template\":\"t\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.channel, CH_PUSH);
	ASSERT_EQ_INT(req.push_platform, 1);
	ASSERT_EQ_STR(req.push_token, "abc123:def");
	ASSERT_EQ_STR(req.to, "abc123:def");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"send\",\"user\":\"u\",\"channel\":\"push\","
				"\"to\":{\"token\":\"f-1\",\"platform\":\"fcm\"},"
				"\"template\":\"t\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.push_platform, 0);
	ASSERT_EQ_STR(req.push_token, "f-1");
	request_release(&req);

	/* A 4096-byte token is accepted whole; 4097 is refused. */
	memset(token, 'k', 4096);
	token[4096] = '\0';
	snprintf(line, sizeof line, "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"push\","
		 "\"to\":{\"platform\":\"fcm\",\"token\":\"%s\"},\"template\":\"t\"}", token);
	ASSERT_EQ_INT(parse_str(line, &req, &err), 0);
	ASSERT_TRUE(req.push_token && strlen(req.push_token) == 4096);
	ASSERT_EQ_STR(req.to, "");
	request_release(&req);
	snprintf(line, sizeof line, "{\"op\":\"send\",\"user\":\"u\",\"channel\":\"push\","
		 "\"to\":{\"platform\":\"fcm\",\"token\":\"%sk\"},\"template\":\"t\"}", token);
	ASSERT_EQ_INT(parse_str(line, &req, &err), -1);
	ASSERT_EQ_STR(err.code, "bad_request");
	ASSERT_TRUE(strstr(err.message, "to.token: longer than 4096") != NULL);
	request_release(&req);
}

/* checklist 36: a 201-byte key is refused naming key; 200 bytes pass. */
static void test_key_length(void)
{
	struct request req;
	struct request_error err;
	char key[REQ_KEY_MAX + 2];
	char line[600];

	memset(key, 'k', REQ_KEY_MAX);
	key[REQ_KEY_MAX] = '\0';
	snprintf(line, sizeof line, SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\","
		 "\"key\":\"%s\",\"id\":\"k200\"}", key);
	ASSERT_EQ_INT(parse_str(line, &req, &err), 0);
	ASSERT_TRUE(req.key && strlen(req.key) == REQ_KEY_MAX);
	request_release(&req);

	key[REQ_KEY_MAX] = 'k';
	key[REQ_KEY_MAX + 1] = '\0';
	snprintf(line, sizeof line, SEND_HEAD "\"channel\":\"email\",\"to\":\"a@b.co\","
		 "\"key\":\"%s\",\"id\":\"k201\"}", key);
	ASSERT_EQ_INT(parse_str(line, &req, &err), -1);
	ASSERT_EQ_STR(err.code, "bad_request");
	ASSERT_EQ_STR(err.message, "key: longer than 200 bytes");
	ASSERT_EQ_STR(json_string_value(req.id), "k201");
	request_release(&req);

	/* Bytes, not characters: 67 three-byte characters = 201 bytes. */
	size_t o = (size_t)snprintf(line, sizeof line, SEND_HEAD "\"channel\":\"email\","
				    "\"to\":\"a@b.co\",\"key\":\"");
	for (int i = 0; i < 67; i++) {
		memcpy(line + o, "\xe4\xb8\xad", 3);
		o += 3;
	}
	snprintf(line + o, sizeof line - o, "\"}");
	ASSERT_EQ_INT(parse_str(line, &req, &err), -1);
	ASSERT_TRUE(strstr(err.message, "key: longer than 200 bytes") != NULL);
	request_release(&req);

	/* user: 200 bytes ok, 201 not. */
	memset(key, 'u', 200);
	key[200] = '\0';
	snprintf(line, sizeof line, "{\"op\":\"consent\",\"user\":\"%s\"}", key);
	ASSERT_EQ_INT(parse_str(line, &req, &err), 0);
	request_release(&req);
	snprintf(line, sizeof line, "{\"op\":\"consent\",\"user\":\"%su\"}", key);
	ASSERT_EQ_INT(parse_str(line, &req, &err), -1);
	ASSERT_TRUE(strstr(err.message, "user: longer than 200 bytes") != NULL);
	request_release(&req);
}

/* vars itself is level 1: 32 levels pass, 33 are refused. */
static void test_vars_depth(void)
{
	struct request req;
	struct request_error err;
	char line[1024];

	for (int levels = 31; levels <= 33; levels++) {
		size_t o = (size_t)snprintf(line, sizeof line,
			"{\"op\":\"preview\",\"template\":\"t\",\"channel\":\"email\",\"vars\":");
		for (int i = 1; i < levels; i++)
			o += (size_t)snprintf(line + o, sizeof line - o,
					      i % 2 ? "{\"a\":" : "[");
		o += (size_t)snprintf(line + o, sizeof line - o, "{\"x\":1}");
		for (int i = levels - 1; i >= 1; i--)
			o += (size_t)snprintf(line + o, sizeof line - o,
					      i % 2 ? "}" : "]");
		snprintf(line + o, sizeof line - o, "}");
		int rc = parse_str(line, &req, &err);
		if (levels <= 32) {
			ASSERT_EQ_INT(rc, 0);
			ASSERT_TRUE(json_is_object(req.vars));
		} else {
			ASSERT_EQ_INT(rc, -1);
			ASSERT_EQ_STR(err.message, "vars: nested deeper than 32");
		}
		request_release(&req);
	}
}

static void test_optout(void)
{
	struct request req;
	struct request_error err;

	ASSERT_EQ_INT(parse_str("{\"op\":\"unsubscribe\",\"user\":\"u42\",\"channel\":\"email\","
				"\"source\":\"app-settings\",\"reason\":\"too many mails\"}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_UNSUBSCRIBE);
	ASSERT_EQ_STR(req.user, "u42");
	ASSERT_EQ_STR(req.address, "");
	ASSERT_EQ_INT(req.channel, CH_EMAIL);
	ASSERT_EQ_STR(req.source, "app-settings");
	ASSERT_EQ_STR(req.reason, "too many mails");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"unsubscribe\",\"address\":\"+8613800138000\","
				"\"channel\":\"sms\",\"source\":\"sms-reply\"}", &req, &err), 0);
	ASSERT_TRUE(req.user == NULL);
	ASSERT_EQ_STR(req.address, "+8613800138000");
	ASSERT_EQ_INT(req.channel, CH_SMS);
	ASSERT_TRUE(req.reason == NULL);
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"resubscribe\",\"id\":\"r\",\"user\":\"u\","
				"\"address\":\"Bob@Mail.Example.ORG\",\"channel\":\"all\"}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_RESUBSCRIBE);
	ASSERT_EQ_STR(req.address, "bob@mail.example.org");
	ASSERT_EQ_INT(req.channel, CH_ALL);
	ASSERT_EQ_STR(req.source, "api");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"unsubscribe\",\"user\":\"u\",\"channel\":\"push\"}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.channel, CH_PUSH);
	request_release(&req);
}

static void test_other_ops(void)
{
	struct request req;
	struct request_error err;

	ASSERT_EQ_INT(parse_str("{\"op\":\"status\",\"job\":\"j-0001\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_STATUS);
	ASSERT_EQ_STR(req.job, "j-0001");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"preview\",\"template\":\"winback\",\"channel\":\"sms\","
				"\"locale\":\"zh-CN\",\"vars\":{\"name\":\"\xe5\xbc\xa0\xe4\xb8\x89\"}}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_PREVIEW);
	ASSERT_EQ_STR(req.template_name, "winback");
	ASSERT_EQ_INT(req.channel, CH_SMS);
	ASSERT_EQ_STR(req.locale, "zh-CN");
	ASSERT_EQ_STR(json_string_value(json_object_get(req.vars, "name")),
		      "\xe5\xbc\xa0\xe4\xb8\x89");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"consent\",\"address\":\"Alice@Example.com\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_CONSENT);
	ASSERT_EQ_STR(req.address, "alice@example.com");
	ASSERT_TRUE(req.user == NULL);
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"consent\",\"user\":\"u42\"}", &req, &err), 0);
	ASSERT_EQ_STR(req.user, "u42");
	ASSERT_EQ_STR(req.address, "");
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"stats\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_STATS);
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"id\":9,\"op\":\"ping\"}", &req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_PING);
	ASSERT_EQ_INT(json_integer_value(req.id), 9);
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"enroll\",\"user\":\"u42\",\"sequence\":\"winback_30d\","
				"\"locale\":\"zh-CN\",\"tz\":\"Asia/Shanghai\",\"vars\":{\"name\":\"A\"},"
				"\"contact\":{\"email\":\"Alice@Example.COM\",\"phone\":\"+8613800138000\","
				"\"push\":[{\"platform\":\"fcm\",\"token\":\"t1\"},"
				"{\"platform\":\"apns\",\"token\":\"t2\"}]}}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_ENROLL);
	ASSERT_EQ_STR(req.user, "u42");
	ASSERT_EQ_STR(req.sequence, "winback_30d");
	ASSERT_EQ_STR(req.tz, "Asia/Shanghai");
	ASSERT_EQ_STR(req.contact_email, "alice@example.com");
	ASSERT_EQ_STR(req.contact_phone, "+8613800138000");
	ASSERT_EQ_INT((int)req.n_contact_push, 2);
	ASSERT_EQ_INT(req.contact_push[0].platform, 0);
	ASSERT_EQ_STR(req.contact_push[0].token, "t1");
	ASSERT_EQ_INT(req.contact_push[1].platform, 1);
	ASSERT_EQ_STR(req.contact_push[1].token, "t2");
	ASSERT_TRUE(json_is_object(req.vars));
	request_release(&req);

	ASSERT_EQ_INT(parse_str("{\"op\":\"event\",\"user\":\"u42\",\"name\":\"purchase\"}",
				&req, &err), 0);
	ASSERT_EQ_INT(req.op, OP_EVENT);
	ASSERT_EQ_STR(req.event_name, "purchase");
	request_release(&req);
}

/* The id comes back exactly, on success and on validation failures. */
static void test_id_echo(void)
{
	static const struct {
		const char *line;
		const char *id_json;  /* compact encoding of the expected id */
		int rc;
	} cases[] = {
		{ "{\"op\":\"ping\",\"id\":12345678901234}", "12345678901234", 0 },
		{ "{\"op\":\"ping\",\"id\":-1.5}", "-1.5", 0 },
		{ "{\"op\":\"ping\",\"id\":\"abc\\u00e9\"}", "\"abc\\u00E9\"", 0 },
		{ "{\"op\":\"ping\",\"id\":{\"a\":[1,2,{\"b\":null}]}}", "{\"a\":[1,2,{\"b\":null}]}", 0 },
		{ "{\"op\":\"ping\",\"id\":null}", "null", 0 },
		{ "{\"op\":\"ping\",\"id\":false}", "false", 0 },
		{ "{\"id\":7}", "7", -1 },
		{ "{\"id\":\"x\",\"op\":\"nope\"}", "\"x\"", -1 },
		{ "{\"op\":\"ping\",\"id\":[1],\"extra\":0}", "[1]", -1 },
		{ "{\"op\":\"send\",\"id\":{\"n\":1},\"user\":\"u\",\"channel\":\"sms\","
		  "\"to\":\"12\",\"template\":\"t\"}", "{\"n\":1}", -1 },
		{ "{\"op\":\"status\",\"id\":null}", "null", -1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct request req;
		struct request_error err;
		int rc = parse_str(cases[i].line, &req, &err);
		ASSERT_EQ_INT(rc, cases[i].rc);
		ASSERT_TRUE(req.id != NULL);
		if (req.id) {
			char *enc = json_dumps(req.id, JSON_COMPACT | JSON_ENCODE_ANY |
					       JSON_ENSURE_ASCII);
			ASSERT_EQ_STR(enc, cases[i].id_json);
			free(enc);
		}
		request_release(&req);
	}

	/* Undecodable lines have no id. */
	struct request req;
	struct request_error err;
	ASSERT_EQ_INT(parse_str("{\"id\":1,", &req, &err), -1);
	ASSERT_TRUE(req.id == NULL);
	request_release(&req);
	ASSERT_EQ_INT(parse_str("[{\"id\":1}]", &req, &err), -1);
	ASSERT_TRUE(req.id == NULL);
	request_release(&req);
}

int main(void)
{
	test_table();
	test_send_email();
	test_send_minimal();
	test_send_push();
	test_key_length();
	test_vars_depth();
	test_optout();
	test_other_ops();
	test_id_echo();
	TEST_DONE();
}
