/* email.c: builds the bytes of one email message (pure).
 *
 * This module owns the wire form of every email rouse sends: the SMTP
 * transport and the maildir outbox both take exactly the bytes built here.
 *
 * DESIGN
 * GMime builds the MIME structure (multipart/alternative or one text part),
 * the Content-* headers, the transfer encoding of the bodies and the final
 * serialisation, with CRLF line ends (a per-call GMimeFormatOptions with
 * GMIME_NEWLINE_FORMAT_DOS). The six top-level headers and the extra
 * headers are folded and RFC 2047-encoded here and handed to GMime as raw
 * (already folded) values, because GMime 3.2's own header encoder
 *   - writes encoded-words longer than 75 characters for long runs of
 *     non-ASCII text without spaces (RFC 2047 section 2 caps them at 75),
 *   - picks ISO-8859-1 rather than UTF-8 for Latin display names,
 *   - leaves ASCII text that looks like an encoded-word ("=?utf-8?q?x?=")
 *     unencoded, so a reader decodes it into something else,
 *   - turns a long ASCII token such as a List-Unsubscribe URL into
 *     =?us-ascii?Q?...?= words, which breaks the URL.
 *
 * Header values: every C0 control except TAB, and DEL, is removed before
 * anything else looks at the value (so "x\r\nBcc: y" can never start a
 * header), then leading and trailing blanks are trimmed; display names also
 * have each run of blanks collapsed to one space. A Subject of printable
 * ASCII without "=?" and without words over 77 characters is written as
 * is, folded at blanks; anything else becomes a sequence of UTF-8
 * encoded-words (Q or B, whichever is shorter), each at most 75 characters,
 * never splitting a UTF-8 character. In a display name, words that are
 * RFC 5322 atoms are written as is and each run of other words becomes
 * encoded-words (no quoted-strings are ever written). Header lines are
 * folded at 78 octets; only an unbreakable
 * token (a long address or URL) may make a line longer, and never longer
 * than 998 octets.
 *
 * Bodies: line ends are normalised (CRLF, CR and LF all become one line
 * end) and a non-empty body that does not end with a line end gets one,
 * because the last line of a single-part message necessarily ends in CRLF.
 * A body with more than one byte in six outside ASCII (CJK text) is sent in
 * base64, any other in quoted-printable; 7bit, 8bit and binary are never
 * used. Decoding a part gives back the normalised body byte for byte, with
 * CRLF line ends. Lines starting with "." or "From " are left alone: dot
 * stuffing is the SMTP transport's job and no From-munging is done.
 *
 * The multipart boundary is "=_rouse_" plus a hash of the Message-ID and
 * date, so a retry produces the same bytes; "=_" can occur neither in
 * quoted-printable nor in base64 output, so the boundary never collides
 * with a body.
 *
 * Threads: email_global_init() runs g_mime_init() once and then builds a
 * throw-away message so that every GType GMime registers lazily on first
 * use exists before any worker thread starts. GMime's default format and
 * parser options are process-global; this module never changes them and
 * nothing else in the process may after initialisation (they are read, by
 * GMime itself, from every thread). email_build() shares no GMime object
 * between calls, so it may run on any thread concurrently.
 */
#include "email.h"
#include "utf8.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMAIL_FOLD 78            /* header lines are folded at this width */
#define EMAIL_EW_MAX 75          /* RFC 2047 encoded-word length cap */
#define EMAIL_EW_OVERHEAD 12     /* "=?UTF-8?B?" + "?=" */
#define EMAIL_LINE_MAX 998       /* RFC 5322 hard line limit, without CRLF */
#define EMAIL_VALUE_MAX 4096     /* cap on one header value, in bytes */
#define EMAIL_PART_MAX (8u << 20) /* cap on one body part, in bytes */

static pthread_once_t email_once = PTHREAD_ONCE_INIT;
static atomic_bool email_ready;

/* One header value being folded: the text after "Name:", as GMime stores
 * a raw value (LF line ends; GMime writes them as CRLF). */
struct email_fold {
	GString *raw;
	size_t col;      /* column of the next character on the current line */
	bool has_token;  /* the current line holds a token after the name */
};

