/* render.h: renders a job's template into the parts its channel sends
 * (pure apart from the templates it borrows). Email: subject (CR/LF/NUL
 * never kept: it becomes a header), text, html (HTML-escaped values).
 * SMS: text plus the per-locale opt-out footer when a marketing text lacks
 * it, with encoding and segment count. Push: title and body. Preview and
 * delivery both use this, so a preview is exactly what is sent. */
#ifndef ROUSE_RENDER_H
#define ROUSE_RENDER_H

#include <jansson.h>

#include "config.h"
#include "smstext.h"
#include "templates.h"

struct rendered {
	char *subject, *text, *html;      /* email */
	char *sms;                        /* sms */
	struct sms_measure sms_measure;
	char *push_title, *push_body;     /* push */
};

/* locale NULL means cfg->default_locale. Returns 0, or -1 with err (the
 * template file and line where it failed). out must be zeroed first and
 * is released with rendered_release in both cases. */
int render_message(const struct config *cfg, const struct templates *t,
		   const struct template_set *set, int channel,
		   const char *locale, json_t *vars, struct rendered *out,
		   char *err, size_t errlen);

void rendered_release(struct rendered *r);

/* The parts as a JSON object ({"subject":…} etc.; sms adds nothing here:
 * the caller adds encoding/segments). */
json_t *rendered_parts_json(const struct rendered *r, int channel);

#endif
