/* test_config.c: the strict config loader and secret reading.
 *
 * Each case writes a config file into a fresh temporary directory, loads
 * it, and checks either the loaded values or the exact error message (so
 * the key path named in it is checked too).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

static char tmpdir[256];

static void write_file(const char *path, const char *content, size_t len,
		       mode_t mode)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	if (len && fwrite(content, 1, len, f) != len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	if (chmod(path, mode) != 0) {
		perror(path);
		exit(1);
	}
}

/* Writes content to <tmpdir>/rouse.json and returns that path. */
static const char *write_config(const char *content)
{
	static char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/rouse.json", tmpdir);
	write_file(path, content, strlen(content), 0644);
	return path;
}

static struct config *load_ok_at(int line, const char *path)
{
	char err[512] = "";
	struct config *cfg = NULL;
	int rc = config_load(path, &cfg, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "line %d: load failed: %s\n", line, err);
	ASSERT_EQ_INT(rc, 0);
	return cfg;
}

#define load_ok(content) load_ok_at(__LINE__, write_config(content))

/* Loads content and asserts the exact error (with "$F" standing for the
 * config file's path), that *out is NULL and that `never` (if given) does
 * not appear in the message. */
static void expect_err_at(int line, const char *content, const char *expected,
			  const char *never)
{
	char err[512] = "", want[PATH_MAX * 2 + 1024];
	struct config *cfg = (struct config *)&cfg; /* must be reset */
	const char *path = write_config(content);
	int rc = config_load(path, &cfg, err, sizeof err);
	const char *f = strstr(expected, "$F");
	if (f)
		snprintf(want, sizeof want, "%.*s%s%s", (int)(f - expected),
			 expected, path, f + 2);
	else
		snprintf(want, sizeof want, "%s", expected);
	if (rc != -1 || strcmp(err, want) != 0)
		fprintf(stderr, "line %d: config %s\n", line, content);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(cfg == NULL);
	ASSERT_EQ_STR(err, want);
	if (never)
		ASSERT_TRUE(strstr(err, never) == NULL);
	if (rc == 0)
		config_free(cfg);
}

#define expect_err(content, expected) \
	expect_err_at(__LINE__, content, expected, NULL)

static char *joined(const char *a, const char *b)
{
	static char buf[2][PATH_MAX];
	static int which;
	which ^= 1;
	snprintf(buf[which], PATH_MAX, "%s/%s", a, b);
	return buf[which];
}

static void test_unknown_keys(void)
{
	expect_err("{\"data_dr\": \"x\"}", "unknown key: data_dr");
	expect_err("{\"email\": {\"form\": \"a@b.example\"}}",
		   "unknown key: email.form");
	expect_err("{\"intake\": {\"max_lines\": 300}}",
		   "unknown key: intake.max_lines");
	expect_err("{\"limits\": {\"per_user\": ["
		   "{\"channel\": \"email\", \"max\": 1, \"window\": \"24h\"},"
		   "{\"channel\": \"sms\", \"max\": 1, \"windw\": \"1h\"}]}}",
		   "unknown key: limits.per_user[1].windw");
	expect_err("{\"limits\": {\"transports\": {\"fax\": {}}}}",
		   "unknown key: limits.transports.fax");
	expect_err("{\"limits\": {\"transports\": {\"sms\": "
		   "{\"rate\": 1, \"burst\": 1, \"burts\": 2}}}}",
		   "unknown key: limits.transports.sms.burts");
	expect_err("{\"retry\": {\"attempts\": 3}}", "unknown key: retry.attempts");
	expect_err("{\"sms\": {\"footers\": {}}}", "unknown key: sms.footers");
	expect_err("{\"push\": {\"tokens_file\": \"x\"}}",
		   "unknown key: push.tokens_file");
	/* Control bytes in a key are escaped: the message stays one line. */
	expect_err("{\"a\\nb\": 1}", "unknown key: a\\x0ab");
	/* A huge key is shortened. */
	char big[2200] = "{\"";
	memset(big + 2, 'k', 2000);
	memcpy(big + 2002, "\": 1}", 6);
	char err[512];
	struct config *cfg = NULL;
	ASSERT_EQ_INT(config_load(write_config(big), &cfg, err, sizeof err), -1);
	ASSERT_TRUE(strncmp(err, "unknown key: kkkk", 17) == 0);
	ASSERT_TRUE(strlen(err) < 300);
	ASSERT_TRUE(strstr(err, "...") != NULL);
	/* A long bad value is shortened too (UTF-8 kept whole). */
	char longval[600];
	int n = snprintf(longval, sizeof longval, "{\"default_locale\": \"");
	for (int i = 0; i < 150; i++)
		n += snprintf(longval + n, sizeof longval - (size_t)n, "\u00e9");
	snprintf(longval + n, sizeof longval - (size_t)n, "\"}");
	ASSERT_EQ_INT(config_load(write_config(longval), &cfg, err, sizeof err), -1);
	ASSERT_TRUE(strncmp(err, "default_locale: \"\xc3\xa9\xc3\xa9", 20) == 0);
	ASSERT_TRUE(strstr(err, "\xc3\xa9...\" is not a BCP 47") != NULL);
	ASSERT_TRUE(strlen(err) < 160);
	for (int len = 70; len < 90; len++) {
		n = snprintf(longval, sizeof longval, "{\"default_locale\": \"");
		memset(longval + n, '+', (size_t)len);
		snprintf(longval + n + len, sizeof longval - (size_t)(n + len), "\"}");
		ASSERT_EQ_INT(config_load(write_config(longval), &cfg, err,
					  sizeof err), -1);
		ASSERT_TRUE(strncmp(err, "default_locale: \"++++", 21) == 0);
		ASSERT_TRUE(strlen(err) < 160);
	}
	/* A tiny error buffer is filled, not overrun. */
	char small[12];
	ASSERT_EQ_INT(config_load(write_config("{\"xyzzy\": 1}"), &cfg, small,
				  sizeof small), -1);
	ASSERT_EQ_STR(small, "unknown key");
	ASSERT_EQ_INT(config_load(write_config("{\"xyzzy\": 1}"), &cfg, NULL, 0),
		      -1);
}

static void test_inline_secrets(void)
{
	const char *sentinel = "hunter2-SENTINEL";
	expect_err_at(__LINE__,
		"{\"email\": {\"smtp\": {\"password\": \"hunter2-SENTINEL\"}}}",
		"email.smtp.password: secrets are not accepted inline; "
		"use password_env or password_file", sentinel);
	expect_err_at(__LINE__,
		"{\"sms\": {\"http\": {\"auth_token\": \"hunter2-SENTINEL\"}}}",
		"sms.http.auth_token: secrets are not accepted inline; "
		"use auth_token_env or auth_token_file", sentinel);
	expect_err_at(__LINE__,
		"{\"unsubscribe\": {\"secret\": \"hunter2-SENTINEL\"}}",
		"unsubscribe.secret: secrets are not accepted inline; "
		"use secret_env or secret_file", sentinel);
	expect_err("{\"push\": {\"apns\": {\"key\": \"-----BEGIN\"}}}",
		   "push.apns.key: secrets are not accepted inline; "
		   "use key_env or key_file");
	expect_err("{\"token\": \"t\"}",
		   "token: secrets are not accepted inline; "
		   "use token_env or token_file");
	expect_err("{\"email\": {\"smtp_password\": \"p\"}}",
		   "email.smtp_password: secrets are not accepted inline; "
		   "use smtp_password_env or smtp_password_file");
	expect_err("{\"x\": {\"webhook_secret\": {\"v\": 1}}}",
		   "x.webhook_secret: secrets are not accepted inline; "
		   "use webhook_secret_env or webhook_secret_file");
	expect_err("{\"limits\": {\"per_user\": [{}, {\"api_token\": \"t\"}]}}",
		   "limits.per_user[1].api_token: secrets are not accepted "
		   "inline; use api_token_env or api_token_file");
	/* The secret check wins over an unknown or unsupported key seen
	 * earlier in the file. */
	expect_err("{\"bogus\": 1, \"quiet_hours\": {}, "
		   "\"email\": {\"smtp\": {\"password\": \"x\"}}}",
		   "email.smtp.password: secrets are not accepted inline; "
		   "use password_env or password_file");
	/* Keys that name where a secret lives are not secrets themselves. */
	expect_err("{\"email\": {\"smtp\": {\"password_env\": \"X\"}}}",
		   "email.smtp.password_env: needs email.smtp.username");
	expect_err("{\"push\": {\"apns\": {\"key_file\": \"/k\", \"key_id\": \"A\"}}}",
		   "push.apns.topic: missing");
}

