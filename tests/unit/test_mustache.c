/* test_mustache.c: the Mustache engine against every case of the official
 * spec files in $ROUSE_TESTS_DIR/mustache-spec/ (the required modules and
 * the optional inheritance and dynamic-names ones), then rouse's own cases:
 * HTML escaping, parse error lines, limits, UTF-8, threads. */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mustache.h"
#include "testutil.h"

#define SPEC_REQUIRED_CASES 136

/* Partials of one spec case, parsed up front. */
struct partial_set {
	size_t n;
	const char **names;
	struct mustache_tmpl **tmpls;
};

static const struct mustache_tmpl *partial_set_find(void *ud, const char *name)
{
	const struct partial_set *ps = ud;

	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->names[i], name) == 0)
			return ps->tmpls[i];
	return NULL;
}

static void partial_set_free(struct partial_set *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		mustache_free(ps->tmpls[i]);
	free(ps->names);
	free(ps->tmpls);
}

static int partial_set_load(struct partial_set *ps, json_t *obj, const char *where)
{
	const char *key;
	json_t *v;
	size_t cap = json_object_size(obj);

	memset(ps, 0, sizeof *ps);
	if (cap == 0)
		return 0;
	ps->names = calloc(cap, sizeof *ps->names);
	ps->tmpls = calloc(cap, sizeof *ps->tmpls);
	if (!ps->names || !ps->tmpls)
		return -1;
	json_object_foreach(obj, key, v) {
		struct mustache_error err;

		if (!json_is_string(v))
			return -1;
		if (mustache_parse(json_string_value(v), json_string_length(v),
				   &ps->tmpls[ps->n], &err) != 0) {
			fprintf(stderr, "%s: partial \"%s\": line %d: %s\n", where,
				key, err.line, err.message);
			return -1;
		}
		ps->names[ps->n++] = key;
	}
	return 0;
}

