/* test_smstext.c: GSM-7 / UCS-2 choice, unit and segment counts. */
#include <string.h>

#include "smstext.h"
#include "testutil.h"

/* out = n copies of piece, followed by tail. */
static const char *
repeat_into(char *out, size_t outlen, const char *piece, int n,
	    const char *tail)
{
	size_t len = 0, plen = strlen(piece);
	int i;

	for (i = 0; i < n && len + plen < outlen; i++) {
		memcpy(out + len, piece, plen);
		len += plen;
	}
	snprintf(out + len, outlen - len, "%s", tail);
	return out;
}

static char buf[8192];
static char buf2[8192];

/* buf = n copies of piece, followed by tail. */
static const char *
repeat(const char *piece, int n, const char *tail)
{
	return repeat_into(buf, sizeof buf, piece, n, tail);
}

/* The same into a second buffer, for a text made of two repeats. */
static const char *
repeat2(const char *piece, int n)
{
	return repeat_into(buf2, sizeof buf2, piece, n, "");
}

static void
expect(const char *what, const char *text, enum sms_encoding enc,
       size_t units, int segments)
{
	struct sms_measure m;
	int rc = sms_measure(text, strlen(text), &m);

	ASSERT_EQ_INT(rc, 0);
	if (rc != 0)
		return;
	if (m.encoding != enc || m.units != units || m.segments != segments)
		fprintf(stderr, "%s: got %s/%zu/%d, want %s/%zu/%d\n", what,
			sms_encoding_name(m.encoding), m.units, m.segments,
			sms_encoding_name(enc), units, segments);
	ASSERT_EQ_STR(sms_encoding_name(m.encoding), sms_encoding_name(enc));
	ASSERT_EQ_INT(m.units, units);
	ASSERT_EQ_INT(m.segments, segments);
}

static void
expect_invalid(const char *text, size_t len)
{
	struct sms_measure m = { SMS_UCS2, 4242, 99 };

	ASSERT_EQ_INT(sms_measure(text, len, &m), -1);
	/* out is left untouched */
	ASSERT_EQ_INT(m.encoding, SMS_UCS2);
	ASSERT_EQ_INT(m.units, 4242);
	ASSERT_EQ_INT(m.segments, 99);
}

/* Checklist 21. */
static void
test_checklist(void)
{
	expect("160 GSM", repeat("a", 160, ""), SMS_GSM7, 160, 1);
	expect("161 GSM", repeat("a", 161, ""), SMS_GSM7, 161, 2);
	expect("80 euro", repeat("€", 80, ""), SMS_GSM7, 160, 1);
	expect("81 euro", repeat("€", 81, ""), SMS_GSM7, 162, 2);
	expect("70 Chinese", repeat("中", 70, ""), SMS_UCS2, 70, 1);
	expect("71 Chinese", repeat("中", 71, ""), SMS_UCS2, 71, 2);
	expect("one emoji", "Your code is 1234 \xf0\x9f\x98\x80", SMS_UCS2, 20, 1);
	expect("plain", "Your code is 1234 ", SMS_GSM7, 18, 1);
}

static void
test_boundaries(void)
{
	struct sms_measure m;

	expect("empty", "", SMS_GSM7, 0, 1);
	ASSERT_EQ_INT(sms_measure(NULL, 0, &m), 0);
	ASSERT_EQ_INT(m.segments, 1);
	ASSERT_EQ_INT(m.encoding, SMS_GSM7);
	expect("153 GSM", repeat("a", 153, ""), SMS_GSM7, 153, 1);
	expect("306 GSM", repeat("a", 306, ""), SMS_GSM7, 306, 2);
	expect("307 GSM", repeat("a", 307, ""), SMS_GSM7, 307, 3);
	expect("459 GSM", repeat("a", 459, ""), SMS_GSM7, 459, 3);
	expect("460 GSM", repeat("a", 460, ""), SMS_GSM7, 460, 4);
	expect("134 Chinese", repeat("中", 134, ""), SMS_UCS2, 134, 2);
	expect("135 Chinese", repeat("中", 135, ""), SMS_UCS2, 135, 3);
	/* 35 emoji = 70 units, one message; 36 = 72 units, two parts. */
	expect("35 emoji", repeat("\xf0\x9f\x98\x80", 35, ""), SMS_UCS2, 70, 1);
	expect("36 emoji", repeat("\xf0\x9f\x98\x80", 36, ""), SMS_UCS2, 72, 2);
}