static void test_durations(void)
{
	expect_err("{\"retry\": {\"base\": \"5x\"}}",
		   "retry.base: invalid duration \"5x\" "
		   "(use e.g. 30s, 15m, 24h, 7d)");
	expect_err("{\"limits\": {\"per_user\": ["
		   "{\"channel\": \"email\", \"max\": 1, \"window\": \"24h\"},"
		   "{\"channel\": \"*\", \"max\": 3, \"window\": \"5x\"}]}}",
		   "limits.per_user[1].window: invalid duration \"5x\" "
		   "(use e.g. 30s, 15m, 24h, 7d)");
	expect_err("{\"retry\": {\"max\": \"1.5h\"}}",
		   "retry.max: invalid duration \"1.5h\" "
		   "(use e.g. 30s, 15m, 24h, 7d)");
	expect_err("{\"retry\": {\"base\": \"\"}}",
		   "retry.base: invalid duration \"\" "
		   "(use e.g. 30s, 15m, 24h, 7d)");
	expect_err("{\"retry\": {\"base\": \"a\\\"b\"}}",
		   "retry.base: invalid duration \"a\\\"b\" "
		   "(use e.g. 30s, 15m, 24h, 7d)");
	expect_err("{\"retry\": {\"base\": 30}}",
		   "retry.base: expected a duration string such as \"30s\", "
		   "got an integer");
	expect_err("{\"limits\": {\"per_user\": "
		   "[{\"channel\": \"sms\", \"max\": 1, \"window\": \"0s\"}]}}",
		   "limits.per_user[0].window: duration \"0s\" must be "
		   "greater than 0");
	expect_err("{\"retry\": {\"base\": \"0ms\"}}",
		   "retry.base: duration \"0ms\" must be greater than 0");
	expect_err("{\"retry\": {\"max\": \"3651d\"}}",
		   "retry.max: duration \"3651d\" is longer than 3650d");
	expect_err("{\"retry\": {\"base\": \"2h\"}}",
		   "retry.max: \"1h\" is shorter than retry.base \"2h\"");
	expect_err("{\"retry\": {\"base\": \"10m\", \"max\": \"5m\"}}",
		   "retry.max: \"5m\" is shorter than retry.base \"10m\"");
	struct config *cfg = load_ok("{\"retry\": {\"base\": \"1h\", \"max\": \"1h\","
				     " \"max_attempts\": 1}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->retry_base_ms, 3600000);
		ASSERT_EQ_INT(cfg->retry_max_ms, 3600000);
		ASSERT_EQ_INT(cfg->retry_max_attempts, 1);
		config_free(cfg);
	}
}

static void test_numbers(void)
{
	expect_err("{\"limits\": {\"transports\": {\"sms\": "
		   "{\"rate\": -5, \"burst\": 10}}}}",
		   "limits.transports.sms.rate: -5 must be greater than 0");
	expect_err("{\"limits\": {\"transports\": {\"push\": "
		   "{\"rate\": 0, \"burst\": 10}}}}",
		   "limits.transports.push.rate: 0 must be greater than 0");
	expect_err("{\"limits\": {\"transports\": {\"email\": "
		   "{\"rate\": -0.5, \"burst\": 10}}}}",
		   "limits.transports.email.rate: -0.5 must be greater than 0");
	expect_err("{\"limits\": {\"transports\": {\"email\": "
		   "{\"rate\": 5, \"burst\": 0.5}}}}",
		   "limits.transports.email.burst: 0.5 must be at least 1");
	expect_err("{\"limits\": {\"transports\": {\"email\": {\"rate\": 5}}}}",
		   "limits.transports.email.burst: missing");
	expect_err("{\"limits\": {\"transports\": {\"email\": "
		   "{\"rate\": \"5\", \"burst\": 1}}}}",
		   "limits.transports.email.rate: expected a number, got a string");
	expect_err("{\"limits\": {\"transports\": {\"email\": "
		   "{\"rate\": 1e300, \"burst\": 1}}}}",
		   "limits.transports.email.rate: 1e+300 is too large");
	expect_err("{\"intake\": {\"max_line\": 255}}",
		   "intake.max_line: 255 is out of range (256..67108864)");
	expect_err("{\"intake\": {\"max_line\": 67108865}}",
		   "intake.max_line: 67108865 is out of range (256..67108864)");
	expect_err("{\"intake\": {\"max_connections\": 0}}",
		   "intake.max_connections: 0 is out of range (1..1048576)");
	expect_err("{\"intake\": {\"max_pending\": -1}}",
		   "intake.max_pending: -1 is out of range (1..2147483647)");
	expect_err("{\"intake\": {\"max_pending\": 9999999999}}",
		   "intake.max_pending: 9999999999 is out of range (1..2147483647)");
	expect_err("{\"retry\": {\"max_attempts\": 0}}",
		   "retry.max_attempts: 0 is out of range (1..1000)");
	expect_err("{\"limits\": {\"per_user\": "
		   "[{\"channel\": \"email\", \"max\": 0, \"window\": \"1h\"}]}}",
		   "limits.per_user[0].max: 0 is out of range (1..2147483647)");

	struct config *cfg = load_ok(
		"{\"intake\": {\"max_line\": 256, \"max_connections\": 1,"
		" \"max_pending\": 1},"
		" \"limits\": {\"transports\": {\"sms\": {\"rate\": 0.5, \"burst\": 1}}}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->max_line, 256);
		ASSERT_EQ_INT(cfg->max_connections, 1);
		ASSERT_EQ_INT(cfg->max_pending, 1);
		ASSERT_TRUE(cfg->buckets[CH_SMS].set);
		ASSERT_TRUE(cfg->buckets[CH_SMS].rate == 0.5);
		ASSERT_TRUE(cfg->buckets[CH_SMS].burst == 1.0);
		ASSERT_TRUE(!cfg->buckets[CH_EMAIL].set);
		ASSERT_TRUE(!cfg->buckets[CH_PUSH].set);
		config_free(cfg);
	}
}

static void test_types_and_values(void)
{
	expect_err("{\"intake\": {\"max_line\": \"big\"}}",
		   "intake.max_line: expected an integer, got a string");
	expect_err("{\"intake\": {\"max_line\": 1048576.0}}",
		   "intake.max_line: expected an integer, got a number with a fraction");
	expect_err("{\"email\": []}", "email: expected an object, got an array");
	expect_err("{\"intake\": true}", "intake: expected an object, got a boolean");
	expect_err("{\"data_dir\": 5}", "data_dir: expected a string, got an integer");
	expect_err("{\"templates\": \"\"}", "templates: must not be empty");
	expect_err("{\"sms\": {\"from\": null}}", "sms.from: expected a string, got null");
	expect_err("{\"limits\": {\"per_user\": {}}}",
		   "limits.per_user: expected an array, got an object");
	expect_err("{\"limits\": {\"per_user\": [5]}}",
		   "limits.per_user[0]: expected an object, got an integer");
	expect_err("{\"limits\": {\"per_user\": [{\"channel\": \"email\", \"max\": 1}]}}",
		   "limits.per_user[0].window: missing");
	expect_err("{\"limits\": {\"per_user\": "
		   "[{\"channel\": \"fax\", \"max\": 1, \"window\": \"1h\"}]}}",
		   "limits.per_user[0].channel: expected \"email\", \"sms\", "
		   "\"push\" or \"*\", got \"fax\"");
	expect_err("{\"limits\": {\"per_user\": "
		   "[{\"channel\": \"all\", \"max\": 1, \"window\": \"1h\"}]}}",
		   "limits.per_user[0].channel: expected \"email\", \"sms\", "
		   "\"push\" or \"*\", got \"all\"");
	expect_err("{\"limits\": {\"on_limit\": \"queue\"}}",
		   "limits.on_limit: expected \"defer\" or \"drop\", got \"queue\"");
	expect_err("{\"sms\": {\"on_ambiguous\": \"maybe\"}}",
		   "sms.on_ambiguous: expected \"fail\" or \"retry\", got \"maybe\"");
	expect_err("{\"email\": {\"transport\": \"pigeon\"}}",
		   "email.transport: expected \"maildir\" or \"smtp\", got \"pigeon\"");
	expect_err("{\"default_locale\": \"english_US\"}",
		   "default_locale: \"english_US\" is not a BCP 47 language tag "
		   "(e.g. en, zh-CN)");
	expect_err("{\"default_locale\": \"zh-\"}",
		   "default_locale: \"zh-\" is not a BCP 47 language tag "
		   "(e.g. en, zh-CN)");
	expect_err("{\"default_locale\": 1}",
		   "default_locale: expected a string, got an integer");

	static const char *const bad_from[] = {
		"noreply", "a@b@c.example", "Shop <a@b.example", "Shop <>",
		"Shop <@b.example>", "Shop <a@>", "a b@c.example",
		"Shop <a@b.example> x", "Shop\\r\\nBcc: x@y.example <a@b.example>",
		"<<a@b.example>",
	};
	for (size_t i = 0; i < sizeof bad_from / sizeof bad_from[0]; i++) {
		char json[256], want[256];
		snprintf(json, sizeof json, "{\"email\": {\"from\": \"%s\"}}",
			 bad_from[i]);
		/* The message shows the value with control bytes escaped. */
		const char *shown = bad_from[i];
		char esc[128];
		if (strstr(shown, "\\r\\n")) {
			snprintf(esc, sizeof esc, "Shop\\x0d\\x0aBcc: x@y.example "
				 "<a@b.example>");
			shown = esc;
		}
		snprintf(want, sizeof want, "email.from: \"%s\" is not "
			 "\"user@domain\" or \"Name <user@domain>\"", shown);
		expect_err_at(__LINE__, json, want, NULL);
	}
	struct config *cfg = load_ok("{\"email\": {\"from\": \"a@b.example\"}, "
				     "\"default_locale\": \"zh-Hant-TW\"}");
	if (cfg) {
		ASSERT_EQ_STR(cfg->email_from, "a@b.example");
		ASSERT_EQ_STR(cfg->default_locale, "zh-Hant-TW");
		config_free(cfg);
	}

	/* sms.footer: locale -> non-empty string; replaces the built-ins. */
	expect_err("{\"sms\": {\"footer\": {}}}",
		   "sms.footer: must name at least one locale (leave it out "
		   "for the built-in texts)");
	expect_err("{\"sms\": {\"footer\": {\"en\": \"\"}}}",
		   "sms.footer.en: must not be empty");
	expect_err("{\"sms\": {\"footer\": {\"en\": 5}}}",
		   "sms.footer.en: expected a string, got an integer");
	expect_err("{\"sms\": {\"footer\": {\"e n\": \"x\"}}}",
		   "sms.footer.e n: \"e n\" is not a BCP 47 language tag "
		   "(e.g. en, zh-CN)");
	expect_err("{\"sms\": {\"footer\": {\"en\": \"x\", \"EN\": \"y\"}}}",
		   "sms.footer.EN: same locale as sms.footer.en");
	expect_err("{\"sms\": {\"footer\": []}}",
		   "sms.footer: expected an object, got an array");
	cfg = load_ok("{\"sms\": {\"footer\": {\"fr\": \"STOP au 36180\"}, "
		      "\"from\": \"Shop\", \"on_ambiguous\": \"retry\"}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->n_sms_footer, 1);
		ASSERT_EQ_STR(cfg->sms_footer[0].locale, "fr");
		ASSERT_EQ_STR(cfg->sms_footer[0].text, "STOP au 36180");
		ASSERT_EQ_STR(cfg->sms_from, "Shop");
		ASSERT_EQ_INT(cfg->sms_on_ambiguous, AMBIGUOUS_RETRY);
		config_free(cfg);
	}
}

