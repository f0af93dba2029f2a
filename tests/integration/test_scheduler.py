"""Scheduling across restarts and clock offsets, retries with backoff,
expiry and crash-looping deliveries (checklist 5, 8, 10 with the file
transports)."""

import collections
import os
import re
import shutil
import time

from rouse_harness import (NOTE_TEMPLATES, compile_shim, events, job_status,
                           maildir_messages, parse_rfc3339, rfc3339,
                           send_req, statuses, wait_for, wait_state)

BASE_S = 1.0      # retry.base of the harness config
MAX_S = 5.0       # retry.max of the harness config
MS = 0.0015       # event times carry milliseconds


def delivered_jobs(maildir):
    out = collections.Counter()
    for name, raw, msg in maildir_messages(maildir):
        mid = str(msg["Message-ID"]).strip()
        m = re.fullmatch(r"<([0-9a-f-]{36})@shop\.example>", mid)
        assert m, "%s: Message-ID %r" % (name, mid)
        out[m.group(1)] += 1
    return out


def assert_exhausted(job):
    """The job ended failed with "attempts exhausted" as its reason (the
    job's `reason` or the detail of its one `failed` event)."""
    assert job["state"] == "failed", job
    failed = events(job, "failed")
    assert len(failed) == 1, job
    why = (job.get("reason") or "") + " | " + (failed[0].get("detail") or "")
    assert "attempts exhausted" in why, job


def break_maildir(d):
    """Makes deliveries into the maildir fail, for root too: new/ becomes
    a regular file."""
    new = d.maildir / "new"
    wait_for(lambda: new.is_dir(), timeout=10,
             message="maildir new/ not created at start-up")
    os.rename(new, d.maildir / "new.saved")
    new.write_text("not a directory\n")


def repair_maildir(d):
    new = d.maildir / "new"
    new.unlink()
    os.rename(d.maildir / "new.saved", new)


def test_scheduled_and_deferred_fire_after_restart_at_due_time(daemon):
    """Checklist 8: scheduled and cap-deferred jobs survive a restart and
    fire at their due time under a clock offset, not earlier."""
    d = daemon(templates=NOTE_TEMPLATES,
               config={"limits": {"per_user": [
                   {"channel": "email", "max": 1, "window": "24h"}]}})
    d.start()
    now = time.time()
    at_a = now + 2 * 3600
    with d.client() as c:
        a = c.request(send_req("sa", "email", key="sched-a",
                               at=rfc3339(at_a)))
        assert a.get("ok") is True and a["state"] == "scheduled", a
        p = c.request(send_req("sp", "push", key="sched-p",
                               at=rfc3339(now + 26 * 3600)))
        assert p.get("ok") is True and p["state"] == "scheduled", p
        b1 = c.request(send_req("capped", "email", key="cap-1", code="one"))
        assert b1.get("ok") is True, b1
        j1 = wait_state(c, b1["job"], "sent")
        b2 = c.request(send_req("capped", "email", key="cap-2", code="two"))
        assert b2.get("ok") is True, b2
        j2 = wait_state(c, b2["job"], "deferred")
        sent1 = parse_rfc3339(events(j1, "sent")[-1]["at"])
        dev = events(j2, "deferred")
        assert dev and "until" in dev[-1], j2
        until2 = parse_rfc3339(dev[-1]["until"])
        assert abs(until2 - (sent1 + 24 * 3600)) <= 1.0, (j1, j2)
        deferred_detail = dev[-1].get("detail", "")
    assert set(delivered_jobs(d.maildir)) == {b1["job"]}
    assert d.stop() == 0

    def run(offset, settle=2.5):
        d.faketime = offset
        d.start()
        time.sleep(settle)
        with d.client() as c:
            st = statuses(c, [a["job"], p["job"], b2["job"]])
        assert d.stop() == 0
        return {j: x["job"] for j, x in st.items()}

    # +1h: A not due yet (2h), B2 not due (24h), P not due (26h).
    st = run("+1h")
    assert st[a["job"]]["state"] == "scheduled", st[a["job"]]
    assert st[b2["job"]]["state"] == "deferred", st[b2["job"]]
    assert st[p["job"]]["state"] == "scheduled", st[p["job"]]
    assert set(delivered_jobs(d.maildir)) == {b1["job"]}
    assert d.push_file.exists() is False or not d.push_file.read_text()

    # +3h: A is due and goes; the others still wait.
    d.faketime = "+3h"
    d.start()
    with d.client() as c:
        ja = wait_state(c, a["job"], "sent", timeout=15)
        time.sleep(1.0)
        assert job_status(c, b2["job"])["state"] == "deferred"
        assert job_status(c, p["job"])["state"] == "scheduled"
    assert d.stop() == 0
    sent_a = parse_rfc3339(events(ja, "sent")[-1]["at"])
    assert sent_a >= at_a - 0.001, "A sent at %s, due %s" % (
        events(ja, "sent")[-1]["at"], rfc3339(at_a))
    assert set(delivered_jobs(d.maildir)) == {b1["job"], a["job"]}

    # +25h: past the cap window; B2 goes, P (26h) still waits.
    d.faketime = "+25h"
    d.start()
    with d.client() as c:
        jb = wait_state(c, b2["job"], "sent", timeout=15)
        time.sleep(1.0)
        assert job_status(c, p["job"])["state"] == "scheduled"
    assert d.stop() == 0
    sent_b = parse_rfc3339(events(jb, "sent")[-1]["at"])
    assert sent_b >= until2 - 0.001

    # +27h: P goes out to the push outbox.
    d.faketime = "+27h"
    d.start()
    with d.client() as c:
        wait_state(c, p["job"], "sent", timeout=15)
    counts = delivered_jobs(d.maildir)
    assert counts == {b1["job"]: 1, a["job"]: 1, b2["job"]: 1}, counts
    # The deferral names the rule as configured.
    assert deferred_detail == "limit email 1/24h", deferred_detail


