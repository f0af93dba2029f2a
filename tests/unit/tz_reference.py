#!/usr/bin/python3
"""Reference values for the tzdb and quiet unit tests, from Python's zoneinfo.

Usage: tz_reference.py tzdb|quiet   (reads the zones from $TZDIR when set,
otherwise from the system tz database, like the C code does)

Prints one case per line, for the C tests to check:

  O <zone> <utc_s> <offset_s>               tz_offset_at
  N <zone> <after_s> <utc_s>                tz_next_change (just before
                                            each change of offset)
  L <zone> <y> <mon> <day> <h> <min> <utc_s>  tz_local_to_utc (earlier of
                                            an overlap; in a gap the instant
                                            the clocks jump)
  Q <zone> <start_min> <end_min> <utc_ms> <until_ms>   quiet_until_ms
  F <zone> <utc_ms> <rfc3339>               quiet_format_local

The expected answers are computed independently of the C algorithms: the
offset comes from zoneinfo itself; local->UTC keeps the instants u whose
own offset satisfies u + offset(u) == wall time, and bisects for the jump
in a gap; the end of a quiet window is found by walking the UTC minutes
forward until the wall clock reads a time outside the window (every offset
and transition of the zones used is a whole number of minutes).
"""

import os
import random
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone

if os.environ.get("TZDIR"):
    zoneinfo.reset_tzpath([os.environ["TZDIR"]])

T1970 = 0
T2101 = int(datetime(2101, 1, 1, tzinfo=timezone.utc).timestamp())
NAIVE_EPOCH = datetime(1970, 1, 1)

TZDB_ZONES = [
    "UTC", "Asia/Shanghai", "America/New_York", "Europe/London",
    "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe",
    "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham",
    # negative DST, rule times past 24:00 or below 0, 2 h DST, a skipped
    # day, half-hour and 45-minute offsets, a table running to 2087
    "Europe/Dublin", "Asia/Jerusalem", "America/Nuuk", "Antarctica/Troll",
    "Pacific/Apia", "America/St_Johns", "Asia/Kathmandu",
    "Africa/Casablanca", "America/Santiago", "Asia/Tehran",
]

# (zone, local date of a clock change) for the every-minute sweeps
CHANGE_DAYS = [
    ("America/New_York", (2026, 3, 8)), ("America/New_York", (2026, 11, 1)),
    ("Europe/London", (2026, 3, 29)), ("Europe/London", (2026, 10, 25)),
    ("Australia/Sydney", (2026, 4, 5)), ("Australia/Sydney", (2026, 10, 4)),
]

_zones = {}


def zone(name):
    if name not in _zones:
        _zones[name] = zoneinfo.ZoneInfo(name)
    return _zones[name]


def off(tz, u):
    return int(datetime.fromtimestamp(u, tz).utcoffset().total_seconds())


def transitions(tz, lo, hi, step=86400):
    """(t, before, after) for each offset change in [lo, hi), found by
    stepping and bisecting."""
    out = []
    u, o = lo, off(tz, lo)
    while u < hi:
        v = min(u + step, hi)
        ov = off(tz, v)
        if ov != o:
            a, b = u, v            # off(a) == o, off(b) != o
            while b - a > 1:
                m = (a + b) // 2
                if off(tz, m) == o:
                    a = m
                else:
                    b = m
            out.append((b, o, off(tz, b)))
            u, o = b, off(tz, b)
        else:
            u, o = v, ov
    return out


def wall(w):
    """Local seconds -> (y, mon, day, h, min) (w a whole minute)."""
    d = NAIVE_EPOCH + timedelta(seconds=w)
    return d.year, d.month, d.day, d.hour, d.minute


def local_to_utc(tz, w):
    naive = NAIVE_EPOCH + timedelta(seconds=w)
    o0 = int(naive.replace(tzinfo=tz, fold=0).utcoffset().total_seconds())
    o1 = int(naive.replace(tzinfo=tz, fold=1).utcoffset().total_seconds())
    valid = sorted({w - o for o in (o0, o1) if off(tz, w - o) == o})
    if valid:
        return valid[0]
    # A gap: fold=0 gives the offset before the jump, fold=1 the one after.
    before, after = o0, o1
    lo, hi = w - after, w - before
    assert after > before and off(tz, lo) == before and off(tz, hi) == after
    while hi - lo > 1:
        m = (lo + hi) // 2
        if off(tz, m) == before:
            lo = m
        else:
            hi = m
    return hi


def emit_local(name, tz, w):
    w -= w % 60
    y, mo, d, h, mi = wall(w)
    print(f"L {name} {y} {mo} {d} {h} {mi} {local_to_utc(tz, w)}")


