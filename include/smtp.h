/* smtp.h: the SMTP email transport.
 *
 * An SMTP dialogue is a sequence of blocking waits on the server
 * (smtpconn.h), so it runs on dedicated session threads ("smtp-session", email.smtp.sessions of
 * them), fed from the loop and reporting back through uv_async (worker.h).
 * Each thread takes up to email.smtp.batch queued messages and sends them
 * over one connection. Every message gets its own verdict from the
 * server's replies (delivery-rules §2).
 */
#ifndef ROUSE_SMTP_H
#define ROUSE_SMTP_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "email.h"
#include "job.h"
#include "worker.h"

struct smtp_transport;

enum smtp_verdict {
	SMTP_SENT,        /* 2xx after the final dot */
	SMTP_RETRY,       /* temporary: 4xx, x.2.2, no connection, no TLS,
	                     or ambiguous (connection lost after the dot) */
	SMTP_FAILED,      /* permanent, the address stays usable */
	SMTP_BOUNCED,     /* permanent 5.1.x: the address is suppressed */
};

struct smtp_item {
	struct worker_item node;   /* first: the worker's list node */
	char job_id[JOB_ID_LEN + 1];
	char *data;                /* owned: the message bytes (CRLF), or
	                              NULL to build them from draft on the
	                              session thread */
	size_t len;
	struct email_draft *draft; /* owned */
	char *recipient;           /* owned: the one RCPT */
	void *ud;                  /* the submitter's */
	/* set by the transport */
	enum smtp_verdict verdict;
	bool pause;                /* 421 / 4.7.x: back off everyone */
	char reason[32];           /* for FAILED/BOUNCED: "rejected", "bounced" */
	char source[32];           /* for BOUNCED: "smtp_5.1.1" */
	char detail[512];          /* code, enhanced code, server text */
	/* session-private progress */
	bool data_done;
	bool reported;             /* accepted and already reported */
};

/* Called on the loop per finished item; the callee owns it. An accepted
 * message is reported as soon as its 2xx arrives (a copy carrying its
 * job_id, verdict, detail and ud), the others when their connection ends. */
typedef void (*smtp_done_fn)(void *ctx, struct smtp_item *item);

/* Starts the session threads. Returns 0, or -1 with err filled. */
int smtp_open(uv_loop_t *loop, const struct config *cfg, smtp_done_fn done,
	      void *ctx, struct smtp_transport **out, char *err,
	      size_t errlen);

/* Messages worth queueing at once: 2 x sessions x batch. */
int smtp_capacity(const struct config *cfg);

/* Queues an item (takes ownership). Loop thread. */
void smtp_submit(struct smtp_transport *t, struct smtp_item *item);

/* Brackets a burst of smtp_submit calls so that sessions start with full
 * batches (worker_hold / worker_release). */
void smtp_hold(struct smtp_transport *t);
void smtp_release(struct smtp_transport *t);

void smtp_item_free(struct smtp_item *item);

/* Cuts the connections of the sessions running now (shutdown past its
 * grace period): their messages end as retries (or ambiguous retries) and
 * the threads return promptly. Loop thread. */
void smtp_abort(struct smtp_transport *t);

/* Lets running sessions finish, joins the threads; the struct is freed
 * once the loop has run the close callback. */
void smtp_close(struct smtp_transport *t);

#endif
