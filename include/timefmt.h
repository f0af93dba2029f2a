/* timefmt.h: durations and RFC 3339 timestamps (pure). Times are Unix
 * milliseconds (int64_t) throughout rouse. */
#ifndef ROUSE_TIMEFMT_H
#define ROUSE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* "30s" "15m" "24h" "7d" (also "250ms", "0s"): a non-negative integer and
 * one unit, nothing else. Returns 0 and *ms, or -1 on anything else
 * ("5x", "", "-1s", "1.5h", overflow). */
int duration_parse(const char *s, int64_t *ms);

/* RFC 3339 date-time: "2026-11-24T02:00:00Z", "…T10:00:00.250+08:00",
 * lower-case t/z accepted, fraction up to 9 digits (kept to ms). Validates
 * field ranges (month, day of that month incl. leap years, 23:59:60 is
 * refused). Returns 0 and *ms, or -1. */
int rfc3339_parse(const char *s, int64_t *ms);

/* Formats ms as "2026-11-24T02:00:00.250Z" (milliseconds always shown)
 * into buf (needs RFC3339_BUFLEN bytes). */
#define RFC3339_BUFLEN 32
void rfc3339_format(int64_t ms, char *buf);

/* Current wall-clock time in Unix ms (CLOCK_REALTIME, so libfaketime's
 * offsets apply). */
int64_t time_now_ms(void);

/* Proleptic Gregorian calendar arithmetic (no time zones): days since
 * 1970-01-01 of y-m-d (m 1..12; d may run past the month's end, counting
 * on), its inverse, and the length of a month. */
int64_t days_from_civil(int64_t y, int m, int64_t d);
void civil_from_days(int64_t z, int64_t *y, int *m, int *d);
int days_in_month(int64_t y, int m);

#endif
