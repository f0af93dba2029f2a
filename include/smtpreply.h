/* smtpreply.h: parsing one SMTP server reply (RFC 5321 §4.2), with its
 * RFC 3463 enhanced status code and, for EHLO, the extensions it lists.
 * Pure functions on a byte buffer; see smtpreply.c. */
#ifndef ROUSE_SMTPREPLY_H
#define ROUSE_SMTPREPLY_H

#include <stdbool.h>
#include <stddef.h>

/* One server reply. code 0: none arrived (the connection failed first). */
struct smtp_reply {
	int code;
	int enh[3];          /* RFC 3463 enhanced code, {0,0,0} when absent */
	char text[256];      /* the text after the codes, lines joined by ' ' */
};

/* EHLO keywords the client acts on. */
enum {
	SMTP_EXT_PIPELINING = 1u << 0,
	SMTP_EXT_STARTTLS = 1u << 1,
	SMTP_EXT_AUTH_PLAIN = 1u << 2,
	SMTP_EXT_AUTH_LOGIN = 1u << 3,
};

/* Parses the reply at the start of buf[0, len): every line must end in
 * LF (CRLF or bare LF) and share the first line's code. Returns the bytes
 * the whole reply takes (> 0), 0 when more bytes are needed, -1 when the
 * bytes are not an SMTP reply. With ext non-NULL the lines after the
 * first are read as EHLO keywords (bits ORed into *ext) and only the
 * first line's text is kept. */
long smtp_reply_parse(const char *buf, size_t len, struct smtp_reply *r,
		      unsigned *ext);

/* "phase: code d.d.d text" into out (the enhanced code only when the
 * reply had one), the text made printable ASCII (other bytes '?', line
 * ends spaces) without trailing spaces: for job events and logs. */
void smtp_reply_describe(const struct smtp_reply *r, const char *phase,
			 char *out, size_t len);

/* Does the reply ask the client to back off: 421, or any 4.7.x? */
bool smtp_reply_backs_off(const struct smtp_reply *r);

#endif