static void test_issue6_sections(void)
{
	expect_err("{\"quiet_hours\": {\"start\": \"21:00\"}}",
		   "quiet_hours.end: missing");
	expect_err("{\"quiet_hours\": {\"start\": \"21:00\", \"end\": \"8:00\"}}",
		   "quiet_hours.end: \"8:00\" is not a time of day \"HH:MM\" "
		   "(00:00 to 23:59)");
	expect_err("{\"quiet_hours\": {\"start\": \"24:00\", \"end\": \"08:00\"}}",
		   "quiet_hours.start: \"24:00\" is not a time of day \"HH:MM\" "
		   "(00:00 to 23:59)");
	expect_err("{\"quiet_hours\": {\"start\": \"08:00\", \"end\": \"08:00\"}}",
		   "quiet_hours.end: the same time as quiet_hours.start (leave "
		   "quiet_hours out for none)");
	expect_err("{\"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\","
		   " \"default_tz\": \"Mars/Olympus\"}}",
		   "quiet_hours.default_tz: \"Mars/Olympus\" is not a time zone "
		   "of the system's tz database (e.g. Asia/Shanghai)");
	expect_err("{\"quiet_hours\": {\"start\": \"21:00\", \"end\": \"08:00\","
		   " \"channels\": [\"fax\"]}}",
		   "quiet_hours.channels[0]: expected \"email\", \"sms\" or "
		   "\"push\"");
	{
		struct config *cfg = load_ok(
			"{\"quiet_hours\": {\"start\": \"21:30\", \"end\": \"08:00\","
			" \"default_tz\": \"Asia/Shanghai\"}}");
		ASSERT_TRUE(cfg->quiet.set);
		ASSERT_EQ_INT(cfg->quiet.start_min, 21 * 60 + 30);
		ASSERT_EQ_INT(cfg->quiet.end_min, 8 * 60);
		ASSERT_EQ_STR(cfg->quiet.default_tz, "Asia/Shanghai");
		ASSERT_TRUE(!cfg->quiet.channels[CH_EMAIL]);
		ASSERT_TRUE(cfg->quiet.channels[CH_SMS]);
		ASSERT_TRUE(cfg->quiet.channels[CH_PUSH]);
		config_free(cfg);
	}
	expect_err("{\"unsubscribe\": {}}",
		   "unsubscribe.public_url: missing (the https:// address the "
		   "listener is reached at from outside)");
	expect_err("{\"unsubscribe\": {\"listen\": \"localhost:80\"}}",
		   "unsubscribe.listen: \"localhost:80\" is not \"address:port\" "
		   "with a numeric address (e.g. 127.0.0.1:8025, [::1]:8025)");
	expect_err("{\"unsubscribe\": {\"public_url\": \"https://s.example/r\"}}",
		   "unsubscribe.secret_env: missing (or unsubscribe.secret_file): "
		   "the key that signs unsubscribe links");
	expect_err("{\"unsubscribe\": {\"public_url\": \"https://s.example/r\","
		   " \"footer\": {\"en\": \"bye\"}}}",
		   "unsubscribe.footer.en: must contain {{unsubscribe_url}}");
	setenv("ROUSE_TEST_UNSUB", "0123456789abcdef0123", 1);
	{
		struct config *cfg = load_ok(
			"{\"unsubscribe\": {\"listen\": \"[::1]:8025\","
			" \"public_url\": \"https://s.example/rouse/\","
			" \"secret_env\": \"ROUSE_TEST_UNSUB\","
			" \"mailto\": \"u@s.example\"}}");
		ASSERT_TRUE(cfg->unsub.set);
		ASSERT_EQ_STR(cfg->unsub.listen_host, "::1");
		ASSERT_EQ_INT(cfg->unsub.listen_port, 8025);
		ASSERT_EQ_STR(cfg->unsub.public_url, "https://s.example/rouse");
		ASSERT_EQ_STR(cfg->unsub.public_path, "/rouse");
		ASSERT_EQ_STR(cfg->unsub.secret, "0123456789abcdef0123");
		ASSERT_EQ_STR(cfg->unsub.mailto, "u@s.example");
		ASSERT_EQ_INT((int)cfg->unsub.n_footer, 2);
		config_free(cfg);
	}
	unsetenv("ROUSE_TEST_UNSUB");
}

