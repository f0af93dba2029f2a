/* smsgw.h: the SMS gateway transport (sms.transport "http").
 *
 * Posts each message to the configured gateway over the HTTP engine
 * (http.h): Twilio's Messages API (form-encoded To/From/Body, HTTP Basic
 * account_sid:auth_token) or a generic JSON gateway ({"to","from","text",
 * "ref"}). Turns every answer into a gateway outcome (gateway.h) by
 * delivery-rules §3: 2xx sent (the provider's id kept), Twilio 21610 the
 * recipient opted out, 429/503 retry after Retry-After with the transport
 * paused, other 5xx retry, a timeout or a connection lost after the
 * request went out follows sms.on_ambiguous. Loop thread only.
 */
#ifndef ROUSE_SMSGW_H
#define ROUSE_SMSGW_H

#include <uv.h>

#include "config.h"
#include "gateway.h"

struct smsgw;

int smsgw_open(uv_loop_t *loop, const struct config *cfg, struct smsgw **out,
	       char *err, size_t errlen);

/* Sends one message; done is called exactly once, on the loop. */
void smsgw_send(struct smsgw *g, const char *job_id, const char *to,
		const char *text, gw_done_fn done, void *ud);

/* Messages worth having in flight at once (the scheduler's claim size). */
int smsgw_capacity(const struct smsgw *g);

/* Ends what is in flight (each done called: not sent, or ambiguous) and
 * frees the gateway once the loop has closed its handles. */
void smsgw_close(struct smsgw *g);

#endif
