/* email.h: builds the bytes of one email message (pure; GMime's transfer
 * encoders).
 *
 * The one message builder: the maildir outbox and the SMTP transport send
 * exactly these bytes. Output follows delivery-rules §2: exactly one each
 * of From, To, Date, Message-ID, Subject, MIME-Version; text/plain (and
 * text/html as multipart/alternative, plain first) in charset=utf-8 with a
 * 7-bit transfer encoding (quoted-printable or base64); RFC 2047 encoded
 * words for non-ASCII Subject and display names; headers folded at 78;
 * CR, LF and NUL stripped from every header value. Lines end in CRLF.
 */
#ifndef ROUSE_EMAIL_H
#define ROUSE_EMAIL_H

#include <stddef.h>
#include <stdint.h>

struct email_header {
	const char *name;
	const char *value;
};

struct email_input {
	const char *from;        /* "Name <addr>" or "addr" (config email.from) */
	const char *to_addr;     /* recipient address */
	const char *to_name;     /* display name, may be NULL */
	const char *subject;     /* rendered subject (UTF-8) */
	const char *text;        /* rendered text part, may be NULL */
	const char *html;        /* rendered html part, may be NULL */
	const char *message_id;  /* without <>, e.g. "<job-uuid>@shop.example" */
	int64_t date_ms;         /* Date header, Unix ms */
	const struct email_header *extra; /* extra headers (List-Unsubscribe) */
	size_t n_extra;
};

/* Initialises GMime once per process (call from main before threads);
 * email_build refuses to run before it. email_build shares no state
 * between calls, so it may then run on any thread concurrently.
 * email_global_shutdown calls g_mime_shutdown (after all builds have
 * finished); GMime cannot be initialised again after it. */
void email_global_init(void);
void email_global_shutdown(void);

/* Returns the domain part of the address in a From value ("shop.example"
 * for "Shop <noreply@shop.example>"), copied into buf; "localhost" when
 * none. */
void email_from_domain(const char *from, char *buf, size_t buflen);

/* Builds the message. On success returns 0 and *out is a malloc'd buffer
 * of *outlen bytes (CRLF line ends, NUL-terminated for convenience;
 * caller frees). On failure returns -1 and writes a reason into err.
 * At least one of text/html must be non-NULL. Thread-safe after
 * email_global_init. */
int email_build(const struct email_input *in, char **out, size_t *outlen,
		char *err, size_t errlen);

/* An email to build later on another thread (a transport's): the inputs,
 * copied. email_draft_new returns NULL when out of memory. */
struct email_draft;
struct email_draft *email_draft_new(const struct email_input *in);
/* As email_build, from the draft; any thread. */
int email_draft_build(const struct email_draft *d, char **out, size_t *outlen,
		      char *err, size_t errlen);
void email_draft_free(struct email_draft *d);

#endif
