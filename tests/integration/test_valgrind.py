"""The daemon under valgrind memcheck: a session touching every op and
every transport, then SIGTERM, must end with no invalid access and no
definitely lost block (GLib/GMime's one-time allocations stay reachable
and are not errors)."""
import json
import shutil
import signal
import subprocess
import time

import pytest

from rouse_harness import (ROUSED, SANITIZE, SOURCE_DIR, Client, job_status,
                           wait_for, wait_state)

pytestmark = pytest.mark.skipif(
    SANITIZE or not shutil.which("valgrind"),
    reason="valgrind runs on the normal build only")


def test_daemon_session_is_valgrind_clean(tmp_path):
    data = tmp_path / "var"
    config = tmp_path / "rouse.json"
    config.write_text(json.dumps({
        "data_dir": str(data),
        "templates": str(SOURCE_DIR / "templates"),
        "limits": {"per_user": [{"channel": "*", "max": 2, "window": "1h"}]},
    }))
    log = tmp_path / "valgrind.log"
    proc = subprocess.Popen(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--error-exitcode=9", "--log-file=" + str(log), ROUSED,
         "--config", str(config)],
        stderr=subprocess.DEVNULL)
    try:
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
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = log.read_text()
    assert rc == 0, report[-3000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-3000:]
    assert "definitely lost: 0 bytes" in report or \
        "no leaks are possible" in report, report[-3000:]
