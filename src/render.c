/* render.c: channel-level rendering (see render.h). */
#define _GNU_SOURCE /* strcasestr */
#include <stdbool.h>
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

/* The text of list for locale: its fallback chain, else "en", else the
 * first. */
static const char *locale_text_for(const struct locale_text *list, size_t n,
				   const char *locale)
{
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

static const char *footer_for(const struct config *cfg, const char *locale)
{
	if (cfg->n_sms_footer)
		return locale_text_for(cfg->sms_footer, cfg->n_sms_footer,
				       locale);
	return locale_text_for(builtin_sms_footer,
			       sizeof builtin_sms_footer /
				       sizeof *builtin_sms_footer, locale);
}

/* ---- the email's unsubscribe footer ---- */

struct strbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);
		if (!grown) {
			b->failed = true;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add_html(struct strbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *e = s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;"
				: s[i] == '>' ? "&gt;" : s[i] == '"' ? "&quot;"
				: NULL;
		if (e)
			sb_add(b, e, strlen(e));
		else
			sb_add(b, s + i, 1);
	}
}

#define UNSUB_VAR "{{unsubscribe_url}}"

/* The footer line with {{unsubscribe_url}} replaced by url (the footer is
 * config text, checked at load to hold the variable; a plain replacement
 * keeps it free of template syntax surprises): as text, or as HTML with
 * the URL a link. */
static void footer_line(struct strbuf *b, const char *footer, const char *url,
			bool html)
{
	const char *p = footer;
	for (;;) {
		const char *v = strstr(p, UNSUB_VAR);
		size_t n = v ? (size_t)(v - p) : strlen(p);
		if (html)
			sb_add_html(b, p, n);
		else
			sb_add(b, p, n);
		if (!v)
			break;
		if (html) {
			sb_add(b, "<a href=\"", 9);
			sb_add_html(b, url, strlen(url));
			sb_add(b, "\">", 2);
			sb_add_html(b, url, strlen(url));
			sb_add(b, "</a>", 4);
		} else {
			sb_add(b, url, strlen(url));
		}
		p = v + strlen(UNSUB_VAR);
	}
}

/* Appends the footer to a part that does not show the link yet (html:
 * before </body> when there is one). */
static int add_unsub_footer(char **part, const char *footer, const char *url,
			    bool html)
{
	if (!*part || strstr(*part, url))
		return 0;
	struct strbuf b = { 0 };
	size_t keep = strlen(*part);
	const char *body_end = NULL;
	if (html) {
		for (const char *q = *part; (q = strcasestr(q, "</body>")); q++)
			body_end = q;
		if (body_end)
			keep = (size_t)(body_end - *part);
	}
	sb_add(&b, *part, keep);
	if (html) {
		sb_add(&b, "<p>", 3);
		footer_line(&b, footer, url, true);
		sb_add(&b, "</p>\n", 5);
		if (body_end)
			sb_add(&b, body_end, strlen(body_end));
	} else {
		while (b.len > 0 && b.s[b.len - 1] == '\n')
			b.s[--b.len] = '\0';
		sb_add(&b, "\n\n", 2);
		footer_line(&b, footer, url, false);
		sb_add(&b, "\n", 1);
	}
	if (b.failed) {
		free(b.s);
		return -1;
	}
	free(*part);
	*part = b.s;
	return 0;
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

/* A marketing email shows its unsubscribe link (vars.unsubscribe_url, set
 * by the caller) in both parts: the localized footer goes where the
 * template left it out. */
static int unsub_footers(const struct config *cfg,
			 const struct template_set *set, const char *locale,
			 json_t *vars, struct rendered *out)
{
	const char *url = json_string_value(json_object_get(vars,
							    "unsubscribe_url"));
	if (!cfg->unsub.set || template_is_transactional(set) || !url ||
	    !*url)
		return 0;
	const char *footer = locale_text_for(cfg->unsub.footer,
					     cfg->unsub.n_footer, locale);
	if (!footer)
		return 0;
	if (add_unsub_footer(&out->text, footer, url, false) != 0 ||
	    add_unsub_footer(&out->html, footer, url, true) != 0)
		return -1;
	return 0;
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
		if (unsub_footers(cfg, set, locale, vars, out) != 0) {
			snprintf(err, errlen, "out of memory");
			break;
		}
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
