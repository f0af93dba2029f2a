"""The SMTP transport against a real SMTP server on loopback (checklist 4,
7, 10, 11-14, 16, 17, 40 and 41 for the SMTP password).

The server is smtp_sink.SmtpSink (aiosmtpd), steered per recipient. The
first tests prove the sink's own modes with Python's smtplib, so the rest
can trust what it records: every connection, command, credential and the
bytes of every message after dot-unstuffing.
"""

import base64
import collections
import email
import email.header
import email.utils
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import threading
import time

import pytest

from mail_checks import (assert_rfc5322_shape, body_parts,
                         check_encoded_words, header_block, norm, text_of,
                         unfolded)
from rouse_harness import (NOTE_TEMPLATES, SOURCE_DIR, deep_merge,
                           events, job_status, parse_rfc3339, rfc3339,
                           send_req, statuses, wait_for, wait_state)
from smtp_sink import SmtpSink, free_port

SENTINEL = "Sentinel-pw-6d1f0c9a7be2"
FROM_ADDR = "noreply@shop.example"
RETRY = {"base": "1s", "max": "3s", "max_attempts": 8}
BASE, MAX = 1.0, 3.0
MS = 0.0015            # RFC 3339 times carry milliseconds


# -- fixtures and helpers -------------------------------------------------

@pytest.fixture
def sinks(tmp_path):
    """Factory of started SmtpSinks, stopped at teardown (after the
    daemons, when the test names this fixture before make_daemon)."""
    made = []

    def factory(**kw):
        s = SmtpSink(tmp_path / ("sink%d" % (len(made) + 1)), **kw)
        made.append(s)
        return s.start()

    yield factory
    for s in made:
        s.stop()


def smtp_daemon(make_daemon, sink, smtp=None, config=None, templates=None,
                env=None):
    """A roused (not started) whose email goes over SMTP to sink (an
    SmtpSink or a port number)."""
    port = sink if isinstance(sink, int) else sink.port
    conf = {"email": {"transport": "smtp", "maildir": None,
                      "smtp": {"host": "127.0.0.1", "port": port,
                               "starttls": "no", "sessions": 2,
                               "batch": 50, "timeout": "5s"}},
            "retry": dict(RETRY)}
    conf = deep_merge(conf, {"email": {"smtp": smtp or {}}})
    conf = deep_merge(conf, config or {})
    return make_daemon(config=conf, env=env,
                       templates=NOTE_TEMPLATES if templates is None
                       else templates)


def shipped_plus(tmp_path, extra=None):
    """The repository's templates plus extra {"name/part.mustache": text},
    in a temp directory; returns its path."""
    dst = tmp_path / "tpl"
    if not dst.exists():
        shutil.copytree(SOURCE_DIR / "templates", dst)
    for rel, text in (extra or {}).items():
        p = dst / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return dst


def ok(ans):
    assert ans.get("ok") is True, ans
    return ans


def send(c, user, to, template="note", vars_=None, **extra):
    req = {"op": "send", "user": user, "channel": "email", "to": to,
           "template": template,
           "vars": vars_ if vars_ is not None else {"name": user,
                                                     "code": user}}
    req.update(extra)
    return ok(c.request(req))["job"]


def msgid(job):
    return "<%s@shop.example>" % job


def copies(sink, job, accepted_only=True):
    """The messages the sink received for job (by Message-ID)."""
    return [m for m in sink.messages(accepted_only)
            if m.message_id == msgid(job)]


def attempts_to(sink, addr):
    """Every message whose "." the sink read for addr, answered or not."""
    return [m for m in sink.messages(accepted_only=False)
            if addr in m.rcpt_tos]


def details(job):
    return [e.get("detail") or "" for e in events(job)]


def has_detail(job, text):
    return any(text in d for d in details(job))


def wait_event(c, job_id, what, timeout=15.0, n=1):
    """Waits until the job has n events named what; returns the job."""
    last = {}

    def check():
        last["job"] = job_status(c, job_id)
        return last["job"] if len(events(last["job"], what)) >= n else None
    try:
        return wait_for(check, timeout, 0.1)
    except AssertionError:
        raise AssertionError("job %s: no %d %r events within %.0fs; last %r"
                             % (job_id, n, what, timeout, last.get("job")))


def send_due_together(c, prefix, n, delay, timeout):
    """Sends n email jobs (users prefix0.., each at user@example.com) due
    together delay seconds from now, so that they are claimed at once, and
    waits until all are sent. Returns (job ids, {id: job})."""
    at = rfc3339(time.time() + delay)
    answers = c.pipeline([send_req("%s%d" % (prefix, i), "email", at=at)
                          for i in range(n)])
    jobs = [ok(a)["job"] for a in answers]
    return jobs, wait_all(c, jobs, timeout=timeout)


def wait_all(c, jobs, states=("sent",), timeout=60.0):
    """Waits until every job is in one of states; returns {id: job}."""
    last = {}

    def check():
        st = statuses(c, jobs)
        last["st"] = st
        return all(a.get("ok") is True and a["job"]["state"] in states
                   for a in st.values())
    try:
        wait_for(check, timeout, 0.25)
    except AssertionError:
        bad = collections.Counter(
            a["job"]["state"] if a.get("ok") else "error"
            for a in last["st"].values())
        sample = [a for a in last["st"].values()
                  if not a.get("ok") or a["job"]["state"] not in states][:2]
        raise AssertionError("not all %d jobs in %s within %.0fs: %r; e.g. %r"
                             % (len(jobs), states, timeout, dict(bad), sample))
    return {j: a["job"] for j, a in last["st"].items()}


def smtp_client(sink, timeout=5):
    c = smtplib.SMTP(sink.host, sink.port, timeout=timeout)
    c.ehlo("client.test")
    return c


def session_of(sink, message):
    return next(s for s in sink.sessions() if s.id == message.session)


# -- the sink, proven with smtplib ------------------------------------------

BODY = (b"Subject: t\r\nMessage-ID: <m1@client.test>\r\n\r\n"
        b"first\r\n.\r\n..x\r\nFrom x\r\n")


