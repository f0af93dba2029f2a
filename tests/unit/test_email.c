/* test_email.c: the message builder, checked on the raw bytes here and
 * by Python's email package (tests/unit/check_email.py) after parsing. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "email.h"
#include "testutil.h"

/* First occurrence of needle in hay[0..hlen), case-insensitive when
 * nocase; NULL when absent. */
static const char *
find_in(const char *hay, size_t hlen, const char *needle, bool nocase)
{
	size_t nlen = strlen(needle), i;

	for (i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
		if (nocase ? strncasecmp(hay + i, needle, nlen) == 0
			   : memcmp(hay + i, needle, nlen) == 0)
			return hay + i;
	}
	return NULL;
}

static const char *
find_nocase(const char *s, const char *needle)
{
	return find_in(s, strlen(s), needle, true);
}

struct tcase {
	const char *name;
	struct email_input in;
	const char *want_subject;
	const char *want_from_name;
	const char *want_from_addr;
	const char *want_to_name;
	const char *want_cte_text;   /* NULL when there is no text part */
	const char *want_cte_html;   /* NULL when there is no html part */
};

static const struct email_header marketing[] = {
	{ "List-Unsubscribe",
	  "<https://shop.example/unsubscribe/v1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-Pw>, "
	  "<mailto:unsubscribe@shop.example?subject=v1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8>" },
	{ "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" },
};

static const struct email_header hostile_extra[] = {
	{ "List-Unsubscribe", "<https://shop.example/u/t>\r\nBcc: evil@x.example" },
};

static char long_line[2001];
static char body_text[4096];
static char body_html[4096];
static char long_subject[2048];
static char long_ascii_subject[1024];
static char long_name[512];

static void
fill_bodies(void)
{
	size_t i;

	for (i = 0; i < 2000; i++)
		long_line[i] = (char)('a' + i % 26);
	long_line[2000] = '\0';
	snprintf(body_text, sizeof body_text,
		 "Hello,\n.\n..x\nFrom x\n%s\ntrailing blanks  \t\n"
		 "equals = and =3D stay\r\nold mac line\rlast line without end",
		 long_line);
	snprintf(body_html, sizeof body_html,
		 "<p>Hello</p>\r\n.\r\n..x\r\nFrom x\r\n<p>%s</p>\r\n", long_line);
	long_subject[0] = '\0';
	for (i = 0; i < 8; i++)
		strncat(long_subject, "Limited offer 限时优惠 — don't miss it! ",
			sizeof long_subject - strlen(long_subject) - 1);
	strncat(long_subject, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA end",
		sizeof long_subject - strlen(long_subject) - 1);
	long_ascii_subject[0] = '\0';
	for (i = 0; i < 6; i++)
		strncat(long_ascii_subject, "The quick brown fox  jumps over the lazy dog; ",
			sizeof long_ascii_subject - strlen(long_ascii_subject) - 1);
	strncat(long_ascii_subject, "fin",
		sizeof long_ascii_subject - strlen(long_ascii_subject) - 1);
	long_name[0] = '\0';
	for (i = 0; i < 5; i++)
		strncat(long_name, "期待与您重逢",
			sizeof long_name - strlen(long_name) - 1);
}

#define DATE_MS INT64_C(1700000000123)

