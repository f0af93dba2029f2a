/* ops.c: the request ops (see ops.h). Every state-changing op answers
 * from the store's commit callback, never before. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "job.h"
#include "ops.h"
#include "render.h"
#include "request.h"
#include "sequence.h"
#include "timefmt.h"
#include "tzdb.h"


struct ops {
	struct ops_deps d;
	bool shutting_down;
	size_t waiting;
};

/* An answer awaited from the store. */
struct waiter {
	struct ops *ops;
	struct intake_slot *slot;
	json_t *id;           /* owned reference */
	int op;
	bool enrollment;      /* status of an enrollment */
};

static json_t *answer_ok(json_t *id)
{
	json_t *a = json_object();
	json_object_set(a, "id", id ? id : json_null());
	json_object_set_new(a, "ok", json_true());
	return a;
}

static struct waiter *waiter_new(struct ops *o, struct intake_slot *slot,
				 const struct request *req)
{
	struct waiter *w = malloc(sizeof *w);
	if (!w)
		return NULL;
	w->ops = o;
	w->slot = slot;
	w->id = req->id ? json_incref(req->id) : NULL;
	w->op = req->op;
	w->enrollment = req->op == OP_STATUS && req->enrollment;
	o->waiting++;
	return w;
}

static void waiter_free(struct waiter *w)
{
	w->ops->waiting--;
	json_decref(w->id);
	free(w);
}

static void reply_internal(struct waiter *w, const char *what)
{
	char msg[160];
	snprintf(msg, sizeof msg, "%s failed in the store; nothing was "
		 "changed (see the daemon log)", what);
	intake_reply_error(w->slot, w->id, "internal", msg);
}

/* ------------------------------------------------------------ send */

/* Whether a zone exists in the system tz database (tzdb caches what it
 * read, so a zone's file is read once per process). */
static bool tz_exists(const char *tz)
{
	return tzdb_get(tz) != NULL;
}