def test_smtp_sink_selftest_replies(tmp_path):
    rules = {"t451x2@": ("451", 2), "gone@": "550 5.1.1",
             "policy@": "550 5.7.1", "full@": "552 5.2.2",
             "rgone@": ("550 5.1.1", None, "rcpt"),
             "grey@": "451 4.7.1 greylisted, come back later"}
    s = SmtpSink(tmp_path / "s", rules=rules).start()
    try:
        c = smtp_client(s)
        assert c.has_extn("pipelining") and c.has_extn("enhancedstatuscodes")
        assert not c.has_extn("starttls") and not c.has_extn("auth")
        assert c.sendmail("f@client.test", ["ok@example.com"], BODY) == {}
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("f@client.test", ["t451x2@example.com"], BODY)
            assert e.value.smtp_code == 451
            assert e.value.smtp_error.startswith(b"4.3.0 ")
        assert c.sendmail("f@client.test", ["t451x2@example.com"], BODY) == {}
        for rcpt, code, reply in [
                ("gone@example.com", 550, b"5.1.1 no such user"),
                ("policy@example.com", 550, b"5.7.1 message rejected by "
                                            b"policy"),
                ("full@example.com", 552, b"5.2.2 mailbox full"),
                ("grey@example.com", 451, b"4.7.1 greylisted, come back "
                                          b"later"),
                ("gone@example.com", 550, b"5.1.1 no such user")]:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("f@client.test", [rcpt], BODY)
            assert (e.value.smtp_code, e.value.smtp_error) == (code, reply)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("f@client.test", ["rgone@example.com"], BODY)
        assert e.value.recipients["rgone@example.com"] == (
            550, b"5.1.1 no such user")
        # Local parts that carry their own rule.
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("f@client.test", ["smtp452x1-a@example.com"], BODY)
        assert e.value.smtp_code == 452
        assert c.sendmail("f@client.test", ["smtp452x1-a@example.com"],
                          BODY) == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("f@client.test", ["rcpt-smtp550_5_1_2-b@example.com"],
                       BODY)
        c.quit()
    finally:
        s.stop()
    assert s.connections() == 1
    sess, = s.sessions()
    assert sess.ehlo == "client.test"
    assert sess.verbs()[0] == "EHLO" and sess.verbs()[-1] == "QUIT"
    assert sess.verbs().count("DATA") == 11
    assert len(sess.rcpts()) == 13
    got = s.messages()
    assert [m.rcpt_tos for m in got] == [["ok@example.com"],
                                         ["t451x2@example.com"],
                                         ["smtp452x1-a@example.com"]]
    # The sink undoes the client's dot-stuffing: the raw bytes are the
    # message as the client meant it.
    assert got[0].raw == BODY
    assert got[0].message_id == "<m1@client.test>"
    assert got[0].mail_from == "f@client.test"
    assert str(got[0].msg["Subject"]) == "t"
    everything = s.messages(accepted_only=False)
    assert len(everything) == 11
    assert [m.reply[:3] for m in everything].count("451") == 3


def test_smtp_sink_selftest_connection_modes(tmp_path):
    rules = {"bye@": ("421", 1), "drop@": ("drop", 1),
             "stall@": ("stall", 1)}
    s = SmtpSink(tmp_path / "s", rules=rules).start()
    try:
        c = smtp_client(s)
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("f@client.test", ["bye@example.com"], BODY)
        assert e.value.smtp_code == 421
        wait_for(lambda: s.sessions()[0].closed is not None, 5,
                 message="the sink kept the connection after 421")
        c = smtp_client(s)
        assert c.sendmail("f@client.test", ["bye@example.com"], BODY) == {}
        # drop: the whole message is read, then the connection closes.
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.sendmail("f@client.test", ["drop@example.com"], BODY)
        dropped = attempts_to(s, "drop@example.com")
        assert len(dropped) == 1 and dropped[0].accepted
        assert dropped[0].reply == "drop" and dropped[0].raw == BODY
        c = smtp_client(s)
        assert c.sendmail("f@client.test", ["drop@example.com"], BODY) == {}
        # stall: no answer to the "." until released.
        out = {}

        def stalled():
            try:
                out["r"] = c.sendmail("f@client.test", ["stall@example.com"],
                                      BODY)
            except Exception as e:   # noqa: BLE001 (reported below)
                out["e"] = e
        t = threading.Thread(target=stalled, daemon=True)
        t.start()
        wait_for(lambda: attempts_to(s, "stall@example.com"), 5)
        time.sleep(0.5)
        assert t.is_alive() and not out, out
        s.release_stalled()
        t.join(5)
        assert out == {"r": {}}, out
        # held greeting
        s.hold_greeting()
        with socket.create_connection((s.host, s.port), timeout=0.5) as raw:
            with pytest.raises(socket.timeout):
                raw.recv(100)
            s.release_greeting()
            raw.settimeout(5)
            assert raw.recv(100).startswith(b"220 ")
        c.quit()
    finally:
        s.stop()
    assert s.connections() == 4
    held = s.sessions()[-1]
    assert held.greeted - held.opened >= 0.45
    assert held.commands == []


def test_smtp_sink_selftest_starttls_and_auth(tmp_path):
    s = SmtpSink(tmp_path / "s", starttls=True,
                 auth=("mailer", SENTINEL)).start()
    try:
        # The certificate is not trusted without the sink's CA.
        c = smtp_client(s)
        assert c.has_extn("starttls")
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(context=ssl.create_default_context())
        c.close()
        c = smtp_client(s)
        assert c.mail("f@client.test")[0] == 530    # AUTH first
        c.starttls(context=ssl.create_default_context(cafile=s.ca_file))
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
        assert "PLAIN" in c.esmtp_features["auth"]
        assert "LOGIN" in c.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("mailer", "wrong")
        c.login("mailer", SENTINEL)
        assert c.sendmail("f@client.test", ["a@example.com"], BODY) == {}
        c.quit()
    finally:
        s.stop()
    sess = s.sessions()[-1]
    assert sess.starttls and sess.tls and sess.tls_version.startswith("TLS")
    assert sess.auth[-1] == ("PLAIN", "mailer", SENTINEL, True)
    assert all(a[3] is False for a in sess.auth[:-1]) and len(sess.auth) >= 2
    m, = s.messages()
    assert m.tls is True and m.raw == BODY
    assert s.sessions()[0].tls is False
    plain = SmtpSink(tmp_path / "p").start()
    try:
        c = smtp_client(plain)
        assert not c.has_extn("starttls")
        assert not c.has_extn("auth")
        c.quit()
    finally:
        plain.stop()


