/* request.h: parses and validates one intake request line (pure).
 *
 * The line is decoded with jansson (UTF-8 and JSON validity checked); the
 * op's fields are validated and copied out into plain C fields. Error
 * messages name the JSON path of the bad field ("vars.amount: expected a
 * string", "to: not an E.164 number").
 */
#ifndef ROUSE_REQUEST_H
#define ROUSE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

enum op {
	OP_SEND, OP_UNSUBSCRIBE, OP_RESUBSCRIBE, OP_STATUS, OP_PREVIEW,
	OP_STATS, OP_PING, OP_CONSENT, OP_ENROLL, OP_EVENT
};

#define REQ_KEY_MAX 200
#define REQ_PUSH_TOKENS_MAX 16    /* contact.push entries of one enroll */

struct request_error {
	const char *code;      /* protocol error code: "bad_json", "bad_request",
	                          "unknown_op", "unknown_channel" */
	char message[256];
};

struct request {
	enum op op;
	json_t *root;          /* owned: the whole decoded object */
	json_t *id;            /* borrowed from root; NULL when absent */

	/* send, preview */
	const char *key;       /* borrowed strings point into root */
	const char *user;
	int channel;           /* enum channel; CH_ALL for unsubscribe "all" */
	char to[256];          /* normalised email / E.164; push: the token
	                          when shorter than 256 bytes, else "" */
	int push_platform;     /* 0 fcm, 1 apns (push only) */
	const char *push_token; /* push: the whole token (<= 4096 bytes) */
	const char *template_name;
	const char *locale;
	json_t *vars;          /* borrowed; an object or NULL */
	int64_t at_ms;         /* 0 when absent */
	int64_t expires_ms;    /* 0 when absent */
	const char *tz;

	/* unsubscribe, resubscribe, consent */
	char address[256];     /* normalised; "" when absent */
	const char *source;
	const char *reason;

	/* status: a job, or an enrollment */
	const char *job;
	const char *enrollment;

	/* enroll (user, locale, tz, vars above), event (user) */
	const char *sequence;
	char contact_email[256];   /* normalised; "" when absent */
	char contact_phone[256];   /* E.164; "" when absent */
	struct {
		int platform;      /* 0 fcm, 1 apns */
		const char *token;
	} contact_push[REQ_PUSH_TOKENS_MAX];
	size_t n_contact_push;
	const char *event_name;
};

/* Parses line[0..len) (without the trailing '\n'). Always initialises
 * *req. Returns 0 when valid; -1 when not, with err filled. Even on
 * failure req->id holds the request's id if one could be read, so the
 * caller can echo it; call request_release in both cases. */
int request_parse(const char *line, size_t len, struct request *req,
		  struct request_error *err);

void request_release(struct request *req);

#endif
