"""One-click unsubscribe (RFC 8058) and SMS replies through the daemon's
HTTP listener, with a real HTTP client following the List-Unsubscribe URL
of a delivered message (checklist 15, 22, 33, 34, 35, 42)."""

import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid

from http_mocks import twilio_signature
from rouse_harness import maildir_messages, wait_state
from smtp_sink import free_port

SECRET = "SENTINEL-unsubscribe-secret-0123456789"
TWILIO_TOKEN = "SENTINEL-twilio-token-abcdef"


def unsub_daemon(make_daemon, secret=SECRET, port=None, sms_http=False,
                 **kw):
    port = port or free_port()
    public = "http://127.0.0.1:%d/rouse" % port
    conf = {"unsubscribe": {"listen": "127.0.0.1:%d" % port,
                            "public_url": public,
                            "secret_env": "ROUSE_TEST_UNSUB",
                            "mailto": "unsubscribe@shop.example"}}
    env = {"ROUSE_TEST_UNSUB": secret, "ROUSE_TEST_TWILIO": TWILIO_TOKEN}
    if sms_http:
        conf["sms"] = {"transport": "http", "from": "+15550100",
                       "http": {"kind": "twilio",
                                "url": "http://127.0.0.1:9",
                                "account_sid": "AC1",
                                "auth_token_env": "ROUSE_TEST_TWILIO"}}
    d = make_daemon(config=conf, env=env, **kw)
    d.public_url = public
    d.port = port
    return d


def winback(user, to):
    return {"op": "send", "user": user, "channel": "email", "to": to,
            "template": "winback", "locale": "zh-CN",
            "vars": {"name": "张三", "brand": "Shop", "amount": "¥20",
                     "expiry": "11/30", "link": "https://shop.example/c/1"}}


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def delivered_link(d, c, user, to):
    job = c.request(winback(user, to))["job"]
    wait_state(c, job, ("sent",))
    msgs = [m for _, _, m in maildir_messages(d.maildir)
            if job in str(m["Message-ID"])]
    assert len(msgs) == 1
    msg = msgs[0]
    lu = msg.get_all("List-Unsubscribe")
    assert lu and len(lu) == 1, lu
    lup = msg.get_all("List-Unsubscribe-Post")
    assert lup == ["List-Unsubscribe=One-Click"], lup
    parts = [p.strip() for p in str(lu[0]).split(",")]
    assert len(parts) == 2, lu
    https, mailto = parts[0].strip("<>"), parts[1].strip("<>")
    assert https.startswith(d.public_url + "/u/"), https
    assert mailto.startswith("mailto:unsubscribe@shop.example?subject="), mailto
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert https in text, text
    assert https in html, html
    # the shipped template shows its own link: no footer added twice
    assert text.count(https) == 1, text
    return job, https


def consent(c, **who):
    ans = c.request(dict({"op": "consent"}, **who))
    assert ans["ok"] is True, ans
    return ans


