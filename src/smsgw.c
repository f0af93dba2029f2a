/* smsgw.c: the SMS gateway transport (see smsgw.h).
 *
 * Hand-written: form_escape, the application/x-www-form-urlencoded value
 * encoding of Twilio's body (RFC 3986 unreserved bytes kept, every other
 * byte %XX, as curl_easy_escape does it). curl 7.88's curl_easy_escape
 * formats each escaped byte through its own printf; with a Chinese body
 * escaped nearly whole, that was 3.6% of the loop's time under SMS load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "smsgw.h"
#include "timefmt.h"

#define SMSGW_TWILIO_OPTED_OUT 21610

struct smsgw {
	const struct config *cfg;
	struct http_pool *pool;
	char *url;               /* where every message is posted */
	char *bearer;            /* json kind: "Authorization: Bearer …" */
};

struct sms_request {              /* outlives the gateway when closing */
	const struct config *cfg;
	gw_done_fn done;
	void *ud;
};

/* ------------------------------------------------------------ requests */

static size_t form_escape(char *out, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		    c == '~') {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	return n;
}

static char *twilio_body(const struct config *cfg, const char *to,
			 const char *text)
{
	const char *from = cfg->sms_from ? cfg->sms_from : "";
	size_t cap = 3 * (strlen(to) + strlen(from) + strlen(text)) +
		     sizeof "To=&From=&Body=";
	char *body = malloc(cap);
	if (!body)
		return NULL;
	size_t n = 0;
	memcpy(body + n, "To=", 3);
	n += 3;
	n += form_escape(body + n, to);
	memcpy(body + n, "&From=", 6);
	n += 6;
	n += form_escape(body + n, from);
	memcpy(body + n, "&Body=", 6);
	n += 6;
	n += form_escape(body + n, text);
	body[n] = '\0';
	return body;
}

static char *json_body(const struct config *cfg, const char *job_id,
		       const char *to, const char *text)
{
	json_t *o = json_object();
	json_object_set_new(o, "to", json_string(to));
	json_object_set_new(o, "from", cfg->sms_from ? json_string(cfg->sms_from)
						     : json_null());
	json_object_set_new(o, "text", json_string(text));
	json_object_set_new(o, "ref", json_string(job_id));
	char *body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return body;
}

/* ------------------------------------------------------------ answers */

/* The provider's code and words from an error body (Twilio's
 * {"code":N,"message":"…"}, or any JSON with "message"/"error"). */
static void error_words(const struct http_response *r, long *code,
			char *msg, size_t msglen)
{
	*code = 0;
	msg[0] = '\0';
	json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL)
				: NULL;
	if (!json_is_object(j)) {
		json_decref(j);
		return;
	}
	json_t *c = json_object_get(j, "code");
	if (json_is_integer(c))
		*code = (long)json_integer_value(c);
	const char *m = json_string_value(json_object_get(j, "message"));
	if (!m)
		m = json_string_value(json_object_get(j, "error"));
	if (m)
		snprintf(msg, msglen, "%s", m);
	json_decref(j);
}

static void sent_ref(const struct config *cfg, const struct http_response *r,
		     struct gw_outcome *o)
{
	json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL)
				: NULL;
	const char *key = cfg->sms_http.kind == SMS_GATEWAY_TWILIO ? "sid"
								    : "id";
	json_t *ref = json_is_object(j) ? json_object_get(j, key) : NULL;
	if (json_is_string(ref))
		snprintf(o->provider_ref, sizeof o->provider_ref, "%s",
			 json_string_value(ref));
	else if (json_is_integer(ref))
		snprintf(o->provider_ref, sizeof o->provider_ref, "%lld",
			 (long long)json_integer_value(ref));
	json_decref(j);
	if (o->provider_ref[0])
		snprintf(o->detail, sizeof o->detail, "HTTP %ld %s %s",
			 r->status, key, o->provider_ref);
	else
		snprintf(o->detail, sizeof o->detail, "HTTP %ld", r->status);
}

static void classify_answer(const struct config *cfg,
			    const struct http_response *r,
			    struct gw_outcome *o)
{
	if (r->status >= 200 && r->status < 300) {
		o->verdict = GW_SENT;
		sent_ref(cfg, r, o);
		return;
	}
	long code;
	char msg[256];
	error_words(r, &code, msg, sizeof msg);
	if (code)
		snprintf(o->detail, sizeof o->detail, "HTTP %ld code %ld%s%s",
			 r->status, code, msg[0] ? ": " : "", msg);
	else
		snprintf(o->detail, sizeof o->detail, "HTTP %ld%s%s", r->status,
			 msg[0] ? ": " : "", msg);
	if (cfg->sms_http.kind == SMS_GATEWAY_TWILIO &&
	    code == SMSGW_TWILIO_OPTED_OUT) {
		o->verdict = GW_FAILED;
		snprintf(o->reason, sizeof o->reason, "opted_out");
		snprintf(o->suppress_source, sizeof o->suppress_source,
			 "provider_twilio_21610");
		return;
	}
	if (r->status == 429 || r->status == 503) {
		o->verdict = GW_RETRY;
		if (r->retry_after_ms >= 0) {
			o->not_before_ms = time_now_ms() + r->retry_after_ms;
			o->pause_until_ms = o->not_before_ms;
		}
		return;
	}
	/* the gateway failed, or refused our credentials (a configuration
	 * the operator will fix): retried, never failed on first sight */
	if (r->status >= 500 || r->status == 401 || r->status == 403 ||
	    r->status == 408) {
		o->verdict = GW_RETRY;
		return;
	}
	o->verdict = GW_FAILED;
	snprintf(o->reason, sizeof o->reason, "rejected");
}

