/* worker.c: dedicated named threads fed from the loop (see worker.h).
 *
 * Design: a mutex-protected singly linked queue plus a condition variable
 * feed the thread; finished batches go to a second mutex-protected list
 * that the loop swaps out in its uv_async callback (the shape of h2o's
 * multithread queue and nginx's thread-pool done queue). Nothing here
 * knows what an item is.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "worker.h"

struct worker {
	uv_loop_t *loop;
	uv_async_t async;
	uv_thread_t threads[WORKER_MAX_THREADS];
	int n_threads;
	char name[16];
	size_t max_batch;
	worker_batch_fn batch_fn;
	worker_done_fn done_fn;
	void *ctx;

	uv_mutex_t lock;
	uv_cond_t wake;
	struct worker_item *todo_head, *todo_tail; /* guarded by lock */
	struct worker_item *done_head, *done_tail; /* guarded by lock */
	bool stopping;                             /* guarded by lock */
	int holds;                                 /* loop thread only */
};

static void list_append(struct worker_item **head, struct worker_item **tail,
			struct worker_item *first, struct worker_item *last)
{
	if (*tail)
		(*tail)->next = first;
	else
		*head = first;
	*tail = last;
}

static struct worker_item *take_batch(struct worker *w,
				      struct worker_item **last)
{
	struct worker_item *first = w->todo_head, *it = first;
	size_t n = 1;
	while (it->next && n < w->max_batch) {
		it = it->next;
		n++;
	}
	w->todo_head = it->next;
	if (!w->todo_head)
		w->todo_tail = NULL;
	it->next = NULL;
	*last = it;
	return first;
}

static void worker_thread(void *arg)
{
	struct worker *w = arg;
	prctl(PR_SET_NAME, w->name, 0, 0, 0);
	uv_mutex_lock(&w->lock);
	for (;;) {
		while (!w->todo_head && !w->stopping)
			uv_cond_wait(&w->wake, &w->lock);
		if (!w->todo_head && w->stopping)
			break;
		struct worker_item *last;
		struct worker_item *batch = take_batch(w, &last);
		uv_mutex_unlock(&w->lock);
		w->batch_fn(w->ctx, batch);
		uv_mutex_lock(&w->lock);
		list_append(&w->done_head, &w->done_tail, batch, last);
		uv_async_send(&w->async);
	}
	uv_mutex_unlock(&w->lock);
}

static void on_async(uv_async_t *handle)
{
	struct worker *w = handle->data;
	uv_mutex_lock(&w->lock);
	struct worker_item *done = w->done_head;
	w->done_head = w->done_tail = NULL;
	uv_mutex_unlock(&w->lock);
	if (done)
		w->done_fn(w->ctx, done);
}

int worker_start(uv_loop_t *loop, const char *name, int n_threads,
		 size_t max_batch, worker_batch_fn batch_fn,
		 worker_done_fn done_fn, void *ctx, struct worker **out)
{
	if (n_threads < 1 || n_threads > WORKER_MAX_THREADS)
		return -1;
	struct worker *w = calloc(1, sizeof *w);
	if (!w)
		return -1;
	w->loop = loop;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->max_batch = max_batch ? max_batch : 1;
	w->batch_fn = batch_fn;
	w->done_fn = done_fn;
	w->ctx = ctx;
	if (uv_mutex_init(&w->lock) != 0)
		goto fail_mutex;
	if (uv_cond_init(&w->wake) != 0)
		goto fail_cond;
	if (uv_async_init(loop, &w->async, on_async) != 0)
		goto fail_async;
	w->async.data = w;
	for (int i = 0; i < n_threads; i++) {
		if (uv_thread_create(&w->threads[i], worker_thread, w) != 0) {
			worker_stop(w); /* joins the ones started, frees w */
			return -1;
		}
		w->n_threads++;
	}
	*out = w;
	return 0;
fail_async:
	uv_cond_destroy(&w->wake);
fail_cond:
	uv_mutex_destroy(&w->lock);
fail_mutex:
	free(w);
	return -1;
}

void worker_submit(struct worker *w, struct worker_item *item)
{
	item->next = NULL;
	uv_mutex_lock(&w->lock);
	list_append(&w->todo_head, &w->todo_tail, item, item);
	if (w->holds == 0)
		uv_cond_signal(&w->wake);
	uv_mutex_unlock(&w->lock);
}

void worker_hold(struct worker *w)
{
	w->holds++;
}

void worker_release(struct worker *w)
{
	if (--w->holds > 0)
		return;
	uv_mutex_lock(&w->lock);
	if (w->todo_head)
		uv_cond_broadcast(&w->wake);
	uv_mutex_unlock(&w->lock);
}

static void on_async_closed(uv_handle_t *handle)
{
	struct worker *w = handle->data;
	uv_cond_destroy(&w->wake);
	uv_mutex_destroy(&w->lock);
	free(w);
}

void worker_stop(struct worker *w)
{
	uv_mutex_lock(&w->lock);
	w->stopping = true;
	uv_cond_broadcast(&w->wake);
	uv_mutex_unlock(&w->lock);
	for (int i = 0; i < w->n_threads; i++)
		uv_thread_join(&w->threads[i]);
	on_async(&w->async); /* hand back what finished last */
	uv_close((uv_handle_t *)&w->async, on_async_closed);
}
