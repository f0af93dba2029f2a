"""Mobile push over HTTP (push.transport "http") against an FCM-like
server (OAuth jwt-bearer grant verified with the service account's public
key) and an APNs-like HTTP/2 server over TLS (ES256 provider tokens
verified): request shapes, token caching and re-minting, dead tokens,
retries, connection counts and oversize payloads (checklist 24-29, 41)."""

import json
import time

from http_mocks import ApnsMock, FcmMock, make_apns_key
from rouse_harness import FAKETIME_LIB, events, job_status, wait_for, wait_state
from smtp_sink import make_certificates

KEY_ID = "KEY1234567"
TEAM_ID = "TEAM123456"
TOPIC = "com.example.shop"
APNS_TOKEN = "a1b2c3d4" * 8

PUSH_TEMPLATES = {
    "nudge/push_title.mustache": "想你了 {{name}}",
    "nudge/push_body.mustache": "{{brand}} 有 {{amount}} 优惠券等你",
    "huge/push_title.mustache": "big",
    "huge/push_body.mustache": "{{blob}}",
}


def push_send(user, platform, token, template="nudge", **extra):
    req = {"op": "send", "user": user, "channel": "push",
           "to": {"platform": platform, "token": token},
           "template": template,
           "vars": {"name": "Alice", "brand": "Shop", "amount": "¥20"}}
    req.update(extra)
    return req


