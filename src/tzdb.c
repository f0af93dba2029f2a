/* tzdb.c: IANA time zones from the system tz database (see tzdb.h).
 *
 * WHY A READER OF OUR OWN. Quiet hours need "what is the UTC offset of
 * zone Z at instant T" and "when does 08:00 happen in zone Z" for a
 * different Z on every job, on the store's writer thread and on the loop
 * thread at once. glibc only answers those questions for the zone named by
 * the process-wide TZ variable (setenv + tzset + localtime_r/mktime), which
 * is neither thread-safe nor cheap to switch per call; ICU has a per-zone
 * API but would be a large extra dependency for one function. The compiled
 * database Debian ships (tzdata, /usr/share/zoneinfo) is a small, stable,
 * documented binary format, so we read it ourselves.
 *
 * THE FORMAT (RFC 8536; version 4 of RFC 9636 only changes the meaning of
 * leap-second records, which we refuse anyway). A file is a 44-byte header
 * ("TZif", a version byte, six big-endian counts), a data block, and for
 * versions 2 and up a second header, a second data block with 64-bit times
 * and a footer "\n<POSIX TZ string>\n". We use the 64-bit block whenever
 * there is one and the 32-bit block of version 1 files otherwise. From the
 * block we keep the transition times, the UTC offset each transition
 * switches to, and the offset of local time type 0 (in effect before the
 * first transition); abbreviations and the standard/UT indicators are not
 * needed. Instants after the last transition follow the footer's rule
 * ("EST5EDT,M3.2.0,M11.1.0"): "fat" files list transitions up to 2037 and
 * need the rule after that, "slim" ones stop at the last change of rules,
 * and a fixed zone may have no transitions at all and only the footer.
 * Files with leap-second records ("right/...") are refused: rouse counts
 * POSIX seconds, and the offsets there would be off by up to 27 s.
 *
 * LOCAL TO UTC. A wall-clock reading W happens at every instant u with
 * u + offset(u) == W. Offsets lie in [-89999, 93599] (RFC 8536), so every
 * such u lies in a window of about two days around W; we collect the
 * transitions in that window (from the table or the footer's rule),
 * try each offset in effect there, and keep those that check out. None
 * means W is in a spring-forward gap: the answer is then the transition
 * whose gap contains W, the first instant after the gap.
 *
 * THE CACHE is the one piece of process-wide state: a fixed hash table of
 * name -> zone behind a mutex, holding a NULL zone for names found not to
 * be zones (at most TZDB_UNKNOWN_MAX of those, so a stream of bogus names
 * cannot grow it without bound). Files are read outside the lock; when two
 * threads load the same name at once, the first to insert wins and the
 * other frees its copy. Zones are never changed after insertion, so
 * readers need no lock once they hold a pointer.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timefmt.h"
#include "tzdb.h"

#define TZDB_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZDB_NAME_MAX 255
#define TZDB_PATH_MAX 4096
#define TZDB_FILE_MAX (512 * 1024)  /* the largest Debian file is ~4 KiB */
#define TZDB_FOOTER_MAX 255
#define TZDB_TYPES_MAX 256          /* a transition's type index is a byte */
#define TZDB_BUCKETS 256
#define TZDB_UNKNOWN_MAX 256
#define TZDB_OFFSET_MIN (-89999)
#define TZDB_OFFSET_MAX 93599
#define TZDB_EVENTS_MAX 32          /* transitions within ~2 days of a time */
#define TZDB_RULE_IDLE_STEPS 24
#define TZDB_RULE_HOURS_MAX 167     /* RFC 8536 3.3.1: rule times -167..167 h */
#define TZDB_SECS_MAX (INT64_C(1) << 55)  /* ~1.1e9 years; keeps sums exact */
#define SECS_PER_DAY INT64_C(86400)

enum tz_date_kind {
	TZ_DATE_JULIAN1,  /* Jn: 1..365, 29 February never counted */
	TZ_DATE_JULIAN0,  /* n: 0..365, 29 February counted */
	TZ_DATE_MWD,      /* Mm.w.d: day d of week w (5 = last) of month m */
};

