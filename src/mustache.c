/* mustache.c: rouse's Mustache template engine.
 *
 * Debian packages no C Mustache library, so this is rouse's own
 * implementation of the official spec: interpolation, sections, inverted
 * sections, comments, partials, set delimiters, and the optional
 * inheritance (parents and blocks) and dynamic-names modules. Lambdas are
 * not supported.
 *
 * DESIGN
 *
 * A template is parsed once into a node tree and rendered many times. All
 * of a template lives in three allocations: the struct, one buffer holding
 * a copy of the source followed by an arena of NUL-terminated names, and a
 * flat array of nodes linked by index (child, next). Text nodes point into
 * the source copy; dotted names are stored with their dots replaced by NULs
 * so each part is a ready-made jansson key. After mustache_parse returns
 * nothing in the template is ever written again, so one template may be
 * rendered by several threads at once; a render keeps all its state (the
 * context stack, the parent-argument chain, the indentation chain) on its
 * own C stack and writes into one growable output buffer.
 *
 * Standalone lines are resolved at parse time: a standalone tag's line
 * (leading blanks, the tag, trailing blanks and the newline) leaves no
 * text node behind. The whitespace before a standalone partial, parent or
 * block is kept on the node as its indentation. Each node that begins a
 * source line carries MUSTACHE_F_LINE_START; a text node may hold several
 * lines. Indentation is applied at render time as a transform: at every
 * line start of the template being rendered, strip a prefix (a block
 * argument's own indentation) and emit a chain of indentation strings (the
 * indentation of every standalone partial, parent and block site the
 * render went through). Text that comes from the data is never indented.
 * Blocks inside a parent tag and the parent tag itself only need their
 * inner side to be blank to count as standalone, since the text inside a
 * parent tag outside its blocks is ignored.
 *
 * Hostile templates and data are bounded: nesting in one template
 * (MUSTACHE_MAX_NESTING), partials inside partials
 * (MUSTACHE_MAX_PARTIAL_DEPTH), total render recursion, output size and
 * render work (MUSTACHE_MAX_STEPS) all have caps that end in an error.
 * Parsing is linear in the source: every byte is scanned a bounded number
 * of times.
 */
#define _GNU_SOURCE /* memmem, memrchr */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mustache.h"

enum mustache_kind {
	MUSTACHE_TEXT,
	MUSTACHE_VAR,
	MUSTACHE_SECTION,
	MUSTACHE_INVERTED,
	MUSTACHE_PARTIAL,
	MUSTACHE_PARENT,
	MUSTACHE_BLOCK,
};

enum mustache_flag {
	MUSTACHE_F_LINE_START = 1 << 0, /* starts a source line: indentation goes first */
	MUSTACHE_F_ESCAPE = 1 << 1,     /* {{x}}: HTML-escaped when the render asks */
	MUSTACHE_F_DYNAMIC = 1 << 2,    /* {{>*x}}, {{<*x}}: the name comes from the data */
	MUSTACHE_F_STANDALONE = 1 << 3, /* partial/parent/block site alone on its line */
};

#define MUSTACHE_NONE UINT32_MAX
#define MUSTACHE_NO_MARK SIZE_MAX

struct mustache_node {
	uint8_t kind;
	uint8_t flags;
	uint32_t line;
	uint32_t next;    /* next sibling, MUSTACHE_NONE at the end */
	uint32_t child;   /* first child of a section, block or parent */
	uint32_t off;     /* text: offset in src; others: offset of the name in names */
	uint32_t len;     /* text: bytes; others: bytes of the stored name */
	uint32_t nseg;    /* parts of a dotted name; 0 for the implicit iterator "." */
	uint32_t ind_off; /* indentation (a range of src) of partial, parent, block */
	uint32_t ind_len;
};

struct mustache_tmpl {
	char *src;   /* source copy, NUL-terminated; the names arena follows it */
	char *names;
	struct mustache_node *nodes;
	uint32_t nnodes;
	uint32_t first; /* first top-level node */
};

/* ---------------------------------------------------------------- parse */

/* A section, inverted section, block or parent whose closing tag is still
 * to come; stack[0] is the template itself. */
struct mustache_open {
	uint32_t node;
	uint32_t last;        /* last child appended */
	uint32_t name_off;    /* trimmed name in src, for the closing tag */
	uint32_t name_len;
	bool dynamic;
	bool standalone;      /* opening tag stood alone (parents: blank before it) */
	bool prefix_blank;    /* only blanks before the opening tag on its line */
	bool in_parent;       /* a block directly inside a parent tag */
	uint32_t prefix_off;  /* those blanks */
	uint32_t prefix_len;
	uint32_t prefix_text; /* parents: the text node ending with them */
};

struct mustache_parser {
	struct mustache_tmpl *t;
	const char *src;
	size_t len;
	size_t pos;
	uint32_t line;   /* line of src[pos] */
	bool line_tag;   /* a tag already sits on the current line */
	bool pending;    /* the next node starts a source line */
	char otag[MUSTACHE_MAX_DELIM];
	char ctag[MUSTACHE_MAX_DELIM];
	char needle[MUSTACHE_MAX_DELIM + 1];
	size_t olen;
	size_t clen;
	uint32_t cap;
	size_t names_len;
	unsigned depth;
	struct mustache_open stack[MUSTACHE_MAX_NESTING + 1];
	struct mustache_error *err;
};

