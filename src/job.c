/* job.c: job state names, ids and freeing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "job.h"
#include "timefmt.h"

static const char *const job_state_names[JS_COUNT] = {
	"queued", "scheduled", "deferred", "sending", "sent", "failed",
	"suppressed", "cancelled", "expired",
};

const char *job_state_name(int state)
{
	if (state >= 0 && state < JS_COUNT)
		return job_state_names[state];
	return "unknown";
}

/* Random bytes drawn from the CSPRNG a page at a time. */
static void random_bytes(unsigned char *out, size_t n)
{
	static _Thread_local unsigned char pool[4096];
	static _Thread_local size_t left;
	if (left < n) {
		if (RAND_bytes(pool, sizeof pool) != 1)
			abort(); /* the CSPRNG failing is not recoverable */
		left = sizeof pool;
	}
	memcpy(out, pool + sizeof pool - left, n);
	memset(pool + sizeof pool - left, 0, n);
	left -= n;
}

/* UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random
 * bits. Time-ordered ids keep the store's id index append-mostly. */
void job_new_id(char *id)
{
	unsigned char b[16];
	uint64_t ms = (uint64_t)time_now_ms();
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	random_bytes(b + 6, 10);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(id, JOB_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

void job_free(struct job *job)
{
	if (!job)
		return;
	free(job->key);
	free(job->user);
	free(job->recipient);
	free(job->template_name);
	free(job->locale);
	free(job->vars_json);
	free(job->tz);
	free(job);
}
