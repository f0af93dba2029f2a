/* email.c: builds the bytes of one email message (pure).
 *
 * This module owns the wire form of every email rouse sends: the SMTP
 * transport and the maildir outbox both take exactly the bytes built here.
 *
 * DESIGN
 * The message has one fixed shape, so it is written straight into one
 * growable buffer (struct email_buf), top to bottom, with CRLF line ends:
 *
 *   Date, From, To, Subject, Message-ID, the extra headers (in the order
 *   given), MIME-Version: 1.0, then either one text part's
 *     Content-Type: text/<plain|html>; charset=utf-8
 *     Content-Transfer-Encoding: <quoted-printable|base64>
 *     <blank line> <encoded body>
 *   or
 *     Content-Type: multipart/alternative; boundary="<b>"
 *     <blank line> --<b> <text part> CRLF --<b> <html part> CRLF --<b>--
 *
 * GMime does what it is there for: the quoted-printable and base64
 * transfer encoders (g_mime_encoding_*, plain structs, no objects). The
 * layout is hand-written, measured: building and serialising a GMime
 * object tree (GMimeMessage, GMimeMultipart, two GMimeParts, data
 * wrappers, a memory stream and GMime's DOS newline filter) cost 61-66 us
 * of CPU per winback message on one thread and 70-80 us with four
 * threads at once (bench/email_build_bench, RelWithDebInfo, en and zh-CN
 * alternating, medians of 5 rounds of 20,000); four fifths of it was
 * GObject construction and reference counting, GLib's slice allocator
 * and type locks, header-list and parameter bookkeeping. Writing the same
 * bytes directly costs 7.5-7.9 us on one thread and 8.5-8.7 us with four;
 * what is left is mostly GMime's quoted-printable encoder (about 3.5 us,
 * the html part) and the output check below.
 *
 * The layout above is byte for byte what GMime 3.2 wrote for the same
 * objects (MIME-Version after the message's own headers, no preamble or
 * epilogue, the CRLF before each boundary delimiter belonging to the
 * delimiter): the unit-test messages, the winback messages and 680,000
 * randomised inputs gave identical bytes and identical errors from the
 * former GMime builder and this one (tests/unit/test_email.c keeps two
 * whole messages as golden copies).
 *
 * Header values are folded and RFC 2047-encoded here, not by GMime,
 * because GMime 3.2's own header encoder
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
 * used. Quoted-printable is encoded from the body with LF line ends (the
 * encoder's hard line breaks) and base64 from the body with CRLF line ends
 * (opaque bytes); the encoders' LF line ends become CRLF on output.
 * Decoding a part gives back the normalised body byte for byte, with CRLF
 * line ends. Lines starting with "." or "From " are left alone: dot
 * stuffing is the SMTP transport's job and no From-munging is done.
 *
 * The multipart boundary is "=_rouse_" plus a hash of the Message-ID and
 * date, so a retry produces the same bytes; "=_" can occur neither in
 * quoted-printable nor in base64 output, so the boundary never collides
 * with a body.
 *
 * Memory: the output buffer starts at an estimate of the finished size
 * and doubles when that is short; it never grows past EMAIL_MSG_MAX
 * (unreachable with the input caps below). One scratch block per build
 * holds a body while it is normalised and encoded, reused by the second
 * part.
 *
 * Threads: email_build() keeps all of its state on its own stack and heap
 * and calls only GMime's and GLib's pure encoding functions, so it may run
 * on any thread concurrently. email_global_init() runs g_mime_init() once.
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
#define EMAIL_MSG_MAX (64u << 20) /* cap on the whole message, in bytes */
#define EMAIL_BOUNDARY_LEN 24    /* "=_rouse_" + 16 hex digits */

static pthread_once_t email_once = PTHREAD_ONCE_INIT;
static atomic_bool email_ready;

/* The message being written. After a failed grow (out of memory, or the
 * EMAIL_MSG_MAX cap) every further write is dropped and failed says why. */
struct email_buf {
	char *data;
	size_t len;
	size_t cap;
	const char *failed;  /* NULL, "out of memory" or "too large" */
};