__attribute__((format(printf, 3, 4)))
static int mustache_fail(struct mustache_error *err, uint32_t line,
			 const char *fmt, ...)
{
	va_list ap;

	err->line = (int)line;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return -1;
}

static bool mustache_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool mustache_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static uint32_t mustache_count_nl(const char *s, size_t n)
{
	const char *end = s + n;
	uint32_t c = 0;

	while (s < end && (s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
		c++;
		s++;
	}
	return c;
}

static bool mustache_all_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!mustache_is_blank(s[i]))
			return false;
	return true;
}

static void parser_advance(struct mustache_parser *p, size_t to)
{
	p->line += mustache_count_nl(p->src + p->pos, to - p->pos);
	p->pos = to;
}

static uint32_t parser_node(struct mustache_parser *p, enum mustache_kind kind,
			    uint32_t line, uint8_t flags)
{
	struct mustache_tmpl *t = p->t;

	if (t->nnodes == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 32;
		struct mustache_node *grown;

		if (p->cap >= UINT32_MAX / 4) {
			mustache_fail(p->err, line, "template has too many tags");
			return MUSTACHE_NONE;
		}
		grown = realloc(t->nodes, (size_t)cap * sizeof *grown);
		if (!grown) {
			mustache_fail(p->err, line, "out of memory");
			return MUSTACHE_NONE;
		}
		t->nodes = grown;
		p->cap = cap;
	}
	uint32_t idx = t->nnodes++;
	struct mustache_node *n = &t->nodes[idx];
	memset(n, 0, sizeof *n);
	n->kind = (uint8_t)kind;
	n->flags = flags;
	n->line = line;
	n->next = MUSTACHE_NONE;
	n->child = MUSTACHE_NONE;

	struct mustache_open *top = &p->stack[p->depth];
	if (top->last != MUSTACHE_NONE)
		t->nodes[top->last].next = idx;
	else if (top->node != MUSTACHE_NONE)
		t->nodes[top->node].child = idx;
	else
		t->first = idx;
	top->last = idx;
	return idx;
}

/* Appends src[from..to) as a text node. Returns 0, or -1 when out of
 * memory; *idx (optional) receives the node or MUSTACHE_NONE. */
static int parser_text(struct mustache_parser *p, size_t from, size_t to,
		       uint32_t *idx)
{
	uint32_t n = MUSTACHE_NONE;

	if (to > from) {
		n = parser_node(p, MUSTACHE_TEXT, p->line,
				p->pending ? MUSTACHE_F_LINE_START : 0);
		if (n == MUSTACHE_NONE)
			return -1;
		p->t->nodes[n].off = (uint32_t)from;
		p->t->nodes[n].len = (uint32_t)(to - from);
		p->pending = p->src[to - 1] == '\n';
	}
	if (idx)
		*idx = n;
	return 0;
}

/* Copies a tag name into the names arena; split turns the dots of a
 * dotted name into NULs. */
static void parser_name(struct mustache_parser *p, uint32_t idx, size_t off,
			size_t len, bool split)
{
	struct mustache_node *n = &p->t->nodes[idx];
	char *dst = p->t->names + p->names_len;

	memcpy(dst, p->src + off, len);
	dst[len] = '\0';
	n->off = (uint32_t)p->names_len;
	n->len = (uint32_t)len;
	n->nseg = 1;
	if (split) {
		if (len == 1 && dst[0] == '.') {
			n->nseg = 0;
		} else {
			for (size_t i = 0; i < len; i++)
				if (dst[i] == '.') {
					dst[i] = '\0';
					n->nseg++;
				}
		}
	}
	p->names_len += len + 1;
}

static int parser_check_name(struct mustache_parser *p, uint32_t line,
			     size_t off, size_t len)
{
	if (len == 0)
		return mustache_fail(p->err, line, "empty tag name");
	for (size_t i = 0; i < len; i++) {
		char c = p->src[off + i];
		if (mustache_is_space(c) || c == '\0')
			return mustache_fail(p->err, line,
					     "invalid tag name \"%.*s\": names contain no whitespace",
					     (int)(len > 64 ? 64 : len), p->src + off);
	}
	return 0;
}

/* Splits an optional leading '*' (dynamic name) off [*off, *off+*len). */
static void parser_dynamic(struct mustache_parser *p, size_t *off, size_t *len,
			   bool *dynamic)
{
	*dynamic = false;
	if (*len > 0 && p->src[*off] == '*') {
		*dynamic = true;
		(*off)++;
		(*len)--;
		while (*len > 0 && mustache_is_space(p->src[*off])) {
			(*off)++;
			(*len)--;
		}
	}
}

static const char *mustache_kind_name(uint8_t kind)
{
	switch (kind) {
	case MUSTACHE_SECTION: return "section";
	case MUSTACHE_INVERTED: return "inverted section";
	case MUSTACHE_BLOCK: return "block";
	case MUSTACHE_PARENT: return "parent";
	default: return "tag";
	}
}

