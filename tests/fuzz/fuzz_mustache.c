/* fuzz_mustache.c: fuzzes the Mustache parser and renderer. The input is a
 * template, optionally followed by a NUL byte and JSON data. A template
 * that parses is rendered with and without HTML escaping, with a loader
 * that serves the template itself as the partial (and parent) "self", so
 * recursion limits are exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mustache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mustache_tmpl *fuzz_loader(void *ud, const char *name)
{
	return strcmp(name, "self") == 0 ? ud : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	struct mustache_tmpl *t = NULL;
	struct mustache_error err;
	json_t *json = NULL;

	if (mustache_parse(src, tlen, &t, &err) != 0) {
		if (t != NULL || err.line < 0 || !memchr(err.message, '\0', sizeof err.message))
			abort();
		return 0;
	}
	if (nul)
		json = json_loadb(src + tlen + 1, size - tlen - 1,
				  JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!json)
		json = json_pack("{s:b,s:[i,f,s],s:{s:s},s:s,s:n,s:s}",
				 "a", 1, "b", 1, 2.5, "<&>", "c", "d", "x'\"",
				 "s", "self", "n", "e", "");
	for (int escape = 0; escape < 2; escape++) {
		char *out = NULL;
		size_t outlen = 0;

		if (mustache_render(t, json, fuzz_loader, t, escape, &out, &outlen,
				    &err) == 0) {
			if (!out || out[outlen] != '\0')
				abort();
		} else if (out != NULL) {
			abort();
		}
		free(out);
	}
	json_decref(json);
	mustache_free(t);
	return 0;
}
