/* listener.h: the HTTP listener (config.md "The HTTP listener").
 *
 * One libmicrohttpd daemon, bound only to unsubscribe.listen, serving under
 * the path part of unsubscribe.public_url:
 *   GET  {prefix}/u/{token}     confirmation page, changes nothing
 *   POST {prefix}/u/{token}     RFC 8058 one-click opt-out
 *   POST {prefix}/sms/inbound   the SMS provider's inbound webhook
 *                               (STOP / START replies)
 *   GET  /healthz, {prefix}/healthz
 * The daemon runs its own polling thread, which never touches daemon
 * state: a request that changes consent becomes a struct listener_call,
 * handed to the loop thread through listener_change_fn, and the HTTP
 * answer waits (the connection suspended) until the loop reports with
 * listener_call_done that the change is durable.
 *
 * Tokens and request bodies are never logged.
 */
#ifndef ROUSE_LISTENER_H
#define ROUSE_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "unsubtoken.h"

#define LISTENER_BODY_MAX 8192   /* request body cap; more -> 413 */

struct listener;
struct listener_call;    /* one request waiting for the loop */

/* A consent change asked for by an HTTP request. Every pointer is borrowed
 * for the duration of the callback; user or address is NULL when the
 * request does not name one. */
struct listener_change {
	bool resubscribe;        /* false: opt out */
	int channel;             /* enum channel, or CH_ALL */
	const char *user;
	const char *address;
	const char *source;      /* "one_click" | "sms_reply" */
	const char *reason;      /* "one-click unsubscribe", "STOP", ... */
};

/* Runs on the loop thread. The callee must call listener_call_done(call)
 * exactly once, now or later, even after listener_close. */
typedef void (*listener_change_fn)(void *ctx, struct listener_call *call,
				   const struct listener_change *c);

/* Loop thread. status 0: the change is committed and the client gets 200;
 * anything else: 503. Releases call (which must not be used afterwards).
 * After listener_close the client has already had its 503 and this only
 * frees the call. */
void listener_call_done(struct listener_call *call, int status);

/* Binds cfg->unsub.listen_host:listen_port (numeric IPv4 or IPv6; port 0
 * picks a free port, see listener_port) and starts the daemon's thread.
 * Borrows loop, cfg and keys until listener_close; fn runs on the loop
 * thread. Accepting starts false (healthz answers 503). Returns 0 and *out,
 * or -1 with *out NULL and err naming unsubscribe.listen and the address
 * (when the failure comes after the async handle was made, its memory is
 * released once the loop runs). */
int listener_open(uv_loop_t *loop, const struct config *cfg,
		  const struct unsub_keys *keys, listener_change_fn fn,
		  void *ctx, struct listener **out, char *err, size_t errlen);

/* The port actually bound. */
int listener_port(const struct listener *l);

/* Any thread. What /healthz reports (200 "ok" when true, 503 otherwise). */
void listener_set_accepting(struct listener *l, bool accepting);

/* Loop thread. Answers every request still waiting 503 (calls the callback
 * already has stay valid until their listener_call_done), blocks up to 2 s
 * while those answers go out, stops the daemon and joins its thread, then
 * closes the async handle; l is freed in the close callback, so the loop
 * must run afterwards. NULL is ignored. */
void listener_close(struct listener *l);

/* public_url + "/u/" + token, malloc'd (NULL when out of memory). */
char *listener_unsubscribe_url(const struct config *cfg, const char *token);

#endif