static struct tcase cases[] = {
	{ "ascii", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "alice@example.com", .to_name = "Alice Smith",
		.subject = "Your order #1042 has shipped",
		.text = "Hi Alice,\nYour order is on its way.\n\nUnsubscribe: https://shop.example/u/tok\n",
		.html = "<p>Hi Alice,</p>\n<p>Your order is on its way.</p>\n<a href=\"https://shop.example/u/tok\">Unsubscribe</a>\n",
		.message_id = "3f2b9c1e-0d4a-4b7e-9a51-6c2f8e0d1a77@shop.example",
		.date_ms = DATE_MS, .extra = marketing, .n_extra = 2 },
	  "Your order #1042 has shipped", "Shop", "noreply@shop.example",
	  "Alice Smith", "quoted-printable", "quoted-printable" },
	{ "zh", {
		.from = "商店 <noreply@shop.example>",
		.to_addr = "wang@example.cn", .to_name = "王小明",
		.subject = "想你了!Shop 期待与您重逢",
		.text = "亲爱的王小明：\n我们想你了！\n.\n..再见\nFrom 商店\n退订：https://shop.example/u/tok\n",
		.html = "<p>亲爱的王小明：</p>\n<p>我们想你了！</p>\n<a href=\"https://shop.example/u/tok\">退订</a>\n",
		.message_id = "<9d1c0b7a-1111-4222-8333-944455556666@shop.example>",
		.date_ms = DATE_MS, .extra = marketing, .n_extra = 2 },
	  "想你了!Shop 期待与您重逢", "商店", "noreply@shop.example",
	  "王小明", "base64", "base64" },
	{ "text_only", {
		.from = "noreply@shop.example",
		.to_addr = "bob@example.org", .to_name = NULL,
		.subject = "Text only",
		.text = "Just text.\n", .html = NULL,
		.message_id = "t1@shop.example", .date_ms = 0 },
	  "Text only", "", "noreply@shop.example", "", "quoted-printable", NULL },
	{ "html_only", {
		.from = "\"Shop Team\" <noreply@shop.example>",
		.to_addr = "bob@example.org", .to_name = "Bob",
		.subject = "HTML only",
		.text = NULL, .html = "<p>Hello</p>",
		.message_id = "h1@shop.example", .date_ms = -1500 },
	  "HTML only", "Shop Team", "noreply@shop.example", "Bob", NULL,
	  "quoted-printable" },
	{ "hostile", {
		.from = "\"Shop, Inc.\r\nBcc: evil@x.example\" <noreply@shop.example>",
		.to_addr = "carol@example.net",
		.to_name = "Bob\r\nBcc: evil@x.example",
		.subject = "Hello\r\nBcc: evil@x.example\r\n\r\n<script>alert('x')</script> \"q\"\x01\x7f",
		.text = "<script>alert(1)</script>\n",
		.html = "<p>&lt;script&gt;</p>\n",
		.message_id = "hostile@shop.example", .date_ms = DATE_MS,
		.extra = hostile_extra, .n_extra = 1 },
	  "HelloBcc: evil@x.example<script>alert('x')</script> \"q\"",
	  "Shop, Inc.Bcc: evil@x.example", "noreply@shop.example",
	  "BobBcc: evil@x.example", "quoted-printable", "quoted-printable" },
	{ "long_subject", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "dave@example.com", .to_name = "Dave",
		.subject = long_subject, .text = "x\n", .html = NULL,
		.message_id = "ls@shop.example", .date_ms = DATE_MS },
	  long_subject, "Shop", "noreply@shop.example", "Dave",
	  "quoted-printable", NULL },
	{ "long_ascii_subject", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "dave@example.com", .to_name = "Dave",
		.subject = long_ascii_subject, .text = "x", .html = NULL,
		.message_id = "la@shop.example", .date_ms = DATE_MS },
	  long_ascii_subject, "Shop", "noreply@shop.example", "Dave",
	  "quoted-printable", NULL },
	{ "body", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "erin@example.com", .to_name = "Erin",
		.subject = "Body round trip", .text = body_text, .html = body_html,
		.message_id = "body@shop.example", .date_ms = DATE_MS },
	  "Body round trip", "Shop", "noreply@shop.example", "Erin",
	  "quoted-printable", "quoted-printable" },
	{ "long_names", {
		.from = "Müller & Söhne GmbH — Kundenservice, Abteilung Nord (Hamburg) <service@shop.example>",
		.to_addr = "frank@example.com", .to_name = long_name,
		.subject = "Names", .text = "x\n", .html = NULL,
		.message_id = "ln@shop.example", .date_ms = DATE_MS },
	  "Names", "Müller & Söhne GmbH — Kundenservice, Abteilung Nord (Hamburg)",
	  "service@shop.example", long_name, "quoted-printable", NULL },
	{ "lookalike", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "gina@example.com", .to_name = "=?utf-8?q?x?=",
		.subject = "  =?utf-8?q?hi?= is  not\tencoded  ",
		.text = "x\n", .html = NULL,
		.message_id = "lk@shop.example", .date_ms = DATE_MS },
	  "=?utf-8?q?hi?= is  not\tencoded", "Shop", "noreply@shop.example",
	  "=?utf-8?q?x?=", "quoted-printable", NULL },
	{ "empty_subject", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "hal@example.com", .to_name = " \t\r\n ",
		.subject = " \r\n ", .text = "", .html = NULL,
		.message_id = "es@shop.example", .date_ms = DATE_MS },
	  "", "Shop", "noreply@shop.example", "", "quoted-printable", NULL },
	{ "empty_text_part", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "ivy@example.com", .to_name = "Ivy",
		.subject = "Empty text part", .text = "", .html = "<p>x</p>",
		.message_id = "et@shop.example", .date_ms = DATE_MS },
	  "Empty text part", "Shop", "noreply@shop.example", "Ivy",
	  "quoted-printable", "quoted-printable" },
	{ "cr_line_ends", {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "jun@example.cn", .to_name = "Jun",
		.subject = "CR line ends",
		.text = "\r第一行\r第二行\r\n\r\n第三行\n第四行\r",
		.html = "<p>a</p>\r\r<p>b \t</p>\r\n<p>c</p>\r",
		.message_id = "cr@shop.example", .date_ms = DATE_MS },
	  "CR line ends", "Shop", "noreply@shop.example", "Jun",
	  "base64", "quoted-printable" },
};

