/* smtpreply.c: the SMTP reply parser (see smtpreply.h).
 *
 * Owns the reading of reply lines: the three-digit code, the "-"/" "
 * continuation mark, the optional RFC 3463 enhanced status code at the
 * start of the text and the EHLO keywords the client acts on. Hand-written
 * with the client it serves (smtpconn.c says why that client is rouse's
 * own); it reads bytes a remote server controls, so every access is
 * bounded by explicit lengths (no NUL-terminated scanning) and it is
 * fuzzed (tests/fuzz/fuzz_smtpreply.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtpreply.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Is text[0, len) the keyword kw, alone or followed by parameters? */
static bool keyword_is(const char *text, size_t len, const char *kw)
{
	size_t k = strlen(kw);
	return len >= k && strncasecmp(text, kw, k) == 0 &&
	       (len == k || text[k] == ' ' || text[k] == '=');
}

static void note_auth_mechanisms(const char *p, const char *end,
				 unsigned *ext)
{
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '='))
			p++;
		const char *word = p;
		while (p < end && *p != ' ')
			p++;
		size_t n = (size_t)(p - word);
		if (n == 5 && strncasecmp(word, "PLAIN", 5) == 0)
			*ext |= SMTP_EXT_AUTH_PLAIN;
		if (n == 5 && strncasecmp(word, "LOGIN", 5) == 0)
			*ext |= SMTP_EXT_AUTH_LOGIN;
	}
}

static void note_extension(const char *text, size_t len, unsigned *ext)
{
	if (keyword_is(text, len, "PIPELINING"))
		*ext |= SMTP_EXT_PIPELINING;
	else if (keyword_is(text, len, "STARTTLS"))
		*ext |= SMTP_EXT_STARTTLS;
	else if (keyword_is(text, len, "AUTH"))
		note_auth_mechanisms(text + 4, text + len, ext);
}

/* "d.ddd.ddd" (class of the reply's first digit) then a space or the
 * end: stored in enh and skipped. */
static void take_enhanced(const char **text, size_t *len, int code,
			  int enh[3])
{
	const char *p = *text, *end = *text + *len;
	int v[3] = { 0, 0, 0 };
	for (int i = 0; i < 3; i++) {
		int digits = 0;
		while (p < end && is_digit(*p) && digits < 3) {
			v[i] = v[i] * 10 + (*p++ - '0');
			digits++;
		}
		if (digits == 0 || (i == 0 && digits != 1))
			return;
		if (i < 2 && (p == end || *p++ != '.'))
			return;
	}
	if ((p < end && *p != ' ') || v[0] != code / 100 ||
	    (v[0] != 2 && v[0] != 4 && v[0] != 5))
		return;
	memcpy(enh, v, sizeof v);
	while (p < end && *p == ' ')
		p++;
	*len = (size_t)(end - p);
	*text = p;
}

static void append_text(struct smtp_reply *r, size_t *used, const char *text,
			size_t len)
{
	size_t room = sizeof r->text - 1 - *used;
	if (*used && room > 0) {
		r->text[(*used)++] = ' ';
		room--;
	}
	if (len > room)
		len = room;
	for (size_t i = 0; i < len; i++)
		r->text[*used + i] = text[i] ? text[i] : '?';
	*used += len;
	r->text[*used] = '\0';
}

long smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *r,
		      unsigned *ext)
{
	memset(r, 0, sizeof *r);
	size_t off = 0, used = 0;
	int code = 0;
	for (int n = 0;; n++) {
		const char *line = buf + off;
		const char *nl = memchr(line, '\n', len - off);
		if (!nl)
			return 0;
		size_t ll = (size_t)(nl - line);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
		    !is_digit(line[2]) || line[0] < '1' || line[0] > '5')
			return -1;
		int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			(line[2] - '0');
		char sep = ll > 3 ? line[3] : ' ';
		if ((sep != ' ' && sep != '-') || (n > 0 && c != code))
			return -1;
		code = c;
		const char *text = line + (ll > 3 ? 4 : 3);
		size_t tl = (size_t)(line + ll - text);
		if (ext && n > 0) {
			note_extension(text, tl, ext);
		} else {
			int enh[3] = { 0, 0, 0 };
			take_enhanced(&text, &tl, code, enh);
			if (n == 0)
				memcpy(r->enh, enh, sizeof enh);
			append_text(r, &used, text, tl);
		}
		off = (size_t)(nl - buf) + 1;
		if (sep == ' ') {
			r->code = code;
			return (long)off;
		}
	}
}

void smtp_reply_describe(const struct smtp_reply *r, const char *phase,
			 char *out, size_t len)
{
	char text[sizeof r->text];
	size_t j = 0;
	for (size_t i = 0; r->text[i] && j + 1 < sizeof text; i++) {
		unsigned char c = (unsigned char)r->text[i];
		if (c == '\r' || c == '\n')
			c = ' ';
		text[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	while (j > 0 && text[j - 1] == ' ')
		j--;
	text[j] = '\0';
	if (r->enh[0])
		snprintf(out, len, "%s: %d %d.%d.%d %s", phase, r->code,
			 r->enh[0], r->enh[1], r->enh[2], text);
	else
		snprintf(out, len, "%s: %d %s", phase, r->code, text);
}

bool smtp_reply_backs_off(const struct smtp_reply *r)
{
	return r->code == 421 || (r->enh[0] == 4 && r->enh[1] == 7);
}
