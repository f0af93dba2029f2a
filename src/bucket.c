/* bucket.c: token buckets for transport shaping (see bucket.h). */
#include <math.h>

#include "bucket.h"

#define BUCKET_UNLIMITED 1000000L

void bucket_init(struct bucket *b, const struct bucket_conf *conf,
		 int64_t now)
{
	b->enabled = conf && conf->set;
	b->rate = b->enabled ? conf->rate / 1000.0 : 0;
	b->burst = b->enabled ? conf->burst : 0;
	b->tokens = b->burst;
	b->last_ms = now;
	b->paused_until_ms = 0;
}

static void refill(struct bucket *b, int64_t now)
{
	if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * b->rate;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now;
	}
}

long bucket_available(struct bucket *b, int64_t now)
{
	if (now < b->paused_until_ms)
		return 0;
	if (!b->enabled)
		return BUCKET_UNLIMITED;
	refill(b, now);
	return b->tokens >= 1 ? (long)floor(b->tokens) : 0;
}

void bucket_take(struct bucket *b, double n, int64_t now)
{
	if (!b->enabled)
		return;
	refill(b, now);
	b->tokens -= n;
}

int64_t bucket_wait_ms(struct bucket *b, int64_t now)
{
	int64_t wait = 0;
	if (now < b->paused_until_ms)
		wait = b->paused_until_ms - now;
	if (!b->enabled)
		return wait;
	refill(b, now);
	if (b->tokens < 1) {
		int64_t refill_wait = (int64_t)ceil((1 - b->tokens) / b->rate);
		if (refill_wait > wait)
			wait = refill_wait;
	}
	return wait;
}

void bucket_pause(struct bucket *b, int64_t until_ms)
{
	if (until_ms > b->paused_until_ms)
		b->paused_until_ms = until_ms;
	if (b->enabled && b->tokens > 0)
		b->tokens = 0;
}
