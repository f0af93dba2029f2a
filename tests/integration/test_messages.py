"""What reaches the outboxes: the bytes of each email in the maildir, the
SMS and push JSON lines, and the shipped templates rendered in English and
Simplified Chinese (checklist 11-14, 21, 22, 40).

Every test runs a real roused with file transports and looks only at what
it leaves behind and at its socket answers.
"""

import email
import email.header
import email.policy
import email.utils
import re
import shutil
import time

import pytest

from mail_checks import (assert_rfc5322_shape, body_parts,
                         check_encoded_words, header_block, norm, text_of,
                         unfolded)
from rouse_harness import (SOURCE_DIR, is_uuid, jsonl, job_status,
                           maildir_messages, parse_rfc3339, wait_for,
                           wait_state)

FOOTER_EN = "Reply STOP to opt out"
FOOTER_ZH = "回复TD退订"

VARS_EN = {"name": "Alice", "brand": "Shop", "amount": "$20",
           "expiry": "Nov 30", "link": "https://shop.example/c/XYZ"}
VARS_ZH = {"name": "王小明", "brand": "优品商城", "amount": "¥20",
           "expiry": "11月30日", "link": "https://shop.example/c/XYZ"}


# -- local helpers -------------------------------------------------------

def shipped_plus(tmp_path, extra=None):
    """A templates directory holding the shipped templates plus extra
    ({"name/part.mustache": text}); returns its path."""
    dst = tmp_path / "tpl"
    shutil.copytree(SOURCE_DIR / "templates", dst)
    for rel, text in (extra or {}).items():
        p = dst / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return dst


def ok(ans):
    assert ans.get("ok") is True, ans
    return ans


def send(c, user, channel, to, template, vars_=None, **extra):
    req = {"op": "send", "user": user, "channel": channel, "to": to,
           "template": template, "vars": vars_ or {}}
    req.update(extra)
    return ok(c.request(req))["job"]


def preview(c, template, channel, vars_=None, locale=None):
    req = {"op": "preview", "template": template, "channel": channel,
           "vars": vars_ or {}}
    if locale is not None:
        req["locale"] = locale
    return ok(c.request(req))


def wait_sent(c, jobs, timeout=15.0):
    for j in jobs:
        wait_state(c, j, ("sent",), timeout)


def by_job(maildir):
    """{job id: (raw, msg)} for every delivered message, keyed by the job
    id taken from its Message-ID."""
    out = {}
    for _, raw, msg in maildir_messages(maildir):
        mid = str(msg["Message-ID"]).strip()
        m = re.fullmatch(r"<([^@>]+)@([^>]+)>", mid)
        assert m, "Message-ID %r is not <id@domain>" % mid
        out.setdefault(m.group(1), []).append((raw, msg))
    return out


# -- checklist 11, 12, 14 ------------------------------------------------

EMAIL_EXTRA = {
    "plain/subject.mustache": "Plain note for {{name}}",
    "plain/text.mustache": "Hello {{name}},\nthis one is text only.\n",
    "dots/subject.mustache": "Dots",
    "dots/text.mustache":
        "first\n.\n..x\nFrom x\n{{body}}\n.trailing\nend\n",
    "dots/transactional": "",
}


def test_every_email_is_well_formed_rfc5322(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path, EMAIL_EXTRA)).start()
    long_name = ("Alexander Maximilian Bartholomew Smythe-Worthington "
                 "the Third of Somewhere Very Far Away Indeed")
    with d.client() as c:
        jobs = [
            send(c, "u1", "email", "alice@example.com", "winback", VARS_EN),
            send(c, "u2", "email", "wang@example.com", "winback", VARS_ZH,
                 locale="zh-CN"),
            send(c, "u3", "email", "bob@example.com", "plain",
                 {"name": "Bob"}),
            send(c, "u4", "email", "carol@example.com", "winback",
                 dict(VARS_EN, name=long_name)),
            send(c, "u5", "email", "dan@example.com", "dots",
                 {"body": "x"}),
        ]
        wait_sent(c, jobs)
    got = by_job(d.maildir)
    assert set(got) == set(jobs), (sorted(got), jobs)
    msgids = set()
    for job in jobs:
        assert len(got[job]) == 1, "job %s delivered %d times" % (
            job, len(got[job]))
        raw, msg = got[job][0]
        assert_rfc5322_shape(raw, msg)
        mid = str(msg["Message-ID"]).strip()
        assert mid == "<%s@shop.example>" % job
        msgids.add(mid)
        assert msg["From"].addresses[0].addr_spec == "noreply@shop.example"
    assert len(msgids) == len(jobs)
    # The long English subject had to be folded, and decodes back whole.
    raw, msg = got[jobs[3]][0]
    assert long_name in str(msg["Subject"])
    assert len(header_block(raw)) > 8


