"""Drip sequences through the socket: enroll, steps at their offsets,
exit events, restarts, opt-outs and skipped steps (config.md "Sequences",
protocol.md enroll/event, checklist 32)."""

import json
import time

from rouse_harness import (NOTE_TEMPLATES, jsonl, maildir_messages,
                           parse_rfc3339, wait_for)

# Second-scale offsets: day 0 email, "day 3" SMS, "day 7" push.
DRIP = {
    "winback_test": {
        "exit_on": ["purchase", "login"],
        "steps": [{"after": "0s", "channel": "email", "template": "note",
                   "vars": {"code": "E0"}},
                  {"after": "2s", "channel": "sms", "template": "note",
                   "vars": {"code": "S1"}},
                  {"after": "4s", "channel": "push", "template": "note",
                   "vars": {"code": "P2"}}],
    },
    "slow_test": {
        "exit_on": ["purchase"],
        "steps": [{"after": "0s", "channel": "email", "template": "note"},
                  {"after": "3s", "channel": "sms", "template": "note"}],
    },
}

CONTACT = {"email": "alice@example.com", "phone": "+8613800138000",
           "push": [{"platform": "fcm", "token": "tok-a"},
                    {"platform": "apns", "token": "tok-b"}]}


def drip_daemon(make_daemon, **kw):
    return make_daemon(templates=NOTE_TEMPLATES,
                       config={"sequences": DRIP}, **kw)


def enroll(c, user, sequence="winback_test", contact=None, **extra):
    req = {"op": "enroll", "user": user, "sequence": sequence,
           "contact": CONTACT if contact is None else contact,
           "vars": {"name": user}}
    req.update(extra)
    return c.request(req)


def enrollment(c, enr_id):
    ans = c.request({"op": "status", "enrollment": enr_id})
    assert ans["ok"] is True, ans
    return ans["enrollment"]


def outbox_counts(d, user):
    mails = [m for _, _, m in maildir_messages(d.maildir)
             if ("Note for %s" % user) in str(m["Subject"])]
    sms = [x for x in jsonl(d.sms_file) if ("Hello %s," % user) in x["text"]]
    push = [x for x in jsonl(d.push_file)
            if x["title"] == "Note for %s" % user]
    return mails, sms, push