def tzdb_cases():
    rng = random.Random(20261124)
    for name in TZDB_ZONES:
        tz = zone(name)
        for t, before, after in transitions(tz, T1970, T2101):
            for u in (t - 1, t, t + 1):
                print(f"O {name} {u} {off(tz, u)}")
            for u in (t - 600, t - 1):
                print(f"N {name} {u} {t}")
            for w in (t + before, t + after):
                for d in (-3600, -60, 0, 60, 1800):
                    emit_local(name, tz, w + d)
        for _ in range(400):
            u = rng.randrange(T1970, T2101)
            print(f"O {name} {u} {off(tz, u)}")
        for _ in range(300):
            emit_local(name, tz, rng.randrange(T1970 + 2 * 86400, T2101))
    for name, (y, mo, d) in CHANGE_DAYS:
        tz = zone(name)
        w0 = int((datetime(y, mo, d) - NAIVE_EPOCH).total_seconds())
        for m in range(1440):
            emit_local(name, tz, w0 + 60 * m)
        u0 = w0 - off(tz, w0 - 86400)
        for m in range(0, 1440, 5):
            print(f"O {name} {u0 + 60 * m} {off(tz, u0 + 60 * m)}")


WINDOWS = [(1260, 480), (60, 180), (780, 840), (0, 90), (90, 150),
           (1320, 150), (120, 180), (60, 120), (1380, 0), (150, 1410),
           (0, 1439), (600, 600)]

QUIET_DAYS = CHANGE_DAYS + [
    ("Asia/Shanghai", (2026, 11, 23)),
    ("Australia/Lord_Howe", (2026, 4, 5)),
    ("Australia/Lord_Howe", (2026, 10, 4)),
    ("Pacific/Apia", (2011, 12, 29)),
    ("Asia/Kolkata", (2026, 6, 1)),
    ("Pacific/Chatham", (2026, 9, 27)),
]


def quiet_in(win, tod):
    start, end = win[0] * 60, win[1] * 60
    if start == end:
        return False
    if start < end:
        return start <= tod < end
    return tod >= start or tod < end


def quiet_tod(tz, u):
    return (u + off(tz, u)) % 86400


def quiet_cases():
    rng = random.Random(8)
    for name, (y, mo, d) in QUIET_DAYS:
        tz = zone(name)
        w0 = int((datetime(y, mo, d) - NAIVE_EPOCH).total_seconds())
        noon = w0 - 12 * 3600                     # noon the day before
        first = noon - off(zone(name), noon - 26 * 3600)
        first -= first % 60
        last = first + 2 * 86400                  # about noon the day after
        horizon = last + 3 * 86400
        n = (horizon - first) // 60 + 1
        tods = [quiet_tod(tz, first + 60 * i) for i in range(n)]
        for win in WINDOWS:
            # nxt[i]: first minute >= i whose wall time is not quiet
            nxt = [None] * n
            for i in range(n - 1, -1, -1):
                if not quiet_in(win, tods[i]):
                    nxt[i] = i
                elif i + 1 < n:
                    nxt[i] = nxt[i + 1]
            for i in range(0, (last - first) // 60, 10):
                u_ms = (first + 60 * i) * 1000
                if rng.random() < 0.3:
                    u_ms += rng.randrange(1, 60000)
                u_s = u_ms // 1000
                if not quiet_in(win, quiet_tod(tz, u_s)):
                    until = 0
                else:
                    # the first whole UTC minute after u_ms
                    j = nxt[(u_ms - first * 1000) // 60000 + 1]
                    assert j is not None
                    until = (first + 60 * j) * 1000
                print(f"Q {name} {win[0]} {win[1]} {u_ms} {until}")
    # random instants 1970-2100 in a few zones, walked minute by minute
    for name in ("Asia/Shanghai", "America/New_York", "Europe/London",
                 "Australia/Lord_Howe", "Pacific/Chatham", "UTC"):
        tz = zone(name)
        for _ in range(150):
            win = rng.choice(WINDOWS)
            u_ms = rng.randrange(T1970, T2101 - 5 * 86400) * 1000 + \
                rng.randrange(0, 1000)
            u_s = u_ms // 1000
            if not quiet_in(win, quiet_tod(tz, u_s)):
                until = 0
            else:
                m = u_s - u_s % 60 + 60
                while quiet_in(win, quiet_tod(tz, m)):
                    m += 60
                until = m * 1000
            print(f"Q {name} {win[0]} {win[1]} {u_ms} {until}")
    for name in TZDB_ZONES:
        tz = zone(name)
        for i in range(60):
            u_s = rng.randrange(T1970, T2101)
            ms = 0 if i % 2 else rng.randrange(0, 1000)
            dt = datetime.fromtimestamp(u_s, tz) + timedelta(milliseconds=ms)
            spec = "milliseconds" if ms else "seconds"
            print(f"F {name} {u_s * 1000 + ms} {dt.isoformat(timespec=spec)}")


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("tzdb", "quiet"):
        sys.stderr.write("usage: tz_reference.py tzdb|quiet\n")
        return 2
    if sys.argv[1] == "tzdb":
        tzdb_cases()
    else:
        quiet_cases()
    return 0


if __name__ == "__main__":
    sys.exit(main())