class Clock:
    """A libfaketime offset the daemon re-reads on every call
    (FAKETIME_TIMESTAMP_FILE), so a test can move its wall clock."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "faketime"
        self.set(0)

    def set(self, seconds):
        self.path.write_text("%+ds\n" % seconds)

    def env(self):
        return {"FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def fcm_daemon(make_daemon, tmp_path, fcm, **kw):
    sa, _, _, project = fcm.make_service_account(tmp_path / "sa")
    conf = {"push": {"transport": "http",
                     "fcm": {"url": fcm.url, "service_account_file": sa,
                             "ca_file": fcm.ca_file, "timeout": "3s"}}}
    return make_daemon(templates=PUSH_TEMPLATES, config=conf, **kw), project


def apns_daemon(make_daemon, tmp_path, apns, key_file, **kw):
    conf = {"push": {"transport": "http",
                     "apns": {"url": apns.url, "topic": TOPIC,
                              "key_file": key_file, "key_id": KEY_ID,
                              "team_id": TEAM_ID, "ca_file": apns.ca_file,
                              "timeout": "3s"}}}
    return make_daemon(templates=PUSH_TEMPLATES, config=conf, **kw)


def apns_mock(tmp_path, **kw):
    key_file, public = make_apns_key(tmp_path / "apns", KEY_ID)
    certs = make_certificates(tmp_path / "certs")
    return ApnsMock(KEY_ID, TEAM_ID, public, TOPIC, tls=certs, **kw), key_file


# -- FCM ------------------------------------------------------------------

def test_fcm_grant_send_shape_and_token_reuse(make_daemon, tmp_path):
    with FcmMock(tls=True, tmpdir=tmp_path / "certs") as fcm:
        d, project = fcm_daemon(make_daemon, tmp_path, fcm)
        d.start()
        with d.client() as c:
            jobs = [a["job"] for a in c.pipeline(
                [push_send("u%d" % i, "fcm", "fcm-token-%d" % i)
                 for i in range(50)])]
            for j in jobs:
                wait_state(c, j, ("sent",), timeout=20)
            st = job_status(c, jobs[0])
        grants = fcm.grants()
        assert 1 <= len(grants) <= 2, grants
        assert all(g.ok for g in grants), grants
        claims = grants[0].claims
        assert claims["aud"] == fcm.token_uri
        assert "firebase.messaging" in claims["scope"]
        assert 0 < claims["exp"] - claims["iat"] <= 3600
        sends = fcm.sends()
        assert len(sends) == 50
        r = [s for s in sends if s.json["message"]["token"] == "fcm-token-0"][0]
        assert r.path == "/v1/projects/%s/messages:send" % project
        assert r.bearer in fcm.access_tokens()
        msg = r.json["message"]
        assert msg["notification"] == {"title": "想你了 Alice",
                                       "body": "Shop 有 ¥20 优惠券等你"}
        assert all(isinstance(v, str) for v in msg["data"].values())
        assert msg["data"]["job"] == jobs[0]
        assert st["provider_ref"] == r.ref
    logs = d.logs()
    for secret in [r.bearer] + [g.assertion for g in grants]:
        assert secret not in logs
        assert secret.encode() not in d.db.read_bytes()


def test_fcm_token_cached_across_a_minute(make_daemon, tmp_path):
    clock = Clock(tmp_path)
    with FcmMock(tls=True, tmpdir=tmp_path / "certs") as fcm:
        d, _ = fcm_daemon(make_daemon, tmp_path, fcm,
                          preload=[FAKETIME_LIB], env=clock.env())
        d.start()
        with d.client() as c:
            j1 = c.request(push_send("u1", "fcm", "tok-1"))["job"]
            wait_state(c, j1, ("sent",))
            clock.set(60)
            fcm.clock_offset_s = 60
            j2 = c.request(push_send("u2", "fcm", "tok-2"))["job"]
            wait_state(c, j2, ("sent",))
        assert len(fcm.grants()) == 1, fcm.grants()
        b1, b2 = [s.bearer for s in fcm.sends()]
        assert b1 == b2


def test_fcm_401_fetches_a_new_token_once(make_daemon, tmp_path):
    with FcmMock(tls=True, tmpdir=tmp_path / "certs") as fcm:
        d, _ = fcm_daemon(make_daemon, tmp_path, fcm)
        d.start()
        with d.client() as c:
            j1 = c.request(push_send("u1", "fcm", "tok-1"))["job"]
            wait_state(c, j1, ("sent",))
            fcm.revoke_access_tokens()
            j2 = c.request(push_send("u2", "fcm", "tok-2"))["job"]
            st = wait_state(c, j2, ("sent",))
        assert len(fcm.grants()) == 2
        assert [s.status for s in fcm.sends()] == [200, 401, 200]
        assert st["attempts"] == 1


def test_fcm_unregistered_marks_the_token_dead(make_daemon, tmp_path):
    rules = {"dead-": "UNREGISTERED", "wrong-": "SENDER_ID_MISMATCH"}
    with FcmMock(tls=True, tmpdir=tmp_path / "certs", rules=rules) as fcm:
        d, _ = fcm_daemon(make_daemon, tmp_path, fcm)
        d.start()
        with d.client() as c:
            for token in ("dead-1", "wrong-1"):
                j = c.request(push_send("u1", "fcm", token))["job"]
                st = wait_state(c, j, ("failed",))
                assert st["reason"] == "dead_token", st
                assert st["to"]["dead"]["job"] == j, st
                before = len(fcm.sends())
                again = c.request(push_send("u2", "fcm", token))
                assert again["state"] == "suppressed", again
                assert again["reason"] == "dead_token", again
                time.sleep(0.3)
                assert len(fcm.sends()) == before
            # the user is not opted out: a new token works
            j = c.request(push_send("u1", "fcm", "fresh-1"))["job"]
            wait_state(c, j, ("sent",))
            consent = c.request({"op": "consent", "user": "u1"})
            assert consent["effective"]["push"] == "subscribed", consent
        d.restart()
        with d.client() as c:
            again = c.request(push_send("u3", "fcm", "dead-1"))
            assert again["reason"] == "dead_token", again


def test_fcm_quota_and_503_back_off(make_daemon, tmp_path):
    rules = {"quota-": ("QUOTA_EXCEEDED", 1), "busy-": ("503:2", 1)}
    with FcmMock(tls=True, tmpdir=tmp_path / "certs", rules=rules) as fcm:
        d, _ = fcm_daemon(make_daemon, tmp_path, fcm)
        d.start()
        with d.client() as c:
            q = c.request(push_send("u1", "fcm", "quota-1"))["job"]
            b = c.request(push_send("u2", "fcm", "busy-1"))["job"]
            st = wait_state(c, b, ("sent",), timeout=20)
            first, second = [s for s in fcm.sends()
                             if s.json["message"]["token"] == "busy-1"]
            assert second.at - first.answered_at >= 1.9
            qs = wait_for(lambda: (lambda j: j if events(j, "retry")
                                   else None)(job_status(c, q)), timeout=10)
            retry = events(qs, "retry")[0]
            from rouse_harness import parse_rfc3339
            delay = parse_rfc3339(retry["until"]) - parse_rfc3339(retry["at"])
            assert delay >= 59.9, retry
            assert qs["state"] == "deferred"
        assert len([s for s in fcm.sends()
                    if s.json["message"]["token"] == "quota-1"]) == 1


# -- APNs -------------------------------------------------------------------

def test_apns_request_shape_and_jwt(make_daemon, tmp_path):
    mock, key_file = apns_mock(tmp_path)
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
        expires = "2099-01-01T00:00:00Z"
        with d.client() as c:
            j = c.request(push_send("u1", "apns", APNS_TOKEN,
                                    expires=expires))["job"]
            wait_state(c, j, ("sent",))
        (r,) = mock.pushes()
        assert r.http == "2"
        assert r.path == "/3/device/%s" % APNS_TOKEN
        h = r.headers
        assert h["apns-topic"] == TOPIC
        assert h["apns-push-type"] == "alert"
        assert h["apns-priority"] == "10"
        assert h["apns-expiration"] == "4070908800"
        assert h["apns-id"] == j
        assert h["apns-collapse-id"] == j
        assert r.jwt_header["alg"] == "ES256" and r.jwt_header["kid"] == KEY_ID
        assert r.jwt_claims["iss"] == TEAM_ID and "iat" in r.jwt_claims
        assert r.refusal is None
        assert r.json["aps"]["alert"] == {"title": "想你了 Alice",
                                          "body": "Shop 有 ¥20 优惠券等你"}
    assert r.jwt not in d.logs()
    assert r.jwt.encode() not in d.db.read_bytes()


def test_apns_200_pushes_share_the_configured_connections(make_daemon,
                                                          tmp_path):
    mock, key_file = apns_mock(tmp_path)
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
        with d.client() as c:
            answers = c.pipeline([push_send("u%d" % i, "apns",
                                            "%064x" % i) for i in range(200)])
            mock.wait_requests(200, timeout=60, answered=True)
            for a in answers[::40]:
                wait_state(c, a["job"], ("sent",))
        assert len(mock.pushes()) == 200
        assert mock.connections() <= 2, mock.connections()
        assert len(mock.jwts()) == 1, mock.jwts()


def test_apns_410_dead_and_429_503_retried(make_daemon, tmp_path):
    rules = {"dead": "410", "slow": ("429", 1), "down": ("503", 1)}
    mock, key_file = apns_mock(tmp_path, rules=rules)
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
        with d.client() as c:
            dead = c.request(push_send("u1", "apns", "dead0001"))["job"]
            st = wait_state(c, dead, ("failed",))
            assert st["reason"] == "dead_token" and st["attempts"] == 1
            assert "Unregistered" in events(st, "failed")[0]["detail"]
            again = c.request(push_send("u1", "apns", "dead0001"))
            assert again["reason"] == "dead_token"
            for token in ("slow0001", "down0001"):
                j = c.request(push_send("u2", "apns", token))["job"]
                st = wait_state(c, j, ("sent",), timeout=20)
                assert len(events(st, "retry")) == 1, st
        assert len([p for p in mock.pushes()
                    if p.device_token == "dead0001"]) == 1


def test_apns_expired_provider_token_remints_once(make_daemon, tmp_path):
    mock, key_file = apns_mock(tmp_path, rules={"exp": "expired_once"})
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
        with d.client() as c:
            j = c.request(push_send("u1", "apns", "exp00001"))["job"]
            st = wait_state(c, j, ("sent",))
            assert st["attempts"] == 1, st
        statuses = [p.status for p in mock.pushes()]
        assert statuses == [403, 200], statuses
        assert len(mock.jwts()) == 2


def test_apns_jwt_reminted_between_20_and_60_minutes(make_daemon, tmp_path):
    clock = Clock(tmp_path)
    mock, key_file = apns_mock(tmp_path)
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file,
                        preload=[FAKETIME_LIB], env=clock.env()).start()
        seen = []
        with d.client() as c:
            for i, minutes in enumerate((0, 10, 19, 25, 39, 41, 55, 79, 82)):
                clock.set(minutes * 60)
                mock.clock_offset_s = minutes * 60
                j = c.request(push_send("u%d" % i, "apns",
                                        "%064x" % (i + 1)))["job"]
                wait_state(c, j, ("sent",))
                seen.append((minutes, mock.pushes()[-1].jwt_claims["iat"]))
        iats = sorted(set(iat for _, iat in seen))
        assert len(iats) >= 2, seen
        for a, b in zip(iats, iats[1:]):
            assert 20 * 60 <= b - a < 60 * 60, seen
        for minutes, iat in seen:
            age = (time.time() + minutes * 60) - iat
            assert age < 60 * 60, seen


def test_oversize_payload_refused_before_any_request(make_daemon, tmp_path):
    mock, key_file = apns_mock(tmp_path)
    with mock:
        d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
        with d.client() as c:
            req = push_send("u1", "apns", APNS_TOKEN, template="huge")
            req["vars"]["blob"] = "x" * 5000
            j = c.request(req)["job"]
            st = wait_state(c, j, ("failed",))
            assert st["reason"] == "payload_too_large", st
            assert "huge" in events(st, "failed")[0]["detail"], st
            time.sleep(0.3)
        assert mock.pushes() == []


def test_push_to_an_unconfigured_provider_is_refused(make_daemon, tmp_path):
    mock, key_file = apns_mock(tmp_path)
    d = apns_daemon(make_daemon, tmp_path, mock, key_file).start()
    with d.client() as c:
        ans = c.request(push_send("u1", "fcm", "tok"))
        assert ans["ok"] is False, ans
        assert ans["error"]["message"] == "to: push.fcm is not configured"


def test_key_files_readable_by_group_are_refused(make_daemon, tmp_path):
    import os
    key_file, _ = make_apns_key(tmp_path / "k", KEY_ID)
    os.chmod(key_file, 0o640)
    conf = {"push": {"transport": "http",
                     "apns": {"topic": TOPIC, "key_file": key_file,
                              "key_id": KEY_ID, "team_id": TEAM_ID}}}
    d = make_daemon(templates=PUSH_TEMPLATES, config=conf)
    rc, out = d.start(expect_fail=True)
    assert rc != 0
    assert "push.apns.key_file" in out and "chmod 600" in out, out
    assert "PRIVATE KEY" not in out
    json.dumps(out)