# -- checklist 11-14, 40: what the server receives ---------------------------

VARS_EN = {"name": "Alice", "brand": "Shop", "amount": "$20",
           "expiry": "Nov 30", "link": "https://shop.example/c/XYZ"}
VARS_ZH = {"name": "王小明", "brand": "优品商城旗舰店欢迎您再次光临我们的网上商店",
           "amount": "¥20", "expiry": "11月30日",
           "link": "https://shop.example/c/XYZ"}
EMAIL_EXTRA = {
    "plain/subject.mustache": "Plain note for {{name}}",
    "plain/text.mustache": "Hello {{name}},\nthis one is text only.\n",
    "dots/subject.mustache": "Dots",
    "dots/text.mustache":
        "first\n.\n..x\nFrom x\n{{body}}\n.trailing\nend\n",
    "dots/html.mustache": "<p>dots</p>\n.\n..y\n",
    "dots/transactional": "",
}
DOTS_BODY = ".\n..x\nFrom x\n. \n...\nFrom  y"
EVIL_NAME = ("Eve\r\nBcc: evil@attacker.example\r\nX-Injected: yes\n"
             "<script>alert(\"x\")</script> it's\x00")


def test_messages_over_smtp_are_well_formed(sinks, make_daemon, tmp_path):
    sink = sinks()
    d = smtp_daemon(make_daemon, sink,
                    templates=shipped_plus(tmp_path, EMAIL_EXTRA)).start()
    evil = dict(VARS_EN, name=EVIL_NAME,
                brand="Shop\r\nCc: cc@attacker.example",
                link="https://shop.example/c/\"><script>x</script>")
    with d.client() as c:
        def preview(template, vars_, locale=None):
            req = {"op": "preview", "template": template, "channel": "email",
                   "vars": vars_}
            if locale:
                req["locale"] = locale
            return ok(c.request(req))["parts"]
        p_en = preview("winback", VARS_EN)
        p_zh = preview("winback", VARS_ZH, "zh-CN")
        p_dots = preview("dots", {"body": DOTS_BODY})
        jobs = {
            "en": send(c, "u1", "alice@example.com", "winback", VARS_EN),
            "zh": send(c, "u2", "wang@example.com", "winback", VARS_ZH,
                       locale="zh-CN"),
            "plain": send(c, "u3", "bob@example.com", "plain",
                          {"name": "Bob"}),
            "dots": send(c, "u4", "dan@example.com", "dots",
                         {"body": DOTS_BODY}),
        }
        ans = c.request({"op": "send", "user": "u5", "channel": "email",
                         "to": "eve@example.com", "template": "winback",
                         "vars": evil})
        if ans.get("ok") is True:
            jobs["evil"] = ans["job"]
        else:   # a NUL in vars may be refused at intake, never sent
            assert ans["error"]["code"] in ("bad_json", "bad_request"), ans
            evil["name"] = EVIL_NAME.replace("\x00", "")
            jobs["evil"] = send(c, "u5", "eve@example.com", "winback", evil)
        done = wait_all(c, list(jobs.values()))
    to = {"en": "alice@example.com", "zh": "wang@example.com",
          "plain": "bob@example.com", "dots": "dan@example.com",
          "evil": "eve@example.com"}
    for k, j in jobs.items():
        assert done[j]["attempts"] == 1, done[j]
    got = sink.messages()
    assert len(got) == len(jobs), [m.message_id for m in got]
    by = {}
    for k, j in jobs.items():
        mine = copies(sink, j)
        assert len(mine) == 1, "job %s (%s): %d copies" % (j, k, len(mine))
        m = by[k] = mine[0]
        assert m.rcpt_tos == [to[k]], (k, m.rcpt_tos)
        assert m.mail_from == FROM_ADDR
        assert_rfc5322_shape(m.raw, m.msg)
        assert m.msg["From"].addresses[0].addr_spec == FROM_ADDR
        assert m.msg["To"].addresses[0].addr_spec == to[k]
    # One RCPT per job in the whole conversation, and EHLO names the From
    # domain.
    rcpts = [cmd[3] for cmd in sink.commands("RCPT")]
    assert len(rcpts) == len(jobs), rcpts
    assert not any("attacker" in r for r in rcpts), rcpts
    assert {s.ehlo for s in sink.sessions()} == {"shop.example"}

    # 12: multipart/alternative, text first, html last, utf-8, QP/base64.
    for k in ("en", "zh", "evil"):
        msg, raw = by[k].msg, by[k].raw
        assert msg.get_content_type() == "multipart/alternative"
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain",
                                                         "text/html"]
        for p in parts:
            assert p.get_content_charset() == "utf-8", p["Content-Type"]
            assert p["Content-Transfer-Encoding"].strip().lower() in (
                "quoted-printable", "base64"), p["Content-Transfer-Encoding"]
        assert max(raw) < 0x80, "8-bit data on the wire"
    text, html = body_parts(by["en"].msg)
    assert (text, html) == (norm(p_en["text"]), norm(p_en["html"]))
    assert str(by["en"].msg["Subject"]) == p_en["subject"]
    msg = by["plain"].msg
    assert msg.get_content_type() == "text/plain" and not msg.is_multipart()
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"].strip().lower() in (
        "quoted-printable", "base64")
    assert text_of(msg) == "Hello Bob,\nthis one is text only.\n"

    # 13: zh-CN Subject and display name as RFC 2047 words.
    raw = by["zh"].raw
    subj_raw = unfolded(raw, "Subject")[0]
    assert check_encoded_words(subj_raw) >= 2
    assert str(by["zh"].msg["Subject"]) == p_zh["subject"]
    assert str(email.header.make_header(email.header.decode_header(
        subj_raw.decode("ascii")))) == p_zh["subject"]
    assert check_encoded_words(unfolded(raw, "To")[0]) >= 1
    assert by["zh"].msg["To"].addresses[0].display_name == "王小明"
    text, html = body_parts(by["zh"].msg)
    assert (text, html) == (norm(p_zh["text"]), norm(p_zh["html"]))

    # 14: dot-stuffing round trip. The raw message holds lines starting
    # with "." (QP leaves them alone), so the server saw them stuffed and
    # restored them; a missing stuffing would end DATA early or eat a dot.
    raw = by["dots"].raw
    assert b"\r\n.\r\n" in raw and b"\r\n..x\r\n" in raw, raw[:600]
    text, html = body_parts(by["dots"].msg)
    assert text == norm(p_dots["text"])
    assert text == "first\n.\n..x\nFrom x\n" + DOTS_BODY + "\n.trailing\nend\n"
    assert html == "<p>dots</p>\n.\n..y\n"

    # 40: no header or recipient injected; html escaped.
    m = by["evil"]
    names = [ln.split(b":", 1)[0].strip().lower()
             for ln in header_block(m.raw) if ln[:1] not in (b" ", b"\t")]
    for bad in (b"bcc", b"cc", b"x-injected"):
        assert bad not in names, names
    assert b"\x00" not in m.raw
    to_addrs = m.msg["To"].addresses
    assert len(to_addrs) == 1 and to_addrs[0].addr_spec == "eve@example.com"
    assert not re.search(r"[\r\n]", to_addrs[0].display_name)
    subject = str(m.msg["Subject"])
    assert not re.search(r"[\r\n]", subject) and "Eve" in subject
    text, html = body_parts(m.msg)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "it&#39;s" in html
    assert "<script>" not in html and '"><script>' not in html