static void on_answer(void *ud, const struct http_response *r)
{
	struct sms_request *q = ud;
	struct gw_outcome o = { .verdict = GW_RETRY };
	switch (r->result) {
	case HTTP_ANSWERED:
		classify_answer(q->cfg, r, &o);
		break;
	case HTTP_NOT_SENT:
		snprintf(o.detail, sizeof o.detail, "not sent: %s", r->error);
		break;
	case HTTP_AMBIGUOUS:
		if (q->cfg->sms_on_ambiguous == AMBIGUOUS_FAIL) {
			o.verdict = GW_FAILED;
			snprintf(o.reason, sizeof o.reason, "ambiguous");
			snprintf(o.detail, sizeof o.detail, "outcome unknown "
				 "(sms.on_ambiguous=fail): %s", r->error);
		} else {
			snprintf(o.detail, sizeof o.detail, "outcome unknown "
				 "(sms.on_ambiguous=retry): %s", r->error);
		}
		break;
	}
	q->done(q->ud, &o);
	free(q);
}

/* ------------------------------------------------------------ API */

void smsgw_send(struct smsgw *g, const char *job_id, const char *to,
		const char *text, gw_done_fn done, void *ud)
{
	const struct sms_http_conf *hc = &g->cfg->sms_http;
	bool twilio = hc->kind == SMS_GATEWAY_TWILIO;
	struct sms_request *q = malloc(sizeof *q);
	char *body = twilio ? twilio_body(g->cfg, to, text)
			    : json_body(g->cfg, job_id, to, text);
	const char *twilio_headers[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL
	};
	const char *json_headers[] = {
		"Content-Type: application/json", "Accept: application/json",
		g->bearer, NULL
	};
	struct http_request req = {
		.method = "POST",
		.url = g->url,
		.headers = twilio ? twilio_headers : json_headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.basic_user = twilio ? hc->account_sid : NULL,
		.basic_password = twilio ? hc->auth_token : NULL,
	};
	if (!q || !body) {
		struct gw_outcome o = { .verdict = GW_RETRY };
		snprintf(o.detail, sizeof o.detail, "out of memory");
		free(q);
		free(body);
		done(ud, &o);
		return;
	}
	*q = (struct sms_request){ .cfg = g->cfg, .done = done, .ud = ud };
	if (http_submit(g->pool, &req, on_answer, q) != 0) {
		struct gw_outcome o = { .verdict = GW_RETRY };
		snprintf(o.detail, sizeof o.detail, "out of memory");
		free(q);
		done(ud, &o);
	}
	free(body);
}

int smsgw_capacity(const struct smsgw *g)
{
	return 8 * g->cfg->sms_http.http.connections;
}

int smsgw_open(uv_loop_t *loop, const struct config *cfg, struct smsgw **out,
	       char *err, size_t errlen)
{
	const struct sms_http_conf *hc = &cfg->sms_http;
	struct smsgw *g = calloc(1, sizeof *g);
	if (!g)
		goto oom;
	g->cfg = cfg;
	size_t n = strlen(hc->http.url) + 64 +
		   (hc->account_sid ? strlen(hc->account_sid) : 0);
	g->url = malloc(n);
	if (!g->url)
		goto oom;
	if (hc->kind == SMS_GATEWAY_TWILIO)
		snprintf(g->url, n, "%s/2010-04-01/Accounts/%s/Messages.json",
			 hc->http.url, hc->account_sid);
	else
		snprintf(g->url, n, "%s", hc->http.url);
	if (hc->kind == SMS_GATEWAY_JSON && hc->auth_token) {
		n = strlen(hc->auth_token) + 32;
		g->bearer = malloc(n);
		if (!g->bearer)
			goto oom;
		snprintf(g->bearer, n, "Authorization: Bearer %s",
			 hc->auth_token);
	}
	struct http_pool_options po = {
		.name = "sms",
		.connections = hc->http.connections,
		.max_in_flight = hc->http.connections,
		.ca_file = hc->http.ca_file,
		.timeout_ms = hc->http.timeout_ms,
		.http2 = true,
	};
	if (http_pool_open(loop, &po, &g->pool, err, errlen) != 0) {
		smsgw_close(g);
		return -1;
	}
	*out = g;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	smsgw_close(g);
	return -1;
}

void smsgw_close(struct smsgw *g)
{
	if (!g)
		return;
	if (g->pool)
		http_pool_close(g->pool);
	free(g->url);
	if (g->bearer) {
		explicit_bzero(g->bearer, strlen(g->bearer));
		free(g->bearer);
	}
	free(g);
}
