/* templates.c: loads and renders the templates directory (see
 * templates.h). Partials are looked up by name in _partials; the Mustache
 * engine asks for them through a callback during rendering. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "channel.h"
#include "mustache.h"
#include "templates.h"

#define TEMPLATE_FILE_MAX (1u << 20)

struct template_part {
	char *part;    /* "subject", ... */
	char *locale;  /* NULL: unlocalised */
	char *path;
	struct mustache_tmpl *tmpl;
};

struct template_set {
	char *name;
	bool transactional;
	struct template_part *parts;
	size_t n_parts;
};

struct partial {
	char *name;
	struct mustache_tmpl *tmpl;
};

struct templates {
	struct template_set *sets;
	size_t n_sets;
	struct partial *partials;
	size_t n_partials;
};

static const char *const known_parts[] = {
	"subject", "text", "html", "sms", "push_title", "push_body",
};

static int read_file(const char *path, char **out, size_t *len, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		char e[128];
		strerror_r(errno, e, sizeof e);
		snprintf(err, errlen, "%s: %s", path, e);
		return -1;
	}
	char *buf = malloc(TEMPLATE_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, TEMPLATE_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!buf || n > TEMPLATE_FILE_MAX) {
		free(buf);
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int parse_file(const char *path, struct mustache_tmpl **out, char *err,
		      size_t errlen)
{
	char *src = NULL;
	size_t len = 0;
	if (read_file(path, &src, &len, err, errlen) != 0)
		return -1;
	struct mustache_error merr = { 0 };
	int rc = mustache_parse(src, len, out, &merr);
	free(src);
	if (rc != 0)
		snprintf(err, errlen, "%s:%d: %s", path, merr.line,
			 merr.message);
	return rc;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of a directory (deterministic load order). */
static int list_dir(const char *path, char ***names, size_t *n, char *err,
		    size_t errlen)
{
	DIR *d = opendir(path);
	if (!d) {
		char e[128];
		strerror_r(errno, e, sizeof e);
		snprintf(err, errlen, "templates: %s: %s", path, e);
		return -1;
	}
	size_t cap = 0;
	*names = NULL;
	*n = 0;
	struct dirent *ent;
	while ((ent = readdir(d)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			char **grown = realloc(*names, cap * sizeof *grown);
			if (!grown)
				break;
			*names = grown;
		}
		(*names)[(*n)++] = strdup(ent->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof **names, cmp_names);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static bool is_known_part(const char *part)
{
	for (size_t i = 0; i < sizeof known_parts / sizeof *known_parts; i++)
		if (strcmp(part, known_parts[i]) == 0)
			return true;
	return false;
}

static int load_set(const char *dir, const char *name,
		    struct template_set *set, char *err, size_t errlen)
{
	char path[4096];
	char **names = NULL;
	size_t n = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	set->name = strdup(name);
	if (list_dir(path, &names, &n, err, errlen) != 0)
		return -1;
	int rc = 0;
	set->parts = calloc(n ? n : 1, sizeof *set->parts);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (strcmp(names[i], "transactional") == 0) {
			set->transactional = true;
			continue;
		}
		if (!has_suffix(names[i], ".mustache"))
			continue;
		char base[256];
		snprintf(base, sizeof base, "%.*s",
			 (int)(strlen(names[i]) - strlen(".mustache")),
			 names[i]);
		char *dot = strchr(base, '.');
		if (dot)
			*dot = '\0';
		if (!is_known_part(base)) {
			snprintf(err, errlen, "%s/%s: unknown part \"%s\" "
				 "(expected subject, text, html, sms, "
				 "push_title or push_body)", path, names[i],
				 base);
			rc = -1;
			break;
		}
		struct template_part *p = &set->parts[set->n_parts];
		p->part = strdup(base);
		p->locale = dot ? strdup(dot + 1) : NULL;
		snprintf(path, sizeof path, "%s/%s/%s", dir, name, names[i]);
		p->path = strdup(path);
		set->n_parts++;
		rc = parse_file(path, &p->tmpl, err, errlen);
	}
	free_names(names, n);
	return rc;
}

static int load_partials(struct templates *t, const char *dir, char *err,
			 size_t errlen)
{
	char path[4096];
	char **names = NULL;
	size_t n = 0;
	struct stat st;
	snprintf(path, sizeof path, "%s/_partials", dir);
	if (stat(path, &st) != 0)
		return 0;
	if (list_dir(path, &names, &n, err, errlen) != 0)
		return -1;
	t->partials = calloc(n ? n : 1, sizeof *t->partials);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!has_suffix(names[i], ".mustache"))
			continue;
		struct partial *p = &t->partials[t->n_partials++];
		p->name = strndup(names[i],
				  strlen(names[i]) - strlen(".mustache"));
		snprintf(path, sizeof path, "%s/_partials/%s", dir, names[i]);
		rc = parse_file(path, &p->tmpl, err, errlen);
	}
	free_names(names, n);
	return rc;
}

int templates_load(const char *dir, struct templates **out, char *err,
		   size_t errlen)
{
	struct templates *t = calloc(1, sizeof *t);
	char **names = NULL;
	size_t n = 0;
	if (!t || list_dir(dir, &names, &n, err, errlen) != 0) {
		free(t);
		return -1;
	}
	int rc = load_partials(t, dir, err, errlen);
	t->sets = calloc(n ? n : 1, sizeof *t->sets);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		if (names[i][0] == '_' || stat(path, &st) != 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		rc = load_set(dir, names[i], &t->sets[t->n_sets++], err,
			      errlen);
	}
	free_names(names, n);
	if (rc != 0) {
		templates_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void templates_free(struct templates *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_sets; i++) {
		struct template_set *set = &t->sets[i];
		for (size_t j = 0; j < set->n_parts; j++) {
			free(set->parts[j].part);
			free(set->parts[j].locale);
			free(set->parts[j].path);
			mustache_free(set->parts[j].tmpl);
		}
		free(set->parts);
		free(set->name);
	}
	free(t->sets);
	for (size_t i = 0; i < t->n_partials; i++) {
		free(t->partials[i].name);
		mustache_free(t->partials[i].tmpl);
	}
	free(t->partials);
	free(t);
}

const struct template_set *templates_find(const struct templates *t,
					  const char *name)
{
	for (size_t i = 0; i < t->n_sets; i++)
		if (strcmp(t->sets[i].name, name) == 0)
			return &t->sets[i];
	return NULL;
}

static const struct template_part *find_part(const struct template_set *set,
					     const char *part,
					     const char *locale)
{
	for (size_t i = 0; i < set->n_parts; i++) {
		const struct template_part *p = &set->parts[i];
		if (strcmp(p->part, part) != 0)
			continue;
		if (!locale ? !p->locale
			    : p->locale && strcasecmp(p->locale, locale) == 0)
			return p;
	}
	return NULL;
}

bool template_has_channel(const struct template_set *set, int channel)
{
	switch (channel) {
	case CH_EMAIL:
		return find_part(set, "subject", NULL) &&
		       (find_part(set, "text", NULL) ||
			find_part(set, "html", NULL));
	case CH_SMS:
		return find_part(set, "sms", NULL) != NULL;
	case CH_PUSH:
		return find_part(set, "push_title", NULL) ||
		       find_part(set, "push_body", NULL);
	default:
		return false;
	}
}

bool template_is_transactional(const struct template_set *set)
{
	return set->transactional;
}

const char *template_name(const struct template_set *set)
{
	return set->name;
}

int templates_locale_chain(const char *locale, char chain[][40], int max)
{
	int n = 0;
	if (locale && *locale && n < max) {
		snprintf(chain[n++], 40, "%s", locale);
		const char *dash = strchr(locale, '-');
		if (!dash)
			dash = strchr(locale, '_');
		if (dash && n < max)
			snprintf(chain[n++], 40, "%.*s", (int)(dash - locale),
				 locale);
	}
	return n;
}

static const struct mustache_tmpl *partial_lookup(void *ud, const char *name)
{
	const struct templates *t = ud;
	for (size_t i = 0; i < t->n_partials; i++)
		if (strcmp(t->partials[i].name, name) == 0)
			return t->partials[i].tmpl;
	return NULL;
}

int template_render(const struct templates *t, const struct template_set *set,
		    const char *part, const char *locale, json_t *data,
		    bool html, char **out, char *err, size_t errlen)
{
	char chain[2][40];
	int n = templates_locale_chain(locale, chain, 2);
	const struct template_part *p = NULL;
	for (int i = 0; i < n && !p; i++)
		p = find_part(set, part, chain[i]);
	if (!p)
		p = find_part(set, part, NULL);
	*out = NULL;
	if (!p)
		return 1;
	struct mustache_error merr = { 0 };
	size_t len = 0;
	if (mustache_render(p->tmpl, data, partial_lookup, (void *)t, html, out,
			    &len, &merr) != 0) {
		snprintf(err, errlen, "%s:%d: %s", p->path, merr.line,
			 merr.message);
		return -1;
	}
	return 0;
}
