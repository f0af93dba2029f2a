"""Durability: answers follow fsync, group commit, crash cycles, disk
faults, graceful stop with a backlog, crash-safe file outboxes
(checklist 1, 2, 3, 6, 7, 9)."""

import collections
import json
import os
import random
import re
import signal
import socket
import threading
import time

import pytest

from rouse_harness import (NOTE_TEMPLATES, Client, compile_shim, is_uuid,
                           job_status, jsonl, maildir_messages, rfc3339,
                           send_req, statuses, wait_for, wait_state)

FUTURE = "2099-01-01T00:00:00Z"
TERMINAL = ("sent", "failed", "suppressed", "cancelled", "expired")


# -- strace parsing ------------------------------------------------------

_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
_DUR = re.compile(r"<(\d+\.\d+)>\s*$")
_CALL = re.compile(r"^(\w+)\((\d+)(?:<([^>]*)>)?")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")

Call = collections.namedtuple("Call", "name pid start end fd path text")


def parse_strace(path):
    """Syscalls of an `strace -f -ttt -T -y` log as Call tuples, with the
    unfinished/resumed halves joined."""
    pending = {}
    calls = []
    with open(path, errors="replace") as f:
        for line in f:
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, ts, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            if rest.startswith("+++") or rest.startswith("---"):
                continue
            r = _RESUMED.match(rest)
            if r:
                start = pending.pop((pid, r.group(1)), None)
                if start is None:
                    continue
                sts, head = start
                d = _DUR.search(rest)
                end = sts + float(d.group(1)) if d else ts
                text = head + rest
                c = _CALL.match(head)
                if c:
                    calls.append(Call(c.group(1), pid, sts, max(end, sts),
                                      int(c.group(2)), c.group(3) or "", text))
                continue
            if rest.endswith("<unfinished ...>"):
                c = _CALL.match(rest)
                if c:
                    pending[(pid, c.group(1))] = (ts, rest)
                continue
            c = _CALL.match(rest)
            if not c:
                continue
            d = _DUR.search(rest)
            end = ts + float(d.group(1)) if d else ts
            calls.append(Call(c.group(1), pid, ts, end, int(c.group(2)),
                              c.group(3) or "", rest))
    calls.sort(key=lambda c: c.start)
    return calls


def is_db_path(p):
    return p.endswith("rouse.db") or p.endswith("rouse.db-wal")


READS = ("read", "readv", "recvfrom", "recvmsg")
WRITES = ("write", "writev", "sendmsg", "sendto")
SYNCS = ("fsync", "fdatasync")


def test_ok_answer_follows_fsync(daemon):
    """Checklist 1: every ok answer to a state-changing op is written after
    an fsync/fdatasync of the database or its WAL that began after the
    request was read (and ended before the answer was written)."""
    d = daemon(templates=NOTE_TEMPLATES)
    trace = d.dir / "strace.log"
    d.wrapper = ["strace", "-f", "-ttt", "-T", "-y", "-qq", "-s", "4096",
                 "-o", str(trace), "-e",
                 "trace=" + ",".join(READS + WRITES + SYNCS + ("pwrite64",))]
    d.start()
    reqs = []
    for i in range(12):
        reqs.append(send_req("fs%d" % i, ["email", "sms", "push"][i % 3],
                             key="fskey%d" % i, at=FUTURE))
    for i in range(4):
        reqs.append({"op": "unsubscribe", "user": "fsu%d" % i,
                     "channel": ["email", "sms", "all", "push"][i]})
        reqs.append({"op": "resubscribe", "user": "fsu%d" % i,
                     "channel": ["email", "sms", "all", "push"][i]})
    reqs.append({"op": "unsubscribe", "address": "fsaddr@example.com",
                 "channel": "email", "source": "test"})
    tokens = []
    with d.client() as c:
        for i, r in enumerate(reqs):
            tok = "fsreq%03dz" % i
            r["id"] = tok
            ans = c.request(r)
            assert ans.get("ok") is True and ans.get("id") == tok, (r, ans)
            tokens.append(tok)
            time.sleep(0.02)
    assert d.stop() == 0
    calls = parse_strace(trace)
    syncs = [c for c in calls if c.name in SYNCS and is_db_path(c.path)]
    assert syncs, "no fsync/fdatasync on rouse.db or rouse.db-wal traced"
    for tok in tokens:
        reads = [c for c in calls if c.name in READS and tok in c.text]
        assert reads, "request %s: no read of it traced" % tok
        rd = reads[0]
        writes = [c for c in calls if c.name in WRITES and tok in c.text
                  and c.fd == rd.fd and c.start >= rd.start]
        assert len(writes) == 1, \
            "request %s: %d answer writes on fd %d" % (tok, len(writes), rd.fd)
        wr = writes[0]
        assert re.search(r'\\"ok\\":\s*true', wr.text), wr.text[:300]
        good = [s for s in syncs if s.start >= rd.end and s.end <= wr.start]
        assert good, ("request %s read at %.6f, answered at %.6f, but no "
                      "database fsync began after the read and ended before "
                      "the answer; syncs nearby: %s" % (
                          tok, rd.end, wr.start,
                          [(s.name, s.path, s.start, s.end) for s in syncs
                           if rd.start - 1 < s.start < wr.start + 1]))


