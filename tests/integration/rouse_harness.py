"""Black-box harness for the rouse integration tests.

Starts the real `roused` binary (path from $ROUSED) with a generated config
in a per-test directory, talks to it over its Unix socket, and reads what it
leaves behind (database, maildir, JSONL outboxes, JSON-lines log on stderr).

Environment:
  ROUSED, ROUSECTL    binaries under test
  ROUSE_SOURCE_DIR    the source tree (templates/, tests/integration/shims/)
  ROUSE_SANITIZE      "1"/"ON"/"TRUE" when the binaries carry ASan+UBSan
"""

import copy
import email
import email.policy
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("ROUSE_SOURCE_DIR") or HERE.parent.parent)
ROUSED = os.environ.get("ROUSED") or str(SOURCE_DIR / "build" / "roused")
ROUSECTL = os.environ.get("ROUSECTL") or str(SOURCE_DIR / "build" / "rousectl")
SANITIZE = os.environ.get("ROUSE_SANITIZE", "0").strip().upper() in (
    "1", "ON", "TRUE", "YES")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SHIMS_DIR = HERE / "shims"

START_TIMEOUT = 60.0 if SANITIZE else 20.0
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:",
                      "LeakSanitizer")

# Longest path a sockaddr_un takes (108 bytes including the NUL), with room.
_SUN_PATH_MAX = 100


def deep_merge(base, over):
    """Returns base with over merged in (dicts recursively; a value of None
    in over deletes the key)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def wait_for(predicate, timeout=10.0, interval=0.05, message=None):
    """Calls predicate until it returns something truthy and returns that;
    raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                message or "condition not met within %.1fs (last value %r)"
                % (timeout, last))
        time.sleep(interval)


def maildir_messages(path):
    """Every file in <maildir>/new and <maildir>/cur as (filename, bytes,
    EmailMessage parsed with email.policy.default), sorted by name."""
    path = Path(path)
    out = []
    for sub in ("new", "cur"):
        d = path / sub
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if not f.is_file():
                continue
            raw = f.read_bytes()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            out.append((f.name, raw, msg))
    return out


def jsonl(path, strict=True):
    """The objects of a JSON-lines file, in order. With strict, a line that
    does not parse or a last line without its newline raises ValueError."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    if strict and data and not data.endswith(b"\n"):
        raise ValueError("%s: last line has no newline: %r"
                         % (path, data[-80:]))
    out = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if strict:
                raise ValueError("%s:%d: not JSON: %r" % (path, n, line[:200]))
    return out


def job_status(client, job_id):
    """The job object of a status answer (asserts ok)."""
    ans = client.request({"op": "status", "job": job_id})
    assert ans.get("ok") is True, "status %s: %r" % (job_id, ans)
    return ans["job"]


# Small templates with every channel's parts, used where the shipped ones
# are not the point. "note" is transactional (no opt-out footer), so the
# bytes delivered are exactly the rendered text.
NOTE_TEMPLATES = {
    "note/subject.mustache": "Note for {{name}}",
    "note/text.mustache": "Hello {{name}}, your code is {{code}}.\n",
    "note/sms.mustache": "Hello {{name}}, code {{code}}",
    "note/push_title.mustache": "Note for {{name}}",
    "note/push_body.mustache": "code {{code}}",
    "note/transactional": "",
}


def send_req(user, channel="email", to=None, template="note", code=None,
             **extra):
    """A send request for the note template; code lands in the body.
    Extra fields given as None are left out."""
    if to is None:
        if channel == "email":
            to = "%s@example.com" % user
        elif channel == "sms":
            to = "+1555%07d" % (zlib.crc32(user.encode()) % 10000000)
        else:
            to = {"platform": "fcm", "token": "tok-%s" % user}
    req = {"op": "send", "user": user, "channel": channel, "to": to,
           "template": template,
           "vars": {"name": user, "code": code if code is not None else user}}
    req.update({k: v for k, v in extra.items() if v is not None})
    return req


def rfc3339(ts):
    """Epoch seconds -> RFC 3339 UTC with milliseconds."""
    ms = int(round(ts * 1000))  # round once, so .9996 carries into seconds
    t = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
        ms % 1000)


def parse_rfc3339(s):
    """RFC 3339 -> epoch seconds (float)."""
    import datetime
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(s).timestamp()


def events(job, what=None):
    """The job's events (optionally only those named what), in order."""
    ev = job.get("events") or []
    return [e for e in ev if what is None or e.get("what") == what]


