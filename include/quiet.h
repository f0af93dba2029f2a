/* quiet.h: quiet-hours arithmetic (pure, no I/O, no locks).
 *
 * A quiet window is a span of local wall-clock minutes, read on the
 * recipient's clock (an IANA zone from tzdb.h). A job due inside it is
 * deferred until the window's local end; the gate composes that instant
 * with the caps ("the later not-before wins", delivery-rules §6). Both
 * functions are safe on any thread: the zone is immutable.
 */
#ifndef ROUSE_QUIET_H
#define ROUSE_QUIET_H

#include <stddef.h>
#include <stdint.h>

#include "tzdb.h"

/* Minutes after local midnight, each in [0, 1440). start > end crosses
 * midnight (21:00-08:00 is {1260, 480}); start == end is never quiet. A
 * local time t (to the millisecond) is quiet when start <= t < end, or, for
 * a window crossing midnight, when t >= start or t < end. */
struct quiet_hours {
	int start_min, end_min;
};

/* When utc_ms is quiet in zone z (borrowed; NULL means UTC), returns the
 * first instant after it at which the wall clock leaves the window (Unix
 * ms): normally the next local end_min (08:00 on the next local day for a
 * job at 23:00 under 21:00-08:00), on DST days whichever instant the clock
 * really reads end_min (the later reading when utc_ms is already past the
 * earlier one in a fall-back overlap; the moment the clocks jump when
 * end_min falls in a spring-forward gap, or when they go back to a time
 * before the window: 01:30-02:30 on New York's 2026-11-01 is left at 06:00Z,
 * when 02:00 EDT becomes 01:00 EST). Returns 0 when utc_ms is not
 * quiet, and also when q is NULL, start == end, or a field is outside
 * [0, 1440). Costs a few binary searches; no allocation. */
int64_t quiet_until_ms(const struct quiet_hours *q, const struct tz_zone *z,
		       int64_t utc_ms);

/* Formats utc_ms as RFC 3339 in zone z's local time with its offset
 * ("2026-11-24T08:00:00+08:00"; milliseconds are shown only when non-zero:
 * "…T08:00:00.250+08:00"). UTC shows as "+00:00". An offset that is not a
 * whole number of minutes (local mean time before ~1900) cannot be written
 * in RFC 3339, so such instants are written in UTC with "Z". Truncates to
 * fit buf (QUIET_LOCAL_BUFLEN is always enough); len 0 writes nothing. */
#define QUIET_LOCAL_BUFLEN 48
void quiet_format_local(const struct tz_zone *z, int64_t utc_ms, char *buf,
			size_t len);

/* "21:00-08:00" for the window, into buf (QUIET_RANGE_BUFLEN bytes). */
#define QUIET_RANGE_BUFLEN 16
void quiet_format_range(const struct quiet_hours *q, char *buf, size_t len);

#endif