def test_group_commit_and_wal(daemon):
    """Checklist 2: 1,000 pipelined sends cost fewer fsyncs than answers,
    answers stay in order, and the database is in WAL mode."""
    d = daemon(templates=NOTE_TEMPLATES)
    trace = d.dir / "strace.log"
    d.wrapper = ["strace", "-f", "-ttt", "-y", "-qq", "-o", str(trace),
                 "-e", "trace=fsync,fdatasync"]
    d.start()
    reqs = [dict(send_req("gc%d" % i, "email", key="gc-%d" % i, at=FUTURE),
                 id=i) for i in range(1000)]
    with d.client() as c:
        c.request({"op": "ping"})
        t0 = time.time()
        answers = c.pipeline(reqs, timeout=120)
        t1 = time.time()
    assert [a.get("id") for a in answers] == list(range(1000))
    bad = [a for a in answers if a.get("ok") is not True]
    assert not bad, bad[:3]
    ids = [a["job"] for a in answers]
    assert len(set(ids)) == 1000 and all(is_uuid(j) for j in ids)
    assert d.stop() == 0
    n = 0
    with open(trace, errors="replace") as f:
        for line in f:
            m = _LINE.match(line)
            if not m or "rouse.db" not in line:
                continue
            ts = float(m.group(2))
            if t0 <= ts <= t1 and re.search(r"\b(fsync|fdatasync)\(", line):
                n += 1
    assert 0 < n < 1000, "%d database fsyncs for 1000 answers" % n
    assert d.sqlite("PRAGMA journal_mode;") == "wal"
    assert d.sqlite("PRAGMA integrity_check;") == "ok"


# -- kill -9 cycles ------------------------------------------------------

class CycleClient(threading.Thread):
    """Pipelines batches of sends until its connection dies; records the
    answers it got."""

    def __init__(self, sock, name, rng, rep_keys, cycle):
        super().__init__(daemon=True)
        self.sock, self.name, self.rng = sock, name, rng
        self.rep_keys, self.cycle = rep_keys, cycle
        self.got = []          # (request, answer)
        self.errors = []

    def run(self):
        try:
            c = Client(self.sock, timeout=20)
        except OSError:
            return
        n = 0
        try:
            while n < 600:
                batch = []
                for _ in range(25):
                    if self.rng.random() < 0.2:
                        key = self.rng.choice(self.rep_keys)
                        user = "rep-" + key
                    else:
                        key = "u-%d-%s-%d" % (self.cycle, self.name, n)
                        user = "uniq-%s" % self.name
                    at = FUTURE if self.rng.random() < 0.8 else None
                    r = send_req(user, "email", key=key, id=n,
                                 code=key)
                    if at:
                        r["at"] = at
                    batch.append(r)
                    n += 1
                payload = b"".join(json.dumps(r).encode() + b"\n"
                                   for r in batch)
                c.send_raw(payload)
                for r in batch:
                    a = c.read_answer(timeout=20)
                    self.got.append((r, a))
        except (OSError, ConnectionError, ValueError):
            pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            c.close()