def is_uuid(s):
    import re
    return isinstance(s, str) and re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", s) \
        is not None


def wait_state(client, job_id, states, timeout=15.0):
    """Polls status until the job's state is in states; returns the job."""
    if isinstance(states, str):
        states = (states,)
    last = {}

    def check():
        last["job"] = job_status(client, job_id)
        return last["job"] if last["job"]["state"] in states else None
    try:
        return wait_for(check, timeout, 0.1)
    except AssertionError:
        raise AssertionError("job %s not in %s within %.0fs; last: %r"
                             % (job_id, states, timeout, last.get("job")))


def statuses(client, job_ids, chunk=1000):
    """Status of many jobs, pipelined chunk at a time: {id: answer}."""
    ids = list(job_ids)
    out = {}
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        answers = client.pipeline([{"op": "status", "job": j, "id": j}
                                   for j in part])
        out.update(zip(part, answers))
    return out


def compile_shim(name, outdir):
    """Compiles tests/integration/shims/<name>.c into outdir/<name>.so and
    returns its path."""
    src = SHIMS_DIR / (name + ".c")
    out = Path(outdir) / (name + ".so")
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out),
                        str(src), "-ldl", "-lpthread"],
                       capture_output=True, text=True)
    assert r.returncode == 0, "cc %s failed:\n%s" % (src, r.stderr)
    return str(out)


