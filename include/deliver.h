/* deliver.h: turns a claimed job into a message and hands it to its
 * transport, then turns the transport's result into the job's outcome.
 *
 * render (templates) -> build (GMime for email, a JSON line for SMS and
 * push) -> transport (SMTP or the maildir for email; the SMS gateway or
 * the JSONL outbox for SMS; FCM/APNs or the JSONL outbox for push) ->
 * outcome: sent, retry with exponential backoff and jitter between
 * retry.base and retry.max, or failed -> store. Loop thread only.
 */
#ifndef ROUSE_DELIVER_H
#define ROUSE_DELIVER_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "job.h"
#include "store.h"
#include "templates.h"
#include "unsubtoken.h"

struct deliver;

/* Called once per job handed to deliver_job, after its outcome is
 * committed. pause_until_ms is non-zero when the provider asked for
 * back-off (SMTP 421 / 4.7.x, HTTP 429 / 503 with Retry-After): nothing
 * more should go to that channel's
 * transport before then. */
typedef void (*deliver_finished_fn)(void *ud, int channel,
				    int64_t pause_until_ms);

/* Opens the transports. Blocking (before the loop runs). */
/* keys: the unsubscribe link keys (NULL without unsubscribe config). */
int deliver_open(uv_loop_t *loop, const struct config *cfg,
		 const struct templates *templates,
		 const struct unsub_keys *keys, struct store *store,
		 deliver_finished_fn finished, void *ud, struct deliver **out,
		 char *err, size_t errlen);

/* Start-up recovery: whether the transport already holds this job. */
bool deliver_already_done(void *deliver, const struct job *job);

/* Bracket a burst of deliver_job calls (one claim's jobs): transports
 * start on the whole burst at once, in full batches. */
void deliver_hold(struct deliver *d);
void deliver_release(struct deliver *d);

/* Takes ownership of job (state `sending`). Returns the transport quantity
 * it costs (SMS segments, else 1) for the transport's rate bucket. */
int deliver_job(struct deliver *d, struct job *job);

/* Most jobs of a channel worth handing over at once (the transport's
 * concurrency): the scheduler claims no more than that. */
int deliver_capacity(const struct deliver *d, int channel);

/* Jobs handed over whose outcome is not committed yet. */
size_t deliver_in_flight(const struct deliver *d);

/* Cuts what the transports are stuck on (network sessions), so that a
 * shutdown past its grace period ends promptly. */
void deliver_abort(struct deliver *d);

/* Stops the transports (what they hold finishes first); outcomes may
 * still be committed afterwards, so the struct lives until deliver_free,
 * to be called once the store is closed. */
void deliver_close(struct deliver *d);
void deliver_free(struct deliver *d);

#endif
