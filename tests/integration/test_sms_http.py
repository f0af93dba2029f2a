"""SMS through an HTTP gateway (sms.transport "http"), against a real
Twilio-like server and a generic JSON gateway (http_mocks.py): request
shape, provider references, 21610, Retry-After, 5xx retries, ambiguous
outcomes, exactly-once delivery and connection reuse (checklist 18-22, 41,
46)."""

import json
import time

from http_mocks import JsonGatewayMock, TwilioMock, sms_segments
from rouse_harness import (events, job_status, parse_rfc3339, wait_for,
                           wait_state)

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "SENTINEL-twilio-auth-token-5f2a"


def twilio_daemon(make_daemon, mock, sms=None, **kw):
    conf = {"sms": {"transport": "http", "from": "+15550100",
                    "http": {"kind": "twilio", "url": mock.url,
                             "account_sid": SID,
                             "auth_token_env": "ROUSE_TEST_TWILIO",
                             "timeout": "3s"}}}
    if sms:
        conf["sms"].update(sms)
    env = {"ROUSE_TEST_TWILIO": TOKEN}
    return make_daemon(config=conf, env=env, **kw)


def sms_send(user, to, template="coupon_expiring", locale=None, **vars):
    req = {"op": "send", "user": user, "channel": "sms", "to": to,
           "template": template,
           "vars": dict({"name": "Alice", "brand": "Shop", "amount": "¥20",
                         "expiry": "11/30",
                         "link": "https://shop.example/c/XYZ"}, **vars)}
    if locale:
        req["locale"] = locale
    return req


def test_twilio_request_shape_and_sid(make_daemon, tmp_path):
    with TwilioMock(SID, TOKEN) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            req = sms_send("u1", "+8613800138000", locale="zh-CN")
            preview = c.request({"op": "preview", "template": req["template"],
                                 "channel": "sms", "locale": "zh-CN",
                                 "vars": req["vars"]})
            job = c.request(req)["job"]
            st = wait_state(c, job, ("sent",))
        (r,) = mock.requests("sms")
        assert r.method == "POST"
        assert r.path == "/2010-04-01/Accounts/%s/Messages.json" % SID
        assert r.headers["content-type"].startswith(
            "application/x-www-form-urlencoded")
        assert r.auth == (SID, TOKEN)
        assert r.form["To"] == "+8613800138000"
        assert r.form["From"] == "+15550100"
        # the body is exactly the rendered text, Chinese included
        assert r.form["Body"] == preview["parts"]["sms"]
        assert "回复TD退订" in r.form["Body"]
        assert st["provider_ref"] == r.ref and r.ref.startswith("SM")
        assert st["encoding"] == "UCS-2"
        assert st["segments"] == sms_segments(r.form["Body"])[1]
        sent = events(st, "sent")[0]
        assert r.ref in sent["detail"], sent
    # the auth token never reaches logs, answers or the store (41)
    assert TOKEN not in d.logs()
    assert TOKEN.encode() not in d.db.read_bytes()
    assert TOKEN not in json.dumps(st)


def test_21610_opts_the_number_out(make_daemon):
    with TwilioMock(SID, TOKEN, rules={"+8613800000001": "21610"}) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            job = c.request(sms_send("u2", "+8613800000001"))["job"]
            st = wait_state(c, job, ("failed",))
            assert st["reason"] == "opted_out", st
            assert "21610" in events(st, "failed")[0]["detail"]
            consent = c.request({"op": "consent",
                                 "address": "+8613800000001"})
            assert consent["effective"]["sms"] == "opted_out", consent
            (h,) = consent["history"]
            assert h["source"] == "provider_twilio_21610", h
            again = c.request(sms_send("u9", "+8613800000001"))
            assert again["state"] == "suppressed", again
            assert again["reason"] == "opted_out", again
            time.sleep(0.5)
        assert len(mock.requests("sms")) == 1


def test_retry_after_is_honoured_then_sent(make_daemon):
    rules = {"+8613800000002": ("429:2", 1), "+8613800000003": ("503:2", 1)}
    with TwilioMock(SID, TOKEN, rules=rules) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            jobs = [c.request(sms_send("u3", "+8613800000002"))["job"],
                    c.request(sms_send("u4", "+8613800000003"))["job"]]
            for j in jobs:
                st = wait_state(c, j, ("sent",), timeout=20)
                retry = events(st, "retry")[0]
                assert retry["until"], retry
        for number in ("+8613800000002", "+8613800000003"):
            first, second = [r for r in mock.requests("sms")
                             if r.form["To"] == number]
            assert first.status in (429, 503) and second.status == 201
            # no request for that job before Retry-After has passed
            assert second.at - first.answered_at >= 1.9, \
                (number, second.at - first.answered_at)