#define N_CASES (sizeof cases / sizeof cases[0])

/* Header section of a message: up to the first empty line. */
static size_t
header_end(const char *m, size_t len)
{
	const char *p = find_in(m, len, "\r\n\r\n", false);

	return p ? (size_t)(p - m) + 2 : len;
}

static int
count_field(const char *m, size_t hlen, const char *name)
{
	size_t nlen = strlen(name), i = 0;
	int n = 0;

	while (i < hlen) {
		const char *eol = find_in(m + i, hlen - i, "\r\n", false);
		size_t llen = eol ? (size_t)(eol - (m + i)) : hlen - i;
		if (llen > nlen && strncasecmp(m + i, name, nlen) == 0 &&
		    m[i + nlen] == ':')
			n++;
		i += llen + 2;
	}
	return n;
}

static void
check_raw(const struct tcase *tc, const char *m, size_t len)
{
	size_t i, line = 0, hlen = header_end(m, len), start = 0;
	const char *names[] = { "From", "To", "Date", "Message-ID", "Subject",
				"MIME-Version" };
	bool ok_bytes = true, ok_lines = true, ok_fold = true, ok_ew = true;

	ASSERT_TRUE(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n');
	ASSERT_EQ_INT(strlen(m), len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)m[i];
		if (c >= 0x80 || (c == '\r' && (i + 1 >= len || m[i + 1] != '\n')) ||
		    (c == '\n' && (i == 0 || m[i - 1] != '\r')))
			ok_bytes = false;
		if (c == '\r' || c == '\n')
			line = 0;
		else if (++line > 998)
			ok_lines = false;
	}
	if (!ok_bytes || !ok_lines)
		fprintf(stderr, "%s: bytes %d lines %d\n", tc->name, ok_bytes, ok_lines);
	ASSERT_TRUE(ok_bytes);
	ASSERT_TRUE(ok_lines);

	/* Header lines fold at 78; a longer line holds one unbreakable token. */
	while (start < hlen) {
		const char *l = m + start, *eol = find_in(l, hlen - start, "\r\n", false);
		size_t llen = eol ? (size_t)(eol - l) : hlen - start, j = 0;
		if (llen > 78) {
			if (!isspace((unsigned char)l[0])) {
				while (j < llen && l[j] != ':')
					j++;
				j++;
			}
			while (j < llen && isspace((unsigned char)l[j]))
				j++;
			if (memchr(l + j, ' ', llen - j) || memchr(l + j, '\t', llen - j)) {
				fprintf(stderr, "%s: header line of %zu octets: %.*s\n",
					tc->name, llen, (int)llen, l);
				ok_fold = false;
			}
		}
		start += llen + 2;
	}
	ASSERT_TRUE(ok_fold);

	/* Encoded-words ("=?charset?enc?text?=") are at most 75 characters. */
	for (i = 0; i + 1 < hlen; i++) {
		const char *p, *e = NULL;
		if (m[i] != '=' || m[i + 1] != '?')
			continue;
		p = memchr(m + i + 2, '?', hlen - i - 2);
		if (p != NULL)
			p = memchr(p + 1, '?', hlen - (size_t)(p + 1 - m));
		if (p != NULL)
			e = find_in(p + 1, hlen - (size_t)(p + 1 - m), "?=", false);
		if (e == NULL || (size_t)(e + 2 - (m + i)) > 75) {
			fprintf(stderr, "%s: bad or long encoded-word at offset %zu\n",
				tc->name, i);
			ok_ew = false;
			break;
		}
		i = (size_t)(e + 1 - m);
	}
	ASSERT_TRUE(ok_ew);

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		int n = count_field(m, hlen, names[i]);
		if (n != 1)
			fprintf(stderr, "%s: %d %s headers\n", tc->name, n, names[i]);
		ASSERT_EQ_INT(n, 1);
	}
	ASSERT_EQ_INT(count_field(m, hlen, "Bcc"), 0);
	ASSERT_EQ_INT(count_field(m, hlen, "Cc"), 0);
	for (i = 0; i < tc->in.n_extra; i++)
		ASSERT_EQ_INT(count_field(m, hlen, tc->in.extra[i].name), 1);
	ASSERT_TRUE(find_in(m, hlen, "\r\nMIME-Version: 1.0\r\n", false) != NULL);
	ASSERT_TRUE(find_nocase(m, "8bit") == NULL);
	ASSERT_TRUE(find_nocase(m, "binary") == NULL);
	ASSERT_TRUE(find_nocase(m, "\r\nContent-Transfer-Encoding: 7bit") == NULL);
	/* No line of the whole message starts a Bcc header. */
	ASSERT_TRUE(find_nocase(m, "\r\nBcc:") == NULL);
	if (tc->in.text != NULL && tc->in.html != NULL) {
		const char *plain = strstr(m, "Content-Type: text/plain; charset=utf-8");
		const char *html = strstr(m, "Content-Type: text/html; charset=utf-8");
		ASSERT_TRUE(strstr(m, "Content-Type: multipart/alternative;") != NULL);
		ASSERT_TRUE(plain != NULL && html != NULL && plain < html);
	} else {
		ASSERT_TRUE(strstr(m, "multipart") == NULL);
		ASSERT_TRUE(strstr(m, tc->in.text ? "Content-Type: text/plain; charset=utf-8"
					   : "Content-Type: text/html; charset=utf-8") != NULL);
	}
}