static void email_set_err(char *err, size_t errlen, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

static void
email_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
email_is_blank(char c)
{
	return c == ' ' || c == '\t';
}


static bool
email_utf8_valid(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		n = utf8_decode((const unsigned char *)s + i, len - i, NULL);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* Copies a header value without C0 controls (TAB kept) and DEL, trimmed
 * of leading and trailing blanks; with collapse, every run of blanks
 * becomes one space. Returns NULL (err set) when too long or not UTF-8. */
static GString *
email_clean_value(const char *field, const char *in, bool collapse,
		  char *err, size_t errlen)
{
	GString *s;
	size_t len = strlen(in), i;
	unsigned char c;

	if (len > EMAIL_VALUE_MAX) {
		email_set_err(err, errlen, "%s: too long (%zu bytes, limit %d)",
			      field, len, EMAIL_VALUE_MAX);
		return NULL;
	}
	s = g_string_sized_new(len);
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		if (collapse && email_is_blank((char)c)) {
			if (s->len > 0 && s->str[s->len - 1] != ' ')
				g_string_append_c(s, ' ');
			continue;
		}
		g_string_append_c(s, (char)c);
	}
	while (s->len > 0 && email_is_blank(s->str[s->len - 1]))
		g_string_truncate(s, s->len - 1);
	i = 0;
	while (i < s->len && email_is_blank(s->str[i]))
		i++;
	g_string_erase(s, 0, (gssize)i);
	if (!email_utf8_valid(s->str, s->len)) {
		email_set_err(err, errlen, "%s: invalid UTF-8", field);
		g_string_free(s, TRUE);
		return NULL;
	}
	return s;
}

/* addr-spec as rouse sends it: printable ASCII without specials, exactly
 * one '@' with something on both sides, at most 254 bytes.
 * NEEDSWORK: quoted local parts and non-ASCII addresses (IDN domains,
 * SMTPUTF8) are refused rather than encoded. */
static bool
email_addr_valid(const char *a)
{
	size_t len = strlen(a), i;
	const char *at = strchr(a, '@');

	if (len < 3 || len > 254 || at == NULL || at != strrchr(a, '@') ||
	    at == a || at[1] == '\0')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c >= 0x7f || strchr("<>()[],;:\\\"", c) != NULL)
			return false;
	}
	return true;
}

/* Splits a cleaned From value, "Name <addr>", "\"Name\" <addr>" or
 * "addr", into name (possibly empty, blanks collapsed) and address. */
static void
email_split_from(const char *from, GString **name, GString **addr)
{
	const char *lt, *end = from + strlen(from);
	GString *n;
	const char *p;

	*name = NULL;
	*addr = NULL;
	if (end > from && end[-1] == '>' && (lt = strrchr(from, '<')) != NULL) {
		*addr = g_string_new_len(lt + 1, end - 1 - (lt + 1));
		n = g_string_new(NULL);
		p = from;
		while (p < lt && email_is_blank(*p))
			p++;
		while (lt > p && email_is_blank(lt[-1]))
			lt--;
		if (lt - p >= 2 && *p == '"' && lt[-1] == '"') {
			for (p++, lt--; p < lt; p++) {
				if (*p == '\\' && p + 1 < lt)
					p++;
				g_string_append_c(n, *p);
			}
		} else {
			g_string_append_len(n, p, lt - p);
		}
		*name = n;
	} else {
		*addr = g_string_new(from);
		*name = g_string_new(NULL);
	}
}

static void
email_fold_init(struct email_fold *f, const char *name)
{
	f->raw = g_string_new(NULL);
	f->col = strlen(name) + 1;
	f->has_token = false;
}

/* Appends sep (blanks) and an unbreakable token, folding before sep when
 * the token would cross column 78. A token too long for any line stays
 * where it is; the line may then not exceed 998 octets. */
static int
email_fold_token(struct email_fold *f, const char *sep, size_t seplen,
		 const char *tok, size_t toklen)
{
	bool fits = f->col + seplen + toklen <= EMAIL_FOLD;

	if (!fits && (f->has_token || seplen + toklen <= EMAIL_FOLD)) {
		g_string_append_c(f->raw, '\n');
		f->col = 0;
	}
	g_string_append_len(f->raw, sep, (gssize)seplen);
	g_string_append_len(f->raw, tok, (gssize)toklen);
	f->col += seplen + toklen;
	f->has_token = true;
	return f->col <= EMAIL_LINE_MAX ? 0 : -1;
}

