/* sequence.c: drip sequences (see sequence.h).
 *
 * All of an enrollment's steps become jobs at enroll time, scheduled at
 * their offsets from the start: the store commits them with the
 * enrollment in one transaction, so a crash can neither lose a step nor
 * create it twice, and a step due while the daemon was down simply runs
 * at start-up like any scheduled job. Opt-outs, caps, quiet hours and
 * expiry then apply to each step job like to any other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "channel.h"
#include "job.h"
#include "sequence.h"

int sequences_check(const struct config *cfg, const struct templates *t,
		    char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_sequences; i++) {
		const struct sequence *seq = &cfg->sequences[i];
		for (size_t j = 0; j < seq->n_steps; j++) {
			const struct seq_step *st = &seq->steps[j];
			const struct template_set *set =
				templates_find(t, st->template_name);
			if (!set) {
				snprintf(err, errlen, "sequences.%s.steps[%zu]."
					 "template: no template named \"%s\"",
					 seq->name, j, st->template_name);
				return -1;
			}
			if (!template_has_channel(set, st->channel)) {
				snprintf(err, errlen, "sequences.%s.steps[%zu]."
					 "template: %s has no %s parts",
					 seq->name, j, st->template_name,
					 channel_name(st->channel));
				return -1;
			}
		}
	}
	return 0;
}

const struct sequence *sequence_find(const struct config *cfg,
				     const char *name)
{
	for (size_t i = 0; i < cfg->n_sequences; i++)
		if (strcmp(cfg->sequences[i].name, name) == 0)
			return &cfg->sequences[i];
	return NULL;
}

const char **sequences_exiting_on(const struct config *cfg,
				  const char *event, size_t *n)
{
	const char **names = NULL;
	*n = 0;
	for (size_t i = 0; i < cfg->n_sequences; i++) {
		const struct sequence *seq = &cfg->sequences[i];
		for (size_t j = 0; j < seq->n_exit_on; j++) {
			if (strcmp(seq->exit_on[j], event) != 0)
				continue;
			if (!names)
				names = calloc(cfg->n_sequences, sizeof *names);
			if (!names)
				return NULL;
			names[(*n)++] = seq->name;
			break;
		}
	}
	return names;
}

/* The request's vars with the step's merged over them, as JSON text
 * (base: the request's vars already serialised, shared by the steps that
 * add none). */
static char *step_vars(const struct request *req, const struct seq_step *st,
		       const char *base)
{
	if (!st->vars_json)
		return base ? strdup(base) : NULL;
	json_t *vars = req->vars ? json_deep_copy(req->vars) : json_object();
	json_t *over = json_loads(st->vars_json, 0, NULL);
	json_object_update(vars, over);
	json_decref(over);
	char *text = json_object_size(vars)
			     ? json_dumps(vars, JSON_COMPACT | JSON_SORT_KEYS)
			     : NULL;
	json_decref(vars);
	return text;
}

static struct job *step_job(const struct enrollment *e,
			    const struct request *req,
			    const struct seq_step *st, size_t index,
			    size_t nth, const char *recipient, int platform,
			    int64_t now, const char *base_vars)
{
	char key[JOB_ID_LEN + 48];
	struct job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	if (nth == 0)
		snprintf(key, sizeof key, "%s:%zu", e->id, index);
	else
		snprintf(key, sizeof key, "%s:%zu:%zu", e->id, index, nth);
	job_new_id(job->id);
	job->key = strdup(key);
	job->user = strdup(req->user);
	job->channel = st->channel;
	job->recipient = strdup(recipient);
	job->platform = platform;
	job->template_name = strdup(st->template_name);
	job->locale = req->locale ? strdup(req->locale) : NULL;
	job->vars_json = step_vars(req, st, base_vars);
	job->tz = req->tz ? strdup(req->tz) : NULL;
	job->at_ms = now + st->after_ms;
	job->expires_ms = st->expires_after_ms
				  ? job->at_ms + st->expires_after_ms : 0;
	job->created_ms = now;
	job->step = (int)index;
	if (!job->key || !job->user || !job->recipient ||
	    !job->template_name || (req->locale && !job->locale) ||
	    (req->tz && !job->tz) ||
	    ((base_vars || st->vars_json) && !job->vars_json)) {
		job_free(job);
		return NULL;
	}
	return job;
}