def test_kill9_cycles_lose_nothing(daemon):
    """Checklist 3: 20 SIGKILL/restart cycles under 4 pipelining clients;
    every job answered ok survives and no key maps to two job ids."""
    seed = int(os.environ.get("ROUSE_TEST_SEED", time.time()))
    rng = random.Random(seed)
    d = daemon(templates=NOTE_TEMPLATES)
    rep_keys = ["rep%02d" % i for i in range(40)]
    key_ids = collections.defaultdict(set)
    all_ids = set()
    n_dup = 0
    t_start = time.monotonic()
    for cycle in range(20):
        d.start()
        if cycle:
            # Everything answered before the last kill is there.
            with d.client() as c:
                prev = [j for j in all_ids]
                rng.shuffle(prev)
                for j, a in statuses(c, prev[:800]).items():
                    assert a.get("ok") is True and a["job"]["id"] == j, \
                        "seed %d cycle %d: job %s lost: %r" % (seed, cycle,
                                                               j, a)
        clients = [CycleClient(d.sock, "c%d" % i, random.Random(rng.random()),
                               rep_keys, cycle) for i in range(4)]
        for t in clients:
            t.start()
        time.sleep(rng.uniform(0.05, 0.6))
        d.kill()
        for t in clients:
            t.join(30)
            assert not t.is_alive()
            assert not t.errors, t.errors
            for r, a in t.got:
                assert a.get("id") == r["id"], (r, a)
                if a.get("ok") is True:
                    assert is_uuid(a.get("job")), a
                    n_dup += bool(a.get("duplicate"))
                    key_ids[r["key"]].add(a["job"])
                    all_ids.add(a["job"])
                else:
                    assert a.get("error", {}).get("code") in (
                        "overloaded", "shutting_down"), (r, a)
        assert time.monotonic() - t_start < 120, "cycles too slow"
    d.start()
    assert n_dup > 0, "no duplicate key was answered; test proves little"
    two = {k: v for k, v in key_ids.items() if len(v) > 1}
    assert not two, "seed %d: keys with two job ids: %r" % (seed, two)
    assert len(all_ids) > 100, "too few sends answered (%d)" % len(all_ids)
    with d.client(timeout=120) as c:
        ans = statuses(c, sorted(all_ids))
        lost = [j for j, a in ans.items()
                if a.get("ok") is not True or a["job"]["id"] != j]
        assert not lost, "seed %d: %d of %d answered jobs lost, e.g. %r" % (
            seed, len(lost), len(all_ids), ans[lost[0]])
        # A resend of a key answers the one job it resolved to.
        keys = [k for k in key_ids if k.startswith("rep")]
        keys += rng.sample(sorted(k for k in key_ids
                                  if not k.startswith("rep")),
                           min(300, len(key_ids) - len(keys)))
        reqs = [send_req("x", "email", key=k, id=k, at=FUTURE) for k in keys]
        answers = []
        for i in range(0, len(reqs), 500):
            answers += c.pipeline(reqs[i:i + 500], timeout=60)
        for r, a in zip(reqs, answers):
            assert a.get("ok") is True and a.get("duplicate") is True, (r, a)
            assert {a["job"]} == key_ids[r["key"]], (r, a)


# -- disk faults ---------------------------------------------------------