static int parser_set_delims(struct mustache_parser *p, uint32_t line,
			     size_t off, size_t len)
{
	const char *s = p->src + off;
	size_t a = 0, b, e;

	while (a < len && !mustache_is_space(s[a]) && s[a] != '=')
		a++;
	b = a;
	while (b < len && mustache_is_space(s[b]))
		b++;
	e = b;
	while (e < len && !mustache_is_space(s[e]) && s[e] != '=')
		e++;
	if (a == 0 || b == a || e == b || e != len ||
	    a > MUSTACHE_MAX_DELIM || e - b > MUSTACHE_MAX_DELIM)
		return mustache_fail(p->err, line,
				     "invalid delimiter change \"%.*s\": expected two "
				     "delimiters of 1 to %d bytes, without whitespace or '='",
				     (int)(len > 64 ? 64 : len), s, MUSTACHE_MAX_DELIM);
	memcpy(p->otag, s, a);
	p->olen = a;
	memcpy(p->ctag, s + b, e - b);
	p->clen = e - b;
	return 0;
}

/* The tag's line holds nothing else but blanks: drop it, keeping the text
 * before it. */
static int parser_cut_standalone(struct mustache_parser *p, size_t line_start,
				 size_t line_end)
{
	if (parser_text(p, p->pos, line_start, NULL) != 0)
		return -1;
	parser_advance(p, line_end);
	p->line_tag = false;
	p->pending = true;
	return 0;
}

static int parser_cut_inline(struct mustache_parser *p, size_t tag_start,
			     size_t tag_end, uint32_t *text)
{
	if (parser_text(p, p->pos, tag_start, text) != 0)
		return -1;
	parser_advance(p, tag_end);
	p->line_tag = true;
	return 0;
}

static uint8_t parser_take_line_start(struct mustache_parser *p)
{
	uint8_t f = p->pending ? MUSTACHE_F_LINE_START : 0;

	p->pending = false;
	return f;
}

/* Leading blanks of a text node (the indentation a block's content gives
 * itself), as a range of src. */
static void parser_text_indent(const struct mustache_tmpl *t, uint32_t idx,
			       uint32_t *off, uint32_t *len)
{
	const struct mustache_node *n = &t->nodes[idx];
	uint32_t k = 0;

	*off = 0;
	*len = 0;
	if (n->kind != MUSTACHE_TEXT || !(n->flags & MUSTACHE_F_LINE_START))
		return;
	while (k < n->len && mustache_is_blank(t->src[n->off + k]))
		k++;
	*off = n->off;
	*len = k;
}

static int parser_open(struct mustache_parser *p, uint32_t line, uint32_t node,
		       size_t name_off, size_t name_len, bool dynamic)
{
	struct mustache_open *o;

	if (p->depth >= MUSTACHE_MAX_NESTING)
		return mustache_fail(p->err, line, "sections nested deeper than %d",
				     MUSTACHE_MAX_NESTING);
	o = &p->stack[++p->depth];
	memset(o, 0, sizeof *o);
	o->node = node;
	o->last = MUSTACHE_NONE;
	o->name_off = (uint32_t)name_off;
	o->name_len = (uint32_t)name_len;
	o->dynamic = dynamic;
	o->prefix_text = MUSTACHE_NONE;
	return 0;
}

static int parser_close(struct mustache_parser *p, uint32_t line,
			size_t ns, size_t nlen, size_t seg_line_start,
			bool prefix_ok, bool suffix_ok, size_t tag_start,
			size_t tag_end, size_t suffix_end)
{
	struct mustache_tmpl *t = p->t;
	bool dynamic;

	parser_dynamic(p, &ns, &nlen, &dynamic);
	if (parser_check_name(p, line, ns, nlen) != 0)
		return -1;
	if (p->depth == 0)
		return mustache_fail(p->err, line,
				     "closing tag \"%.*s\" without an open section",
				     (int)(nlen > 64 ? 64 : nlen), p->src + ns);

	struct mustache_open *o = &p->stack[p->depth];
	struct mustache_node *n = &t->nodes[o->node];
	if (o->dynamic != dynamic || o->name_len != nlen ||
	    memcmp(p->src + o->name_off, p->src + ns, nlen) != 0)
		return mustache_fail(p->err, line,
				     "closing tag \"%s%.*s\" does not match the open %s "
				     "\"%s%.*s\" of line %u",
				     dynamic ? "*" : "", (int)(nlen > 64 ? 64 : nlen),
				     p->src + ns, mustache_kind_name(n->kind),
				     o->dynamic ? "*" : "",
				     (int)(o->name_len > 64 ? 64 : o->name_len),
				     p->src + o->name_off, (unsigned)n->line);

	if (n->kind == MUSTACHE_PARENT) {
		if (parser_text(p, p->pos, tag_start, NULL) != 0)
			return -1;
		n = &t->nodes[o->node];
		if (suffix_ok && o->standalone) {
			if (o->prefix_text != MUSTACHE_NONE) {
				struct mustache_node *pt = &t->nodes[o->prefix_text];
				pt->len -= o->prefix_len;
				if (pt->len == 0)
					pt->flags = 0;
			}
			n->flags = (uint8_t)((n->flags & ~MUSTACHE_F_LINE_START) |
					     MUSTACHE_F_STANDALONE);
			n->ind_off = o->prefix_off;
			n->ind_len = o->prefix_len;
			parser_advance(p, suffix_end);
			p->line_tag = false;
			p->pending = true;
		} else {
			parser_advance(p, tag_end);
			p->line_tag = true;
			p->pending = false;
		}
		p->depth--;
		return 0;
	}

	if (o->in_parent) {
		/* A block argument: only its inside needs to be blank. */
		if (parser_text(p, p->pos, prefix_ok ? seg_line_start : tag_start,
				NULL) != 0)
			return -1;
		parser_advance(p, tag_end);
		p->line_tag = true;
		p->pending = false;
		n = &t->nodes[o->node];
		if (o->standalone && n->child != MUSTACHE_NONE)
			parser_text_indent(t, n->child, &n->ind_off, &n->ind_len);
		p->depth--;
		return 0;
	}

	bool standalone = prefix_ok && suffix_ok;
	if (standalone) {
		if (parser_cut_standalone(p, seg_line_start, suffix_end) != 0)
			return -1;
	} else {
		if (parser_text(p, p->pos, tag_start, NULL) != 0)
			return -1;
		if (p->pending) {
			/* The closing tag starts a line: that line's indentation
			 * belongs inside the section. */
			if (parser_node(p, MUSTACHE_TEXT, line,
					MUSTACHE_F_LINE_START) == MUSTACHE_NONE)
				return -1;
			p->pending = false;
		}
		parser_advance(p, tag_end);
		p->line_tag = true;
	}
	n = &t->nodes[o->node];
	if (n->kind == MUSTACHE_BLOCK) {
		if (o->standalone) {
			n->flags |= MUSTACHE_F_STANDALONE;
			if (n->child != MUSTACHE_NONE) {
				parser_text_indent(t, n->child, &n->ind_off,
						   &n->ind_len);
			} else {
				n->ind_off = o->prefix_off;
				n->ind_len = o->prefix_len;
			}
		} else if (o->prefix_blank) {
			n->ind_off = o->prefix_off;
			n->ind_len = o->prefix_len;
		}
	}
	p->depth--;
	return 0;
}