def test_500_is_retried_not_failed(make_daemon):
    with TwilioMock(SID, TOKEN, rules={"+8613800000004": ("500", 1)}) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            job = c.request(sms_send("u5", "+8613800000004"))["job"]
            st = wait_state(c, job, ("sent",), timeout=20)
        assert [e["what"] for e in st["events"]].count("failed") == 0
        assert "500" in events(st, "retry")[0]["detail"]
        assert [r.status for r in mock.requests("sms")] == [500, 201]


def test_timeout_after_sending_follows_on_ambiguous(make_daemon):
    with TwilioMock(SID, TOKEN, rules={"+8613800000005": "stall"}) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            job = c.request(sms_send("u6", "+8613800000005"))["job"]
            st = wait_state(c, job, ("failed",), timeout=20)
            assert st["reason"] == "ambiguous", st
        mock.release_stalled()
        assert len(mock.requests("sms")) == 1
    with TwilioMock(SID, TOKEN, rules={"+8613800000006": ("stall", 1)}) as m2:
        d = twilio_daemon(make_daemon, m2,
                          sms={"on_ambiguous": "retry"}).start()
        with d.client() as c:
            job = c.request(sms_send("u7", "+8613800000006"))["job"]
            st = wait_state(c, job, ("sent",), timeout=25)
            assert "unknown" in events(st, "retry")[0]["detail"]
        m2.release_stalled()


def test_gateway_down_is_retried_without_ambiguity(make_daemon):
    mock = TwilioMock(SID, TOKEN)  # bound, not listening: refused
    d = twilio_daemon(make_daemon, mock).start()
    with d.client() as c:
        job = c.request(sms_send("u8", "+8613800000007"))["job"]
        wait_for(lambda: events(job_status(c, job), "retry"), timeout=10)
        mock.start()
        try:
            st = wait_state(c, job, ("sent",), timeout=20)
        finally:
            mock.stop()
    assert "not sent" in events(st, "retry")[0]["detail"]


def test_2000_sms_exactly_once_over_reused_connections(make_daemon):
    with TwilioMock(SID, TOKEN) as mock:
        d = twilio_daemon(make_daemon, mock).start()
        numbers = ["+86139%08d" % i for i in range(2000)]
        with d.client() as c:
            answers = c.pipeline([sms_send("bulk%d" % i, n, name="用户%d" % i)
                                  for i, n in enumerate(numbers)])
            assert all(a["ok"] for a in answers)
            mock.wait_requests(2000, timeout=120, answered=True)
            time.sleep(1)
        reqs = mock.requests("sms")
        assert len(reqs) == 2000, len(reqs)
        assert sorted(r.form["To"] for r in reqs) == sorted(numbers)
        for r in reqs:
            i = int(r.form["To"][-8:])
            assert "用户%d" % i in r.form["Body"], r.form["Body"]
        assert mock.connections() <= 16, mock.connections()


def test_json_gateway_shape_and_id(make_daemon):
    with JsonGatewayMock(path="/v2/send") as gw:
        conf = {"sms": {"transport": "http", "from": "Shop",
                        "http": {"kind": "json",
                                 "url": gw.url + "/v2/send"}}}
        d = make_daemon(config=conf).start()
        with d.client() as c:
            job = c.request(sms_send("u10", "+8613800000010",
                                     locale="zh-CN"))["job"]
            st = wait_state(c, job, ("sent",))
        (r,) = gw.requests("sms")
        assert r.json["to"] == "+8613800000010"
        assert r.json["from"] == "Shop"
        assert r.json["ref"] == job
        assert "回复TD退订" in r.json["text"]
        assert st["provider_ref"] == r.ref and r.ref.startswith("gw-")


def test_429_pauses_the_whole_sms_transport(make_daemon):
    # checklist 46: after a 429 with Retry-After: 3, no SMS request at all
    # reaches the gateway for 3 seconds
    with TwilioMock(SID, TOKEN, rules={"+8613800000020": ("429:3", 1)}) \
            as mock:
        d = twilio_daemon(make_daemon, mock).start()
        with d.client() as c:
            first = c.request(sms_send("p0", "+8613800000020"))["job"]
            (throttled,) = mock.wait_requests(1, answered=True)
            others = [c.request(sms_send("p%d" % i, "+86138000001%02d" % i))
                      ["job"] for i in range(1, 11)]
            for j in others + [first]:
                wait_state(c, j, ("sent",), timeout=20)
        assert throttled.status == 429
        later = [r for r in mock.requests("sms") if r is not throttled]
        assert len(later) == 11
        gap = min(r.at for r in later) - throttled.answered_at
        assert gap >= 2.9, gap
