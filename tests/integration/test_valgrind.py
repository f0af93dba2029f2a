"""The daemon under valgrind memcheck: a session touching every op and
every transport, then SIGTERM, must end with no invalid access and no
definitely lost block (GLib/GMime's one-time allocations stay reachable
and are not errors)."""
import contextlib
import json
import shutil
import signal
import subprocess

import pytest

from rouse_harness import (ROUSED, SANITIZE, SOURCE_DIR, Client, job_status,
                           wait_for, wait_state)

pytestmark = pytest.mark.skipif(
    SANITIZE or not shutil.which("valgrind"),
    reason="valgrind runs on the normal build only")


@contextlib.contextmanager
def under_valgrind(config, log, env=None):
    """roused --config config under memcheck, its report going to log;
    killed on the way out if the test did not stop it."""
    proc = subprocess.Popen(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--error-exitcode=9", "--log-file=" + str(log), ROUSED,
         "--config", str(config)],
        stderr=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc, timeout):
    """SIGTERM, then the exit status."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def assert_clean(rc, log):
    """Exit 0, no memcheck error, no definitely lost block."""
    report = log.read_text()
    assert rc == 0, report[-3000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-3000:]
    assert "definitely lost: 0 bytes" in report or \
        "no leaks are possible" in report, report[-3000:]


def test_daemon_session_is_valgrind_clean(tmp_path):
    data = tmp_path / "var"
    config = tmp_path / "rouse.json"
    config.write_text(json.dumps({
        "data_dir": str(data),
        "templates": str(SOURCE_DIR / "templates"),
        "limits": {"per_user": [{"channel": "*", "max": 2, "window": "1h"}]},
    }))
    log = tmp_path / "valgrind.log"
    with under_valgrind(config, log) as proc:
        sock = data / "rouse.sock"
        wait_for(sock.exists, timeout=60, message="socket never appeared")
        with Client(str(sock), timeout=60) as c:
            assert c.request({"op": "ping"})["ok"]
            vars_ = {"name": "王小明", "brand": "Shop", "amount": "¥20",
                     "expiry": "2026-11-30", "link": "https://shop.example/x"}
            jobs = []
            for ch, to in (("email", "a@example.com"),
                           ("sms", "+8613800138000"),
                           ("push", {"platform": "fcm", "token": "tok"})):
                tpl = {"email": "winback", "sms": "coupon_expiring",
                       "push": "miss_you"}[ch]
                a = c.request({"op": "send", "user": "u1", "channel": ch,
                               "to": to, "template": tpl, "vars": vars_,
                               "locale": "zh-CN", "key": "k-" + ch})
                assert a["ok"], a
                jobs.append(a["job"])
            # the third job is held by the 2/1h cap: deferred
            states = sorted(wait_state(c, j, ("sent", "deferred"),
                                       timeout=60)["state"] for j in jobs)
            assert states == ["deferred", "sent", "sent"], states
            answers = c.pipeline([
                {"op": "preview", "template": "winback", "channel": "email",
                 "vars": vars_},
                {"op": "stats"},
                {"op": "unsubscribe", "user": "u1", "channel": "all"},
                {"op": "consent", "user": "u1"},
                {"op": "resubscribe", "user": "u1", "channel": "sms"},
                b"not json\n",
                {"op": "status", "job": "missing"},
            ])
            assert [a["ok"] for a in answers] == [
                True, True, True, True, True, False, False], answers
            assert answers[2]["cancelled"] == 1, answers[2]
            assert job_status(c, jobs[2])["state"] == "cancelled"
        rc = stop(proc, 60)
    assert_clean(rc, log)


def test_http_transports_sequences_and_listener_are_valgrind_clean(tmp_path):
    import urllib.request

    from http_mocks import ApnsMock, FcmMock, TwilioMock, make_apns_key
    from smtp_sink import free_port, make_certificates

    certs = make_certificates(tmp_path / "certs")
    key_file, public = make_apns_key(tmp_path / "apns", "KEY1234567")
    twilio = TwilioMock("AC1", "tw-token")
    fcm = FcmMock(tls=certs)
    apns = ApnsMock("KEY1234567", "TEAM123456", public, "com.example",
                    tls=certs)
    sa, _, _, _ = fcm.make_service_account(tmp_path / "sa")
    port = free_port()
    data = tmp_path / "var"
    config = tmp_path / "rouse.json"
    config.write_text(json.dumps({
        "data_dir": str(data),
        "templates": str(SOURCE_DIR / "templates"),
        "sms": {"transport": "http", "from": "+15550100",
                "http": {"kind": "twilio", "url": twilio.url,
                         "account_sid": "AC1",
                         "auth_token_env": "ROUSE_VG_TWILIO"}},
        "push": {"transport": "http",
                 "fcm": {"url": fcm.url, "service_account_file": sa,
                         "ca_file": certs[0]},
                 "apns": {"url": apns.url, "topic": "com.example",
                          "key_file": key_file, "key_id": "KEY1234567",
                          "team_id": "TEAM123456", "ca_file": certs[0]}},
        "quiet_hours": {"start": "00:00", "end": "23:59",
                        "default_tz": "UTC", "channels": ["email"]},
        "unsubscribe": {"listen": "127.0.0.1:%d" % port,
                        "public_url": "http://127.0.0.1:%d" % port,
                        "secret_env": "ROUSE_VG_SECRET"},
        "sequences": {"s": {"exit_on": ["purchase"],
                            "steps": [{"after": "0s", "channel": "email",
                                       "template": "winback"},
                                      {"after": "0s", "channel": "sms",
                                       "template": "coupon_expiring"},
                                      {"after": "1d", "channel": "sms",
                                       "template": "coupon_expiring"}]}},
    }))
    env = dict(__import__("os").environ, ROUSE_VG_TWILIO="tw-token",
               ROUSE_VG_SECRET="valgrind-secret-0123456789")
    log = tmp_path / "valgrind.log"
    with twilio, fcm, apns:
        with under_valgrind(config, log, env) as proc:
            sock = data / "rouse.sock"
            wait_for(sock.exists, timeout=90, message="no socket")
            with Client(str(sock), timeout=90) as c:
                enr = c.request({"op": "enroll", "user": "u1",
                                 "sequence": "s",
                                 "contact": {"email": "a@example.com",
                                             "phone": "+8613800138000"},
                                 "vars": {"name": "A"}})
                assert enr["ok"], enr
                jobs = [c.request({"op": "send", "user": "u2",
                                   "channel": "push", "to": to,
                                   "template": "miss_you", "tz": "UTC"})
                        ["job"] for to in (
                            {"platform": "fcm", "token": "f1"},
                            {"platform": "apns", "token": "a1b2"})]
                for j in jobs:
                    wait_state(c, j, ("sent",), timeout=90)
                twilio.wait_requests(1, timeout=90, answered=True)
                # the email step waits for the end of (all-day) quiet hours
                e = c.request({"op": "status",
                               "enrollment": enr["enrollment"]})
                assert e["enrollment"]["steps"][0]["state"] in (
                    "deferred", "sent"), e
                ev = c.request({"op": "event", "user": "u1",
                                "name": "purchase"})
                assert ev["exited"] == 1, ev
                page = urllib.request.urlopen(
                    "http://127.0.0.1:%d/healthz" % port, timeout=30)
                assert page.status == 200
            rc = stop(proc, 90)
    assert_clean(rc, log)


def test_smtp_client_with_tls_and_auth_is_valgrind_clean(tmp_path):
    """The SMTP client under memcheck: STARTTLS, AUTH, a message accepted,
    a hard bounce, a temporary refusal retried, a connection dropped after
    the data (sent again), then SIGTERM."""
    from smtp_sink import SmtpSink

    sink = SmtpSink(tmp_path / "sink", starttls=True, auth=("mailer", "pw"),
                    rules={"gone@": ("550 5.1.1", 1),
                           "busy@": ("451 4.3.0", 1),
                           "drop@": ("drop", 1)}).start()
    data = tmp_path / "var"
    config = tmp_path / "rouse.json"
    config.write_text(json.dumps({
        "data_dir": str(data),
        "templates": str(SOURCE_DIR / "templates"),
        "email": {"transport": "smtp",
                  "smtp": {"host": "127.0.0.1", "port": sink.port,
                           "starttls": "required", "ca_file": sink.ca_file,
                           "username": "mailer",
                           "password_env": "ROUSE_VG_SMTP",
                           "sessions": 2, "batch": 3, "timeout": "20s"}},
        "retry": {"base": "1s", "max": "2s", "max_attempts": 5},
    }))
    env = dict(__import__("os").environ, ROUSE_VG_SMTP="pw")
    log = tmp_path / "valgrind.log"
    try:
        with under_valgrind(config, log, env) as proc:
            sock = data / "rouse.sock"
            wait_for(sock.exists, timeout=90, message="no socket")
            with Client(str(sock), timeout=90) as c:
                jobs = {}
                for i, to in enumerate(("a@example.com",
                                        "gone@example.com",
                                        "busy@example.com",
                                        "drop@example.com")):
                    a = c.request({"op": "send", "user": "u%d" % i,
                                   "channel": "email", "to": to,
                                   "template": "winback",
                                   "vars": {"name": "王小明", "brand": "Shop",
                                            "amount": "¥20",
                                            "expiry": "2026-11-30",
                                            "link": "https://shop.example/x"},
                                   "locale": "zh-CN"})
                    assert a["ok"], a
                    jobs[to] = a["job"]
                for to, state in (("a@example.com", "sent"),
                                  ("gone@example.com", "failed"),
                                  ("busy@example.com", "sent"),
                                  ("drop@example.com", "sent")):
                    st = wait_state(c, jobs[to], (state,), timeout=120)
                    assert st["state"] == state, st
            rc = stop(proc, 90)
    finally:
        sink.stop()
    # a; busy on its second try; drop twice (cut after its data), same id
    got = sink.messages()
    assert sorted(m.rcpt_tos[0] for m in got) == [
        "a@example.com", "busy@example.com", "drop@example.com",
        "drop@example.com"], got
    assert len({m.message_id for m in got}) == 3, got
    assert_clean(rc, log)
