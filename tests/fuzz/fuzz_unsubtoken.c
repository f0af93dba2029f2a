/* fuzz_unsubtoken.c: unsub_token_verify on arbitrary bytes, the input an
 * anonymous HTTP client controls. Besides memory safety it checks that a
 * token which verifies re-mints to the same text (tokens have exactly one
 * spelling) and that its fields are within their bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "unsubtoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct unsub_keys *fuzz_keys(void)
{
	static struct unsub_keys *keys;
	char err[256];
	if (!keys && unsub_keys_parse("7:fuzzing-secret-number-seven "
				      "3:an-older-secret-still-valid",
				      &keys, err, sizeof err) != 0)
		abort();
	return keys;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unsub_keys *keys = fuzz_keys();
	struct unsub_subject s;
	if (unsub_token_verify(keys, (const char *)data, size, &s) != 0)
		return 0;
	if (s.channel != CH_ALL && (s.channel < 0 || s.channel >= CH_COUNT))
		abort();
	if (strnlen(s.user, sizeof s.user) == sizeof s.user ||
	    strnlen(s.address, sizeof s.address) == sizeof s.address)
		abort();
	/* a token of the minting key (same version, key id and channel:
	 * the first four characters) re-mints to exactly the same text */
	char *again = unsub_token_mint(keys, &s);
	if (!again)
		abort();
	if (size >= 4 && memcmp(again, data, 4) == 0 &&
	    (strlen(again) != size || memcmp(again, data, size) != 0))
		abort();
	free(again);
	return 0;
}
