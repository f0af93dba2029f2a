/* templates.h: the templates directory, parsed once at start-up.
 *
 * Layout: <dir>/<template>/<part>[.<locale>].mustache with parts subject,
 * text, html (email), sms, push_title, push_body (push); shared partials
 * in <dir>/_partials/<name>.mustache; an empty file
 * <dir>/<template>/transactional marks a template as transactional (no
 * opt-out footer). Every file is parsed at load: a parse error refuses
 * start-up naming file:line. Immutable after loading, so any thread may
 * render.
 */
#ifndef ROUSE_TEMPLATES_H
#define ROUSE_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct templates;
struct template_set;

/* Returns 0, or -1 with err naming the file (and line). */
int templates_load(const char *dir, struct templates **out, char *err,
		   size_t errlen);
void templates_free(struct templates *t);

/* NULL when there is no template of that name. */
const struct template_set *templates_find(const struct templates *t,
					  const char *name);

/* Whether the template has the parts the channel needs (email: subject
 * and text or html; sms: sms; push: push_title or push_body). */
bool template_has_channel(const struct template_set *set, int channel);
bool template_is_transactional(const struct template_set *set);
const char *template_name(const struct template_set *set);

/* Renders one part for locale (fallback "zh-CN" -> "zh" -> unlocalised;
 * locale may be NULL). Returns 0 with *out malloc'd, 1 when the template
 * has no such part (*out NULL), -1 on a render error (err names the file).
 * html selects HTML escaping. */
int template_render(const struct templates *t, const struct template_set *set,
		    const char *part, const char *locale, json_t *data,
		    bool html, char **out, char *err, size_t errlen);

/* The locale chain used for lookups: fills up to 3 entries ("zh-CN",
 * "zh", NULL) and returns their count. Exposed for footers. */
int templates_locale_chain(const char *locale, char chain[][40], int max);

#endif