def test_one_click_from_a_received_message(make_daemon):
    d = unsub_daemon(make_daemon).start()
    with d.client() as c:
        _, url = delivered_link(d, c, "u1", "alice@example.com")
        # GET shows a page and changes nothing
        status, headers, body = http("GET", url)
        assert status == 200 and b"<form" in body, (status, body[:200])
        assert consent(c, user="u1")["effective"]["email"] == "subscribed"
        # POST urlencoded, no cookies: 200, no redirect, durable opt-out
        opener = urllib.request.build_opener(NoRedirect)
        req = urllib.request.Request(
            url, data=b"List-Unsubscribe=One-Click", method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        with opener.open(req, timeout=10) as r:
            assert r.status in (200, 202)
            assert "Location" not in r.headers
            assert "Set-Cookie" not in r.headers
        got = consent(c, user="u1")
        assert got["effective"]["email"] == "opted_out", got
        assert got["history"][-1]["source"] == "one_click", got
        # the address itself is covered too
        again = c.request(winback("u1b", "alice@example.com"))
        assert again["state"] == "suppressed", again
    # the opt-out was committed before the answer: it survives SIGKILL
    d.kill()
    d.start()
    with d.client() as c:
        assert consent(c, user="u1")["effective"]["email"] == "opted_out"


def test_multipart_post_and_resubscribe(make_daemon):
    d = unsub_daemon(make_daemon).start()
    with d.client() as c:
        _, url = delivered_link(d, c, "u2", "bob@example.com")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code} %{redirect_url}", "-F",
                            "List-Unsubscribe=One-Click", url],
                           capture_output=True, text=True, timeout=20)
        code, redirect = (r.stdout.split(" ") + [""])[:2]
        assert code in ("200", "202") and redirect == "", r.stdout
        assert consent(c, user="u2")["effective"]["email"] == "opted_out"
        ans = c.request({"op": "resubscribe", "user": "u2",
                         "address": "bob@example.com", "channel": "email",
                         "source": "app", "reason": "changed mind"})
        assert ans["ok"] is True
        hist = consent(c, user="u2")["history"]
        assert [h["action"] for h in hist] == ["unsubscribe", "resubscribe"]
        assert hist[0]["source"] == "one_click" and hist[1]["source"] == "app"


def test_bad_tokens_get_4xx_and_record_nothing(make_daemon):
    other = unsub_daemon(make_daemon, secret="another-secret-of-enough-length")
    other.start()
    with other.client() as c:
        _, foreign = delivered_link(other, c, "u3", "carol@example.com")
    other.stop()
    d = unsub_daemon(make_daemon).start()
    with d.client() as c:
        _, url = delivered_link(d, c, "u3", "carol@example.com")
        token = url.rsplit("/", 1)[1]
        flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        bad = [d.public_url + "/u/" + flipped,
               d.public_url + "/u/" + token[:-3],
               d.public_url + "/u/" + foreign.rsplit("/", 1)[1],
               d.public_url + "/u/"]
        bodies = set()
        for u in bad:
            status, _, body = http("POST", u, b"List-Unsubscribe=One-Click",
                                   {"Content-Type":
                                    "application/x-www-form-urlencoded"})
            assert 400 <= status < 500, (u, status)
            if status == 400:
                bodies.add(body)
        assert len(bodies) <= 1, bodies
        assert consent(c, user="u3")["history"] == []
        # bodies are capped, other methods refused
        status, _, _ = http("POST", url, b"x" * 100_000,
                            {"Content-Type":
                             "application/x-www-form-urlencoded"})
        assert status == 413, status
        status, headers, _ = http("PUT", url, b"")
        assert status == 405, status
        assert consent(c, user="u3")["history"] == []
        status, _, body = http("GET", "http://127.0.0.1:%d/healthz" % d.port)
        assert status == 200, status


def test_a_400_day_old_link_still_works(make_daemon):
    port = free_port()
    d = unsub_daemon(make_daemon, port=port, faketime="-400d").start()
    with d.client() as c:
        _, url = delivered_link(d, c, "u4", "dave@example.com")
    d.stop()
    d.faketime = None
    d.start()
    status, _, _ = http("POST", url, b"List-Unsubscribe=One-Click",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, status
    with d.client() as c:
        assert consent(c, user="u4")["effective"]["email"] == "opted_out"


def test_listener_binds_only_the_configured_address(make_daemon):
    d = unsub_daemon(make_daemon).start()
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True,
                         timeout=10).stdout
    mine = [line.split()[3] for line in out.splitlines()
            if line.split()[3].endswith(":%d" % d.port)]
    assert mine == ["127.0.0.1:%d" % d.port], out


def inbound(d, body_word, number, token=TWILIO_TOKEN, tamper=False):
    url = d.public_url + "/sms/inbound"
    params = {"From": number, "To": "+15550100", "Body": body_word,
              "MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC1"}
    sig = twilio_signature(token, url, params)
    if tamper:
        params["Body"] = "START"
    return http("POST", url, urllib.parse.urlencode(params).encode(),
                {"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": sig})


