"""Start-up checks and the roused command line: a bad config or template
stops the daemon before it serves anything, with one line naming the key
or file:line (checklist 39); --check, --version, the shipped config and
templates, and the JSON-lines log.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from rouse_harness import (ROUSED, SOURCE_DIR, Client, NOTE_TEMPLATES,
                           maildir_messages, wait_for, wait_state)

SENTINEL = "S3NTINEL-9f2c41d7e0"


def run_roused(args, cwd=None, timeout=30, env=None):
    return subprocess.run([ROUSED] + [str(a) for a in args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=env)


def err_lines(r):
    return [l for l in r.stderr.splitlines() if l.strip()]


def assert_refused(d, *needles):
    """Starting d fails with exit 1 and one stderr line holding every
    needle; --check says the same."""
    r = run_roused(["--config", d.config_path], cwd=d.dir)
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = err_lines(r)
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert SENTINEL not in r.stderr and SENTINEL not in r.stdout
    # It never got as far as serving: no socket left behind.
    assert not os.path.exists(d.sock)
    chk = run_roused(["--check", "--config", d.config_path], cwd=d.dir)
    assert chk.returncode == 1, (chk.returncode, chk.stderr)
    for n in needles:
        assert n in chk.stderr, (n, chk.stderr)
    return lines[0]


# -- checklist 39 ---------------------------------------------------------

@pytest.mark.parametrize("over,needles", [
    ({"bogus_key": 1}, ["bogus_key"]),
    ({"limits": {"per_usr": []}}, ["per_usr"]),
    ({"email": {"form": "Shop <a@b.example>"}}, ["form"]),
    ({"intake": {"max_lines": 100}}, ["max_lines"]),
    ({"retry": {"base": "5x"}}, ["base", "5x"]),
    ({"limits": {"per_user": [{"channel": "email", "max": 1,
                               "window": "5x"}]}}, ["window", "5x"]),
    ({"limits": {"transports": {"email": {"rate": -1, "burst": 5}}}},
     ["rate"]),
    ({"limits": {"transports": {"sms": {"rate": 5, "burst": -2}}}},
     ["burst"]),
    ({"limits": {"per_user": [{"channel": "email", "max": -1,
                               "window": "1h"}]}}, ["max"]),
    ({"limits": {"per_user": [{"channel": "fax", "max": 1,
                               "window": "1h"}]}}, ["channel"]),
    ({"retry": {"max_attempts": 0}}, ["max_attempts"]),
    ({"sms": {"transport": "http"}}, ["sms.http", "required"]),
    ({"sms": {"http": {"kind": "smpp"}}}, ["sms.http.kind", "smpp"]),
    ({"sms": {"http": {"account_sid": "AC1"}}},
     ["sms.http.auth_token_env"]),
    ({"sms": {"http": {"account_sid": "AC1",
                       "auth_token_env": "ROUSE_UNSET_TOKEN_VAR"}}},
     ["sms.http.auth_token_env", "ROUSE_UNSET_TOKEN_VAR", "not set"]),
    ({"push": {"transport": "http"}}, ["push.fcm", "push.apns"]),
    ({"push": {"apns": {"topic": "com.example"}}}, ["push.apns.key_id"]),
    ({"push": {"fcm": {"service_account_file": "absent.json"}}},
     ["push.fcm.service_account_file", "absent.json"]),
])
def test_bad_config_is_refused_naming_the_key(make_daemon, over, needles):
    d = make_daemon(templates=NOTE_TEMPLATES, config=over)
    assert_refused(d, *needles)


@pytest.mark.parametrize("over", [
    {"email": {"smtp": {"password": SENTINEL}}},
    {"sms": {"http": {"auth_token": SENTINEL}}},
    {"email": {"password": SENTINEL}},
])
def test_inline_secret_is_refused_naming_the_key(make_daemon, over):
    d = make_daemon(templates=NOTE_TEMPLATES, config=over)
    key = "password" if "password" in json.dumps(over) else "auth_token"
    line = assert_refused(d, key)
    assert "secret" in line.lower() or "_env" in line or "_file" in line, \
        line


@pytest.mark.parametrize("tpl,name,line", [
    ({"bad/text.mustache": "Hello {{name}},\nline {{#open}} two\nthree\n"},
     "bad/text.mustache", 2),
    ({"bad/subject.mustache": "ok",
      "bad/html.mustache": "<p>\n</p>\n<p>{{/never}}</p>\n"},
     "bad/html.mustache", 3),
    ({"bad/sms.zh-CN.mustache": "one\ntwo\nthree {{name\n"},
     "bad/sms.zh-CN.mustache", 3),
    ({"_partials/footer.mustache": "\n\n\n{{#a}}{{/b}}\n"},
     "_partials/footer.mustache", 4),
])
def test_template_that_does_not_parse_is_refused(make_daemon, tpl, name,
                                                 line):
    templates = dict(NOTE_TEMPLATES)
    templates.update(tpl)
    d = make_daemon(templates=templates)
    msg = assert_refused(d, name.rsplit("/", 1)[-1])
    assert name in msg, msg
    assert re.search(re.escape(name) + r"(:| line |:line )%d\b" % line,
                     msg), msg


def test_secret_file_readable_by_group_is_refused(make_daemon, tmp_path):
    """Checklist 41: a group- or world-readable secret file stops the
    daemon, naming the key and never the secret; 0600 is accepted."""
    secret = tmp_path / "smtp-password"
    sentinel = "SENTINEL-smtp-pass-8e1f"
    secret.write_text(sentinel + "\n")
    d = make_daemon(templates=NOTE_TEMPLATES, config={"email": {
        "transport": "smtp", "smtp": {
            "host": "127.0.0.1", "port": 2525, "starttls": "no",
            "username": "mailer", "password_file": str(secret)}}})
    for mode in (0o640, 0o604):
        os.chmod(secret, mode)
        r = run_roused(["--check", "--config", d.config_path], cwd=d.dir)
        assert r.returncode == 1, (oct(mode), r.stderr)
        assert "email.smtp.password_file" in r.stderr, r.stderr
        assert "group or others" in r.stderr, r.stderr
        assert sentinel not in r.stderr + r.stdout
    os.chmod(secret, 0o600)
    r = run_roused(["--check", "--config", d.config_path], cwd=d.dir)
    assert r.returncode == 0, r.stderr
    assert sentinel not in r.stderr + r.stdout


# -- --check and --version ----------------------------------------------------

def test_version():
    r = run_roused(["--version"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "roused 0.1.0"


def test_check_accepts_a_good_config_and_starts_nothing(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES)
    r = run_roused(["--check", "--config", d.config_path], cwd=d.dir)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(d.sock)
    assert not os.path.exists(d.db)


def test_check_reports_a_missing_config_file(tmp_path):
    missing = tmp_path / "nope.json"
    r = run_roused(["--check", "--config", missing])
    assert r.returncode == 1
    assert "nope.json" in r.stderr


def test_check_reports_json_syntax_errors_with_line(tmp_path):
    p = tmp_path / "rouse.json"
    p.write_text('{\n  "data_dir": "var",\n  "default_locale": "en",,\n}\n')
    r = run_roused(["--check", "--config", p])
    assert r.returncode == 1
    assert "rouse.json" in r.stderr and re.search(r"\b3\b", r.stderr), \
        r.stderr


def test_unknown_option_is_a_usage_error():
    r = run_roused(["--no-such-option"])
    assert r.returncode != 0
    assert r.stderr.strip()


# -- the shipped config and templates -----------------------------------------

def shipped_layout(tmp_path):
    """tmp/config/rouse.json and tmp/templates copied from the source
    tree, so the config's relative paths land in tmp/var."""
    root = tmp_path / "inst"
    (root / "config").mkdir(parents=True)
    shutil.copy(SOURCE_DIR / "config" / "rouse.json",
                root / "config" / "rouse.json")
    shutil.copytree(SOURCE_DIR / "templates", root / "templates")
    return root