def test_text_and_html_make_multipart_alternative(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path, EMAIL_EXTRA)).start()
    with d.client() as c:
        en = send(c, "u1", "email", "alice@example.com", "winback", VARS_EN)
        zh = send(c, "u2", "email", "wang@example.com", "winback", VARS_ZH,
                  locale="zh-CN")
        plain = send(c, "u3", "email", "bob@example.com", "plain",
                     {"name": "Bob"})
        wait_sent(c, [en, zh, plain])
    got = by_job(d.maildir)
    for job in (en, zh):
        raw, msg = got[job][0]
        assert msg.get_content_type() == "multipart/alternative"
        parts = list(msg.iter_parts())
        assert len(parts) == 2, [p.get_content_type() for p in parts]
        assert parts[0].get_content_type() == "text/plain"
        assert parts[-1].get_content_type() == "text/html"
        for p in parts:
            assert p.get_content_charset() == "utf-8", p["Content-Type"]
            assert p["Content-Transfer-Encoding"].strip().lower() in (
                "quoted-printable", "base64"), p["Content-Transfer-Encoding"]
        # 7-bit clean on the wire: no raw UTF-8 anywhere in the message.
        assert max(raw) < 0x80
    raw, msg = got[plain][0]
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()
    assert msg.get_content_charset() == "utf-8"
    assert msg["Content-Transfer-Encoding"].strip().lower() in (
        "quoted-printable", "base64")
    assert text_of(msg) == "Hello Bob,\nthis one is text only.\n"


def test_dot_and_from_lines_survive_byte_identical(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path, EMAIL_EXTRA)).start()
    body = ".\n..x\nFrom x\n. \n...\nFrom  y"
    expected = ("first\n.\n..x\nFrom x\n" + body + "\n.trailing\nend\n")
    with d.client() as c:
        p = preview(c, "dots", "email", {"body": body})
        assert norm(p["parts"]["text"]) == expected
        job = send(c, "u1", "email", "dan@example.com", "dots",
                   {"body": body})
        wait_sent(c, [job])
    raw, msg = by_job(d.maildir)[job][0]
    assert msg.get_content_type() == "text/plain"
    assert text_of(msg) == expected
    # The maildir holds the message itself, never SMTP's dot-stuffed form.
    assert b"\r\n...x\r\n" not in raw


# -- checklist 13 ---------------------------------------------------------


def test_chinese_subject_and_name_are_rfc2047(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path)).start()
    brand = "优品商城旗舰店欢迎您再次光临我们的网上商店"
    vars_ = dict(VARS_ZH, brand=brand)
    with d.client() as c:
        p = preview(c, "winback", "email", vars_, locale="zh-CN")
        subject = p["parts"]["subject"]
        assert subject == "想你了!%s 期待与您重逢" % brand
        job = send(c, "u1", "email", "wang@example.com", "winback", vars_,
                   locale="zh-CN")
        wait_sent(c, [job])
    raw, msg = by_job(d.maildir)[job][0]
    assert_rfc5322_shape(raw, msg)
    subj_raw = unfolded(raw, "Subject")[0]
    assert check_encoded_words(subj_raw) >= 2   # long enough to be split
    assert str(msg["Subject"]) == subject
    # decode_header joins the words exactly, with no stray spaces.
    decoded = str(email.header.make_header(
        email.header.decode_header(subj_raw.decode("ascii"))))
    assert decoded == subject
    to_raw = unfolded(raw, "To")[0]
    assert check_encoded_words(to_raw) >= 1
    addr = msg["To"].addresses[0]
    assert addr.display_name == "王小明"
    assert addr.addr_spec == "wang@example.com"


