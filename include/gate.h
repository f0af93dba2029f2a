/* gate.h: the per-user cap arithmetic of delivery-rules §6 (pure).
 *
 * The store runs it inside the `-> sending` transaction with the user's
 * counted sends read from the durable send history, so no race can
 * overshoot a cap.
 */
#ifndef ROUSE_GATE_H
#define ROUSE_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct gate_send {
	int channel;     /* enum channel */
	int64_t at_ms;   /* when it moved to sending */
};

/* The longest window of the rules that apply to channel (0 if none). */
int64_t gate_longest_window(const struct cap_rule *rules, size_t n_rules,
			    int channel);

/* Decides whether one more send on `channel` is allowed at `now`, given
 * the user's counted sends (any order). Returns 0 when allowed; otherwise
 * the exact instant it will be allowed (the max-th most recent send that
 * the binding rule counts, plus its window) and *rule_index names that
 * rule (the latest instant over all rules wins). */
int64_t gate_cap_allowed_at(const struct cap_rule *rules, size_t n_rules,
			    int channel, const struct gate_send *sends,
			    size_t n_sends, int64_t now, size_t *rule_index);

/* "limit email 1/24h" style description of a rule, into buf. */
void gate_rule_describe(const struct cap_rule *rule, char *buf, size_t len);

#endif
