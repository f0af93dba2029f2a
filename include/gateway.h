/* gateway.h: what an HTTP transport (the SMS gateway, FCM, APNs) reports
 * about one message, for deliver to turn into the job's outcome. */
#ifndef ROUSE_GATEWAY_H
#define ROUSE_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

enum gw_verdict {
	GW_SENT,        /* a 2xx answer */
	GW_RETRY,       /* temporary: 429/5xx, not sent at all, or an
	                   ambiguous push (at-least-once, same apns-id) */
	GW_FAILED,      /* permanent */
};

struct gw_outcome {
	enum gw_verdict verdict;
	int64_t not_before_ms;   /* GW_RETRY: the provider's Retry-After as an
	                            instant (0: the usual backoff) */
	int64_t pause_until_ms;  /* provider back-pressure: nothing more goes
	                            to this channel before then (0: none) */
	bool token_dead;         /* GW_FAILED: the device token is gone */
	char reason[32];         /* GW_FAILED: the job's reason */
	char suppress_source[32]; /* GW_FAILED: the recipient opts out of the
	                            channel with this source (Twilio 21610) */
	char provider_ref[128];  /* GW_SENT: the provider's message id */
	char detail[512];        /* status, provider code and words */
};

/* Called on the loop, once per message handed to a gateway. */
typedef void (*gw_done_fn)(void *ud, const struct gw_outcome *o);

#endif