/* Runs one spec case; returns true when the output matches. */
static bool spec_case(const char *file, json_t *tc)
{
	const char *name = json_string_value(json_object_get(tc, "name"));
	json_t *tmpl = json_object_get(tc, "template");
	json_t *expected = json_object_get(tc, "expected");
	struct partial_set ps;
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	char where[512];
	char *out = NULL;
	size_t outlen = 0;
	bool ok = false;

	snprintf(where, sizeof where, "%s: \"%s\"", file, name ? name : "?");
	if (!json_is_string(tmpl) || !json_is_string(expected)) {
		fprintf(stderr, "%s: malformed case\n", where);
		return false;
	}
	if (partial_set_load(&ps, json_object_get(tc, "partials"), where) != 0) {
		fprintf(stderr, "%s: cannot load partials\n", where);
		goto out;
	}
	if (mustache_parse(json_string_value(tmpl), json_string_length(tmpl), &t,
			   &err) != 0) {
		fprintf(stderr, "%s: parse error at line %d: %s\n", where, err.line,
			err.message);
		goto out;
	}
	if (mustache_render(t, json_object_get(tc, "data"), partial_set_find, &ps,
			    true, &out, &outlen, &err) != 0) {
		fprintf(stderr, "%s: render error at line %d: %s\n", where, err.line,
			err.message);
		goto out;
	}
	ok = outlen == json_string_length(expected) &&
	     memcmp(out, json_string_value(expected), outlen) == 0;
	if (!ok)
		fprintf(stderr, "%s: FAILED\n  template: %s\n  got:      \"%s\"\n"
			"  expected: \"%s\"\n", where, json_string_value(tmpl), out,
			json_string_value(expected));
out:
	free(out);
	mustache_free(t);
	partial_set_free(&ps);
	return ok;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every *.json spec file; counts into *passed / *failed and the
 * required modules' cases into *required. */
static int spec_run(const char *dir, int *passed, int *failed, int *required)
{
	DIR *d = opendir(dir);
	char *files[64];
	size_t nfiles = 0;
	struct dirent *e;

	if (!d) {
		perror(dir);
		return -1;
	}
	while ((e = readdir(d)) != NULL && nfiles < 64) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		if (strcmp(e->d_name, "~lambdas.json") == 0)
			continue; /* lambdas are code in the data: not supported */
		files[nfiles++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(files, nfiles, sizeof files[0], name_cmp);

	for (size_t i = 0; i < nfiles; i++) {
		char path[4096];
		json_error_t jerr;
		json_t *root, *tests, *tc;
		size_t j;
		int p = 0, f = 0;

		if (snprintf(path, sizeof path, "%s/%s", dir, files[i]) >=
		    (int)sizeof path) {
			fprintf(stderr, "path too long: %s/%s\n", dir, files[i]);
			return -1;
		}
		root = json_load_file(path, 0, &jerr);
		tests = json_object_get(root, "tests");
		if (!json_is_array(tests)) {
			fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
			f++;
		}
		json_array_foreach(tests, j, tc) {
			if (spec_case(files[i], tc))
				p++;
			else
				f++;
		}
		printf("%s: %d passed, %d failed\n", files[i], p, f);
		*passed += p;
		*failed += f;
		if (files[i][0] != '~')
			*required += p + f;
		json_decref(root);
		free(files[i]);
	}
	return 0;
}

/* ------------------------------------------------------- rouse's cases */

static char *render_str(const char *tmpl, const char *data_json, bool escape)
{
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	json_t *data = json_loads(data_json, JSON_DECODE_ANY, NULL);
	char *out = NULL;

	if (mustache_parse(tmpl, strlen(tmpl), &t, &err) != 0) {
		fprintf(stderr, "parse of \"%s\" failed: line %d: %s\n", tmpl,
			err.line, err.message);
	} else if (mustache_render(t, data, NULL, NULL, escape, &out, NULL, &err) != 0) {
		fprintf(stderr, "render of \"%s\" failed: line %d: %s\n", tmpl,
			err.line, err.message);
	}
	mustache_free(t);
	json_decref(data);
	return out;
}

#define ASSERT_RENDER(tmpl, data, escape, expected) do { \
	char *got_ = render_str(tmpl, data, escape); \
	ASSERT_EQ_STR(got_, expected); \
	free(got_); } while (0)

static void test_escaping(void)
{
	ASSERT_RENDER("{{s}}", "{\"s\": \"<script>\\\"'&\"}", true,
		      "&lt;script&gt;&quot;&#39;&amp;");
	ASSERT_RENDER("{{{s}}}|{{&s}}", "{\"s\": \"<script>\\\"'&\"}", true,
		      "<script>\"'&|<script>\"'&");
	ASSERT_RENDER("{{s}}", "{\"s\": \"<script>\\\"'&\"}", false,
		      "<script>\"'&");
	ASSERT_RENDER("a & b <{{x}}>", "{\"x\": 1}", true, "a & b <1>");
}

static void test_utf8(void)
{
	ASSERT_RENDER("你好，{{name}}！{{#list}}【{{.}}】{{/list}}",
		      "{\"name\": \"世界 & 朋友\", \"list\": [\"一\", \"二\"]}", true,
		      "你好，世界 &amp; 朋友！【一】【二】");
	ASSERT_RENDER("{{{name}}}", "{\"name\": \"\xf0\x9f\x98\x80 é\"}", true,
		      "\xf0\x9f\x98\x80 é");
}

static void test_values(void)
{
	ASSERT_RENDER("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}}",
		      "{\"a\": 1.21, \"b\": 85, \"c\": -0.5, \"d\": 3.0, \"e\": 0.1,"
		      " \"f\": 1e100, \"g\": -9223372036854775807}", true,
		      "1.21 85 -0.5 3 0.1 1e+100 -9223372036854775807");
	ASSERT_RENDER("[{{t}}|{{f}}|{{n}}|{{o}}|{{l}}]",
		      "{\"t\": true, \"f\": false, \"n\": null, \"o\": {}, \"l\": [1]}",
		      true, "[true||||]");
	/* Falsy: missing, null, false, [], "". Truthy: 0, {}. */
	ASSERT_RENDER("{{#s}}S{{/s}}{{^s}}-{{/s}}{{#z}}Z{{/z}}{{#o}}O{{/o}}"
		      "{{#e}}E{{/e}}{{^e}}-{{/e}}",
		      "{\"s\": \"\", \"z\": 0, \"o\": {}, \"e\": []}", true, "-ZO-");
	ASSERT_RENDER("{{#items}}{{name}}{{^last}}, {{/last}}{{/items}}",
		      "{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\", \"last\": true}]}",
		      true, "a, b");
	/* Data is never re-parsed, and top-level non-objects work. */
	ASSERT_RENDER("{{.}}", "\"{{x}}\"", true, "{{x}}");
	ASSERT_RENDER("x{{missing.deep.name}}y", "null", true, "xy");
}

static void expect_parse_error(const char *tmpl, int line, const char *needle)
{
	struct mustache_tmpl *t = (struct mustache_tmpl *)&t; /* poison */
	struct mustache_error err;
	int rc = mustache_parse(tmpl, strlen(tmpl), &t, &err);

	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(t == NULL);
	ASSERT_EQ_INT(err.line, line);
	if (!strstr(err.message, needle)) {
		fprintf(stderr, "template \"%s\": message \"%s\" lacks \"%s\"\n",
			tmpl, err.message, needle);
		ASSERT_TRUE(strstr(err.message, needle) != NULL);
	}
	if (rc == 0)
		mustache_free(t);
}

static void test_parse_errors(void)
{
	expect_parse_error("hello\n\n{{#items}}\n{{name}}\n", 3,
			   "unclosed section \"items\"");
	expect_parse_error("{{#a}}\n{{#b}}\nx\n{{/a}}\n{{/b}}", 4,
			   "closing tag \"a\" does not match the open section \"b\" of line 2");
	expect_parse_error("a\nb\n  {{/x}}", 3, "closing tag \"x\" without an open section");
	expect_parse_error("line 1\nline {{two\n", 2, "unclosed tag");
	expect_parse_error("x\n{{{name}}", 2, "unclosed tag");
	expect_parse_error("{{=<% %>}}", 1, "unclosed tag");
	expect_parse_error("\n\n{{=<%%>=}}", 3, "invalid delimiter change");
	expect_parse_error("{{= a b c =}}", 1, "invalid delimiter change");
	expect_parse_error("{{=a=b c=}}", 1, "invalid delimiter change");
	expect_parse_error("{{^x}}\n{{<p}}{{$b}}\n", 2, "unclosed block \"b\"");
	expect_parse_error("{{<p}}\n\n{{/q}}", 3, "does not match the open parent \"p\"");
	expect_parse_error("a {{}} b", 1, "empty tag name");
	expect_parse_error("\n{{first name}}", 2, "invalid tag name \"first name\"");
	expect_parse_error("{{=<% %>=}}\n<%#a%>\n<%/b%>", 3, "does not match");

	/* Nesting limit. */
	char deep[(MUSTACHE_MAX_NESTING + 2) * 6 + 1];
	size_t n = 0;
	for (int i = 0; i <= MUSTACHE_MAX_NESTING; i++) {
		memcpy(deep + n, "{{#a}}", 6);
		n += 6;
	}
	deep[n] = '\0';
	expect_parse_error(deep, 1, "nested deeper than");

	/* A template that parses reports nothing. */
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	ASSERT_EQ_INT(mustache_parse("{{#a}}{{/a}}", 12, &t, &err), 0);
	ASSERT_EQ_INT(err.line, 0);
	ASSERT_EQ_STR(err.message, "");
	mustache_free(t);
}

static const struct mustache_tmpl *self_loader(void *ud, const char *name)
{
	return strcmp(name, "self") == 0 ? ud : NULL;
}

static void test_depth_limit(void)
{
	const char *src = "x\n  {{>self}}";
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	char *out = (char *)"poison";
	json_t *data = json_object();

	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	ASSERT_EQ_INT(mustache_render(t, data, self_loader, t, true, &out, NULL, &err), -1);
	ASSERT_TRUE(out == NULL);
	ASSERT_EQ_INT(err.line, 2);
	ASSERT_TRUE(strstr(err.message, "partial \"self\" nested deeper than 64") != NULL);
	mustache_free(t);

	/* A parent including itself hits the same limit. */
	src = "{{<self}}{{$b}}x{{/b}}{{/self}}";
	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	ASSERT_EQ_INT(mustache_render(t, data, self_loader, t, true, &out, NULL, &err), -1);
	ASSERT_TRUE(strstr(err.message, "parent \"self\" nested deeper than 64") != NULL);
	mustache_free(t);

	/* Recursion bounded by the data is fine: 63 levels. */
	json_t *node = json_object();
	json_t *root = node;
	for (int i = 0; i < 62; i++) {
		json_t *child = json_object();
		json_object_set_new(node, "n", child);
		node = child;
	}
	json_object_set_new(node, "n", json_null()); /* else lookup finds the outer n */
	src = "{{#n}}<{{>self}}>{{/n}}";
	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	size_t outlen = 0;
	ASSERT_EQ_INT(mustache_render(t, root, self_loader, t, true, &out, &outlen, &err), 0);
	ASSERT_EQ_INT(outlen, 62 * 2);
	free(out);
	mustache_free(t);
	json_decref(root);

	/* A block inside its own argument falls back to its default. */
	src = "{{<self}}{{$a}}X{{$a}}Y{{/a}}{{/a}}{{/self}}";
	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	struct partial_set ps;
	json_t *parts = json_pack("{s:s}", "self", "[{{$a}}d{{/a}}]");
	ASSERT_EQ_INT(partial_set_load(&ps, parts, "self block"), 0);
	ASSERT_EQ_INT(mustache_render(t, data, partial_set_find, &ps, true, &out, NULL, &err), 0);
	ASSERT_EQ_STR(out, "[XY]");
	free(out);
	partial_set_free(&ps);
	json_decref(parts);
	mustache_free(t);

	/* Exponential work is cut off by the step limit, not by time. */
	char big[600];
	size_t n = 0;
	for (int i = 0; i < 40; i++) {
		memcpy(big + n, "{{#a}}", 6);
		n += 6;
	}
	for (int i = 0; i < 40; i++) {
		memcpy(big + n, "{{/a}}", 6);
		n += 6;
	}
	json_t *loop = json_loads("{\"a\": [1, 2, 3, 4]}", 0, NULL);
	ASSERT_EQ_INT(mustache_parse(big, n, &t, &err), 0);
	ASSERT_EQ_INT(mustache_render(t, loop, NULL, NULL, true, &out, NULL, &err), -1);
	ASSERT_TRUE(strstr(err.message, "steps") != NULL);
	mustache_free(t);
	json_decref(loop);
	json_decref(data);
}

static void test_indentation(void)
{
	struct partial_set ps;
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	char *out = NULL;
	json_t *parts = json_pack("{s:s,s:s,s:s}",
				  "outer", "<ul>\n  {{>inner}}\n</ul>\n",
				  "inner", "{{#items}}\n<li>{{.}}</li>\n{{/items}}\n",
				  "layout", "<body>\n  {{$content}}{{/content}}\n</body>\n");
	json_t *data = json_pack("{s:[s,s]}", "items", "a\nb", "c");
	const char *src = "<div>\n    {{>outer}}\n</div>\n"
			  "{{<layout}}{{$content}}<p>{{items.1}}</p>\n<p>x</p>{{/content}}{{/layout}}";

	ASSERT_EQ_INT(partial_set_load(&ps, parts, "indentation"), 0);
	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	ASSERT_EQ_INT(mustache_render(t, data, partial_set_find, &ps, false, &out, NULL, &err), 0);
	/* Nested standalone partials stack their indentation; data newlines
	 * are not indented; an inline block keeps its line's indentation
	 * for its following lines. */
	ASSERT_EQ_STR(out, "<div>\n    <ul>\n      <li>a\nb</li>\n      <li>c</li>\n    </ul>\n</div>\n"
		      "<body>\n  <p></p>\n  <p>x</p>\n</body>\n");
	free(out);
	mustache_free(t);
	partial_set_free(&ps);
	json_decref(parts);
	json_decref(data);
}

struct thread_arg {
	const struct mustache_tmpl *t;
	json_t *data;
	int bad;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 500; i++) {
		char *out = NULL;
		struct mustache_error err;

		if (mustache_render(a->t, a->data, NULL, NULL, true, &out, NULL, &err) != 0 ||
		    strcmp(out, "a=1;b=2;c=&lt;3&gt;;") != 0)
			a->bad++;
		free(out);
	}
	return NULL;
}

