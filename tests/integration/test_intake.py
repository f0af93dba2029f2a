"""Intake socket behaviour: framing, bad input, pipelining, connection
limits and the socket file itself (checklist 36, 37, 42)."""

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from rouse_harness import (NOTE_TEMPLATES, Client, is_uuid, job_status,
                           send_req, wait_for)

MAX_LINE = 4096


def good_send(user="u1", **kw):
    return send_req(user, "email", **kw)


def expect_error(ans, code, field=None, id_=None):
    assert ans.get("ok") is False, "expected %s, got %r" % (code, ans)
    err = ans.get("error")
    assert isinstance(err, dict), ans
    assert err.get("code") == code, "expected code %s, got %r" % (code, ans)
    assert isinstance(err.get("message"), str) and err["message"], ans
    if field is not None:
        assert field in err["message"], \
            "message should name %r: %r" % (field, ans)
    if id_ is not None:
        assert ans.get("id") == id_, "id not echoed: %r" % ans


def test_bad_lines_one_connection(daemon):
    """Checklist 36: every bad line gets exactly one error naming the code
    (and field), in order, on one connection that stays usable."""
    d = daemon(templates=NOTE_TEMPLATES,
               config={"intake": {"max_line": MAX_LINE}})
    d.start()
    big = b'{"op":"ping","id":"' + b"x" * (MAX_LINE + 1) + b'"}'
    cases = [
        # (raw line, expected code, field named, id echoed)
        (b'{"op":"ping",', "bad_json", None, None),
        (b'{"op":"ping"', "bad_json", None, None),
        (b'[{"op":"ping"}]', "bad_json", None, None),
        (b'"ping"', "bad_json", None, None),
        (b'{"op":"ping","x":"\xc0\xaf"}', "bad_json", None, None),
        (b'{"op":"ping","x":"\xed\xa0\x80"}', "bad_json", None, None),
        (b'{"op":"ping","x":"\xff"}', "bad_json", None, None),
        (b'{"id":"m1"}', "bad_request", "op", "m1"),
        (b'{"op":42,"id":"m2"}', "bad_request", "op", "m2"),
        (b'{"op":"frobnicate","id":"u1"}', "unknown_op", None, "u1"),
        (json.dumps(dict(good_send(), user=42, id="t1")).encode(),
         "bad_request", "user", "t1"),
        (json.dumps(dict(good_send(), vars="x", id="t2")).encode(),
         "bad_request", "vars", "t2"),
        (json.dumps(dict(good_send(), to=["a@example.com"], id="t3")).encode(),
         "bad_request", "to", "t3"),
        (json.dumps(dict(good_send(), channel="fax", id="t4")).encode(),
         "unknown_channel", "channel", "t4"),
        (json.dumps(dict(good_send(), template=7, id="t5")).encode(),
         "bad_request", "template", "t5"),
        (json.dumps(send_req("u1", "sms", to="12345", id="e1")).encode(),
         "bad_request", "to", "e1"),
        (json.dumps(send_req("u1", "sms", to="+0123456", id="e2")).encode(),
         "bad_request", "to", "e2"),
        (json.dumps(send_req("u1", "sms", to="+12345678901234567",
                             id="e3")).encode(),
         "bad_request", "to", "e3"),
        (json.dumps(dict(good_send(), at="2026-13-01T00:00:00Z",
                         id="r1")).encode(), "bad_request", "at", "r1"),
        (json.dumps(dict(good_send(), at="2026-02-30T00:00:00Z",
                         id="r2")).encode(), "bad_request", "at", "r2"),
        (json.dumps(dict(good_send(), at="tomorrow", id="r3")).encode(),
         "bad_request", "at", "r3"),
        (json.dumps(dict(good_send(), expires="2026-11-24 02:00",
                         id="r4")).encode(), "bad_request", "expires", "r4"),
        (json.dumps(dict(good_send(), key="k" * 201, id="k1")).encode(),
         "bad_request", "key", "k1"),
        (json.dumps({"op": "status", "job": 5, "id": "s1"}).encode(),
         "bad_request", "job", "s1"),
        (big, "too_large", None, None),
    ]
    lines = []
    for i, (raw, *_rest) in enumerate(cases):
        lines.append(raw)
        lines.append(json.dumps({"op": "ping", "id": "ok%d" % i}).encode())
    # The 200-byte key is the limit, not an error.
    lines.append(json.dumps(dict(good_send(), key="k" * 200,
                                 id="key200")).encode())
    lines.append(b'{"op":"ping","id":"end"}')
    with d.client() as c:
        answers = c.pipeline(lines, timeout=30)
        for i, (raw, code, field, id_) in enumerate(cases):
            ans = answers[2 * i]
            try:
                expect_error(ans, code, field, id_)
            except AssertionError as e:
                raise AssertionError("case %d (%r...): %s"
                                     % (i, raw[:60], e))
            pong = answers[2 * i + 1]
            assert pong.get("ok") is True and pong.get("id") == "ok%d" % i, \
                "case %d: ping after bad line answered %r" % (i, pong)
        k200 = answers[-2]
        assert k200.get("ok") is True and k200.get("id") == "key200", k200
        assert answers[-1] == {"id": "end", "ok": True,
                               "version": "0.1.0"}, answers[-1]
        # Exactly one answer per line: nothing more is pending.
        with pytest.raises(socket.timeout):
            c.read_line(timeout=1.0)
        # And the connection still works.
        assert c.request({"op": "ping", "id": 99})["id"] == 99
    assert d.running


