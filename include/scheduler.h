/* scheduler.h: the scheduler: fires due jobs on time, no earlier.
 *
 * The queue lives in the store, not in memory: the scheduler asks the
 * store to claim due jobs (the store's claim runs the gate in the
 * `-> sending` transaction), hands them to delivery, and sleeps until the
 * earliest due time the claim reported, or at most a second (wall-clock
 * jumps are noticed within that). Each channel's claims are limited by
 * its transport token bucket and an in-flight cap. Loop thread only.
 */
#ifndef ROUSE_SCHEDULER_H
#define ROUSE_SCHEDULER_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "deliver.h"
#include "store.h"

struct scheduler;

int scheduler_new(uv_loop_t *loop, const struct config *cfg, struct store *store,
	      struct scheduler **out);

/* Starts claiming, handing claimed jobs to d. */
void scheduler_start(struct scheduler *s, struct deliver *d);

/* New work may be due (a send was committed): claim soon. */
void scheduler_poke(struct scheduler *s);

/* deliver_finished_fn: one job's outcome is committed; a pause asked by
 * the provider holds the channel back until pause_until_ms. */
void scheduler_on_finished(void *scheduler, int channel,
			   int64_t pause_until_ms);

/* Stops claiming; in-flight jobs still finish, and jobs of a claim still
 * in flight are still delivered when it returns. */
void scheduler_stop(struct scheduler *s);

/* Whether a claim is waiting for the store. */
bool scheduler_claiming(const struct scheduler *s);

/* Forgets the delivery stage (before it closes): jobs of a claim that
 * returns later are left in `sending`, to be settled at the next start. */
void scheduler_detach(struct scheduler *s);

/* Frees it once the loop has run the close callback. */
void scheduler_close(struct scheduler *s);

#endif
