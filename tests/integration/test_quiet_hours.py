"""Quiet hours in the recipient's IANA zone, DST-correct, checked against
Python's zoneinfo with the daemon's clock set by libfaketime (checklist
23; delivery-rules 6: quiet hours and caps compose, the later wins)."""

import datetime
from zoneinfo import ZoneInfo

from rouse_harness import (NOTE_TEMPLATES, events, parse_rfc3339, send_req,
                           wait_state)

QUIET = {"start": "21:00", "end": "08:00", "default_tz": "UTC",
         "channels": ["sms", "push"]}
UTC = datetime.timezone.utc


def expected_end(instant, zone):
    """The UTC instant quiet hours 21:00-08:00 end for a recipient in zone
    at instant, or None when not quiet (computed with zoneinfo)."""
    z = ZoneInfo(zone)
    local = instant.astimezone(z)
    if 8 <= local.hour < 21:
        return None
    day = local.date() if local.hour < 8 else \
        local.date() + datetime.timedelta(days=1)
    end = datetime.datetime(day.year, day.month, day.day, 8, 0, tzinfo=z)
    return end.astimezone(UTC)


def quiet_daemon(make_daemon, when, **conf):
    stamp = when.astimezone(UTC).strftime("@%Y-%m-%d %H:%M:%S")
    config = {"quiet_hours": QUIET}
    config.update(conf)
    return make_daemon(templates=NOTE_TEMPLATES, config=config,
                       faketime=stamp, env={"TZ": "UTC"})


def test_sms_at_23_shanghai_waits_for_08_while_email_goes(make_daemon):
    when = datetime.datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 23:00 +08
    d = quiet_daemon(make_daemon, when).start()
    with d.client() as c:
        sms = c.request(send_req("u1", "sms", tz="Asia/Shanghai"))["job"]
        mail = c.request(send_req("u1", "email", tz="Asia/Shanghai"))["job"]
        wait_state(c, mail, ("sent",))
        st = wait_state(c, sms, ("deferred",))
    ev = events(st, "deferred")[0]
    assert "quiet hours" in ev["detail"], ev
    assert "2026-11-24T08:00:00+08:00" in ev["detail"], ev
    assert "Asia/Shanghai" in ev["detail"], ev
    assert parse_rfc3339(ev["until"]) == \
        datetime.datetime(2026, 11, 24, 0, 0, tzinfo=UTC).timestamp()


# (UTC instant, zones): instants on and around DST change days.
CASES = [
    (datetime.datetime(2026, 11, 1, 5, 30, tzinfo=UTC),      # NY falls back
     ["America/New_York", "Europe/London", "Asia/Shanghai",
      "Australia/Sydney", "Asia/Kolkata", "UTC"]),
    (datetime.datetime(2026, 3, 8, 6, 30, tzinfo=UTC),       # NY springs
     ["America/New_York", "America/Los_Angeles", "Europe/Berlin",
      "Pacific/Chatham"]),
    (datetime.datetime(2026, 3, 28, 22, 30, tzinfo=UTC),     # EU springs
     ["Europe/London", "Europe/Berlin", "America/Sao_Paulo",
      "Asia/Tokyo"]),
]


def test_window_ends_match_zoneinfo_across_dst(make_daemon):
    for when, zones in CASES:
        d = quiet_daemon(make_daemon, when).start()
        with d.client() as c:
            jobs = {z: c.request(send_req("u-" + z, "sms", tz=z))["job"]
                    for z in zones}
            for zone, job in jobs.items():
                want = expected_end(when, zone)
                st = wait_state(c, job, ("deferred", "sent"))
                if want is None:
                    assert st["state"] == "sent", (when, zone, st)
                    continue
                assert st["state"] == "deferred", (when, zone, st)
                ev = events(st, "deferred")[0]
                got = parse_rfc3339(ev["until"])
                assert got == want.timestamp(), \
                    (when, zone, ev, want.isoformat())
                local = want.astimezone(ZoneInfo(zone))
                assert local.isoformat() in ev["detail"], (zone, ev)
        d.stop()


def test_default_zone_and_caps_compose(make_daemon):
    # 22:00 UTC: quiet in the default zone (UTC) until 08:00
    when = datetime.datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    caps = {"per_user": [{"channel": "*", "max": 1, "window": "12h"}]}
    d = quiet_daemon(make_daemon, when, limits=caps).start()
    with d.client() as c:
        mail = c.request(send_req("u2", "email"))["job"]
        wait_state(c, mail, ("sent",))
        # the cap allows u2 again at 10:00, later than the window's end
        sms = c.request(send_req("u2", "sms"))["job"]
        ev = events(wait_state(c, sms, ("deferred",)), "deferred")[0]
        assert parse_rfc3339(ev["until"]) >= datetime.datetime(
            2026, 11, 24, 10, 0, tzinfo=UTC).timestamp(), ev
        assert "quiet hours" not in ev["detail"], ev
        # u3 has no sends: the window's end wins
        sms = c.request(send_req("u3", "sms"))["job"]
        ev = events(wait_state(c, sms, ("deferred",)), "deferred")[0]
        assert parse_rfc3339(ev["until"]) == datetime.datetime(
            2026, 11, 24, 8, 0, tzinfo=UTC).timestamp(), ev
        assert "quiet hours 21:00-08:00 UTC" in ev["detail"], ev
        # push in Asia/Tokyo: 07:00 local, quiet until 08:00 (23:00 UTC)
        push = c.request(send_req("u4", "push", to={"platform": "fcm",
                                                     "token": "t"},
                                  tz="Asia/Tokyo"))["job"]
        st = wait_state(c, push, ("deferred",))
        assert parse_rfc3339(events(st, "deferred")[0]["until"]) == \
            datetime.datetime(2026, 11, 23, 23, 0, tzinfo=UTC).timestamp()
