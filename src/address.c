/* address.c: recipient validation and normalisation.
 *
 * Owns the one definition of "a valid recipient" that intake, opt-outs and
 * suppressions share, so that an address refused at intake is never
 * half-accepted elsewhere and two spellings of one address compare equal.
 *
 * Email: a plain RFC 5322 addr-spec in its dot-atom form only. Quoted local
 * parts, comments, display names and domain literals ("[192.0.2.1]") are
 * refused: nothing a legitimate sender needs, and each is a classic way to
 * smuggle a second recipient or a header past a lax parser. The whole
 * address is lower-cased for its normalised form (delivery rules §7: local
 * part and domain compare case-insensitively).
 *
 * Only ASCII is accepted. SMTPUTF8 (RFC 6531) is not supported, so a UTF-8
 * local part is refused; an internationalised domain must arrive already
 * converted to its punycode ("xn--") form, which is plain ASCII.
 *
 * Phones: E.164 exactly as written ('+', country code not starting with 0,
 * 8..15 digits in all). No spaces, dashes or national forms are rewritten:
 * guessing a country code would file an opt-out under the wrong number.
 */
#include <stdbool.h>
#include <string.h>

#include "address.h"

#define ADDRESS_EMAIL_MAX 254
#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_DOMAIN_MAX 253
#define ADDRESS_LABEL_MAX 63
#define ADDRESS_PHONE_MIN_DIGITS 8
#define ADDRESS_PHONE_MAX_DIGITS 15

static bool address_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool address_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext: letters, digits and a fixed set of printable symbols. */
static bool address_is_atext(unsigned char c)
{
	return address_is_alpha(c) || address_is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* dot-atom-text: atext runs separated by single dots, none at either end. */
static bool address_local_valid(const char *s, size_t len)
{
	if (len == 0 || len > ADDRESS_LOCAL_MAX)
		return false;
	if (s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
			continue;
		}
		if (!address_is_atext(c))
			return false;
	}
	return true;
}

/* Host name: at least two labels of [A-Za-z0-9-], 1..63 bytes each, not
 * starting or ending with '-'; the last label (the TLD) not all digits, so
 * a bare IPv4 address is not taken for a domain. */
static bool address_domain_valid(const char *s, size_t len)
{
	if (len == 0 || len > ADDRESS_DOMAIN_MAX)
		return false;
	size_t labels = 0;
	size_t start = 0;
	bool all_digits = true;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			unsigned char c = (unsigned char)s[i];
			if (!address_is_alpha(c) && !address_is_digit(c) && c != '-')
				return false;
			if (!address_is_digit(c))
				all_digits = false;
			continue;
		}
		size_t llen = i - start;
		if (llen == 0 || llen > ADDRESS_LABEL_MAX)
			return false;
		if (s[start] == '-' || s[i - 1] == '-')
			return false;
		labels++;
		if (i == len && all_digits)
			return false;
		start = i + 1;
		all_digits = true;
	}
	return labels >= 2;
}

int address_email_normalize(const char *addr, char *out, size_t outlen)
{
	if (!addr || !out || outlen == 0)
		return -1;
	size_t len = strlen(addr);
	if (len == 0 || len > ADDRESS_EMAIL_MAX || len + 1 > outlen)
		return -1;
	const char *at = strchr(addr, '@');
	if (!at || strchr(at + 1, '@') != NULL)
		return -1;
	size_t local_len = (size_t)(at - addr);
	if (!address_local_valid(addr, local_len))
		return -1;
	if (!address_domain_valid(at + 1, len - local_len - 1))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = addr[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

int address_phone_normalize(const char *num, char *out, size_t outlen)
{
	if (!num || !out || outlen == 0)
		return -1;
	if (num[0] != '+')
		return -1;
	size_t digits = 0;
	for (const char *p = num + 1; *p; p++) {
		if (!address_is_digit((unsigned char)*p))
			return -1;
		digits++;
	}
	if (digits < ADDRESS_PHONE_MIN_DIGITS || digits > ADDRESS_PHONE_MAX_DIGITS)
		return -1;
	if (num[1] == '0')
		return -1;
	if (digits + 2 > outlen)
		return -1;
	memcpy(out, num, digits + 2);
	return 0;
}

int address_normalize(const char *addr, char *out, size_t outlen)
{
	if (!addr)
		return -1;
	if (addr[0] == '+')
		return address_phone_normalize(addr, out, outlen);
	if (strchr(addr, '@') != NULL)
		return address_email_normalize(addr, out, outlen);
	return -1;
}