def test_enospc_never_acked(daemon, tmp_path):
    """Checklist 6: with writes/fsyncs of the database failing (ENOSPC),
    state-changing requests are never answered ok:true; after the fault is
    gone and a restart, the database is intact and nothing acked is lost."""
    shim = compile_shim("enospc", tmp_path)
    trigger = tmp_path / "fault-on"
    d = daemon(templates=NOTE_TEMPLATES, preload=[shim],
               env={"ROUSE_FAULT_TRIGGER": str(trigger)})
    d.start()
    acked = []
    with d.client() as c:
        for i in range(30):
            r = send_req("pre%d" % i, ["email", "sms", "push"][i % 3],
                         key="pre-%d" % i, at=None if i % 2 else FUTURE)
            a = c.request(r)
            assert a.get("ok") is True, a
            acked.append(a["job"])
        a = c.request({"op": "unsubscribe", "user": "pre-opt",
                       "channel": "sms", "source": "test"})
        assert a.get("ok") is True, a

        trigger.touch()
        faulted = [send_req("f%d" % i, "email", key="fault-%d" % i)
                   for i in range(5)]
        faulted += [{"op": "unsubscribe", "user": "f-opt", "channel": "email"},
                    {"op": "resubscribe", "user": "pre-opt", "channel": "sms"},
                    send_req("f9", "sms", at=FUTURE)]
        for r in faulted:
            a = c.request(r, timeout=30)
            assert a.get("ok") is False, \
                "acked while the database cannot be written: %r -> %r" % (r, a)
            assert a["error"]["code"] in ("internal", "overloaded"), a
        # Pipelined as well.
        for a in c.pipeline([dict(send_req("fp%d" % i, "push"), id=i)
                             for i in range(20)], timeout=30):
            assert a.get("ok") is False, a
            assert a["error"]["code"] in ("internal", "overloaded"), a
    trigger.unlink()
    if d.running:
        d.stop()
    d.preload = []
    d.start()
    with d.client() as c:
        for j, a in statuses(c, acked).items():
            assert a.get("ok") is True and a["job"]["id"] == j, (j, a)
        cons = c.request({"op": "consent", "user": "pre-opt"})
        assert cons.get("ok") is True, cons
        assert cons["effective"]["sms"] == "opted_out", cons
        a = c.request(send_req("post", "email", key="post-1"))
        assert a.get("ok") is True, a
    assert d.stop() == 0
    assert d.sqlite("PRAGMA integrity_check;") == "ok"


# -- graceful stop with a backlog ----------------------------------------

def message_ids(maildir):
    """Message-ID header values of every delivered message, in order."""
    out = []
    for name, raw, msg in maildir_messages(maildir):
        ids = msg.get_all("Message-ID") or []
        assert len(ids) == 1, "%s: %d Message-IDs" % (name, len(ids))
        out.append(str(ids[0]).strip())
    return out


def job_of_msgid(mid):
    m = re.fullmatch(r"<([0-9a-f-]{36})@shop\.example>", mid)
    assert m, "Message-ID %r is not <JOBID@shop.example>" % mid
    return m.group(1)


def test_sigterm_with_backlog(daemon):
    """Checklist 7: SIGTERM during a 500-message backlog: later requests
    get shutting_down (or a closed connection), exit 0 within 30 s, and
    after a restart every backlog job is delivered exactly once."""
    d = daemon(templates=NOTE_TEMPLATES,
               config={"limits": {"transports": {
                   "email": {"rate": 50, "burst": 1}}}})
    d.start()
    with d.client() as c:
        answers = c.pipeline([send_req("bl%d" % i, "email", key="bl-%d" % i,
                                       id=i) for i in range(500)], timeout=60)
    assert all(a.get("ok") is True for a in answers), \
        [a for a in answers if a.get("ok") is not True][:3]
    ids = [a["job"] for a in answers]
    wait_for(lambda: len(maildir_messages(d.maildir)) >= 10, timeout=20)
    late = d.client(timeout=10)
    late.request({"op": "ping"})
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGTERM)
    time.sleep(0.3)
    try:
        a = late.request(send_req("late", "email", key="late-1"), timeout=10)
    except (OSError, ConnectionError):
        a = None
    if a is not None:
        assert a.get("ok") is False and \
            a["error"]["code"] == "shutting_down", a
    try:
        with Client(d.sock, timeout=5) as c2:
            a2 = c2.request({"op": "ping"}, timeout=5)
        assert a2.get("ok") is False and \
            a2["error"]["code"] == "shutting_down", a2
    except (OSError, ConnectionError):
        pass
    late.close()
    rc = d.proc.wait(30)
    assert time.monotonic() - t0 < 30
    assert rc == 0, "exit code %s after SIGTERM" % rc
    sent_before = len(maildir_messages(d.maildir))
    assert sent_before < 500, "backlog drained before the stop; no test"

    d.config.pop("limits")
    d.write_config()
    d.start()
    with d.client() as c:
        def all_sent():
            st = statuses(c, ids)
            return all(a["job"]["state"] == "sent" for a in st.values())
        wait_for(all_sent, timeout=60, interval=0.5)
        late_ans = c.request(send_req("late", "email", key="late-1"))
    counts = collections.Counter(job_of_msgid(m)
                                 for m in message_ids(d.maildir))
    extra = [j for j in counts if j not in ids and j != late_ans.get("job")]
    assert not extra, "messages of unknown jobs: %r" % extra[:5]
    dup = {j: n for j, n in counts.items() if n != 1}
    assert not dup, "jobs delivered more than once: %r" % dup
    missing = [j for j in ids if j not in counts]
    assert not missing, "%d backlog jobs never delivered" % len(missing)


