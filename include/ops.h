/* ops.h: what each request op does (the middle of the intake path).
 *
 * Takes one request line from intake, parses it (request.h), checks what
 * needs the daemon's knowledge (templates, time zones), and either
 * answers at once (ping, preview, errors) or hands the change to the
 * store and answers from the store's callback, i.e. after the commit.
 * Loop thread only.
 */
#ifndef ROUSE_OPS_H
#define ROUSE_OPS_H

#include <stdint.h>

#include "config.h"
#include "intake.h"
#include "scheduler.h"
#include "store.h"
#include "templates.h"

struct ops;

struct ops_deps {
	const struct config *cfg;
	const struct templates *templates;
	struct store *store;
	struct scheduler *scheduler;
	int64_t started_ms;
};

int ops_new(const struct ops_deps *deps, struct ops **out);

/* intake_request_fn */
void ops_handle(void *ops, struct intake_slot *slot, const char *line,
		size_t len);

/* From now on every request is answered `shutting_down`. */
void ops_shutdown(struct ops *o);

/* Requests handed to the store and not answered yet. */
size_t ops_waiting(const struct ops *o);

void ops_free(struct ops *o);

#endif