/* Where a body part is normalised and encoded; grows, never shrinks. */
struct email_scratch {
	char *data;
	size_t cap;
};

/* One header being written into the message: col is the column of the
 * next character on the current line. */
struct email_fold {
	struct email_buf *out;
	size_t col;
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

/* Makes room for n more bytes and a terminating NUL. */
static bool
email_buf_reserve(struct email_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->failed != NULL)
		return false;
	if (n < b->cap - b->len)
		return true;
	if (n > EMAIL_MSG_MAX - b->len) {
		b->failed = "too large";
		return false;
	}
	cap = b->cap > 0 ? b->cap : 4096;
	while (cap - b->len <= n)
		cap *= 2;
	if (cap > EMAIL_MSG_MAX + 1)
		cap = EMAIL_MSG_MAX + 1;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->failed = "out of memory";
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static void
email_buf_put(struct email_buf *b, const void *s, size_t n)
{
	if (!email_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

static void
email_buf_puts(struct email_buf *b, const char *s)
{
	email_buf_put(b, s, strlen(s));
}

/* Appends s with every LF written as CRLF (s holds no CR). */
static void
email_buf_put_lf(struct email_buf *b, const char *s, size_t n)
{
	const char *p = s, *end = s + n, *nl;
	size_t lines = 0;
	char *o;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		lines++;
		p = nl + 1;
	}
	if (!email_buf_reserve(b, n + lines))
		return;
	o = b->data + b->len;
	for (p = s; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			memcpy(o, p, (size_t)(end - p));
			o += end - p;
			break;
		}
		memcpy(o, p, (size_t)(nl - p));
		o += nl - p;
		*o++ = '\r';
		*o++ = '\n';
	}
	b->len = (size_t)(o - b->data);
}

static char *
email_scratch_get(struct email_scratch *s, size_t n)
{
	if (n > s->cap) {
		free(s->data);
		s->data = malloc(n);
		s->cap = s->data != NULL ? n : 0;
	}
	return s->data;
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

/* Starts a header line: "Name:". */
static void
email_fold_init(struct email_fold *f, struct email_buf *out, const char *name)
{
	size_t len = strlen(name);

	f->out = out;
	email_buf_put(out, name, len);
	email_buf_put(out, ":", 1);
	f->col = len + 1;
	f->has_token = false;
}

static void
email_fold_end(struct email_fold *f)
{
	email_buf_put(f->out, "\r\n", 2);
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
		email_buf_put(f->out, "\r\n", 2);
		f->col = 0;
	}
	email_buf_put(f->out, sep, seplen);
	email_buf_put(f->out, tok, toklen);
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

/* Q-encodes s into w; returns the length written. */
static size_t
email_q_encode(char *w, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (email_q_literal(s[i])) {
			w[n++] = (char)s[i];
		} else if (s[i] == ' ') {
			w[n++] = '_';
		} else {
			w[n++] = '=';
			w[n++] = hex[s[i] >> 4];
			w[n++] = hex[s[i] & 0x0f];
		}
	}
	return n;
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
	char w[EMAIL_EW_MAX + 1];
	size_t i = 0, start, clen, room, cost, need, n;
	gint state, save;

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
			email_buf_put(f->out, "\r\n", 2);
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
		/* cost <= room <= 75 bounds what goes into w */
		memcpy(w, b64 ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
		n = 10;
		if (b64) {
			state = 0;
			save = 0;
			n += g_base64_encode_step(s + start, i - start, FALSE,
						  w + n, &state, &save);
			n += g_base64_encode_close(FALSE, w + n, &state, &save);
		} else {
			n += email_q_encode(w + n, s + start, i - start);
		}
		memcpy(w + n, "?=", 2);
		n += 2;
		if (email_fold_token(f, " ", 1, w, n) < 0)
			return -1;
	}
	return 0;
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

/* From or To: "phrase <addr>" or "addr". */
static int
email_add_mailbox(struct email_buf *out, const char *hname, const char *field,
		  const GString *name, const char *addr, char *err, size_t errlen)
{
	struct email_fold f;
	char tok[260];
	size_t len;

	if (!email_addr_valid(addr)) {
		email_set_err(err, errlen, "%s: invalid address \"%s\"", field, addr);
		return -1;
	}
	email_fold_init(&f, out, hname);
	len = strlen(addr);  /* at most 254: email_addr_valid */
	if (name->len > 0) {
		tok[0] = '<';
		memcpy(tok + 1, addr, len);
		tok[len + 1] = '>';
		if (email_fold_phrase(&f, name->str, name->len) < 0 ||
		    email_fold_token(&f, " ", 1, tok, len + 2) < 0)
			goto too_long;
	} else if (email_fold_token(&f, " ", 1, addr, len) < 0) {
		goto too_long;
	}
	email_fold_end(&f);
	return 0;
too_long:
	email_set_err(err, errlen, "%s: a line would exceed %d octets",
		      field, EMAIL_LINE_MAX);
	return -1;
}

static int
email_add_simple(struct email_buf *out, const char *hname, const char *value,
		 size_t len, const char *field, char *err, size_t errlen)
{
	struct email_fold f;

	email_fold_init(&f, out, hname);
	if (email_fold_words(&f, value, len) < 0) {
		email_set_err(err, errlen, "%s: a line would exceed %d octets",
			      field, EMAIL_LINE_MAX);
		return -1;
	}
	email_fold_end(&f);
	return 0;
}

static int
email_add_subject(struct email_buf *out, const GString *subject, char *err,
		  size_t errlen)
{
	struct email_fold f;
	int rc;

	email_fold_init(&f, out, "Subject");
	if (email_subject_plain(subject->str, subject->len))
		rc = email_fold_words(&f, subject->str, subject->len);
	else
		rc = email_fold_encoded(&f, subject->str, subject->len);
	if (rc < 0) {
		email_set_err(err, errlen, "subject: a line would exceed %d octets",
			      EMAIL_LINE_MAX);
		return -1;
	}
	email_fold_end(&f);
	return 0;
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
email_add_extras(struct email_buf *out, const struct email_input *in,
		 char *err, size_t errlen)
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
		if (email_add_simple(out, name, v->str, v->len, field, err,
				     errlen) < 0)
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

/* Checks that s is UTF-8 and counts its bytes outside ASCII (every byte
 * of a multi-byte sequence is); ASCII is skipped eight bytes at a time. */
static bool
email_body_scan(const char *str, size_t len, size_t *high)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, n, h = 0;
	uint64_t w;

	while (i < len) {
		if (len - i >= 8) {
			memcpy(&w, s + i, sizeof w);
			if ((w & UINT64_C(0x8080808080808080)) == 0) {
				i += 8;
				continue;
			}
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		n = utf8_decode(s + i, len - i, NULL);
		if (n == 0)
			return false;
		h += n;
		i += n;
	}
	*high = h;
	return true;
}

/* Copies src to dst with every line end (CRLF, CR, LF) written as eol,
 * and eol added when a non-empty src does not end with one. dst holds at
 * least len + (number of line ends + 1) * (eollen - 1) + eollen bytes.
 * Returns the length written. */
static size_t
email_body_normalise(const char *src, size_t len, const char *eol,
		     size_t eollen, char *dst)
{
	char *o = dst;
	size_t i = 0, seg;

	while (i < len) {
		seg = strcspn(src + i, "\r\n");
		memcpy(o, src + i, seg);
		o += seg;
		i += seg;
		if (i == len)
			break;
		if (src[i] == '\r' && i + 1 < len && src[i + 1] == '\n')
			i++;
		i++;
		memcpy(o, eol, eollen);
		o += eollen;
	}
	if (len > 0 && src[len - 1] != '\n' && src[len - 1] != '\r') {
		memcpy(o, eol, eollen);
		o += eollen;
	}
	return (size_t)(o - dst);
}

/* One text part, headers and encoded body: line ends normalised,
 * charset=utf-8, base64 when more than one byte in six is outside ASCII,
 * quoted-printable otherwise. A body that needs no normalising (no CR,
 * ends in LF or is empty) is quoted-printable-encoded where it lies. */
static int
email_add_part(struct email_buf *out, struct email_scratch *scratch,
	       const char *subtype, const char *field, const char *src,
	       char *err, size_t errlen)
{
	size_t len = strlen(src), high = 0, lf = 0, crlf = 0, cr = 0;
	size_t blen, need, enclen;
	const char *body = src, *p;
	char *work, *enc;
	GMimeEncoding state;
	bool b64;

	if (len > EMAIL_PART_MAX) {
		email_set_err(err, errlen, "%s: too large (%zu bytes, limit %u)",
			      field, len, EMAIL_PART_MAX);
		return -1;
	}
	if (!email_body_scan(src, len, &high)) {
		email_set_err(err, errlen, "%s: invalid UTF-8", field);
		return -1;
	}
	for (p = memchr(src, '\r', len); p != NULL;
	     p = memchr(p + 1, '\r', len - (size_t)(p + 1 - src))) {
		if (p + 1 < src + len && p[1] == '\n')
			crlf++;
		else
			cr++;
	}
	/* The length with LF line ends decides the encoding. */
	blen = len - crlf;
	if (len > 0 && src[len - 1] != '\n' && src[len - 1] != '\r')
		blen++;
	b64 = high * 6 > blen;
	for (p = b64 ? memchr(src, '\n', len) : NULL; p != NULL;
	     p = memchr(p + 1, '\n', len - (size_t)(p + 1 - src)))
		lf++;
	g_mime_encoding_init_encode(&state, b64 ? GMIME_CONTENT_ENCODING_BASE64 :
				    GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	/* the body with CRLF (base64) or LF line ends, and its encoding */
	need = b64 ? len + lf + cr + 2 : len + 1;
	enclen = g_mime_encoding_outlen(&state, need);
	work = email_scratch_get(scratch, need + enclen);
	if (work == NULL) {
		email_set_err(err, errlen, "out of memory (%zu bytes)", need + enclen);
		return -1;
	}
	enc = work + need;
	if (b64) {
		blen = email_body_normalise(src, len, "\r\n", 2, work);
		body = work;
	} else if (crlf + cr > 0 || blen != len) {
		blen = email_body_normalise(src, len, "\n", 1, work);
		body = work;
	}
	enclen = g_mime_encoding_flush(&state, body, blen, enc);

	email_buf_puts(out, "Content-Type: text/");
	email_buf_puts(out, subtype);
	email_buf_puts(out, "; charset=utf-8\r\nContent-Transfer-Encoding: ");
	email_buf_puts(out, b64 ? "base64\r\n\r\n" : "quoted-printable\r\n\r\n");
	email_buf_put_lf(out, enc, enclen);
	return 0;
}

/* The last line of defence: 7-bit, CRLF only, no NUL, lines <= 998.
 * Eight bytes at a time while none of them is a control or non-ASCII
 * byte, which is nearly every byte of a message. */
static int
email_check_output(const unsigned char *b, size_t len, char *err,
		   size_t errlen)
{
	const uint64_t ones = UINT64_C(0x0101010101010101);
	const uint64_t highs = UINT64_C(0x8080808080808080);
	size_t i = 0, line = 0;
	uint64_t w;

	while (i < len) {
		if (len - i >= 8) {
			memcpy(&w, b + i, sizeof w);
			/* no byte >= 0x80 and no byte < 0x20 */
			if (((w | ((w - ones * 0x20) & ~w)) & highs) == 0) {
				i += 8;
				line += 8;
				if (line > EMAIL_LINE_MAX) {
					i -= line - EMAIL_LINE_MAX;
					goto too_long;
				}
				continue;
			}
		}
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
			i++;
			continue;
		}
		if (b[i] == '\n') {
			if (i == 0 || b[i - 1] != '\r') {
				email_set_err(err, errlen,
					      "internal: bare LF at offset %zu", i);
				return -1;
			}
			line = 0;
			i++;
			continue;
		}
		i++;
		if (++line > EMAIL_LINE_MAX) {
			i--;
			goto too_long;
		}
	}
	if (len < 2 || b[len - 2] != '\r' || b[len - 1] != '\n') {
		email_set_err(err, errlen, "internal: message does not end in CRLF");
		return -1;
	}
	return 0;
too_long:
	email_set_err(err, errlen, "internal: line over %d octets at offset %zu",
		      EMAIL_LINE_MAX, i);
	return -1;
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
	struct email_buf b = { NULL, 0, 0, NULL };
	struct email_scratch scratch = { NULL, 0 };
	char date[64], boundary[EMAIL_BOUNDARY_LEN + 1], idval[256];
	size_t i, textlen, htmllen;
	uint64_t h;
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

	/* Most messages fit the first allocation: headers, part headers and
	 * the bodies with room for quoted-printable's soft breaks. */
	textlen = in->text != NULL ? strlen(in->text) : 0;
	htmllen = in->html != NULL ? strlen(in->html) : 0;
	if (textlen <= EMAIL_PART_MAX && htmllen <= EMAIL_PART_MAX &&
	    !email_buf_reserve(&b, 2048 + 4 * (subject->len + to_name->len +
					       from_name->len) +
			       (textlen + htmllen) * 9 / 8))
		goto nomem;
	snprintf(idval, sizeof(idval), "<%s>", msgid->str);
	if (email_add_simple(&b, "Date", date, strlen(date), "date_ms", err,
			     errlen) < 0 ||
	    email_add_mailbox(&b, "From", "from", from_name, from_addr->str,
			      err, errlen) < 0 ||
	    email_add_mailbox(&b, "To", "to_addr", to_name, to_addr->str,
			      err, errlen) < 0 ||
	    email_add_subject(&b, subject, err, errlen) < 0 ||
	    email_add_simple(&b, "Message-ID", idval, strlen(idval),
			     "message_id", err, errlen) < 0 ||
	    email_add_extras(&b, in, err, errlen) < 0)
		goto out;
	email_buf_puts(&b, "MIME-Version: 1.0\r\n");
	if (in->text != NULL && in->html != NULL) {
		h = email_fnv1a(0xcbf29ce484222325ULL, msgid->str, msgid->len);
		h = email_fnv1a(h, &in->date_ms, sizeof(in->date_ms));
		snprintf(boundary, sizeof(boundary), "=_rouse_%016llx",
			 (unsigned long long)h);
		email_buf_puts(&b, "Content-Type: multipart/alternative; boundary=\"");
		email_buf_puts(&b, boundary);
		email_buf_puts(&b, "\"\r\n\r\n--");
		email_buf_puts(&b, boundary);
		email_buf_puts(&b, "\r\n");
		if (email_add_part(&b, &scratch, "plain", "text", in->text, err,
				   errlen) < 0)
			goto out;
		email_buf_puts(&b, "\r\n--");
		email_buf_puts(&b, boundary);
		email_buf_puts(&b, "\r\n");
		if (email_add_part(&b, &scratch, "html", "html", in->html, err,
				   errlen) < 0)
			goto out;
		email_buf_puts(&b, "\r\n--");
		email_buf_puts(&b, boundary);
		email_buf_puts(&b, "--\r\n");
	} else if (email_add_part(&b, &scratch, in->text != NULL ? "plain" : "html",
				  in->text != NULL ? "text" : "html",
				  in->text != NULL ? in->text : in->html,
				  err, errlen) < 0) {
		goto out;
	}
	if (b.failed != NULL)
		goto nomem;
	if (email_check_output((const unsigned char *)b.data, b.len, err,
			       errlen) < 0)
		goto out;
	b.data[b.len] = '\0';
	*out = b.data;
	*outlen = b.len;
	b.data = NULL;
	rc = 0;
	goto out;
nomem:
	if (b.failed != NULL && strcmp(b.failed, "too large") == 0)
		email_set_err(err, errlen, "message: too large (limit %u bytes)",
			      EMAIL_MSG_MAX);
	else
		email_set_err(err, errlen, "message: out of memory");
out:
	free(b.data);
	free(scratch.data);
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
	g_mime_init();
	atomic_store(&email_ready, true);
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