def test_helo_and_envelope_from_are_configurable(sinks, make_daemon):
    sink = sinks()
    d = smtp_daemon(make_daemon, sink,
                    smtp={"helo": "mx1.shop.example",
                          "envelope_from": "bounces@shop.example"}).start()
    with d.client() as c:
        job = send(c, "u1", "a@example.com")
        wait_state(c, job, "sent")
    m, = sink.messages()
    assert m.mail_from == "bounces@shop.example"
    assert m.msg["From"].addresses[0].addr_spec == FROM_ADDR
    assert session_of(sink, m).ehlo == "mx1.shop.example"


def test_list_unsubscribe_over_smtp(sinks, make_daemon, tmp_path):
    """Checklist 15 over SMTP: marketing mail carries exactly one one-click
    List-Unsubscribe (https and mailto) and its List-Unsubscribe-Post, the
    same link as in the body; a transactional template carries none."""
    sink = sinks()
    unsub = {"unsubscribe": {"listen": "127.0.0.1:%d" % free_port(),
                             "public_url": "https://shop.example/rouse",
                             "secret_env": "ROUSE_TEST_UNSUB",
                             "mailto": "unsubscribe@shop.example"}}
    d = smtp_daemon(make_daemon, sink, config=unsub,
                    env={"ROUSE_TEST_UNSUB": "smtp-test-unsubscribe-secret"},
                    templates=shipped_plus(tmp_path, EMAIL_EXTRA)).start()
    with d.client() as c:
        jobs = {"zh": send(c, "u1", "wang@example.com", "winback", VARS_ZH,
                           locale="zh-CN"),
                "plain": send(c, "u2", "bob@example.com", "plain",
                              {"name": "Bob"}),
                "dots": send(c, "u3", "dan@example.com", "dots",
                             {"body": "x"})}
        wait_all(c, list(jobs.values()))
    for k, j in jobs.items():
        m, = copies(sink, j)
        lu = m.msg.get_all("List-Unsubscribe") or []
        lup = m.msg.get_all("List-Unsubscribe-Post") or []
        if k == "dots":   # transactional
            assert lu == [] and lup == [], (lu, lup)
            continue
        assert len(lu) == 1 and lup == ["List-Unsubscribe=One-Click"], \
            (k, lu, lup)
        links = [x.strip().strip("<>") for x in str(lu[0]).split(",")]
        assert len(links) == 2, lu
        assert links[0].startswith("https://shop.example/rouse/u/"), links
        assert links[1].startswith(
            "mailto:unsubscribe@shop.example?subject="), links
        text, html = body_parts(m.msg)
        assert links[0] in text, (k, text)
        if html is not None:
            assert links[0] in html.replace("&amp;", "&"), (k, html)


# -- checklist 16: reply codes ------------------------------------------------

RETRY_CASES = [   # (address, rule, text expected in the retry detail)
    ("t450@example.com", ("450", 1), "450 4.2.1 mailbox busy, try later"),
    ("t451@example.com", ("451", 1), "451 4.3.0 local error, try later"),
    ("t452@example.com", ("452", 1),
     "452 4.3.1 insufficient system storage"),
    ("t552@example.com", ("552 5.2.2", 1), "552 5.2.2 mailbox full"),
    ("r451@example.com", ("451 4.3.0 rcpt later", 1, "rcpt"),
     "451 4.3.0 rcpt later"),
    ("t421@example.com", ("421", 1),
     "421 4.3.2 service shutting down, closing channel"),
]
FAIL_CASES = [    # (address, rule, reason, opt-out source or None, text)
    ("gone@example.com", ("550 5.1.1", 1), "bounced", "smtp_5.1.1",
     "550 5.1.1 no such user"),
    ("rgone@example.com", ("550 5.1.1 unknown mailbox", 1, "rcpt"),
     "bounced", "smtp_5.1.1", "550 5.1.1 unknown mailbox"),
    ("baddom@example.com", ("553 5.1.2", 1), "bounced", "smtp_5.1.2",
     "553 5.1.2 bad destination domain"),
    ("policy@example.com", "550 5.7.1", "rejected", None,
     "550 5.7.1 message rejected by policy"),
    ("big@example.com", "552 5.3.4", None, None,
     "552 5.3.4 message too big for system"),
]


def consent(c, address):
    return ok(c.request({"op": "consent", "address": address}))