/* Parses the tag whose opening delimiter is at src[ts]. */
static int parser_tag(struct mustache_parser *p, size_t ts)
{
	const char *src = p->src;
	size_t seg = p->pos;
	uint32_t line = p->line + mustache_count_nl(src + seg, ts - seg);
	size_t cs = ts + p->olen;
	char sigil = cs < p->len ? src[cs] : '\0';
	const char *needle = p->ctag;
	size_t nlen = p->clen;

	if (sigil == '{' || sigil == '=') {
		p->needle[0] = sigil == '{' ? '}' : '=';
		memcpy(p->needle + 1, p->ctag, p->clen);
		needle = p->needle;
		nlen = p->clen + 1;
		cs++;
	} else if (sigil != '\0' && strchr("#^/!>&<$", sigil)) {
		cs++;
	} else {
		sigil = '\0';
	}
	const char *close = cs <= p->len ?
		memmem(src + cs, p->len - cs, needle, nlen) : NULL;
	if (!close)
		return mustache_fail(p->err, line,
				     "unclosed tag \"%.*s%s\": no \"%.*s\" after it",
				     (int)p->olen, p->otag,
				     sigil == '{' || sigil == '=' ? (sigil == '{' ? "{" : "=") : "",
				     (int)nlen, needle);
	size_t ce = (size_t)(close - src), te = ce + nlen;
	size_t ns = cs, ne = ce;
	while (ns < ne && mustache_is_space(src[ns]))
		ns++;
	while (ne > ns && mustache_is_space(src[ne - 1]))
		ne--;

	/* Where the tag sits on its line. */
	const char *nl = memrchr(src + seg, '\n', ts - seg);
	size_t lstart = nl ? (size_t)(nl - src) + 1 : seg;
	bool prefix_blank = mustache_all_blank(src + lstart, ts - lstart);
	bool prefix_ok = (nl || !p->line_tag) && prefix_blank;
	size_t send = te;
	while (send < p->len && mustache_is_blank(src[send]))
		send++;
	bool suffix_ok = true;
	if (send == p->len)
		;
	else if (src[send] == '\n')
		send++;
	else if (src[send] == '\r' && send + 1 < p->len && src[send + 1] == '\n')
		send += 2;
	else
		suffix_ok = false;
	bool standalone = prefix_ok && suffix_ok;

	size_t nl_len = ne - ns;
	uint32_t idx;
	bool dynamic;

	switch (sigil) {
	case '!':
		return standalone ? parser_cut_standalone(p, lstart, send)
				  : parser_cut_inline(p, ts, te, NULL);
	case '=':
		if (parser_set_delims(p, line, ns, nl_len) != 0)
			return -1;
		return standalone ? parser_cut_standalone(p, lstart, send)
				  : parser_cut_inline(p, ts, te, NULL);
	case '/':
		return parser_close(p, line, ns, nl_len, lstart, prefix_ok,
				    suffix_ok, ts, te, send);
	case '#':
	case '^':
		if (parser_check_name(p, line, ns, nl_len) != 0)
			return -1;
		if (standalone ? parser_cut_standalone(p, lstart, send)
			       : parser_cut_inline(p, ts, te, NULL))
			return -1;
		idx = parser_node(p, sigil == '#' ? MUSTACHE_SECTION : MUSTACHE_INVERTED,
				  line, standalone ? 0 : parser_take_line_start(p));
		if (idx == MUSTACHE_NONE)
			return -1;
		parser_name(p, idx, ns, nl_len, true);
		if (parser_open(p, line, idx, ns, nl_len, false) != 0)
			return -1;
		p->stack[p->depth].standalone = standalone;
		return 0;
	case '>':
		parser_dynamic(p, &ns, &nl_len, &dynamic);
		if (parser_check_name(p, line, ns, nl_len) != 0)
			return -1;
		if (standalone ? parser_cut_standalone(p, lstart, send)
			       : parser_cut_inline(p, ts, te, NULL))
			return -1;
		idx = parser_node(p, MUSTACHE_PARTIAL, line,
				  standalone ? MUSTACHE_F_STANDALONE
					     : parser_take_line_start(p));
		if (idx == MUSTACHE_NONE)
			return -1;
		if (dynamic)
			p->t->nodes[idx].flags |= MUSTACHE_F_DYNAMIC;
		if (standalone) {
			p->t->nodes[idx].ind_off = (uint32_t)lstart;
			p->t->nodes[idx].ind_len = (uint32_t)(ts - lstart);
		}
		parser_name(p, idx, ns, nl_len, dynamic);
		return 0;
	case '<': {
		uint32_t text;

		parser_dynamic(p, &ns, &nl_len, &dynamic);
		if (parser_check_name(p, line, ns, nl_len) != 0)
			return -1;
		if (parser_cut_inline(p, ts, te, &text) != 0)
			return -1;
		idx = parser_node(p, MUSTACHE_PARENT, line,
				  (uint8_t)(parser_take_line_start(p) |
					    (dynamic ? MUSTACHE_F_DYNAMIC : 0)));
		if (idx == MUSTACHE_NONE)
			return -1;
		parser_name(p, idx, ns, nl_len, dynamic);
		if (parser_open(p, line, idx, ns, nl_len, dynamic) != 0)
			return -1;
		struct mustache_open *o = &p->stack[p->depth];
		o->standalone = prefix_ok;
		o->prefix_off = (uint32_t)lstart;
		o->prefix_len = (uint32_t)(ts - lstart);
		if (prefix_ok && ts > lstart)
			o->prefix_text = text;
		return 0;
	}
	case '$': {
		const struct mustache_open *top = &p->stack[p->depth];
		bool in_parent = top->node != MUSTACHE_NONE &&
			p->t->nodes[top->node].kind == MUSTACHE_PARENT;
		bool alone;

		if (parser_check_name(p, line, ns, nl_len) != 0)
			return -1;
		if (in_parent) {
			alone = suffix_ok;
			if (alone) {
				if (parser_text(p, p->pos, ts, NULL) != 0)
					return -1;
				parser_advance(p, send);
				p->line_tag = false;
			} else if (parser_cut_inline(p, ts, te, NULL) != 0) {
				return -1;
			}
			p->pending = false;
			idx = parser_node(p, MUSTACHE_BLOCK, line, 0);
			p->pending = alone;
		} else {
			alone = standalone;
			if (alone ? parser_cut_standalone(p, lstart, send)
				  : parser_cut_inline(p, ts, te, NULL))
				return -1;
			idx = parser_node(p, MUSTACHE_BLOCK, line,
					  alone ? 0 : parser_take_line_start(p));
		}
		if (idx == MUSTACHE_NONE)
			return -1;
		parser_name(p, idx, ns, nl_len, false);
		if (parser_open(p, line, idx, ns, nl_len, false) != 0)
			return -1;
		struct mustache_open *o = &p->stack[p->depth];
		o->standalone = alone;
		o->in_parent = in_parent;
		o->prefix_blank = prefix_ok;
		o->prefix_off = (uint32_t)lstart;
		o->prefix_len = (uint32_t)(ts - lstart);
		return 0;
	}
	default: /* variables: {{x}}, {{&x}}, {{{x}}} */
		if (parser_check_name(p, line, ns, nl_len) != 0)
			return -1;
		if (parser_cut_inline(p, ts, te, NULL) != 0)
			return -1;
		idx = parser_node(p, MUSTACHE_VAR, line,
				  (uint8_t)(parser_take_line_start(p) |
					    (sigil == '\0' ? MUSTACHE_F_ESCAPE : 0)));
		if (idx == MUSTACHE_NONE)
			return -1;
		parser_name(p, idx, ns, nl_len, true);
		return 0;
	}
}

