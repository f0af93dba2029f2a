/* pushgw.c: FCM and APNs over the HTTP engine (see pushgw.h).
 *
 * A push request lives from pushgw_send to its one done call. FCM pushes
 * that find no valid access token wait in a list until the single token
 * request in flight answers. A request carries its own retry flags (one
 * re-authentication, one re-mint), and the transport is freed only when
 * the last request has answered, so answers arriving while closing are
 * still reported.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "job.h"
#include "http.h"
#include "pushauth.h"
#include "pushgw.h"
#include "timefmt.h"

#define PUSH_PAYLOAD_MAX 4096
#define PUSH_QUOTA_BACKOFF_MS (60 * 1000)
#define PUSH_H2_STREAMS 100      /* requests in flight per connection */
/* Jobs the scheduler may hand over per request slot: with exactly one,
 * every claim waited for the whole previous claim to be answered (claim,
 * send, answer, claim: nothing overlapped); with two, the next claim is
 * committed while the current one is on the wire. */
#define PUSH_QUEUED_PER_SLOT 2

struct push_req {
	struct pushgw *g;
	struct push_req *next;   /* FCM: waiting for an access token */
	gw_done_fn done;
	void *ud;
	int platform;
	char job_id[JOB_ID_LEN + 1];
	char *token;
	char *body;              /* the request body */
	int64_t expires_s;
	bool reauthed;           /* FCM: retried once after a 401 */
	bool reminted;           /* APNs: retried once with a new JWT */
	unsigned generation;     /* APNs: which JWT the request carried */
	char *bearer;            /* FCM: the access token it carried */
};

struct pushgw {
	const struct config *cfg;
	struct http_pool *fcm_pool, *apns_pool;
	/* FCM */
	struct fcm_account *fcm;
	char *fcm_send_url;
	struct fcm_token_cache fcm_token;
	bool fcm_fetching;
	struct push_req *fcm_waiting, **fcm_waiting_tail;
	/* APNs */
	struct apns_key *apns;
	struct apns_token_cache apns_token;
	unsigned apns_generation;
	char *apns_jwt_seen;     /* the JWT of apns_generation */
	/* life */
	size_t outstanding;      /* requests not yet answered + token fetch */
	bool closing;
};

static void pushgw_free(struct pushgw *g);

/* ------------------------------------------------------------ ending */

static void req_free(struct push_req *q)
{
	free(q->token);
	free(q->body);
	free(q->bearer);
	free(q);
}

static void req_finish(struct push_req *q, struct gw_outcome *o)
{
	struct pushgw *g = q->g;
	q->done(q->ud, o);
	req_free(q);
	g->outstanding--;
	if (g->closing && g->outstanding == 0)
		pushgw_free(g);
}

__attribute__((format(printf, 3, 4)))
static void req_fail(struct push_req *q, enum gw_verdict v, const char *fmt,
		     ...)
{
	struct gw_outcome o = { .verdict = v };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o.detail, sizeof o.detail, fmt, ap);
	va_end(ap);
	if (v == GW_FAILED)
		snprintf(o.reason, sizeof o.reason, "rejected");
	req_finish(q, &o);
}

/* ------------------------------------------------------------ answers */

/* The provider's words: APNs {"reason":…}, FCM {"error":{"status":…,
 * "message":…,"details":[{"errorCode":…}]}}. */
struct provider_error {
	char code[64];           /* APNs reason, FCM errorCode or status */
	char message[256];
};

static void provider_error(const struct http_response *r,
			   struct provider_error *e)
{
	memset(e, 0, sizeof *e);
	json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL)
				: NULL;
	if (!json_is_object(j))
		goto out;
	const char *reason = json_string_value(json_object_get(j, "reason"));
	if (reason) {
		snprintf(e->code, sizeof e->code, "%s", reason);
		goto out;
	}
	json_t *err = json_object_get(j, "error");
	if (!json_is_object(err))
		goto out;
	const char *status = json_string_value(json_object_get(err, "status"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	if (status)
		snprintf(e->code, sizeof e->code, "%s", status);
	if (msg)
		snprintf(e->message, sizeof e->message, "%s", msg);
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(err, "details"), i, d) {
		const char *code =
			json_string_value(json_object_get(d, "errorCode"));
		if (code)
			snprintf(e->code, sizeof e->code, "%s", code);
	}
out:
	json_decref(j);
}

/* A retry no sooner than Retry-After (and floor_ms); with pause, the
 * whole push transport waits as long. */