# -- checklist 21 ---------------------------------------------------------

SMS_CASES = [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("€" * 80, "GSM-7", 1),
    ("€" * 81, "GSM-7", 2),
    ("中" * 70, "UCS-2", 1),
    ("中" * 71, "UCS-2", 2),
    ("Your code is ready \U0001F600", "UCS-2", 1),
]


def test_sms_encoding_and_segments(make_daemon):
    d = make_daemon(templates={"raw/sms.mustache": "{{t}}",
                               "raw/transactional": ""}).start()
    jobs = []
    with d.client() as c:
        for i, (text, enc, segs) in enumerate(SMS_CASES):
            p = preview(c, "raw", "sms", {"t": text})
            assert p["parts"]["sms"] == text
            assert (p["encoding"], p["segments"]) == (enc, segs), \
                (len(text), p)
            jobs.append(send(c, "u%d" % i, "sms", "+1555010%04d" % i, "raw",
                             {"t": text}))
        wait_sent(c, jobs)
        for job, (text, enc, segs) in zip(jobs, SMS_CASES):
            st = job_status(c, job)
            assert (st["encoding"], st["segments"]) == (enc, segs), st
    lines = {r["job"]: r for r in jsonl(d.sms_file)}
    assert set(lines) == set(jobs)
    for i, (job, (text, enc, segs)) in enumerate(zip(jobs, SMS_CASES)):
        r = lines[job]
        assert r["text"] == text
        assert (r["encoding"], r["segments"]) == (enc, segs), r
        assert r["to"] == "+1555010%04d" % i
        assert r["from"] == "+15550100"
        assert r["attempt"] == 1
        parse_rfc3339(r["at"])


# -- checklist 22 ---------------------------------------------------------

def test_every_sms_carries_an_opt_out_line(make_daemon, tmp_path):
    extra = {
        "ownstop/sms.mustache":
            "{{brand}}: 20% off today only. Reply STOP to opt out",
        "plainsms/sms.mustache": "{{brand}}: new arrivals are in!",
    }
    d = make_daemon(templates=shipped_plus(tmp_path, extra)).start()
    with d.client() as c:
        en = send(c, "u1", "sms", "+15550001", "coupon_expiring", VARS_EN)
        zh = send(c, "u2", "sms", "+8613800138000", "coupon_expiring",
                  VARS_ZH, locale="zh-CN")
        own = send(c, "u3", "sms", "+15550003", "ownstop", VARS_EN)
        zh_footer = send(c, "u4", "sms", "+8613800138001", "plainsms",
                         VARS_ZH, locale="zh-CN")
        zh_short = send(c, "u5", "sms", "+8613800138002", "plainsms",
                        VARS_ZH, locale="zh")
        other = send(c, "u6", "sms", "+33612345678", "plainsms", VARS_EN,
                     locale="fr")
        jobs = [en, zh, own, zh_footer, zh_short, other]
        wait_sent(c, jobs)
    lines = jsonl(d.sms_file)
    assert len(lines) == len(jobs)
    for r in lines:
        assert FOOTER_EN in r["text"] or FOOTER_ZH in r["text"], r
    texts = {r["job"]: r["text"] for r in lines}
    assert texts[en].endswith("\n" + FOOTER_EN)
    assert texts[en].count(FOOTER_EN) == 1
    assert texts[zh].count(FOOTER_ZH) == 1 and FOOTER_EN not in texts[zh]
    assert texts[own] == "Shop: 20% off today only. Reply STOP to opt out"
    assert texts[zh_footer] == "优品商城: new arrivals are in!\n" + FOOTER_ZH
    assert texts[zh_short] == "优品商城: new arrivals are in!\n" + FOOTER_ZH
    assert texts[other] == "Shop: new arrivals are in!\n" + FOOTER_EN


