/* email_draft.c: an email's inputs copied for building on a transport
 * thread (see email.h), so the loop never spends its time in GMime. */
#include <stdlib.h>
#include <string.h>

#include "email.h"

struct email_draft {
	struct email_input in;  /* every string below is owned */
	struct email_header *extra;
};

static int copy(const char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

struct email_draft *email_draft_new(const struct email_input *in)
{
	struct email_draft *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->in.date_ms = in->date_ms;
	d->in.n_extra = in->n_extra;
	int rc = copy(&d->in.from, in->from) | copy(&d->in.to_addr, in->to_addr) |
		 copy(&d->in.to_name, in->to_name) |
		 copy(&d->in.subject, in->subject) | copy(&d->in.text, in->text) |
		 copy(&d->in.html, in->html) |
		 copy(&d->in.message_id, in->message_id);
	if (in->n_extra) {
		d->extra = calloc(in->n_extra, sizeof *d->extra);
		rc |= d->extra ? 0 : -1;
		for (size_t i = 0; d->extra && i < in->n_extra; i++)
			rc |= copy(&d->extra[i].name, in->extra[i].name) |
			      copy(&d->extra[i].value, in->extra[i].value);
		d->in.extra = d->extra;
	}
	if (rc != 0) {
		email_draft_free(d);
		return NULL;
	}
	return d;
}

int email_draft_build(const struct email_draft *d, char **out, size_t *outlen,
		      char *err, size_t errlen)
{
	return email_build(&d->in, out, outlen, err, errlen);
}

void email_draft_free(struct email_draft *d)
{
	if (!d)
		return;
	free((char *)d->in.from);
	free((char *)d->in.to_addr);
	free((char *)d->in.to_name);
	free((char *)d->in.subject);
	free((char *)d->in.text);
	free((char *)d->in.html);
	free((char *)d->in.message_id);
	for (size_t i = 0; d->extra && i < d->in.n_extra; i++) {
		free((char *)d->extra[i].name);
		free((char *)d->extra[i].value);
	}
	free(d->extra);
	free(d);
}
