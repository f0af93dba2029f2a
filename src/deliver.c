/* deliver.c: render -> build -> transport -> outcome (see deliver.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "channel.h"
#include "deliver.h"
#include "email.h"
#include "listener.h"
#include "log.h"
#include "outbox.h"
#include "pushgw.h"
#include "render.h"
#include "smsgw.h"
#include "smtp.h"
#include "timefmt.h"

struct deliver {
	const struct config *cfg;
	const struct templates *templates;
	const struct unsub_keys *unsub_keys;
	struct store *store;
	struct outbox *outbox;
	struct smtp_transport *smtp;  /* email.transport "smtp", else NULL */
	struct smsgw *smsgw;          /* sms.transport "http", else NULL */
	struct pushgw *pushgw;        /* push.transport "http", else NULL */
	deliver_finished_fn finished;
	void *ud;
	size_t in_flight;
	char from_domain[256];
};

struct pending {           /* one job between transport and commit */
	struct deliver *d;
	int channel;
	int64_t pause_until_ms;
};

#define DELIVER_SMTP_PAUSE_MS 5000

/* ------------------------------------------------------------ outcome */

static void on_committed(void *ud, int status)
{
	struct pending *p = ud;
	struct deliver *d = p->d;
	if (status != 0)
		log_msg(LOG_ERROR, "cannot record a delivery outcome; the job "
			"stays in sending until restart", NULL);
	d->in_flight--;
	d->finished(d->ud, p->channel, p->pause_until_ms);
	free(p);
}

static int64_t backoff_ms(const struct config *cfg, int attempts)
{
	double delay = (double)cfg->retry_base_ms;
	for (int i = 1; i < attempts && delay < (double)cfg->retry_max_ms; i++)
		delay *= 2;
	if (delay > (double)cfg->retry_max_ms)
		delay = (double)cfg->retry_max_ms;
	/* jitter over the upper half, never below retry.base */
	unsigned int r = 0;
	RAND_bytes((unsigned char *)&r, sizeof r);
	double jittered = delay / 2 + (delay / 2) * ((double)r / 4294967295.0);
	if (jittered < (double)cfg->retry_base_ms)
		jittered = (double)cfg->retry_base_ms;
	return (int64_t)ceil(jittered);
}

/* Commits c (kind, reason, detail and the transport's extras set by the
 * caller) as the job's outcome. A retry goes no sooner than the backoff
 * or the provider's own not-before (c->retry_at), whichever is later. */
static void commit_outcome(struct deliver *d, const struct job *job,
			   struct completion *c, int64_t pause_until_ms)
{
	c->rowid = job->rowid;
	c->now = time_now_ms();
	if (c->kind == OUTCOME_RETRY) {
		int64_t backoff = c->now + backoff_ms(d->cfg, job->attempts);
		if (c->retry_at < backoff)
			c->retry_at = backoff;
	}
	struct pending *p = malloc(sizeof *p);
	if (!p)
		abort();
	p->d = d;
	p->channel = job->channel;
	p->pause_until_ms = pause_until_ms;
	store_complete(d->store, c, on_committed, p);
}

static void record_outcome_full(struct deliver *d, const struct job *job,
				enum outcome_kind kind, const char *reason,
				const char *detail,
				const struct sms_measure *sms,
				const char *suppress_source,
				int64_t pause_until_ms)
{
	struct completion c = { .kind = kind };
	snprintf(c.detail, sizeof c.detail, "%s", detail ? detail : "");
	snprintf(c.reason, sizeof c.reason, "%s", reason ? reason : "");
	snprintf(c.suppress_source, sizeof c.suppress_source, "%s",
		 suppress_source ? suppress_source : "");
	if (sms) {
		snprintf(c.encoding, sizeof c.encoding, "%s",
			 sms_encoding_name(sms->encoding));
		c.segments = sms->segments;
	}
	commit_outcome(d, job, &c, pause_until_ms);
}

static void record_outcome(struct deliver *d, const struct job *job,
			   enum outcome_kind kind, const char *reason,
			   const char *detail, const struct sms_measure *sms)
{
	record_outcome_full(d, job, kind, reason, detail, sms, NULL, 0);
}

/* ------------------------------------------------------------ building */

/* vars.unsubscribe_url: the job's one-click link, signed for its user,
 * address and id (a value given by the client is replaced). */
static int add_unsubscribe_url(struct deliver *d, const struct job *job,
			       json_t **vars)
{
	struct unsub_subject sub = { .channel = CH_EMAIL };
	snprintf(sub.user, sizeof sub.user, "%s", job->user);
	snprintf(sub.address, sizeof sub.address, "%s", job->recipient);
	memcpy(sub.job_id, job->id, sizeof sub.job_id);
	char *token = unsub_token_mint(d->unsub_keys, &sub);
	char *url = token ? listener_unsubscribe_url(d->cfg, token) : NULL;
	free(token);
	if (!url)
		return -1;
	if (!*vars)
		*vars = json_object();
	json_object_set_new(*vars, "unsubscribe_url", json_string(url));
	free(url);
	return 0;
}

