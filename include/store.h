/* store.h: the durable store (SQLite in WAL mode, synchronous=FULL).
 *
 * Everything that changes state goes through one writer thread that
 * group-commits: it takes every queued command, runs them in one
 * transaction, commits (one fsync), and only then are the commands'
 * callbacks called on the loop, in submission order. Reads (status,
 * stats, consent) run on a second thread with its own connection. The
 * loop thread never touches the database once the loop runs.
 *
 * The interface is narrow on purpose (jobs, opt-outs, histories) so that
 * another backend can stand behind it without touching the pipeline.
 * All functions are called on the loop thread; callbacks run there too.
 */
#ifndef ROUSE_STORE_H
#define ROUSE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "job.h"

struct store;

/* Opens (creating or migrating) <data_dir>/rouse.db. Blocking: call before
 * the loop runs. Returns 0, or -1 with err filled. */
int store_open(uv_loop_t *loop, const struct config *cfg, struct store **out,
	       char *err, size_t errlen);

/* Stops the threads after they finish what is queued (their callbacks
 * still run on the next loop turns) and closes the database once the
 * loop has run the close callbacks. */
void store_close(struct store *s);

/* Start-up recovery (blocking, before the loop runs): settles every job
 * found in `sending`. delivered(ud, job) says whether the transport
 * already holds it (a file outbox can know); such jobs become `sent`.
 * Others follow delivery-rules §1.5: email and push are queued again (same
 * id, so the same Message-ID), SMS follows sms.on_ambiguous. Returns the
 * number of jobs settled, or -1. */
int store_recover(struct store *s,
		  bool (*delivered)(void *ud, const struct job *job),
		  void *ud, int64_t now);

/* ---- writes (each answered after its commit) ---- */

struct store_send_result {
	int status;              /* 0 committed, -1 storage failure */
	bool duplicate;          /* key seen before: id/state are the first job's */
	char id[JOB_ID_LEN + 1];
	int state;
	const char *reason;      /* "opted_out" or "dead_token" for a
	                            suppressed job, else NULL */
};
typedef void (*store_send_cb)(void *ud, const struct store_send_result *r);

/* Queues job (takes ownership) with the opt-out check and idempotency key
 * resolved in the same transaction. Returns 0 (cb will run) or -1 when the
 * writer queue is full (overloaded; cb will not run, job freed). */
int store_send(struct store *s, struct job *job, int64_t now,
	       store_send_cb cb, void *ud);

struct optout_change {
	bool resubscribe;
	const char *user;        /* NULL or "" when absent */
	const char *address;     /* normalised; NULL or "" when absent */
	int channel;             /* enum channel or CH_ALL */
	const char *source;
	const char *reason;      /* may be NULL */
	int64_t now;
};
/* status 0/-1; cancelled = queued/scheduled/deferred jobs it cancelled. */
typedef void (*store_optout_cb)(void *ud, int status, int cancelled);

/* Records an opt-out (cancelling the jobs it covers) or a resubscribe; the
 * change is copied. Returns 0, or -1 when overloaded (cb not called). */
int store_optout(struct store *s, const struct optout_change *c,
		 store_optout_cb cb, void *ud);

struct claim_params {
	int64_t now;
	int budget[CH_COUNT];    /* most jobs to move to sending per channel */
};
struct claim_result {
	int status;              /* 0 committed, -1 storage failure */
	struct job **jobs;       /* now `sending`, attempts counted */
	size_t n_jobs;
	int64_t next_due_ms[CH_COUNT]; /* per channel: earliest due time
	                                  left, 0 when none */
};
/* The callback owns r->jobs (each job and the array). */
typedef void (*store_claim_cb)(void *ud, struct claim_result *r);

/* Moves due jobs to `sending` through the gate, in one transaction:
 * expired jobs end `expired`, opted-out ones `suppressed`, exhausted ones
 * `failed`, capped ones `deferred` (or dropped), the rest are claimed
 * with attempts incremented and counted in the send history. */
void store_claim(struct store *s, const struct claim_params *p,
		 store_claim_cb cb, void *ud);

