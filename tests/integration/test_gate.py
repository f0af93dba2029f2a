"""The gate in front of the transports: opt-outs and their history, per-user
caps and transport rate shaping (checklist 31, 35, 43, 44, 45, 46), all
checked against what the outboxes receive and what survives a restart.
"""

import time

from rouse_harness import (NOTE_TEMPLATES, events, job_status, jsonl,
                           maildir_messages, parse_rfc3339, rfc3339,
                           send_req, statuses, wait_for, wait_state)


def ok(ans):
    assert ans.get("ok") is True, ans
    return ans


def optout(c, op, **fields):
    req = {"op": op}
    req.update(fields)
    return ok(c.request(req))


def delivered_jobs(d):
    """Job ids of everything in the three outboxes (one entry per
    delivery)."""
    out = []
    for _, _, msg in maildir_messages(d.maildir):
        out.append(str(msg["Message-ID"]).strip("<> ").split("@")[0])
    out += [r["job"] for r in jsonl(d.sms_file)]
    out += [r["job"] for r in jsonl(d.push_file)]
    return out


def settle(c, jobs, timeout=15.0):
    """Waits until no job of jobs is queued or sending; returns
    {id: job}."""
    def check():
        st = statuses(c, jobs)
        for a in st.values():
            assert a.get("ok") is True, a
            if a["job"]["state"] in ("queued", "sending"):
                return None
        return {j: a["job"] for j, a in st.items()}
    return wait_for(check, timeout, 0.1)


# -- checklist 31 ---------------------------------------------------------