def test_retry_backoff_then_delivery(daemon):
    """Checklist 10 with the maildir transport: while the maildir cannot be
    written the job is retried with gaps >= retry.base and each retry's
    `until` <= its time + retry.max; once repaired it is delivered."""
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    break_maildir(d)
    with d.client() as c:
        a = c.request(send_req("rb", "email", key="retry-1"))
        assert a.get("ok") is True, a
        jid = a["job"]
        wait_for(lambda: len(events(job_status(c, jid), "retry")) >= 3,
                 timeout=40, interval=0.2)
        assert job_status(c, jid)["state"] != "sent"
        repair_maildir(d)
        job = wait_state(c, jid, "sent", timeout=MAX_S + 10)
    assert delivered_jobs(d.maildir) == {jid: 1}
    sends = [parse_rfc3339(e["at"]) for e in events(job, "sending")]
    retries = events(job, "retry")
    assert len(retries) >= 3, job
    assert job["attempts"] == len(sends) == len(retries) + 1, job
    for i in range(1, len(sends)):
        assert sends[i] - sends[i - 1] >= BASE_S - MS, \
            "attempts %d and %d only %.3fs apart" % (
                i, i + 1, sends[i] - sends[i - 1])
    for i, r in enumerate(retries):
        at, until = parse_rfc3339(r["at"]), parse_rfc3339(r["until"])
        assert until <= at + MAX_S + MS, r
        assert until >= at + BASE_S - MS, r
        assert sends[i + 1] >= until - MS, \
            "attempt %d started before its retry time: %r" % (i + 2, r)
    # Each retry says why: the transport's error, with its text (the
    # maildir cannot be written: new/ is not a directory).
    for r in retries:
        detail = r.get("detail") or ""
        assert detail and not detail.rstrip().endswith(":"), r