static int parser_run(struct mustache_parser *p)
{
	while (p->pos < p->len) {
		const char *open = memmem(p->src + p->pos, p->len - p->pos,
					  p->otag, p->olen);
		if (!open)
			break;
		if (parser_tag(p, (size_t)(open - p->src)) != 0)
			return -1;
	}
	if (parser_text(p, p->pos, p->len, NULL) != 0)
		return -1;
	parser_advance(p, p->len);
	if (p->depth > 0) {
		const struct mustache_open *o = &p->stack[p->depth];
		const struct mustache_node *n = &p->t->nodes[o->node];
		return mustache_fail(p->err, n->line, "unclosed %s \"%s%.*s\"",
				     mustache_kind_name(n->kind),
				     o->dynamic ? "*" : "",
				     (int)(o->name_len > 64 ? 64 : o->name_len),
				     p->src + o->name_off);
	}
	return 0;
}

void mustache_free(struct mustache_tmpl *t)
{
	if (!t)
		return;
	free(t->src);
	free(t->nodes);
	free(t);
}

int mustache_parse(const char *src, size_t len, struct mustache_tmpl **out,
		   struct mustache_error *err)
{
	struct mustache_error dummy;
	struct mustache_parser *p = NULL;
	struct mustache_tmpl *t = NULL;
	int rc = -1;