def test_steps_arrive_in_order_once_each_at_their_offsets(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        t0 = time.time()
        ans = enroll(c, "u1")
        assert ans["ok"] is True and len(ans["enrollment"]) == 36, ans
        enr = ans["enrollment"]
        # a second enroll while active answers the same enrollment
        again = enroll(c, "u1")
        assert again == {"id": None, "ok": True, "enrollment": enr,
                         "duplicate": True}, again

        def all_sent():
            e = enrollment(c, enr)
            return e if e["state"] == "completed" else None
        e = wait_for(all_sent, timeout=20, message="steps not all sent")
    mails, sms, push = outbox_counts(d, "u1")
    assert len(mails) == 1 and len(sms) == 1 and len(push) == 2, \
        (mails, sms, push)
    assert "E0" in mails[0].get_body(("plain",)).get_content()
    assert "code S1" in sms[0]["text"] and sms[0]["to"] == "+8613800138000"
    assert sorted(p["token"] for p in push) == ["tok-a", "tok-b"]
    assert all(p["body"] == "code P2" for p in push)
    # offsets count from the enrollment's start, in order
    sms_at = parse_rfc3339(sms[0]["at"])
    push_at = min(parse_rfc3339(p["at"]) for p in push)
    assert sms_at - t0 >= 1.9, sms_at - t0
    assert push_at - t0 >= 3.9, push_at - t0
    assert sms_at < push_at
    steps = e["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2, 2], steps
    assert all(s["state"] == "sent" for s in steps), steps
    assert e["user"] == "u1" and e["sequence"] == "winback_test"
    # finished: enrolling again starts a new enrollment
    with d.client() as c:
        fresh = enroll(c, "u1", contact={"email": "alice@example.com"})
        assert fresh["ok"] is True and fresh["enrollment"] != enr, fresh
        assert "duplicate" not in fresh


def test_exit_event_cancels_pending_steps_in_the_same_commit(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        enr = enroll(c, "u2", sequence="slow_test")["enrollment"]
        other = enroll(c, "u3", sequence="slow_test")["enrollment"]
        wait_for(lambda: len(outbox_counts(d, "u2")[0]) == 1, timeout=10)
        ans = c.request({"op": "event", "user": "u2", "name": "purchase"})
        assert ans == {"id": None, "ok": True, "exited": 1}, ans
        # an event the sequence does not exit on changes nothing
        ans = c.request({"op": "event", "user": "u3", "name": "login"})
        assert ans["exited"] == 0, ans
        e = enrollment(c, enr)
        assert e["state"] == "exited" and "purchase" in e["detail"], e
        sms_step = [s for s in e["steps"] if s["step"] == 1][0]
        assert sms_step["state"] == "cancelled", e
        assert sms_step["reason"] == "exited", e
        time.sleep(4)
        assert outbox_counts(d, "u2")[1] == [], "exited step was sent"
        # the other user's enrollment went on
        assert len(outbox_counts(d, "u3")[1]) == 1
        assert enrollment(c, other)["state"] == "completed"
        # exiting again finds nothing active
        ans = c.request({"op": "event", "user": "u2", "name": "purchase"})
        assert ans["exited"] == 0, ans


def test_restart_mid_sequence_runs_due_steps_once(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        enr = enroll(c, "u4", sequence="slow_test")["enrollment"]
    wait_for(lambda: len(outbox_counts(d, "u4")[0]) == 1, timeout=10)
    d.kill()
    time.sleep(3.5)  # the SMS step falls due while the daemon is down
    d.start()
    with d.client() as c:
        e = wait_for(lambda: (lambda e: e if e["state"] == "completed"
                              else None)(enrollment(c, enr)), timeout=15)
    mails, sms, _ = outbox_counts(d, "u4")
    assert len(mails) == 1 and len(sms) == 1, (mails, sms)
    assert [s["state"] for s in e["steps"]] == ["sent", "sent"], e


def test_missing_contact_skips_the_step_and_goes_on(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        enr = enroll(c, "u5", contact={"email": "u5@example.com",
                                       "push": [{"platform": "fcm",
                                                 "token": "t5"}]})["enrollment"]
        e = wait_for(lambda: (lambda e: e if e["state"] == "completed"
                              else None)(enrollment(c, enr)), timeout=20)
    by_step = {s["step"]: s for s in e["steps"]}
    assert by_step[1]["state"] == "skipped", e
    assert by_step[1]["detail"] == "no phone contact", e
    assert by_step[0]["state"] == "sent" and by_step[2]["state"] == "sent"
    assert outbox_counts(d, "u5")[1] == []


def test_opted_out_channel_step_never_reaches_a_transport(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        enr = enroll(c, "u6")["enrollment"]
        wait_for(lambda: len(outbox_counts(d, "u6")[0]) == 1, timeout=10)
        ans = c.request({"op": "unsubscribe", "user": "u6",
                         "channel": "sms", "source": "app"})
        assert ans["ok"] is True and ans["cancelled"] == 1, ans
        e = wait_for(lambda: (lambda e: e if e["state"] == "completed"
                              else None)(enrollment(c, enr)), timeout=20)
    by_step = {}
    for s in e["steps"]:
        by_step.setdefault(s["step"], []).append(s)
    assert by_step[1][0]["state"] == "cancelled", e
    assert all(s["state"] == "sent" for s in by_step[2]), e
    assert outbox_counts(d, "u6")[1] == []
    assert len(outbox_counts(d, "u6")[2]) == 2


def test_step_jobs_carry_the_idempotency_key_and_vars(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    with d.client() as c:
        enr = enroll(c, "u7", locale="zh-CN", tz="Asia/Shanghai")["enrollment"]
        e = enrollment(c, enr)
        first = c.request({"op": "status", "job": e["steps"][0]["job"]})["job"]
        assert first["key"] == "%s:0" % enr, first
        assert first["tz"] == "Asia/Shanghai" and first["locale"] == "zh-CN"
        keys = sorted(c.request({"op": "status", "job": s["job"]})["job"]["key"]
                      for s in e["steps"] if s["step"] == 2)
        assert keys == ["%s:2" % enr, "%s:2:1" % enr], keys
        ans = c.request({"op": "status", "enrollment": "nope"})
        assert ans["ok"] is False and "enrollment" in ans["error"]["message"]


def test_sequences_are_checked_against_the_templates(make_daemon):
    bad = {"s": {"steps": [{"after": "0s", "channel": "email",
                            "template": "absent"}]}}
    d = make_daemon(templates=NOTE_TEMPLATES, config={"sequences": bad})
    d.start(expect_fail=True)
    assert "sequences.s.steps[0].template" in d.logs(), d.logs()
    bad = {"s": {"steps": [{"after": "0s", "channel": "fax",
                            "template": "note"}]}}
    d = make_daemon(templates=NOTE_TEMPLATES, config={"sequences": bad})
    d.start(expect_fail=True)
    assert "sequences.s.steps[0].channel" in d.logs(), d.logs()
    bad = {"s": {"steps": [{"channel": "sms", "template": "note"}]}}
    d = make_daemon(templates=NOTE_TEMPLATES, config={"sequences": bad})
    d.start(expect_fail=True)
    assert "sequences.s.steps[0].after: missing" in d.logs(), d.logs()


def test_rousectl_enroll_event_enrollment_consent(make_daemon):
    d = drip_daemon(make_daemon)
    d.start()
    r = d.ctl("enroll", "--user", "u8", "--sequence", "slow_test",
              "--email", "u8@example.com", "--phone", "+8613800000008",
              "--push", "fcm:tok8", "--var", "name=U8", "--tz", "UTC")
    assert r.returncode == 0, (r.stdout, r.stderr)
    enr = json.loads(r.stdout)["enrollment"]
    r = d.ctl("enrollment", enr)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["enrollment"]
    assert got["id"] == enr and got["sequence"] == "slow_test", got
    r = d.ctl("event", "--user", "u8", "--name", "purchase")
    assert json.loads(r.stdout)["exited"] == 1, r.stdout
    r = d.ctl("consent", "--user", "u8")
    assert r.returncode == 0 and json.loads(r.stdout)["history"] == []
    r = d.ctl("enroll", "--user", "u8", "--sequence", "slow_test",
              "--push", "nocolon")
    assert r.returncode == 2, r
    r = d.ctl("enroll", "--user", "u8", "--sequence", "nope")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["code"] == "unknown_sequence"
