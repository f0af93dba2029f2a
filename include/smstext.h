/* smstext.h: SMS encoding and segment counting (pure).
 *
 * GSM 03.38 default alphabet (7-bit, with the extension table characters
 * costing two septets) or UCS-2 when any character falls outside it.
 * GSM-7: 160 septets in one segment, 153 per segment when split.
 * UCS-2: 70 UTF-16 code units in one segment, 67 per segment when split
 * (a character outside the BMP, e.g. an emoji, takes two units).
 * Split texts are packed as senders split them: an escape pair (GSM-7)
 * or a surrogate pair (UCS-2) never straddles two segments, so segments
 * can be one more than ceil(units / 153) (or / 67).
 */
#ifndef ROUSE_SMSTEXT_H
#define ROUSE_SMSTEXT_H

#include <stddef.h>

enum sms_encoding { SMS_GSM7, SMS_UCS2 };

struct sms_measure {
	enum sms_encoding encoding;
	size_t units;    /* septets (GSM-7) or UTF-16 code units (UCS-2) */
	int segments;    /* 1 for an empty text */
};

/* Measures text[0..len) (UTF-8). Returns 0, or -1 if it is not valid
 * UTF-8 (out untouched). */
int sms_measure(const char *text, size_t len, struct sms_measure *out);

/* "GSM-7" | "UCS-2" */
const char *sms_encoding_name(enum sms_encoding e);

#endif