static void retry_later(struct gw_outcome *o, const struct http_response *r,
			int64_t floor_ms, bool pause)
{
	int64_t delay = r->retry_after_ms > floor_ms ? r->retry_after_ms
						      : floor_ms;
	o->verdict = GW_RETRY;
	if (delay > 0) {
		o->not_before_ms = time_now_ms() + delay;
		if (pause)
			o->pause_until_ms = o->not_before_ms;
	}
}

static void classify(const struct push_req *q, const struct http_response *r,
		     struct gw_outcome *o)
{
	struct provider_error e;
	provider_error(r, &e);
	snprintf(o->detail, sizeof o->detail, "%s HTTP %ld%s%s%s%s",
		 q->platform == PUSH_APNS ? "APNs" : "FCM", r->status,
		 e.code[0] ? " " : "", e.code, e.message[0] ? ": " : "",
		 e.message);
	if (r->status >= 200 && r->status < 300) {
		o->verdict = GW_SENT;
		return;
	}
	bool dead = q->platform == PUSH_APNS
			    ? r->status == 410
			    : strcmp(e.code, "UNREGISTERED") == 0 ||
				      strcmp(e.code, "SENDER_ID_MISMATCH") == 0;
	if (dead) {
		o->verdict = GW_FAILED;
		o->token_dead = true;
		snprintf(o->reason, sizeof o->reason, "dead_token");
		return;
	}
	if (r->status == 429 && q->platform == PUSH_FCM) {
		/* FCM quotas are also per device and per topic: this job
		 * waits at least a minute, the others go on */
		retry_later(o, r, PUSH_QUOTA_BACKOFF_MS, false);
		return;
	}
	if (r->status == 429 || r->status == 503) {
		retry_later(o, r, 0, true);
		return;
	}
	if (r->status >= 500 || r->status == 401 || r->status == 403) {
		o->verdict = GW_RETRY;
		return;
	}
	o->verdict = GW_FAILED;
	snprintf(o->reason, sizeof o->reason, "rejected");
}

/* ------------------------------------------------------------ FCM */

static void fcm_flush(struct pushgw *g, const char *token, const char *why);
static void fcm_submit(struct push_req *q);
static void fcm_send_with(struct push_req *q, const char *token);

static void on_fcm_token(void *ud, const struct http_response *r)
{
	struct pushgw *g = ud;
	char err[400] = "";
	char *token = NULL;
	int64_t expires_in = 0;
	g->fcm_fetching = false;
	if (r->result != HTTP_ANSWERED)
		snprintf(err, sizeof err, "FCM token request failed: %s",
			 r->error);
	else if (r->status != 200)
		snprintf(err, sizeof err, "FCM token request answered HTTP %ld",
			 r->status);
	else
		fcm_token_parse(r->body, r->body_len, &token, &expires_in, err,
				sizeof err); /* err filled on failure */
	if (token)
		fcm_token_store(&g->fcm_token, token, time_now_ms() / 1000,
				expires_in);
	/* the waiting pushes use the token just fetched, even one too
	 * short-lived for the cache to hand out again */
	fcm_flush(g, token ? g->fcm_token.access_token : NULL,
		  token ? NULL : err);
	if (--g->outstanding == 0 && g->closing)
		pushgw_free(g);
}

static void fcm_fetch_token(struct pushgw *g)
{
	if (g->fcm_fetching)
		return;
	char *assertion = fcm_assertion(g->fcm, time_now_ms() / 1000);
	char *body = assertion ? fcm_token_request_body(assertion) : NULL;
	const char *headers[] = {
		"Content-Type: application/x-www-form-urlencoded", NULL
	};
	struct http_request req = {
		.method = "POST",
		.url = fcm_account_token_uri(g->fcm),
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
	};
	if (body && http_submit(g->fcm_pool, &req, on_fcm_token, g) == 0) {
		g->fcm_fetching = true;
		g->outstanding++;
	}
	if (assertion)
		explicit_bzero(assertion, strlen(assertion));
	free(assertion);
	if (body)
		explicit_bzero(body, strlen(body));
	free(body);
	if (!g->fcm_fetching)
		fcm_flush(g, NULL, "cannot build the FCM token request");
}

/* Sends with token (or, with why set, ends as retries) every push
 * waiting for an access token. */
static void fcm_flush(struct pushgw *g, const char *token, const char *why)
{
	struct push_req *q = g->fcm_waiting;
	g->fcm_waiting = NULL;
	g->fcm_waiting_tail = &g->fcm_waiting;
	while (q) {
		struct push_req *next = q->next;
		q->next = NULL;
		if (why || !token)
			req_fail(q, GW_RETRY, "%s", why ? why : "no FCM token");
		else
			fcm_send_with(q, token);
		q = next;
	}
}