static void test_threads(void)
{
	const char *src = "{{#kv}}{{k}}={{v}};{{/kv}}";
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	json_t *data = json_loads("{\"kv\": [{\"k\": \"a\", \"v\": 1}, {\"k\": \"b\", \"v\": 2},"
				  " {\"k\": \"c\", \"v\": \"<3>\"}]}", 0, NULL);
	pthread_t th[4];
	struct thread_arg args[4];

	ASSERT_EQ_INT(mustache_parse(src, strlen(src), &t, &err), 0);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ t, data, 0 };
		ASSERT_EQ_INT(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ_INT(args[i].bad, 0);
	}
	mustache_free(t);
	json_decref(data);
}

int main(void)
{
	const char *base = getenv("ROUSE_TESTS_DIR");
	char dir[4096];
	int passed = 0, failed = 0, required = 0;

	snprintf(dir, sizeof dir, "%s/mustache-spec", base ? base : ".");
	if (spec_run(dir, &passed, &failed, &required) != 0)
		return 1;
	printf("mustache spec: %d passed, %d failed\n", passed, failed);
	ASSERT_EQ_INT(failed, 0);
	if (required < SPEC_REQUIRED_CASES) {
		fprintf(stderr, "only %d required spec cases ran, expected at least %d\n",
			required, SPEC_REQUIRED_CASES);
		ASSERT_TRUE(required >= SPEC_REQUIRED_CASES);
	}

	test_escaping();
	test_utf8();
	test_values();
	test_parse_errors();
	test_depth_limit();
	test_indentation();
	test_threads();
	TEST_DONE();
}