/* An escape pair or a surrogate pair is never torn across two parts. */
static void
test_packing(void)
{
	char text[1024];

	/* 151 + € = 153 exactly fills part one. */
	snprintf(text, sizeof text, "%s€aaaaaaaa", repeat("a", 151, ""));
	expect("euro ends part one", text, SMS_GSM7, 161, 2);
	/* 152 + € would be 154: € opens part two (152 | 2 + 7). */
	snprintf(text, sizeof text, "%s€aaaaaaa", repeat("a", 152, ""));
	expect("euro at boundary, short", text, SMS_GSM7, 161, 2);
	/* 306 septets, which naive division puts in two parts: 152 | € + 151
	 * | 1 needs three. */
	snprintf(text, sizeof text, "%s€%s", repeat("a", 152, ""),
		 repeat2("a", 152));
	expect("euro at boundary, 306 septets", text, SMS_GSM7, 306, 3);
	snprintf(text, sizeof text, "%s[%s", repeat("a", 152, ""),
		 repeat2("a", 152));
	expect("bracket at boundary", text, SMS_GSM7, 306, 3);
	/* The same text with the escape pair moved off the boundary. */
	snprintf(text, sizeof text, "€%s", repeat("a", 304, ""));
	expect("euro first, 306 septets", text, SMS_GSM7, 306, 2);
	/* UCS-2: 66 + emoji would straddle 67: 66 | 2 + 65 | 1. */
	snprintf(text, sizeof text, "%s\xf0\x9f\x98\x80%s", repeat("中", 66, ""),
		 repeat2("中", 66));
	expect("emoji at boundary", text, SMS_UCS2, 134, 3);
	snprintf(text, sizeof text, "%s\xf0\x9f\x98\x80%s", repeat("中", 65, ""),
		 repeat2("中", 67));
	expect("emoji ends part one", text, SMS_UCS2, 134, 2);
	snprintf(text, sizeof text, "%s\xf0\x9f\x98\x80", repeat("中", 69, ""));
	expect("emoji makes 71 units", text, SMS_UCS2, 71, 2);
}

static void
test_alphabet(void)
{
	/* Every non-ASCII member of the basic table costs one septet. */
	expect("basic non-ASCII",
	       "£¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", SMS_GSM7, 40, 1);
	expect("basic ASCII", "@$!\"#%&'()*+,-./0123456789:;<=>?AZaz \r\n",
	       SMS_GSM7, 39, 1);
	/* Extension table: two septets each. */
	expect("extension", "^{}\\[~]|€\f", SMS_GSM7, 20, 1);
	/* Outside GSM-7: the whole text becomes UCS-2. */
	expect("backtick", "a`b", SMS_UCS2, 3, 1);
	expect("tab", "a\tb", SMS_UCS2, 3, 1);
	expect("lower c cedilla", "ç", SMS_UCS2, 1, 1);
	expect("a with acute", "á", SMS_UCS2, 1, 1);
	expect("Greek lower", "α", SMS_UCS2, 1, 1);
	expect("opt-out zh", "回复TD退订", SMS_UCS2, 6, 1);
	expect("opt-out en", "Reply STOP to opt out", SMS_GSM7, 21, 1);
	/* In UCS-2 an extension character is one unit, like any other. */
	expect("euro and Chinese", "€中", SMS_UCS2, 2, 1);
	{
		struct sms_measure m;
		ASSERT_EQ_INT(sms_measure("a\0b", 3, &m), 0);
		ASSERT_EQ_INT(m.encoding, SMS_UCS2);
		ASSERT_EQ_INT(m.units, 3);
		/* len, not the NUL, ends the text. */
		ASSERT_EQ_INT(sms_measure("abc", 2, &m), 0);
		ASSERT_EQ_INT(m.units, 2);
	}
	ASSERT_EQ_STR(sms_encoding_name(SMS_GSM7), "GSM-7");
	ASSERT_EQ_STR(sms_encoding_name(SMS_UCS2), "UCS-2");
}

static void
test_invalid(void)
{
	expect_invalid("\xff", 1);
	expect_invalid("abc\x80", 4);          /* stray continuation byte */
	expect_invalid("\xc0\xaf", 2);         /* overlong '/' */
	expect_invalid("\xe0\x80\xaf", 3);     /* overlong, three bytes */
	expect_invalid("\xed\xa0\x80", 3);     /* UTF-16 surrogate */
	expect_invalid("\xf4\x90\x80\x80", 4); /* above U+10FFFF */
	expect_invalid("\xe4\xb8", 2);         /* truncated 中 */
	expect_invalid("\xe4\xb8\xad", 2);     /* cut by len */
	expect_invalid("\xe4\x41\xad", 3);     /* bad continuation */
	expect_invalid(NULL, 1);
}

int
main(void)
{
	test_checklist();
	test_boundaries();
	test_packing();
	test_alphabet();
	test_invalid();
	TEST_DONE();
}