static void on_fcm_answer(void *ud, const struct http_response *r)
{
	struct push_req *q = ud;
	struct pushgw *g = q->g;
	struct gw_outcome o = { .verdict = GW_RETRY };
	if (r->result != HTTP_ANSWERED) {
		req_fail(q, GW_RETRY, "FCM %s: %s",
			 r->result == HTTP_NOT_SENT ? "not sent"
						    : "outcome unknown",
			 r->error);
		return;
	}
	if (r->status == 401 && !q->reauthed && !g->closing) {
		/* the access token expired or was revoked: fetch a new one
		 * (unless another answer already did) and send again, once */
		const char *cur = fcm_token_cached(&g->fcm_token,
						   time_now_ms() / 1000);
		if (cur && q->bearer && strcmp(cur, q->bearer) == 0)
			fcm_token_forget(&g->fcm_token);
		q->reauthed = true;
		fcm_submit(q);
		return;
	}
	classify(q, r, &o);
	if (o.verdict == GW_SENT) {
		json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
		const char *name = json_string_value(json_object_get(j, "name"));
		if (name)
			snprintf(o.provider_ref, sizeof o.provider_ref, "%s",
				 name);
		json_decref(j);
	}
	req_finish(q, &o);
}

static void fcm_submit(struct push_req *q)
{
	struct pushgw *g = q->g;
	if (g->closing) {
		req_fail(q, GW_RETRY, "shutting down before sending");
		return;
	}
	const char *token = fcm_token_cached(&g->fcm_token,
					     time_now_ms() / 1000);
	if (!token) {
		*g->fcm_waiting_tail = q;
		g->fcm_waiting_tail = &q->next;
		fcm_fetch_token(g);
		return;
	}
	fcm_send_with(q, token);
}

static void fcm_send_with(struct push_req *q, const char *token)
{
	struct pushgw *g = q->g;
	free(q->bearer);
	q->bearer = strdup(token);
	size_t n = strlen(token) + 32;
	char *auth = malloc(n);
	if (!q->bearer || !auth) {
		free(auth);
		req_fail(q, GW_RETRY, "out of memory");
		return;
	}
	snprintf(auth, n, "Authorization: Bearer %s", token);
	const char *headers[] = { "Content-Type: application/json", auth, NULL };
	struct http_request req = {
		.method = "POST",
		.url = g->fcm_send_url,
		.headers = headers,
		.body = q->body,
		.body_len = strlen(q->body),
	};
	int rc = http_submit(g->fcm_pool, &req, on_fcm_answer, q);
	explicit_bzero(auth, n);
	free(auth);
	if (rc != 0)
		req_fail(q, GW_RETRY, "out of memory");
}

static char *fcm_body(const struct push_message *m)
{
	json_t *note = json_object(), *data = json_object(), *msg = json_object();
	json_object_set_new(note, "title", json_string(m->title ? m->title : ""));
	json_object_set_new(note, "body", json_string(m->body ? m->body : ""));
	json_object_set_new(data, "job", json_string(m->job_id));
	json_object_set_new(msg, "token", json_string(m->token));
	json_object_set_new(msg, "notification", note);
	json_object_set_new(msg, "data", data);
	json_t *android = json_object();
	json_object_set_new(android, "collapse_key", json_string(m->job_id));
	if (m->expires_ms) {
		int64_t left = (m->expires_ms - time_now_ms()) / 1000;
		char ttl[32];
		snprintf(ttl, sizeof ttl, "%llds",
			 (long long)(left > 0 ? left : 0));
		json_object_set_new(android, "ttl", json_string(ttl));
	}
	json_object_set_new(msg, "android", android);
	json_t *root = json_object();
	json_object_set_new(root, "message", msg);
	char *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return body;
}

/* ------------------------------------------------------------ APNs */

static void apns_submit(struct push_req *q);

static void on_apns_answer(void *ud, const struct http_response *r)
{
	struct push_req *q = ud;
	struct pushgw *g = q->g;
	struct gw_outcome o = { .verdict = GW_RETRY };
	if (r->result != HTTP_ANSWERED) {
		req_fail(q, GW_RETRY, "APNs %s: %s",
			 r->result == HTTP_NOT_SENT ? "not sent"
						    : "outcome unknown",
			 r->error);
		return;
	}
	classify(q, r, &o);
	if (r->status == 403 && !q->reminted && !g->closing &&
	    strstr(o.detail, "ExpiredProviderToken")) {
		/* one re-mint per rejected JWT, however many requests
		 * carried it; this request is sent again once */
		if (q->generation == g->apns_generation) {
			const char *jwt = apns_token_remint(
				&g->apns_token, g->apns, time_now_ms() / 1000);
			if (jwt)
				g->apns_generation++;
		}
		q->reminted = true;
		apns_submit(q);
		return;
	}
	req_finish(q, &o);
}

