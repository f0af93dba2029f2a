/* job.h: the job, the plain value that moves through the pipeline
 * (intake -> store -> scheduler -> delivery -> outcome). Whoever holds a
 * struct job owns it and frees it with job_free. */
#ifndef ROUSE_JOB_H
#define ROUSE_JOB_H

#include <stdint.h>

enum job_state {
	JS_QUEUED, JS_SCHEDULED, JS_DEFERRED, JS_SENDING, JS_SENT, JS_FAILED,
	JS_SUPPRESSED, JS_CANCELLED, JS_EXPIRED, JS_COUNT
};

enum push_platform { PUSH_FCM = 0, PUSH_APNS = 1 };

#define JOB_ID_LEN 36

struct job {
	int64_t rowid;            /* store's row; 0 before insert */
	char id[JOB_ID_LEN + 1];  /* UUID, stable across retries */
	char *key;                /* idempotency key or NULL */
	char *user;
	int channel;              /* enum channel */
	char *recipient;          /* normalised address, E.164 or push token */
	int platform;             /* enum push_platform (push only) */
	char *template_name;
	char *locale;             /* NULL: the default locale */
	char *vars_json;          /* compact JSON object text or NULL */
	char *tz;                 /* NULL when not given */
	int64_t at_ms;            /* 0: none */
	int64_t expires_ms;       /* 0: none */
	int64_t created_ms;
	int attempts;             /* including the current one once claimed */
	int state;                /* enum job_state */
	int64_t enrollment;       /* a sequence step's enrollment row, else 0 */
	int step;                 /* its step index */
};

/* "queued", "scheduled", ... */
const char *job_state_name(int state);

/* A fresh time-ordered random UUID (version 7), lower-case, into id
 * (JOB_ID_LEN + 1 bytes). */
void job_new_id(char *id);

void job_free(struct job *job);

#endif