	if (!err)
		err = &dummy;
	err->line = 0;
	err->message[0] = '\0';
	if (!out)
		return mustache_fail(err, 0, "no place for the template");
	*out = NULL;
	if (!src && len > 0)
		return mustache_fail(err, 0, "no template source");
	if (len > MUSTACHE_MAX_SOURCE)
		return mustache_fail(err, 0, "template larger than %u bytes",
				     MUSTACHE_MAX_SOURCE);

	t = calloc(1, sizeof *t);
	p = calloc(1, sizeof *p);
	if (!t || !p) {
		mustache_fail(err, 0, "out of memory");
		goto out;
	}
	/* Every stored name plus its NUL is shorter than the tag it came
	 * from, so the names fit in as many bytes as the source. */
	t->src = malloc(2 * len + 2);
	if (!t->src) {
		mustache_fail(err, 0, "out of memory");
		goto out;
	}
	if (len)
		memcpy(t->src, src, len);
	t->src[len] = '\0';
	t->names = t->src + len + 1;
	t->first = MUSTACHE_NONE;

	p->t = t;
	p->src = t->src;
	p->len = len;
	p->line = 1;
	p->pending = true;
	memcpy(p->otag, "{{", 2);
	memcpy(p->ctag, "}}", 2);
	p->olen = p->clen = 2;
	p->stack[0].node = MUSTACHE_NONE;
	p->stack[0].last = MUSTACHE_NONE;
	p->err = err;
	if (parser_run(p) != 0)
		goto out;
	*out = t;
	t = NULL;
	rc = 0;
out:
	free(p);
	mustache_free(t);
	return rc;
}

/* --------------------------------------------------------------- render */

/* One level of the context stack. */
struct mustache_ctx {
	json_t *v;
	const struct mustache_ctx *up;
};

/* The arguments (blocks) of one parent tag; outer ones were passed first
 * and win. */
struct mustache_args {
	const struct mustache_tmpl *t;
	uint32_t parent;
	const struct mustache_args *outer;
};

/* A block argument being rendered (so a block naming itself inside its own
 * argument falls back to its default instead of looping). */
struct mustache_expanding {
	const struct mustache_tmpl *t;
	uint32_t node;
	const struct mustache_expanding *prev;
};

/* Indentation emitted at line starts: this link's text after all of prev's.
 * A link with a mark suppresses prev's text while the output is still
 * mark bytes long (an inline expansion's first line continues the line it
 * started on). */
struct mustache_indent {
	const char *s;
	size_t n;
	size_t mark;
	const struct mustache_indent *prev;
};

struct mustache_xform {
	const char *strip; /* removed from the start of each source line */
	size_t strip_len;
	const struct mustache_indent *add;
};

struct mustache_render {
	char *buf;
	size_t len;
	size_t cap;
	mustache_partial_fn partials;
	void *ud;
	bool escape;
	unsigned depth;
	unsigned partial_depth;
	unsigned long steps;
	uint32_t line;
	struct mustache_error *err;
};

/* What one render_* call needs besides the node. */
struct mustache_scope {
	const struct mustache_tmpl *t;
	const struct mustache_ctx *ctx;
	const struct mustache_xform *x;
	const struct mustache_args *args;
	const struct mustache_expanding *exp;
};

static int render_put(struct mustache_render *r, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (n > MUSTACHE_MAX_OUTPUT - r->len)
		return mustache_fail(r->err, r->line,
				     "rendered output exceeds %u bytes",
				     MUSTACHE_MAX_OUTPUT);
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 256;
		char *grown;

		while (cap < r->len + n + 1)
			cap *= 2;
		grown = realloc(r->buf, cap);
		if (!grown)
			return mustache_fail(r->err, r->line, "out of memory");
		r->buf = grown;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
	return 0;
}

static int render_indent(struct mustache_render *r,
			 const struct mustache_indent *in)
{
	if (!in)
		return 0;
	if (in->mark != r->len && render_indent(r, in->prev) != 0)
		return -1;
	return render_put(r, in->s, in->n);
}

/* The indentation of a site (blanks of the current template's source) as
 * it appears in the output: the current chain, then the site's blanks
 * minus what the current transform strips. */
static const struct mustache_indent *
render_site_indent(const struct mustache_xform *x, const char *site, size_t n,
		   struct mustache_indent *link)
{
	size_t k = 0;

	while (k < n && k < x->strip_len && site[k] == x->strip[k])
		k++;
	if (k == n)
		return x->add;
	link->s = site + k;
	link->n = n - k;
	link->mark = MUSTACHE_NO_MARK;
	link->prev = x->add;
	return link;
}

/* Wraps an indentation chain for an expansion that starts mid-line. */
static const struct mustache_indent *
render_inline_indent(struct mustache_render *r, const struct mustache_indent *in,
		     struct mustache_indent *link)
{
	if (!in)
		return NULL;
	link->s = "";
	link->n = 0;
	link->mark = r->len;
	link->prev = in;
	return link;
}

static int render_escaped(struct mustache_render *r, const char *s, size_t n)
{
	size_t from = 0;

	for (size_t i = 0; i < n; i++) {
		const char *rep;

		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		if (render_put(r, s + from, i - from) != 0 ||
		    render_put(r, rep, strlen(rep)) != 0)
			return -1;
		from = i + 1;
	}
	return render_put(r, s + from, n - from);
}

/* Formats a number as the spec wants; returns its length, 0 if v is not a
 * number. NEEDSWORK: %g and strtod follow LC_NUMERIC; rouse never calls
 * setlocale, so the decimal point is always '.'. */
