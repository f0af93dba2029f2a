"""The intake ops a client uses day to day (status, stats, preview, send's
idempotency and timing fields) and the rousectl client with its exit
codes.
"""

import json
import time


from rouse_harness import (NOTE_TEMPLATES, events, is_uuid,
                           job_status, jsonl, maildir_messages,
                           parse_rfc3339, rfc3339, send_req, statuses,
                           wait_for, wait_state)

TEMPLATES = dict(NOTE_TEMPLATES)
TEMPLATES.update({
    "mail_only/subject.mustache": "Hi {{name}}",
    "mail_only/text.mustache": "Hello {{name}}\n",
    "mail_only/html.mustache": "<p>Hello {{name}}</p>\n",
    "promo/sms.mustache": "{{brand}} sale starts today",
})


def ok(ans):
    assert ans.get("ok") is True, ans
    return ans


def err(ans, code):
    assert ans.get("ok") is False, ans
    assert ans["error"]["code"] == code, ans
    assert isinstance(ans["error"]["message"], str) and \
        ans["error"]["message"], ans
    return ans["error"]["message"]


def subsequence(needles, hay):
    it = iter(hay)
    return all(any(n == h for h in it) for n in needles)


# -- status ---------------------------------------------------------------------

def test_status_shape_and_history(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    t0 = time.time()
    with d.client() as c:
        at = rfc3339(time.time() - 5)
        expires = rfc3339(time.time() + 3600)
        ans = ok(c.request(send_req("u42", key="welcome:u42", locale="fr",
                                    id="abc", at=at, expires=expires)))
        assert ans["id"] == "abc"
        assert ans["state"] == "queued"
        job = ans["job"]
        assert is_uuid(job)
        st = wait_state(c, job, "sent")
    t1 = time.time()
    assert st["id"] == job
    assert st["user"] == "u42"
    assert st["channel"] == "email"
    assert st["to"] == "u42@example.com"
    assert st["template"] == "note"
    assert st["key"] == "welcome:u42"
    assert st["locale"] == "fr"
    assert st["attempts"] == 1
    created = parse_rfc3339(st["created"])
    assert t0 - 2 <= created <= t1 + 2
    assert parse_rfc3339(st["at"]) == parse_rfc3339(at), st
    assert parse_rfc3339(st["expires"]) == parse_rfc3339(expires), st
    whats = [e["what"] for e in st["events"]]
    assert subsequence(["queued", "sending", "sent"], whats), whats
    assert whats.count("sent") == 1 and whats.count("sending") == 1, whats
    assert "failed" not in whats and "retry" not in whats
    last = None
    for e in st["events"]:
        assert set(e) >= {"at", "what", "detail"}, e
        at = parse_rfc3339(e["at"])
        assert t0 - 2 <= at <= t1 + 2, e
        if last is not None:
            assert at >= last, st["events"]
        last = at
    # The delivered message is that job's.
    msgs = maildir_messages(d.maildir)
    assert len(msgs) == 1
    assert str(msgs[0][2]["Message-ID"]) == "<%s@shop.example>" % job


def test_status_of_unknown_job(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        msg = err(c.request({"op": "status",
                             "job": "00000000-0000-4000-8000-000000000000"}),
                  "bad_request")
        assert "no such job" in msg and "job" in msg
        ans = c.request({"op": "status"})
        assert "job" in err(ans, "bad_request")


# -- stats ------------------------------------------------------------------------

def test_stats_counts_per_channel_and_state(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    later = rfc3339(time.time() + 3600)
    with d.client() as c:
        s0 = ok(c.request({"op": "stats"}))
        assert s0["sent"] == {"email": 0, "sms": 0, "push": 0}
        ok(c.request({"op": "unsubscribe", "user": "gone",
                      "channel": "email", "source": "test"}))
        jobs = [ok(c.request(send_req(u, ch)))["job"]
                for u, ch in (("a", "email"), ("b", "email"), ("a", "sms"),
                              ("a", "push"))]
        sup = ok(c.request(send_req("gone")))
        assert sup["state"] == "suppressed"
        sched = ok(c.request(send_req("c", "sms", at=later)))
        assert sched["state"] == "scheduled"
        for j in jobs:
            wait_state(c, j, "sent")
        s = ok(c.request({"op": "stats"}))
    assert s["jobs"]["email"]["sent"] == 2, s
    assert s["jobs"]["email"]["suppressed"] == 1, s
    assert s["jobs"]["sms"]["sent"] == 1, s
    assert s["jobs"]["sms"]["scheduled"] == 1, s
    assert s["jobs"]["push"]["sent"] == 1, s
    assert s["jobs"]["email"].get("queued", 0) == 0, s
    assert s["sent"] == {"email": 2, "sms": 1, "push": 1}, s
    assert s["opt_outs"] == 1, s
    assert isinstance(s["queue_depth"], int) and s["queue_depth"] >= 0
    assert isinstance(s["uptime_s"], (int, float)) and s["uptime_s"] >= 0
    assert s0["opt_outs"] == 0


# -- preview ------------------------------------------------------------------------

def test_preview_each_channel(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        before = ok(c.request({"op": "stats"}))["jobs"]
        p = ok(c.request({"op": "preview", "template": "mail_only",
                          "channel": "email", "vars": {"name": "<Bo>"},
                          "id": 7}))
        assert p["id"] == 7
        assert set(p["parts"]) == {"subject", "text", "html"}
        assert p["parts"]["subject"] == "Hi <Bo>"
        assert p["parts"]["text"] == "Hello <Bo>\n"
        assert p["parts"]["html"] == "<p>Hello &lt;Bo&gt;</p>\n"
        p = ok(c.request({"op": "preview", "template": "note",
                          "channel": "email",
                          "vars": {"name": "Al", "code": 5}}))
        assert set(p["parts"]) <= {"subject", "text", "html"}
        assert not p["parts"].get("html")
        assert p["parts"]["text"] == "Hello Al, your code is 5.\n"
        p = ok(c.request({"op": "preview", "template": "promo",
                          "channel": "sms", "vars": {"brand": "Shop"}}))
        assert p["parts"] == {
            "sms": "Shop sale starts today\nReply STOP to opt out"}
        assert (p["encoding"], p["segments"]) == ("GSM-7", 1)
        p = ok(c.request({"op": "preview", "template": "promo",
                          "channel": "sms", "vars": {"brand": "商城"},
                          "locale": "zh-CN"}))
        assert p["parts"]["sms"] == "商城 sale starts today\n回复TD退订"
        assert (p["encoding"], p["segments"]) == ("UCS-2", 1)
        p = ok(c.request({"op": "preview", "template": "note",
                          "channel": "push",
                          "vars": {"name": "Al", "code": "x"}}))
        assert p["parts"] == {"push_title": "Note for Al",
                              "push_body": "code x"}
        after = ok(c.request({"op": "stats"}))["jobs"]
    assert after == before, "preview stored something"
    assert not (d.maildir / "new").exists() or \
        not list((d.maildir / "new").iterdir())
    assert jsonl(d.sms_file) == [] and jsonl(d.push_file) == []


def test_preview_errors(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        msg = err(c.request({"op": "preview", "template": "nope",
                             "channel": "email"}), "unknown_template")
        assert "nope" in msg
        msg = err(c.request({"op": "preview", "template": "mail_only",
                             "channel": "sms"}), "unknown_template")
        assert "mail_only" in msg and "sms" in msg
        msg = err(c.request({"op": "preview", "template": "promo",
                             "channel": "push"}), "unknown_template")
        assert "promo" in msg and "push" in msg
        err(c.request({"op": "preview", "template": "note",
                       "channel": "fax"}), "unknown_channel")
        ans = c.request({"op": "preview", "template": "../etc",
                         "channel": "email"})
        assert ans.get("ok") is False, ans
        assert ans["error"]["code"] in ("unknown_template", "bad_request")
        # Same answers for a send, which then stores nothing.
        msg = err(c.request(send_req("u1", "sms", template="mail_only")),
                  "unknown_template")
        assert "sms" in msg
        err(c.request(send_req("u1", template="nope")), "unknown_template")
        s = ok(c.request({"op": "stats"}))
    assert all(sum(v.values()) == 0 for v in s["jobs"].values()), s


def test_preview_of_shipped_templates_with_rousectl(make_daemon):
    d = make_daemon().start()
    r = d.ctl("preview", "--template", "winback", "--channel", "email",
              "--locale", "zh-CN", "--var", "brand=优品商城",
              "--var", "name=王小明")
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert ans["parts"]["subject"] == "想你了!优品商城 期待与您重逢"
    assert "王小明" in ans["parts"]["text"]


# -- send: idempotency, at, expires, tz ---------------------------------------------

def test_duplicate_key_returns_the_first_job(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        a = ok(c.request(send_req("u1", key="camp-1:u1:email")))
        assert not a.get("duplicate")
        b = ok(c.request(send_req("u1", key="camp-1:u1:email", code="2nd")))
        assert b["job"] == a["job"]
        assert b["duplicate"] is True
        wait_state(c, a["job"], "sent")
        c3 = ok(c.request(send_req("u1", key="camp-1:u1:email")))
        assert c3["job"] == a["job"] and c3["duplicate"] is True
        assert c3["state"] == "sent"
        # Pipelined duplicates in one burst resolve to one job too.
        answers = c.pipeline([send_req("u2", key="burst") for _ in range(10)])
        ids = {ok(x)["job"] for x in answers}
        assert len(ids) == 1
        assert sum(1 for x in answers if x.get("duplicate")) == 9
        wait_state(c, ids.pop(), "sent")
        s = ok(c.request({"op": "stats"}))
    assert s["sent"]["email"] == 2
    msgs = maildir_messages(d.maildir)
    assert len(msgs) == 2
    bodies = [m.get_body(("plain",)).get_content() for _, _, m in msgs]
    assert not any("2nd" in b for b in bodies)
    d.kill()
    d.start()
    with d.client() as c:
        again = ok(c.request(send_req("u1", key="camp-1:u1:email")))
        assert again["job"] == a["job"] and again["duplicate"] is True


def test_expires_in_the_past_ends_expired(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        ans = ok(c.request(send_req("u1",
                                    expires=rfc3339(time.time() - 3600))))
        st = wait_state(c, ans["job"], ("expired", "sent", "failed"))
        assert st["state"] == "expired", st
        assert st["attempts"] == 0, st
        assert events(st, "expired"), st
        fine = ok(c.request(send_req("u2",
                                     expires=rfc3339(time.time() + 3600))))
        wait_state(c, fine["job"], "sent")
    assert len(maildir_messages(d.maildir)) == 1


def test_at_in_the_future_is_scheduled(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    later = time.time() + 3600
    with d.client() as c:
        ans = ok(c.request(send_req("u1", at=rfc3339(later))))
        assert ans["state"] == "scheduled", ans
        soon = ok(c.request(send_req("u2", at=rfc3339(time.time() + 1.5))))
        assert soon["state"] == "scheduled", soon
        past = ok(c.request(send_req("u3", at=rfc3339(time.time() - 60))))
        assert past["state"] == "queued", past
        wait_state(c, past["job"], "sent")
        st = wait_state(c, soon["job"], "sent", timeout=10)
        sent_at = parse_rfc3339(events(st, "sent")[-1]["at"])
        assert sent_at >= parse_rfc3339(st["at"]), st
        time.sleep(0.5)
        st = job_status(c, ans["job"])
        assert st["state"] == "scheduled", st
        assert abs(parse_rfc3339(st["at"]) - later) < 0.01, st
        # its history uses only the protocol's event names: one "queued"
        # event saying until when it waits
        assert [e["what"] for e in st["events"]] == ["queued"], st
        assert abs(parse_rfc3339(st["events"][0]["until"]) - later) < 0.01
    assert len(maildir_messages(d.maildir)) == 2


def test_send_field_errors(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    with d.client() as c:
        msg = err(c.request(send_req("u1", tz="Mars/Olympus_Mons")),
                  "bad_request")
        assert msg.startswith("tz"), msg
        ok(c.request(send_req("u1", tz="Asia/Shanghai")))
        err(c.request(send_req("u1", "sms", to="12345")), "bad_request")
        err(c.request(send_req("u1", at="tomorrow")), "bad_request")
        err(c.request(send_req("u1", key="k" * 201)), "bad_request")
        ok(c.request(send_req("u1", key="k" * 200)))
        err(c.request(send_req("u1", channel="fax", to="x")),
            "unknown_channel")
        err(c.request({"op": "frobnicate"}), "unknown_op")
        ans = c.request({"op": "enroll", "user": "u1",
                         "sequence": "winback_30d"})
        assert ans["error"] == {"code": "bad_request",
                                "message": "contact: required"}, ans
        ans = c.request({"op": "enroll", "user": "u1", "contact": {},
                         "sequence": "no_such_sequence"})
        assert ans["error"]["code"] == "unknown_sequence", ans
        assert "no_such_sequence" in ans["error"]["message"], ans
        # an event no sequence exits on ends nothing
        ans = c.request({"op": "event", "user": "u1", "name": "purchase"})
        assert ans == {"id": None, "ok": True, "exited": 0}, ans
        assert c.request({"op": "ping"})["ok"] is True


# -- rousectl -----------------------------------------------------------------------

def ctl_json(r):
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def test_rousectl_ping_send_status(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    r = d.ctl("ping")
    assert r.returncode == 0, r.stderr
    ans = ctl_json(r)
    ans.pop("id", None)
    assert ans == {"ok": True, "version": "0.1.0"}
    r = d.ctl("send", "--user", "u1", "--channel", "email",
              "--to", "u1@example.com", "--template", "note",
              "--var", "name=Bob", "--var", "code=a=b c", "--key", "ctl-1")
    assert r.returncode == 0, r.stderr
    ans = ctl_json(r)
    assert ans["ok"] is True and is_uuid(ans["job"])
    job = ans["job"]
    r = d.ctl("send", "--user", "u1", "--channel", "sms",
              "--to", "+15550123", "--template", "note",
              "--vars", json.dumps({"name": "Sam", "code": "42"}))
    assert r.returncode == 0, r.stderr
    sms_job = ctl_json(r)["job"]
    r = d.ctl("send", "--user", "u1", "--channel", "push",
              "--to", "apns:abc123", "--template", "note",
              "--var", "name=P", "--var", "code=1")
    assert r.returncode == 0, r.stderr
    push_job = ctl_json(r)["job"]
    with d.client() as c:
        for j in (job, sms_job, push_job):
            wait_state(c, j, "sent")
    r = d.ctl("status", job)
    assert r.returncode == 0, r.stderr
    st = ctl_json(r)["job"]
    assert st["id"] == job and st["state"] == "sent" and st["key"] == "ctl-1"
    msg = maildir_messages(d.maildir)[0][2]
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == \
        "Hello Bob, your code is a=b c.\n"
    sms, = jsonl(d.sms_file)
    assert sms["text"] == "Hello Sam, code 42" and sms["to"] == "+15550123"
    push, = jsonl(d.push_file)
    assert (push["platform"], push["token"]) == ("apns", "abc123")
    # Duplicate key through the client.
    r = d.ctl("send", "--user", "u1", "--channel", "email",
              "--to", "u1@example.com", "--template", "note", "--key",
              "ctl-1")
    assert r.returncode == 0
    assert ctl_json(r)["job"] == job and ctl_json(r)["duplicate"] is True


def test_rousectl_exit_codes(make_daemon, tmp_path):
    d = make_daemon(templates=TEMPLATES).start()
    r = d.ctl("status", "00000000-0000-4000-8000-000000000000")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert ctl_json(r)["ok"] is False
    r = d.ctl("send", "--user", "u1", "--channel", "email", "--to",
              "u1@example.com", "--template", "nope")
    assert r.returncode == 1
    assert ctl_json(r)["error"]["code"] == "unknown_template"
    # Usage errors the client can see for itself.
    for args in (["send", "--user"], ["status"], ["status", "a", "b"], [],
                 ["--bogus-global", "x", "ping"], ["--socket"]):
        r = d.ctl(*args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip() and not r.stdout.strip(), (args, r)
    # Requests the daemon refuses: printed, exit 1 (never 0).
    for args, code in ((["frobnicate"], "unknown_op"),
                       (["send", "--user", "u1", "--bogus-flag", "x"],
                        "bad_request"),
                       (["unsubscribe", "--channel", "email"],
                        "bad_request")):
        r = d.ctl(*args)
        assert r.returncode in (1, 2), (args, r.returncode, r.stdout)
        if r.returncode == 1:
            assert ctl_json(r)["error"]["code"] == code, (args, r.stdout)
    import subprocess
    from rouse_harness import ROUSECTL
    r = subprocess.run([ROUSECTL, "--socket", str(tmp_path / "none.sock"),
                        "ping"], capture_output=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip()


def test_rousectl_opt_out_and_consent(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    r = d.ctl("unsubscribe", "--user", "u1", "--channel", "sms",
              "--source", "cli", "--reason", "asked by phone")
    assert r.returncode == 0, r.stderr
    assert ctl_json(r)["cancelled"] == 0
    r = d.ctl("consent", "--user", "u1")
    assert r.returncode == 0, r.stderr
    ans = ctl_json(r)
    assert ans["effective"]["sms"] == "opted_out"
    assert [(h["action"], h["channel"], h["source"], h["reason"])
            for h in ans["history"]] == [
        ("unsubscribe", "sms", "cli", "asked by phone")]
    r = d.ctl("resubscribe", "--user", "u1", "--channel", "sms",
              "--source", "cli")
    assert r.returncode == 0, r.stderr
    ans = ctl_json(d.ctl("consent", "--user", "u1"))
    assert ans["effective"]["sms"] == "subscribed"
    assert len(ans["history"]) == 2
    r = d.ctl("stats")
    assert r.returncode == 0 and isinstance(ctl_json(r)["opt_outs"], int)


def test_rousectl_bulk_keeps_order(make_daemon):
    d = make_daemon(templates=TEMPLATES).start()
    reqs = []
    for i in range(100):
        if i % 10 == 3:
            reqs.append({"op": "status", "id": i, "job": "no-such-job"})
        elif i % 10 == 7:
            reqs.append({"op": "ping", "id": i})
        else:
            reqs.append(send_req("b%d" % i, id=i, code=str(i)))
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reqs)
    r = d.ctl("bulk", input=data.encode())
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 100, (len(lines), r.stderr)
    answers = [json.loads(l) for l in lines]
    assert [a["id"] for a in answers] == list(range(100))
    jobs = []
    for i, a in enumerate(answers):
        if i % 10 == 3:
            assert a["ok"] is False, a
        else:
            assert a["ok"] is True, a
        if i % 10 not in (3, 7):
            jobs.append(a["job"])
    assert len(set(jobs)) == 80
    with d.client() as c:
        st = statuses(c, jobs)
        assert all(a["ok"] for a in st.values())
    good = "".join(json.dumps({"op": "ping", "id": i}) + "\n"
                   for i in range(100))
    r = d.ctl("bulk", input=good.encode())
    assert r.returncode == 0
    assert [json.loads(l)["id"] for l in r.stdout.decode().splitlines()] == \
        list(range(100))
    wait_for(lambda: len(maildir_messages(d.maildir)) == 80, timeout=20)