/* The current provider token, minting when it is due; bumps the
 * generation when the JWT changed. */
static const char *apns_bearer(struct pushgw *g)
{
	const char *jwt = apns_token_get(&g->apns_token, g->apns,
					 time_now_ms() / 1000);
	if (jwt && (!g->apns_jwt_seen || strcmp(jwt, g->apns_jwt_seen) != 0)) {
		free(g->apns_jwt_seen);
		g->apns_jwt_seen = strdup(jwt);
		g->apns_generation++;
	}
	return jwt;
}

static void apns_submit(struct push_req *q)
{
	struct pushgw *g = q->g;
	const struct apns_conf *ac = &g->cfg->apns;
	if (g->closing) {
		req_fail(q, GW_RETRY, "shutting down before sending");
		return;
	}
	const char *jwt = apns_bearer(g);
	if (!jwt) {
		req_fail(q, GW_RETRY, "cannot mint the APNs provider token");
		return;
	}
	q->generation = g->apns_generation;
	size_t urln = strlen(ac->http.url) + strlen(q->token) + 16;
	size_t authn = strlen(jwt) + 32;
	char *url = malloc(urln), *auth = malloc(authn);
	char topic[200], expiration[48], id[64], collapse[64];
	if (!url || !auth) {
		free(url);
		free(auth);
		req_fail(q, GW_RETRY, "out of memory");
		return;
	}
	snprintf(url, urln, "%s/3/device/%s", ac->http.url, q->token);
	snprintf(auth, authn, "authorization: bearer %s", jwt);
	snprintf(topic, sizeof topic, "apns-topic: %s", ac->topic);
	snprintf(expiration, sizeof expiration, "apns-expiration: %lld",
		 (long long)q->expires_s);
	snprintf(id, sizeof id, "apns-id: %s", q->job_id);
	snprintf(collapse, sizeof collapse, "apns-collapse-id: %s", q->job_id);
	const char *headers[] = {
		"content-type: application/json", auth, topic,
		"apns-push-type: alert", "apns-priority: 10", expiration, id,
		collapse, NULL
	};
	struct http_request req = {
		.method = "POST",
		.url = url,
		.headers = headers,
		.body = q->body,
		.body_len = strlen(q->body),
	};
	int rc = http_submit(g->apns_pool, &req, on_apns_answer, q);
	explicit_bzero(auth, authn);
	free(auth);
	free(url);
	if (rc != 0)
		req_fail(q, GW_RETRY, "out of memory");
}

static char *apns_body(const struct push_message *m)
{
	json_t *alert = json_object(), *aps = json_object(), *root = json_object();
	json_object_set_new(alert, "title", json_string(m->title ? m->title : ""));
	json_object_set_new(alert, "body", json_string(m->body ? m->body : ""));
	json_object_set_new(aps, "alert", alert);
	json_object_set_new(root, "aps", aps);
	json_object_set_new(root, "job", json_string(m->job_id));
	char *body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return body;
}

/* ------------------------------------------------------------ API */

void pushgw_send(struct pushgw *g, const struct push_message *m,
		 gw_done_fn done, void *ud)
{
	bool apns = m->platform == PUSH_APNS;
	struct push_req *q = calloc(1, sizeof *q);
	if (!q) {
		struct gw_outcome o = { .verdict = GW_RETRY };
		snprintf(o.detail, sizeof o.detail, "out of memory");
		done(ud, &o);
		return;
	}
	q->g = g;
	q->done = done;
	q->ud = ud;
	q->platform = m->platform;
	snprintf(q->job_id, sizeof q->job_id, "%s", m->job_id);
	q->expires_s = m->expires_ms > 0 ? m->expires_ms / 1000 : 0;
	g->outstanding++;
	if (apns ? !g->apns : !g->fcm) {
		struct gw_outcome o = { .verdict = GW_FAILED };
		snprintf(o.reason, sizeof o.reason, "not_configured");
		snprintf(o.detail, sizeof o.detail, "push.%s is not configured",
			 apns ? "apns" : "fcm");
		req_finish(q, &o);
		return;
	}
	q->token = strdup(m->token);
	q->body = apns ? apns_body(m) : fcm_body(m);
	if (!q->token || !q->body) {
		req_fail(q, GW_RETRY, "out of memory");
		return;
	}
	/* the payload is what the provider limits: for FCM the message
	 * without the device token it is addressed to */
	size_t payload = strlen(q->body) - (apns ? 0 : strlen(m->token));
	if (payload > PUSH_PAYLOAD_MAX) {
		struct gw_outcome o = { .verdict = GW_FAILED };
		snprintf(o.reason, sizeof o.reason, "payload_too_large");
		snprintf(o.detail, sizeof o.detail, "template %s: the push "
			 "payload is %zu bytes, more than %d", m->template_name,
			 payload, PUSH_PAYLOAD_MAX);
		req_finish(q, &o);
		return;
	}
	if (apns)
		apns_submit(q);
	else
		fcm_submit(q);
}

