/* worker.h: a named thread that runs batches of work items off the loop.
 *
 * The loop submits items (an intrusive list node embedded in the caller's
 * struct). The thread takes everything queued (up to max_batch) under the
 * lock, runs batch_fn over the list on the thread, then hands the same
 * list back to the loop, where done_fn runs (via uv_async). Order is kept:
 * with one thread, items are processed and returned in submission order.
 * This is the one
 * way rouse crosses threads (the store writer, the store reader and the
 * file outbox each own one worker).
 */
#ifndef ROUSE_WORKER_H
#define ROUSE_WORKER_H

#include <stddef.h>
#include <uv.h>

struct worker;

struct worker_item {
	struct worker_item *next;
};

/* Runs on the worker thread with the batch in submission order. */
typedef void (*worker_batch_fn)(void *ctx, struct worker_item *batch);
/* Runs on the loop thread with the same list once batch_fn returned. */
typedef void (*worker_done_fn)(void *ctx, struct worker_item *batch);

#define WORKER_MAX_THREADS 64

/* Starts n_threads threads (1..WORKER_MAX_THREADS, named `name`, <= 15
 * chars) sharing one queue. With one thread batches run strictly in
 * submission order; with several, batches run concurrently (an item
 * stuck in one thread does not hold back the others) and done_fn sees
 * each batch when it finishes. Returns 0 or -1. */
int worker_start(uv_loop_t *loop, const char *name, int n_threads,
		 size_t max_batch, worker_batch_fn batch_fn,
		 worker_done_fn done_fn, void *ctx, struct worker **out);

/* Queues an item (loop thread only). The worker borrows it until done_fn. */
void worker_submit(struct worker *w, struct worker_item *item);

/* Between worker_hold and worker_release, submitted items queue without
 * waking the threads, so a burst handed over in one go is taken in full
 * batches rather than one item at a time. Loop thread; they nest. */
void worker_hold(struct worker *w);
void worker_release(struct worker *w);

/* Finishes every queued item (done_fn still runs for them on the next loop
 * turns), joins the thread and closes the async handle; the struct is
 * freed in the close callback, so the loop must run afterwards. */
void worker_stop(struct worker *w);

#endif