@pytest.mark.parametrize("extensions", [
    ("PIPELINING", "ENHANCEDSTATUSCODES"),
    # each command waits for its reply; CHUNKING offered, DATA still used
    ("ENHANCEDSTATUSCODES", "CHUNKING"),
    ("PIPELINING",),
], ids=["pipelining", "one_by_one_chunking_offered", "no_enhanced"])
def test_reply_codes_map_to_outcomes(sinks, make_daemon, extensions):
    rules = {a: r for a, r, _ in RETRY_CASES}
    rules.update({a: r for a, r, *_ in FAIL_CASES})
    sink = sinks(rules=rules, extensions=extensions)
    d = smtp_daemon(make_daemon, sink, smtp={"sessions": 1}).start()
    with d.client() as c:
        jobs = {}
        for i, (addr, *_) in enumerate(FAIL_CASES + RETRY_CASES):
            jobs[addr] = send(c, "rc%d" % i, addr)
        fails = [jobs[a] for a, *_ in FAIL_CASES]
        retries = [jobs[a] for a, *_ in RETRY_CASES]
        wait_all(c, fails, ("failed",), timeout=30)
        done = wait_all(c, retries, ("sent",), timeout=40)
        for addr, _, text in RETRY_CASES:
            job = done[jobs[addr]]
            assert job["attempts"] >= 2, job
            assert events(job, "retry"), job
            assert has_detail(job, text), (text, details(job))
            assert len(copies(sink, job["id"])) == 1, addr
        for addr, _, reason, source, text in FAIL_CASES:
            job = job_status(c, jobs[addr])
            assert job["state"] == "failed", job
            if reason is not None:
                assert job.get("reason") == reason, job
            assert has_detail(job, text), (text, details(job))
            assert copies(sink, job["id"]) == []
            cons = consent(c, addr)
            if source is None:
                assert cons["effective"]["email"] == "subscribed", cons
                assert not [h for h in cons.get("history", [])
                            if h.get("action") == "unsubscribe"], cons
                ans = ok(c.request(send_req("later", "email", to=addr)))
                assert ans["state"] == "queued", ans
                continue
            assert cons["effective"]["email"] == "opted_out", cons
            assert cons["effective"].get("sms", "subscribed") == "subscribed"
            hist = [h for h in cons["history"]
                    if h.get("action") == "unsubscribe"]
            assert len(hist) == 1 and hist[0]["source"] == source, cons
            assert hist[0]["channel"] == "email", cons
            # A later send to the address, for any user, is suppressed ...
            ans = ok(c.request(send_req("other", "email", to=addr)))
            assert (ans["state"], ans.get("reason")) == ("suppressed",
                                                         "opted_out"), ans
            # ... until resubscribe lifts it.
            ok(c.request({"op": "resubscribe", "address": addr,
                          "channel": "email", "source": "test"}))
            assert consent(c, addr)["effective"]["email"] == "subscribed"
            again = ok(c.request(send_req("other", "email", to=addr)))
            assert again["state"] == "queued", again
            wait_state(c, again["job"], "sent", timeout=20)
    # Nothing failed was answered 250, nothing retried was received twice.
    assert len(sink.by_message_id()) == len(sink.messages())
    for sess in sink.sessions():
        assert "BDAT" not in sess.verbs(), sess.verbs()
    # every envelope command well formed, pipelined or one by one
    for verb, pattern in (("MAIL", r"FROM:<[^<>\s]+>"),
                          ("RCPT", r"TO:<[^<>\s]+>")):
        for cmd in sink.commands(verb):
            assert re.fullmatch(pattern, cmd[3].strip()), cmd


# -- checklist 10: backoff ------------------------------------------------------

def test_451_three_times_then_delivered_with_backoff(sinks, make_daemon):
    sink = sinks(rules={"t451x3@": ("451 4.3.0 try later", 3),
                        "always451@": "451 4.3.0 try later"})
    d = smtp_daemon(make_daemon, sink).start()
    with d.client() as c:
        job = send(c, "u1", "t451x3@example.com")
        short = send(c, "u2", "always451@example.com",
                     expires=rfc3339(time.time() + 2.5))
        st = wait_state(c, job, "sent", timeout=30)
        gone = wait_state(c, short, ("expired", "sent", "failed"),
                          timeout=30)
    assert st["attempts"] == 4, st
    tries = attempts_to(sink, "t451x3@example.com")
    assert [m.reply[:3] for m in tries] == ["451", "451", "451", "250"]
    for a, b in zip(tries, tries[1:]):
        assert b.at - a.at >= BASE - 0.05, [m.at for m in tries]
    sending = [parse_rfc3339(e["at"]) for e in events(st, "sending")]
    assert len(sending) == 4, events(st)
    for a, b in zip(sending, sending[1:]):
        assert b - a >= BASE - MS, sending
    retries = events(st, "retry")
    assert len(retries) == 3, events(st)
    for e, nxt in zip(retries, sending[1:]):
        at, until = parse_rfc3339(e["at"]), parse_rfc3339(e["until"])
        assert until <= at + MAX + MS, e
        assert nxt >= until - MS, (e, nxt)
        assert "451 4.3.0 try later" in e["detail"], e
    assert len(copies(sink, job)) == 1

    assert gone["state"] == "expired", gone
    assert copies(sink, short) == []
    assert attempts_to(sink, "always451@example.com"), "never tried"


# -- checklist 17: STARTTLS ------------------------------------------------------

@pytest.mark.parametrize("offer,mode,ca,tls", [
    (False, "if_available", False, False),
    (True, "if_available", True, True),
    (True, "required", True, True),
    (True, "no", False, False),
])
def test_starttls_modes_that_deliver(sinks, make_daemon, offer, mode, ca,
                                     tls):
    sink = sinks(starttls=offer)
    smtp = {"starttls": mode}
    if ca:
        smtp["ca_file"] = sink.ca_file
    d = smtp_daemon(make_daemon, sink, smtp=smtp).start()
    with d.client() as c:
        job = send(c, "u1", "a@example.com")
        st = wait_state(c, job, "sent")
    # First time, over one connection: nothing in the TLS upgrade (such as
    # the TLS 1.3 session tickets a server sends after the handshake) may
    # stall the session into a timeout and a retry.
    assert st["attempts"] == 1, st
    assert sink.connections() == 1, sink.sessions()
    m, = copies(sink, job)
    sess = session_of(sink, m)
    assert m.tls is tls and sess.tls is tls
    assert sess.starttls is tls
    verbs = sess.verbs()
    if tls:
        i = verbs.index("STARTTLS")
        assert verbs[i + 1] == "EHLO", verbs
        assert "MAIL" not in verbs[:i], verbs