static char *json_line(json_t *obj, size_t *len)
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

static void set_str(json_t *obj, const char *key, const char *value)
{
	json_object_set_new(obj, key, value ? json_string(value) : json_null());
}

static json_t *line_head(const struct job *job)
{
	char now[RFC3339_BUFLEN];
	rfc3339_format(time_now_ms(), now);
	json_t *o = json_object();
	set_str(o, "job", job->id);
	json_object_set_new(o, "attempt", json_integer(job->attempts));
	set_str(o, "at", now);
	return o;
}

static char *build_sms(const struct deliver *d, const struct job *job,
		       const struct rendered *r, size_t *len)
{
	json_t *o = line_head(job);
	set_str(o, "to", job->recipient);
	set_str(o, "from", d->cfg->sms_from);
	set_str(o, "text", r->sms);
	set_str(o, "encoding", sms_encoding_name(r->sms_measure.encoding));
	json_object_set_new(o, "segments",
			    json_integer(r->sms_measure.segments));
	return json_line(o, len);
}

static char *build_push(const struct job *job, const struct rendered *r,
			size_t *len)
{
	json_t *o = line_head(job);
	set_str(o, "platform", job->platform == PUSH_APNS ? "apns" : "fcm");
	set_str(o, "token", job->recipient);
	set_str(o, "title", r->push_title);
	set_str(o, "body", r->push_body);
	set_str(o, "collapse_id", job->id);
	return json_line(o, len);
}

/* The email's inputs, to be built by the transport's thread. */
static struct email_draft *draft_email(const struct deliver *d,
				       const struct job *job, json_t *vars,
				       const struct rendered *r)
{
	char message_id[JOB_ID_LEN + 300];
	snprintf(message_id, sizeof message_id, "%s@%s", job->id,
		 d->from_domain);
	json_t *name = vars ? json_object_get(vars, "name") : NULL;
	const char *url = vars ? json_string_value(json_object_get(
					 vars, "unsubscribe_url")) : NULL;
	char list_unsub[2400];
	struct email_header extra[2] = {
		{ "List-Unsubscribe", list_unsub },
		{ "List-Unsubscribe-Post", "List-Unsubscribe=One-Click" },
	};
	if (url && d->cfg->unsub.mailto)
		snprintf(list_unsub, sizeof list_unsub,
			 "<%s>, <mailto:%s?subject=unsubscribe%%20%s>", url,
			 d->cfg->unsub.mailto, strrchr(url, '/') + 1);
	else if (url)
		snprintf(list_unsub, sizeof list_unsub, "<%s>", url);
	struct email_input in = {
		.from = d->cfg->email_from,
		.to_addr = job->recipient,
		.to_name = json_is_string(name) ? json_string_value(name) : NULL,
		.subject = r->subject,
		.text = r->text,
		.html = r->html,
		.message_id = message_id,
		.date_ms = time_now_ms(),
		.extra = url ? extra : NULL,
		.n_extra = url ? 2 : 0,
	};
	return email_draft_new(&in);
}

/* ------------------------------------------------------------ transport */

/* A job between its hand-off to a transport and the transport's answer. */
struct flight {
	struct deliver *d;
	struct job *job;
	struct sms_measure sms;
};

static void on_outbox_done(void *ctx, struct outbox_item *it)
{
	struct deliver *d = ctx;
	struct flight *f = it->ud;
	const struct sms_measure *sms =
		f->job->channel == CH_SMS ? &f->sms : NULL;
	enum outcome_kind kind = it->status == 0 ? OUTCOME_SENT
				 : it->permanent ? OUTCOME_FAILED
						 : OUTCOME_RETRY;
	record_outcome(d, f->job, kind, it->permanent ? "build_failed" : NULL,
		       it->detail, sms);
	job_free(f->job);
	free(f);
	outbox_item_free(it);
}

static void on_smtp_done(void *ctx, struct smtp_item *it)
{
	struct deliver *d = ctx;
	struct flight *f = it->ud;
	int64_t pause = it->pause ? time_now_ms() + DELIVER_SMTP_PAUSE_MS : 0;
	switch (it->verdict) {
	case SMTP_SENT:
		record_outcome_full(d, f->job, OUTCOME_SENT, NULL, it->detail,
				    NULL, NULL, pause);
		break;
	case SMTP_RETRY:
		record_outcome_full(d, f->job, OUTCOME_RETRY, NULL, it->detail,
				    NULL, NULL, pause);
		break;
	case SMTP_FAILED:
		record_outcome_full(d, f->job, OUTCOME_FAILED, it->reason,
				    it->detail, NULL, NULL, pause);
		break;
	case SMTP_BOUNCED:
		record_outcome_full(d, f->job, OUTCOME_FAILED, it->reason,
				    it->detail, NULL, it->source, pause);
		break;
	}
	job_free(f->job);
	free(f);
	smtp_item_free(it);
}