def test_too_large_then_usable(daemon):
    d = daemon(templates=NOTE_TEMPLATES,
               config={"intake": {"max_line": MAX_LINE}})
    d.start()
    with d.client() as c:
        # Just under the limit is an ordinary request.
        pad = "y" * (MAX_LINE - 100)
        ans = c.request({"op": "ping", "id": pad})
        assert ans.get("ok") is True and ans.get("id") == pad
        # max_line + 1 bytes of payload: too_large, rest of line discarded
        # (a valid-looking request inside the tail must not be executed).
        tail = b'"}\n'
        body = b'{"op":"ping","id":"' + b"z" * (MAX_LINE + 1 - 19 - 2)
        line = body + b'"}'
        assert len(line) == MAX_LINE + 1
        c.send_raw(line + b"\n")
        expect_error(c.read_answer(), "too_large")
        # A much longer line (10 x max_line) arriving in pieces.
        c.send_raw(b'{"op":"ping","id":"')
        for _ in range(10):
            c.send_raw(b"w" * MAX_LINE)
            time.sleep(0.01)
        c.send_raw(b'{"op":"ping","id":"hidden"}' + tail)
        expect_error(c.read_answer(), "too_large")
        ans = c.request({"op": "ping", "id": "after"})
        assert ans == {"id": "after", "ok": True, "version": "0.1.0"}, ans
        with pytest.raises(socket.timeout):
            c.read_line(timeout=0.5)


