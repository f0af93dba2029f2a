/* test_smtpreply.c: the SMTP reply parser on replies as real servers
 * (Postfix, Exchange, aiosmtpd, Gmail) send them, on partial input, and
 * on what is not a reply; how a reply is described and when it asks the
 * client to back off. */
#include <string.h>

#include "smtpreply.h"
#include "testutil.h"

static long parse(const char *s, struct smtp_reply *r, unsigned *ext)
{
	return smtp_reply_parse(s, strlen(s), r, ext);
}

static void simple_replies(void)
{
	struct smtp_reply r;
	const char *ok = "250 2.0.0 Ok: queued as 4F2B1\r\n";
	ASSERT_EQ_INT(parse(ok, &r, NULL), (long)strlen(ok));
	ASSERT_EQ_INT(r.code, 250);
	ASSERT_EQ_INT(r.enh[0], 2);
	ASSERT_EQ_INT(r.enh[1], 0);
	ASSERT_EQ_INT(r.enh[2], 0);
	ASSERT_EQ_STR(r.text, "Ok: queued as 4F2B1");

	ASSERT_TRUE(parse("550 5.1.1 <a@b.example>: Recipient address "
			  "rejected\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.code, 550);
	ASSERT_EQ_INT(r.enh[0] * 100 + r.enh[1] * 10 + r.enh[2], 511);
	ASSERT_EQ_STR(r.text, "<a@b.example>: Recipient address rejected");

	/* three-digit subject and detail (RFC 3463 allows 1-3 digits) */
	ASSERT_TRUE(parse("451 4.123.456 odd\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[1], 123);
	ASSERT_EQ_INT(r.enh[2], 456);
	ASSERT_EQ_STR(r.text, "odd");

	/* bare LF, no text, no space after the code */
	ASSERT_EQ_INT(parse("354\n", &r, NULL), 4);
	ASSERT_EQ_INT(r.code, 354);
	ASSERT_EQ_STR(r.text, "");
	ASSERT_EQ_INT(parse("220 \r\n", &r, NULL), 6);
	ASSERT_EQ_INT(r.code, 220);

	/* the next reply's bytes stay unread */
	const char *two = "250 first\r\n354 go ahead\r\n";
	ASSERT_EQ_INT(parse(two, &r, NULL), 11);
	ASSERT_EQ_STR(r.text, "first");
	ASSERT_EQ_INT(smtp_reply_parse(two + 11, strlen(two + 11), &r, NULL),
		      14);
	ASSERT_EQ_INT(r.code, 354);
}

static void enhanced_code_edges(void)
{
	struct smtp_reply r;
	/* class must match the reply: kept as text otherwise */
	ASSERT_TRUE(parse("550 4.1.1 mismatched\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	ASSERT_EQ_STR(r.text, "4.1.1 mismatched");
	/* a number that is not a status code */
	ASSERT_TRUE(parse("250 2.0 not enough parts\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	ASSERT_EQ_STR(r.text, "2.0 not enough parts");
	ASSERT_TRUE(parse("250 2.0.0x glued\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	ASSERT_TRUE(parse("250 22.0.0 two digits\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	ASSERT_TRUE(parse("250 2.1111.0 four\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	/* 3xx replies carry no enhanced code */
	ASSERT_TRUE(parse("354 3.0.0 go\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0], 0);
	/* the code alone at the end */
	ASSERT_TRUE(parse("421 4.3.2\r\n", &r, NULL) > 0);
	ASSERT_EQ_INT(r.enh[0] * 100 + r.enh[1] * 10 + r.enh[2], 432);
	ASSERT_EQ_STR(r.text, "");
}

static void multiline(void)
{
	struct smtp_reply r;
	const char *gmail =
		"550-5.1.1 The email account that you tried to reach does\r\n"
		"550-5.1.1 not exist. Please try double-checking the\r\n"
		"550 5.1.1 recipient's email address. x1si\r\n";
	ASSERT_EQ_INT(parse(gmail, &r, NULL), (long)strlen(gmail));
	ASSERT_EQ_INT(r.code, 550);
	ASSERT_EQ_INT(r.enh[2], 1);
	ASSERT_EQ_STR(r.text, "The email account that you tried to reach "
		      "does not exist. Please try double-checking the "
		      "recipient's email address. x1si");
	/* incomplete: more bytes needed, at every cut */
	for (size_t cut = 0; cut < strlen(gmail); cut++)
		ASSERT_EQ_INT(smtp_reply_parse(gmail, cut, &r, NULL), 0);
	/* continuation lines must repeat the code */
	ASSERT_EQ_INT(parse("250-a\r\n251 b\r\n", &r, NULL), -1);
	/* a long reply is cut to the text buffer, still parsed whole */
	char big[2000];
	size_t n = 0;
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(big + n, sizeof big - n,
				      "451-4.3.0 line %02d of a long reply\r\n",
				      i);
	n += (size_t)snprintf(big + n, sizeof big - n, "451 4.3.0 end\r\n");
	ASSERT_EQ_INT(parse(big, &r, NULL), (long)n);
	ASSERT_EQ_INT(strlen(r.text), sizeof r.text - 1);
	ASSERT_TRUE(strncmp(r.text, "line 00 of a long reply line 01", 31) ==
		    0);
}

static void ehlo_extensions(void)
{
	struct smtp_reply r;
	unsigned ext = 0;
	const char *postfix =
		"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
		"250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
		"250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n"
		"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";
	ASSERT_EQ_INT(parse(postfix, &r, &ext), (long)strlen(postfix));
	ASSERT_EQ_STR(r.text, "mx.example.com");
	ASSERT_EQ_INT(ext, SMTP_EXT_PIPELINING | SMTP_EXT_STARTTLS |
		      SMTP_EXT_AUTH_PLAIN | SMTP_EXT_AUTH_LOGIN);

	ext = 0; /* old "AUTH=" form, lower case, LOGIN only */
	ASSERT_TRUE(parse("250-x\r\n250-auth=login\r\n250 pipelining\r\n", &r,
			  &ext) > 0);
	ASSERT_EQ_INT(ext, SMTP_EXT_AUTH_LOGIN | SMTP_EXT_PIPELINING);

	ext = 0; /* look-alikes are not the keywords */
	ASSERT_TRUE(parse("250-x\r\n250-PIPELININGX\r\n250-STARTTLSY\r\n"
			  "250-AUTH CRAM-MD5 PLAINISH\r\n250-XAUTH PLAIN\r\n"
			  "250 HELP\r\n", &r, &ext) > 0);
	ASSERT_EQ_INT(ext, 0);

	ext = 0; /* a refused EHLO lists nothing */
	ASSERT_TRUE(parse("502 5.5.2 Error: command not recognized\r\n", &r,
			  &ext) > 0);
	ASSERT_EQ_INT(r.code, 502);
	ASSERT_EQ_INT(ext, 0);
}

static void not_replies(void)
{
	struct smtp_reply r;
	const char *bad[] = {
		"HTTP/1.1 400 Bad Request\r\n", "25\r\n", "2500 x\r\n",
		"250x\r\n", "abc def\r\n", "650 six\r\n", "050 zero\r\n",
		"\r\n", "250\t tab\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (parse(bad[i], &r, NULL) != -1)
			fprintf(stderr, "accepted: %s", bad[i]);
		ASSERT_EQ_INT(parse(bad[i], &r, NULL), -1);
	}
	/* a NUL inside the text does not cut it short */
	const char nul[] = "250 a\0b\r\n";
	ASSERT_EQ_INT(smtp_reply_parse(nul, sizeof nul - 1, &r, NULL),
		      (long)sizeof nul - 1);
	ASSERT_EQ_STR(r.text, "a?b");
}

static void describing(void)
{
	struct smtp_reply r;
	char out[300];
	ASSERT_TRUE(parse("550 5.1.1 <a@b.example>: no\x01such \r\n", &r,
			  NULL) > 0);
	smtp_reply_describe(&r, "RCPT", out, sizeof out);
	ASSERT_EQ_STR(out, "RCPT: 550 5.1.1 <a@b.example>: no?such");
	ASSERT_TRUE(parse("451 try \xe4 later\r\n", &r, NULL) > 0);
	smtp_reply_describe(&r, "DATA", out, sizeof out);
	ASSERT_EQ_STR(out, "DATA: 451 try ? later");
	ASSERT_TRUE(!smtp_reply_backs_off(&r));
	ASSERT_TRUE(parse("421 closing\r\n", &r, NULL) > 0);
	ASSERT_TRUE(smtp_reply_backs_off(&r));
	ASSERT_TRUE(parse("451 4.7.1 slow down\r\n", &r, NULL) > 0);
	ASSERT_TRUE(smtp_reply_backs_off(&r));
	ASSERT_TRUE(parse("550 5.7.1 policy\r\n", &r, NULL) > 0);
	ASSERT_TRUE(!smtp_reply_backs_off(&r));
	struct smtp_reply none = { 0 };
	ASSERT_TRUE(!smtp_reply_backs_off(&none));
}

int main(void)
{
	simple_replies();
	enhanced_code_edges();
	multiline();
	ehlo_extensions();
	not_replies();
	describing();
	TEST_DONE();
}
