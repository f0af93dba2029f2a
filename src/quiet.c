/* quiet.c: quiet-hours arithmetic (see quiet.h).
 *
 * Everything is computed on the recipient's wall clock: an instant u reads
 * local time u + offset(u), and "quiet" is a property of the time of day on
 * that clock. The window ends at the first instant the clock reads a time
 * outside it, so the instant returned is never quiet itself and a job due
 * earlier is never released later than one due after it. Without clock
 * changes that is the next reading of end_min: today's if the time of day
 * is before end_min, tomorrow's otherwise (only possible when the window
 * crosses midnight). With clock changes:
 *
 *  - end_min may be read twice (fall-back overlap): take the first reading
 *    after now. At 01:10 EST, after New York's clocks went back, a window
 *    00:00-01:20 ends at 01:20 EST, not at 01:20 EDT an hour ago.
 *  - end_min may not be read at all (spring-forward gap): tzdb answers
 *    with the moment the clocks jump, which reads a time past end_min.
 *  - the clocks may go back to a time before the window (01:30-02:30 in
 *    New York on 2026-11-01: at 02:00 EDT the clock reads 01:00 EST): the
 *    window is left at that jump, and entered again at 01:30 EST.
 *  - a whole day may be skipped (Pacific/Apia, 2011-12-30): the instant
 *    found may still be quiet, so the search goes on from there.
 *
 * Each step lands on an instant later than the previous one and real zones
 * settle in one or two steps; QUIET_STEPS_MAX bounds the loop for
 * pathological data, in which case the last instant found is returned (the
 * gate evaluates the job again when it comes due).
 */
#include <stdbool.h>
#include <stdio.h>

#include "quiet.h"
#include "timefmt.h"

#define MS_PER_SECOND INT64_C(1000)
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_DAY (1440 * MS_PER_MINUTE)
#define MINUTES_PER_DAY 1440
#define QUIET_STEPS_MAX 8
#define QUIET_MS_MAX (INT64_C(1) << 60)

static int64_t quiet_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && (a < 0) != (b < 0))
		q--;
	return q;
}

static bool quiet_valid(const struct quiet_hours *q)
{
	return q && q->start_min >= 0 && q->start_min < MINUTES_PER_DAY &&
	       q->end_min >= 0 && q->end_min < MINUTES_PER_DAY &&
	       q->start_min != q->end_min;
}

static bool quiet_contains(const struct quiet_hours *q, int64_t tod_ms)
{
	int64_t start = q->start_min * MS_PER_MINUTE;
	int64_t end = q->end_min * MS_PER_MINUTE;
	if (start < end)
		return tod_ms >= start && tod_ms < end;
	return tod_ms >= start || tod_ms < end;
}

/* Local wall-clock milliseconds (since 1970-01-01 local) of utc_ms. */
static int64_t quiet_local_ms(const struct tz_zone *z, int64_t utc_ms)
{
	int64_t utc_s = quiet_floor_div(utc_ms, MS_PER_SECOND);
	return utc_ms + (int64_t)tz_offset_at(z, utc_s) * MS_PER_SECOND;
}

/* The first instant after now_ms at which the clock reads local second
 * target_s, or, if it never does after now_ms, the same for the following
 * days. */
static int64_t quiet_next_reading(const struct tz_zone *z, int64_t target_s,
				  int64_t now_ms)
{
	int64_t earliest = 0, latest = 0;
	for (int day = 0; day < QUIET_STEPS_MAX; day++) {
		tz_local_resolve(z, target_s, &earliest, &latest);
		if (earliest * MS_PER_SECOND > now_ms)
			return earliest * MS_PER_SECOND;
		if (latest * MS_PER_SECOND > now_ms)
			return latest * MS_PER_SECOND;
		target_s += MS_PER_DAY / MS_PER_SECOND;
	}
	return latest * MS_PER_SECOND;
}

/* The first instant in (from_ms, to_ms) at which the clocks jump to a
 * time outside the window, or 0. */
static int64_t quiet_jump_out(const struct quiet_hours *q,
			      const struct tz_zone *z, int64_t from_ms,
			      int64_t to_ms)
{
	int64_t t = quiet_floor_div(from_ms, MS_PER_SECOND);
	int64_t last = quiet_floor_div(to_ms - 1, MS_PER_SECOND);
	for (int i = 0; i < QUIET_STEPS_MAX && tz_next_change(z, t, last, &t); i++) {
		int64_t t_ms = t * MS_PER_SECOND;
		if (t_ms <= from_ms)
			continue;
		int64_t local = quiet_local_ms(z, t_ms);
		if (!quiet_contains(q, local - quiet_floor_div(local, MS_PER_DAY) *
						       MS_PER_DAY))
			return t_ms;
	}
	return 0;
}

int64_t quiet_until_ms(const struct quiet_hours *q, const struct tz_zone *z,
		       int64_t utc_ms)
{
	if (!quiet_valid(q) || utc_ms > QUIET_MS_MAX || utc_ms < -QUIET_MS_MAX)
		return 0;
	int64_t cur = utc_ms;
	for (int step = 0; step < QUIET_STEPS_MAX; step++) {
		int64_t local = quiet_local_ms(z, cur);
		int64_t day = quiet_floor_div(local, MS_PER_DAY) * MS_PER_DAY;
		int64_t tod = local - day;
		if (!quiet_contains(q, tod))
			return step == 0 ? 0 : cur;
		int64_t end = q->end_min * MS_PER_MINUTE;
		int64_t target = day + end + (tod >= end ? MS_PER_DAY : 0);
		int64_t reading = quiet_next_reading(z, target / MS_PER_SECOND, cur);
		int64_t jump = quiet_jump_out(q, z, cur, reading);
		if (jump)
			return jump;
		cur = reading;
	}
	return cur;
}


void quiet_format_local(const struct tz_zone *z, int64_t utc_ms, char *buf,
			size_t len)
{
	if (len == 0)
		return;
	if (utc_ms > QUIET_MS_MAX || utc_ms < -QUIET_MS_MAX) {
		buf[0] = '\0';
		return;
	}
	int32_t off = tz_offset_at(z, quiet_floor_div(utc_ms, MS_PER_SECOND));
	bool utc = off % 60 != 0;
	if (utc)
		off = 0;
	int64_t local = utc_ms + (int64_t)off * MS_PER_SECOND;
	int64_t days = quiet_floor_div(local, MS_PER_DAY);
	int64_t rest = local - days * MS_PER_DAY;
	int64_t y;
	int mon, mday;
	civil_from_days(days, &y, &mon, &mday);
	int secs = (int)(rest / MS_PER_SECOND), ms = (int)(rest % MS_PER_SECOND);

	char frac[8] = "";
	if (ms != 0)
		snprintf(frac, sizeof frac, ".%03d", ms);
	char zone[16] = "Z";
	if (!utc) {
		int a = off < 0 ? -off : off;
		snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+',
			 a / 3600, a / 60 % 60);
	}
	snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d%s%s", (long long)y,
		 mon, mday, secs / 3600, secs / 60 % 60, secs % 60, frac, zone);
}

void quiet_format_range(const struct quiet_hours *q, char *buf, size_t len)
{
	if (len == 0)
		return;
	if (!q) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, len, "%02d:%02d-%02d:%02d", q->start_min / 60,
		 q->start_min % 60, q->end_min / 60, q->end_min % 60);
}