static int
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (f == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static json_t *
jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int
write_expectations(const char *path, const struct tcase *tc)
{
	json_t *root, *extra = json_array();
	size_t i;
	int rc;

	for (i = 0; i < tc->in.n_extra; i++)
		json_array_append_new(extra, json_pack("[ss]", tc->in.extra[i].name,
						       tc->in.extra[i].value));
	root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:o}",
		"name", tc->name,
		"subject", tc->want_subject,
		"from_name", tc->want_from_name,
		"from_addr", tc->want_from_addr,
		"to_name", tc->want_to_name,
		"to_addr", tc->in.to_addr,
		"text_input", jstr_or_null(tc->in.text),
		"html_input", jstr_or_null(tc->in.html),
		"cte_text", jstr_or_null(tc->want_cte_text),
		"cte_html", jstr_or_null(tc->want_cte_html),
		"date_ms", (json_int_t)tc->in.date_ms,
		"extra", extra);
	if (root == NULL)
		return -1;
	json_object_set_new(root, "message_id", json_string(tc->in.message_id));
	rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_ENSURE_ASCII);
	json_decref(root);
	return rc;
}

static void
test_messages(void)
{
	char dir[] = "/tmp/rouse-test-email-XXXXXX";
	char path[512], cmd[1024], err[256];
	const char *tests_dir = getenv("ROUSE_TESTS_DIR");
	char *out[N_CASES] = { 0 };
	size_t outlen[N_CASES] = { 0 }, i;
	bool written = true;
	int status;

	ASSERT_TRUE(mkdtemp(dir) != NULL);
	for (i = 0; i < N_CASES; i++) {
		char *again = NULL;
		size_t againlen = 0;

		err[0] = '\0';
		int rc = email_build(&cases[i].in, &out[i], &outlen[i], err, sizeof err);
		if (rc != 0)
			fprintf(stderr, "%s: build failed: %s\n", cases[i].name, err);
		ASSERT_EQ_INT(rc, 0);
		if (rc != 0) {
			written = false;
			continue;
		}
		check_raw(&cases[i], out[i], outlen[i]);
		/* The same input gives the same bytes (a retry resends them). */
		ASSERT_EQ_INT(email_build(&cases[i].in, &again, &againlen, err, sizeof err), 0);
		ASSERT_TRUE(again != NULL && againlen == outlen[i] &&
			    memcmp(again, out[i], againlen) == 0);
		free(again);
		snprintf(path, sizeof path, "%s/%s.eml", dir, cases[i].name);
		if (write_file(path, out[i], outlen[i]) != 0)
			written = false;
		snprintf(path, sizeof path, "%s/%s.json", dir, cases[i].name);
		if (write_expectations(path, &cases[i]) != 0)
			written = false;
	}
	ASSERT_TRUE(written);
	ASSERT_TRUE(tests_dir != NULL);
	if (tests_dir != NULL && written) {
		snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/unit/check_email.py' '%s'",
			 tests_dir, dir);
		status = system(cmd);
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			fprintf(stderr, "check_email.py failed (status %d); messages kept in %s\n",
				status, dir);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			for (i = 0; i < N_CASES; i++) {
				snprintf(path, sizeof path, "%s/%s.eml", dir, cases[i].name);
				unlink(path);
				snprintf(path, sizeof path, "%s/%s.json", dir, cases[i].name);
				unlink(path);
			}
			rmdir(dir);
		}
	}
	for (i = 0; i < N_CASES; i++)
		free(out[i]);
}