enum outcome_kind { OUTCOME_SENT, OUTCOME_RETRY, OUTCOME_FAILED };

struct completion {
	int64_t rowid;
	enum outcome_kind kind;
	int64_t now;
	int64_t retry_at;        /* OUTCOME_RETRY: not before */
	char detail[512];        /* transport's words for the event */
	char reason[32];         /* OUTCOME_FAILED reason, may be "" */
	char suppress_source[32]; /* OUTCOME_FAILED: when set, the recipient
	                            address is opted out of the job's channel
	                            with this source (a hard bounce) */
	bool token_dead;         /* OUTCOME_FAILED, push: the provider said the
	                            device token is gone; later jobs to it are
	                            suppressed ("dead_token") */
	char provider_ref[128];  /* OUTCOME_SENT: the provider's id for the
	                            message (Twilio sid), may be "" */
	char encoding[8];        /* SMS: "GSM-7"/"UCS-2", else "" */
	int segments;            /* SMS segments, else 0 */
};
typedef void (*store_done_cb)(void *ud, int status);

/* Records a transport outcome (copied). A retry past `expires` ends the
 * job `expired`; a retry with no attempts left ends it `failed`. */
void store_complete(struct store *s, const struct completion *c,
		    store_done_cb cb, void *ud);

/* ---- drip sequences ---- */

enum enrollment_state {
	ENROLLMENT_ACTIVE, ENROLLMENT_COMPLETED, ENROLLMENT_EXITED
};

struct enrollment {
	char id[JOB_ID_LEN + 1];
	char *user;
	char *sequence;
	struct job **jobs;       /* its step jobs, keyed "<id>:<step>" */
	size_t n_jobs;
	char *skipped_json;      /* JSON array of the steps not made into
	                            jobs ({"step","channel","template",
	                            "state":"skipped","detail"}), or NULL */
};

void enrollment_free(struct enrollment *e);

struct store_enroll_result {
	int status;              /* 0 committed, -1 storage failure */
	bool duplicate;          /* the user is active in the sequence: id
	                            is that enrollment's */
	bool queued_now;         /* a step job is due at once */
	char id[JOB_ID_LEN + 1];
};
typedef void (*store_enroll_cb)(void *ud, const struct store_enroll_result *r);

/* Records the enrollment and all its step jobs in one transaction (a step
 * can never be created twice: the enrollment's steps exist or none do),
 * unless the user is already active in the sequence. Takes e. Returns 0,
 * or -1 when overloaded (cb not called, e freed). */
int store_enroll(struct store *s, struct enrollment *e, int64_t now,
		 store_enroll_cb cb, void *ud);

typedef void (*store_event_cb)(void *ud, int status, int exited);

/* Ends the user's active enrollments in `sequences` (those that exit on
 * the event): their steps not yet sending are cancelled in the same
 * commit. Returns 0, or -1 when overloaded (cb not called). */
int store_event(struct store *s, const char *user, const char *name,
		const char *const *sequences, size_t n_sequences, int64_t now,
		store_event_cb cb, void *ud);

/* ---- reads (reader thread) ---- */

/* result is owned by the callback; NULL with status 0 means not found. */
typedef void (*store_json_cb)(void *ud, int status, json_t *result);

void store_status(struct store *s, const char *job_id, store_json_cb cb,
		  void *ud);
/* An enrollment and its steps; NULL with status 0 when not found. */
void store_enrollment(struct store *s, const char *id, store_json_cb cb,
		      void *ud);

/* {"jobs":{channel:{state:n}},"queue_depth":n,"sent":{channel:n},"opt_outs":n} */
void store_stats(struct store *s, store_json_cb cb, void *ud);
/* {"effective":{...},"history":[...]} for a user and/or address */
void store_consent(struct store *s, const char *user, const char *address,
		   store_json_cb cb, void *ud);

/* Commands waiting for the writer (for stats and back-pressure). */
size_t store_pending(const struct store *s);

/* Write transactions committed so far (each one fsync of the WAL). Any
 * thread. */
unsigned long store_commits(const struct store *s);

#endif