static void on_gateway_done(void *ud, const struct gw_outcome *o)
{
	struct flight *f = ud;
	struct deliver *d = f->d;
	struct completion c = {
		.kind = o->verdict == GW_SENT    ? OUTCOME_SENT
			: o->verdict == GW_RETRY ? OUTCOME_RETRY
						 : OUTCOME_FAILED,
		.retry_at = o->not_before_ms,
		.token_dead = o->token_dead,
	};
	snprintf(c.detail, sizeof c.detail, "%s", o->detail);
	snprintf(c.reason, sizeof c.reason, "%s", o->reason);
	snprintf(c.suppress_source, sizeof c.suppress_source, "%s",
		 o->suppress_source);
	snprintf(c.provider_ref, sizeof c.provider_ref, "%s", o->provider_ref);
	if (f->job->channel == CH_SMS) {
		snprintf(c.encoding, sizeof c.encoding, "%s",
			 sms_encoding_name(f->sms.encoding));
		c.segments = f->sms.segments;
	}
	commit_outcome(d, f->job, &c, o->pause_until_ms);
	job_free(f->job);
	free(f);
}

/* SMS and push to their HTTP gateways: the rendered parts go as they are
 * (the gateway builds the request). Takes f. */
static void hand_to_gateway(struct deliver *d, struct flight *f,
			    const struct rendered *r)
{
	const struct job *job = f->job;
	if (job->channel == CH_SMS) {
		smsgw_send(d->smsgw, job->id, job->recipient, r->sms,
			   on_gateway_done, f);
		return;
	}
	struct push_message m = {
		.job_id = job->id,
		.platform = job->platform,
		.token = job->recipient,
		.title = r->push_title,
		.body = r->push_body,
		.template_name = job->template_name,
		.expires_ms = job->expires_ms,
	};
	pushgw_send(d->pushgw, &m, on_gateway_done, f);
}

static bool via_gateway(const struct deliver *d, int channel)
{
	return (channel == CH_SMS && d->smsgw) ||
	       (channel == CH_PUSH && d->pushgw);
}

/* Hands the built bytes (or the email draft) to the job's transport;
 * takes data, draft and f. */
static int hand_over(struct deliver *d, struct flight *f, char *data,
		     size_t len, struct email_draft *draft)
{
	const struct job *job = f->job;
	if (job->channel == CH_EMAIL && d->smtp) {
		struct smtp_item *it = calloc(1, sizeof *it);
		char *rcpt = strdup(job->recipient);
		if (!it || !rcpt) {
			free(it);
			free(rcpt);
			return -1;
		}
		memcpy(it->job_id, job->id, sizeof it->job_id);
		it->data = data;
		it->len = len;
		it->draft = draft;
		it->recipient = rcpt;
		it->ud = f;
		smtp_submit(d->smtp, it);
		return 0;
	}
	struct outbox_item *it = calloc(1, sizeof *it);
	if (!it)
		return -1;
	it->channel = job->channel;
	memcpy(it->job_id, job->id, sizeof it->job_id);
	it->attempt = job->attempts;
	it->data = data;
	it->len = len;
	it->draft = draft;
	it->ud = f;
	outbox_submit(d->outbox, it);
	return 0;
}