def test_configured_sms_footer_replaces_the_built_in(make_daemon):
    d = make_daemon(
        templates={"promo/sms.mustache": "{{brand}}: sale today",
                   "own/sms.mustache": "{{brand}}: sale. Text END to quit",
                   "code/sms.mustache": "Your code is 1234",
                   "code/transactional": ""},
        config={"sms": {"footer": {"en": "Text END to quit",
                                   "zh": "回复N退订"}}}).start()
    with d.client() as c:
        jobs = [send(c, "u1", "sms", "+15550001", "promo", {"brand": "Shop"}),
                send(c, "u2", "sms", "+15550002", "own", {"brand": "Shop"}),
                send(c, "u3", "sms", "+8613800138003", "promo",
                     {"brand": "商城"}, locale="zh-CN"),
                send(c, "u4", "sms", "+15550004", "code")]
        wait_sent(c, jobs)
    texts = {r["job"]: r["text"] for r in jsonl(d.sms_file)}
    assert [texts[j] for j in jobs] == [
        "Shop: sale today\nText END to quit",
        "Shop: sale. Text END to quit",
        "商城: sale today\n回复N退订",
        "Your code is 1234"]
    assert not any(FOOTER_EN in t or FOOTER_ZH in t for t in texts.values())


# -- checklist 40 ---------------------------------------------------------

EVIL_NAME = ("Eve\r\nBcc: evil@attacker.example\r\nX-Injected: yes\n"
             "<script>alert(\"x\")</script> it's")


def test_vars_cannot_inject_headers_or_markup(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path)).start()
    vars_ = dict(VARS_EN, name=EVIL_NAME,
                 brand="Shop\r\nCc: cc@attacker.example",
                 link="https://shop.example/c/\"><script>x</script>")
    with d.client() as c:
        job = send(c, "u1", "email", "alice@example.com", "winback", vars_)
        wait_sent(c, [job])
    got = by_job(d.maildir)
    assert list(got) == [job]
    raw, msg = got[job][0]
    assert_rfc5322_shape(raw, msg)
    names = [line.split(b":", 1)[0].strip().lower()
             for line in header_block(raw) if line[:1] not in (b" ", b"\t")]
    assert b"bcc" not in names and b"cc" not in names, names
    assert b"x-injected" not in names, names
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    to = msg["To"].addresses
    assert len(to) == 1 and to[0].addr_spec == "alice@example.com", to
    assert "\r" not in to[0].display_name and "\n" not in to[0].display_name
    subject = str(msg["Subject"])
    assert "\r" not in subject and "\n" not in subject, repr(subject)
    assert "Eve" in subject
    text, html = body_parts(msg)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "it&#39;s" in html
    assert "<script>" not in html
    assert '"><script>' not in html
    # Plain text carries the value as it is (it is not HTML).
    assert "<script>alert(\"x\")</script> it's" in text


def test_nul_in_vars_never_reaches_a_header(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path)).start()
    with d.client() as c:
        ans = c.request({"op": "send", "user": "u1", "channel": "email",
                         "to": "alice@example.com", "template": "winback",
                         "vars": dict(VARS_EN, name="Eve\u0000Bcc: x@y.z")})
        if ans.get("ok") is not True:
            assert ans["error"]["code"] in ("bad_json", "bad_request"), ans
            assert ping_ok(c)
            return
        wait_sent(c, [ans["job"]])
    raw, msg = by_job(d.maildir)[ans["job"]][0]
    for line in header_block(raw):
        assert b"\x00" not in line
    assert msg.get_all("Bcc") is None


def ping_ok(c):
    return c.request({"op": "ping"}).get("ok") is True


# -- push -----------------------------------------------------------------

