/* fuzz_smtpreply.c: smtp_reply_parse on arbitrary bytes, the input a
 * remote SMTP server controls. Besides memory safety it checks that a
 * parsed reply is a well-formed result (code 100-599, text terminated
 * inside its buffer, enhanced code of the reply's class), that the bytes
 * it claims are enough on their own (parsing just them gives the same
 * reply), and that fewer bytes never parse as a longer reply. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpreply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct smtp_reply *r)
{
	if (r->code < 100 || r->code > 599)
		abort();
	if (strnlen(r->text, sizeof r->text) == sizeof r->text)
		abort();
	if (r->enh[0] && r->enh[0] != r->code / 100)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	for (int with_ext = 0; with_ext < 2; with_ext++) {
		struct smtp_reply r, again;
		unsigned ext = 0, ext2 = 0;
		long n = smtp_reply_parse(buf, size, &r,
					  with_ext ? &ext : NULL);
		if (n < -1 || n > (long)size)
			abort();
		if (n <= 0)
			continue;
		check(&r);
		if (smtp_reply_parse(buf, (size_t)n, &again,
				     with_ext ? &ext2 : NULL) != n ||
		    memcmp(&r, &again, sizeof r) != 0 || ext != ext2)
			abort();
		if (n > 1 && smtp_reply_parse(buf, (size_t)n - 1, &again,
					      NULL) > 0)
			abort();
	}
	return 0;
}