struct tz_date {
	enum tz_date_kind kind;
	int day;          /* Jn / n: the day number; Mm.w.d: the month */
	int week;         /* Mm.w.d only: 1..5 */
	int wday;         /* Mm.w.d only: 0..6, 0 = Sunday */
	int32_t time;     /* seconds after local midnight, may be < 0 or > 24 h */
};

/* The POSIX TZ string of the footer, offsets turned to seconds east. */
struct tz_rule {
	bool present;     /* a non-empty footer */
	bool has_dst;
	int32_t std_off, dst_off;
	struct tz_date start, end;  /* start: std -> dst in standard time;
	                               end: dst -> std in daylight time */
};

struct tz_zone {
	char *name;
	size_t n_trans;
	int64_t *trans;       /* UTC seconds, strictly ascending */
	int32_t *trans_off;   /* offset in effect from trans[i] on */
	int32_t first_off;    /* local time type 0: before trans[0] */
	struct tz_rule rule;
};

struct tzdb_entry {
	struct tzdb_entry *next;
	struct tz_zone *zone; /* NULL: the name is known not to be a zone */
	char name[];
};

static pthread_mutex_t tzdb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tzdb_entry *tzdb_buckets[TZDB_BUCKETS];
static size_t tzdb_n_unknown;

/* ---- calendar arithmetic (proleptic Gregorian, no time zone) ---- */

static int64_t tzdb_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && (a < 0) != (b < 0))
		q--;
	return q;
}

static int64_t tzdb_clamp(int64_t s)
{
	if (s > TZDB_SECS_MAX)
		return TZDB_SECS_MAX;
	if (s < -TZDB_SECS_MAX)
		return -TZDB_SECS_MAX;
	return s;
}

/* The calendar year containing day z (days since 1970-01-01). */
static int64_t tzdb_year_of_day(int64_t z)
{
	int64_t y;
	int m, d;
	civil_from_days(z, &y, &m, &d);
	return y;
}

/* ---- the footer's rule ---- */

/* Local seconds (since 1970-01-01 local) at which date d happens in year y. */
static int64_t tzdb_rule_local(const struct tz_date *d, int64_t y)
{
	int64_t days;
	if (d->kind == TZ_DATE_JULIAN1) {
		days = days_from_civil(y, 1, 1) + d->day - 1;
		if (d->day >= 60 && days_in_month(y, 2) == 29)
			days++;
	} else if (d->kind == TZ_DATE_JULIAN0) {
		days = days_from_civil(y, 1, 1) + d->day;
	} else {
		int64_t first = days_from_civil(y, d->day, 1);
		int wday_first = (int)(first + 4 - tzdb_floor_div(first + 4, 7) * 7);
		int mday = 1 + (d->wday - wday_first + 7) % 7 + 7 * (d->week - 1);
		int last = days_in_month(y, d->day);
		while (mday > last)
			mday -= 7;
		days = first + mday - 1;
	}
	return days * SECS_PER_DAY + d->time;
}

/* The rule's two transitions of year y, in UTC. */
static void tzdb_rule_year(const struct tz_rule *r, int64_t y, int64_t *start,
			   int64_t *end)
{
	*start = tzdb_rule_local(&r->start, y) - r->std_off;
	*end = tzdb_rule_local(&r->end, y) - r->dst_off;
}

static int64_t tzdb_rule_year_at(const struct tz_rule *r, int64_t utc_s)
{
	return tzdb_year_of_day(tzdb_floor_div(utc_s + r->std_off, SECS_PER_DAY));
}

/* The offset the rule gives at utc_s: that of the latest of its
 * transitions at or before utc_s. Rule times may reach a week into the
 * neighbouring years, hence the four years looked at. When a start and an
 * end fall on the same instant (all-year DST, "EST5EDT4,0/0,J365/25") the
 * start wins. */
static int32_t tzdb_rule_offset(const struct tz_rule *r, int64_t utc_s)
{
	if (!r->has_dst)
		return r->std_off;
	utc_s = tzdb_clamp(utc_s);
	int64_t y = tzdb_rule_year_at(r, utc_s);
	bool found = false, dst = false;
	int64_t best = 0;
	for (int64_t yy = y - 2; yy <= y + 1; yy++) {
		int64_t start, end;
		tzdb_rule_year(r, yy, &start, &end);
		if (end <= utc_s && (!found || end > best)) {
			best = end;
			dst = false;
			found = true;
		}
		if (start <= utc_s && (!found || start >= best)) {
			best = start;
			dst = true;
			found = true;
		}
	}
	return dst ? r->dst_off : r->std_off;
}