static int add_job(struct enrollment *e, struct job *job, size_t *cap)
{
	if (!job)
		return -1;
	if (e->n_jobs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct job **grown = realloc(e->jobs, ncap * sizeof *grown);
		if (!grown) {
			job_free(job);
			return -1;
		}
		e->jobs = grown;
		*cap = ncap;
	}
	e->jobs[e->n_jobs++] = job;
	return 0;
}

static void add_skip(json_t *skipped, const struct seq_step *st, size_t index,
		     const char *why)
{
	json_t *k = json_object();
	json_object_set_new(k, "step", json_integer((json_int_t)index));
	json_object_set_new(k, "channel", json_string(channel_name(st->channel)));
	json_object_set_new(k, "template", json_string(st->template_name));
	json_object_set_new(k, "state", json_string("skipped"));
	json_object_set_new(k, "detail", json_string(why));
	json_array_append_new(skipped, k);
}

/* The step's jobs, one per contact of its channel; a skip when none. */
static int add_step(struct enrollment *e, const struct config *cfg,
		    const struct request *req, const struct seq_step *st,
		    size_t index, int64_t now, size_t *cap, json_t *skipped,
		    const char *base_vars)
{
	if (st->channel == CH_EMAIL || st->channel == CH_SMS) {
		const char *to = st->channel == CH_EMAIL ? req->contact_email
							 : req->contact_phone;
		if (!to[0]) {
			add_skip(skipped, st, index,
				 st->channel == CH_EMAIL ? "no email contact"
							 : "no phone contact");
			return 0;
		}
		return add_job(e, step_job(e, req, st, index, 0, to, 0, now,
					   base_vars), cap);
	}
	size_t made = 0;
	for (size_t i = 0; i < req->n_contact_push; i++) {
		int platform = req->contact_push[i].platform;
		bool served = cfg->push_transport != TRANSPORT_HTTP ||
			      (platform == PUSH_APNS ? cfg->apns.set
						     : cfg->fcm.set);
		if (!served)
			continue;
		if (add_job(e, step_job(e, req, st, index, made,
					req->contact_push[i].token, platform,
					now, base_vars), cap) != 0)
			return -1;
		made++;
	}
	if (made == 0)
		add_skip(skipped, st, index,
			 req->n_contact_push ? "no push token for a configured "
					       "provider"
					     : "no push contact");
	return 0;
}

struct enrollment *sequence_enroll(const struct config *cfg,
				   const struct sequence *seq,
				   const struct request *req, int64_t now)
{
	struct enrollment *e = calloc(1, sizeof *e);
	json_t *skipped = json_array();
	char *base_vars = req->vars && json_object_size(req->vars)
				  ? json_dumps(req->vars,
					       JSON_COMPACT | JSON_SORT_KEYS)
				  : NULL;
	size_t cap = 0;
	if (!e || !skipped || (req->vars && json_object_size(req->vars) &&
			       !base_vars))
		goto fail;
	job_new_id(e->id);
	e->user = strdup(req->user);
	e->sequence = strdup(seq->name);
	if (!e->user || !e->sequence)
		goto fail;
	for (size_t i = 0; i < seq->n_steps; i++)
		if (add_step(e, cfg, req, &seq->steps[i], i, now, &cap,
			     skipped, base_vars) != 0)
			goto fail;
	if (json_array_size(skipped)) {
		e->skipped_json = json_dumps(skipped, JSON_COMPACT);
		if (!e->skipped_json)
			goto fail;
	}
	json_decref(skipped);
	free(base_vars);
	return e;
fail:
	json_decref(skipped);
	free(base_vars);
	enrollment_free(e);
	return NULL;
}
