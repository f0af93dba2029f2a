/* outbox.h: the file transports of the embedded defaults.
 *
 * Email goes to a maildir (written to tmp/, fsync'd, renamed into new/,
 * the directory fsync'd); SMS and push are appended as one JSON line per
 * message to a JSONL file and fdatasync'd. All file I/O runs on the
 * "outbox" thread; a batch of appends shares one fdatasync. At open, a
 * torn last line of a JSONL file (a crash mid-append) is cut off, so the
 * files only ever hold complete lines.
 */
#ifndef ROUSE_OUTBOX_H
#define ROUSE_OUTBOX_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "email.h"
#include "job.h"
#include "worker.h"

struct outbox;

struct outbox_item {
	struct worker_item node;   /* first: the worker's list node */
	int channel;
	char job_id[JOB_ID_LEN + 1];
	int attempt;
	char *data;                /* owned: message bytes or one JSON line */
	size_t len;
	struct email_draft *draft; /* owned: email built on the outbox thread
	                              when data is NULL */
	void *ud;                  /* the submitter's */
	/* set by the outbox */
	int status;                /* 0 written durably, -1 failed */
	bool permanent;            /* the failure will not go away (the
	                              message cannot be built) */
	char detail[256];
};

/* Called on the loop for each finished item; the callee owns it
 * (outbox_item_free). */
typedef void (*outbox_done_fn)(void *ctx, struct outbox_item *item);

/* Creates the maildir folders and output directories, repairs torn JSONL
 * tails. Blocking: call before the loop runs. */
int outbox_open(uv_loop_t *loop, const struct config *cfg,
		outbox_done_fn done, void *ctx, struct outbox **out, char *err,
		size_t errlen);

/* Whether a message of this job is already in the outbox (start-up
 * recovery of jobs found in `sending`). Blocking; before the loop runs. */
bool outbox_holds(struct outbox *o, const struct job *job);

/* How many messages of a channel are worth having in the outbox at once:
 * enough to keep its threads busy (and batches large), no more, so that
 * jobs are not claimed long before their turn. */
int outbox_capacity(int channel);

/* Queues an item (takes ownership). Loop thread. */
void outbox_submit(struct outbox *o, struct outbox_item *item);

/* Brackets a burst of outbox_submit calls (worker_hold / worker_release). */
void outbox_hold(struct outbox *o);
void outbox_release(struct outbox *o);

void outbox_item_free(struct outbox_item *item);

/* Finishes queued items, joins the thread; freed after the loop runs. */
void outbox_close(struct outbox *o);

#endif