def test_push_outbox_lines(make_daemon, tmp_path):
    d = make_daemon(templates=shipped_plus(tmp_path)).start()
    with d.client() as c:
        fcm = send(c, "u1", "push", {"platform": "fcm", "token": "fcm-tok-1"},
                   "miss_you", VARS_EN)
        apns = send(c, "u2", "push", {"platform": "apns", "token": "a1b2c3"},
                    "miss_you", VARS_ZH, locale="zh-CN")
        wait_sent(c, [fcm, apns])
    lines = {r["job"]: r for r in jsonl(d.push_file)}
    assert set(lines) == {fcm, apns}
    r = lines[fcm]
    assert set(r) >= {"job", "attempt", "at", "platform", "token", "title",
                      "body", "collapse_id"}, r
    assert (r["platform"], r["token"], r["attempt"]) == ("fcm", "fcm-tok-1",
                                                         1)
    assert r["title"] == "We miss you, Alice!"
    assert "$20" in r["body"] and "Shop" in r["body"]
    assert isinstance(r["collapse_id"], str) and r["collapse_id"]
    assert abs(parse_rfc3339(r["at"]) - time.time()) < 120
    r = lines[apns]
    assert (r["platform"], r["token"]) == ("apns", "a1b2c3")
    assert r["title"] == "王小明,好久不见!"
    assert "优品商城" in r["body"] and "¥20" in r["body"]
    assert lines[fcm]["collapse_id"] != lines[apns]["collapse_id"]


# -- the shipped templates --------------------------------------------------

def no_tags(s):
    assert "{{" not in s and "}}" not in s, s
    return s


@pytest.mark.parametrize("locale,vars_", [("en", VARS_EN),
                                          ("zh-CN", VARS_ZH)])
def test_shipped_templates_render_and_send(make_daemon, locale, vars_):
    d = make_daemon().start()    # the repository's templates/
    with d.client() as c:
        pe = preview(c, "winback", "email", vars_, locale)["parts"]
        ps = preview(c, "coupon_expiring", "sms", vars_, locale)
        pp = preview(c, "miss_you", "push", vars_, locale)["parts"]
        for s in list(pe.values()) + [ps["parts"]["sms"]] + list(pp.values()):
            no_tags(s)
        assert set(pe) == {"subject", "text", "html"}
        assert set(pp) == {"push_title", "push_body"}
        for part in (pe["text"], pe["html"], ps["parts"]["sms"]):
            for k in ("amount", "expiry", "link"):
                assert vars_[k] in part, (k, part)
        assert vars_["name"] in pe["text"] and vars_["name"] in pe["html"]
        assert vars_["brand"] in pe["subject"]
        assert 'href="https://shop.example/c/XYZ"' in pe["html"]
        # The html layout comes from the shared partials.
        assert "<title>%s</title>" % vars_["brand"] in pe["html"]
        assert "&copy; %s" % vars_["brand"] in pe["html"]
        assert pe["html"].rstrip().endswith("</html>")
        sms = ps["parts"]["sms"]
        assert 1 <= ps["segments"] <= 2, ps
        if locale == "zh-CN":
            assert pe["subject"] == "想你了!优品商城 期待与您重逢"
            assert ps["encoding"] == "UCS-2"
            assert sms.count(FOOTER_ZH) == 1 and sms.endswith(FOOTER_ZH)
            assert "好久不见" in pp["push_title"]
        else:
            assert pe["subject"].isascii()
            assert ps["encoding"] == "GSM-7"
            assert sms.endswith("\n" + FOOTER_EN)
            assert sms.count(FOOTER_EN) == 1
            assert pp["push_title"] == "We miss you, Alice!"

        ej = send(c, "u1", "email", "alice@example.com", "winback", vars_,
                  locale=locale)
        sj = send(c, "u1", "sms", "+15550100123", "coupon_expiring", vars_,
                  locale=locale)
        pj = send(c, "u1", "push", {"platform": "fcm", "token": "t1"},
                  "miss_you", vars_, locale=locale)
        wait_sent(c, [ej, sj, pj])
        st = job_status(c, sj)
        assert (st["encoding"], st["segments"]) == (ps["encoding"],
                                                    ps["segments"])
    raw, msg = by_job(d.maildir)[ej][0]
    assert str(msg["Subject"]) == pe["subject"]
    text, html = body_parts(msg)
    assert text == norm(pe["text"])
    assert html == norm(pe["html"])
    sms_line, = jsonl(d.sms_file)
    assert sms_line["job"] == sj and sms_line["text"] == sms
    assert (sms_line["encoding"], sms_line["segments"]) == (ps["encoding"],
                                                            ps["segments"])
    push_line, = jsonl(d.push_file)
    assert push_line["job"] == pj
    assert (push_line["title"], push_line["body"]) == (pp["push_title"],
                                                       pp["push_body"])