# -- crash-safe file outboxes ----------------------------------------------

def test_sigkill_burst_outboxes_whole(daemon):
    """Checklist 9: SIGKILL during a burst leaves only whole messages in
    maildir new/, a torn JSONL tail is cut at start-up, and each job marked
    sent is in its outbox once (more only for attempts after the crash)."""
    d = daemon(templates=NOTE_TEMPLATES,
               config={"limits": {"transports": {
                   "email": {"rate": 300, "burst": 5},
                   "sms": {"rate": 300, "burst": 5},
                   "push": {"rate": 300, "burst": 5}}}})
    d.start()
    reqs, code_of = [], {}
    for i in range(300):
        for ch in ("email", "sms", "push"):
            code = "%s%03dq" % (ch, i)
            reqs.append(send_req("%s-u%d" % (ch, i), ch, key=code, code=code,
                                 id=code))
    with d.client() as c:
        answers = c.pipeline(reqs, timeout=60)
    for r, a in zip(reqs, answers):
        assert a.get("ok") is True, (r, a)
        code_of[a["job"]] = (r["channel"], r["vars"]["code"], r["user"])
    time.sleep(random.uniform(0.3, 0.9))
    d.kill()

    def check_maildir():
        seen = collections.Counter()
        for name, raw, msg in maildir_messages(d.maildir):
            mids = msg.get_all("Message-ID") or []
            assert len(mids) == 1, (name, raw[:300])
            job = job_of_msgid(str(mids[0]).strip())
            assert job in code_of, name
            ch, code, user = code_of[job]
            assert ch == "email"
            for h in ("From", "To", "Subject", "Date"):
                assert len(msg.get_all(h) or []) == 1, (name, h)
            assert str(msg["Subject"]) == "Note for %s" % user, name
            body = msg.get_body(("plain",)).get_content()
            assert body.replace("\r\n", "\n").rstrip("\n") == \
                "Hello %s, your code is %s." % (user, code), (name, body)
            seen[job] += 1
        return seen

    at_kill = check_maildir()
    n_at_kill = (sum(at_kill.values()) + len(jsonl(d.sms_file, strict=False))
                 + len(jsonl(d.push_file, strict=False)))
    assert n_at_kill < len(reqs), \
        "the burst was over before the kill (%d delivered)" % n_at_kill
    torn = b'{"job":"torn-tail","attempt":1,"te'
    for p in (d.sms_file, d.push_file):
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "ab") as f:
            f.write(torn)
    d.start()
    for p in (d.sms_file, d.push_file):
        data = p.read_bytes()
        assert b"torn-tail" not in data, "%s: torn tail kept" % p
        assert not data or data.endswith(b"\n"), p
        jsonl(p)  # every line parses
    ids = list(code_of)
    with d.client(timeout=60) as c:
        def settled():
            st = statuses(c, ids)
            if all(a["job"]["state"] in TERMINAL for a in st.values()):
                return st
            return None
        st = wait_for(settled, timeout=60, interval=0.5)
    assert d.stop() == 0
    jobs = {j: a["job"] for j, a in st.items()}
    email_seen = check_maildir()
    sms_lines = jsonl(d.sms_file)
    push_lines = jsonl(d.push_file)
    sms_seen = collections.Counter(x["job"] for x in sms_lines)
    push_seen = collections.Counter(x["job"] for x in push_lines)
    for x in sms_lines + push_lines:
        assert x["job"] in code_of, x
    for x in sms_lines:
        assert x["text"].startswith("Hello %s, code %s"
                                    % (code_of[x["job"]][2],
                                       code_of[x["job"]][1])), x
    for x in push_lines:
        assert x["body"] == "code %s" % code_of[x["job"]][1], x
        assert x["collapse_id"] == x["job"], x
    seen_of = {"email": email_seen, "sms": sms_seen, "push": push_seen}
    for j, job in jobs.items():
        ch = code_of[j][0]
        n = seen_of[ch][j]
        if ch == "sms":
            # at-most-once: an SMS is never written twice
            assert n <= 1, (j, n, job)
        if job["state"] == "sent":
            assert n >= 1, "job %s marked sent but not in its outbox" % j
            if job["attempts"] == 1:
                assert n == 1, "job %s sent once, found %d times" % (j, n)
            else:
                assert n <= job["attempts"], (j, n, job)
        else:
            assert job["state"] == "failed" and ch == "sms", \
                "job %s (%s) ended %s" % (j, ch, job["state"])
    for lines in (sms_lines, push_lines):
        per = collections.defaultdict(list)
        for x in lines:
            per[x["job"]].append(x["attempt"])
        for j, att in per.items():
            assert len(att) == len(set(att)), (j, att)