def test_expires_before_next_retry(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    break_maildir(d)
    with d.client() as c:
        a = c.request(send_req("ex", "email", key="exp-1",
                               expires=rfc3339(time.time() + 2.5)))
        assert a.get("ok") is True, a
        job = wait_state(c, a["job"], ("expired", "sent", "failed"),
                         timeout=20)
        assert job["state"] == "expired", job
        assert job["attempts"] >= 1 and events(job, "retry"), job
        assert not events(job, "sent"), job
        repair_maildir(d)
        # A healthy job after the repair goes out; the expired one never.
        b = c.request(send_req("ex2", "email", key="exp-2"))
        wait_state(c, b["job"], "sent")
        assert job_status(c, a["job"])["state"] == "expired"
    assert delivered_jobs(d.maildir) == {b["job"]: 1}


def test_attempts_exhausted_on_persistent_failure(daemon):
    d = daemon(templates=NOTE_TEMPLATES,
               config={"retry": {"max_attempts": 3, "base": "1s",
                                 "max": "1s"}})
    d.start()
    break_maildir(d)
    with d.client() as c:
        a = c.request(send_req("ax", "email", key="exh-1"))
        job = wait_state(c, a["job"], ("failed", "sent", "expired"),
                         timeout=20)
    assert job["state"] == "failed", job
    assert job["attempts"] == 3, job
    assert len(events(job, "retry")) == 2, job
    assert_exhausted(job)


def test_expires_in_past_at_send(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    with d.client() as c:
        a = c.request(send_req("late", "email", key="past-1",
                               expires=rfc3339(time.time() - 3600)))
        assert a.get("ok") is True, a
        b = c.request(send_req("fine", "email", key="past-2"))
        job = wait_state(c, a["job"], ("expired", "sent", "failed"))
        assert job["state"] == "expired", job
        assert not events(job, "sent"), job
        wait_state(c, b["job"], "sent")
    assert delivered_jobs(d.maildir) == {b["job"]: 1}


def test_crash_looping_delivery_ends_failed(daemon, tmp_path):
    """Checklist 5 with the maildir transport: a delivery that never
    finishes, interrupted by SIGKILL run after run, ends failed "attempts
    exhausted" after max_attempts tries, while other users' jobs go out."""
    shim = compile_shim("hang_rename", tmp_path)
    max_attempts = 3
    d = daemon(templates=NOTE_TEMPLATES, preload=[shim],
               env={"ROUSE_HANG_MARKER": "hang-me@example.com"},
               config={"retry": {"max_attempts": max_attempts, "base": "1s",
                                 "max": "1s"}})
    d.start()
    others = []
    with d.client() as c:
        for i in range(3):
            a = c.request(send_req("o%d" % i, "email", key="other-0-%d" % i))
            others.append(a["job"])
        for j in others:
            wait_state(c, j, "sent")
        h = c.request(send_req("hang", "email", to="hang-me@example.com",
                               key="hang-1"))
        assert h.get("ok") is True, h
        hid = h["job"]
    hung_runs = 0
    for run in range(max_attempts + 1):
        if run:
            d.start()
        with d.client() as c:
            for i in range(2):
                a = c.request(send_req("o%d" % i, "email",
                                       key="other-%d-%d" % (run + 1, i)))
                assert a.get("ok") is True, a
                others.append(a["job"])
            job = wait_for(
                lambda: (lambda j: j if j["state"] == "failed" or
                         (j["state"] == "sending" and
                          j["attempts"] == hung_runs + 1) else None)(
                    job_status(c, hid)), timeout=15, interval=0.1)
        if job["state"] == "failed":
            break
        time.sleep(0.5)  # let the delivery reach the hanging rename
        d.kill()
        hung_runs += 1
    assert hung_runs == max_attempts, (hung_runs, job)
    with d.client() as c:
        job = wait_state(c, hid, "failed")
        last = {}

        def others_sent():
            last.update((j, (a["job"]["state"], a["job"]["attempts"],
                             [e.get("detail") for e in
                              events(a["job"], "failed")]))
                        for j, a in statuses(c, others).items())
            return all(v[0] == "sent" for v in last.values())
        try:
            wait_for(others_sent, timeout=20)
        except AssertionError:
            raise AssertionError("other users' jobs not all sent: %r" % {
                j: v for j, v in last.items() if v[0] != "sent"})
    assert job["attempts"] == max_attempts, job
    assert_exhausted(job)
    assert hid not in delivered_jobs(d.maildir)
    assert set(others) <= set(delivered_jobs(d.maildir))