def test_shipped_config_and_templates_start(tmp_path):
    root = shipped_layout(tmp_path)
    conf = json.loads((root / "config" / "rouse.json").read_text())
    assert conf.get("data_dir") == "../var"
    sock = root / "var" / "rouse.sock"
    assert len(str(sock)) < 100, "tmp path too long for the socket"
    chk = run_roused(["--check"], cwd=root)
    assert chk.returncode == 0, chk.stderr
    log = open(tmp_path / "roused.log", "wb")
    # No --config: the default is config/rouse.json under the cwd.
    proc = subprocess.Popen([ROUSED], cwd=root, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    log.close()
    try:
        def up():
            assert proc.poll() is None, (tmp_path / "roused.log").read_text()
            try:
                with Client(sock, timeout=2) as c:
                    return c.request({"op": "ping"}).get("ok")
            except OSError:
                return False
        wait_for(up, timeout=20)
        assert oct(os.stat(sock).st_mode & 0o777) == oct(0o660)
        with Client(sock) as c:
            ans = c.request({"op": "send", "user": "u1", "channel": "email",
                             "to": "alice@example.com",
                             "template": "winback", "locale": "zh-CN",
                             "vars": {"name": "王小明", "brand": "优品商城",
                                      "amount": "¥20", "expiry": "11月30日",
                                      "link": "https://shop.example/c/1"}})
            assert ans.get("ok") is True, ans
            wait_state(c, ans["job"], "sent")
        msgs = maildir_messages(root / "var" / "outbox" / "email")
        assert len(msgs) == 1
        assert str(msgs[0][2]["Subject"]) == "想你了!优品商城 期待与您重逢"
        assert (root / "var" / "rouse.db").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


# -- logs ---------------------------------------------------------------------

def test_logs_are_json_lines_without_message_content(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    with d.client() as c:
        ans = c.request({"op": "send", "user": "u1", "channel": "email",
                         "to": "alice@example.com", "template": "note",
                         "vars": {"name": SENTINEL, "code": SENTINEL}})
        assert ans.get("ok") is True, ans
        wait_state(c, ans["job"], "sent")
        ans = c.request({"op": "send", "user": "u1", "channel": "sms",
                         "to": "+15550123", "template": "note",
                         "vars": {"name": SENTINEL, "code": SENTINEL}})
        wait_state(c, ans["job"], "sent")
        stats = c.request({"op": "stats"})
        assert SENTINEL not in json.dumps(stats)
    assert d.stop() == 0
    text = d.logs()
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines
    recs = []
    for l in lines:
        o = json.loads(l)      # every line is one JSON object
        assert isinstance(o, dict)
        for k in ("ts", "level", "msg"):
            assert k in o, (k, o)
        recs.append(o)
    assert [r for r in recs if r["msg"] == "ready"], recs
    assert SENTINEL not in text


def test_nofile_soft_limit_raised_to_hard(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    limits = open("/proc/%d/limits" % d.pid).read()
    m = re.search(r"^Max open files\s+(\S+)\s+(\S+)", limits, re.M)
    assert m, limits
    assert m.group(1) == m.group(2), m.group(0)


def test_second_daemon_on_a_live_socket_exits_nonzero(make_daemon):
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    r = run_roused(["--config", d.config_path], cwd=d.dir, timeout=30)
    assert r.returncode != 0
    with d.client() as c:
        assert c.request({"op": "ping"}).get("ok") is True
