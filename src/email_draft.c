/* email_draft.c: an email's inputs copied for building on a transport
 * thread (see email.h), so the loop never spends its time building.
 *
 * A draft is one allocation: the struct, then the extra headers' array,
 * then every string it points to, NUL-terminated, back to back. The loop
 * thread makes one allocation per email and the transport thread frees
 * one, instead of one per string.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"

struct email_draft {
	struct email_input in;          /* every pointer points into this block */
	struct email_header extra[];    /* in.n_extra entries, or none when
					 * in.extra is NULL */
};

/* Adds the size of s (with its NUL) to *total; false on overflow. */
static bool
email_draft_size(size_t *total, const char *s)
{
	size_t n = s != NULL ? strlen(s) + 1 : 0;

	if (n > SIZE_MAX - *total)
		return false;
	*total += n;
	return true;
}

/* Copies s to *next and returns the copy (NULL for NULL). */
static const char *
email_draft_copy(char **next, const char *s)
{
	char *d = *next;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*next = d + n;
	return d;
}

struct email_draft *
email_draft_new(const struct email_input *in)
{
	/* extra NULL with n_extra > 0 is kept as is: email_build refuses it */
	size_t n_extra = in->extra != NULL ? in->n_extra : 0, total, i;
	struct email_draft *d;
	char *next;

	if (n_extra > (SIZE_MAX - sizeof *d) / sizeof d->extra[0])
		return NULL;
	total = sizeof *d + n_extra * sizeof d->extra[0];
	if (!email_draft_size(&total, in->from) ||
	    !email_draft_size(&total, in->to_addr) ||
	    !email_draft_size(&total, in->to_name) ||
	    !email_draft_size(&total, in->subject) ||
	    !email_draft_size(&total, in->text) ||
	    !email_draft_size(&total, in->html) ||
	    !email_draft_size(&total, in->message_id))
		return NULL;
	for (i = 0; i < n_extra; i++)
		if (!email_draft_size(&total, in->extra[i].name) ||
		    !email_draft_size(&total, in->extra[i].value))
			return NULL;
	d = malloc(total);
	if (d == NULL)
		return NULL;
	next = (char *)(d->extra + n_extra);
	d->in.from = email_draft_copy(&next, in->from);
	d->in.to_addr = email_draft_copy(&next, in->to_addr);
	d->in.to_name = email_draft_copy(&next, in->to_name);
	d->in.subject = email_draft_copy(&next, in->subject);
	d->in.text = email_draft_copy(&next, in->text);
	d->in.html = email_draft_copy(&next, in->html);
	d->in.message_id = email_draft_copy(&next, in->message_id);
	d->in.date_ms = in->date_ms;
	for (i = 0; i < n_extra; i++) {
		d->extra[i].name = email_draft_copy(&next, in->extra[i].name);
		d->extra[i].value = email_draft_copy(&next, in->extra[i].value);
	}
	d->in.extra = n_extra > 0 ? d->extra : NULL;
	d->in.n_extra = in->n_extra;
	return d;
}

int
email_draft_build(const struct email_draft *d, char **out, size_t *outlen,
		  char *err, size_t errlen)
{
	return email_build(&d->in, out, outlen, err, errlen);
}

void
email_draft_free(struct email_draft *d)
{
	free(d);
}
