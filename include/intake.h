/* intake.h: the Unix-socket front door (framing only; ops.h decides).
 *
 * Owns the listening socket and every client connection: NDJSON framing
 * with a max_line cap (too long -> `too_large`, rest of the line dropped,
 * connection kept), one reply slot per request so that answers leave in
 * request order whatever order they are produced in, back-pressure per
 * connection (a client that does not read its answers stops being read,
 * without stalling anyone else), the connection cap (`overloaded`, then
 * close), and graceful shutdown. Loop thread only.
 */
#ifndef ROUSE_INTAKE_H
#define ROUSE_INTAKE_H

#include <stddef.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"

struct intake;
struct intake_slot;

/* Called once per complete request line (without '\n'); the handler must
 * eventually call intake_reply(slot, ...) exactly once. line is borrowed
 * for the duration of the call. */
typedef void (*intake_request_fn)(void *ud, struct intake_slot *slot,
				  const char *line, size_t len);

/* Binds cfg->socket_path (umask 0117 around bind, so the socket is born
 * 0660), replacing a stale socket file and refusing a live one. Returns 0,
 * or -1 with err filled. */
int intake_start(uv_loop_t *loop, const struct config *cfg,
		 intake_request_fn on_request, void *ud, struct intake **out,
		 char *err, size_t errlen);

/* Answers a request: answer is stolen. Safe after the client went away
 * (the answer is dropped). */
void intake_reply(struct intake_slot *slot, json_t *answer);

/* Builds and sends {"id":id,"ok":false,"error":{"code","message"}}; id is
 * borrowed (may be NULL). */
void intake_reply_error(struct intake_slot *slot, json_t *id,
			const char *code, const char *message);

/* Open connections and requests waiting for an answer. */
size_t intake_connections(const struct intake *in);
size_t intake_unanswered(const struct intake *in);

/* Stops accepting connections and removes the socket file. */
void intake_stop_listening(struct intake *in);

/* Closes every connection (after flushing what is answered) and frees the
 * intake once the loop has run the close callbacks. */
void intake_close(struct intake *in);

#endif