static void on_send_committed(void *ud, const struct store_send_result *r)
{
	struct waiter *w = ud;
	if (r->status != 0) {
		reply_internal(w, "send");
		waiter_free(w);
		return;
	}
	json_t *a = answer_ok(w->id);
	json_object_set_new(a, "job", json_string(r->id));
	json_object_set_new(a, "state", json_string(job_state_name(r->state)));
	if (r->reason)
		json_object_set_new(a, "reason", json_string(r->reason));
	if (r->duplicate)
		json_object_set_new(a, "duplicate", json_true());
	intake_reply(w->slot, a);
	if (!r->duplicate && r->state == JS_QUEUED)
		scheduler_poke(w->ops->d.scheduler);
	waiter_free(w);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static struct job *job_from_request(const struct request *req, int64_t now)
{
	struct job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	job_new_id(job->id);
	job->key = dup_or_null(req->key);
	job->user = strdup(req->user);
	job->channel = req->channel;
	job->recipient = strdup(req->channel == CH_PUSH ? req->push_token
							: req->to);
	job->platform = req->push_platform;
	job->template_name = strdup(req->template_name);
	job->locale = dup_or_null(req->locale);
	job->vars_json = req->vars ? json_dumps(req->vars, JSON_COMPACT) : NULL;
	job->tz = dup_or_null(req->tz);
	job->at_ms = req->at_ms;
	job->expires_ms = req->expires_ms;
	job->created_ms = now;
	if (!job->user || !job->recipient || !job->template_name ||
	    (req->vars && !job->vars_json)) {
		job_free(job);
		return NULL;
	}
	return job;
}

/* Checks what the parser cannot know; answers and returns false when
 * the request must not go on. */
static bool check_template(struct ops *o, struct intake_slot *slot,
			   const struct request *req,
			   const struct template_set **set)
{
	char msg[256];
	*set = templates_find(o->d.templates, req->template_name);
	if (!*set) {
		snprintf(msg, sizeof msg, "template: no template named \"%s\"",
			 req->template_name);
		intake_reply_error(slot, req->id, "unknown_template", msg);
		return false;
	}
	if (!template_has_channel(*set, req->channel)) {
		snprintf(msg, sizeof msg, "template: %s has no %s parts",
			 req->template_name, channel_name(req->channel));
		intake_reply_error(slot, req->id, "unknown_template", msg);
		return false;
	}
	return true;
}

/* With push over HTTP, a push must name a configured provider (the
 * file outbox takes both). */
static bool push_platform_served(const struct config *cfg,
				 const struct request *req)
{
	if (req->channel != CH_PUSH || cfg->push_transport != TRANSPORT_HTTP)
		return true;
	return req->push_platform == PUSH_APNS ? cfg->apns.set : cfg->fcm.set;
}

static void op_send(struct ops *o, struct intake_slot *slot,
		    const struct request *req)
{
	const struct template_set *set;
	if (!check_template(o, slot, req, &set))
		return;
	if (req->tz && !tz_exists(req->tz)) {
		intake_reply_error(slot, req->id, "bad_request",
				   "tz: unknown time zone");
		return;
	}
	if (!push_platform_served(o->d.cfg, req)) {
		intake_reply_error(slot, req->id, "bad_request",
				   req->push_platform == PUSH_APNS
					   ? "to: push.apns is not configured"
					   : "to: push.fcm is not configured");
		return;
	}
	int64_t now = time_now_ms();
	struct job *job = job_from_request(req, now);
	struct waiter *w = job ? waiter_new(o, slot, req) : NULL;
	if (!w) {
		job_free(job);
		intake_reply_error(slot, req->id, "internal", "out of memory");
		return;
	}
	if (store_send(o->d.store, job, now, on_send_committed, w) != 0) {
		intake_reply_error(slot, req->id, "overloaded",
				   "too many requests waiting for the store; "
				   "retry later");
		waiter_free(w);
	}
}

/* ------------------------------------------------------------ opt-outs */

static void on_optout_committed(void *ud, int status, int cancelled)
{
	struct waiter *w = ud;
	if (status != 0) {
		reply_internal(w, w->op == OP_RESUBSCRIBE ? "resubscribe"
							  : "unsubscribe");
	} else {
		json_t *a = answer_ok(w->id);
		if (w->op == OP_UNSUBSCRIBE)
			json_object_set_new(a, "cancelled",
					    json_integer(cancelled));
		intake_reply(w->slot, a);
	}
	waiter_free(w);
}

static void op_optout(struct ops *o, struct intake_slot *slot,
		      const struct request *req)
{
	struct optout_change c = {
		.resubscribe = req->op == OP_RESUBSCRIBE,
		.user = req->user,
		.address = req->address[0] ? req->address : NULL,
		.channel = req->channel,
		.source = req->source ? req->source : "api",
		.reason = req->reason,
		.now = time_now_ms(),
	};
	struct waiter *w = waiter_new(o, slot, req);
	if (!w) {
		intake_reply_error(slot, req->id, "internal", "out of memory");
		return;
	}
	if (store_optout(o->d.store, &c, on_optout_committed, w) != 0) {
		intake_reply_error(slot, req->id, "overloaded",
				   "too many requests waiting for the store; "
				   "retry later");
		waiter_free(w);
	}
}

/* ------------------------------------------------------------ sequences */

static void on_enroll_committed(void *ud, const struct store_enroll_result *r)
{
	struct waiter *w = ud;
	if (r->status != 0) {
		reply_internal(w, "enroll");
		waiter_free(w);
		return;
	}
	json_t *a = answer_ok(w->id);
	json_object_set_new(a, "enrollment", json_string(r->id));
	if (r->duplicate)
		json_object_set_new(a, "duplicate", json_true());
	intake_reply(w->slot, a);
	if (r->queued_now)
		scheduler_poke(w->ops->d.scheduler);
	waiter_free(w);
}

static void op_enroll(struct ops *o, struct intake_slot *slot,
		      const struct request *req)
{
	char msg[256];
	const struct sequence *seq = sequence_find(o->d.cfg, req->sequence);
	if (!seq) {
		snprintf(msg, sizeof msg, "sequence: no sequence named \"%.100s\"",
			 req->sequence);
		intake_reply_error(slot, req->id, "unknown_sequence", msg);
		return;
	}
	if (req->tz && !tz_exists(req->tz)) {
		intake_reply_error(slot, req->id, "bad_request",
				   "tz: unknown time zone");
		return;
	}
	int64_t now = time_now_ms();
	struct enrollment *e = sequence_enroll(o->d.cfg, seq, req, now);
	struct waiter *w = e ? waiter_new(o, slot, req) : NULL;
	if (!w) {
		enrollment_free(e);
		intake_reply_error(slot, req->id, "internal", "out of memory");
		return;
	}
	if (store_enroll(o->d.store, e, now, on_enroll_committed, w) != 0) {
		intake_reply_error(slot, req->id, "overloaded",
				   "too many requests waiting for the store; "
				   "retry later");
		waiter_free(w);
	}
}

static void on_event_committed(void *ud, int status, int exited)
{
	struct waiter *w = ud;
	if (status != 0) {
		reply_internal(w, "event");
		waiter_free(w);
		return;
	}
	json_t *a = answer_ok(w->id);
	json_object_set_new(a, "exited", json_integer(exited));
	intake_reply(w->slot, a);
	waiter_free(w);
}

static void op_event(struct ops *o, struct intake_slot *slot,
		     const struct request *req)
{
	size_t n = 0;
	const char **names = sequences_exiting_on(o->d.cfg, req->event_name,
						  &n);
	struct waiter *w = waiter_new(o, slot, req);
	if (!w) {
		free(names);
		intake_reply_error(slot, req->id, "internal", "out of memory");
		return;
	}
	/* even an event no sequence exits on goes through the store, so
	 * that its answer follows every earlier request's commit */
	if (store_event(o->d.store, req->user, req->event_name, names, n,
			time_now_ms(), on_event_committed, w) != 0) {
		intake_reply_error(slot, req->id, "overloaded",
				   "too many requests waiting for the store; "
				   "retry later");
		waiter_free(w);
	}
	free(names);
}

/* ------------------------------------------------------------ reads */

static void on_read_done(void *ud, int status, json_t *result)
{
	struct waiter *w = ud;
	if (status != 0) {
		json_decref(result);
		reply_internal(w, "read");
		waiter_free(w);
		return;
	}
	json_t *a = answer_ok(w->id);
	if (w->op == OP_STATUS) {
		if (!result) {
			json_decref(a);
			intake_reply_error(w->slot, w->id, "bad_request",
					   w->enrollment
						   ? "enrollment: no such "
						     "enrollment"
						   : "job: no such job");
			waiter_free(w);
			return;
		}
		json_object_set_new(a, w->enrollment ? "enrollment" : "job",
				    result);
	} else {
		if (w->op == OP_STATS) {
			int64_t up = (time_now_ms() - w->ops->d.started_ms) /
				     1000;
			json_object_set_new(result, "uptime_s",
					    json_integer(up));
			json_object_set_new(
				result, "store_pending",
				json_integer((json_int_t)store_pending(
					w->ops->d.store)));
			json_object_set_new(
				result, "store_commits",
				json_integer((json_int_t)store_commits(
					w->ops->d.store)));
		}
		json_object_update(a, result);
		json_decref(result);
	}
	intake_reply(w->slot, a);
	waiter_free(w);
}

static void op_read(struct ops *o, struct intake_slot *slot,
		    const struct request *req)
{
	struct waiter *w = waiter_new(o, slot, req);
	if (!w) {
		intake_reply_error(slot, req->id, "internal", "out of memory");
		return;
	}
	if (req->op == OP_STATUS && req->enrollment)
		store_enrollment(o->d.store, req->enrollment, on_read_done, w);
	else if (req->op == OP_STATUS)
		store_status(o->d.store, req->job, on_read_done, w);
	else if (req->op == OP_STATS)
		store_stats(o->d.store, on_read_done, w);
	else
		store_consent(o->d.store, req->user,
			      req->address[0] ? req->address : NULL,
			      on_read_done, w);
}

/* ------------------------------------------------------------ preview */

static void op_preview(struct ops *o, struct intake_slot *slot,
		       const struct request *req)
{
	const struct template_set *set;
	if (!check_template(o, slot, req, &set))
		return;
	struct rendered r = { 0 };
	char err[512];
	json_t *vars = req->vars ? json_deep_copy(req->vars) : json_object();
	if (req->channel == CH_EMAIL && o->d.cfg->unsub.set &&
	    !template_is_transactional(set)) {
		/* what a recipient's link looks like; a real one carries a
		 * token signed for that recipient and job */
		char url[1200];
		snprintf(url, sizeof url, "%s/u/{token}",
			 o->d.cfg->unsub.public_url);
		json_object_set_new(vars, "unsubscribe_url", json_string(url));
	}
	int rc = render_message(o->d.cfg, o->d.templates, set, req->channel,
				req->locale, vars, &r, err, sizeof err);
	json_decref(vars);
	if (rc != 0) {
		intake_reply_error(slot, req->id, "bad_request", err);
		rendered_release(&r);
		return;
	}
	json_t *a = answer_ok(req->id);
	json_object_set_new(a, "parts", rendered_parts_json(&r, req->channel));
	if (req->channel == CH_SMS) {
		json_object_set_new(
			a, "encoding",
			json_string(sms_encoding_name(r.sms_measure.encoding)));
		json_object_set_new(a, "segments",
				    json_integer(r.sms_measure.segments));
	}
	rendered_release(&r);
	intake_reply(slot, a);
}

/* ------------------------------------------------------------ dispatch */

void ops_handle(void *ops, struct intake_slot *slot, const char *line,
		size_t len)
{
	struct ops *o = ops;
	struct request req;
	struct request_error err = { 0 };
	int rc = request_parse(line, len, &req, &err);
	if (o->shutting_down) {
		intake_reply_error(slot, req.id, "shutting_down",
				   "the daemon is shutting down; retry later");
		request_release(&req);
		return;
	}
	if (rc != 0) {
		intake_reply_error(slot, req.id, err.code, err.message);
		request_release(&req);
		return;
	}
	switch (req.op) {
	case OP_PING: {
		json_t *a = answer_ok(req.id);
		json_object_set_new(a, "version", json_string(ROUSE_VERSION));
		intake_reply(slot, a);
		break;
	}
	case OP_SEND:
		op_send(o, slot, &req);
		break;
	case OP_UNSUBSCRIBE:
	case OP_RESUBSCRIBE:
		op_optout(o, slot, &req);
		break;
	case OP_STATUS:
	case OP_STATS:
	case OP_CONSENT:
		op_read(o, slot, &req);
		break;
	case OP_PREVIEW:
		op_preview(o, slot, &req);
		break;
	case OP_ENROLL:
		op_enroll(o, slot, &req);
		break;
	case OP_EVENT:
		op_event(o, slot, &req);
		break;
	}
	request_release(&req);
}

int ops_new(const struct ops_deps *deps, struct ops **out)
{
	struct ops *o = calloc(1, sizeof *o);
	if (!o)
		return -1;
	o->d = *deps;
	*out = o;
	return 0;
}

void ops_shutdown(struct ops *o)
{
	o->shutting_down = true;
}

size_t ops_waiting(const struct ops *o)
{
	return o->waiting;
}

void ops_free(struct ops *o)
{
	if (!o)
		return;
	free(o);
}
