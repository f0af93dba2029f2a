/* test_address.c: email and E.164 validation and normalisation. */
#include <string.h>

#include "address.h"
#include "testutil.h"

static void expect_email(const char *in, const char *want)
{
	char out[256];

	memset(out, 'X', sizeof out);
	int rc = address_email_normalize(in, out, sizeof out);
	if (rc != 0)
		fprintf(stderr, "refused: \"%s\"\n", in);
	ASSERT_EQ_INT(rc, 0);
	if (rc == 0)
		ASSERT_EQ_STR(out, want);
}

static void expect_bad_email(const char *in)
{
	char out[512];

	int rc = address_email_normalize(in, out, sizeof out);
	if (rc != -1)
		fprintf(stderr, "accepted: \"%s\"\n", in);
	ASSERT_EQ_INT(rc, -1);
}

static void expect_phone(const char *in, int ok)
{
	char out[32];

	int rc = address_phone_normalize(in, out, sizeof out);
	if (rc != (ok ? 0 : -1))
		fprintf(stderr, "phone \"%s\": rc %d\n", in, rc);
	ASSERT_EQ_INT(rc, ok ? 0 : -1);
	if (ok && rc == 0)
		ASSERT_EQ_STR(out, in);
}

static void test_email_valid(void)
{
	expect_email("Alice@Example.COM", "alice@example.com");
	expect_email("alice@example.com", "alice@example.com");
	expect_email("a.b+tag@mail.example.co.uk", "a.b+tag@mail.example.co.uk");
	expect_email("O'Brien_x-y@ex-ample.org", "o'brien_x-y@ex-ample.org");
	expect_email("!#$%&'*+-/=?^_`{|}~@x.io", "!#$%&'*+-/=?^_`{|}~@x.io");
	expect_email("user@xn--fiqs8s.xn--fiqz9s", "user@xn--fiqs8s.xn--fiqz9s");
	expect_email("u@1mail.com", "u@1mail.com");

	char addr[300];
	/* local part of exactly 64 */
	memset(addr, 'a', 64);
	memcpy(addr + 64, "@b.co", 6);
	expect_email(addr, addr);
	/* a 63-byte label */
	memcpy(addr, "x@", 2);
	memset(addr + 2, 'd', 63);
	memcpy(addr + 65, ".com", 5);
	expect_email(addr, addr);
}

static void test_email_invalid(void)
{
	expect_bad_email("");
	expect_bad_email("alice");
	expect_bad_email("alice.example.com");
	expect_bad_email("a@b@example.com");
	expect_bad_email("@example.com");
	expect_bad_email("alice@");
	expect_bad_email("alice@localhost");
	expect_bad_email("alice @example.com");
	expect_bad_email(" alice@example.com");
	expect_bad_email("alice@example.com ");
	expect_bad_email("alice@exa mple.com");
	expect_bad_email("alice@example.com\r\n");
	expect_bad_email("alice@example.com\nBcc: evil@x.com");
	expect_bad_email("ali\rce@example.com");
	expect_bad_email("\tal@example.com");
	expect_bad_email("A <a@b.c>");
	expect_bad_email("<a@b.co>");
	expect_bad_email("\"Alice\" <alice@example.com>");
	expect_bad_email("\"a b\"@example.com");
	expect_bad_email("a,b@example.com");
	expect_bad_email("a@b.co,c@d.co");
	expect_bad_email("a(comment)@example.com");
	expect_bad_email(".alice@example.com");
	expect_bad_email("alice.@example.com");
	expect_bad_email("al..ice@example.com");
	expect_bad_email("alice@-example.com");
	expect_bad_email("alice@example-.com");
	expect_bad_email("alice@example..com");
	expect_bad_email("alice@.example.com");
	expect_bad_email("alice@example.com.");
	expect_bad_email("alice@exa_mple.com");
	expect_bad_email("alice@[192.0.2.1]");
	expect_bad_email("alice@192.0.2.1");
	expect_bad_email("\xe7\x8e\x8b@example.com");
	expect_bad_email("alice@\xe4\xbe\x8b\xe5\xad\x90.com");
	expect_bad_email("alice@example.com\xff");

	char addr[400];
	/* local part of 65 */
	memset(addr, 'a', 65);
	memcpy(addr + 65, "@b.co", 6);
	expect_bad_email(addr);
	/* a 64-byte label */
	memcpy(addr, "x@", 2);
	memset(addr + 2, 'd', 64);
	memcpy(addr + 66, ".com", 5);
	expect_bad_email(addr);
	/* 255 bytes in all, labels within limits */
	memcpy(addr, "x@", 2);
	size_t o = 2;
	while (o + 50 < 255) {
		memset(addr + o, 'd', 49);
		addr[o + 49] = '.';
		o += 50;
	}
	memset(addr + o, 'e', 255 - o);
	addr[255] = '\0';
	expect_bad_email(addr);

	/* the output buffer must fit */
	char small[8];
	ASSERT_EQ_INT(address_email_normalize("alice@example.com", small, sizeof small), -1);
	ASSERT_EQ_INT(address_email_normalize("a@b.co", small, 7), 0);
	ASSERT_EQ_STR(small, "a@b.co");
	ASSERT_EQ_INT(address_email_normalize("a@b.co", small, 6), -1);
}

static void test_phone(void)
{
	expect_phone("+8613800138000", 1);
	expect_phone("+14155552671", 1);
	expect_phone("+12345678", 1);           /* 8 digits */
	expect_phone("+123456789012345", 1);    /* 15 digits */
	expect_phone("+1234567", 0);            /* 7 digits */
	expect_phone("+1234567890123456", 0);   /* 16 digits */
	expect_phone("+0613800138000", 0);
	expect_phone("8613800138000", 0);
	expect_phone("008613800138000", 0);
	expect_phone("+86 13800138000", 0);
	expect_phone("+86-138-0013-8000", 0);
	expect_phone("+86138001380OO", 0);
	expect_phone("+abcdefghij", 0);
	expect_phone("+", 0);
	expect_phone("", 0);
	expect_phone("++8613800138000", 0);
	expect_phone("+8613800138000\n", 0);

	char small[14];
	ASSERT_EQ_INT(address_phone_normalize("+8613800138000", small, sizeof small), -1);
	char fits[15];
	ASSERT_EQ_INT(address_phone_normalize("+8613800138000", fits, sizeof fits), 0);
	ASSERT_EQ_STR(fits, "+8613800138000");
}

static void test_normalize(void)
{
	char out[256];

	ASSERT_EQ_INT(address_normalize("+8613800138000", out, sizeof out), 0);
	ASSERT_EQ_STR(out, "+8613800138000");
	ASSERT_EQ_INT(address_normalize("Bob@Example.Org", out, sizeof out), 0);
	ASSERT_EQ_STR(out, "bob@example.org");
	ASSERT_EQ_INT(address_normalize("u42", out, sizeof out), -1);
	ASSERT_EQ_INT(address_normalize("", out, sizeof out), -1);
	ASSERT_EQ_INT(address_normalize("+86 138", out, sizeof out), -1);
	ASSERT_EQ_INT(address_normalize("13800138000", out, sizeof out), -1);
	ASSERT_EQ_INT(address_normalize("a@b", out, sizeof out), -1);
}

int main(void)
{
	test_email_valid();
	test_email_invalid();
	test_phone();
	test_normalize();
	TEST_DONE();
}