def test_starttls_sessions_do_not_stall_after_the_handshake(sinks,
                                                           make_daemon):
    """A server able to speak TLS 1.3 (and so to send session tickets right
    after the handshake) gets its EHLO at once, every time: a client that
    waits to read before it flushes hangs until its timeout. The daemon
    flushes first, so it negotiates TLS 1.3 where the server offers it."""
    sink = sinks(starttls=True)
    d = smtp_daemon(make_daemon, sink,
                    smtp={"starttls": "required", "ca_file": sink.ca_file,
                          "timeout": "2s"}).start()
    stalled = []
    with d.client() as c:
        for i in range(10):
            job = send(c, "u%d" % i, "a%d@example.com" % i)
            st = wait_state(c, job, "sent", timeout=30)
            if st["attempts"] != 1:
                stalled.append(st)
    assert not stalled, "%d of 10 jobs needed a retry, e.g. %r" % (
        len(stalled), stalled[0])
    assert sink.connections() == 10
    for s in sink.sessions():
        assert s.tls and s.tls_version == "TLSv1.3", s


@pytest.mark.parametrize("case", ["not_offered", "untrusted_certificate"])
def test_starttls_required_never_sends_in_clear(sinks, make_daemon, case):
    sink = sinks(starttls=(case == "untrusted_certificate"))
    d = smtp_daemon(make_daemon, sink, smtp={"starttls": "required"}).start()
    with d.client() as c:
        job = send(c, "u1", "a@example.com")
        st = wait_event(c, job, "retry", timeout=15, n=2)
        assert st["state"] in ("deferred", "queued", "sending"), st
        assert not events(st, "sent") and st["state"] != "failed", st
        if case == "not_offered":
            retry = events(st, "retry")[0]
            assert "TLS" in retry["detail"], retry
    assert sink.connections() >= 2
    for s in sink.sessions():
        for verb in ("MAIL", "RCPT", "DATA", "AUTH"):
            assert verb not in s.verbs(), s
    assert sink.messages(accepted_only=False) == []


# -- AUTH and the password (checklist 41 for SMTP) ----------------------------------

@pytest.mark.parametrize("mode", ["no", "required"])
def test_auth_uses_the_password_and_never_leaks_it(sinks, make_daemon, mode):
    sink = sinks(starttls=(mode == "required"), auth=("mailer", SENTINEL))
    smtp = {"starttls": mode, "username": "mailer",
            "password_env": "ROUSE_TEST_SMTP_PASSWORD"}
    if mode == "required":
        smtp["ca_file"] = sink.ca_file
    d = smtp_daemon(make_daemon, sink, smtp=smtp,
                    env={"ROUSE_TEST_SMTP_PASSWORD": SENTINEL}).start()
    answers = []
    with d.client() as c:
        jobs = [send(c, "u%d" % i, "a%d@example.com" % i) for i in range(3)]
        done = wait_all(c, jobs)
        assert [done[j]["attempts"] for j in jobs] == [1, 1, 1], done
        for j in jobs:
            answers.append(json.dumps(c.request({"op": "status", "job": j})))
        answers.append(json.dumps(c.request({"op": "stats"})))
    assert d.stop() == 0
    assert len(sink.messages()) == 3
    for s in sink.sessions():
        if "MAIL" not in s.verbs():
            continue
        assert s.auth and s.auth[-1][1:] == ("mailer", SENTINEL, True), s.auth
        assert s.auth[-1][0] in ("PLAIN", "LOGIN")
        assert s.verbs().index("AUTH") < s.verbs().index("MAIL")
        assert s.tls is (mode == "required")
    forms = [SENTINEL.encode(),
             base64.b64encode(SENTINEL.encode()),
             base64.b64encode(b"\x00mailer\x00" + SENTINEL.encode()),
             base64.b64encode(b"mailer\x00mailer\x00" + SENTINEL.encode())]
    places = {"log": d.log_path.read_bytes(),
              "answers": "\n".join(answers).encode(),
              "config": d.config_path.read_bytes()}
    for f in sorted(d.data_dir.glob("rouse.db*")):
        places[f.name] = f.read_bytes()
    places["dump"] = d.sqlite(".dump").encode()
    for name, data in places.items():
        for form in forms:
            assert form not in data, "the SMTP password (%r) is in %s" % (
                form, name)


# -- pipelining: one round trip per message ----------------------------------------

class ScriptedSmtpServer:
    """A bare SMTP server on a raw socket for one connection: it offers
    PIPELINING, accepts everything, and before answering each message's
    final "." waits `hold` seconds, noting whether the client's next MAIL
    FROM arrived meanwhile (a client that waits for the 250 sends none)."""

    def __init__(self, hold=0.4):
        self.hold = hold
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.early = []      # per message: next MAIL seen before our 250
        self.recipients = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_until(self, conn, buf, marker, timeout=10):
        conn.settimeout(timeout)
        while marker not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError("client closed")
            buf += chunk
        i = buf.index(marker) + len(marker)
        return buf[:i], buf[i:]

    def _run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.sendall(b"220 raw.test ESMTP\r\n")
                buf = b""
                _, buf = self._read_until(conn, buf, b"\r\n")  # EHLO
                conn.sendall(b"250-raw.test\r\n250-PIPELINING\r\n"
                             b"250 ENHANCEDSTATUSCODES\r\n")
                while True:
                    line, buf = self._read_until(conn, buf, b"\r\n")
                    if line.upper().startswith(b"QUIT"):
                        conn.sendall(b"221 2.0.0 bye\r\n")
                        return
                    assert line.startswith(b"MAIL FROM:"), line
                    rcpt, buf = self._read_until(conn, buf, b"\r\n")
                    self.recipients.append(rcpt.strip().decode())
                    _, buf = self._read_until(conn, buf, b"DATA\r\n")
                    conn.sendall(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
                                 b"354 go ahead\r\n")
                    _, buf = self._read_until(conn, buf, b"\r\n.\r\n")
                    deadline = time.monotonic() + self.hold
                    while b"MAIL FROM:" not in buf and \
                            time.monotonic() < deadline:
                        conn.settimeout(max(0.01,
                                            deadline - time.monotonic()))
                        try:
                            chunk = conn.recv(65536)
                        except socket.timeout:
                            break
                        if not chunk:
                            break
                        buf += chunk
                    self.early.append(b"MAIL FROM:" in buf)
                    conn.sendall(b"250 2.0.0 queued\r\n")
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.sock.close()


