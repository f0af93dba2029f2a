/* smstext.c: SMS encoding choice and segment counting (pure).
 *
 * This module owns the answer to "how many SMS does this text cost": the
 * render step records it per job and the SMS rate limiter counts it.
 *
 * DESIGN
 * One pass over the UTF-8 text decides the encoding and counts units in
 * both encodings at once. A text made only of characters of the GSM 03.38
 * default alphabet (basic table: one septet; extension table, reached by
 * an escape, two septets) is GSM-7; any other character switches the whole
 * text to UCS-2, where a character costs one UTF-16 code unit, or two (a
 * surrogate pair) above U+FFFF.
 *
 * Segments: a text that fits one message (160 septets, 70 units) is one
 * segment, the empty text included. A longer text is sent as concatenated
 * parts whose user data header leaves 153 septets or 67 units per part.
 * Parts are packed the way senders split them: an escape plus its
 * character (GSM-7) and a surrogate pair (UCS-2) are never torn across two
 * parts, so when such a pair would straddle a boundary the part ends one
 * unit early and the pair opens the next part. The count can therefore be
 * one more than ceil(units / 153) (or / 67).
 */
#include "smstext.h"
#include "utf8.h"

#include <stdbool.h>
#include <stdint.h>

#define SMSTEXT_GSM_SINGLE 160
#define SMSTEXT_GSM_PART 153
#define SMSTEXT_UCS2_SINGLE 70
#define SMSTEXT_UCS2_PART 67

/* Non-ASCII members of the GSM 03.38 basic table. */
static const uint16_t smstext_gsm_basic_extra[] = {
	0x00a3, /* £ */ 0x00a5, /* ¥ */ 0x00e8, /* è */ 0x00e9, /* é */
	0x00f9, /* ù */ 0x00ec, /* ì */ 0x00f2, /* ò */ 0x00c7, /* Ç */
	0x00d8, /* Ø */ 0x00f8, /* ø */ 0x00c5, /* Å */ 0x00e5, /* å */
	0x0394, /* Δ */ 0x03a6, /* Φ */ 0x0393, /* Γ */ 0x039b, /* Λ */
	0x03a9, /* Ω */ 0x03a0, /* Π */ 0x03a8, /* Ψ */ 0x03a3, /* Σ */
	0x0398, /* Θ */ 0x039e, /* Ξ */ 0x00c6, /* Æ */ 0x00e6, /* æ */
	0x00df, /* ß */ 0x00c9, /* É */ 0x00a4, /* ¤ */ 0x00a1, /* ¡ */
	0x00c4, /* Ä */ 0x00d6, /* Ö */ 0x00d1, /* Ñ */ 0x00dc, /* Ü */
	0x00a7, /* § */ 0x00bf, /* ¿ */ 0x00e4, /* ä */ 0x00f6, /* ö */
	0x00f1, /* ñ */ 0x00fc, /* ü */ 0x00e0, /* à */
};

/* Septets a code point costs in GSM-7: 1 (basic table), 2 (escape plus
 * extension table), or 0 when it has no GSM-7 form. */
static int
smstext_gsm_cost(uint32_t cp)
{
	size_t i;

	if (cp < 0x80) {
		if (cp == '\n' || cp == '\r')
			return 1;
		if (cp == '\f' || cp == '^' || cp == '{' || cp == '}' ||
		    cp == '\\' || cp == '[' || cp == '~' || cp == ']' || cp == '|')
			return 2;
		/* Printable ASCII but '`' (no GSM-7 form) and the extension
		 * characters above; '@', '$' and '_' are basic-table members. */
		if (cp >= 0x20 && cp < 0x7f && cp != '`')
			return 1;
		return 0;
	}
	if (cp == 0x20ac) /* € */
		return 2;
	for (i = 0; i < sizeof(smstext_gsm_basic_extra) /
			sizeof(smstext_gsm_basic_extra[0]); i++)
		if (smstext_gsm_basic_extra[i] == cp)
			return 1;
	return 0;
}


/* Packing of one encoding: units so far and parts of at most part_max
 * units, where an item of two units never straddles a part boundary. */
struct smstext_pack {
	size_t units;
	int parts;       /* parts closed before the current one */
	size_t in_part;  /* units in the current part */
};

static void
smstext_pack_add(struct smstext_pack *p, size_t cost, size_t part_max)
{
	p->units += cost;
	if (p->in_part + cost > part_max) {
		p->parts++;
		p->in_part = 0;
	}
	p->in_part += cost;
}

static int
smstext_pack_segments(const struct smstext_pack *p, size_t single_max)
{
	if (p->units <= single_max)
		return 1;
	return p->parts + 1;
}

int
sms_measure(const char *text, size_t len, struct sms_measure *out)
{
	const unsigned char *s = (const unsigned char *)text;
	struct smstext_pack gsm = { 0, 0, 0 }, ucs2 = { 0, 0, 0 };
	bool is_gsm = true;
	size_t i = 0, n;
	uint32_t cp;
	int cost;

	if (text == NULL && len > 0)
		return -1;
	while (i < len) {
		n = utf8_decode(s + i, len - i, &cp);
		if (n == 0)
			return -1;
		i += n;
		smstext_pack_add(&ucs2, cp > 0xffff ? 2 : 1, SMSTEXT_UCS2_PART);
		if (is_gsm) {
			cost = smstext_gsm_cost(cp);
			if (cost == 0)
				is_gsm = false;
			else
				smstext_pack_add(&gsm, (size_t)cost, SMSTEXT_GSM_PART);
		}
	}
	if (is_gsm) {
		out->encoding = SMS_GSM7;
		out->units = gsm.units;
		out->segments = smstext_pack_segments(&gsm, SMSTEXT_GSM_SINGLE);
	} else {
		out->encoding = SMS_UCS2;
		out->units = ucs2.units;
		out->segments = smstext_pack_segments(&ucs2, SMSTEXT_UCS2_SINGLE);
	}
	return 0;
}

const char *
sms_encoding_name(enum sms_encoding e)
{
	return e == SMS_GSM7 ? "GSM-7" : "UCS-2";
}