/* sms.http, push.fcm and push.apns: accepted in full, refused by key. */
static void test_http_transports(void)
{
	char json[4 * PATH_MAX + 1024], want[PATH_MAX + 256];
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", joined(tmpdir, "http"));
	mkdir(dir, 0700);
	char sa[PATH_MAX], p8[PATH_MAX], ca[PATH_MAX];
	snprintf(sa, sizeof sa, "%s", joined(dir, "sa.json"));
	snprintf(p8, sizeof p8, "%s", joined(dir, "key.p8"));
	snprintf(ca, sizeof ca, "%s", joined(dir, "ca.pem"));
	write_file(sa, "{}", 2, 0600);
	write_file(p8, "k", 1, 0600);
	write_file(ca, "-----BEGIN CERTIFICATE-----\n", 28, 0644);
	setenv("ROUSE_TEST_TWILIO", "SENTINEL-twilio", 1);

	snprintf(json, sizeof json,
		 "{\"sms\": {\"transport\": \"http\", \"http\": {"
		 "\"url\": \"http://127.0.0.1:8080/gw/\", \"account_sid\": \"AC1\","
		 " \"auth_token_env\": \"ROUSE_TEST_TWILIO\", \"connections\": 8,"
		 " \"ca_file\": \"%s\", \"timeout\": \"5s\"}},"
		 " \"push\": {\"transport\": \"http\","
		 " \"fcm\": {\"service_account_file\": \"%s\"},"
		 " \"apns\": {\"url\": \"https://127.0.0.1:8443\","
		 " \"topic\": \"com.example.app\", \"key_file\": \"%s\","
		 " \"key_id\": \"ABC123\", \"team_id\": \"DEF456\"}}}",
		 ca, sa, p8);
	struct config *cfg = load_ok(json);
	ASSERT_EQ_INT(cfg->sms_transport, TRANSPORT_HTTP);
	ASSERT_EQ_INT(cfg->sms_http.kind, SMS_GATEWAY_TWILIO);
	ASSERT_EQ_STR(cfg->sms_http.http.url, "http://127.0.0.1:8080/gw");
	ASSERT_EQ_STR(cfg->sms_http.account_sid, "AC1");
	ASSERT_EQ_STR(cfg->sms_http.auth_token, "SENTINEL-twilio");
	ASSERT_EQ_INT(cfg->sms_http.http.connections, 8);
	ASSERT_EQ_INT((int)cfg->sms_http.http.timeout_ms, 5000);
	ASSERT_EQ_STR(cfg->sms_http.http.ca_file, ca);
	ASSERT_EQ_INT(cfg->push_transport, TRANSPORT_HTTP);
	ASSERT_TRUE(cfg->fcm.set && cfg->apns.set);
	ASSERT_EQ_STR(cfg->fcm.http.url, "https://fcm.googleapis.com");
	ASSERT_EQ_INT(cfg->fcm.http.connections, 16);
	ASSERT_EQ_INT((int)cfg->fcm.http.timeout_ms, 30000);
	ASSERT_TRUE(cfg->fcm.project_id == NULL);
	ASSERT_EQ_STR(cfg->apns.http.url, "https://127.0.0.1:8443");
	ASSERT_EQ_INT(cfg->apns.http.connections, 2);
	ASSERT_EQ_STR(cfg->apns.topic, "com.example.app");
	ASSERT_EQ_STR(cfg->apns.key_file, p8);
	config_free(cfg);

	cfg = load_ok("{\"sms\": {\"transport\": \"http\", \"http\": {"
		      "\"kind\": \"json\", \"url\": \"https://gw.example/send\"}}}");
	ASSERT_EQ_INT(cfg->sms_http.kind, SMS_GATEWAY_JSON);
	ASSERT_TRUE(cfg->sms_http.auth_token == NULL);
	config_free(cfg);

	expect_err("{\"sms\": {\"transport\": \"http\"}}",
		   "sms.http: required when sms.transport is \"http\"");
	expect_err("{\"sms\": {\"http\": {\"kind\": \"smpp\"}}}",
		   "sms.http.kind: expected \"twilio\" or \"json\", got \"smpp\"");
	expect_err("{\"sms\": {\"http\": {\"kind\": \"json\"}}}",
		   "sms.http.url: missing");
	expect_err("{\"sms\": {\"http\": {\"kind\": \"twilio\"}}}",
		   "sms.http.account_sid: missing");
	expect_err("{\"sms\": {\"http\": {\"account_sid\": \"AC1\"}}}",
		   "sms.http.auth_token_env: required for kind \"twilio\" "
		   "(or sms.http.auth_token_file)");
	expect_err("{\"sms\": {\"http\": {\"account_sid\": \"AC/1\"}}}",
		   "sms.http.account_sid: \"AC/1\" may hold only letters, "
		   "digits, '.', '-' and '_'");
	expect_err("{\"sms\": {\"http\": {\"url\": \"ftp://x\"}}}",
		   "sms.http.url: \"ftp://x\" must start with https:// (or http://)");
	expect_err("{\"sms\": {\"http\": {\"url\": \"https://u:p@x\"}}}",
		   "sms.http.url: must not carry credentials (use the *_env / "
		   "*_file keys)");
	expect_err("{\"sms\": {\"http\": {\"url\": \"https://x/?a=1\"}}}",
		   "sms.http.url: must not carry a query");
	expect_err("{\"sms\": {\"http\": {\"connections\": 0}}}",
		   "sms.http.connections: 0 is out of range (1..256)");
	expect_err("{\"sms\": {\"http\": {\"timeout\": \"0s\"}}}",
		   "sms.http.timeout: duration \"0s\" is out of range (1s..10m)");
	expect_err("{\"sms\": {\"http\": {\"timeout\": \"11m\"}}}",
		   "sms.http.timeout: duration \"11m\" is out of range (1s..10m)");
	expect_err("{\"sms\": {\"http\": {\"sid\": \"AC1\"}}}",
		   "unknown key: sms.http.sid");
	expect_err_at(__LINE__, "{\"sms\": {\"http\": {\"account_sid\": \"AC1\","
		      " \"auth_token_env\": \"ROUSE_TEST_TWILIO\","
		      " \"auth_token_file\": \"/x\"}}}",
		      "sms.http.auth_token_file: give only one of "
		      "sms.http.auth_token_env or sms.http.auth_token_file",
		      "SENTINEL");
	expect_err("{\"push\": {\"transport\": \"http\"}}",
		   "push.fcm: push.transport \"http\" needs push.fcm or push.apns "
		   "(or both)");
	expect_err("{\"push\": {\"fcm\": {}}}",
		   "push.fcm.service_account_file: missing");
	expect_err("{\"push\": {\"apns\": {\"topic\": \"t\"}}}",
		   "push.apns.key_id: missing");
	chmod(sa, 0640);
	snprintf(json, sizeof json,
		 "{\"push\": {\"fcm\": {\"service_account_file\": \"%s\"}}}", sa);
	snprintf(want, sizeof want, "push.fcm.service_account_file: %s is "
		 "readable by group or others (chmod 600)", sa);
	expect_err(json, want);
	snprintf(json, sizeof json,
		 "{\"push\": {\"apns\": {\"topic\": \"t\", \"key_id\": \"k\","
		 " \"team_id\": \"t\", \"key_file\": \"%s\"}}}",
		 joined(dir, "absent.p8"));
	snprintf(want, sizeof want, "push.apns.key_file: %s: No such file or "
		 "directory", joined(dir, "absent.p8"));
	expect_err(json, want);
	unsetenv("ROUSE_TEST_TWILIO");
	unlink(sa);
	unlink(p8);
	unlink(ca);
	rmdir(dir);
}