def test_sms_replies_stop_td_and_start(make_daemon):
    d = unsub_daemon(make_daemon, sms_http=True).start()
    with d.client() as c:
        for word, number in (("STOP", "+8613800000101"),
                             (" td ", "+8613800000102"),
                             ("退订", "+8613800000103")):
            status, _, _ = inbound(d, word, number)
            assert status == 200, (word, status)
            got = consent(c, address=number)
            assert got["effective"]["sms"] == "opted_out", (word, got)
            assert got["history"][-1]["source"] == "sms_reply"
        status, _, _ = inbound(d, "START", "+8613800000101")
        assert status == 200
        assert consent(c, address="+8613800000101")["effective"]["sms"] == \
            "subscribed"
        # a forged or altered request changes nothing
        status, _, _ = inbound(d, "STOP", "+8613800000104", token="wrong")
        assert status == 403
        status, _, _ = inbound(d, "STOP", "+8613800000105", tamper=True)
        assert status == 403
        for n in ("+8613800000104", "+8613800000105"):
            assert consent(c, address=n)["history"] == []
        # what the opt-out covers is cancelled
        job = c.request({"op": "send", "user": "u9", "channel": "sms",
                         "to": "+8613800000106", "template": "coupon_expiring",
                         "at": "2099-01-01T00:00:00Z"})["job"]
        inbound(d, "STOP", "+8613800000106")
        wait_state(c, job, ("cancelled",))
    assert SECRET not in d.logs() and TWILIO_TOKEN not in d.logs()


PROMO = {
    "promo/subject.mustache": "Hello {{name}}",
    "promo/text.mustache": "We miss you, {{name}}.\n",
    "promo/html.mustache": "<html><body><p>We miss you, {{name}}.</p>"
                           "</body></html>\n",
    "receipt/subject.mustache": "Your receipt",
    "receipt/text.mustache": "Thanks.\n",
    "receipt/transactional": "",
}


def test_footer_added_where_the_template_has_no_link(make_daemon):
    d = unsub_daemon(make_daemon, templates=PROMO).start()
    with d.client() as c:
        jobs = {}
        for tpl, locale in (("promo", "en"), ("promo", "zh-CN"),
                            ("receipt", "en")):
            jobs[(tpl, locale)] = c.request(
                {"op": "send", "user": "u-" + tpl + locale,
                 "channel": "email", "to": "%s.%s@example.com" % (
                     tpl, locale.lower()),
                 "template": tpl, "locale": locale,
                 "vars": {"name": "Ann"}})["job"]
        for j in jobs.values():
            wait_state(c, j, ("sent",))
        preview = c.request({"op": "preview", "template": "promo",
                             "channel": "email", "vars": {"name": "Ann"}})
        assert "Unsubscribe: %s/u/" % d.public_url in \
            preview["parts"]["text"], preview
    by_id = {}
    for _, _, m in maildir_messages(d.maildir):
        by_id[str(m["Message-ID"]).strip("<>").split("@")[0]] = m
    for (tpl, locale), j in jobs.items():
        m = by_id[j]
        if tpl == "receipt":
            assert m.get_all("List-Unsubscribe") is None
            assert "/u/" not in m.get_body(("plain",)).get_content()
            continue
        url = str(m["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
        text = m.get_body(("plain",)).get_content()
        html = m.get_body(("html",)).get_content()
        word = "Unsubscribe: " if locale == "en" else "退订: "
        assert (word + url) in text, text
        assert ('<a href="%s">' % url) in html, html
        assert html.index(url) < html.index("</body>"), html


def test_a_short_or_inline_secret_is_refused(make_daemon):
    d = unsub_daemon(make_daemon, secret="SENTINEL-short")
    rc, out = d.start(expect_fail=True)
    assert rc != 0 and "unsubscribe.secret_env" in out, out
    assert "SENTINEL" not in out
    d = make_daemon(config={"unsubscribe": {
        "public_url": "https://x.example", "secret": "SENTINEL-inline"}})
    rc, out = d.start(expect_fail=True)
    assert rc != 0 and "unsubscribe.secret" in out, out
    assert "SENTINEL" not in out