int deliver_job(struct deliver *d, struct job *job)
{
	char err[512] = "";
	struct rendered r = { 0 };
	json_t *vars = job->vars_json ? json_loads(job->vars_json, 0, NULL)
				      : NULL;
	const struct template_set *set =
		templates_find(d->templates, job->template_name);
	char *data = NULL;
	size_t len = 0;
	int quantity = 1;
	d->in_flight++;
	if (!set) {
		snprintf(err, sizeof err, "template %s no longer exists",
			 job->template_name);
		goto failed;
	}
	if (job->channel == CH_EMAIL && d->unsub_keys &&
	    !template_is_transactional(set) &&
	    add_unsubscribe_url(d, job, &vars) != 0) {
		snprintf(err, sizeof err, "cannot make the unsubscribe link");
		goto failed;
	}
	if (render_message(d->cfg, d->templates, set, job->channel, job->locale,
			   vars, &r, err, sizeof err) != 0)
		goto failed;
	if (job->channel == CH_SMS)
		quantity = r.sms_measure.segments;
	if (via_gateway(d, job->channel)) {
		struct flight *f = malloc(sizeof *f);
		if (!f) {
			snprintf(err, sizeof err, "out of memory");
			goto failed;
		}
		*f = (struct flight){ .d = d, .job = job, .sms = r.sms_measure };
		hand_to_gateway(d, f, &r);
		rendered_release(&r);
		json_decref(vars);
		return quantity;
	}
	struct email_draft *draft = NULL;
	if (job->channel == CH_EMAIL)
		draft = draft_email(d, job, vars, &r);
	else if (job->channel == CH_SMS)
		data = build_sms(d, job, &r, &len);
	else
		data = build_push(job, &r, &len);
	if (!data && !draft) {
		if (!*err)
			snprintf(err, sizeof err, "cannot build the message");
		goto failed;
	}
	struct flight *f = malloc(sizeof *f);
	if (f)
		*f = (struct flight){ .d = d, .job = job, .sms = r.sms_measure };
	if (!f || hand_over(d, f, data, len, draft) != 0) {
		free(f);
		free(data);
		email_draft_free(draft);
		snprintf(err, sizeof err, "out of memory");
		goto failed;
	}
	rendered_release(&r);
	json_decref(vars);
	return quantity;
failed:
	log_msg(LOG_WARN, "cannot render a job", "job", job->id, "error", err,
		NULL);
	record_outcome(d, job, OUTCOME_FAILED, "render_failed", err, NULL);
	rendered_release(&r);
	json_decref(vars);
	job_free(job);
	return quantity;
}

void deliver_hold(struct deliver *d)
{
	outbox_hold(d->outbox);
	if (d->smtp)
		smtp_hold(d->smtp);
}

void deliver_release(struct deliver *d)
{
	outbox_release(d->outbox);
	if (d->smtp)
		smtp_release(d->smtp);
}

bool deliver_already_done(void *deliver, const struct job *job)
{
	struct deliver *d = deliver;
	if ((job->channel == CH_EMAIL && d->smtp) ||
	    via_gateway(d, job->channel))
		return false; /* only the receiving server knows */
	return outbox_holds(d->outbox, job);
}

int deliver_capacity(const struct deliver *d, int channel)
{
	if (channel == CH_EMAIL && d->smtp)
		return smtp_capacity(d->cfg);
	if (channel == CH_SMS && d->smsgw)
		return smsgw_capacity(d->smsgw);
	if (channel == CH_PUSH && d->pushgw)
		return pushgw_capacity(d->pushgw);
	return outbox_capacity(channel);
}

size_t deliver_in_flight(const struct deliver *d)
{
	return d->in_flight;
}

int deliver_open(uv_loop_t *loop, const struct config *cfg,
		 const struct templates *templates,
		 const struct unsub_keys *keys, struct store *store,
		 deliver_finished_fn finished, void *ud, struct deliver **out,
		 char *err, size_t errlen)
{
	struct deliver *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->cfg = cfg;
	d->templates = templates;
	d->unsub_keys = keys;
	d->store = store;
	d->finished = finished;
	d->ud = ud;
	email_from_domain(cfg->email_from, d->from_domain,
			  sizeof d->from_domain);
	if (outbox_open(loop, cfg, on_outbox_done, d, &d->outbox, err,
			errlen) != 0) {
		free(d);
		return -1;
	}
	if ((cfg->email_transport == EMAIL_TRANSPORT_SMTP &&
	     smtp_open(loop, cfg, on_smtp_done, d, &d->smtp, err, errlen) != 0) ||
	    (cfg->sms_transport == TRANSPORT_HTTP &&
	     smsgw_open(loop, cfg, &d->smsgw, err, errlen) != 0) ||
	    (cfg->push_transport == TRANSPORT_HTTP &&
	     pushgw_open(loop, cfg, &d->pushgw, err, errlen) != 0)) {
		deliver_free(d);
		return -1;
	}
	*out = d;
	return 0;
}

/* Ends the HTTP gateways: what they still hold reports now (not sent, or
 * ambiguous), while the store still takes outcomes. */
static void close_gateways(struct deliver *d)
{
	if (d->smsgw) {
		smsgw_close(d->smsgw);
		d->smsgw = NULL;
	}
	if (d->pushgw) {
		pushgw_close(d->pushgw);
		d->pushgw = NULL;
	}
}

void deliver_abort(struct deliver *d)
{
	if (d && d->smtp)
		smtp_abort(d->smtp);
	if (d)
		close_gateways(d);
}

void deliver_close(struct deliver *d)
{
	if (d)
		close_gateways(d);
	if (d && d->smtp) {
		smtp_close(d->smtp);
		d->smtp = NULL;
	}
	if (d && d->outbox) {
		outbox_close(d->outbox);
		d->outbox = NULL;
	}
}

void deliver_free(struct deliver *d)
{
	deliver_close(d);
	free(d);
}
