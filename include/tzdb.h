/* tzdb.h: IANA time zones read from the system tz database, without
 * touching the process-wide TZ.
 *
 * A zone is loaded from $TZDIR/<name> (or /usr/share/zoneinfo/<name> when
 * TZDIR is unset or empty) the first time it is asked for and then kept in
 * a process-wide cache until tzdb_clear_cache(). A loaded zone is
 * immutable, so the pointer tzdb_get() returns may be used from any thread
 * without locking; only the cache itself is behind a mutex.
 *
 * Times are Unix seconds (int64_t, leap seconds not counted) and offsets
 * are seconds east of UTC (+28800 for Asia/Shanghai).
 */
#ifndef ROUSE_TZDB_H
#define ROUSE_TZDB_H

#include <stdbool.h>
#include <stdint.h>

struct tz_zone;

/* The zone called name ("Asia/Shanghai", "UTC", "America/New_York"),
 * loaded on first use and cached for the life of the process (or until
 * tzdb_clear_cache). Any thread. Returns NULL when the name is not a zone:
 * empty or longer than 255 bytes, a character outside [A-Za-z0-9_+-/], a
 * leading or trailing '/', an empty path component, "..", no such regular
 * file, a file that is not a valid TZif file (RFC 8536, versions 1-4), or
 * one carrying leap-second records (the "right/" zones: rouse counts POSIX
 * seconds). Unknown names are remembered as unknown too (up to a cap), so
 * asking again is cheap. The result is borrowed: never free it. */
const struct tz_zone *tzdb_get(const char *name);

/* The name the zone was loaded under. Borrowed, lives as long as z. */
const char *tz_name(const struct tz_zone *z);

/* The UTC offset (seconds east) in effect at instant utc_s in zone z.
 * Before the file's first transition the offset of its first local time
 * type applies; after its last one the POSIX TZ rule of the file's footer
 * (e.g. "EST5EDT,M3.2.0,M11.1.0"), or the last type when there is no rule.
 * z == NULL means UTC (returns 0). Pure; any thread. */
int32_t tz_offset_at(const struct tz_zone *z, int64_t utc_s);

/* The first instant t with after_s < t <= until_s at which zone z's
 * offset changes (the clocks jump at t), in *at; false when there is none
 * (z == NULL never changes). Costs a binary search and a few rule
 * evaluations whatever the span. Pure; any thread. */
bool tz_next_change(const struct tz_zone *z, int64_t after_s, int64_t until_s,
		    int64_t *at);

/* Every instant at which the wall clock of zone z reads local_s (seconds
 * since 1970-01-01T00:00:00 on that clock). Returns how many distinct
 * instants there are and stores the earliest in *earliest and the latest in
 * *latest: 1 on an ordinary day; 2 in a fall-back overlap (01:30 on
 * America/New_York's 2026-11-01 is 05:30Z and 06:30Z); 0 when local_s
 * falls in a spring-forward gap, in which case both receive the first
 * instant after the gap, i.e. the moment the clocks jump (02:30 on
 * 2026-03-08 in New York gives 07:00Z, which reads 03:00 EDT).
 * z == NULL means UTC. Pure; any thread. */
int tz_local_resolve(const struct tz_zone *z, int64_t local_s,
		     int64_t *earliest, int64_t *latest);

/* The instant at which the local wall-clock time y-mon-day hour:min occurs
 * in zone z: the earlier one in a fall-back overlap, and in a
 * spring-forward gap the first instant after the gap (the moment the clocks
 * jump), as tz_local_resolve. Out-of-range fields are normalised the way
 * arithmetic suggests (day 32 of January is 1 February, hour 24 is the next
 * day's 00), so "the same time tomorrow" is day + 1. Pure; any thread. */
int64_t tz_local_to_utc(const struct tz_zone *z, int y, int mon, int day,
			int hour, int min);

/* Frees every cached zone and forgets unknown names. Every pointer
 * tzdb_get() returned before becomes invalid, so call it only when no
 * other thread can be using one (tests, process exit). */
void tzdb_clear_cache(void);

#endif