# -- locale fallback and partials -------------------------------------------

LOCALE_TEMPLATES = {
    "loc/subject.mustache": "default subject {{name}}",
    "loc/subject.zh.mustache": "zh subject {{name}}",
    "loc/text.mustache": "default text\n",
    "loc/text.zh-CN.mustache": "zh-CN text\n",
    "loc/sms.mustache": "default sms",
    "loc/sms.zh.mustache": "zh sms",
    "loc/transactional": "",
    "greet/subject.mustache": "{{> salutation}}",
    "greet/text.mustache": "Dear reader: {{> salutation}}\n-- {{> signoff}}\n",
    "greet/html.mustache": "<p>{{> salutation}}</p>\n",
    "_partials/salutation.mustache": "Hello {{name}}!",
    "_partials/signoff.mustache": "the {{brand}} team",
}


@pytest.mark.parametrize("locale,subject,text,sms", [
    ("zh-CN", "zh subject Li", "zh-CN text\n", "zh sms"),
    ("zh-TW", "zh subject Li", "default text\n", "zh sms"),
    ("zh", "zh subject Li", "default text\n", "zh sms"),
    ("fr", "default subject Li", "default text\n", "default sms"),
    (None, "default subject Li", "default text\n", "default sms"),
])
def test_locale_fallback(make_daemon, locale, subject, text, sms):
    d = make_daemon(templates=LOCALE_TEMPLATES).start()
    with d.client() as c:
        p = preview(c, "loc", "email", {"name": "Li"}, locale)["parts"]
        assert (p["subject"], norm(p["text"])) == (subject, text)
        assert "html" not in p or not p["html"]
        ps = preview(c, "loc", "sms", {}, locale)["parts"]
        assert ps["sms"] == sms
        extra = {} if locale is None else {"locale": locale}
        job = send(c, "u1", "email", "li@example.com", "loc", {"name": "Li"},
                   **extra)
        wait_sent(c, [job])
    raw, msg = by_job(d.maildir)[job][0]
    assert str(msg["Subject"]) == subject
    assert text_of(msg) == text


def test_partials_are_used(make_daemon):
    d = make_daemon(templates=LOCALE_TEMPLATES).start()
    vars_ = {"name": "Bob <b>", "brand": "Shop"}
    with d.client() as c:
        p = preview(c, "greet", "email", vars_)["parts"]
        assert p["subject"] == "Hello Bob <b>!"
        assert norm(p["text"]) == \
            "Dear reader: Hello Bob <b>!\n-- the Shop team\n"
        assert norm(p["html"]) == "<p>Hello Bob &lt;b&gt;!</p>\n"
        job = send(c, "u1", "email", "bob@example.com", "greet", vars_)
        wait_sent(c, [job])
    raw, msg = by_job(d.maildir)[job][0]
    assert str(msg["Subject"]) == "Hello Bob <b>!"
    text, html = body_parts(msg)
    assert text == "Dear reader: Hello Bob <b>!\n-- the Shop team\n"
    assert html == "<p>Hello Bob &lt;b&gt;!</p>\n"


def test_job_ids_are_uuids_and_message_ids_stable(make_daemon):
    from rouse_harness import NOTE_TEMPLATES, send_req
    d = make_daemon(templates=NOTE_TEMPLATES).start()
    with d.client() as c:
        answers = c.pipeline([send_req("u%d" % i) for i in range(5)])
        jobs = [ok(a)["job"] for a in answers]
        assert all(is_uuid(j) for j in jobs), jobs
        assert len(set(jobs)) == 5
        wait_sent(c, jobs)
    wait_for(lambda: len(maildir_messages(d.maildir)) == 5)
    got = by_job(d.maildir)
    assert sorted(got) == sorted(jobs)
