/* fuzz_request.c: request_parse on arbitrary bytes. Besides memory safety
 * it checks the parser's promises: a failure always has a code and a
 * printable-ASCII message, and an accepted request has the fields its op
 * requires. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_message(const char *m)
{
	size_t n = strnlen(m, 256);
	if (n == 256)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)m[i] < 0x20 || (unsigned char)m[i] > 0x7e)
			abort();
}

static void fuzz_check_ok(const struct request *req)
{
	switch (req->op) {
	case OP_SEND:
		if (!req->user || !req->template_name || req->channel < 0 ||
		    req->channel >= CH_COUNT)
			abort();
		if (req->channel == CH_PUSH ? !req->push_token : !req->to[0])
			abort();
		if (req->vars && !json_is_object(req->vars))
			abort();
		break;
	case OP_UNSUBSCRIBE:
	case OP_RESUBSCRIBE:
		if (!req->source || (!req->user && !req->address[0]))
			abort();
		if (req->channel != CH_ALL &&
		    (req->channel < 0 || req->channel >= CH_COUNT))
			abort();
		break;
	case OP_CONSENT:
		if (!req->user && !req->address[0])
			abort();
		break;
	case OP_STATUS:
		if (!req->job || !req->job[0])
			abort();
		break;
	case OP_PREVIEW:
		if (!req->template_name || req->channel < 0 ||
		    req->channel >= CH_COUNT)
			abort();
		break;
	case OP_STATS:
	case OP_PING:
	case OP_ENROLL:
	case OP_EVENT:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct request req;
	struct request_error err;

	if (request_parse((const char *)data, size, &req, &err) == 0) {
		if (!req.root)
			abort();
		fuzz_check_ok(&req);
	} else {
		if (!err.code)
			abort();
		fuzz_check_message(err.message);
	}
	request_release(&req);
	return 0;
}
