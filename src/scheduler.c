/* scheduler.c: claim due jobs from the store and hand them to delivery (see
 * scheduler.h). One claim is in flight at a time; pokes that arrive meanwhile
 * are remembered and served when it returns. */
#include <stdbool.h>
#include <stdlib.h>

#include "bucket.h"
#include "channel.h"
#include "scheduler.h"
#include "timefmt.h"

#define SCHEDULER_MAX_SLEEP_MS 1000
#define SCHEDULER_MAX_CLAIM 512
/* With jobs of a channel in flight, a claim waits until this share of
 * the channel's capacity is free: each claim is a commit, and a claim per
 * finished job would cost one fsync per job under load. */
#define SCHEDULER_CLAIM_SHARE 4

struct scheduler {
	uv_loop_t *loop;
	uv_timer_t timer;
	const struct config *cfg;
	struct store *store;
	struct deliver *deliver;
	struct bucket buckets[CH_COUNT];
	int in_flight[CH_COUNT];
	int capacity[CH_COUNT];       /* the transport's in-flight cap */
	int64_t next_due[CH_COUNT];   /* 0: none known */
	bool claiming;
	bool again;
	bool stopped;
};

static void scheduler_run(struct scheduler *s);

/* How many jobs channel ch may take now, before the rate limit. */
static long room_for(const struct scheduler *s, int ch)
{
	long room = s->capacity[ch] - s->in_flight[ch];
	if (s->in_flight[ch] > 0 && room < s->capacity[ch] / SCHEDULER_CLAIM_SHARE)
		return 0; /* a finishing job pokes */
	return room;
}

static void on_timer(uv_timer_t *t)
{
	scheduler_run(t->data);
}

static void arm(struct scheduler *s, int64_t delay)
{
	if (s->stopped)
		return;
	if (delay < 0)
		delay = 0;
	if (delay > SCHEDULER_MAX_SLEEP_MS)
		delay = SCHEDULER_MAX_SLEEP_MS;
	uv_timer_start(&s->timer, on_timer, (uint64_t)delay, 0);
}

/* How long until some channel can make progress. */
static int64_t next_wake(struct scheduler *s, int64_t now)
{
	int64_t delay = SCHEDULER_MAX_SLEEP_MS;
	for (int ch = 0; ch < CH_COUNT; ch++) {
		if (s->next_due[ch] == 0)
			continue;
		int64_t wait = s->next_due[ch] - now;
		if (wait <= 0) {
			if (room_for(s, ch) <= 0)
				continue; /* a finishing job pokes */
			wait = bucket_wait_ms(&s->buckets[ch], now);
			if (wait == 0)
				wait = 1;
		}
		if (wait < delay)
			delay = wait;
	}
	return delay;
}

static void on_claimed(void *ud, struct claim_result *r)
{
	struct scheduler *s = ud;
	int64_t now = time_now_ms();
	s->claiming = false;
	if (s->deliver)
		deliver_hold(s->deliver);
	for (size_t i = 0; i < r->n_jobs; i++) {
		struct job *job = r->jobs[i];
		int ch = job->channel;
		if (!s->deliver) {
			job_free(job);
			continue;
		}
		s->in_flight[ch]++;
		int quantity = deliver_job(s->deliver, job);
		bucket_take(&s->buckets[ch], quantity, now);
	}
	if (s->deliver)
		deliver_release(s->deliver);
	free(r->jobs);
	if (r->status == 0)
		for (int ch = 0; ch < CH_COUNT; ch++)
			s->next_due[ch] = r->next_due_ms[ch];
	if (s->stopped)
		return;
	if (s->again) {
		s->again = false;
		arm(s, 0);
		return;
	}
	arm(s, r->status == 0 ? next_wake(s, now) : SCHEDULER_MAX_SLEEP_MS);
}

static void scheduler_run(struct scheduler *s)
{
	if (s->stopped)
		return;
	if (s->claiming) {
		s->again = true;
		return;
	}
	int64_t now = time_now_ms();
	struct claim_params p = { .now = now };
	bool any = false;
	for (int ch = 0; ch < CH_COUNT; ch++) {
		long budget = bucket_available(&s->buckets[ch], now);
		long room = room_for(s, ch);
		if (budget > room)
			budget = room;
		if (budget > SCHEDULER_MAX_CLAIM)
			budget = SCHEDULER_MAX_CLAIM;
		p.budget[ch] = budget > 0 ? (int)budget : 0;
		any |= p.budget[ch] > 0;
	}
	if (!any) {
		arm(s, next_wake(s, now));
		return;
	}
	s->claiming = true;
	store_claim(s->store, &p, on_claimed, s);
}

int scheduler_new(uv_loop_t *loop, const struct config *cfg, struct store *store,
	      struct scheduler **out)
{
	struct scheduler *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	s->loop = loop;
	s->cfg = cfg;
	s->store = store;
	int64_t now = time_now_ms();
	for (int ch = 0; ch < CH_COUNT; ch++)
		bucket_init(&s->buckets[ch], &cfg->buckets[ch], now);
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	s->stopped = true;
	*out = s;
	return 0;
}

void scheduler_start(struct scheduler *s, struct deliver *d)
{
	s->deliver = d;
	for (int ch = 0; ch < CH_COUNT; ch++)
		s->capacity[ch] = deliver_capacity(d, ch);
	s->stopped = false;
	arm(s, 0);
}

void scheduler_poke(struct scheduler *s)
{
	if (s->stopped)
		return;
	if (s->claiming) {
		s->again = true;
		return;
	}
	arm(s, 0);
}

void scheduler_on_finished(void *scheduler, int channel,
			   int64_t pause_until_ms)
{
	struct scheduler *s = scheduler;
	if (pause_until_ms)
		bucket_pause(&s->buckets[channel], pause_until_ms);
	s->in_flight[channel]--;
	if (s->next_due[channel] != 0)
		scheduler_poke(s);
}

void scheduler_stop(struct scheduler *s)
{
	s->stopped = true;
	uv_timer_stop(&s->timer);
}

bool scheduler_claiming(const struct scheduler *s)
{
	return s->claiming;
}

void scheduler_detach(struct scheduler *s)
{
	s->deliver = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void scheduler_close(struct scheduler *s)
{
	scheduler_stop(s);
	uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