static size_t mustache_number(json_t *v, char *buf, size_t size)
{
	int n = 0;

	if (json_is_integer(v)) {
		n = snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		double d = json_real_value(v);

		for (int prec = 15; prec <= 17; prec++) {
			n = snprintf(buf, size, "%.*g", prec, d);
			if (strtod(buf, NULL) == d)
				break;
		}
	}
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static int render_value(struct mustache_render *r, json_t *v, bool escape)
{
	char num[40];
	size_t n;

	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_STRING:
		return escape ? render_escaped(r, json_string_value(v),
					       json_string_length(v))
			      : render_put(r, json_string_value(v),
					   json_string_length(v));
	case JSON_INTEGER:
	case JSON_REAL:
		n = mustache_number(v, num, sizeof num);
		return render_put(r, num, n);
	case JSON_TRUE:
		return render_put(r, "true", 4);
	default:
		return 0;
	}
}

static json_t *render_lookup(const struct mustache_ctx *ctx, const char *name,
			     uint32_t nseg)
{
	json_t *v = NULL;

	if (nseg == 0)
		return ctx ? ctx->v : NULL;
	for (; ctx; ctx = ctx->up)
		if (json_is_object(ctx->v) &&
		    (v = json_object_get(ctx->v, name)) != NULL)
			break;
	for (uint32_t i = 1; v && i < nseg; i++) {
		name += strlen(name) + 1;
		v = json_object_get(v, name); /* NULL unless v is an object */
	}
	return v;
}

static bool mustache_truthy(json_t *v)
{
	if (!v)
		return false;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return false;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	default:
		return true;
	}
}

static int render_list(struct mustache_render *r, const struct mustache_scope *sc,
		       uint32_t first);

static int render_nested(struct mustache_render *r,
			 const struct mustache_scope *sc, uint32_t first)
{
	int rc;

	if (first == MUSTACHE_NONE)
		return 0;
	if (r->depth >= MUSTACHE_MAX_RENDER_DEPTH)
		return mustache_fail(r->err, r->line,
				     "sections, blocks and partials nested deeper than %d",
				     MUSTACHE_MAX_RENDER_DEPTH);
	r->depth++;
	rc = render_list(r, sc, first);
	r->depth--;
	return rc;
}

static int render_text(struct mustache_render *r, const struct mustache_scope *sc,
		       const struct mustache_node *n)
{
	const struct mustache_xform *x = sc->x;
	const char *s = sc->t->src + n->off, *end = s + n->len;
	bool ls = n->flags & MUSTACHE_F_LINE_START;

	if (!x->add && x->strip_len == 0)
		return render_put(r, s, n->len);
	if (s == end)
		return ls ? render_indent(r, x->add) : 0;
	while (s < end) {
		if (ls) {
			size_t k = 0;

			while (k < x->strip_len && s + k < end && s[k] == x->strip[k])
				k++;
			s += k;
			if (render_indent(r, x->add) != 0)
				return -1;
		}
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *stop = nl ? nl + 1 : end;
		if (render_put(r, s, (size_t)(stop - s)) != 0)
			return -1;
		s = stop;
		ls = true;
	}
	return 0;
}

static int render_section(struct mustache_render *r,
			  const struct mustache_scope *sc,
			  const struct mustache_node *n)
{
	json_t *v = render_lookup(sc->ctx, sc->t->names + n->off, n->nseg);
	struct mustache_ctx ctx = { .up = sc->ctx };
	struct mustache_scope inner = *sc;

	inner.ctx = &ctx;
	if (n->kind == MUSTACHE_INVERTED)
		return mustache_truthy(v) ? 0 : render_nested(r, sc, n->child);
	if (json_is_array(v)) {
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e) {
			if (++r->steps > MUSTACHE_MAX_STEPS)
				return mustache_fail(r->err, n->line,
						     "render takes more than %lu steps",
						     MUSTACHE_MAX_STEPS);
			ctx.v = e;
			if (render_nested(r, &inner, n->child) != 0)
				return -1;
		}
		return 0;
	}
	if (!mustache_truthy(v))
		return 0;
	ctx.v = v;
	return render_nested(r, &inner, n->child);
}

/* {{>name}} and {{<name}}...{{/name}}. */
static int render_include(struct mustache_render *r,
			  const struct mustache_scope *sc, uint32_t idx)
{
	const struct mustache_node *n = &sc->t->nodes[idx];
	const char *name = sc->t->names + n->off;
	char num[40];

	if (n->flags & MUSTACHE_F_DYNAMIC) {
		json_t *v = render_lookup(sc->ctx, name, n->nseg);

		if (json_is_string(v))
			name = json_string_value(v);
		else if (mustache_number(v, num, sizeof num) > 0)
			name = num;
		else
			return 0;
	}
	if (!r->partials)
		return 0;
	if (r->partial_depth >= MUSTACHE_MAX_PARTIAL_DEPTH)
		return mustache_fail(r->err, n->line,
				     "%s \"%.64s\" nested deeper than %d partials",
				     n->kind == MUSTACHE_PARENT ? "parent" : "partial",
				     name, MUSTACHE_MAX_PARTIAL_DEPTH);
	const struct mustache_tmpl *pt = r->partials(r->ud, name);
	if (!pt)
		return 0;

	struct mustache_indent link;
	struct mustache_xform x = { .strip = NULL, .strip_len = 0 };
	if (n->flags & MUSTACHE_F_STANDALONE)
		x.add = render_site_indent(sc->x, sc->t->src + n->ind_off,
					   n->ind_len, &link);
	else
		x.add = render_inline_indent(r, sc->x->add, &link);

	struct mustache_args args = { sc->t, idx, sc->args };
	struct mustache_scope inner = {
		.t = pt,
		.ctx = sc->ctx,
		.x = &x,
		.args = n->kind == MUSTACHE_PARENT ? &args : sc->args,
		.exp = sc->exp,
	};
	int rc;

	r->partial_depth++;
	rc = render_nested(r, &inner, pt->first);
	r->partial_depth--;
	return rc;
}