def test_next_envelope_rides_behind_the_dot(make_daemon):
    """With PIPELINING, the next message's MAIL, RCPT and DATA go out right
    behind the previous message's "." (RFC 2920 §3.1), not after its 250:
    one round trip per message. The last message of a session is followed
    by QUIT only once its 250 is in."""
    server = ScriptedSmtpServer()
    d = smtp_daemon(make_daemon, server.port,
                    smtp={"sessions": 1, "batch": 50}).start()
    with d.client() as c:   # due together: one session
        jobs, done = send_due_together(c, "p", 3, 1.5, timeout=30)
    server.thread.join(10)
    assert server.error is None, server.error
    assert [done[j]["attempts"] for j in jobs] == [1, 1, 1], done
    assert len(server.recipients) == 3, server.recipients
    assert server.early == [True, True, False], server.early


# -- connection reuse ---------------------------------------------------------------

def test_helo_when_the_server_refuses_ehlo(sinks, make_daemon):
    """A server without ESMTP (EHLO answered 502): the client says HELO and
    sends every command on its own, and messages still share the
    connection."""
    sink = sinks(ehlo=False)
    d = smtp_daemon(make_daemon, sink,
                    smtp={"sessions": 1, "batch": 50}).start()
    with d.client() as c:   # due together: one connection
        jobs, done = send_due_together(c, "h", 3, 1.5, timeout=30)
    assert [done[j]["attempts"] for j in jobs] == [1, 1, 1], done
    assert sink.connections() == 1, sink.sessions()
    verbs = sink.sessions()[0].verbs()
    assert verbs[:2] == ["EHLO", "HELO"], verbs
    assert verbs.count("MAIL") == 3 and verbs.count("DATA") == 3, verbs
    for j in jobs:
        m, = copies(sink, j)
        assert_rfc5322_shape(m.raw, m.msg)


def test_two_sessions_of_fifty_reuse_connections(sinks, make_daemon):
    sink = sinks()
    d = smtp_daemon(make_daemon, sink,
                    smtp={"sessions": 2, "batch": 50}).start()
    with d.client() as c:   # all due at once: full batches
        jobs, _ = send_due_together(c, "r", 200, 2, timeout=40)
    wait_for(lambda: all(s.closed for s in sink.sessions()), 10,
             message="SMTP sessions left open after their batch")
    got = sink.messages()
    assert len(got) == 200
    assert sorted(m.message_id for m in got) == sorted(msgid(j) for j in jobs)
    rcpts = collections.Counter(c[3] for c in sink.commands("RCPT"))
    assert len(rcpts) == 200 and set(rcpts.values()) == {1}, \
        rcpts.most_common(3)
    # 200 / 50 = 4 at best: jobs due together are handed over together,
    # so sessions start with full batches (a short one may remain).
    sessions = sink.sessions()
    assert 4 <= len(sessions) <= 6, [len(s.messages) for s in sessions]
    for s in sessions:
        assert len(s.messages) <= 50, (s, len(s.messages))
        assert s.verbs()[-1] == "QUIT", s
    # Never more than two connections at a time.
    marks = sorted([(s.opened, 1) for s in sessions] +
                   [(s.closed, -1) for s in sessions])
    open_now = peak = 0
    for _, delta in marks:
        open_now += delta
        peak = max(peak, open_now)
    assert peak <= 2, peak


# -- retries that are not errors --------------------------------------------------------

def test_connection_refused_is_retried(sinks, make_daemon):
    port = free_port()
    d = smtp_daemon(make_daemon, port).start()
    with d.client() as c:
        job = send(c, "u1", "a@example.com")
        st = wait_event(c, job, "retry", timeout=10)
        assert st["state"] != "failed", st
        sink = sinks(port=port)
        st = wait_state(c, job, "sent", timeout=20)
    assert st["attempts"] >= 2
    assert len(copies(sink, job)) == 1


def test_greeting_timeout_is_retried_without_mail(sinks, make_daemon):
    sink = sinks(hold_greeting=True)
    d = smtp_daemon(make_daemon, sink, smtp={"timeout": "2s"}).start()
    with d.client() as c:
        job = send(c, "u1", "a@example.com")
        t0 = time.monotonic()
        st = wait_event(c, job, "retry", timeout=15)
        assert time.monotonic() - t0 >= 1.5, st
        assert st["state"] != "failed", st
        assert [s.commands for s in sink.sessions()] == \
            [[]] * len(sink.sessions())
        sink.release_greeting()
        st = wait_state(c, job, "sent", timeout=20)
    assert st["attempts"] >= 2
    assert len(copies(sink, job)) == 1


@pytest.mark.parametrize("reply", ["421", "451 4.7.1"])
def test_421_and_4_7_x_pause_the_transport(sinks, make_daemon, reply):
    sink = sinks(rules={"pause@": (reply, 1)})
    d = smtp_daemon(make_daemon, sink).start()
    with d.client() as c:
        first = send(c, "u0", "pause@example.com")
        wait_for(lambda: attempts_to(sink, "pause@example.com"), 10)
        t_reply = attempts_to(sink, "pause@example.com")[0].at
        others = [send(c, "u%d" % i, "p%d@example.com" % i)
                  for i in range(1, 4)]
        wait_all(c, [first] + others, timeout=30)
    later = [s for s in sink.sessions() if s.opened > t_reply]
    assert later, "no new connection after the pause"
    assert min(s.opened for s in later) >= t_reply + 4.9, \
        [round(s.opened - t_reply, 2) for s in later]
    for j in others:
        m, = copies(sink, j)
        assert m.at >= t_reply + 4.9


# -- checklist 4: ambiguous outcomes ---------------------------------------------------