/* Appends the blank-separated words of s, keeping each original run of
 * blanks (so unfolding gives s back); the first word gets one space. */
static int
email_fold_words(struct email_fold *f, const char *s, size_t len)
{
	size_t i = 0, ws, w;

	while (i < len) {
		ws = i;
		while (i < len && email_is_blank(s[i]))
			i++;
		w = i;
		while (i < len && !email_is_blank(s[i]))
			i++;
		if (i == w)
			break;
		if (ws == w) {
			if (email_fold_token(f, " ", 1, s + w, i - w) < 0)
				return -1;
		} else if (email_fold_token(f, s + ws, w - ws, s + w, i - w) < 0) {
			return -1;
		}
	}
	return 0;
}

/* RFC 2047 section 5(3): the only characters a Q-encoded word may carry
 * literally in a phrase; used for every header, which is always safe. */
static bool
email_q_literal(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
	       c == '-' || c == '/';
}

static size_t
email_q_cost(const unsigned char *s, size_t len)
{
	size_t cost = 0, i;

	for (i = 0; i < len; i++)
		cost += (email_q_literal(s[i]) || s[i] == ' ') ? 1 : 3;
	return cost;
}

static size_t
email_b_cost(size_t nbytes)
{
	return 4 * ((nbytes + 2) / 3);
}

static void
email_q_append(GString *w, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		if (email_q_literal(s[i])) {
			g_string_append_c(w, (char)s[i]);
		} else if (s[i] == ' ') {
			g_string_append_c(w, '_');
		} else {
			g_string_append_c(w, '=');
			g_string_append_c(w, hex[s[i] >> 4]);
			g_string_append_c(w, hex[s[i] & 0x0f]);
		}
	}
}

/* Appends s (valid UTF-8) as a run of encoded-words: each at most 75
 * characters and short enough for its line, cut only between characters.
 * Blanks between the words are ignored by decoders, so the run decodes to
 * s exactly. */
static int
email_fold_encoded(struct email_fold *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	bool b64 = email_b_cost(len) < email_q_cost(s, len);
	GString *w = g_string_new(NULL);
	size_t i = 0, start, clen, room, cost, need;
	gchar *enc;
	int rc = 0;

	while (i < len) {
		/* Fold first when what is left would fit one whole word on a
		 * fresh line but not on this one, or not even one character
		 * fits here. */
		need = EMAIL_EW_OVERHEAD +
		       (b64 ? email_b_cost(len - i) : email_q_cost(s + i, len - i));
		if (need > EMAIL_EW_MAX) {
			clen = utf8_decode(s + i, len - i, NULL);
			need = EMAIL_EW_OVERHEAD +
			       (b64 ? email_b_cost(clen) : email_q_cost(s + i, clen));
		}
		if (f->col + 1 + need > EMAIL_FOLD) {
			g_string_append_c(f->raw, '\n');
			f->col = 0;
		}
		room = EMAIL_FOLD - f->col - 1;
		if (room > EMAIL_EW_MAX)
			room = EMAIL_EW_MAX;
		start = i;
		cost = EMAIL_EW_OVERHEAD;
		while (i < len) {
			clen = utf8_decode(s + i, len - i, NULL);
			if (b64)
				need = EMAIL_EW_OVERHEAD + email_b_cost(i + clen - start);
			else
				need = cost + email_q_cost(s + i, clen);
			if (need > room)
				break;
			cost = need;
			i += clen;
		}
		g_string_assign(w, b64 ? "=?UTF-8?B?" : "=?UTF-8?Q?");
		if (b64) {
			enc = g_base64_encode(s + start, i - start);
			g_string_append(w, enc);
			g_free(enc);
		} else {
			email_q_append(w, s + start, i - start);
		}
		g_string_append(w, "?=");
		if (email_fold_token(f, " ", 1, w->str, w->len) < 0) {
			rc = -1;
			break;
		}
	}
	g_string_free(w, TRUE);
	return rc;
}

/* A Subject written as is: printable ASCII and blanks, no "=?", and no
 * word too long to fold. */
