/* roused.c: the daemon's main: builds the one context (config,
 * templates, store, delivery, scheduler, ops, intake) and runs the loop;
 * on SIGTERM/SIGINT stops intake, lets in-flight work finish (at most
 * SHUTDOWN_GRACE_MS), closes every handle and exits 0. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <uv.h>

#include "config.h"
#include "deliver.h"
#include "email.h"
#include "http.h"
#include "intake.h"
#include "listener.h"
#include "log.h"
#include "ops.h"
#include "pushgw.h"
#include "scheduler.h"
#include "sequence.h"
#include "store.h"
#include "templates.h"
#include "timefmt.h"
#include "tzdb.h"
#include "unsubtoken.h"

#define SHUTDOWN_GRACE_MS 20000

struct daemon {
	uv_loop_t loop;
	struct config *cfg;
	struct templates *templates;
	struct store *store;
	struct scheduler *scheduler;
	struct deliver *deliver;
	struct ops *ops;
	struct intake *intake;
	struct unsub_keys *unsub_keys;  /* unsubscribe configured */
	struct listener *listener;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain;
	int64_t shutdown_started;
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: roused [--config FILE] [--check]\n"
		   "       roused --version\n"
		   "  --config FILE  configuration (default config/rouse.json)\n"
		   "  --check        load the configuration and templates, "
		   "then exit\n");
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void finish_shutdown(struct daemon *d)
{
	uv_timer_stop(&d->drain);
	uv_close((uv_handle_t *)&d->drain, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	intake_close(d->intake);
	listener_close(d->listener);
	d->listener = NULL;
	scheduler_detach(d->scheduler);
	deliver_close(d->deliver);
	store_close(d->store);
	deliver_free(d->deliver);
	scheduler_close(d->scheduler);
	d->intake = NULL;
	d->store = NULL;
	d->deliver = NULL;
	d->scheduler = NULL;
}

static void on_drain_tick(uv_timer_t *t)
{
	struct daemon *d = t->data;
	bool idle = ops_waiting(d->ops) == 0 &&
		    !scheduler_claiming(d->scheduler) &&
		    deliver_in_flight(d->deliver) == 0;
	bool late = time_now_ms() - d->shutdown_started > SHUTDOWN_GRACE_MS;
	if (!idle && !late)
		return;
	if (!idle) {
		log_msg(LOG_WARN, "shutdown grace period over; unfinished "
			"deliveries are settled at the next start", NULL);
		deliver_abort(d->deliver);
	}
	finish_shutdown(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	if (d->stopping)
		return;
	d->stopping = true;
	log_msg(LOG_INFO, "shutting down", "signal",
		signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	d->shutdown_started = time_now_ms();
	ops_shutdown(d->ops);
	intake_stop_listening(d->intake);
	if (d->listener)
		listener_set_accepting(d->listener, false);
	scheduler_stop(d->scheduler);
	uv_timer_start(&d->drain, on_drain_tick, 0, 10);
}

/* ------------------------------------------------------------ listener */

static void on_listener_committed(void *ud, int status, int cancelled)
{
	(void)cancelled;
	struct listener_call *call = ud;
	listener_call_done(call, status);
}

/* A one-click unsubscribe or an SMS reply: recorded like the socket's
 * unsubscribe / resubscribe, answered once committed. */
static void on_listener_change(void *ctx, struct listener_call *call,
			       const struct listener_change *c)
{
	struct daemon *d = ctx;
	struct optout_change oc = {
		.resubscribe = c->resubscribe,
		.user = c->user,
		.address = c->address,
		.channel = c->channel,
		.source = c->source,
		.reason = c->reason,
		.now = time_now_ms(),
	};
	if (d->stopping ||
	    store_optout(d->store, &oc, on_listener_committed, call) != 0)
		listener_call_done(call, -1);
}

static int open_listener(struct daemon *d, char *err, size_t errlen)
{
	if (!d->cfg->unsub.set)
		return 0;
	if (listener_open(&d->loop, d->cfg, d->unsub_keys, on_listener_change,
			  d, &d->listener, err, errlen) != 0)
		return -1;
	listener_set_accepting(d->listener, true);
	return 0;
}

static int start(struct daemon *d)
{
	char err[1024] = "";
	int64_t now = time_now_ms();
	uv_loop_init(&d->loop);
	if (store_open(&d->loop, d->cfg, &d->store, err, sizeof err) != 0)
		goto fail;
	if (scheduler_new(&d->loop, d->cfg, d->store, &d->scheduler) != 0) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	if (d->cfg->unsub.set &&
	    unsub_keys_parse(d->cfg->unsub.secret, &d->unsub_keys, err,
			     sizeof err) != 0)
		goto fail;
	if (deliver_open(&d->loop, d->cfg, d->templates, d->unsub_keys,
			 d->store, scheduler_on_finished, d->scheduler,
			 &d->deliver, err, sizeof err) != 0)
		goto fail;
	int settled = store_recover(d->store, deliver_already_done, d->deliver,
				    now);
	if (settled < 0) {
		snprintf(err, sizeof err, "cannot settle jobs left in sending");
		goto fail;
	}
	if (settled > 0) {
		char n[32];
		snprintf(n, sizeof n, "%d", settled);
		log_msg(LOG_INFO, "settled jobs interrupted while sending",
			"jobs", n, NULL);
	}
	struct ops_deps deps = {
		.cfg = d->cfg, .templates = d->templates, .store = d->store,
		.scheduler = d->scheduler, .started_ms = now,
	};
	if (ops_new(&deps, &d->ops) != 0) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	if (intake_start(&d->loop, d->cfg, ops_handle, d->ops, &d->intake, err,
			 sizeof err) != 0 ||
	    open_listener(d, err, sizeof err) != 0)
		goto fail;
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	uv_timer_init(&d->loop, &d->drain);
	d->sigterm.data = d->sigint.data = d->drain.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	scheduler_start(d->scheduler, d->deliver);
	return 0;
fail:
	log_msg(LOG_ERROR, "cannot start", "error", err, NULL);
	fprintf(stderr, "roused: %s\n", err);
	return -1;
}

int main(int argc, char **argv)
{
	const char *config_path = "config/rouse.json";
	bool check = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "--check") == 0) {
			check = true;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("roused %s\n", ROUSE_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	umask(0027); /* the store and outboxes hold personal data */
	raise_fd_limit();
	email_global_init();
	if (http_global_init() != 0) {
		fprintf(stderr, "roused: libcurl cannot initialise\n");
		return 1;
	}

	struct daemon d = { 0 };
	char err[1024] = "";
	int status = 1;
	if (config_load(config_path, &d.cfg, err, sizeof err) != 0 ||
	    templates_load(d.cfg->templates_dir, &d.templates, err,
			   sizeof err) != 0 ||
	    sequences_check(d.cfg, d.templates, err, sizeof err) != 0) {
		fprintf(stderr, "roused: %s\n", err);
		goto out;
	}
	if (check && ((d.cfg->push_transport == TRANSPORT_HTTP &&
		       pushgw_check(d.cfg, err, sizeof err) != 0) ||
		      (d.cfg->unsub.set &&
		       unsub_keys_parse(d.cfg->unsub.secret, &d.unsub_keys,
					err, sizeof err) != 0))) {
		fprintf(stderr, "roused: %s\n", err);
		goto out;
	}
	if (check) {
		printf("roused: %s and %s are valid\n", d.cfg->path,
		       d.cfg->templates_dir);
		status = 0;
		goto out;
	}
	if (start(&d) != 0) {
		/* close what was opened so far */
		if (d.deliver)
			deliver_close(d.deliver);
		if (d.store)
			store_close(d.store);
		deliver_free(d.deliver);
		if (d.scheduler)
			scheduler_close(d.scheduler);
		uv_run(&d.loop, UV_RUN_NOWAIT);
		uv_loop_close(&d.loop);
		goto out;
	}
	log_msg(LOG_INFO, "ready", "socket", d.cfg->socket_path, "version",
		ROUSE_VERSION, NULL);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&d.loop);
	if (rc != 0)
		log_msg(LOG_WARN, "loop closed with handles open", "error",
			uv_strerror(rc), NULL);
	log_msg(LOG_INFO, "stopped", NULL);
	status = 0;
out:
	unsub_keys_free(d.unsub_keys);
	ops_free(d.ops);
	templates_free(d.templates);
	config_free(d.cfg);
	email_global_shutdown();
	http_global_cleanup();
	tzdb_clear_cache();
	return status;
}