static void test_syntax_errors(void)
{
	char err[512], want[PATH_MAX + 64];
	struct config *cfg = (struct config *)&cfg;
	const char *path = write_config("{\n  \"retry\": {},\n}\n");
	ASSERT_EQ_INT(config_load(path, &cfg, err, sizeof err), -1);
	ASSERT_TRUE(cfg == NULL);
	snprintf(want, sizeof want, "%s:3:", path);
	ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "got: %s\nwanted prefix: %s\n", err, want);

	path = write_config("{\"retry\": {},\n \"retry\": {}}");
	ASSERT_EQ_INT(config_load(path, &cfg, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2:", path);
	ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
	ASSERT_TRUE(strstr(err, "duplicate") != NULL);

	expect_err("[]", "$F: expected a JSON object at the top level, "
		   "got an array");
	path = write_config("");
	ASSERT_EQ_INT(config_load(path, &cfg, err, sizeof err), -1);
	ASSERT_TRUE(strncmp(err, path, strlen(path)) == 0);

	path = joined(tmpdir, "missing.json");
	ASSERT_EQ_INT(config_load(path, &cfg, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	ASSERT_EQ_STR(err, want);
	path = joined(tmpdir, "nodir/rouse.json");
	ASSERT_EQ_INT(config_load(path, &cfg, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	ASSERT_EQ_STR(err, want);
	ASSERT_EQ_INT(config_load(tmpdir, &cfg, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: not a regular file", tmpdir);
	ASSERT_EQ_STR(err, want);
	ASSERT_EQ_INT(config_load("", &cfg, err, sizeof err), -1);
	ASSERT_EQ_STR(err, "config file name is empty");
}

static void test_defaults(void)
{
	struct config *cfg = load_ok("{}");
	if (!cfg)
		return;
	ASSERT_EQ_STR(cfg->path, joined(tmpdir, "rouse.json"));
	ASSERT_EQ_STR(cfg->dir, tmpdir);
	ASSERT_EQ_STR(cfg->data_dir, joined(tmpdir, "../var"));
	ASSERT_EQ_STR(cfg->templates_dir, joined(tmpdir, "../templates"));
	ASSERT_EQ_STR(cfg->default_locale, "en");
	ASSERT_EQ_STR(cfg->socket_path, joined(tmpdir, "../var/rouse.sock"));
	ASSERT_EQ_INT(cfg->max_line, 1048576);
	ASSERT_EQ_INT(cfg->max_connections, 1024);
	ASSERT_EQ_INT(cfg->max_pending, 65536);
	ASSERT_EQ_STR(cfg->email_from, "rouse <noreply@localhost>");
	ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_MAILDIR);
	ASSERT_EQ_STR(cfg->maildir, joined(tmpdir, "../var/outbox/email"));
	ASSERT_TRUE(cfg->smtp.host == NULL);
	ASSERT_EQ_INT(cfg->smtp.port, 25);
	ASSERT_EQ_INT(cfg->smtp.starttls, STARTTLS_IF_AVAILABLE);
	ASSERT_TRUE(cfg->smtp.username == NULL && cfg->smtp.password == NULL);
	ASSERT_EQ_INT(cfg->smtp.sessions, 4);
	ASSERT_EQ_INT(cfg->smtp.batch, 50);
	ASSERT_TRUE(cfg->smtp.ca_file == NULL);
	ASSERT_EQ_INT(cfg->smtp.timeout_ms, 60000);
	ASSERT_TRUE(cfg->smtp.helo == NULL && cfg->smtp.envelope_from == NULL);
	ASSERT_EQ_INT(cfg->sms_transport, TRANSPORT_FILE);
	ASSERT_EQ_STR(cfg->sms_file, joined(tmpdir, "../var/outbox/sms.jsonl"));
	ASSERT_TRUE(cfg->sms_from == NULL);
	ASSERT_EQ_INT(cfg->sms_on_ambiguous, AMBIGUOUS_FAIL);
	ASSERT_EQ_INT(cfg->n_sms_footer, 2);
	if (cfg->n_sms_footer == 2) {
		ASSERT_EQ_STR(cfg->sms_footer[0].locale, "en");
		ASSERT_EQ_STR(cfg->sms_footer[0].text, "Reply STOP to opt out");
		ASSERT_EQ_STR(cfg->sms_footer[1].locale, "zh");
		ASSERT_EQ_STR(cfg->sms_footer[1].text, "回复TD退订");
	}
	ASSERT_EQ_INT(cfg->push_transport, TRANSPORT_FILE);
	ASSERT_EQ_STR(cfg->push_file, joined(tmpdir, "../var/outbox/push.jsonl"));
	ASSERT_EQ_INT(cfg->n_caps, 0);
	ASSERT_EQ_INT(cfg->on_limit, ON_LIMIT_DEFER);
	for (int ch = 0; ch < CH_COUNT; ch++)
		ASSERT_TRUE(!cfg->buckets[ch].set);
	ASSERT_EQ_INT(cfg->retry_max_attempts, 8);
	ASSERT_EQ_INT(cfg->retry_base_ms, 30000);
	ASSERT_EQ_INT(cfg->retry_max_ms, 3600000);
	config_free(cfg);

	/* Empty sections also leave the defaults in place. */
	cfg = load_ok("{\"intake\": {}, \"email\": {}, \"sms\": {}, \"push\": {},"
		      " \"limits\": {\"per_user\": []}, \"retry\": {}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->max_line, 1048576);
		ASSERT_EQ_INT(cfg->n_sms_footer, 2);
		ASSERT_EQ_INT(cfg->n_caps, 0);
		ASSERT_EQ_INT(cfg->retry_max_attempts, 8);
		config_free(cfg);
	}
}

static void test_paths(void)
{
	char etc[300], link[300], path[PATH_MAX], cwd[PATH_MAX];
	snprintf(etc, sizeof etc, "%s/etc", tmpdir);
	snprintf(link, sizeof link, "%s/link", tmpdir);
	ASSERT_EQ_INT(mkdir(etc, 0755), 0);
	ASSERT_EQ_INT(symlink("etc", link), 0);
	snprintf(path, sizeof path, "%s/rouse.json", etc);
	const char *json =
		"{\"data_dir\": \"data\", \"templates\": \"/srv/templates\","
		" \"email\": {\"maildir\": \"mail\"},"
		" \"sms\": {\"file\": \"../out/sms.jsonl\"}}";
	write_file(path, json, strlen(json), 0644);

	/* Loaded through a relative name, from another directory. */
	ASSERT_TRUE(getcwd(cwd, sizeof cwd) != NULL);
	ASSERT_EQ_INT(chdir(tmpdir), 0);
	struct config *cfg = load_ok_at(__LINE__, "etc/rouse.json");
	ASSERT_EQ_INT(chdir(cwd), 0);
	if (cfg) {
		ASSERT_EQ_STR(cfg->path, path);
		ASSERT_EQ_STR(cfg->dir, etc);
		ASSERT_EQ_STR(cfg->data_dir, joined(etc, "data"));
		ASSERT_EQ_STR(cfg->templates_dir, "/srv/templates");
		/* Defaults derive from data_dir ... */
		ASSERT_EQ_STR(cfg->socket_path, joined(etc, "data/rouse.sock"));
		ASSERT_EQ_STR(cfg->push_file, joined(etc, "data/outbox/push.jsonl"));
		/* ... while given paths are relative to the file's directory. */
		ASSERT_EQ_STR(cfg->maildir, joined(etc, "mail"));
		ASSERT_EQ_STR(cfg->sms_file, joined(etc, "../out/sms.jsonl"));
		config_free(cfg);
	}

	/* Through a symlinked directory: resolved to the real directory. */
	snprintf(path, sizeof path, "%s/rouse.json", link);
	cfg = load_ok_at(__LINE__, path);
	if (cfg) {
		ASSERT_EQ_STR(cfg->dir, etc);
		ASSERT_EQ_STR(cfg->data_dir, joined(etc, "data"));
		config_free(cfg);
	}

	/* A socket path too long for sockaddr_un is refused up front. */
	char longjson[512], name[201];
	memset(name, 'd', 200);
	name[200] = '\0';
	snprintf(longjson, sizeof longjson, "{\"data_dir\": \"/%s\"}", name);
	char want[512];
	snprintf(want, sizeof want, "intake.socket: \"/%s/rouse.sock\" is 212 bytes, "
		 "longer than a Unix socket path may be (107)", name);
	expect_err_at(__LINE__, longjson, want, NULL);

	unlink(path);
	unlink(joined(etc, "rouse.json"));
	unlink(link);
	rmdir(etc);
}

static void test_shipped_config(void)
{
	const char *tests = getenv("ROUSE_TESTS_DIR");
	ASSERT_TRUE(tests != NULL);
	if (!tests)
		return;
	char path[PATH_MAX], dir[PATH_MAX];
	snprintf(path, sizeof path, "%s/../config", tests);
	ASSERT_TRUE(realpath(path, dir) != NULL);
	snprintf(path, sizeof path, "%s/../config/rouse.json", tests);
	struct config *cfg = load_ok_at(__LINE__, path);
	if (!cfg)
		return;
	ASSERT_EQ_STR(cfg->dir, dir);
	ASSERT_EQ_STR(cfg->data_dir, joined(dir, "../var"));
	ASSERT_EQ_STR(cfg->templates_dir, joined(dir, "../templates"));
	ASSERT_EQ_STR(cfg->socket_path, joined(dir, "../var/rouse.sock"));
	ASSERT_EQ_STR(cfg->default_locale, "en");
	ASSERT_EQ_STR(cfg->email_from, "Shop <noreply@shop.example>");
	ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_MAILDIR);
	ASSERT_EQ_STR(cfg->maildir, joined(dir, "../var/outbox/email"));
	ASSERT_EQ_STR(cfg->sms_file, joined(dir, "../var/outbox/sms.jsonl"));
	ASSERT_EQ_STR(cfg->sms_from, "+15550100");
	ASSERT_EQ_INT(cfg->n_sms_footer, 2);
	ASSERT_EQ_STR(cfg->push_file, joined(dir, "../var/outbox/push.jsonl"));
	ASSERT_EQ_INT(cfg->n_caps, 2);
	if (cfg->n_caps == 2) {
		ASSERT_EQ_INT(cfg->caps[0].channel, CH_EMAIL);
		ASSERT_EQ_INT(cfg->caps[0].max, 1);
		ASSERT_EQ_INT(cfg->caps[0].window_ms, 24 * 3600 * 1000);
		ASSERT_EQ_INT(cfg->caps[1].channel, CH_ALL);
		ASSERT_EQ_INT(cfg->caps[1].max, 3);
		ASSERT_EQ_INT(cfg->caps[1].window_ms, 7LL * 24 * 3600 * 1000);
	}
	ASSERT_EQ_INT(cfg->on_limit, ON_LIMIT_DEFER);
	ASSERT_TRUE(cfg->buckets[CH_EMAIL].set && cfg->buckets[CH_EMAIL].rate == 500 &&
		    cfg->buckets[CH_EMAIL].burst == 100);
	ASSERT_TRUE(cfg->buckets[CH_SMS].set && cfg->buckets[CH_SMS].rate == 50 &&
		    cfg->buckets[CH_SMS].burst == 10);
	ASSERT_TRUE(cfg->buckets[CH_PUSH].set && cfg->buckets[CH_PUSH].rate == 2000 &&
		    cfg->buckets[CH_PUSH].burst == 500);
	ASSERT_EQ_INT(cfg->retry_max_attempts, 8);
	ASSERT_EQ_INT(cfg->retry_base_ms, 30000);
	ASSERT_EQ_INT(cfg->retry_max_ms, 3600000);
	config_free(cfg);
}

/* ---- email.smtp -------------------------------------------------------- */

/* {"email": {"transport": "smtp", "smtp": {"host": "mx.example", <keys>}}} */
static const char *smtp_json(const char *keys)
{
	static char buf[8192];
	int n = snprintf(buf, sizeof buf, "{\"email\": {\"transport\": "
			 "\"smtp\", \"smtp\": {\"host\": \"mx.example\"%s%.*s}}}",
			 keys[0] ? ", " : "", 6000, keys);
	ASSERT_TRUE(n > 0 && (size_t)n < sizeof buf);
	return buf;
}

#define expect_smtp_err(keys, expected) \
	expect_err_at(__LINE__, smtp_json(keys), expected, NULL)

static void test_smtp_full(void)
{
	char certs[300];
	snprintf(certs, sizeof certs, "%s/certs", tmpdir);
	ASSERT_EQ_INT(mkdir(certs, 0755), 0);
	write_file(joined(certs, "ca.pem"), "-----BEGIN CERTIFICATE-----\n", 28,
		   0644);
	setenv("ROUSE_TEST_SMTP_PW", "SENTINEL-smtp-env", 1);
	struct config *cfg = load_ok(
		"{\"email\": {\"from\": \"Shop <noreply@shop.example>\","
		" \"transport\": \"smtp\","
		" \"smtp\": {\"host\": \"mail.shop.example\", \"port\": 2525,"
		" \"starttls\": \"required\", \"username\": \"mailer\","
		" \"password_env\": \"ROUSE_TEST_SMTP_PW\", \"sessions\": 8,"
		" \"batch\": 100, \"ca_file\": \"certs/ca.pem\","
		" \"timeout\": \"90s\", \"helo\": \"out1.shop.example\","
		" \"envelope_from\": \"bounces@shop.example\"}}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_SMTP);
		ASSERT_EQ_STR(cfg->smtp.host, "mail.shop.example");
		ASSERT_EQ_INT(cfg->smtp.port, 2525);
		ASSERT_EQ_INT(cfg->smtp.starttls, STARTTLS_REQUIRED);
		ASSERT_EQ_STR(cfg->smtp.username, "mailer");
		ASSERT_EQ_STR(cfg->smtp.password, "SENTINEL-smtp-env");
		ASSERT_EQ_INT(cfg->smtp.sessions, 8);
		ASSERT_EQ_INT(cfg->smtp.batch, 100);
		ASSERT_EQ_STR(cfg->smtp.ca_file, joined(tmpdir, "certs/ca.pem"));
		ASSERT_EQ_INT(cfg->smtp.timeout_ms, 90000);
		ASSERT_EQ_STR(cfg->smtp.helo, "out1.shop.example");
		ASSERT_EQ_STR(cfg->smtp.envelope_from, "bounces@shop.example");
		/* The maildir keeps its default path, unused. */
		ASSERT_EQ_STR(cfg->maildir, joined(tmpdir, "../var/outbox/email"));
		config_free(cfg);
	}
	unsetenv("ROUSE_TEST_SMTP_PW");

	/* Only the host given: every other key takes its default. */
	cfg = load_ok(smtp_json(""));
	if (cfg) {
		ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_SMTP);
		ASSERT_EQ_STR(cfg->smtp.host, "mx.example");
		ASSERT_EQ_INT(cfg->smtp.port, 25);
		ASSERT_EQ_INT(cfg->smtp.starttls, STARTTLS_IF_AVAILABLE);
		ASSERT_TRUE(cfg->smtp.username == NULL);
		ASSERT_TRUE(cfg->smtp.password == NULL);
		ASSERT_EQ_INT(cfg->smtp.sessions, 4);
		ASSERT_EQ_INT(cfg->smtp.batch, 50);
		ASSERT_TRUE(cfg->smtp.ca_file == NULL);
		ASSERT_EQ_INT(cfg->smtp.timeout_ms, 60000);
		ASSERT_TRUE(cfg->smtp.helo == NULL);
		ASSERT_TRUE(cfg->smtp.envelope_from == NULL);
		config_free(cfg);
	}

	/* Bounds are inclusive; an absolute ca_file is kept as it is. */
	char keys[PATH_MAX + 256];
	snprintf(keys, sizeof keys, "\"port\": 65535, \"sessions\": 64, "
		 "\"batch\": 10000, \"timeout\": \"10m\", \"starttls\": \"no\", "
		 "\"ca_file\": \"%s/ca.pem\"", certs);
	cfg = load_ok(smtp_json(keys));
	if (cfg) {
		ASSERT_EQ_INT(cfg->smtp.port, 65535);
		ASSERT_EQ_INT(cfg->smtp.sessions, 64);
		ASSERT_EQ_INT(cfg->smtp.batch, 10000);
		ASSERT_EQ_INT(cfg->smtp.timeout_ms, 600000);
		ASSERT_EQ_INT(cfg->smtp.starttls, STARTTLS_NO);
		ASSERT_EQ_STR(cfg->smtp.ca_file, joined(certs, "ca.pem"));
		config_free(cfg);
	}
	cfg = load_ok(smtp_json("\"port\": 1, \"sessions\": 1, \"batch\": 1, "
				"\"timeout\": \"1s\""));
	if (cfg) {
		ASSERT_EQ_INT(cfg->smtp.port, 1);
		ASSERT_EQ_INT(cfg->smtp.sessions, 1);
		ASSERT_EQ_INT(cfg->smtp.batch, 1);
		ASSERT_EQ_INT(cfg->smtp.timeout_ms, 1000);
		config_free(cfg);
	}

	/* With transport "maildir" the section is checked but unused, and its
	 * host is optional. */
	cfg = load_ok("{\"email\": {\"smtp\": {\"host\": \"127.0.0.1\", "
		      "\"port\": 2525}}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_MAILDIR);
		ASSERT_EQ_STR(cfg->smtp.host, "127.0.0.1");
		ASSERT_EQ_INT(cfg->smtp.port, 2525);
		config_free(cfg);
	}
	cfg = load_ok("{\"email\": {\"transport\": \"maildir\", "
		      "\"smtp\": {\"batch\": 7}}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_MAILDIR);
		ASSERT_TRUE(cfg->smtp.host == NULL);
		ASSERT_EQ_INT(cfg->smtp.batch, 7);
		config_free(cfg);
	}
	expect_err("{\"email\": {\"transport\": \"maildir\", "
		   "\"smtp\": {\"port\": 0}}}",
		   "email.smtp.port: 0 is out of range (1..65535)");
	expect_err("{\"email\": {\"smtp\": {\"hots\": \"x\"}}}",
		   "unknown key: email.smtp.hots");

	/* The section is no longer refused as a later feature. */
	char err[512] = "";
	static const char *const once_refused[] = {
		"{\"email\": {\"smtp\": {\"host\": \"127.0.0.1\"}}}",
		"{\"email\": {\"transport\": \"smtp\", "
		"\"smtp\": {\"host\": \"127.0.0.1\", \"port\": 2525}}}",
	};
	for (size_t i = 0; i < sizeof once_refused / sizeof once_refused[0];
	     i++) {
		cfg = NULL;
		ASSERT_EQ_INT(config_load(write_config(once_refused[i]), &cfg,
					  err, sizeof err), 0);
		ASSERT_TRUE(strstr(err, "not supported") == NULL);
		config_free(cfg);
	}
	unlink(joined(certs, "ca.pem"));
	rmdir(certs);
}

static void test_smtp_invalid(void)
{
	char want[PATH_MAX + 256], keys[PATH_MAX + 256];

	expect_err("{\"email\": {\"transport\": \"smtp\"}}",
		   "email.smtp: required when email.transport is \"smtp\"");
	expect_err("{\"email\": {\"transport\": \"smtp\", \"smtp\": {}}}",
		   "email.smtp.host: required when email.transport is \"smtp\"");
	expect_err("{\"email\": {\"transport\": \"smtp\", "
		   "\"smtp\": {\"port\": 25}}}",
		   "email.smtp.host: required when email.transport is \"smtp\"");
	expect_err("{\"email\": {\"smtp\": \"mx.example\"}}",
		   "email.smtp: expected an object, got a string");
	expect_smtp_err("\"hots\": \"mx.example\"",
			"unknown key: email.smtp.hots");
	expect_smtp_err("\"password_envv\": \"X\"",
			"unknown key: email.smtp.password_envv");

	/* host */
	static const char *const bad_hosts[] = {
		"mail example.com", " mx.example", "-mx.example", "mx-.example",
		"mx..example", "mx.example.", "mail_relay", "999.1.1.1",
		"[::1]", "mx.example:25", "::g", "m\\u00e9l.example",
		"mx.example\\r\\nRCPT TO:<x@y.example>",
	};
	for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
		char json[256], shown[128];
		snprintf(json, sizeof json, "{\"email\": {\"transport\": \"smtp\","
			 " \"smtp\": {\"host\": \"%s\"}}}", bad_hosts[i]);
		if (strstr(bad_hosts[i], "\\r\\n"))
			snprintf(shown, sizeof shown,
				 "mx.example\\x0d\\x0aRCPT TO:<x@y.example>");
		else if (strstr(bad_hosts[i], "\\u00e9"))
			snprintf(shown, sizeof shown, "m\xc3\xa9l.example");
		else
			snprintf(shown, sizeof shown, "%s", bad_hosts[i]);
		snprintf(want, sizeof want, "email.smtp.host: \"%s\" is not a "
			 "host name or IP address", shown);
		expect_err_at(__LINE__, json, want, NULL);
	}
	char label64[128];
	memset(label64, 'a', 64);
	snprintf(label64 + 64, sizeof label64 - 64, ".example");
	snprintf(keys, sizeof keys, "{\"email\": {\"transport\": \"smtp\","
		 " \"smtp\": {\"host\": \"%s\"}}}", label64);
	snprintf(want, sizeof want, "email.smtp.host: \"%s\" is not a host "
		 "name or IP address", label64);
	expect_err_at(__LINE__, keys, want, NULL);
	expect_err("{\"email\": {\"transport\": \"smtp\", \"smtp\": {\"host\": \"\"}}}",
		   "email.smtp.host: must not be empty");
	expect_err("{\"email\": {\"transport\": \"smtp\", \"smtp\": {\"host\": 25}}}",
		   "email.smtp.host: expected a string, got an integer");
	static const char *const good_hosts[] = {
		"localhost", "127.0.0.1", "::1", "2001:db8::25", "MX-1.Shop.example",
		"1.example", "xn--bcher-kva.example",
	};
	for (size_t i = 0; i < sizeof good_hosts / sizeof good_hosts[0]; i++) {
		char json[256];
		snprintf(json, sizeof json, "{\"email\": {\"transport\": \"smtp\","
			 " \"smtp\": {\"host\": \"%s\"}}}", good_hosts[i]);
		struct config *cfg = load_ok_at(__LINE__, write_config(json));
		if (cfg) {
			ASSERT_EQ_STR(cfg->smtp.host, good_hosts[i]);
			config_free(cfg);
		}
	}

	/* port, starttls, sessions, batch */
	expect_smtp_err("\"port\": 0",
			"email.smtp.port: 0 is out of range (1..65535)");
	expect_smtp_err("\"port\": 65536",
			"email.smtp.port: 65536 is out of range (1..65535)");
	expect_smtp_err("\"port\": \"25\"",
			"email.smtp.port: expected an integer, got a string");
	expect_smtp_err("\"starttls\": \"yes\"",
			"email.smtp.starttls: expected \"no\", \"if_available\" "
			"or \"required\", got \"yes\"");
	expect_smtp_err("\"starttls\": true",
			"email.smtp.starttls: expected a string, got a boolean");
	expect_smtp_err("\"sessions\": 0",
			"email.smtp.sessions: 0 is out of range (1..64)");
	expect_smtp_err("\"sessions\": 65",
			"email.smtp.sessions: 65 is out of range (1..64)");
	expect_smtp_err("\"batch\": 0",
			"email.smtp.batch: 0 is out of range (1..10000)");
	expect_smtp_err("\"batch\": 10001",
			"email.smtp.batch: 10001 is out of range (1..10000)");
	expect_smtp_err("\"batch\": 2.5",
			"email.smtp.batch: expected an integer, got a number "
			"with a fraction");

	/* timeout */
	expect_smtp_err("\"timeout\": \"500ms\"",
			"email.smtp.timeout: duration \"500ms\" is out of range "
			"(1s..10m)");
	expect_smtp_err("\"timeout\": \"0s\"",
			"email.smtp.timeout: duration \"0s\" is out of range "
			"(1s..10m)");
	expect_smtp_err("\"timeout\": \"601s\"",
			"email.smtp.timeout: duration \"601s\" is out of range "
			"(1s..10m)");
	expect_smtp_err("\"timeout\": \"1h\"",
			"email.smtp.timeout: duration \"1h\" is out of range "
			"(1s..10m)");
	expect_smtp_err("\"timeout\": \"5x\"",
			"email.smtp.timeout: invalid duration \"5x\" "
			"(use e.g. 30s, 15m, 24h, 7d)");
	expect_smtp_err("\"timeout\": 60",
			"email.smtp.timeout: expected a duration string such as "
			"\"30s\", got an integer");

	/* helo */
	expect_smtp_err("\"helo\": \"out 1.shop.example\"",
			"email.smtp.helo: \"out 1.shop.example\" is not a host "
			"name or address literal (e.g. mail.example.com, "
			"[192.0.2.1])");
	expect_smtp_err("\"helo\": \"[300.1.1.1]\"",
			"email.smtp.helo: \"[300.1.1.1]\" is not a host name or "
			"address literal (e.g. mail.example.com, [192.0.2.1])");
	expect_smtp_err("\"helo\": \"[::1]\"",
			"email.smtp.helo: \"[::1]\" is not a host name or "
			"address literal (e.g. mail.example.com, [192.0.2.1])");
	expect_smtp_err("\"helo\": \"\"", "email.smtp.helo: must not be empty");
	static const char *const good_helo[] = {
		"out1.shop.example", "localhost", "[192.0.2.1]",
		"[IPv6:2001:db8::1]",
	};
	for (size_t i = 0; i < sizeof good_helo / sizeof good_helo[0]; i++) {
		snprintf(keys, sizeof keys, "\"helo\": \"%s\"", good_helo[i]);
		struct config *cfg = load_ok_at(__LINE__,
						write_config(smtp_json(keys)));
		if (cfg) {
			ASSERT_EQ_STR(cfg->smtp.helo, good_helo[i]);
			config_free(cfg);
		}
	}

	/* envelope_from: a bare addr-spec, no display name */
	expect_smtp_err("\"envelope_from\": \"bounces\"",
			"email.smtp.envelope_from: \"bounces\" is not an address "
			"\"user@domain\"");
	expect_smtp_err("\"envelope_from\": \"Shop <b@shop.example>\"",
			"email.smtp.envelope_from: \"Shop <b@shop.example>\" is "
			"not an address \"user@domain\"");
	expect_smtp_err("\"envelope_from\": \"b@shop.example\\r\\nRSET\"",
			"email.smtp.envelope_from: \"b@shop.example\\x0d\\x0aRSET\" "
			"is not an address \"user@domain\"");
	expect_smtp_err("\"envelope_from\": \"a@b@shop.example\"",
			"email.smtp.envelope_from: \"a@b@shop.example\" is not an "
			"address \"user@domain\"");

	/* ca_file must exist and be a readable regular file at load */
	snprintf(want, sizeof want, "email.smtp.ca_file: %s: No such file or "
		 "directory", joined(tmpdir, "no-such-ca.pem"));
	expect_err_at(__LINE__, smtp_json("\"ca_file\": \"no-such-ca.pem\""),
		      want, NULL);
	snprintf(want, sizeof want, "email.smtp.ca_file: %s is not a regular "
		 "file", joined(tmpdir, "."));
	expect_err_at(__LINE__, smtp_json("\"ca_file\": \".\""), want, NULL);
	/* A FIFO is refused at once, not waited on. */
	ASSERT_EQ_INT(mkfifo(joined(tmpdir, "ca.fifo"), 0644), 0);
	snprintf(want, sizeof want, "email.smtp.ca_file: %s is not a regular "
		 "file", joined(tmpdir, "ca.fifo"));
	expect_err_at(__LINE__, smtp_json("\"ca_file\": \"ca.fifo\""), want,
		      NULL);
	snprintf(want, sizeof want, "email.smtp.password_file: %s is not a "
		 "regular file", joined(tmpdir, "ca.fifo"));
	expect_err_at(__LINE__, smtp_json("\"username\": \"u\", "
					  "\"password_file\": \"ca.fifo\""),
		      want, NULL);
	unlink(joined(tmpdir, "ca.fifo"));
	expect_smtp_err("\"ca_file\": \"\"",
			"email.smtp.ca_file: must not be empty");
	expect_smtp_err("\"ca_file\": []",
			"email.smtp.ca_file: expected a string, got an array");
}

static void test_smtp_auth(void)
{
	const char *sentinel = "SENTINEL-smtp";
	char want[PATH_MAX + 256], secrets[300];
	snprintf(secrets, sizeof secrets, "%s/secrets", tmpdir);
	ASSERT_EQ_INT(mkdir(secrets, 0700), 0);

	/* username and password go together */
	expect_smtp_err("\"username\": \"mailer\"",
			"email.smtp.username: needs email.smtp.password_env or "
			"email.smtp.password_file");
	expect_smtp_err("\"password_env\": \"ROUSE_TEST_SMTP_PW\"",
			"email.smtp.password_env: needs email.smtp.username");
	expect_smtp_err("\"password_file\": \"secrets/pw\"",
			"email.smtp.password_file: needs email.smtp.username");
	expect_smtp_err("\"username\": \"mailer\", \"password_env\": \"X\", "
			"\"password_file\": \"secrets/pw\"",
			"email.smtp.password_file: give only one of "
			"email.smtp.password_env or email.smtp.password_file");
	expect_smtp_err("\"username\": \"\", \"password_env\": \"X\"",
			"email.smtp.username: must not be empty");
	expect_smtp_err("\"username\": \"mail\\ner\", \"password_env\": \"X\"",
			"email.smtp.username: must not contain control characters");
	expect_smtp_err("\"username\": \"mailer\", \"password_env\": \"MY VAR\"",
			"email.smtp.password_env: \"MY VAR\" is not an "
			"environment variable name");
	expect_smtp_err("\"username\": \"mailer\", \"password_env\": \"1PW\"",
			"email.smtp.password_env: \"1PW\" is not an "
			"environment variable name");
	expect_smtp_err("\"username\": \"mailer\", \"password_env\": \"\"",
			"email.smtp.password_env: must not be empty");
	expect_smtp_err("\"username\": \"mailer\", \"password_file\": 5",
			"email.smtp.password_file: expected a string, got an "
			"integer");

	/* password via the environment */
	unsetenv("ROUSE_TEST_SMTP_PW");
	expect_smtp_err("\"username\": \"mailer\", "
			"\"password_env\": \"ROUSE_TEST_SMTP_PW\"",
			"email.smtp.password_env: environment variable "
			"ROUSE_TEST_SMTP_PW is not set");
	setenv("ROUSE_TEST_SMTP_PW", "", 1);
	expect_smtp_err("\"username\": \"mailer\", "
			"\"password_env\": \"ROUSE_TEST_SMTP_PW\"",
			"email.smtp.password_env: environment variable "
			"ROUSE_TEST_SMTP_PW is empty");
	setenv("ROUSE_TEST_SMTP_PW", "SENTINEL-smtp env\n", 1);
	struct config *cfg = load_ok(smtp_json(
		"\"username\": \"mailer\", \"password_env\": \"ROUSE_TEST_SMTP_PW\""));
	if (cfg) {
		ASSERT_EQ_STR(cfg->smtp.username, "mailer");
		ASSERT_EQ_STR(cfg->smtp.password, "SENTINEL-smtp env");
		config_free(cfg);
	}
	/* Another key's error, with the password available: the message
	 * names that key and never carries the password. */
	expect_err_at(__LINE__, smtp_json(
		"\"username\": \"mailer\", \"password_env\": \"ROUSE_TEST_SMTP_PW\", "
		"\"helo\": \"bad helo\""),
		"email.smtp.helo: \"bad helo\" is not a host name or address "
		"literal (e.g. mail.example.com, [192.0.2.1])", sentinel);
	/* With transport "maildir" the password is still read and checked. */
	cfg = load_ok("{\"email\": {\"smtp\": {\"username\": \"mailer\", "
		      "\"password_env\": \"ROUSE_TEST_SMTP_PW\"}}}");
	if (cfg) {
		ASSERT_EQ_INT(cfg->email_transport, EMAIL_TRANSPORT_MAILDIR);
		ASSERT_EQ_STR(cfg->smtp.password, "SENTINEL-smtp env");
		config_free(cfg);
	}
	unsetenv("ROUSE_TEST_SMTP_PW");
	expect_err("{\"email\": {\"smtp\": {\"username\": \"mailer\", "
		   "\"password_env\": \"ROUSE_TEST_SMTP_PW\"}}}",
		   "email.smtp.password_env: environment variable "
		   "ROUSE_TEST_SMTP_PW is not set");

	/* password via a file, relative to the config file's directory */
	const char *pw = joined(secrets, "pw");
	write_file(pw, "SENTINEL-smtp-file\n", 19, 0600);
	cfg = load_ok(smtp_json("\"username\": \"mailer\", "
				"\"password_file\": \"secrets/pw\""));
	if (cfg) {
		ASSERT_EQ_STR(cfg->smtp.password, "SENTINEL-smtp-file");
		config_free(cfg);
	}
	char keys[PATH_MAX + 128];
	snprintf(keys, sizeof keys, "\"username\": \"mailer\", "
		 "\"password_file\": \"%s\"", joined(secrets, "pw"));
	cfg = load_ok(smtp_json(keys));
	if (cfg) {
		ASSERT_EQ_STR(cfg->smtp.password, "SENTINEL-smtp-file");
		config_free(cfg);
	}
	pw = joined(secrets, "pw");
	ASSERT_EQ_INT(chmod(pw, 0640), 0);
	snprintf(want, sizeof want, "email.smtp.password_file: %s is readable "
		 "by group or others (chmod 600)", pw);
	expect_err_at(__LINE__, smtp_json("\"username\": \"mailer\", "
					  "\"password_file\": \"secrets/pw\""),
		      want, sentinel);
	ASSERT_EQ_INT(chmod(pw, 0604), 0);
	expect_err_at(__LINE__, smtp_json("\"username\": \"mailer\", "
					  "\"password_file\": \"secrets/pw\""),
		      want, sentinel);
	snprintf(want, sizeof want, "email.smtp.password_file: %s: No such "
		 "file or directory", joined(secrets, "missing"));
	expect_err_at(__LINE__, smtp_json("\"username\": \"mailer\", "
					  "\"password_file\": \"secrets/missing\""),
		      want, sentinel);
	write_file(joined(secrets, "empty"), "\n", 1, 0600);
	snprintf(want, sizeof want, "email.smtp.password_file: %s is empty",
		 joined(secrets, "empty"));
	expect_err_at(__LINE__, smtp_json("\"username\": \"mailer\", "
					  "\"password_file\": \"secrets/empty\""),
		      want, NULL);
	expect_smtp_err("\"username\": \"mailer\", "
			"\"password_file\": \"secrets/p\\nw\"",
			"email.smtp.password_file: must not contain control "
			"characters");

	/* An inline password is refused before anything else, by name. */
	expect_err_at(__LINE__, smtp_json("\"username\": \"mailer\", "
					  "\"password\": \"SENTINEL-smtp\""),
		      "email.smtp.password: secrets are not accepted inline; "
		      "use password_env or password_file", sentinel);

	unlink(joined(secrets, "pw"));
	unlink(joined(secrets, "empty"));
	rmdir(secrets);
}

/* ---- config_read_secret ---------------------------------------------- */

static const char *secret_file(const char *name, const char *content,
			       size_t len, mode_t mode)
{
	const char *path = joined(tmpdir, name);
	write_file(path, content, len, mode);
	return path;
}

static void expect_secret(int line, const char *env, const char *file,
			  const char *want)
{
	char err[512] = "", *out = NULL;
	int rc = config_read_secret("smtp.password", env, file, &out, err,
				    sizeof err);
	if (rc != 0)
		fprintf(stderr, "line %d: %s\n", line, err);
	ASSERT_EQ_INT(rc, 0);
	ASSERT_EQ_STR(out, want);
	free(out);
}

static void expect_secret_err(int line, const char *env, const char *file,
			      const char *want)
{
	char err[512] = "", *out = (char *)"unset";
	int rc = config_read_secret("smtp.password", env, file, &out, err,
				    sizeof err);
	if (rc != -1 || strcmp(err, want) != 0)
		fprintf(stderr, "line %d\n", line);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(out == NULL);
	ASSERT_EQ_STR(err, want);
	ASSERT_TRUE(strstr(err, "SENTINEL") == NULL);
}

static void test_secrets(void)
{
	char want[PATH_MAX + 128];

	setenv("ROUSE_TEST_SECRET", "SENTINEL-env", 1);
	expect_secret(__LINE__, "ROUSE_TEST_SECRET", NULL, "SENTINEL-env");
	setenv("ROUSE_TEST_SECRET", "SENTINEL-env\n", 1);
	expect_secret(__LINE__, "ROUSE_TEST_SECRET", NULL, "SENTINEL-env");
	setenv("ROUSE_TEST_SECRET", "", 1);
	expect_secret_err(__LINE__, "ROUSE_TEST_SECRET", NULL,
			  "smtp.password: environment variable "
			  "ROUSE_TEST_SECRET is empty");
	setenv("ROUSE_TEST_SECRET", "\n", 1);
	expect_secret_err(__LINE__, "ROUSE_TEST_SECRET", NULL,
			  "smtp.password: environment variable "
			  "ROUSE_TEST_SECRET is empty");
	unsetenv("ROUSE_TEST_SECRET");
	expect_secret_err(__LINE__, "ROUSE_TEST_SECRET", NULL,
			  "smtp.password: environment variable "
			  "ROUSE_TEST_SECRET is not set");

	const char *f = secret_file("s1", "SENTINEL-file\r\n", 15, 0600);
	expect_secret(__LINE__, NULL, f, "SENTINEL-file");
	f = secret_file("s2", "SENTINEL-file", 13, 0400);
	expect_secret(__LINE__, NULL, f, "SENTINEL-file");
	f = secret_file("s3", "SENTINEL-two\n\n", 14, 0600);
	expect_secret(__LINE__, NULL, f, "SENTINEL-two\n");
	f = secret_file("s4", "-----BEGIN KEY-----\nSENTINEL\n-----END KEY-----\n",
			47, 0600);
	expect_secret(__LINE__, NULL, f,
		      "-----BEGIN KEY-----\nSENTINEL\n-----END KEY-----");

	f = secret_file("s5", "SENTINEL-file\n", 14, 0640);
	snprintf(want, sizeof want, "smtp.password: %s is readable by group or "
		 "others (chmod 600)", f);
	expect_secret_err(__LINE__, NULL, f, want);
	f = secret_file("s6", "SENTINEL-file\n", 14, 0604);
	snprintf(want, sizeof want, "smtp.password: %s is readable by group or "
		 "others (chmod 600)", f);
	expect_secret_err(__LINE__, NULL, f, want);
	f = secret_file("s7", "SENTINEL-file\n", 14, 0620);
	snprintf(want, sizeof want, "smtp.password: %s is writable or "
		 "executable by group or others (chmod 600)", f);
	expect_secret_err(__LINE__, NULL, f, want);

	f = joined(tmpdir, "no-such-secret");
	snprintf(want, sizeof want, "smtp.password: %s: No such file or "
		 "directory", f);
	expect_secret_err(__LINE__, NULL, f, want);
	snprintf(want, sizeof want, "smtp.password: %s is not a regular file",
		 tmpdir);
	expect_secret_err(__LINE__, NULL, tmpdir, want);

	f = secret_file("s8", "\n", 1, 0600);
	snprintf(want, sizeof want, "smtp.password: %s is empty", f);
	expect_secret_err(__LINE__, NULL, f, want);
	f = secret_file("s9", "SENTINEL\0x", 10, 0600);
	snprintf(want, sizeof want, "smtp.password: %s contains a NUL byte", f);
	expect_secret_err(__LINE__, NULL, f, want);

	/* Size limit: 64 KiB is fine, one byte more is not. */
	size_t big = 64 * 1024;
	char *buf = malloc(big + 1);
	ASSERT_TRUE(buf != NULL);
	if (buf) {
		memset(buf, 'S', big + 1);
		f = secret_file("s10", buf, big, 0600);
		char *out = NULL, err[256];
		ASSERT_EQ_INT(config_read_secret("k", NULL, f, &out, err,
						 sizeof err), 0);
		ASSERT_TRUE(out && strlen(out) == big);
		free(out);
		f = secret_file("s11", buf, big + 1, 0600);
		snprintf(want, sizeof want, "smtp.password: %s is larger than "
			 "64 KiB", f);
		expect_secret_err(__LINE__, NULL, f, want);
		free(buf);
	}

	expect_secret_err(__LINE__, NULL, NULL, "smtp.password: give exactly "
			  "one of smtp.password_env or smtp.password_file");
	expect_secret_err(__LINE__, "X", "/y", "smtp.password: give exactly "
			  "one of smtp.password_env or smtp.password_file");

	static const char *const names[] = {
		"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11"
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(joined(tmpdir, names[i]));
}

int main(void)
{
	char tmpl[] = "/tmp/rouse-test-config-XXXXXX";
	char *real = mkdtemp(tmpl) ? realpath(tmpl, NULL) : NULL;
	if (!real || strlen(real) >= sizeof tmpdir) {
		perror("mkdtemp");
		return 1;
	}
	memcpy(tmpdir, real, strlen(real) + 1);
	free(real);
	test_unknown_keys();
	test_inline_secrets();
	test_durations();
	test_numbers();
	test_types_and_values();
	test_issue6_sections();
	test_http_transports();
	test_smtp_full();
	test_smtp_invalid();
	test_smtp_auth();
	test_syntax_errors();
	test_defaults();
	test_paths();
	test_shipped_config();
	test_secrets();
	unlink(joined(tmpdir, "rouse.json"));
	if (rmdir(tmpdir) != 0)
		fprintf(stderr, "%s: left behind (errno %d)\n", tmpdir, errno);
	TEST_DONE();
}