static bool
email_subject_plain(const char *s, size_t len)
{
	size_t i, word = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (email_is_blank((char)c)) {
			word = 0;
			continue;
		}
		if (c < 0x21 || c > 0x7e || ++word > EMAIL_FOLD - 1)
			return false;
		if (c == '=' && i + 1 < len && s[i + 1] == '?')
			return false;
	}
	return true;
}

/* RFC 5322 atext. */
static bool
email_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* An atom of a display name written as is: atext only, no "=?", short
 * enough to fold. */
static bool
email_atom(const char *s, size_t len)
{
	size_t i;

	if (len > EMAIL_FOLD - 1)
		return false;
	for (i = 0; i < len; i++) {
		if (!email_atext((unsigned char)s[i]))
			return false;
		if (s[i] == '=' && i + 1 < len && s[i + 1] == '?')
			return false;
	}
	return true;
}

/* Appends a display name (blanks already collapsed to single spaces):
 * atoms as they are, each maximal run of other words (with the spaces
 * inside it) as encoded-words. The space between an atom and an
 * encoded-word is kept by every decoder, so a name whose runs each fit in
 * one encoded-word decodes exactly everywhere. A longer run needs
 * adjacent encoded-words, which RFC 2047 decoders join without a space
 * but Python's address parser (3.11) joins with one. */
static int
email_fold_phrase(struct email_fold *f, const char *s, size_t len)
{
	size_t i = 0, w, run_start = 0, run_end = 0;
	bool in_run = false;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		w = i;
		while (i < len && s[i] != ' ')
			i++;
		if (i == w)
			break;
		if (!email_atom(s + w, i - w)) {
			if (!in_run)
				run_start = w;
			in_run = true;
			run_end = i;
			continue;
		}
		if (in_run && email_fold_encoded(f, s + run_start,
						 run_end - run_start) < 0)
			return -1;
		in_run = false;
		if (email_fold_token(f, " ", 1, s + w, i - w) < 0)
			return -1;
	}
	if (in_run && email_fold_encoded(f, s + run_start, run_end - run_start) < 0)
		return -1;
	return 0;
}

/* Appends a header to obj with our folded raw value; value is the same
 * text unfolded, for GMime's own view of the header. */
static void
email_put_header(GMimeObject *obj, const char *name, const char *value,
		 struct email_fold *f)
{
	GMimeHeaderList *list;
	GMimeHeader *h;

	g_string_append_c(f->raw, '\n');
	g_mime_object_append_header(obj, name, value, NULL);
	list = g_mime_object_get_header_list(obj);
	h = g_mime_header_list_get_header_at(list,
			g_mime_header_list_get_count(list) - 1);
	g_mime_header_set_raw_value(h, f->raw->str);
}

/* Unfolded form of a raw value: LF and the leading space removed. */
static gchar *
email_unfold(const GString *raw)
{
	GString *s = g_string_sized_new(raw->len);
	size_t i;

	for (i = 0; i < raw->len; i++)
		if (raw->str[i] != '\n')
			g_string_append_c(s, raw->str[i]);
	while (s->len > 0 && email_is_blank(s->str[0]))
		g_string_erase(s, 0, 1);
	return g_string_free(s, FALSE);
}

/* From or To: "phrase <addr>" or "addr". */
static int
email_add_mailbox(GMimeObject *obj, const char *hname, const char *field,
		  const GString *name, const char *addr, char *err, size_t errlen)
{
	struct email_fold f;
	GString *tok = NULL;
	gchar *value = NULL;
	int rc = -1;

	email_fold_init(&f, hname);
	if (!email_addr_valid(addr)) {
		email_set_err(err, errlen, "%s: invalid address \"%s\"", field, addr);
		goto out;
	}
	if (name->len > 0) {
		if (email_fold_phrase(&f, name->str, name->len) < 0)
			goto too_long;
		tok = g_string_new(NULL);
		g_string_printf(tok, "<%s>", addr);
		if (email_fold_token(&f, " ", 1, tok->str, tok->len) < 0)
			goto too_long;
	} else if (email_fold_token(&f, " ", 1, addr, strlen(addr)) < 0) {
		goto too_long;
	}
	value = email_unfold(f.raw);
	email_put_header(obj, hname, value, &f);
	rc = 0;
	goto out;
too_long:
	email_set_err(err, errlen, "%s: a line would exceed %d octets",
		      field, EMAIL_LINE_MAX);
out:
	g_free(value);
	if (tok != NULL)
		g_string_free(tok, TRUE);
	g_string_free(f.raw, TRUE);
	return rc;
}