/* ---- queries ---- */

/* Number of transitions at or before utc_s. */
static size_t tzdb_upper_bound(const struct tz_zone *z, int64_t utc_s)
{
	size_t lo = 0, hi = z->n_trans;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= utc_s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int32_t tz_offset_at(const struct tz_zone *z, int64_t utc_s)
{
	if (!z)
		return 0;
	size_t n = z->n_trans;
	if (n == 0)
		return z->rule.present ? tzdb_rule_offset(&z->rule, utc_s)
				       : z->first_off;
	size_t i = tzdb_upper_bound(z, utc_s);
	if (i == 0)
		return z->first_off;
	if (i == n && z->rule.present && utc_s > z->trans[n - 1])
		return tzdb_rule_offset(&z->rule, utc_s);
	return z->trans_off[i - 1];
}

const char *tz_name(const struct tz_zone *z)
{
	return z ? z->name : "UTC";
}

/* Instants in (lo, hi] at which the offset may change, ascending (possibly
 * with duplicates): the table's transitions and, past its end, the rule's. */
static size_t tzdb_events(const struct tz_zone *z, int64_t lo, int64_t hi,
			  int64_t *out)
{
	size_t k = 0, n = z->n_trans;
	for (size_t i = tzdb_upper_bound(z, lo);
	     i < n && z->trans[i] <= hi && k < TZDB_EVENTS_MAX; i++)
		out[k++] = z->trans[i];
	const struct tz_rule *r = &z->rule;
	if (r->present && r->has_dst && (n == 0 || hi > z->trans[n - 1])) {
		int64_t y_lo = tzdb_rule_year_at(r, lo) - 1;
		int64_t y_hi = tzdb_rule_year_at(r, hi) + 1;
		for (int64_t y = y_lo; y <= y_hi; y++) {
			int64_t t[2];
			tzdb_rule_year(r, y, &t[0], &t[1]);
			for (int j = 0; j < 2; j++)
				if (t[j] > lo && t[j] <= hi &&
				    (n == 0 || t[j] > z->trans[n - 1]) &&
				    k < TZDB_EVENTS_MAX)
					out[k++] = t[j];
		}
	}
	for (size_t i = 1; i < k; i++) {
		int64_t v = out[i];
		size_t j = i;
		for (; j > 0 && out[j - 1] > v; j--)
			out[j] = out[j - 1];
		out[j] = v;
	}
	return k;
}

/* true when the offset differs on either side of t */
static bool tzdb_changes_at(const struct tz_zone *z, int64_t t)
{
	return tz_offset_at(z, t - 1) != tz_offset_at(z, t);
}

bool tz_next_change(const struct tz_zone *z, int64_t after_s, int64_t until_s,
		    int64_t *at)
{
	if (!z)
		return false;
	after_s = tzdb_clamp(after_s);
	until_s = tzdb_clamp(until_s);
	size_t n = z->n_trans;
	for (size_t i = tzdb_upper_bound(z, after_s);
	     i < n && z->trans[i] <= until_s; i++)
		if (tzdb_changes_at(z, z->trans[i])) {
			*at = z->trans[i];
			return true;
		}
	const struct tz_rule *r = &z->rule;
	if (!r->present || !r->has_dst)
		return false;
	int64_t from = after_s;
	if (n > 0 && z->trans[n - 1] > from)
		from = tzdb_clamp(z->trans[n - 1]);
	/* Walk the rule's transitions after `from` in order. A rule that
	 * changes nothing in TZDB_RULE_IDLE_STEPS of them never will (all-year
	 * DST; dates that differ only in leap years recur within 8 years). */
	for (int step = 0; step < TZDB_RULE_IDLE_STEPS; step++) {
		int64_t y = tzdb_rule_year_at(r, from), next = 0;
		bool found = false;
		for (int64_t yy = y - 1; yy <= y + 2; yy++) {
			int64_t t[2];
			tzdb_rule_year(r, yy, &t[0], &t[1]);
			for (int j = 0; j < 2; j++)
				if (t[j] > from && (!found || t[j] < next)) {
					next = t[j];
					found = true;
				}
		}
		if (!found || next > until_s)
			return false;
		if (tzdb_changes_at(z, next)) {
			*at = next;
			return true;
		}
		from = next;
	}
	return false;
}

int tz_local_resolve(const struct tz_zone *z, int64_t local_s,
		     int64_t *earliest, int64_t *latest)
{
	local_s = tzdb_clamp(local_s);
	if (!z) {
		*earliest = *latest = local_s;
		return 1;
	}
	int64_t lo = local_s - TZDB_OFFSET_MAX - 1;
	int64_t hi = local_s - TZDB_OFFSET_MIN + 1;
	int64_t ev[TZDB_EVENTS_MAX];
	size_t n_ev = tzdb_events(z, lo, hi, ev);

	int64_t found[TZDB_EVENTS_MAX + 1];
	int n_found = 0;
	for (size_t i = 0; i <= n_ev; i++) {
		int32_t off = tz_offset_at(z, i == 0 ? lo : ev[i - 1]);
		int64_t u = local_s - off;
		if (tz_offset_at(z, u) != off)
			continue;
		bool dup = false;
		for (int j = 0; j < n_found; j++)
			dup = dup || found[j] == u;
		if (!dup)
			found[n_found++] = u;
	}
	if (n_found > 0) {
		*earliest = *latest = found[0];
		for (int j = 1; j < n_found; j++) {
			if (found[j] < *earliest)
				*earliest = found[j];
			if (found[j] > *latest)
				*latest = found[j];
		}
		return n_found;
	}

	/* A gap: the transition t with t + before <= local_s < t + after. */
	for (size_t i = 0; i < n_ev; i++) {
		int64_t t = ev[i];
		int32_t before = tz_offset_at(z, t - 1);
		int32_t after = tz_offset_at(z, t);
		if (after > before && t + before <= local_s &&
		    local_s < t + after) {
			*earliest = *latest = t;
			return 0;
		}
	}
	/* Unreachable for consistent data; answer as if the offset held. */
	*earliest = *latest = local_s - tz_offset_at(z, local_s);
	return 0;
}

int64_t tz_local_to_utc(const struct tz_zone *z, int y, int mon, int day,
			int hour, int min)
{
	int64_t year = (int64_t)y + tzdb_floor_div((int64_t)mon - 1, 12);
	int m = (int)((int64_t)mon - 1 - tzdb_floor_div((int64_t)mon - 1, 12) * 12) + 1;
	int64_t local_s = days_from_civil(year, m, day) * SECS_PER_DAY +
			  (int64_t)hour * 3600 + (int64_t)min * 60;
	int64_t earliest, latest;
	tz_local_resolve(z, local_s, &earliest, &latest);
	return earliest;
}

/* ---- the POSIX TZ string of the footer ---- */

struct tzdb_scan {
	const char *s, *end;
};

static bool tzdb_scan_digit(const struct tzdb_scan *sc)
{
	return sc->s < sc->end && *sc->s >= '0' && *sc->s <= '9';
}

static bool tzdb_scan_char(struct tzdb_scan *sc, char c)
{
	if (sc->s < sc->end && *sc->s == c) {
		sc->s++;
		return true;
	}
	return false;
}

/* An unsigned decimal of at most 3 digits in [min, max]. */
static bool tzdb_scan_num(struct tzdb_scan *sc, int min, int max, int *out)
{
	int v = 0, digits = 0;
	while (tzdb_scan_digit(sc) && digits < 4) {
		v = v * 10 + (*sc->s - '0');
		sc->s++;
		digits++;
	}
	if (digits == 0 || digits > 3 || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* A zone abbreviation: 3+ letters, or <3+ of [A-Za-z0-9+-]>. */
static bool tzdb_scan_abbr(struct tzdb_scan *sc)
{
	const char *start;
	if (tzdb_scan_char(sc, '<')) {
		start = sc->s;
		while (sc->s < sc->end && *sc->s != '>') {
			char c = *sc->s;
			if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '+' || c == '-'))
				return false;
			sc->s++;
		}
		if (sc->s - start < 3)
			return false;
		return tzdb_scan_char(sc, '>');
	}
	start = sc->s;
	while (sc->s < sc->end && ((*sc->s >= 'A' && *sc->s <= 'Z') ||
				   (*sc->s >= 'a' && *sc->s <= 'z')))
		sc->s++;
	return sc->s - start >= 3;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as signed seconds. */
static bool tzdb_scan_hms(struct tzdb_scan *sc, int max_hours, int32_t *out)
{
	int sign = 1, h, m = 0, s = 0;
	if (tzdb_scan_char(sc, '-'))
		sign = -1;
	else
		tzdb_scan_char(sc, '+');
	if (!tzdb_scan_num(sc, 0, max_hours, &h))
		return false;
	if (tzdb_scan_char(sc, ':')) {
		if (!tzdb_scan_num(sc, 0, 59, &m))
			return false;
		if (tzdb_scan_char(sc, ':') && !tzdb_scan_num(sc, 0, 59, &s))
			return false;
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return true;
}

/* Jn | n | Mm.w.d, then an optional /time (default 02:00). */
static bool tzdb_scan_date(struct tzdb_scan *sc, struct tz_date *d)
{
	memset(d, 0, sizeof *d);
	if (tzdb_scan_char(sc, 'J')) {
		d->kind = TZ_DATE_JULIAN1;
		if (!tzdb_scan_num(sc, 1, 365, &d->day))
			return false;
	} else if (tzdb_scan_char(sc, 'M')) {
		d->kind = TZ_DATE_MWD;
		if (!tzdb_scan_num(sc, 1, 12, &d->day) ||
		    !tzdb_scan_char(sc, '.') ||
		    !tzdb_scan_num(sc, 1, 5, &d->week) ||
		    !tzdb_scan_char(sc, '.') ||
		    !tzdb_scan_num(sc, 0, 6, &d->wday))
			return false;
	} else {
		d->kind = TZ_DATE_JULIAN0;
		if (!tzdb_scan_num(sc, 0, 365, &d->day))
			return false;
	}
	d->time = 2 * 3600;
	if (tzdb_scan_char(sc, '/'))
		return tzdb_scan_hms(sc, TZDB_RULE_HOURS_MAX, &d->time);
	return true;
}

/* Parses the footer s[0..len). An empty footer is valid (no rule). A DST
 * part without transition dates is refused: zic never writes one, and
 * POSIX leaves its meaning to the implementation. */
static int tzdb_parse_rule(const char *s, size_t len, struct tz_rule *r)
{
	struct tzdb_scan sc = { s, s + len };
	int32_t posix;
	memset(r, 0, sizeof *r);
	if (len == 0)
		return 0;
	if (!tzdb_scan_abbr(&sc) || !tzdb_scan_hms(&sc, 24, &posix))
		return -1;
	r->present = true;
	r->std_off = -posix;
	if (sc.s == sc.end)
		return 0;
	if (!tzdb_scan_abbr(&sc))
		return -1;
	r->has_dst = true;
	r->dst_off = r->std_off + 3600;
	if (sc.s < sc.end && *sc.s != ',') {
		if (!tzdb_scan_hms(&sc, 24, &posix))
			return -1;
		r->dst_off = -posix;
	}
	if (!tzdb_scan_char(&sc, ',') || !tzdb_scan_date(&sc, &r->start) ||
	    !tzdb_scan_char(&sc, ',') || !tzdb_scan_date(&sc, &r->end))
		return -1;
	return sc.s == sc.end ? 0 : -1;
}

/* ---- the TZif file ---- */

struct tzdb_buf {
	const unsigned char *p;
	size_t len, pos;
};

struct tzdb_header {
	int version;
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static const unsigned char *tzdb_take(struct tzdb_buf *b, uint64_t n)
{
	if (n > b->len - b->pos)
		return NULL;
	const unsigned char *p = b->p + b->pos;
	b->pos += (size_t)n;
	return p;
}

static uint32_t tzdb_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t tzdb_be64(const unsigned char *p)
{
	uint64_t v = (uint64_t)tzdb_be32(p) << 32 | tzdb_be32(p + 4);
	return (int64_t)v;
}

static int tzdb_read_header(struct tzdb_buf *b, struct tzdb_header *h)
{
	const unsigned char *p = tzdb_take(b, 44);
	if (!p || memcmp(p, "TZif", 4) != 0)
		return -1;
	switch (p[4]) {
	case 0: h->version = 1; break;
	case '2': h->version = 2; break;
	case '3': h->version = 3; break;
	case '4': h->version = 4; break;
	default: return -1;
	}
	h->isutcnt = tzdb_be32(p + 20);
	h->isstdcnt = tzdb_be32(p + 24);
	h->leapcnt = tzdb_be32(p + 28);
	h->timecnt = tzdb_be32(p + 32);
	h->typecnt = tzdb_be32(p + 36);
	h->charcnt = tzdb_be32(p + 40);
	return 0;
}

static uint64_t tzdb_block_size(const struct tzdb_header *h, int time_size)
{
	return (uint64_t)h->timecnt * (uint64_t)(time_size + 1) +
	       (uint64_t)h->typecnt * 6 + h->charcnt +
	       (uint64_t)h->leapcnt * (uint64_t)(time_size + 4) +
	       h->isstdcnt + h->isutcnt;
}

/* Reads one data block (time_size 4 or 8 bytes) into z. */
static int tzdb_read_block(struct tzdb_buf *b, const struct tzdb_header *h,
			   int time_size, struct tz_zone *z)
{
	int32_t offs[TZDB_TYPES_MAX];
	if (h->typecnt == 0 || h->typecnt > TZDB_TYPES_MAX || h->leapcnt != 0 ||
	    (h->isstdcnt != 0 && h->isstdcnt != h->typecnt) ||
	    (h->isutcnt != 0 && h->isutcnt != h->typecnt))
		return -1;
	const unsigned char *p = tzdb_take(b, tzdb_block_size(h, time_size));
	if (!p)
		return -1;
	const unsigned char *times = p;
	const unsigned char *idx = times + (size_t)h->timecnt * time_size;
	const unsigned char *types = idx + h->timecnt;
	for (uint32_t i = 0; i < h->typecnt; i++) {
		const unsigned char *t = types + 6 * (size_t)i;
		int32_t off = (int32_t)tzdb_be32(t);
		if (off < TZDB_OFFSET_MIN || off > TZDB_OFFSET_MAX || t[4] > 1 ||
		    (h->charcnt > 0 && t[5] >= h->charcnt))
			return -1;
		offs[i] = off;
	}
	z->first_off = offs[0];
	z->n_trans = h->timecnt;
	if (h->timecnt == 0)
		return 0;
	z->trans = malloc(h->timecnt * sizeof *z->trans);
	z->trans_off = malloc(h->timecnt * sizeof *z->trans_off);
	if (!z->trans || !z->trans_off)
		return -1;
	for (uint32_t i = 0; i < h->timecnt; i++) {
		const unsigned char *t = times + (size_t)i * time_size;
		int64_t at = time_size == 8 ? tzdb_be64(t)
					    : (int64_t)(int32_t)tzdb_be32(t);
		if ((i > 0 && at <= z->trans[i - 1]) || idx[i] >= h->typecnt)
			return -1;
		z->trans[i] = at;
		z->trans_off[i] = offs[idx[i]];
	}
	return 0;
}

static int tzdb_parse(const unsigned char *data, size_t len, struct tz_zone *z)
{
	struct tzdb_buf b = { data, len, 0 };
	struct tzdb_header h;
	if (tzdb_read_header(&b, &h) < 0)
		return -1;
	if (h.version == 1)
		return tzdb_read_block(&b, &h, 4, z);
	if (!tzdb_take(&b, tzdb_block_size(&h, 4)) ||
	    tzdb_read_header(&b, &h) < 0 || h.version < 2 ||
	    tzdb_read_block(&b, &h, 8, z) < 0)
		return -1;
	/* The footer: "\n" TZ-string "\n". */
	const unsigned char *nl = tzdb_take(&b, 1);
	if (!nl || *nl != '\n')
		return -1;
	const char *footer = (const char *)data + b.pos;
	size_t rest = len - b.pos;
	const char *close = memchr(footer, '\n', rest < TZDB_FOOTER_MAX + 1 ?
					      rest : TZDB_FOOTER_MAX + 1);
	if (!close)
		return -1;
	return tzdb_parse_rule(footer, (size_t)(close - footer), &z->rule);
}

static void tzdb_zone_free(struct tz_zone *z)
{
	if (!z)
		return;
	free(z->name);
	free(z->trans);
	free(z->trans_off);
	free(z);
}

/* Reads a whole regular file of at most TZDB_FILE_MAX bytes. */
static unsigned char *tzdb_slurp(const char *path, size_t *len)
{
	unsigned char *data = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 44 ||
	    st.st_size > TZDB_FILE_MAX)
		goto fail;
	size_t want = (size_t)st.st_size, got = 0;
	data = malloc(want);
	if (!data)
		goto fail;
	while (got < want) {
		ssize_t n = read(fd, data + got, want - got);
		if (n <= 0)
			goto fail;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return data;
fail:
	free(data);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static struct tz_zone *tzdb_load(const char *name)
{
	char path[TZDB_PATH_MAX];
	unsigned char *data = NULL;
	struct tz_zone *z = NULL;
	size_t len = 0;
	/* getenv is safe here as long as nothing calls setenv concurrently,
	 * which rouse never does after start-up. */
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = TZDB_DEFAULT_DIR;
	int n = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		goto fail;
	data = tzdb_slurp(path, &len);
	if (!data)
		goto fail;
	z = calloc(1, sizeof *z);
	if (!z)
		goto fail;
	z->name = strdup(name);
	if (!z->name || tzdb_parse(data, len, z) < 0)
		goto fail;
	free(data);
	return z;
fail:
	free(data);
	tzdb_zone_free(z);
	return NULL;
}

/* ---- names and the cache ---- */

static bool tzdb_name_ok(const char *name)
{
	if (!name || !*name || *name == '/')
		return false;
	size_t len = strlen(name);
	if (len > TZDB_NAME_MAX || name[len - 1] == '/' || strstr(name, "//") ||
	    strstr(name, ".."))
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '+' ||
		      c == '-' || c == '/'))
			return false;
	}
	return true;
}

static size_t tzdb_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % TZDB_BUCKETS;
}

/* Caller holds tzdb_lock. */
static struct tzdb_entry *tzdb_find(size_t bucket, const char *name)
{
	for (struct tzdb_entry *e = tzdb_buckets[bucket]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

const struct tz_zone *tzdb_get(const char *name)
{
	if (!tzdb_name_ok(name))
		return NULL;
	size_t bucket = tzdb_hash(name);

	pthread_mutex_lock(&tzdb_lock);
	struct tzdb_entry *e = tzdb_find(bucket, name);
	const struct tz_zone *found = e ? e->zone : NULL;
	pthread_mutex_unlock(&tzdb_lock);
	if (e)
		return found;

	struct tz_zone *z = tzdb_load(name);

	pthread_mutex_lock(&tzdb_lock);
	e = tzdb_find(bucket, name);
	if (e) {
		found = e->zone;
		pthread_mutex_unlock(&tzdb_lock);
		tzdb_zone_free(z);
		return found;
	}
	if (!z && tzdb_n_unknown >= TZDB_UNKNOWN_MAX) {
		pthread_mutex_unlock(&tzdb_lock);
		return NULL;
	}
	size_t len = strlen(name);
	e = malloc(sizeof *e + len + 1);
	if (!e) {
		pthread_mutex_unlock(&tzdb_lock);
		tzdb_zone_free(z);
		return NULL;
	}
	memcpy(e->name, name, len + 1);
	e->zone = z;
	e->next = tzdb_buckets[bucket];
	tzdb_buckets[bucket] = e;
	if (!z)
		tzdb_n_unknown++;
	pthread_mutex_unlock(&tzdb_lock);
	return z;
}

void tzdb_clear_cache(void)
{
	pthread_mutex_lock(&tzdb_lock);
	for (size_t i = 0; i < TZDB_BUCKETS; i++) {
		struct tzdb_entry *e = tzdb_buckets[i];
		while (e) {
			struct tzdb_entry *next = e->next;
			tzdb_zone_free(e->zone);
			free(e);
			e = next;
		}
		tzdb_buckets[i] = NULL;
	}
	tzdb_n_unknown = 0;
	pthread_mutex_unlock(&tzdb_lock);
}
