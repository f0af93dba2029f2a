/* gate.c: per-user cap arithmetic (see gate.h). A rule counts the sends of
 * its channel ("*" counts every channel) whose time lies inside the
 * rolling window (now - window, now]; at max the next send waits until
 * the oldest of the max most recent counted sends leaves the window. */
#include <stdio.h>
#include <stdlib.h>

#include "gate.h"

static bool rule_applies(const struct cap_rule *r, int channel)
{
	return r->channel == CH_ALL || r->channel == channel;
}

int64_t gate_longest_window(const struct cap_rule *rules, size_t n_rules,
			    int channel)
{
	int64_t longest = 0;
	for (size_t i = 0; i < n_rules; i++)
		if (rule_applies(&rules[i], channel) &&
		    rules[i].window_ms > longest)
			longest = rules[i].window_ms;
	return longest;
}

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

/* The instant rule r allows the next send, or 0 if it allows it now. */
static int64_t rule_allowed_at(const struct cap_rule *r,
			       const struct gate_send *sends, size_t n_sends,
			       int64_t now, int64_t *scratch)
{
	size_t counted = 0;
	for (size_t i = 0; i < n_sends; i++) {
		bool same = r->channel == CH_ALL ||
			    sends[i].channel == r->channel;
		if (same && sends[i].at_ms > now - r->window_ms)
			scratch[counted++] = sends[i].at_ms;
	}
	if (counted < (size_t)r->max)
		return 0;
	qsort(scratch, counted, sizeof *scratch, cmp_desc);
	return scratch[r->max - 1] + r->window_ms;
}

int64_t gate_cap_allowed_at(const struct cap_rule *rules, size_t n_rules,
			    int channel, const struct gate_send *sends,
			    size_t n_sends, int64_t now, size_t *rule_index)
{
	int64_t latest = 0;
	int64_t *scratch = malloc((n_sends ? n_sends : 1) * sizeof *scratch);
	if (!scratch)
		return now + 1000; /* no memory: hold the job back briefly */
	for (size_t i = 0; i < n_rules; i++) {
		if (!rule_applies(&rules[i], channel))
			continue;
		int64_t at = rule_allowed_at(&rules[i], sends, n_sends, now,
					     scratch);
		if (at > latest) {
			latest = at;
			if (rule_index)
				*rule_index = i;
		}
	}
	free(scratch);
	return latest;
}

static void window_describe(int64_t ms, char *buf, size_t len)
{
	static const struct { int64_t ms; const char *unit; } units[] = {
		{ 86400000, "d" }, { 3600000, "h" }, { 60000, "m" },
		{ 1000, "s" }, { 1, "ms" },
	};
	/* days only from two days up, so "24h" reads as configured */
	size_t first = ms >= 2 * units[0].ms ? 0 : 1;
	for (size_t i = first; i < sizeof units / sizeof units[0]; i++) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%lld%s",
				 (long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
}

void gate_rule_describe(const struct cap_rule *rule, char *buf, size_t len)
{
	char window[32];
	window_describe(rule->window_ms, window, sizeof window);
	snprintf(buf, len, "limit %s %d/%s",
		 rule->channel == CH_ALL ? "*" : channel_name(rule->channel),
		 rule->max, window);
}
