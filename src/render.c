/* render.c: channel-level rendering (see render.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "channel.h"
#include "render.h"

static const struct locale_text builtin_sms_footer[] = {
	{ "en", "Reply STOP to opt out" },
	{ "zh", "回复TD退订" },
};

/* Header-bound text: CR, LF and TAB become spaces, other control bytes
 * and NUL go, so no value can start a new header line. */
static void make_single_line(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		unsigned char ch = (unsigned char)*r;
		if (ch == '\r' || ch == '\n' || ch == '\t')
			*w++ = ' ';
		else if (ch >= 0x20 && ch != 0x7f)
			*w++ = (char)ch;
	}
	*w = '\0';
}

static const char *footer_for(const struct config *cfg, const char *locale)
{
	const struct locale_text *list = cfg->n_sms_footer ? cfg->sms_footer
							   : builtin_sms_footer;
	size_t n = cfg->n_sms_footer ? cfg->n_sms_footer
				     : sizeof builtin_sms_footer /
					       sizeof *builtin_sms_footer;
	char chain[2][40];
	int k = templates_locale_chain(locale, chain, 2);
	for (int i = 0; i < k; i++)
		for (size_t j = 0; j < n; j++)
			if (strcasecmp(list[j].locale, chain[i]) == 0)
				return list[j].text;
	for (size_t j = 0; j < n; j++)
		if (strcasecmp(list[j].locale, "en") == 0)
			return list[j].text;
	return n ? list[0].text : NULL;
}

static int add_sms_footer(char **text, const char *footer)
{
	if (!footer || strstr(*text, footer))
		return 0;
	size_t a = strlen(*text), b = strlen(footer);
	while (a > 0 && ((*text)[a - 1] == '\n' || (*text)[a - 1] == ' '))
		a--;
	char *joined = malloc(a + 1 + b + 1);
	if (!joined)
		return -1;
	memcpy(joined, *text, a);
	joined[a] = '\n';
	memcpy(joined + a + 1, footer, b + 1);
	free(*text);
	*text = joined;
	return 0;
}

static int part(const struct templates *t, const struct template_set *set,
		const char *name, const char *locale, json_t *vars, bool html,
		char **out, char *err, size_t errlen)
{
	int rc = template_render(t, set, name, locale, vars, html, out, err,
				 errlen);
	return rc < 0 ? -1 : 0;
}

int render_message(const struct config *cfg, const struct templates *t,
		   const struct template_set *set, int channel,
		   const char *locale, json_t *vars, struct rendered *out,
		   char *err, size_t errlen)
{
	json_t *empty = NULL;
	if (!vars)
		vars = empty = json_object();
	if (!locale)
		locale = cfg->default_locale;
	int rc = -1;
	switch (channel) {
	case CH_EMAIL:
		if (part(t, set, "subject", locale, vars, false, &out->subject,
			 err, errlen) ||
		    part(t, set, "text", locale, vars, false, &out->text, err,
			 errlen) ||
		    part(t, set, "html", locale, vars, true, &out->html, err,
			 errlen))
			break;
		if (!out->subject || (!out->text && !out->html)) {
			snprintf(err, errlen, "template %s has no email parts",
				 template_name(set));
			break;
		}
		make_single_line(out->subject);
		rc = 0;
		break;
	case CH_SMS:
		if (part(t, set, "sms", locale, vars, false, &out->sms, err,
			 errlen))
			break;
		if (!out->sms) {
			snprintf(err, errlen, "template %s has no sms part",
				 template_name(set));
			break;
		}
		if (!template_is_transactional(set) &&
		    add_sms_footer(&out->sms, footer_for(cfg, locale)) != 0)
			break;
		if (sms_measure(out->sms, strlen(out->sms),
				&out->sms_measure) != 0) {
			snprintf(err, errlen, "template %s: sms text is not "
				 "valid UTF-8", template_name(set));
			break;
		}
		rc = 0;
		break;
	case CH_PUSH:
		if (part(t, set, "push_title", locale, vars, false,
			 &out->push_title, err, errlen) ||
		    part(t, set, "push_body", locale, vars, false,
			 &out->push_body, err, errlen))
			break;
		if (!out->push_title && !out->push_body) {
			snprintf(err, errlen, "template %s has no push parts",
				 template_name(set));
			break;
		}
		if (out->push_title)
			make_single_line(out->push_title);
		rc = 0;
		break;
	default:
		snprintf(err, errlen, "unknown channel");
	}
	json_decref(empty);
	return rc;
}

void rendered_release(struct rendered *r)
{
	free(r->subject);
	free(r->text);
	free(r->html);
	free(r->sms);
	free(r->push_title);
	free(r->push_body);
	memset(r, 0, sizeof *r);
}

static void set_str(json_t *obj, const char *key, const char *value)
{
	if (value) {
		json_t *s = json_string(value);
		json_object_set_new(obj, key, s ? s : json_string(""));
	}
}

json_t *rendered_parts_json(const struct rendered *r, int channel)
{
	json_t *parts = json_object();
	if (channel == CH_EMAIL) {
		set_str(parts, "subject", r->subject);
		set_str(parts, "text", r->text);
		set_str(parts, "html", r->html);
	} else if (channel == CH_SMS) {
		set_str(parts, "sms", r->sms);
	} else {
		set_str(parts, "push_title", r->push_title);
		set_str(parts, "push_body", r->push_body);
	}
	return parts;
}