@pytest.mark.parametrize("mode", ["drop", "stall_timeout"])
def test_no_reply_after_the_dot_is_sent_again(sinks, make_daemon, mode):
    rule = ("drop", 1) if mode == "drop" else ("stall", 1)
    sink = sinks(rules={"amb@": rule})
    d = smtp_daemon(make_daemon, sink, smtp={"timeout": "2s"}).start()
    with d.client() as c:
        job = send(c, "u1", "amb@example.com")
        bystander = send(c, "u2", "fine@example.com")
        st = wait_state(c, job, "sent", timeout=30)
        wait_state(c, bystander, "sent")
    assert st["attempts"] >= 2, st
    assert events(st, "retry"), st
    got = attempts_to(sink, "amb@example.com")
    assert len(got) == 2, got
    assert [m.message_id for m in got] == [msgid(job)] * 2
    assert got[0].reply == ("drop" if mode == "drop" else "stall (client gone)")
    assert got[1].reply.startswith("250")
    assert len(copies(sink, bystander)) == 1


def test_sigkill_after_the_dot_sends_again_with_same_message_id(
        sinks, make_daemon):
    sink = sinks(rules={"amb@": ("stall", 1)})
    d = smtp_daemon(make_daemon, sink, smtp={"timeout": "60s"}).start()
    with d.client() as c:
        job = send(c, "u1", "amb@example.com")
        wait_for(lambda: attempts_to(sink, "amb@example.com"), 10)
        assert job_status(c, job)["state"] == "sending"
    d.kill()
    d.start()
    with d.client() as c:
        st = wait_state(c, job, "sent", timeout=20)
    assert st["attempts"] >= 2, st
    assert has_detail(st, "interrupted while sending"), details(st)
    got = attempts_to(sink, "amb@example.com")
    assert len(got) == 2, got
    assert [m.message_id for m in got] == [msgid(job)] * 2
    assert got[0].reply.startswith("stall") and got[1].reply.startswith("250")


def test_sigterm_with_a_silent_server_exits_in_time(sinks, make_daemon):
    """Checklist 7 against a server that never answers the data, with a
    60 s SMTP timeout: SIGTERM still ends the daemon (exit 0) within 30 s,
    cutting the stuck session after the grace period, and the job is sent
    again after a restart, with the same Message-ID."""
    sink = sinks(rules={"silent@": ("stall", 1)})
    d = smtp_daemon(make_daemon, sink, smtp={"timeout": "60s"}).start()
    with d.client() as c:
        job = send(c, "u1", "silent@example.com")
        wait_for(lambda: attempts_to(sink, "silent@example.com"), 10)
        assert job_status(c, job)["state"] == "sending"
    t0 = time.monotonic()
    assert d.stop(timeout=30) == 0
    assert time.monotonic() - t0 < 30
    d.start()
    with d.client() as c:
        st = wait_state(c, job, "sent", timeout=20)
    assert st["attempts"] >= 2, st
    got = attempts_to(sink, "silent@example.com")
    assert [m.message_id for m in got] == [msgid(job)] * len(got), got


# -- checklist 7: SIGTERM with a backlog ------------------------------------------------

def test_sigterm_during_backlog_then_exactly_once(sinks, make_daemon):
    sink = sinks(delay=0.01)
    d = smtp_daemon(make_daemon, sink).start()
    with d.client() as c:
        answers = c.pipeline([send_req("bl%d" % i, "email", key="bl-%d" % i)
                              for i in range(500)], timeout=60)
    ids = [ok(a)["job"] for a in answers]
    wait_for(lambda: len(sink.messages()) >= 20, timeout=20)
    late = d.client(timeout=10)
    ok(late.request({"op": "ping"}))
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGTERM)
    time.sleep(0.2)
    try:
        a = late.request(send_req("late", "email", key="late-1"), timeout=10)
    except (OSError, ConnectionError):
        a = None
    if a is not None:
        assert a.get("ok") is False and \
            a["error"]["code"] == "shutting_down", a
    late.close()
    rc = d.proc.wait(30)
    assert time.monotonic() - t0 < 30
    assert rc == 0, "exit code %s after SIGTERM" % rc
    before = len(sink.messages())
    assert before < 500, "backlog drained before the stop; no test"
    sink.delay = 0
    d.start()
    with d.client(timeout=60) as c:
        wait_all(c, ids, timeout=60)
    counts = collections.Counter(m.message_id for m in sink.messages())
    want = {msgid(j) for j in ids}
    extra = set(counts) - want
    assert not extra, "messages of unknown jobs: %r" % sorted(extra)[:3]
    dup = {k: n for k, n in counts.items() if n != 1}
    assert not dup, "%d jobs received more than once: %r" % (
        len(dup), sorted(dup.items())[:3])
    assert set(counts) == want


# -- checklist 3/4 at scale: SIGKILL mid-run ----------------------------------------------

def test_sigkill_mid_run_loses_nothing(sinks, make_daemon):
    n = 3000
    sink = sinks(delay=0.003)
    d = smtp_daemon(make_daemon, sink,
                    smtp={"sessions": 4, "batch": 50}).start()
    ids = []
    with d.client(timeout=60) as c:
        for k in range(0, n, 1000):
            answers = c.pipeline([send_req("k%d" % i, "email",
                                           key="k-%d" % i)
                                  for i in range(k, k + 1000)], timeout=60)
            ids += [ok(a)["job"] for a in answers]
    wait_for(lambda: len(sink.messages()) >= n // 3, timeout=60)
    d.kill()
    before = len(sink.messages())
    assert before < n, "all delivered before the kill; no test"
    sink.delay = 0
    d.start()
    with d.client(timeout=120) as c:
        final = wait_all(c, ids, timeout=90)
    counts = collections.Counter(m.message_id for m in sink.messages())
    want = {msgid(j): j for j in ids}
    assert set(counts) == set(want), (
        "missing %d, unknown %d" % (len(set(want) - set(counts)),
                                    len(set(counts) - set(want))))
    interrupted = {j for j, job in final.items()
                   if has_detail(job, "interrupted while sending")}
    dup = {want[k] for k, v in counts.items() if v > 1}
    assert max(counts.values()) <= 2, counts.most_common(3)
    assert dup <= interrupted, (
        "%d jobs received twice without having been in sending at the "
        "kill, e.g. %r" % (len(dup - interrupted),
                           sorted(dup - interrupted)[:3]))
    # at most what the transport holds: one batch in flight and one ready
    # per session (2 x sessions x batch)
    assert len(interrupted) <= 2 * 4 * 50, len(interrupted)
    for j in interrupted:
        assert final[j]["attempts"] >= 2, final[j]
