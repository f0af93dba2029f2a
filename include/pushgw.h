/* pushgw.h: the mobile push transport (push.transport "http").
 *
 * FCM HTTP v1 (POST {url}/v1/projects/{id}/messages:send with an OAuth2
 * access token from the service account's jwt-bearer grant, cached until
 * near expiry, fetched once for every message waiting on it and refreshed
 * once on 401) and APNs over HTTP/2 (POST {url}/3/device/<token> with an
 * ES256 provider token reused for 40 minutes and re-minted once on
 * 403 ExpiredProviderToken). Both run on the HTTP engine (http.h) and
 * report gateway outcomes (gateway.h) by delivery-rules §4: UNREGISTERED /
 * SENDER_ID_MISMATCH / 410 mark the device token dead, 429 and 5xx retry
 * (Retry-After honoured, at least a minute on FCM quota), payloads over
 * 4,096 bytes are refused before any request. Loop thread only.
 */
#ifndef ROUSE_PUSHGW_H
#define ROUSE_PUSHGW_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "gateway.h"

struct pushgw;

struct push_message {
	const char *job_id;      /* also the apns-id and the collapse key */
	int platform;            /* enum push_platform */
	const char *token;       /* the device token */
	const char *title, *body;
	const char *template_name; /* named when the payload is refused */
	int64_t expires_ms;      /* 0: none */
};

/* Loads the FCM service account and the APNs key (blocking; before the
 * loop runs). */
int pushgw_open(uv_loop_t *loop, const struct config *cfg,
		struct pushgw **out, char *err, size_t errlen);

/* Loads and drops the FCM service account and the APNs key: what
 * pushgw_open would refuse (roused --check). */
int pushgw_check(const struct config *cfg, char *err, size_t errlen);

/* Sends one push; done is called exactly once, on the loop. */
void pushgw_send(struct pushgw *g, const struct push_message *m,
		 gw_done_fn done, void *ud);

/* Pushes worth having in flight at once. */
int pushgw_capacity(const struct pushgw *g);

/* Ends what is in flight or waiting (each done called) and frees the
 * transport once the last answer is in. */
void pushgw_close(struct pushgw *g);

#endif