class Client:
    """One connection to the intake socket."""

    def __init__(self, sock_path, timeout=30.0):
        self.path = str(sock_path)
        self.timeout = timeout
        # A listen backlog momentarily full answers EAGAIN to a socket with
        # a timeout: retry that for up to 5 s, as a patient client would.
        deadline = time.monotonic() + 5.0
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(self.path)
                break
            except BlockingIOError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_line(self, timeout=None):
        """The next answer line (bytes, without the newline), or None at
        EOF. Raises socket.timeout after timeout seconds."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no answer line within %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                self.eof = True
                if not self.buf:
                    return None
                continue
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_answer(self, timeout=None):
        line = self.read_line(timeout)
        if line is None:
            raise ConnectionError("connection closed, no answer")
        return json.loads(line)

    def request(self, req, timeout=None):
        self.send_raw(_encode(req))
        return self.read_answer(timeout)

    def pipeline(self, reqs, timeout=None):
        """Sends every request (dicts or raw byte lines) without waiting, in
        a writer thread, and returns the answers in order."""
        payload = b"".join(_encode(r) for r in reqs)
        err = []

        def writer():
            try:
                self.sock.sendall(payload)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        answers = []
        for _ in reqs:
            try:
                answers.append(self.read_answer(timeout))
            except (OSError, ConnectionError) as e:
                raise AssertionError(
                    "pipeline of %d requests: answer %d not received (%r)"
                    % (len(reqs), len(answers) + 1, e))
        t.join(timeout or self.timeout)
        if err:
            raise err[0]
        return answers


def _encode(r):
    if isinstance(r, (bytes, bytearray)):
        r = bytes(r)
        return r if r.endswith(b"\n") else r + b"\n"
    if isinstance(r, str):
        r = r.encode()
        return r if r.endswith(b"\n") else r + b"\n"
    return json.dumps(r, ensure_ascii=False).encode() + b"\n"


class Daemon:
    """One roused instance with its own config, data dir and log file.

    config:    dict merged over the base config (None deletes a key)
    templates: None = the repository's templates/; or a dict
               {"name/part.mustache": "text", ...} written to a temp dir
    env:       extra environment variables
    faketime:  libfaketime spec ("+25h", "@2026-11-24 02:00:00"), or None
    preload:   extra LD_PRELOAD libraries
    wrapper:   argv prefix (e.g. ["strace", "-f", "-o", FILE]); the daemon's
               own pid is then found as the wrapper's child
    """

    _taken = set()

    def __init__(self, tmp_path, config=None, templates=None, env=None,
                 faketime=None, preload=None, wrapper=None):
        base = Path(tmp_path)
        n = 1
        while True:
            d = base / ("rouse" if n == 1 else "rouse%d" % n)
            if str(d) not in Daemon._taken and not d.exists():
                break
            n += 1
        Daemon._taken.add(str(d))
        self.dir = d
        self.dir.mkdir(parents=True)
        self.etc = self.dir / "etc"
        self.etc.mkdir()
        self.data_dir = self.dir / "var"
        self.config_path = self.etc / "rouse.json"
        self.log_path = self.dir / "roused.log"
        self.proc = None
        self.faketime = faketime
        self.preload = list(preload or [])
        self.extra_env = dict(env or {})
        self.wrapper = list(wrapper or [])

        if templates is None:
            self.templates_dir = SOURCE_DIR / "templates"
        elif isinstance(templates, (str, Path)):
            self.templates_dir = Path(templates)
        else:
            self.templates_dir = self.dir / "templates"
            for rel, text in templates.items():
                p = self.templates_dir / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(text.encode() if isinstance(text, str) else text)
            self.templates_dir.mkdir(exist_ok=True)

        sock = self.data_dir / "rouse.sock"
        if len(str(sock)) > _SUN_PATH_MAX:
            sock = Path(tempfile.mkdtemp(prefix="rs")) / "rouse.sock"
        base_conf = {
            "data_dir": str(self.data_dir),
            "templates": str(self.templates_dir),
            "default_locale": "en",
            "intake": {"socket": str(sock)},
            "email": {"from": "Shop <noreply@shop.example>",
                      "transport": "maildir",
                      "maildir": str(self.data_dir / "outbox" / "email")},
            "sms": {"transport": "file",
                    "file": str(self.data_dir / "outbox" / "sms.jsonl"),
                    "from": "+15550100"},
            "push": {"transport": "file",
                     "file": str(self.data_dir / "outbox" / "push.jsonl")},
            "retry": {"max_attempts": 8, "base": "1s", "max": "5s"},
        }
        self.config = deep_merge(base_conf, config or {})
        self.write_config()

    # -- configuration -------------------------------------------------
    def _path_of(self, value, default):
        if value is None:
            return Path(default)
        p = Path(value)
        return p if p.is_absolute() else (self.etc / p)

    def write_config(self):
        """(Re)writes config_path from self.config and refreshes the paths
        derived from it."""
        c = self.config
        self.config_path.write_text(json.dumps(c, indent=2,
                                               ensure_ascii=False))
        dd = self._path_of(c.get("data_dir"), self.dir / "var")
        self.data_dir = dd
        self.sock = self._path_of(c.get("intake", {}).get("socket"),
                                  dd / "rouse.sock")
        self.db = dd / "rouse.db"
        self.maildir = self._path_of(c.get("email", {}).get("maildir"),
                                     dd / "outbox" / "email")
        self.sms_file = self._path_of(c.get("sms", {}).get("file"),
                                      dd / "outbox" / "sms.jsonl")
        self.push_file = self._path_of(c.get("push", {}).get("file"),
                                       dd / "outbox" / "push.jsonl")

    # -- process control -----------------------------------------------
    def _env(self):
        env = dict(os.environ)
        env.update(self.extra_env)
        preload = list(self.preload)
        if self.faketime is not None:
            preload.append(FAKETIME_LIB)
            env["FAKETIME"] = self.faketime
            env.setdefault("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            env.setdefault("FAKETIME_NO_CACHE", "1")
        if preload:
            old = env.get("LD_PRELOAD")
            env["LD_PRELOAD"] = ":".join(preload + ([old] if old else []))
        if SANITIZE:
            opts = ["abort_on_error=0"]
            if preload:
                opts.append("verify_asan_link_order=0")
            if self.wrapper:
                opts.append("detect_leaks=0")  # LSan cannot run under ptrace
            old = env.get("ASAN_OPTIONS")
            env["ASAN_OPTIONS"] = ":".join(([old] if old else []) + opts)
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        return env

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        """The roused process id (the wrapper's child when wrapped)."""
        if not self.wrapper:
            return self.proc.pid
        return wait_for(lambda: _find_descendant(self.proc.pid,
                                                 os.path.basename(ROUSED)),
                        timeout=10, message="roused child of wrapper not found")

    def start(self, wait=True, expect_fail=False, timeout=None):
        assert not self.running, "daemon already running"
        timeout = timeout or (START_TIMEOUT * (3 if self.wrapper else 1))
        self._log_offset = (self.log_path.stat().st_size
                            if self.log_path.exists() else 0)
        log = open(self.log_path, "ab")
        argv = self.wrapper + [ROUSED, "--config", str(self.config_path)]
        self.proc = subprocess.Popen(argv, cwd=str(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, env=self._env())
        log.close()
        if expect_fail:
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("daemon expected to exit on its own "
                                     "kept running; log:\n" + self.logs()[-4000:])
            return rc, self.logs_since_start()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=None):
        timeout = timeout or START_TIMEOUT
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "roused exited with %s during start-up; log:\n%s"
                    % (self.proc.returncode, self.logs_since_start()[-4000:]))
            try:
                with Client(self.sock, timeout=2) as c:
                    ans = c.request({"op": "ping"}, timeout=2)
                if ans.get("ok") is True:
                    return
                last = ans
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("roused did not answer ping within %.0fs "
                             "(last: %r); log:\n%s"
                             % (timeout, last, self.logs_since_start()[-4000:]))

    def stop(self, timeout=30):
        """SIGTERM; asserts the daemon exits within timeout; returns its exit
        code."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        t0 = time.monotonic()
        if self.wrapper:
            pid = self.pid
            os.kill(pid, signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("roused did not exit within %ss of SIGTERM"
                                 % timeout)
        self.stop_seconds = time.monotonic() - t0
        return rc

    def kill(self):
        """SIGKILL (the daemon itself, not only a wrapper) and reap."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.wrapper:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (OSError, AssertionError):
                pass
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait(30)

    def restart(self, **kw):
        rc = self.stop()
        assert rc == 0, "roused exited %s on SIGTERM" % rc
        return self.start(**kw)

    # -- talking to it ---------------------------------------------------
    def client(self, timeout=30.0):
        return Client(self.sock, timeout)

    def ctl(self, *args, input=None, timeout=60):
        return subprocess.run([ROUSECTL, "--socket", str(self.sock)]
                              + [str(a) for a in args], input=input,
                              capture_output=True, timeout=timeout)

    def logs(self):
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def logs_since_start(self):
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "_log_offset", 0))
            return f.read().decode("utf-8", "replace")

    def log_records(self):
        """The JSON log lines (non-JSON lines skipped)."""
        out = []
        for line in self.logs().splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict):
                out.append(o)
        return out

    def sanitizer_report(self):
        text = self.logs()
        for p in SANITIZER_PATTERNS:
            i = text.find(p)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def sqlite(self, sql):
        """Runs sql with the sqlite3 CLI on the database; returns stdout."""
        r = subprocess.run(["sqlite3", str(self.db), sql],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "sqlite3 %r: %s" % (sql, r.stderr)
        return r.stdout.strip()


def _find_descendant(pid, name):
    """The pid of the first descendant of pid whose comm is name."""
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            try:
                kids = Path("/proc/%d/task/%s/children" % (p, t)).read_text()
            except OSError:
                continue
            for k in kids.split():
                k = int(k)
                try:
                    comm = Path("/proc/%d/comm" % k).read_text().strip()
                except OSError:
                    continue
                if comm == name[:15]:
                    return k
                todo.append(k)
    return None