def test_opt_outs_survive_sigkill(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    with d.client() as c:
        a = optout(c, "unsubscribe", user="u42", channel="email",
                   source="app-settings", reason="too many mails")
        assert a["cancelled"] == 0
        optout(c, "unsubscribe", user="u7", channel="all", source="support")
        optout(c, "unsubscribe", address="Alice@Example.COM",
               channel="email", source="complaint")
        optout(c, "unsubscribe", address="+8613800138000", channel="sms",
               source="sms-reply")
    d.kill()
    d.start()
    with d.client() as c:
        suppressed = []
        for req in (send_req("u42"),
                    send_req("u7", "sms"),
                    send_req("u7", "push"),
                    send_req("u7", "email"),
                    send_req("someone", to="alice@example.com"),
                    send_req("other", to="ALICE@example.com"),
                    send_req("u9", "sms", to="+8613800138000")):
            ans = ok(c.request(req))
            assert ans["state"] == "suppressed", (req, ans)
            assert ans["reason"] == "opted_out", (req, ans)
            suppressed.append(ans["job"])
        # Not covered: other channels, users and addresses still flow.
        flowing = []
        for req in (send_req("u42", "sms"), send_req("u42", "push"),
                    send_req("u8", "email"),
                    send_req("bob", to="bob@example.com"),
                    send_req("u9", "sms", to="+8613800138001")):
            ans = ok(c.request(req))
            assert ans["state"] == "queued", (req, ans)
            flowing.append(ans["job"])
        for j in flowing:
            wait_state(c, j, "sent")
        for j in suppressed:
            st = job_status(c, j)
            assert st["state"] == "suppressed", st
            assert st["reason"] == "opted_out", st
            assert st["attempts"] == 0, st
    got = delivered_jobs(d)
    assert sorted(got) == sorted(flowing)


# -- checklist 35 ---------------------------------------------------------

def test_resubscribe_lifts_and_history_survives_restart(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    with d.client() as c:
        t0 = time.time()
        optout(c, "unsubscribe", user="u42", channel="email",
               source="app-settings", reason="too many mails")
        blocked = ok(c.request(send_req("u42")))
        assert blocked["state"] == "suppressed"
        optout(c, "resubscribe", user="u42", channel="email",
               source="support", reason="asked to get them again")
        t1 = time.time()
        again = ok(c.request(send_req("u42")))
        assert again["state"] == "queued", again
        wait_state(c, again["job"], "sent")
        cons = ok(c.request({"op": "consent", "user": "u42"}))
    assert cons["effective"]["email"] == "subscribed"
    assert cons["effective"]["sms"] == "subscribed"
    hist = cons["history"]
    assert [(h["action"], h["channel"], h["source"], h["reason"])
            for h in hist] == [
        ("unsubscribe", "email", "app-settings", "too many mails"),
        ("resubscribe", "email", "support", "asked to get them again")]
    for h in hist:
        assert t0 - 2 <= parse_rfc3339(h["at"]) <= t1 + 2, h
    assert parse_rfc3339(hist[0]["at"]) <= parse_rfc3339(hist[1]["at"])
    assert delivered_jobs(d) == [again["job"]]

    d.restart()
    with d.client() as c:
        after = ok(c.request({"op": "consent", "user": "u42"}))
        assert after["history"] == hist
        assert after["effective"] == cons["effective"]
    d.kill()
    d.start()
    with d.client() as c:
        after = ok(c.request({"op": "consent", "user": "u42"}))
        assert after["history"] == hist
        assert ok(c.request(send_req("u42")))["state"] == "queued"


def test_opt_out_by_address_shows_in_consent(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    with d.client() as c:
        optout(c, "unsubscribe", address="Alice@Example.COM",
               channel="email", source="complaint", reason="spam button")
        cons = ok(c.request({"op": "consent",
                             "address": "alice@example.com"}))
        assert cons["effective"]["email"] == "opted_out"
        assert cons["effective"]["sms"] == "subscribed"
        assert [(h["action"], h["source"]) for h in cons["history"]] == [
            ("unsubscribe", "complaint")]
        other = ok(c.request({"op": "consent",
                              "address": "bob@example.com"}))
        assert other["effective"]["email"] == "subscribed"
        assert other["history"] == []


# -- unsubscribe cancels what it covers -----------------------------------

def test_unsubscribe_cancels_scheduled_jobs(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    later = rfc3339(time.time() + 3600)
    with d.client() as c:
        email_jobs = [ok(c.request(send_req("u9", key="k%d" % i, at=later)))
                      for i in range(3)]
        assert all(a["state"] == "scheduled" for a in email_jobs)
        sms_job = ok(c.request(send_req("u9", "sms", at=later)))
        other = ok(c.request(send_req("u10", at=later)))
        a = optout(c, "unsubscribe", user="u9", channel="email",
                   source="test")
        assert a["cancelled"] == 3, a
        for j in email_jobs:
            st = job_status(c, j["job"])
            assert st["state"] == "cancelled", st
            assert events(st, "cancelled"), st
        assert job_status(c, sms_job["job"])["state"] == "scheduled"
        assert job_status(c, other["job"])["state"] == "scheduled"
        # Nothing more to cancel the second time.
        assert optout(c, "unsubscribe", user="u9", channel="email",
                      source="test")["cancelled"] == 0
        a = optout(c, "unsubscribe", user="u9", channel="all", source="test")
        assert a["cancelled"] == 1, a
        assert job_status(c, sms_job["job"])["state"] == "cancelled"
    d.kill()
    d.start()
    with d.client() as c:
        for j in email_jobs + [sms_job]:
            assert job_status(c, j["job"])["state"] == "cancelled"
        assert job_status(c, other["job"])["state"] == "scheduled"


def test_unsubscribe_cancels_deferred_jobs(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config={"limits": {
        "per_user": [{"channel": "email", "max": 1, "window": "24h"}]}})
    d.start()
    with d.client() as c:
        first = ok(c.request(send_req("u5")))["job"]
        wait_state(c, first, "sent")
        second = ok(c.request(send_req("u5")))["job"]
        third = ok(c.request(send_req("u5")))["job"]
        wait_state(c, second, "deferred")
        wait_state(c, third, "deferred")
        a = optout(c, "unsubscribe", address="u5@example.com",
                   channel="email", source="test")
        assert a["cancelled"] == 2, a
        assert job_status(c, second)["state"] == "cancelled"
        assert job_status(c, third)["state"] == "cancelled"
        assert job_status(c, first)["state"] == "sent"


# -- checklist 43 ---------------------------------------------------------

def test_per_user_cap_defers_to_the_exact_instant(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config={"limits": {
        "per_user": [{"channel": "email", "max": 1, "window": "24h"}],
        "on_limit": "defer"}})
    d.start()
    with d.client() as c:
        first = ok(c.request(send_req("u42")))["job"]
        a = wait_state(c, first, "sent")
        second = ok(c.request(send_req("u42", code="second")))["job"]
        b = wait_state(c, second, "deferred")
        # Other users and channels are not held back by u42's email cap.
        other = ok(c.request(send_req("u43")))["job"]
        sms = ok(c.request(send_req("u42", "sms")))["job"]
        wait_state(c, other, "sent")
        wait_state(c, sms, "sent")
    dev = events(b, "deferred")
    assert dev, b
    detail = dev[-1]["detail"]
    assert "email" in detail and ("1/24h" in detail or "1/1d" in detail), \
        dev
    until = parse_rfc3339(dev[-1]["until"])
    counted = [parse_rfc3339(e["at"]) for e in events(a, "sending")] + \
        [parse_rfc3339(e["at"]) for e in events(a, "sent")]
    assert counted, a
    # Exactly the first send + 24h (to the millisecond the API shows).
    assert any(abs(until - (t + 86400)) < 0.0005 for t in counted), \
        (dev[-1], events(a))
    assert sorted(delivered_jobs(d)) == sorted([first, other, sms])

    d.stop()
    d.faketime = "+25h"
    d.start()
    with d.client() as c:
        b = wait_state(c, second, "sent")
        sent_at = parse_rfc3339(events(b, "sent")[-1]["at"])
        assert sent_at >= until, (sent_at, until)
        assert b["attempts"] == 1
    assert sorted(delivered_jobs(d)) == sorted([first, other, sms, second])
    bodies = [m.get_body(("plain",)).get_content()
              for _, _, m in maildir_messages(d.maildir)]
    assert sum("code is second" in b for b in bodies) == 1, bodies


def test_on_limit_drop_suppresses_as_rate_limited(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config={"limits": {
        "per_user": [{"channel": "email", "max": 1, "window": "24h"}],
        "on_limit": "drop"}})
    d.start()
    with d.client() as c:
        first = ok(c.request(send_req("u42")))["job"]
        wait_state(c, first, "sent")
        second = ok(c.request(send_req("u42")))["job"]
        b = wait_state(c, second, ("suppressed", "failed", "cancelled",
                                   "expired"))
        assert b["state"] == "suppressed", b
        assert b["reason"] == "rate_limited", b
        assert b["attempts"] == 0, b
        other = ok(c.request(send_req("u43")))["job"]
        wait_state(c, other, "sent")
    assert sorted(delivered_jobs(d)) == sorted([first, other])


# -- checklist 44 ---------------------------------------------------------

CROSS_CAP = {"limits": {"per_user": [{"channel": "*", "max": 3,
                                      "window": "7d"}]}}


def test_cross_channel_cap_holds_across_sigkill(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config=CROSS_CAP).start()
    with d.client() as c:
        three = [ok(c.request(send_req("u1", ch)))["job"]
                 for ch in ("email", "sms", "push")]
        for j in three:
            wait_state(c, j, "sent")
        fourth = ok(c.request(send_req("u1", "email", code="4th")))["job"]
        st = wait_state(c, fourth, "deferred")
        dev = events(st, "deferred")[-1]
        assert "3/7d" in dev["detail"], dev
        until = parse_rfc3339(dev["until"])
        assert 7 * 86400 - 120 < until - time.time() <= 7 * 86400, dev
        other = ok(c.request(send_req("u2", "sms")))["job"]
        wait_state(c, other, "sent")
    d.kill()
    d.start()
    with d.client() as c:
        fifth = ok(c.request(send_req("u1", "push", code="5th")))["job"]
        wait_state(c, fifth, "deferred")
        time.sleep(1.0)
        st = statuses(c, [fourth, fifth])
        assert st[fourth]["job"]["state"] == "deferred", st[fourth]
        assert st[fifth]["job"]["state"] == "deferred", st[fifth]
    assert sorted(delivered_jobs(d)) == sorted(three + [other])


# -- checklist 45 ---------------------------------------------------------

def test_pipelined_burst_never_overshoots_the_cap(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config=CROSS_CAP).start()
    chans = ("email", "sms", "push")
    with d.client() as c:
        answers = c.pipeline([send_req("u1", chans[i % 3], code=str(i))
                              for i in range(50)])
        jobs = [ok(a)["job"] for a in answers]
        assert len(set(jobs)) == 50
        final = settle(c, jobs)
    states = [j["state"] for j in final.values()]
    assert states.count("sent") == 3, states
    assert states.count("deferred") == 47, states
    got = delivered_jobs(d)
    assert len(got) == 3, got
    assert sorted(got) == sorted(j for j, s in final.items()
                                 if s["state"] == "sent")


# -- checklist 46 (first half) ----------------------------------------------

def test_email_transport_rate_shapes_bursts(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES, config={"limits": {
        "transports": {"email": {"rate": 10, "burst": 5}}}}).start()
    with d.client() as c:
        answers = c.pipeline([send_req("r%d" % i) for i in range(100)])
        jobs = [ok(a)["job"] for a in answers]
    new = d.maildir / "new"
    wait_for(lambda: new.is_dir() and len(list(new.iterdir())) >= 100,
             timeout=40, interval=0.2)
    times = sorted(f.stat().st_mtime_ns for f in new.iterdir())
    assert len(times) == 100
    worst = 0
    j = 0
    for i in range(len(times)):
        while times[i] - times[j] >= 1_000_000_000:
            j += 1
        worst = max(worst, i - j + 1)
    assert worst <= 16, "a 1-second window held %d messages" % worst
    # 100 messages at 10/s after a burst of 5 take about 9.5 s.
    assert (times[-1] - times[0]) / 1e9 >= 8.0
    with d.client() as c:
        final = settle(c, jobs, timeout=10)
    assert all(j["state"] == "sent" for j in final.values())
