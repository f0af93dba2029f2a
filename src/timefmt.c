/* timefmt.c: durations ("30s", "7d") and RFC 3339 timestamps <-> Unix ms.
 *
 * Pure: no I/O, no global state, no time zone. Calendar arithmetic is done
 * here rather than with gmtime_r/timegm: converting between a proleptic
 * Gregorian date and a day count is a few lines (the days-from-civil
 * algorithm: shift the year to start on 1 March so the leap day is the
 * last day of the year, then count 400-year eras of 146097 days), it works
 * for any int64 millisecond value, and it cannot be affected by TZ or the
 * C library's notion of local time. Every parser here accepts exactly the
 * documented grammar and nothing around it: no leading or trailing
 * spaces, no signs, no implicit units.
 */
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "timefmt.h"

#define MS_PER_SECOND INT64_C(1000)
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_HOUR (60 * MS_PER_MINUTE)
#define MS_PER_DAY (24 * MS_PER_HOUR)

static bool timefmt_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int64_t days_from_civil(int64_t y, int m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;                                /* [0, 399] */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;        /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool timefmt_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int64_t y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31 };
	if (m == 2 && timefmt_is_leap(y))
		return 29;
	return days[m - 1];
}

int duration_parse(const char *s, int64_t *ms)
{
	if (!s || !timefmt_is_digit(*s))
		return -1;
	int64_t n = 0;
	const char *p = s;
	for (; timefmt_is_digit(*p); p++) {
		int digit = *p - '0';
		if (n > (INT64_MAX - digit) / 10)
			return -1;
		n = n * 10 + digit;
	}
	int64_t unit;
	if (p[0] == '\0')
		return -1;
	if (p[0] == 'm' && p[1] == 's' && p[2] == '\0')
		unit = 1;
	else if (p[1] != '\0')
		return -1;
	else if (p[0] == 's')
		unit = MS_PER_SECOND;
	else if (p[0] == 'm')
		unit = MS_PER_MINUTE;
	else if (p[0] == 'h')
		unit = MS_PER_HOUR;
	else if (p[0] == 'd')
		unit = MS_PER_DAY;
	else
		return -1;
	if (n > INT64_MAX / unit)
		return -1;
	*ms = n * unit;
	return 0;
}

/* Reads exactly `width` digits at *p into *out and advances *p. */
static int timefmt_digits(const char **p, int width, int *out)
{
	int v = 0;
	for (int i = 0; i < width; i++) {
		char c = (*p)[i];
		if (!timefmt_is_digit(c))
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += width;
	*out = v;
	return 0;
}

static int timefmt_expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

int rfc3339_parse(const char *s, int64_t *ms)
{
	if (!s)
		return -1;
	const char *p = s;
	int year, month, day, hour, minute, second;
	if (timefmt_digits(&p, 4, &year) || timefmt_expect(&p, '-') ||
	    timefmt_digits(&p, 2, &month) || timefmt_expect(&p, '-') ||
	    timefmt_digits(&p, 2, &day))
		return -1;
	if (*p != 'T' && *p != 't')
		return -1;
	p++;
	if (timefmt_digits(&p, 2, &hour) || timefmt_expect(&p, ':') ||
	    timefmt_digits(&p, 2, &minute) || timefmt_expect(&p, ':') ||
	    timefmt_digits(&p, 2, &second))
		return -1;
	if (month < 1 || month > 12 || day < 1 ||
	    day > days_in_month(year, month) || hour > 23 ||
	    minute > 59 || second > 59)
		return -1;

	int64_t frac_ms = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		for (; timefmt_is_digit(*p); p++, n++) {
			if (n >= 9)
				return -1;
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		}
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			frac_ms *= 10;
	}

	int64_t offset_ms = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		int oh, om;
		p++;
		if (timefmt_digits(&p, 2, &oh) || timefmt_expect(&p, ':') ||
		    timefmt_digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		offset_ms = sign * (oh * MS_PER_HOUR + om * MS_PER_MINUTE);
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;

	int64_t days = days_from_civil(year, month, day);
	*ms = days * MS_PER_DAY + hour * MS_PER_HOUR + minute * MS_PER_MINUTE +
	      second * MS_PER_SECOND + frac_ms - offset_ms;
	return 0;
}

void rfc3339_format(int64_t ms, char *buf)
{
	/* Floor division, so instants before 1970 land on the right day. */
	int64_t days = ms / MS_PER_DAY;
	int64_t rem = ms % MS_PER_DAY;
	if (rem < 0) {
		rem += MS_PER_DAY;
		days--;
	}
	int64_t year;
	int month, day;
	civil_from_days(days, &year, &month, &day);
	int hour = (int)(rem / MS_PER_HOUR);
	int minute = (int)(rem / MS_PER_MINUTE % 60);
	int second = (int)(rem / MS_PER_SECOND % 60);
	int milli = (int)(rem % MS_PER_SECOND);
	/* Years beyond 0000..9999 (only reachable from absurd ms values)
	 * print with as many digits as they need; the longest possible output
	 * is 31 bytes including the terminator. */
	snprintf(buf, RFC3339_BUFLEN, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 (long long)year, month, day, hour, minute, second, milli);
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * MS_PER_SECOND + ts.tv_nsec / 1000000;
}