static int
email_add_simple(GMimeObject *obj, const char *hname, const char *value,
		 const char *field, char *err, size_t errlen)
{
	struct email_fold f;
	int rc = 0;

	email_fold_init(&f, hname);
	if (email_fold_words(&f, value, strlen(value)) < 0) {
		email_set_err(err, errlen, "%s: a line would exceed %d octets",
			      field, EMAIL_LINE_MAX);
		rc = -1;
	} else {
		email_put_header(obj, hname, value, &f);
	}
	g_string_free(f.raw, TRUE);
	return rc;
}

static int
email_add_subject(GMimeObject *obj, const GString *subject, char *err,
		  size_t errlen)
{
	struct email_fold f;
	gchar *value = NULL;
	int rc;

	email_fold_init(&f, "Subject");
	if (email_subject_plain(subject->str, subject->len))
		rc = email_fold_words(&f, subject->str, subject->len);
	else
		rc = email_fold_encoded(&f, subject->str, subject->len);
	if (rc < 0) {
		email_set_err(err, errlen, "subject: a line would exceed %d octets",
			      EMAIL_LINE_MAX);
	} else {
		value = email_unfold(f.raw);
		email_put_header(obj, "Subject", value, &f);
	}
	g_free(value);
	g_string_free(f.raw, TRUE);
	return rc;
}

static int
email_format_date(int64_t date_ms, char *buf, size_t buflen)
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	int64_t secs = date_ms / 1000;
	struct tm tm;
	time_t t;

	if (date_ms % 1000 < 0)
		secs--;
	t = (time_t)secs;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < 0 ||
	    tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(buf, buflen, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* Header names the builder writes itself, or that would add recipients. */
static bool
email_reserved_header(const char *name)
{
	static const char *const reserved[] = {
		"From", "To", "Cc", "Bcc", "Date", "Message-ID", "Subject",
		"MIME-Version", "Sender", "Return-Path"
	};
	size_t i;

	if (g_ascii_strncasecmp(name, "Content-", 8) == 0)
		return true;
	for (i = 0; i < G_N_ELEMENTS(reserved); i++)
		if (g_ascii_strcasecmp(name, reserved[i]) == 0)
			return true;
	return false;
}

static bool
email_header_name_valid(const char *name)
{
	size_t len = strlen(name), i;

	if (len == 0 || len > 76)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e || c == ':')
			return false;
	}
	return true;
}

static int
email_add_extras(GMimeObject *obj, const struct email_input *in, char *err,
		 size_t errlen)
{
	char field[128];
	GString *v = NULL;
	size_t i, j;
	int rc = -1;

	for (i = 0; i < in->n_extra; i++) {
		const char *name = in->extra[i].name;

		if (name == NULL || in->extra[i].value == NULL) {
			email_set_err(err, errlen, "extra[%zu]: missing name or value", i);
			goto out;
		}
		snprintf(field, sizeof(field), "extra[%zu] (%.80s)", i, name);
		if (!email_header_name_valid(name)) {
			email_set_err(err, errlen, "%s: invalid header name", field);
			goto out;
		}
		if (email_reserved_header(name)) {
			email_set_err(err, errlen, "%s: header is written by the builder",
				      field);
			goto out;
		}
		for (j = 0; j < i; j++) {
			if (g_ascii_strcasecmp(name, in->extra[j].name) == 0) {
				email_set_err(err, errlen, "%s: duplicate header", field);
				goto out;
			}
		}
		v = email_clean_value(field, in->extra[i].value, false, err, errlen);
		if (v == NULL)
			goto out;
		if (v->len == 0) {
			email_set_err(err, errlen, "%s: empty value", field);
			goto out;
		}
		for (j = 0; j < v->len; j++) {
			if ((unsigned char)v->str[j] >= 0x80) {
				email_set_err(err, errlen, "%s: value must be ASCII", field);
				goto out;
			}
		}
		if (email_add_simple(obj, name, v->str, field, err, errlen) < 0)
			goto out;
		g_string_free(v, TRUE);
		v = NULL;
	}
	rc = 0;
out:
	if (v != NULL)
		g_string_free(v, TRUE);
	return rc;
}