int pushgw_capacity(const struct pushgw *g)
{
	int n = 0;
	if (g->apns)
		n += PUSH_QUEUED_PER_SLOT * g->cfg->apns.http.connections *
		     PUSH_H2_STREAMS;
	if (g->fcm)
		n += 2 * g->cfg->fcm.http.connections;
	return n;
}

static int open_pool(uv_loop_t *loop, const char *name,
		     const struct http_conf *h, bool h2_streams,
		     struct http_pool **out, char *err, size_t errlen)
{
	struct http_pool_options po = {
		.name = name,
		.connections = h->connections,
		.max_in_flight = h2_streams ? h->connections * PUSH_H2_STREAMS
					    : h->connections,
		.ca_file = h->ca_file,
		.timeout_ms = h->timeout_ms,
		.http2 = true,
	};
	return http_pool_open(loop, &po, out, err, errlen);
}

static int open_fcm(uv_loop_t *loop, struct pushgw *g, char *err,
		    size_t errlen)
{
	const struct fcm_conf *fc = &g->cfg->fcm;
	if (fcm_account_load(fc->service_account_file, &g->fcm, err,
			     errlen) != 0)
		return -1;
	const char *project = fc->project_id ? fc->project_id
					     : fcm_account_project_id(g->fcm);
	if (!project) {
		snprintf(err, errlen, "push.fcm.project_id: missing, and the "
			 "service account names none");
		return -1;
	}
	size_t n = strlen(fc->http.url) + strlen(project) + 48;
	g->fcm_send_url = malloc(n);
	if (!g->fcm_send_url) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(g->fcm_send_url, n, "%s/v1/projects/%s/messages:send",
		 fc->http.url, project);
	return open_pool(loop, "fcm", &fc->http, false, &g->fcm_pool, err,
			 errlen);
}

int pushgw_open(uv_loop_t *loop, const struct config *cfg,
		struct pushgw **out, char *err, size_t errlen)
{
	struct pushgw *g = calloc(1, sizeof *g);
	if (!g) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	g->cfg = cfg;
	g->fcm_waiting_tail = &g->fcm_waiting;
	if (cfg->fcm.set && open_fcm(loop, g, err, errlen) != 0)
		goto fail;
	if (cfg->apns.set &&
	    (apns_key_load(cfg->apns.key_file, cfg->apns.key_id,
			   cfg->apns.team_id, &g->apns, err, errlen) != 0 ||
	     open_pool(loop, "apns", &cfg->apns.http, true, &g->apns_pool, err,
		       errlen) != 0))
		goto fail;
	*out = g;
	return 0;
fail:
	g->closing = true;
	pushgw_close(g);
	return -1;
}

int pushgw_check(const struct config *cfg, char *err, size_t errlen)
{
	struct fcm_account *fcm = NULL;
	struct apns_key *apns = NULL;
	int rc = 0;
	if (cfg->fcm.set)
		rc = fcm_account_load(cfg->fcm.service_account_file, &fcm, err,
				      errlen);
	if (rc == 0 && cfg->apns.set)
		rc = apns_key_load(cfg->apns.key_file, cfg->apns.key_id,
				   cfg->apns.team_id, &apns, err, errlen);
	fcm_account_free(fcm);
	apns_key_free(apns);
	return rc;
}

static void pushgw_free(struct pushgw *g)
{
	fcm_account_free(g->fcm);
	fcm_token_cache_clear(&g->fcm_token);
	apns_key_free(g->apns);
	apns_token_cache_clear(&g->apns_token);
	free(g->apns_jwt_seen);
	free(g->fcm_send_url);
	free(g);
}

void pushgw_close(struct pushgw *g)
{
	if (!g)
		return;
	g->closing = true;
	g->outstanding++; /* hold the struct while the pools answer */
	fcm_flush(g, NULL, "shutting down before sending");
	if (g->fcm_pool)
		http_pool_close(g->fcm_pool);
	if (g->apns_pool)
		http_pool_close(g->apns_pool);
	g->fcm_pool = g->apns_pool = NULL;
	if (--g->outstanding == 0)
		pushgw_free(g);
}
