/* sequence.h: drip sequences from the configuration (config.md
 * "Sequences"): their check against the templates at start-up, and the
 * making of an enrollment's step jobs from an enroll request (pure). */
#ifndef ROUSE_SEQUENCE_H
#define ROUSE_SEQUENCE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "request.h"
#include "store.h"
#include "templates.h"

/* Every step's template exists and has its channel's parts. Returns 0, or
 * -1 with err naming the step ("sequences.winback_30d.steps[1].template:
 * no template named \"x\""). */
int sequences_check(const struct config *cfg, const struct templates *t,
		    char *err, size_t errlen);

const struct sequence *sequence_find(const struct config *cfg,
				     const char *name);

/* The names of the sequences that list `event` in exit_on (borrowed from
 * cfg; *n set). Returns a malloc'd array (free it), NULL when none. */
const char **sequences_exiting_on(const struct config *cfg,
				  const char *event, size_t *n);

/* The enrollment for req (an enroll of seq) starting at now: one job per
 * step and contact (push: one per token), keyed "<enrollment>:<step>"
 * (further push tokens "<enrollment>:<step>:<n>"), due at now + after,
 * with the step's vars merged over the request's; steps without a contact
 * for their channel (or whose push provider is not configured) are listed
 * as skipped. NULL when out of memory. */
struct enrollment *sequence_enroll(const struct config *cfg,
				   const struct sequence *seq,
				   const struct request *req, int64_t now);

#endif