/* One text part: line ends normalised, charset=utf-8, base64 when more
 * than one byte in six is outside ASCII, quoted-printable otherwise.
 * Quoted-printable content is handed over with LF line ends and GMime's
 * DOS newline filter turns them into CRLF after encoding; base64 content
 * is handed over with CRLF already, since it is encoded as opaque bytes. */
static GMimePart *
email_text_part(const char *subtype, const char *field, const char *src,
		char *err, size_t errlen)
{
	size_t len = strlen(src), i, high = 0;
	GString *body = NULL, *crlf = NULL;
	GMimeStream *stream = NULL;
	GMimeDataWrapper *wrapper = NULL;
	GMimePart *part = NULL;
	bool b64;

	if (len > EMAIL_PART_MAX) {
		email_set_err(err, errlen, "%s: too large (%zu bytes, limit %u)",
			      field, len, EMAIL_PART_MAX);
		goto out;
	}
	if (!email_utf8_valid(src, len)) {
		email_set_err(err, errlen, "%s: invalid UTF-8", field);
		goto out;
	}
	body = g_string_sized_new(len + 1);
	for (i = 0; i < len; i++) {
		if (src[i] == '\r') {
			g_string_append_c(body, '\n');
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			g_string_append_c(body, src[i]);
		}
		if ((unsigned char)src[i] >= 0x80)
			high++;
	}
	if (body->len > 0 && body->str[body->len - 1] != '\n')
		g_string_append_c(body, '\n');
	b64 = high * 6 > body->len;
	if (b64) {
		crlf = g_string_sized_new(body->len + body->len / 16);
		for (i = 0; i < body->len; i++) {
			if (body->str[i] == '\n')
				g_string_append_c(crlf, '\r');
			g_string_append_c(crlf, body->str[i]);
		}
		stream = g_mime_stream_mem_new_with_buffer(crlf->str, crlf->len);
	} else {
		stream = g_mime_stream_mem_new_with_buffer(body->str, body->len);
	}
	wrapper = g_mime_data_wrapper_new_with_stream(stream,
			GMIME_CONTENT_ENCODING_DEFAULT);
	part = g_mime_part_new_with_type("text", subtype);
	g_mime_part_set_content(part, wrapper);
	g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset",
						 "utf-8");
	g_mime_part_set_content_encoding(part, b64 ?
			GMIME_CONTENT_ENCODING_BASE64 :
			GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
out:
	if (wrapper != NULL)
		g_object_unref(wrapper);
	if (stream != NULL)
		g_object_unref(stream);
	if (crlf != NULL)
		g_string_free(crlf, TRUE);
	if (body != NULL)
		g_string_free(body, TRUE);
	return part;
}

/* The last line of defence: 7-bit, CRLF only, no NUL, lines <= 998. */
static int
email_check_output(const unsigned char *b, size_t len, char *err,
		   size_t errlen)
{
	size_t i, line = 0;

	for (i = 0; i < len; i++) {
		if (b[i] == 0 || b[i] >= 0x80) {
			email_set_err(err, errlen,
				      "internal: byte 0x%02x at offset %zu", b[i], i);
			return -1;
		}
		if (b[i] == '\r') {
			if (i + 1 >= len || b[i + 1] != '\n') {
				email_set_err(err, errlen,
					      "internal: bare CR at offset %zu", i);
				return -1;
			}
			continue;
		}
		if (b[i] == '\n') {
			if (i == 0 || b[i - 1] != '\r') {
				email_set_err(err, errlen,
					      "internal: bare LF at offset %zu", i);
				return -1;
			}
			line = 0;
			continue;
		}
		if (++line > EMAIL_LINE_MAX) {
			email_set_err(err, errlen,
				      "internal: line over %d octets at offset %zu",
				      EMAIL_LINE_MAX, i);
			return -1;
		}
	}
	if (len < 2 || b[len - 2] != '\r' || b[len - 1] != '\n') {
		email_set_err(err, errlen, "internal: message does not end in CRLF");
		return -1;
	}
	return 0;
}