/* Part of the expected output, as a reviewer reads it. */
static void
test_exact_headers(void)
{
	char *m = NULL, err[256];
	size_t len = 0;

	ASSERT_EQ_INT(email_build(&cases[1].in, &m, &len, err, sizeof err), 0);
	if (m == NULL)
		return;
	static const char want[] =
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
		"From: =?UTF-8?B?5ZWG5bqX?= <noreply@shop.example>\r\n"
		"To: =?UTF-8?B?546L5bCP5piO?= <wang@example.cn>\r\n"
		"Subject: =?UTF-8?B?5oOz5L2g5LqGIVNob3Ag5pyf5b6F5LiO5oKo6YeN6YCi?=\r\n"
		"Message-ID: <9d1c0b7a-1111-4222-8333-944455556666@shop.example>\r\n"
		"List-Unsubscribe: <https://shop.example/unsubscribe/v1.";

	if (strncmp(m, want, strlen(want)) != 0)
		fprintf(stderr, "got:\n%.600s\nwant:\n%s\n", m, want);
	ASSERT_TRUE(strncmp(m, want, strlen(want)) == 0);
	/* The second URI is folded onto its own line after the comma. */
	ASSERT_TRUE(strstr(m, "Pw>,\r\n <mailto:unsubscribe@shop.example?subject=") != NULL);
	ASSERT_TRUE(strstr(m, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n") != NULL);
	free(m);
}

/* Whole messages, byte for byte: the layout GMime 3.2 wrote when it
 * serialised rouse's messages (MIME-Version after the message's own
 * headers, no preamble, the boundary's CRLF before each delimiter, the
 * transfer encoders' soft line breaks and =20/=09 at line ends), kept
 * identical so that a retry of a message queued before the change sends
 * the same bytes. */
static const struct email_header golden_extra[] = {
	{ "List-Unsubscribe", "<https://shop.example/u/g>" },
};

static const char golden_multipart[] =
	"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	"From: Shop <noreply@shop.example>\r\n"
	"To: Ann Lee <ann@example.com>\r\n"
	"Subject: =?UTF-8?B?R29sZGVuIOmHkeiJsiBvZmZlcg==?=\r\n"
	"Message-ID: <golden@shop.example>\r\n"
	"List-Unsubscribe: <https://shop.example/u/g>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/alternative; boundary=\"=_rouse_a2820877b3888723\"\r\n"
	"\r\n"
	"--=_rouse_a2820877b3888723\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"Line with trailing blanks =20\r\n"
	"Trailing tab=09\r\n"
	"A long line that the quoted-printable encoder must break with a soft line b=\r\n"
	"reak: it runs on past seventy-six characters.\r\n"
	".\r\n"
	"From here\r\n"
	"=3D sign, no end\r\n"
	"\r\n"
	"--=_rouse_a2820877b3888723\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"PHA+5L2g5aW977yM5LiW55WMPC9wPg0KPHA+5YaN6KeBPC9wPg0K\r\n"
	"\r\n"
	"--=_rouse_a2820877b3888723--\r\n";

static const char golden_single[] =
	"Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
	"From: noreply@shop.example\r\n"
	"To: bob@example.org\r\n"
	"Subject: Mac line ends\r\n"
	"Message-ID: <mac@shop.example>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/html; charset=utf-8\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n"
	"\r\n"
	"<p>one</p>\r\n"
	"<p>two\t</p>\r\n"
	"\r\n"
	"<p>three</p>\r\n";

static void
expect_bytes(const char *what, const struct email_input *in, const char *want)
{
	char *m = NULL, err[256] = "";
	size_t len = 0;

	if (email_build(in, &m, &len, err, sizeof err) != 0)
		fprintf(stderr, "%s: build failed: %s\n", what, err);
	ASSERT_TRUE(m != NULL);
	if (m == NULL)
		return;
	if (len != strlen(want) || memcmp(m, want, len) != 0)
		fprintf(stderr, "%s: got:\n%s\nwant:\n%s\n", what, m, want);
	ASSERT_EQ_INT(len, strlen(want));
	ASSERT_TRUE(memcmp(m, want, len < strlen(want) ? len : strlen(want)) == 0);
	free(m);
}

static void
test_golden(void)
{
	struct email_input multi = {
		.from = "Shop <noreply@shop.example>",
		.to_addr = "ann@example.com", .to_name = "Ann Lee",
		.subject = "Golden 金色 offer",
		.text = "Line with trailing blanks  \nTrailing tab\t\n"
			"A long line that the quoted-printable encoder must break "
			"with a soft line break: it runs on past seventy-six "
			"characters.\n.\nFrom here\n= sign, no end",
		.html = "<p>你好，世界</p>\r\n<p>再见</p>\r\n",
		.message_id = "golden@shop.example", .date_ms = DATE_MS,
		.extra = golden_extra, .n_extra = 1,
	};
	struct email_input single = {
		.from = "noreply@shop.example",
		.to_addr = "bob@example.org", .to_name = NULL,
		.subject = "Mac line ends",
		.html = "<p>one</p>\r<p>two\t</p>\r\r<p>three</p>\r",
		.message_id = "<mac@shop.example>", .date_ms = 0,
	};

	expect_bytes("golden_multipart", &multi, golden_multipart);
	expect_bytes("golden_single", &single, golden_single);
}

/* A draft copies its inputs: it builds the bytes email_build builds from
 * the same inputs, after the originals are gone. */
static void
test_drafts(void)
{
	char from[64], subject[256], text[4096], name[64], hname[32], hvalue[64];
	struct email_header extra[1];
	struct email_input in;
	struct email_draft *d;
	char *want = NULL, *got = NULL, err[256] = "";
	size_t wantlen = 0, gotlen = 0, i;

	for (i = 0; i < N_CASES; i++) {
		d = email_draft_new(&cases[i].in);
		ASSERT_TRUE(d != NULL);
		if (d == NULL)
			continue;
		ASSERT_EQ_INT(email_build(&cases[i].in, &want, &wantlen, err, sizeof err), 0);
		ASSERT_EQ_INT(email_draft_build(d, &got, &gotlen, err, sizeof err), 0);
		ASSERT_TRUE(want != NULL && got != NULL && wantlen == gotlen &&
			    memcmp(want, got, wantlen) == 0);
		free(want);
		free(got);
		want = got = NULL;
		email_draft_free(d);
	}

	snprintf(from, sizeof from, "%s", "Shop <noreply@shop.example>");
	snprintf(subject, sizeof subject, "%s", cases[1].in.subject);
	snprintf(text, sizeof text, "%s", cases[1].in.text);
	snprintf(name, sizeof name, "%s", cases[1].in.to_name);
	snprintf(hname, sizeof hname, "%s", "List-Unsubscribe");
	snprintf(hvalue, sizeof hvalue, "%s", "<https://shop.example/u/d>");
	extra[0] = (struct email_header){ hname, hvalue };
	in = cases[1].in;
	in.from = from;
	in.subject = subject;
	in.text = text;
	in.to_name = name;
	in.extra = extra;
	in.n_extra = 1;
	ASSERT_EQ_INT(email_build(&in, &want, &wantlen, err, sizeof err), 0);
	d = email_draft_new(&in);
	ASSERT_TRUE(d != NULL);
	memset(from, 'x', sizeof from - 1);
	memset(subject, 'x', sizeof subject - 1);
	memset(text, 'x', sizeof text - 1);
	memset(name, 'x', sizeof name - 1);
	memset(hname, 'x', sizeof hname - 1);
	memset(hvalue, 'x', sizeof hvalue - 1);
	extra[0] = (struct email_header){ NULL, NULL };
	if (d != NULL) {
		ASSERT_EQ_INT(email_draft_build(d, &got, &gotlen, err, sizeof err), 0);
		ASSERT_TRUE(want != NULL && got != NULL && wantlen == gotlen &&
			    memcmp(want, got, wantlen) == 0);
		email_draft_free(d);
	}
	free(want);
	free(got);

	/* The builder's refusal survives the copy. */
	in = cases[0].in;
	in.extra = NULL;
	in.n_extra = 2;
	d = email_draft_new(&in);
	ASSERT_TRUE(d != NULL);
	got = NULL;
	if (d != NULL) {
		ASSERT_EQ_INT(email_draft_build(d, &got, &gotlen, err, sizeof err), -1);
		ASSERT_TRUE(got == NULL);
		ASSERT_TRUE(strstr(err, "extra: NULL with n_extra 2") != NULL);
		email_draft_free(d);
	}
	email_draft_free(NULL);
}

static void
expect_fail(const struct email_input *in, const char *want_err)
{
	char untouched[] = "untouched", err[256] = "";
	char *m = untouched;
	size_t len = 7;
	int rc = email_build(in, &m, &len, err, sizeof err);

	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(m == NULL);
	ASSERT_EQ_INT(len, 0);
	if (strstr(err, want_err) == NULL)
		fprintf(stderr, "error \"%s\" does not contain \"%s\"\n", err, want_err);
	ASSERT_TRUE(strstr(err, want_err) != NULL);
	if (rc == 0)
		free(m);
}

static void
test_refusals(void)
{
	struct email_input in = cases[0].in;
	struct email_header bad[2];
	char big[5000];

	in.to_addr = "a@example.com\r\nBcc: evil@x.example";
	expect_fail(&in, "to_addr: invalid address");
	in.to_addr = "a@example.com, b@example.com";
	expect_fail(&in, "to_addr: invalid address");
	in.to_addr = "<a@example.com>";
	expect_fail(&in, "to_addr: invalid address");
	in.to_addr = "a@b@example.com";
	expect_fail(&in, "to_addr: invalid address");
	in.to_addr = "ä@example.com";
	expect_fail(&in, "to_addr: invalid address");
	in.to_addr = "";
	expect_fail(&in, "to_addr: invalid address");
	in = cases[0].in;
	in.from = "Shop";
	expect_fail(&in, "from: invalid address");
	in = cases[0].in;
	in.text = NULL;
	in.html = NULL;
	expect_fail(&in, "at least one part");
	in = cases[0].in;
	in.subject = "bad \xff UTF-8";
	expect_fail(&in, "subject: invalid UTF-8");
	in = cases[0].in;
	in.to_name = "\xe4\xbd";
	expect_fail(&in, "to_name: invalid UTF-8");
	in = cases[0].in;
	in.text = "overlong \xc0\xaf";
	expect_fail(&in, "text: invalid UTF-8");
	in = cases[0].in;
	in.html = "surrogate \xed\xa0\x80";
	expect_fail(&in, "html: invalid UTF-8");
	in = cases[0].in;
	in.message_id = "no-at-sign";
	expect_fail(&in, "message_id");
	in.message_id = "a b@shop.example";
	expect_fail(&in, "message_id");
	in = cases[0].in;
	in.subject = NULL;
	expect_fail(&in, "subject: missing");
	in = cases[0].in;
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	in.subject = big;
	expect_fail(&in, "subject: too long");
	in = cases[0].in;
	in.date_ms = INT64_C(400000000000000);
	expect_fail(&in, "date_ms");

	in = cases[0].in;
	in.extra = bad;
	in.n_extra = 1;
	bad[0] = (struct email_header){ "Bcc", "evil@x.example" };
	expect_fail(&in, "extra[0] (Bcc): header is written by the builder");
	bad[0] = (struct email_header){ "content-type", "text/plain" };
	expect_fail(&in, "extra[0] (content-type)");
	bad[0] = (struct email_header){ "Subject", "again" };
	expect_fail(&in, "extra[0] (Subject)");
	bad[0] = (struct email_header){ "X Bad", "v" };
	expect_fail(&in, "invalid header name");
	bad[0] = (struct email_header){ "X-Evil:", "v" };
	expect_fail(&in, "invalid header name");
	bad[0] = (struct email_header){ "X-Tag", "caf\xc3\xa9" };
	expect_fail(&in, "value must be ASCII");
	bad[0] = (struct email_header){ "X-Tag", "\r\n" };
	expect_fail(&in, "empty value");
	memset(big, 'u', 1200);
	big[1200] = '\0';
	bad[0] = (struct email_header){ "X-Long", big };
	expect_fail(&in, "998");
	bad[0] = (struct email_header){ "List-Unsubscribe", "<https://a.example/>" };
	bad[1] = (struct email_header){ "list-unsubscribe", "<https://b.example/>" };
	in.n_extra = 2;
	expect_fail(&in, "duplicate header");
}

static void
test_from_domain(void)
{
	char buf[64];

	email_from_domain("Shop <noreply@shop.example>", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "shop.example");
	email_from_domain("noreply@mail.shop.example", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "mail.shop.example");
	email_from_domain("\"A, B\" <x@b.example>", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "b.example");
	email_from_domain("商店 <noreply@shop.example>", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "shop.example");
	email_from_domain("Shop", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "localhost");
	email_from_domain("", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "localhost");
	email_from_domain(NULL, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "localhost");
	email_from_domain("x@", buf, sizeof buf);
	ASSERT_EQ_STR(buf, "localhost");
	email_from_domain("Shop <noreply@shop.example>", buf, 10);
	ASSERT_EQ_STR(buf, "localhost");
}

/* Concurrent builds give the bytes a single thread gives. */
struct thread_arg {
	const char *want;
	size_t wantlen;
	const struct email_input *in;
	int mismatches;
};

static void *
build_thread(void *p)
{
	struct thread_arg *a = p;
	char err[256];
	int i;

	for (i = 0; i < 40; i++) {
		char *m = NULL;
		size_t len = 0;
		if (email_build(a->in, &m, &len, err, sizeof err) != 0 ||
		    len != a->wantlen || memcmp(m, a->want, len) != 0)
			a->mismatches++;
		free(m);
	}
	return NULL;
}

static void
test_threads(void)
{
	pthread_t th[4];
	struct thread_arg args[4];
	char *want[2] = { NULL, NULL }, err[256];
	size_t wantlen[2];
	int i;

	ASSERT_EQ_INT(email_build(&cases[1].in, &want[0], &wantlen[0], err, sizeof err), 0);
	ASSERT_EQ_INT(email_build(&cases[7].in, &want[1], &wantlen[1], err, sizeof err), 0);
	if (want[0] == NULL || want[1] == NULL)
		goto out;
	for (i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ want[i % 2], wantlen[i % 2],
					       &cases[i % 2 ? 7 : 1].in, 0 };
		ASSERT_EQ_INT(pthread_create(&th[i], NULL, build_thread, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ_INT(args[i].mismatches, 0);
	}
out:
	free(want[0]);
	free(want[1]);
}

int
main(void)
{
	char *m = NULL, err[256] = "";
	size_t len = 0;

	fill_bodies();

	/* Before initialisation the builder refuses rather than crashing. */
	ASSERT_EQ_INT(email_build(&cases[0].in, &m, &len, err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "email_global_init") != NULL);

	email_global_init();
	email_global_init();
	test_messages();
	test_exact_headers();
	test_golden();
	test_drafts();
	test_refusals();
	test_from_domain();
	test_threads();
	email_global_shutdown();
	TEST_DONE();
}
