/* bucket.h: a token bucket shaping one transport's throughput (pure; the
 * loop thread owns each bucket). Tokens refill at `rate` per second up to
 * `burst`; taking may go into debt (an SMS of 3 segments takes 3), which
 * later refills pay back. A pause (provider back-pressure) empties it
 * until a given instant. A disabled bucket always allows. */
#ifndef ROUSE_BUCKET_H
#define ROUSE_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct bucket {
	bool enabled;
	double rate;       /* tokens per ms */
	double burst;
	double tokens;
	int64_t last_ms;
	int64_t paused_until_ms;
};

void bucket_init(struct bucket *b, const struct bucket_conf *conf,
		 int64_t now);

/* Whole tokens available now (after refilling); a large number when
 * disabled; 0 while paused or in debt. */
long bucket_available(struct bucket *b, int64_t now);

void bucket_take(struct bucket *b, double n, int64_t now);

/* Milliseconds from now until one whole token is available (0 if now). */
int64_t bucket_wait_ms(struct bucket *b, int64_t now);

/* Nothing passes before until_ms. */
void bucket_pause(struct bucket *b, int64_t until_ms);

#endif