/* FNV-1a, for a boundary that is stable across retries of one job. */
static uint64_t
email_fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int
email_build(const struct email_input *in, char **out, size_t *outlen,
	    char *err, size_t errlen)
{
	GString *subject = NULL, *to_name = NULL, *from_clean = NULL;
	GString *from_name = NULL, *from_addr = NULL, *to_addr = NULL;
	GString *msgid = NULL;
	GMimeMessage *msg = NULL;
	GMimePart *text = NULL, *html = NULL;
	GMimeMultipart *alt = NULL;
	GMimeFormatOptions *fmt = NULL;
	GMimeStream *stream = NULL;
	GByteArray *bytes;
	char date[64], boundary[40];
	char *idval = NULL;
	uint64_t h;
	size_t i;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (!atomic_load(&email_ready)) {
		email_set_err(err, errlen, "email_global_init() was not called");
		goto out;
	}
	if (in->from == NULL || in->to_addr == NULL || in->subject == NULL ||
	    in->message_id == NULL) {
		email_set_err(err, errlen, "%s: missing",
			      in->from == NULL ? "from" :
			      in->to_addr == NULL ? "to_addr" :
			      in->subject == NULL ? "subject" : "message_id");
		goto out;
	}
	if (in->text == NULL && in->html == NULL) {
		email_set_err(err, errlen, "text, html: at least one part is needed");
		goto out;
	}
	if (in->n_extra > 0 && in->extra == NULL) {
		email_set_err(err, errlen, "extra: NULL with n_extra %zu", in->n_extra);
		goto out;
	}
	if ((from_clean = email_clean_value("from", in->from, false, err, errlen)) == NULL ||
	    (to_addr = email_clean_value("to_addr", in->to_addr, false, err, errlen)) == NULL ||
	    (to_name = email_clean_value("to_name", in->to_name ? in->to_name : "",
					 true, err, errlen)) == NULL ||
	    (subject = email_clean_value("subject", in->subject, false, err, errlen)) == NULL ||
	    (msgid = email_clean_value("message_id", in->message_id, false, err, errlen)) == NULL)
		goto out;
	email_split_from(from_clean->str, &from_name, &from_addr);
	{
		GString *collapsed = email_clean_value("from", from_name->str, true,
						       err, errlen);
		if (collapsed == NULL)
			goto out;
		g_string_free(from_name, TRUE);
		from_name = collapsed;
	}
	if (msgid->len >= 2 && msgid->str[0] == '<' && msgid->str[msgid->len - 1] == '>') {
		g_string_truncate(msgid, msgid->len - 1);
		g_string_erase(msgid, 0, 1);
	}
	for (i = 0; i < msgid->len; i++) {
		unsigned char c = (unsigned char)msgid->str[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			break;
	}
	if (msgid->len == 0 || msgid->len > 250 || i < msgid->len ||
	    strchr(msgid->str, '@') == NULL) {
		email_set_err(err, errlen,
			      "message_id: \"%s\" is not of the form id@domain",
			      msgid->str);
		goto out;
	}
	if (email_format_date(in->date_ms, date, sizeof(date)) < 0) {
		email_set_err(err, errlen, "date_ms: %lld is out of range",
			      (long long)in->date_ms);
		goto out;
	}

	msg = g_mime_message_new(FALSE);
	idval = g_strdup_printf("<%s>", msgid->str);
	if (email_add_simple(GMIME_OBJECT(msg), "Date", date, "date_ms", err, errlen) < 0 ||
	    email_add_mailbox(GMIME_OBJECT(msg), "From", "from", from_name,
			      from_addr->str, err, errlen) < 0 ||
	    email_add_mailbox(GMIME_OBJECT(msg), "To", "to_addr", to_name,
			      to_addr->str, err, errlen) < 0 ||
	    email_add_subject(GMIME_OBJECT(msg), subject, err, errlen) < 0 ||
	    email_add_simple(GMIME_OBJECT(msg), "Message-ID", idval, "message_id",
			     err, errlen) < 0 ||
	    email_add_extras(GMIME_OBJECT(msg), in, err, errlen) < 0)
		goto out;

	if (in->text != NULL &&
	    (text = email_text_part("plain", "text", in->text, err, errlen)) == NULL)
		goto out;
	if (in->html != NULL &&
	    (html = email_text_part("html", "html", in->html, err, errlen)) == NULL)
		goto out;
	if (text != NULL && html != NULL) {
		h = email_fnv1a(0xcbf29ce484222325ULL, msgid->str, msgid->len);
		h = email_fnv1a(h, &in->date_ms, sizeof(in->date_ms));
		snprintf(boundary, sizeof(boundary), "=_rouse_%016llx",
			 (unsigned long long)h);
		alt = g_mime_multipart_new_with_subtype("alternative");
		g_mime_multipart_set_boundary(alt, boundary);
		g_mime_multipart_add(alt, GMIME_OBJECT(text));
		g_mime_multipart_add(alt, GMIME_OBJECT(html));
		g_mime_message_set_mime_part(msg, GMIME_OBJECT(alt));
	} else {
		g_mime_message_set_mime_part(msg, GMIME_OBJECT(text != NULL ? text : html));
	}

	fmt = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fmt, GMIME_NEWLINE_FORMAT_DOS);
	stream = g_mime_stream_mem_new();
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), fmt, stream) < 0) {
		email_set_err(err, errlen, "internal: GMime failed to write the message");
		goto out;
	}
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
	if (email_check_output(bytes->data, bytes->len, err, errlen) < 0)
		goto out;
	*out = malloc(bytes->len + 1);
	if (*out == NULL) {
		email_set_err(err, errlen, "out of memory (%u bytes)", bytes->len + 1);
		goto out;
	}
	memcpy(*out, bytes->data, bytes->len);
	(*out)[bytes->len] = '\0';
	*outlen = bytes->len;
	rc = 0;
