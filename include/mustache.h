/* mustache.h: a Mustache template engine (pure: no I/O, no loop).
 *
 * Implements the official Mustache spec (interpolation, sections, inverted
 * sections, comments, partials, set delimiters) plus the optional
 * inheritance (parents/blocks) and dynamic-names modules. Lambdas are not
 * supported. Data is a jansson value tree; it is only borrowed.
 */
#ifndef ROUSE_MUSTACHE_H
#define ROUSE_MUSTACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct mustache_tmpl;

/* Limits. Hitting one is an error (-1 and a message), never a crash. */
#define MUSTACHE_MAX_SOURCE (64u << 20)   /* bytes of one template source */
#define MUSTACHE_MAX_NESTING 100          /* open sections/blocks/parents in one template */
#define MUSTACHE_MAX_DELIM 32             /* bytes of a {{=a b=}} delimiter */
#define MUSTACHE_MAX_PARTIAL_DEPTH 64     /* partials/parents rendered inside each other */
#define MUSTACHE_MAX_RENDER_DEPTH 512     /* all nested sections, blocks, partials of a render */
#define MUSTACHE_MAX_OUTPUT (16u << 20)   /* bytes of one rendered result */
#define MUSTACHE_MAX_STEPS (1ul << 23)    /* nodes visited by one render (bounds hostile loops) */

struct mustache_error {
	int line;          /* 1-based line of the offending tag, 0 if none */
	char message[256]; /* what is wrong, e.g. "unclosed section \"items\"" */
};

/* Looks up a partial (or parent) by name. Returns a parsed template that
 * the caller (the loader) owns and keeps alive for the whole render, or
 * NULL when there is no such partial (renders as empty, per the spec). */
typedef const struct mustache_tmpl *(*mustache_partial_fn)(void *ud,
							     const char *name);

/* Parses src[0..len). On success returns 0 and *out owns a new template
 * (free with mustache_free). On failure returns -1, fills err (line and
 * message) and leaves *out NULL. */
int mustache_parse(const char *src, size_t len, struct mustache_tmpl **out,
		   struct mustache_error *err);

/* Renders t with data (borrowed). html_escape selects HTML escaping of
 * {{x}} (& < > " ' as &amp; &lt; &gt; &quot; &#39;); {{{x}}} and {{&x}}
 * never escape. Partials come from partials(ud, name); partials may be
 * NULL when the template uses none. On success returns 0 and *out is a
 * NUL-terminated malloc'd string of *outlen bytes (caller frees). On
 * failure (e.g. recursion deeper than 64 partials) returns -1 and fills
 * err. Numbers render as the spec says (integers without a point,
 * decimals as the shortest of %.15g..%.17g that reads back to the same
 * double, e.g. 1.21); null and false render as empty, true as "true",
 * objects and arrays as empty. A value is falsy for a section when it is
 * missing, null, false, an empty array or an empty string. t is only read:
 * one template may be rendered from several threads at once. */
int mustache_render(const struct mustache_tmpl *t, json_t *data,
		    mustache_partial_fn partials, void *ud, bool html_escape,
		    char **out, size_t *outlen, struct mustache_error *err);

void mustache_free(struct mustache_tmpl *t);

#endif