def test_pipelining_1000_mixed_in_order(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    with d.client() as c:
        first = c.request(dict(good_send("p0"), id="first",
                               at="2099-01-01T00:00:00Z"))
        assert first.get("ok") is True, first
        known = first["job"]
        reqs, kinds = [], []
        for i in range(1000):
            k = i % 7
            if k == 0:
                r = {"op": "ping"}
            elif k == 1:
                r = good_send("p%d" % i, key="pipe-%d" % i,
                              at="2099-01-01T00:00:00Z")
            elif k == 2:
                r = {"op": "status", "job": known}
            elif k == 3:
                r = {"op": "stats"}
            elif k == 4:
                r = {"op": "nope"}
            elif k == 5:
                r = b'{"op": "ping", "id": [' + str(i).encode() + b']'
            else:
                r = good_send("p%d" % i, key="pipe-%d" % (i - 5),
                              at="2099-01-01T00:00:00Z")
            if isinstance(r, dict):
                # ids of several JSON types, echoed verbatim
                r["id"] = [i, {"n": i}, "s%d" % i, i * 1.5][i % 4]
            reqs.append(r)
            kinds.append(k)
        answers = c.pipeline(reqs, timeout=60)
    assert len(answers) == 1000
    job_of_key = {}
    for i, (k, r, a) in enumerate(zip(kinds, reqs, answers)):
        if k != 5:
            assert "id" in a and a["id"] == r["id"], \
                "answer %d out of order or id changed: %r for %r" % (i, a, r)
        if k == 0:
            assert a.get("ok") is True and a.get("version") == "0.1.0", a
        elif k == 1:
            assert a.get("ok") is True and is_uuid(a.get("job")), a
            assert a.get("state") == "scheduled", a
            assert not a.get("duplicate"), a
            job_of_key[r["key"]] = a["job"]
        elif k == 2:
            assert a.get("ok") is True and a["job"]["id"] == known, a
        elif k == 3:
            assert a.get("ok") is True and "jobs" in a, a
        elif k == 4:
            expect_error(a, "unknown_op")
        elif k == 5:
            expect_error(a, "bad_json")
        else:
            assert a.get("ok") is True and a.get("duplicate") is True, a
            assert a.get("job") == job_of_key[r["key"]], \
                "duplicate key %s answered job %s, first was %s" % (
                    r["key"], a.get("job"), job_of_key[r["key"]])


def test_pipelining_20000_pings_one_connection(daemon):
    """Clients may pipeline any number of requests: 20,000 pings written
    in one go are all answered, in order, while the client reads."""
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    n = 20000
    with d.client(timeout=10) as c:
        answers = c.pipeline([{"op": "ping", "id": i} for i in range(n)],
                             timeout=10)
        assert [a.get("id") for a in answers] == list(range(n))
        assert all(a.get("ok") is True for a in answers)
        assert c.request({"op": "ping", "id": "after"})["id"] == "after"


def test_ops_basic_shape(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    with d.client() as c:
        ans = c.request({"op": "ping"})
        assert ans.pop("id", None) is None, ans  # no id: absent or null
        assert ans == {"ok": True, "version": "0.1.0"}, ans
        assert c.request({"op": "ping", "id": None}) == {
            "id": None, "ok": True, "version": "0.1.0"}
        ans = c.request(dict(good_send("shape", key="shape-1"), id=1))
        assert ans.get("ok") is True and ans.get("id") == 1, ans
        assert is_uuid(ans["job"]) and ans["state"] == "queued", ans
        job_id = ans["job"]
        dup = c.request(dict(good_send("shape", key="shape-1"), id=2))
        assert dup.get("ok") is True and dup.get("duplicate") is True, dup
        assert dup["job"] == job_id, dup
        assert dup.get("state") in ("queued", "sending", "sent"), dup
        job = job_status(c, job_id)
        for f in ("id", "state", "user", "channel", "to", "template", "key",
                  "attempts", "created", "events"):
            assert f in job, "status lacks %s: %r" % (f, job)
        assert job["id"] == job_id and job["user"] == "shape"
        assert job["channel"] == "email" and job["to"] == "shape@example.com"
        assert job["template"] == "note" and job["key"] == "shape-1"
        assert isinstance(job["attempts"], int)
        assert isinstance(job["events"], list) and job["events"]
        assert job["events"][0]["what"] == "queued", job["events"]
        for e in job["events"]:
            assert isinstance(e.get("at"), str) and e["at"].endswith("Z"), e
        expect_error(c.request({"op": "status",
                                "job": "00000000-0000-4000-8000-000000000000",
                                "id": "x"}), "bad_request", "job", "x")
        st = c.request({"op": "stats", "id": "st"})
        assert st.get("ok") is True and st.get("id") == "st", st
        assert set(st["jobs"]) >= {"email", "sms", "push"}, st
        assert isinstance(st["queue_depth"], int) and st["queue_depth"] >= 0
        assert set(st["sent"]) >= {"email", "sms", "push"}, st
        assert isinstance(st["opt_outs"], int)
        assert isinstance(st["uptime_s"], (int, float))
        # The job sent above is counted (in whatever state it now is).
        assert sum(st["jobs"]["email"].values()) == 1, st
        assert sum(st["jobs"]["sms"].values()) == 0, st


def test_half_line_slow_client_idle_connections(daemon):
    """Checklist 37: a half line + disconnect, a one-byte-per-second client
    and 1,000 idle connections do not stop ping answers within 5 s."""
    d = daemon(templates=NOTE_TEMPLATES,
               config={"intake": {"max_connections": 1100}})
    d.start()

    # Half a line, then disconnect.
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(d.sock))
        s.sendall(b'{"op":"send","user":"half","chan')
        s.close()

    slow_result = {}

    def slow():
        try:
            with Client(d.sock, timeout=60) as sc:
                for b in b'{"op":"ping","id":7}\n':
                    sc.send_raw(bytes([b]))
                    time.sleep(1.0)
                slow_result["ans"] = sc.read_answer(timeout=10)
        except Exception as e:  # reported below
            slow_result["err"] = repr(e)

    t = threading.Thread(target=slow, daemon=True)
    t.start()

    idle = []
    try:
        for _ in range(1000):
            idle.append(_connect_retrying(d.sock))
        # Some of the idle ones also hold half a request.
        for s in idle[::50]:
            s.sendall(b'{"op":"pi')
        with d.client() as c:
            t_end = time.monotonic() + 6
            n = 0
            while time.monotonic() < t_end:
                t0 = time.monotonic()
                ans = c.request({"op": "ping", "id": n}, timeout=5)
                assert ans == {"id": n, "ok": True, "version": "0.1.0"}, ans
                assert time.monotonic() - t0 < 5
                n += 1
                time.sleep(0.1)
        # A fresh connection is served as well.
        with d.client() as c2:
            assert c2.request({"op": "ping"}, timeout=5)["ok"] is True
    finally:
        for s in idle:
            s.close()
    t.join(40)
    assert slow_result.get("ans") == {"id": 7, "ok": True,
                                      "version": "0.1.0"}, slow_result
    assert d.running
    with d.client() as c:
        assert c.request({"op": "ping"}, timeout=5)["ok"] is True


def _connect_retrying(path, patience=5.0):
    """A connected socket; a listen backlog that is momentarily full
    (EAGAIN) is retried for up to patience seconds."""
    deadline = time.monotonic() + patience
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _try_extra_client(path):
    """Connects one client beyond the limit. Returns "refused", "overloaded"
    or a description of anything else."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(str(path))
    except (ConnectionRefusedError, BlockingIOError, socket.timeout):
        s.close()
        return "refused"
    try:
        try:
            s.sendall(b'{"op":"ping","id":"extra"}\n')
        except (BrokenPipeError, ConnectionResetError):
            return "refused"
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                chunk = b""
            except socket.timeout:
                return "no answer and not closed within 5 s: %r" % data
            if not chunk:
                break
            data += chunk
        if not data:
            return "refused"
        lines = data.split(b"\n")
        first = json.loads(lines[0])
        if first.get("ok") is False and \
                first.get("error", {}).get("code") == "overloaded" and \
                all(not x for x in lines[1:]):
            return "overloaded"
        return "unexpected: %r" % data
    finally:
        s.close()


def test_connection_limit(daemon):
    d = daemon(templates=NOTE_TEMPLATES,
               config={"intake": {"max_connections": 10}})
    d.start()
    # wait_ready's probe connection may still be counted for a moment
    time.sleep(0.3)
    held = []
    try:
        for i in range(10):
            c = d.client(timeout=5)
            held.append(c)
            assert c.request({"op": "ping", "id": i})["ok"] is True
        for _ in range(3):
            got = _try_extra_client(d.sock)
            assert got in ("refused", "overloaded"), got
        assert d.running
        # The held connections still work.
        for i, c in enumerate(held):
            assert c.request({"op": "ping", "id": i})["id"] == i
        # Freeing one slot lets a new client in.
        held.pop().close()

        def fresh_ok():
            try:
                with d.client(timeout=2) as c:
                    return c.request({"op": "ping"}, timeout=2).get("ok")
            except (OSError, ValueError, ConnectionError):
                return False
        wait_for(fresh_ok, timeout=5)
    finally:
        for c in held:
            c.close()
    assert d.running


POLLER = r"""
import os, stat, sys, time
path, stop = sys.argv[1], sys.argv[2]
seen = {}
t_end = time.monotonic() + 60
while time.monotonic() < t_end and not os.path.exists(stop):
    try:
        st = os.lstat(path)
    except OSError:
        continue
    m = stat.S_IMODE(st.st_mode)
    seen[m] = seen.get(m, 0) + 1
print(" ".join("%o:%d" % kv for kv in sorted(seen.items())))
"""


def test_socket_mode_never_wider_than_0660(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.sock.parent.mkdir(parents=True, exist_ok=True)
    stop_file = d.dir / "stop-polling"
    old_umask = os.umask(0)  # the daemon must not rely on the caller's umask
    try:
        poller = subprocess.Popen([sys.executable, "-c", POLLER, str(d.sock),
                                   str(stop_file)], stdout=subprocess.PIPE,
                                  text=True)
        time.sleep(0.2)
        d.start()
    finally:
        os.umask(old_umask)
    time.sleep(0.2)
    stop_file.touch()
    out, _ = poller.communicate(timeout=30)
    seen = dict((int(m, 8), int(n)) for m, n in
                (x.split(":") for x in out.split()))
    assert seen, "poller never saw the socket"
    wider = [oct(m) for m in seen if m & ~0o660]
    assert not wider, "socket observed with modes %s" % wider
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)


def test_stale_socket_replaced(daemon):
    d = daemon(templates=NOTE_TEMPLATES)
    d.sock.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d.sock))
    s.close()  # the file stays, nobody listens: a crash's leftover
    assert stat.S_ISSOCK(os.lstat(d.sock).st_mode)
    d.start()
    with d.client() as c:
        assert c.request({"op": "ping"})["ok"] is True
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o660
    # And after a SIGKILL the leftover is replaced too.
    d.kill()
    assert os.path.exists(d.sock)
    d.start()
    with d.client() as c:
        assert c.request({"op": "ping"})["ok"] is True


def test_second_daemon_on_live_socket_exits(daemon):
    d1 = daemon(templates=NOTE_TEMPLATES)
    d1.start()
    ino = os.stat(d1.sock).st_ino
    d2 = daemon(templates=NOTE_TEMPLATES,
                config={"intake": {"socket": str(d1.sock)}})
    rc, err = d2.start(expect_fail=True)
    assert rc != 0, "second daemon exited 0; log:\n" + err
    assert "ready" not in [r.get("msg") for r in d2.log_records()]
    # The first daemon keeps its socket file and keeps answering.
    assert os.stat(d1.sock).st_ino == ino
    with d1.client() as c:
        assert c.request({"op": "ping"})["ok"] is True
    assert d1.stop() == 0