out:
	if (stream != NULL)
		g_object_unref(stream);
	if (fmt != NULL)
		g_mime_format_options_free(fmt);
	if (alt != NULL)
		g_object_unref(alt);
	if (text != NULL)
		g_object_unref(text);
	if (html != NULL)
		g_object_unref(html);
	if (msg != NULL)
		g_object_unref(msg);
	g_free(idval);
	if (subject != NULL)
		g_string_free(subject, TRUE);
	if (to_name != NULL)
		g_string_free(to_name, TRUE);
	if (to_addr != NULL)
		g_string_free(to_addr, TRUE);
	if (from_clean != NULL)
		g_string_free(from_clean, TRUE);
	if (from_name != NULL)
		g_string_free(from_name, TRUE);
	if (from_addr != NULL)
		g_string_free(from_addr, TRUE);
	if (msgid != NULL)
		g_string_free(msgid, TRUE);
	return rc;
}

static void
email_init_once(void)
{
	static const struct email_header extra[] = {
		{ "List-Unsubscribe", "<https://shop.example/u/x>, <mailto:u@shop.example>" },
	};
	struct email_input in = {
		.from = "商店 <noreply@shop.example>",
		.to_addr = "warm@shop.example",
		.to_name = "Wärm Up",
		.subject = "初始化 warm-up",
		.text = "text\n",
		.html = "<p>html 页</p>\n",
		.message_id = "init@shop.example",
		.date_ms = 0,
		.extra = extra,
		.n_extra = 1,
	};
	char *buf = NULL;
	size_t len;

	g_mime_init();
	atomic_store(&email_ready, true);
	/* Registers, on this thread, the GTypes GMime creates lazily. */
	if (email_build(&in, &buf, &len, NULL, 0) == 0)
		free(buf);
}

void
email_global_init(void)
{
	pthread_once(&email_once, email_init_once);
}

void
email_global_shutdown(void)
{
	if (atomic_exchange(&email_ready, false))
		g_mime_shutdown();
}

void
email_from_domain(const char *from, char *buf, size_t buflen)
{
	GString *clean, *name = NULL, *addr = NULL;
	const char *at;

	if (buf == NULL || buflen == 0)
		return;
	snprintf(buf, buflen, "localhost");
	if (from == NULL || (clean = email_clean_value("from", from, false, NULL, 0)) == NULL)
		return;
	email_split_from(clean->str, &name, &addr);
	if (email_addr_valid(addr->str) && (at = strrchr(addr->str, '@')) != NULL &&
	    strlen(at + 1) < buflen)
		snprintf(buf, buflen, "%s", at + 1);
	g_string_free(addr, TRUE);
	g_string_free(name, TRUE);
	g_string_free(clean, TRUE);
}