/* {{$name}}default{{/name}} outside a parent tag: the outermost argument
 * of that name, else the default. */
static int render_block(struct mustache_render *r,
			const struct mustache_scope *sc,
			const struct mustache_node *n)
{
	const char *name = sc->t->names + n->off;
	const struct mustache_tmpl *dt = NULL;
	uint32_t d = MUSTACHE_NONE;

	for (const struct mustache_args *a = sc->args; a; a = a->outer) {
		const struct mustache_node *nodes = a->t->nodes;

		for (uint32_t c = nodes[a->parent].child; c != MUSTACHE_NONE;
		     c = nodes[c].next) {
			if (++r->steps > MUSTACHE_MAX_STEPS)
				return mustache_fail(r->err, n->line,
						     "render takes more than %lu steps",
						     MUSTACHE_MAX_STEPS);
			if (nodes[c].kind == MUSTACHE_BLOCK &&
			    strcmp(a->t->names + nodes[c].off, name) == 0) {
				dt = a->t;
				d = c;
				break;
			}
		}
	}
	for (const struct mustache_expanding *e = sc->exp; e && dt; e = e->prev)
		if (e->t == dt && e->node == d)
			dt = NULL;
	if (!dt)
		return render_nested(r, sc, n->child);

	const struct mustache_node *dn = &dt->nodes[d];
	struct mustache_indent site, wrap;
	struct mustache_xform x = {
		.strip = dt->src + dn->ind_off,
		.strip_len = dn->ind_len,
		.add = render_site_indent(sc->x, sc->t->src + n->ind_off,
					  n->ind_len, &site),
	};
	if (!(n->flags & MUSTACHE_F_STANDALONE))
		x.add = render_inline_indent(r, x.add, &wrap);
	struct mustache_expanding exp = { dt, d, sc->exp };
	struct mustache_scope inner = {
		.t = dt, .ctx = sc->ctx, .x = &x, .args = sc->args, .exp = &exp,
	};
	return render_nested(r, &inner, dn->child);
}

static int render_list(struct mustache_render *r, const struct mustache_scope *sc,
		       uint32_t first)
{
	for (uint32_t i = first; i != MUSTACHE_NONE; i = sc->t->nodes[i].next) {
		const struct mustache_node *n = &sc->t->nodes[i];
		int rc = 0;

		if (++r->steps > MUSTACHE_MAX_STEPS)
			return mustache_fail(r->err, n->line,
					     "render takes more than %lu steps",
					     MUSTACHE_MAX_STEPS);
		r->line = n->line;
		if (n->kind == MUSTACHE_TEXT) {
			if (render_text(r, sc, n) != 0)
				return -1;
			continue;
		}
		if ((n->flags & MUSTACHE_F_LINE_START) &&
		    render_indent(r, sc->x->add) != 0)
			return -1;
		switch (n->kind) {
		case MUSTACHE_VAR:
			rc = render_value(r, render_lookup(sc->ctx, sc->t->names + n->off,
							   n->nseg),
					  r->escape && (n->flags & MUSTACHE_F_ESCAPE));
			break;
		case MUSTACHE_SECTION:
		case MUSTACHE_INVERTED:
			rc = render_section(r, sc, n);
			break;
		case MUSTACHE_PARTIAL:
		case MUSTACHE_PARENT:
			rc = render_include(r, sc, i);
			break;
		case MUSTACHE_BLOCK:
			rc = render_block(r, sc, n);
			break;
		default:
			break;
		}
		if (rc != 0)
			return -1;
	}
	return 0;
}

int mustache_render(const struct mustache_tmpl *t, json_t *data,
		    mustache_partial_fn partials, void *ud, bool html_escape,
		    char **out, size_t *outlen, struct mustache_error *err)
{
	struct mustache_error dummy;
	struct mustache_render r = {
		.partials = partials,
		.ud = ud,
		.escape = html_escape,
		.err = err ? err : &dummy,
	};
	struct mustache_ctx ctx = { data, NULL };
	struct mustache_xform x = { NULL, 0, NULL };
	struct mustache_scope sc = { t, &ctx, &x, NULL, NULL };

	r.err->line = 0;
	r.err->message[0] = '\0';
	if (out)
		*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!t || !out)
		return mustache_fail(r.err, 0, "no template or no place for the output");
	if (render_list(&r, &sc, t->first) != 0 || render_put(&r, "", 0) != 0)
		goto fail;
	if (!r.buf) {
		r.buf = malloc(1);
		if (!r.buf) {
			mustache_fail(r.err, 0, "out of memory");
			goto fail;
		}
	}
	r.buf[r.len] = '\0';
	*out = r.buf;
	if (outlen)
		*outlen = r.len;
	return 0;
fail:
	free(r.buf);
	return -1;
}