# -- schema upgrade --------------------------------------------------------

def test_schema_4_database_upgrades_and_recovers(daemon):
    """A database of schema version 4 (which had a partial index on
    state for the jobs in `sending`) opens under version 5: the index is
    dropped, and jobs left in `sending` are still found at start-up (now
    through the (channel, state) index): an SMS one fails as ambiguous
    (sms.on_ambiguous defaults to fail), an email one is sent again."""
    d = daemon(templates=NOTE_TEMPLATES)
    d.start()
    with d.client() as c:
        sms = c.request(send_req("mig-sms", "sms", key="mig-sms", at=FUTURE))
        mail = c.request(send_req("mig-mail", "email", key="mig-mail",
                                  at=FUTURE))
        kept = c.request(send_req("mig-kept", "push", key="mig-kept",
                                  at=FUTURE))
    assert sms["ok"] and mail["ok"] and kept["ok"], (sms, mail, kept)
    assert d.stop() == 0
    assert d.sqlite("PRAGMA user_version;") == "5"
    assert d.sqlite("SELECT count(*) FROM sqlite_master"
                    " WHERE name = 'jobs_sending';") == "0"

    d.sqlite("CREATE INDEX jobs_sending ON jobs(state) WHERE state = 3;"
             " UPDATE jobs SET state = 3 WHERE id IN ('%s', '%s');"
             " PRAGMA user_version = 4;" % (sms["job"], mail["job"]))
    d.start()
    with d.client() as c:
        failed = wait_state(c, sms["job"], "failed")
        assert failed["reason"] == "ambiguous", failed
        wait_state(c, mail["job"], "sent")
        assert job_status(c, kept["job"])["state"] == "scheduled"
    assert len(maildir_messages(d.data_dir / "outbox" / "email")) == 1
    assert d.stop() == 0
    assert d.sqlite("PRAGMA user_version;") == "5"
    assert d.sqlite("SELECT count(*) FROM sqlite_master"
                    " WHERE name = 'jobs_sending';") == "0"
    assert d.sqlite("PRAGMA integrity_check;") == "ok"
