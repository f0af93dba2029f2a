"""Self-test of http_mocks.py: every mock is driven by real clients (the
curl CLI, urllib, http.client and an HTTP/2 client built on h2), through
success and every rule, checking both the answers and the records. Needs
no roused."""

import base64
import http.client
import json
import os
import re
import select
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature

from http_mocks import (ApnsMock, FcmMock, JsonGatewayMock, TwilioMock,
                        make_apns_key, make_certificates,
                        make_service_account, sms_segments,
                        twilio_signature)

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "s3cret-token"
KEY_ID, TEAM_ID, TOPIC = "ABC123DEFG", "DEF456TEAM", "com.example.app"


# -- clients ------------------------------------------------------------------

class Resp:
    def __init__(self, rc, status, headers, body, stderr):
        self.rc = rc
        self.status = status
        self.headers = headers
        self.body = body
        self.stderr = stderr

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Resp rc=%d %s %r %r>" % (self.rc, self.status, self.body,
                                          self.stderr)


def curl(*args, timeout=20):
    """Runs curl; the status and headers of the last response block."""
    with tempfile.TemporaryDirectory() as d:
        hf, bf = os.path.join(d, "h"), os.path.join(d, "b")
        r = subprocess.run(["curl", "-sS", "-D", hf, "-o", bf] + list(args),
                           capture_output=True, timeout=timeout)
        head = Path(hf).read_bytes().decode("latin-1") \
            if os.path.exists(hf) else ""
        body = Path(bf).read_bytes() if os.path.exists(bf) else b""
    status, headers = None, {}
    for block in head.split("\r\n\r\n"):
        lines = [x for x in block.split("\r\n") if x]
        if not lines or not lines[0].startswith("HTTP/"):
            continue
        status = int(lines[0].split()[1])
        headers = {}
        for x in lines[1:]:
            k, _, v = x.partition(":")
            headers[k.strip().lower()] = v.strip()
    return Resp(r.returncode, status, headers, body,
                r.stderr.decode("utf-8", "replace"))


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256(key_path, claims, kid=KEY_ID, der=False):
    """An APNs provider token signed here (raw r||s unless der)."""
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(),
                                             None)
    signing = b64url(json.dumps({"alg": "ES256", "kid": kid})) + "." + \
        b64url(json.dumps(claims))
    sig = key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = decode_dss_signature(sig)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing + "." + b64url(sig)


def rs256(private_pem, claims):
    key = serialization.load_pem_private_key(private_pem.encode(), None)
    signing = b64url(json.dumps({"alg": "RS256", "typ": "JWT"})) + "." + \
        b64url(json.dumps(claims))
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64url(sig)


class H2Client:
    """A small blocking HTTP/2 client over TLS (many concurrent streams,
    flow-controlled request bodies)."""

    def __init__(self, port, ca_file):
        ctx = ssl.create_default_context(cafile=ca_file)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.closed = False
        self.todo = {}
        self.by_sid = {}

    def request_many(self, reqs, timeout=20.0, until=None):
        """reqs: [(path, [(name, value)], body)]; returns one dict per
        request: status, headers, body, reset. With until=n, returns as
        soon as n streams have ended (the rest keep "status" None)."""
        out, todo = [], self.todo
        for path, headers, body in reqs:
            sid = self.conn.get_next_available_stream_id()
            hdrs = [(":method", "POST"), (":scheme", "https"),
                    (":authority", "127.0.0.1"), (":path", path)] + headers
            self.conn.send_headers(sid, hdrs, end_stream=not body)
            res = {"sid": sid, "status": None, "headers": {}, "body": b"",
                   "reset": False, "done": False}
            out.append(res)
            self.by_sid[sid] = res
            if body:
                todo[sid] = memoryview(body)
        return self.wait(out, until, timeout)

    def wait(self, out, until=None, timeout=20.0):
        """Runs the connection until `until` (default: all) of out ended."""
        todo, by_sid = self.todo, self.by_sid
        want = len(out) if until is None else until
        deadline = time.monotonic() + timeout
        while sum(r["done"] for r in out) < want:
            for sid, rest in list(todo.items()):
                while len(rest):
                    win = self.conn.local_flow_control_window(sid)
                    if win <= 0:
                        break
                    n = min(win, self.conn.max_outbound_frame_size, len(rest))
                    self.conn.send_data(sid, bytes(rest[:n]),
                                        end_stream=n == len(rest))
                    rest = rest[n:]
                if len(rest):
                    todo[sid] = rest
                else:
                    del todo[sid]
            data = self.conn.data_to_send()
            if data:
                self.sock.sendall(data)
            if time.monotonic() > deadline:
                raise AssertionError("h2 client: timed out")
            if not self.sock.pending():
                select.select([self.sock], [], [], 0.2)
            try:
                self.sock.setblocking(False)
                chunk = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            finally:
                self.sock.setblocking(True)
            if not chunk:
                self.closed = True
                break
            for ev in self.conn.receive_data(chunk):
                r = by_sid.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived):
                    r["headers"] = dict(ev.headers)
                    r["status"] = int(r["headers"][":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    r["body"] += ev.data
                    self.conn.acknowledge_received_data(
                        ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    r["done"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    r["reset"] = r["done"] = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.closed = True
            self.sock.sendall(self.conn.data_to_send())
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def twilio(certs):
    with TwilioMock(SID, TOKEN) as m:
        yield m
    assert m.loop_errors == []


@pytest.fixture(scope="module")
def apns_key(tmp_path_factory):
    return make_apns_key(tmp_path_factory.mktemp("apns"), KEY_ID)


@pytest.fixture
def apns(certs, apns_key):
    with ApnsMock(KEY_ID, TEAM_ID, apns_key[1], TOPIC, tls=certs) as m:
        yield m
    assert m.loop_errors == []


@pytest.fixture(scope="module")
def sa_keys(tmp_path_factory):
    path, public_pem, _, _ = make_service_account(
        tmp_path_factory.mktemp("sa"), "https://oauth2.example/token",
        project_id="rouse-fcm-test")
    return json.loads(Path(path).read_text()), public_pem


@pytest.fixture
def fcm(certs, sa_keys):
    # One RSA key for the module (key generation is the slow part); the
    # service-account file itself is checked in test_fcm_service_account.
    sa, public_pem = sa_keys
    m = FcmMock(public_pem, sa["client_email"], sa["project_id"], tls=certs)
    m.sa = sa
    with m:
        yield m
    assert m.loop_errors == []


def sms(mock, to, body="hello", auth=(SID, TOKEN), sender="+15550100",
        extra=()):
    args = ["--data-urlencode", "To=" + to, "--data-urlencode",
            "From=" + sender, "--data-urlencode", "Body=" + body]
    if auth is not None:
        args += ["-u", "%s:%s" % auth]
    if mock.tls:
        args += ["--cacert", mock.ca_file]
    return curl(*(args + list(extra) + [mock.url + mock.messages_path]))


# -- Twilio ------------------------------------------------------------------

def test_twilio_accepts_and_records(twilio):
    text = "Grüße 你好 – price €5"
    r = sms(twilio, "+15551230001", text)
    assert r.rc == 0 and r.status == 201, r
    a = r.json
    assert re.fullmatch(r"SM[0-9a-f]{32}", a["sid"])
    assert a["status"] == "queued" and a["to"] == "+15551230001"
    assert a["body"] == text and a["from"] == "+15550100"
    assert a["num_segments"] == "1"
    (q,) = twilio.requests()
    assert q.method == "POST" and q.path == twilio.messages_path
    assert q.http == "1.1" and q.conn == 1 and q.stream is None
    assert q.headers["content-type"] == "application/x-www-form-urlencoded"
    assert q.form == {"To": "+15551230001", "From": "+15550100",
                      "Body": text}
    assert q.auth == (SID, TOKEN) and q.key == "+15551230001"
    assert q.status == 201 and q.outcome == "answered" and q.rule is None
    assert q.ref == a["sid"] and q.answer["sid"] == a["sid"]
    assert q.at <= q.answered_at and abs(q.at - time.time()) < 10
    assert twilio.connections() == 1 and twilio.accepted() == [q]


@pytest.mark.parametrize("auth", [None, (SID, "wrong"), ("ACother", TOKEN)])
def test_twilio_refuses_bad_credentials(twilio, auth):
    r = sms(twilio, "+15551230001", auth=auth)
    assert r.status == 401 and r.json["code"] == 20003
    assert r.headers["www-authenticate"].startswith("Basic")
    (q,) = twilio.requests()
    assert q.refusal == "20003" and not twilio.accepted()


def test_twilio_wrong_path_method_and_fields(twilio):
    base = ["-u", "%s:%s" % (SID, TOKEN)]
    r = curl(*base, "-d", "To=%2B15551230001&From=x&Body=y",
             twilio.url + "/2010-04-01/Accounts/ACother/Messages.json")
    assert r.status == 404 and r.json["code"] == 20404
    r = curl(*base, "-d", "x=1", twilio.url + "/v1/Messages")
    assert r.status == 404 and r.json["code"] == 20404
    r = curl(*base, twilio.url + twilio.messages_path)
    assert r.status == 405
    for form, code in (("From=%2B1555&Body=x", 21604),
                       ("To=%2B15551230001&Body=x", 21603),
                       ("To=%2B15551230001&From=%2B1555&Body=", 21602),
                       ("To=5551230001&From=%2B1555&Body=x", 21211)):
        r = curl(*base, "-d", form, twilio.url + twilio.messages_path)
        assert (r.status, r.json["code"]) == (400, code), form
    r = sms(twilio, "+15551230001", "x" * 1601)
    assert r.json["code"] == 21617
    assert [q.refusal for q in twilio.requests()] == [
        "20404", "20404", "20004", "21604", "21603", "21602", "21211",
        "21617"]


@pytest.mark.parametrize("action,status,code,retry", [
    ("21610", 400, 21610, None), ("429:3", 429, 20429, "3"),
    ("503:2", 503, 20503, "2"), ("500", 500, 20500, None),
    ("21211", 400, 21211, None)])
def test_twilio_rules(twilio, action, status, code, retry):
    twilio.set_rule("+1555999", (action, 1))
    r = sms(twilio, "+15559990001")
    assert r.status == status and r.json["code"] == code
    assert r.json["status"] == status
    if code == 21610:
        assert r.json["message"] == "Attempt to send to unsubscribed " \
            "recipient"
    assert r.headers.get("retry-after") == retry
    # times=1: the next request for that number succeeds; others never
    # matched the rule.
    assert sms(twilio, "+15559990001").status == 201
    assert sms(twilio, "+15559990002").status == status
    assert sms(twilio, "+15551230001").status == 201
    assert [q.rule for q in twilio.requests()] == [action, None, action,
                                                   None]


def test_twilio_rule_matching_and_reset(twilio):
    twilio.set_rule("+1555", "500")
    twilio.set_rule("+15550", "ok")
    assert sms(twilio, "+15551230001").status == 500
    assert sms(twilio, "+15550230001").status == 201
    twilio.set_rule("+1555", None)
    assert sms(twilio, "+15551230001").status == 201
    twilio.set_rule("", ("503:1", 1))
    assert sms(twilio, "+4915112345678").status == 503
    assert sms(twilio, "+4915112345678").status == 201
    assert twilio.connections() == 5
    twilio.reset()
    assert twilio.requests() == [] and twilio.connections() == 0
    assert sms(twilio, "+4915112345678").status == 503   # uses counted anew
    with pytest.raises(ValueError):
        twilio.set_rule("+1", "teapot")


def test_twilio_stall_release_and_gone(twilio):
    twilio.set_rule("+1555777", "stall")
    p = subprocess.Popen(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
                          "-u", "%s:%s" % (SID, TOKEN), "-d",
                          "To=%2B15557770001&From=%2B1555&Body=x",
                          twilio.url + twilio.messages_path],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    (q,) = twilio.wait_requests(1)
    time.sleep(0.3)
    assert p.poll() is None and q.outcome == "stall" and q.status is None
    twilio.release_stalled()
    out, _ = p.communicate(timeout=10)
    assert out.decode().rsplit("\n", 1)[1] == "201"
    assert q.outcome == "answered" and q.status == 201 and q.rule == "stall"
    # A client that gives up is noticed.
    t0 = time.time()
    r = sms(twilio, "+15557770002", extra=["--max-time", "0.7"])
    assert r.rc == 28 and time.time() - t0 < 5
    q2 = twilio.requests()[1]
    deadline = time.time() + 5
    while q2.outcome != "gone" and time.time() < deadline:
        time.sleep(0.05)
    assert q2.outcome == "gone" and q2.status is None


def test_twilio_drop_and_delay(twilio):
    twilio.set_rule("+1555666", ("drop", 1))
    twilio.set_rule("+1555444", "delay:0.6")
    r = sms(twilio, "+15556660001")
    assert r.rc == 52 and r.status is None       # empty reply
    (q,) = twilio.requests()
    assert q.outcome == "drop" and q.form["To"] == "+15556660001"
    t0 = time.time()
    r = sms(twilio, "+15554440001")
    assert r.status == 201 and time.time() - t0 >= 0.6
    q = twilio.requests()[1]
    assert q.answered_at - q.at >= 0.6 and q.rule == "delay:0.6"


def test_twilio_tls_keepalive_and_restart(certs):
    with TwilioMock(SID, TOKEN, tls=certs) as m:
        assert m.url.startswith("https://")
        auth = "%s:%s" % (SID, TOKEN)
        url = m.url + m.messages_path
        r = curl("--cacert", m.ca_file, "-u", auth,
                 "-d", "To=%2B15551230001&From=%2B1555&Body=a", url,
                 "--next", "--cacert", m.ca_file, "-u", auth,
                 "-d", "To=%2B15551230002&From=%2B1555&Body=b", url)
        assert r.status == 201
        qs = m.requests()
        assert [q.form["Body"] for q in qs] == ["a", "b"]
        assert m.connections() == 1 and {q.conn for q in qs} == {1}
        info = m.connection_info()[0]
        assert info.tls_version.startswith("TLS") and info.http == "1.1"
        assert curl("-u", auth, url).rc != 0           # not TLS: refused
        port = m.port
        m.stop()
        r = curl("--cacert", m.ca_file, "-u", auth, "-d", "To=x", url)
        assert r.rc == 7                               # connection refused
        m.start()
        assert m.port == port
        r = curl("--cacert", m.ca_file, "-u", auth,
                 "-d", "To=%2B15551230003&From=%2B1555&Body=c", url)
        assert r.status == 201


def test_twilio_many_keepalive_connections(twilio):
    n_conn, per_conn = 16, 40
    results, errors = [], []
    auth = "Basic " + base64.b64encode(
        ("%s:%s" % (SID, TOKEN)).encode()).decode()

    def worker(w):
        try:
            c = http.client.HTTPConnection("127.0.0.1", twilio.port,
                                           timeout=20)
            for i in range(per_conn):
                body = "To=%%2B1555%07d&From=%%2B1555&Body=m%d" % (
                    w * 1000 + i, i)
                c.request("POST", twilio.messages_path, body, {
                    "Authorization": auth,
                    "Content-Type": "application/x-www-form-urlencoded"})
                resp = c.getresponse()
                results.append((resp.status, json.loads(resp.read())["sid"]))
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(w,))
               for w in range(n_conn)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(results) == n_conn * per_conn
    assert {s for s, _ in results} == {201}
    assert len({sid for _, sid in results}) == len(results)
    assert twilio.connections() == n_conn
    per = {}
    for q in twilio.requests():
        per[q.conn] = per.get(q.conn, 0) + 1
    assert sorted(per.values()) == [per_conn] * n_conn
    assert time.time() - t0 < 20


def test_twilio_signature_vector():
    # The example from Twilio's webhook-security documentation.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030",
              "Digits": "1234", "From": "+12349013030", "To": "+18005551212"}
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?"
                            "foo=1&bar=2", params) == \
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_stop_with_a_stalled_request(certs):
    m = TwilioMock(SID, TOKEN, rules={"": "stall"})
    url = m.url + m.messages_path
    r = curl("-d", "To=x", url)
    assert r.rc == 7                        # constructed, not started
    m.start()
    p = subprocess.Popen(["curl", "-sS", "-u", "%s:%s" % (SID, TOKEN), "-d",
                          "To=%2B15551230001&From=%2B1555&Body=x", url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    m.wait_requests(1)
    t0 = time.time()
    m.stop()
    p.communicate(timeout=10)
    assert p.returncode in (52, 56)         # no answer, connection closed
    assert time.time() - t0 < 5
    assert curl("-d", "To=x", url).rc == 7
    assert m.open_connections() == 0 and m.loop_errors == []


def test_sms_segments():
    assert sms_segments("a" * 160) == ("GSM-7", 1)
    assert sms_segments("a" * 161) == ("GSM-7", 2)
    assert sms_segments("€" * 80) == ("GSM-7", 1)
    assert sms_segments("€" * 81) == ("GSM-7", 2)
    assert sms_segments("中" * 70) == ("UCS-2", 1)
    assert sms_segments("中" * 71) == ("UCS-2", 2)
    assert sms_segments("hi 😀") == ("UCS-2", 1)


# -- JSON gateway -------------------------------------------------------------

def post_json(url, obj, ctype="application/json"):
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_json_gateway():
    msg = {"to": "+15551230001", "from": "+1555", "text": "héllo",
           "ref": "job-1"}
    with JsonGatewayMock(rules={"+1555999": ("503:2", 1),
                                "+1555888": "noid",
                                "+1555777": "text",
                                "+1555666": "400"}) as m:
        st, _, body = post_json(m.send_url, msg)
        assert st == 200
        gid = json.loads(body)["id"]
        assert re.fullmatch(r"gw-[0-9a-f]{16}", gid)
        (q,) = m.requests()
        assert q.json == msg and q.key == "+15551230001" and q.ref == gid
        st, hdrs, body = post_json(m.send_url, dict(msg, to="+15559990001"))
        assert st == 503 and hdrs["Retry-After"] == "2"
        assert json.loads(body) == {"error": "Service Unavailable",
                                    "code": 503}
        st, _, _ = post_json(m.send_url, dict(msg, to="+15559990001"))
        assert st == 200
        st, _, body = post_json(m.send_url, dict(msg, to="+15558880001"))
        assert (st, json.loads(body)) == (200, {"status": "accepted"})
        st, _, body = post_json(m.send_url, dict(msg, to="+15557770001"))
        assert (st, body) == (200, b"OK")
        st, _, _ = post_json(m.send_url, dict(msg, to="+15556660001"))
        assert st == 400
        assert post_json(m.url + "/other", msg)[0] == 404
        assert post_json(m.send_url, msg, "text/plain")[0] == 415
        assert post_json(m.send_url, {"to": "+1555", "text": "x"})[0] == 400
        assert post_json(m.send_url, b"[1]")[0] == 400
        assert post_json(m.send_url, dict(msg, ref=7))[0] == 400
        assert [q.status for q in m.requests()] == [
            200, 503, 200, 200, 200, 400, 404, 415, 400, 400, 400]
        assert m.requests()[-1].refusal == "field 'ref' missing or not a " \
                                           "string"
        assert m.connections() == 11      # urllib closes every connection


# -- FCM ----------------------------------------------------------------------

def fcm_assertion(m, **over):
    now = int(time.time())
    claims = {"iss": m.client_email, "scope": "https://www.googleapis.com/"
              "auth/firebase.messaging", "aud": m.token_uri, "iat": now,
              "exp": now + 3600}
    claims.update(over)
    return rs256(m.sa["private_key"], claims)


def fcm_grant(m, assertion=None, grant_type="urn:ietf:params:oauth:"
              "grant-type:jwt-bearer", http2=False):
    args = ["--cacert", m.ca_file,
            "--data-urlencode", "grant_type=" + grant_type,
            "--data-urlencode", "assertion=" + (assertion or
                                                fcm_assertion(m)),
            m.token_uri]
    return curl(*((["--http2"] if http2 else []) + args))


def fcm_send(m, bearer, token="dev-ok", data=None, http2=False):
    msg = {"message": {"token": token,
                       "notification": {"title": "T", "body": "B"},
                       "data": data if data is not None else {"job": "j1"}}}
    args = ["--cacert", m.ca_file, "-H", "Content-Type: application/json",
            "-d", json.dumps(msg),
            m.url + "/v1/projects/%s/messages:send" % m.project_id]
    if bearer is not None:
        args = ["-H", "Authorization: Bearer " + bearer] + args
    return curl(*((["--http2"] if http2 else []) + args))


def test_fcm_service_account(certs, tmp_path):
    with FcmMock(tls=certs) as m:
        path, public_pem, email, project = m.make_service_account(tmp_path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        sa = json.loads(Path(path).read_text())
        assert sa["type"] == "service_account"
        assert sa["token_uri"] == m.token_uri == m.url + "/token"
        assert sa["client_email"] == email == m.client_email
        assert sa["project_id"] == project == m.project_id
        assert sa["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert re.fullmatch(r"[0-9a-f]{40}", sa["private_key_id"])
        assert m.public_key_pem == public_pem
        # The mock trusts the new key at once.
        m.sa = sa
        assert fcm_grant(m).status == 200


def test_fcm_grant_and_send(fcm):
    r = fcm_grant(fcm)
    assert r.status == 200, r
    a = r.json
    assert a["token_type"] == "Bearer" and a["expires_in"] == 3599
    assert a["access_token"].startswith("ya29.")
    (g,) = fcm.grants()
    assert g.ok and g.claims["iss"] == fcm.client_email
    assert g.claims["aud"] == fcm.token_uri and g.header["alg"] == "RS256"
    assert g.access_token == a["access_token"]
    r = fcm_send(fcm, a["access_token"], data={"job": "j1", "n": "2"})
    assert r.status == 200
    name = r.json["name"]
    assert re.fullmatch(r"projects/%s/messages/0:\d+%%[0-9a-f]{16}"
                        % fcm.project_id, name)
    q = fcm.sends()[0]
    assert q.bearer == a["access_token"] and q.key == "dev-ok"
    assert q.json["message"]["data"] == {"job": "j1", "n": "2"}
    assert q.ref == name and [x.kind for x in fcm.requests()] == [
        "token", "send"]
    # One access token serves many sends.
    assert fcm_send(fcm, a["access_token"]).status == 200
    assert len(fcm.grants()) == 1


@pytest.mark.parametrize("case,error", [
    ("signature", "invalid_grant"), ("aud", "invalid_grant"),
    ("iss", "invalid_grant"), ("scope", "invalid_scope"),
    ("lifetime", "invalid_grant"), ("old_iat", "invalid_grant"),
    ("grant_type", "unsupported_grant_type"), ("garbage", "invalid_grant")])
def test_fcm_refuses_bad_grants(fcm, tmp_path, case, error):
    now = int(time.time())
    if case == "signature":
        other = make_service_account(tmp_path, fcm.token_uri)[0]
        other_sa = json.loads(Path(other).read_text())
        assertion = rs256(other_sa["private_key"], {
            "iss": fcm.client_email, "aud": fcm.token_uri, "iat": now,
            "exp": now + 3600, "scope": "https://www.googleapis.com/auth/"
                                        "firebase.messaging"})
    elif case == "aud":
        assertion = fcm_assertion(
            fcm, aud="https://oauth2.googleapis.com/token")
    elif case == "iss":
        assertion = fcm_assertion(fcm, iss="someone@else.example")
    elif case == "scope":
        assertion = fcm_assertion(fcm, scope="https://www.googleapis.com/"
                                             "auth/cloud-platform")
    elif case == "lifetime":
        assertion = fcm_assertion(fcm, exp=now + 3601)
    elif case == "old_iat":
        assertion = fcm_assertion(fcm, iat=now - 1000, exp=now + 2000)
    elif case == "garbage":
        assertion = "not.a.jwt"
    else:
        assertion = None
    r = fcm_grant(fcm, assertion, grant_type="client_credentials"
                  if case == "grant_type" else
                  "urn:ietf:params:oauth:grant-type:jwt-bearer")
    assert r.status == 400 and r.json["error"] == error, r
    (g,) = fcm.grants()
    assert not g.ok and g.error.startswith(error)
    assert fcm.access_tokens() == {}


def test_fcm_clock_offset_and_expiry(fcm):
    now = int(time.time())
    future = fcm_assertion(fcm, iat=now + 1000, exp=now + 4000)
    assert fcm_grant(fcm, future).status == 400
    fcm.clock_offset_s = 1000
    r = fcm_grant(fcm, future)
    assert r.status == 200
    tok = r.json["access_token"]
    assert fcm_send(fcm, tok).status == 200
    fcm.clock_offset_s = 1000 + 3600        # the access token has expired
    r = fcm_send(fcm, tok)
    assert r.status == 401
    assert r.json["error"]["status"] == "UNAUTHENTICATED"
    assert r.json["error"]["code"] == 401


def test_fcm_send_refusals(fcm):
    tok = fcm_grant(fcm).json["access_token"]
    for bearer in (None, "ya29.not-issued"):
        r = fcm_send(fcm, bearer)
        assert r.status == 401 and r.json["error"]["status"] == \
            "UNAUTHENTICATED"
    r = fcm_send(fcm, tok, data={"job": "j1", "count": 3})
    assert r.status == 400
    err = r.json["error"]
    assert err["status"] == "INVALID_ARGUMENT"
    viol = [d for d in err["details"] if d["@type"].endswith("BadRequest")]
    assert viol[0]["fieldViolations"][0]["field"] == "message.data[count]" \
                                                     ".value"
    r = curl("--cacert", fcm.ca_file, "-H", "Authorization: Bearer " + tok,
             "-H", "Content-Type: application/json", "-d",
             '{"message":{"token":"x"}}',
             fcm.url + "/v1/projects/other-project/messages:send")
    assert r.status == 403 and r.json["error"]["status"] == \
        "PERMISSION_DENIED"
    r = curl("--cacert", fcm.ca_file, fcm.url + "/v1/other")
    assert r.status == 404
    fcm.revoke_access_tokens()
    assert fcm_send(fcm, tok).status == 401
    assert [q.refusal for q in fcm.sends()] == [
        "UNAUTHENTICATED", "UNAUTHENTICATED",
        "INVALID_ARGUMENT: message.data[count].value", "PERMISSION_DENIED",
        "UNAUTHENTICATED"]


@pytest.mark.parametrize("action,status,gstatus,code,retry", [
    ("UNREGISTERED", 404, "NOT_FOUND", "UNREGISTERED", None),
    ("SENDER_ID_MISMATCH", 403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH",
     None),
    ("QUOTA_EXCEEDED:30", 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "30"),
    ("503:2", 503, "UNAVAILABLE", "UNAVAILABLE", "2"),
    ("500", 500, "INTERNAL", "INTERNAL", None)])
def test_fcm_rules(fcm, action, status, gstatus, code, retry):
    tok = fcm_grant(fcm).json["access_token"]
    fcm.set_rule("dev-bad", (action, 1))
    r = fcm_send(fcm, tok, token="dev-bad-1")
    assert r.status == status and r.headers.get("retry-after") == retry
    err = r.json["error"]
    assert err["code"] == status and err["status"] == gstatus
    (d,) = err["details"]
    assert d == {"@type": "type.googleapis.com/google.firebase.fcm.v1."
                          "FcmError", "errorCode": code}
    assert fcm_send(fcm, tok, token="dev-bad-1").status == 200
    assert fcm.sends()[0].rule == action and fcm.sends()[1].rule is None


def test_fcm_401_once_revokes_the_token(fcm):
    tok = fcm_grant(fcm).json["access_token"]
    fcm.set_rule("dev-401", "401")
    r = fcm_send(fcm, tok, token="dev-401")
    assert r.status == 401 and r.json["error"]["status"] == "UNAUTHENTICATED"
    assert fcm_send(fcm, tok, token="dev-401").status == 401   # still dead
    tok2 = fcm_grant(fcm).json["access_token"]
    assert tok2 != tok
    assert fcm_send(fcm, tok2, token="dev-401").status == 200
    assert [q.rule for q in fcm.sends()] == ["401", None, None]


def test_fcm_stall_token_rule_and_http2(certs, tmp_path):
    with FcmMock(tls=certs, http2=True) as m:
        path, pub, email, project = m.make_service_account(tmp_path)
        m.sa = json.loads(Path(path).read_text())
        m.set_token_rule(("503:5", 1))
        r = fcm_grant(m, http2=True)
        assert r.status == 503 and r.headers["retry-after"] == "5"
        assert m.access_tokens() == {}
        r = fcm_grant(m, http2=True)
        assert r.status == 200
        tok = r.json["access_token"]
        m.set_rule("dev-stall", ("stall", 1))
        p = subprocess.Popen(
            ["curl", "-sS", "--http2", "--cacert", m.ca_file, "-o",
             "/dev/null", "-w", "%{http_code} %{http_version}", "-H",
             "Authorization: Bearer " + tok, "-H",
             "Content-Type: application/json", "-d",
             '{"message":{"token":"dev-stall","data":{"job":"1"}}}',
             m.url + "/v1/projects/%s/messages:send" % project],
            stdout=subprocess.PIPE)
        m.wait_requests(1, kind="send")
        time.sleep(0.2)
        assert p.poll() is None and m.sends()[0].outcome == "stall"
        m.release_stalled()
        out, _ = p.communicate(timeout=10)
        assert out == b"200 2"
        assert all(q.http == "2" for q in m.requests())
        assert m.connection_info()[0].alpn == "h2"


# -- APNs ---------------------------------------------------------------------

def apns_headers(jwt, apns_id=None, **over):
    h = {"authorization": "bearer " + jwt, "apns-topic": TOPIC,
         "apns-push-type": "alert", "apns-priority": "10",
         "apns-expiration": "0", "apns-id": apns_id or str(uuid.uuid4()),
         "apns-collapse-id": "c-1"}
    h.update(over)
    return [(k, v) for k, v in h.items() if v is not None]


PAYLOAD = {"aps": {"alert": {"title": "Hi", "body": "There"}}, "job": "j1"}


def apns_curl(m, token, headers, body=None, extra=()):
    args = ["--http2", "--cacert", m.ca_file, "-X", "POST"]
    for k, v in headers:
        args += ["-H", "%s: %s" % (k, v)]
    args += ["--data-binary", json.dumps(PAYLOAD) if body is None else body]
    return curl(*(args + list(extra) + [m.url + "/3/device/" + token]))


def fresh_jwt(apns_key, iat=None, **kw):
    return es256(apns_key[0], {"iss": TEAM_ID, "iat": int(
        time.time()) if iat is None else iat}, **kw)


def test_apns_key_file(apns_key):
    path, pub = apns_key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.path.basename(path) == "AuthKey_%s.p8" % KEY_ID
    text = Path(path).read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")    # PKCS#8
    key = serialization.load_pem_private_key(text.encode(), None)
    assert key.curve.name == "secp256r1"
    assert pub.startswith("-----BEGIN PUBLIC KEY-----")


def test_apns_success_and_records(apns, apns_key):
    jwt = fresh_jwt(apns_key)
    aid = str(uuid.uuid4())
    dev = "a" * 64
    r = apns_curl(apns, dev, apns_headers(jwt, aid))
    assert r.rc == 0 and r.status == 200, r
    assert r.headers["apns-id"] == aid and r.body == b""
    (q,) = apns.pushes()
    assert q.http == "2" and q.stream == 1 and q.method == "POST"
    assert q.path == "/3/device/" + dev and q.device_token == dev
    for k in ("apns-topic", "apns-push-type", "apns-priority",
              "apns-expiration", "apns-collapse-id"):
        assert q.headers[k] == dict(apns_headers(jwt))[k]
    assert q.headers["apns-id"] == aid and q.ref == aid
    assert q.json == PAYLOAD and q.jwt == jwt
    assert q.jwt_header == {"alg": "ES256", "kid": KEY_ID}
    assert q.jwt_claims["iss"] == TEAM_ID
    (j,) = apns.jwts()
    assert j.valid and j.uses == 1 and j.kid == KEY_ID and j.conns == {1}
    info = apns.connection_info()[0]
    assert info.alpn == "h2" and info.http == "2"
    # Without apns-id the mock makes one up.
    r = apns_curl(apns, dev, apns_headers(jwt, apns_id=None)[:-2] +
                  [("apns-collapse-id", "c")])
    assert r.status == 200 and re.fullmatch(r"[0-9a-f-]{36}",
                                            r.headers["apns-id"])
    assert apns.jwts()[0].uses == 2


def test_apns_refuses_http1_and_plain(apns, certs):
    r = curl("--http1.1", "--cacert", apns.ca_file, "-d", "{}",
             apns.url + "/3/device/abc")
    assert r.rc != 0 and r.status is None
    r = curl("--http2-prior-knowledge", "-d", "{}",
             apns.url.replace("https", "http") + "/3/device/abc")
    assert r.rc != 0
    assert apns.requests() == [] and apns.connections() == 2
    assert "no HTTP/2" in apns.connection_info()[0].error


@pytest.mark.parametrize("case,status,reason", [
    ("no_auth", 403, "MissingProviderToken"),
    ("der_signature", 403, "InvalidProviderToken"),
    ("wrong_kid", 403, "InvalidProviderToken"),
    ("wrong_iss", 403, "InvalidProviderToken"),
    ("other_key", 403, "InvalidProviderToken"),
    ("old_iat", 403, "ExpiredProviderToken"),
    ("future_iat", 403, "InvalidProviderToken"),
    ("no_topic", 400, "MissingTopic"), ("bad_topic", 400, "BadTopic"),
    ("no_push_type", 400, "InvalidPushType"),
    ("bad_priority", 400, "BadPriority"),
    ("bad_expiration", 400, "BadExpirationDate"),
    ("bad_id", 400, "BadMessageId"), ("empty", 400, "PayloadEmpty"),
    ("bad_path", 404, "BadPath")])
def test_apns_refusals(apns, apns_key, tmp_path, case, status, reason):
    now = int(time.time())
    jwt = fresh_jwt(apns_key)
    over, body, path = {}, None, "a" * 64
    if case == "no_auth":
        over["authorization"] = None
    elif case == "der_signature":
        jwt = fresh_jwt(apns_key, der=True)
    elif case == "wrong_kid":
        jwt = fresh_jwt(apns_key, kid="OTHERKEY01")
    elif case == "wrong_iss":
        jwt = es256(apns_key[0], {"iss": "OTHERTEAM", "iat": now})
    elif case == "other_key":
        other, _ = make_apns_key(tmp_path, KEY_ID)
        jwt = es256(other, {"iss": TEAM_ID, "iat": now})
    elif case == "old_iat":
        jwt = fresh_jwt(apns_key, iat=now - 3601)
    elif case == "future_iat":
        jwt = fresh_jwt(apns_key, iat=now + 1000)
    elif case == "no_topic":
        over["apns-topic"] = None
    elif case == "bad_topic":
        over["apns-topic"] = "com.example.other"
    elif case == "no_push_type":
        over["apns-push-type"] = None
    elif case == "bad_priority":
        over["apns-priority"] = "7"
    elif case == "bad_expiration":
        over["apns-expiration"] = "soon"
    elif case == "bad_id":
        over["apns-id"] = "not-a-uuid"
    elif case == "empty":
        body = ""
    elif case == "bad_path":
        path = "a/extra"
    r = apns_curl(apns, path, apns_headers(jwt, **over), body)
    assert r.status == status and r.json == {"reason": reason}, r
    assert "apns-id" in r.headers
    (q,) = apns.requests()
    assert q.refusal == reason and q.status == status


def test_apns_clock_offset(apns, apns_key):
    now = int(time.time())
    fresh = fresh_jwt(apns_key)
    apns.clock_offset_s = 3700
    r = apns_curl(apns, "a" * 64, apns_headers(fresh))
    assert r.json == {"reason": "ExpiredProviderToken"}
    minted_later = fresh_jwt(apns_key, iat=now + 3650)
    assert apns_curl(apns, "a" * 64,
                     apns_headers(minted_later)).status == 200
    assert [j.iat for j in apns.jwts()] == [now, now + 3650]


@pytest.mark.parametrize("action,status,reason,retry", [
    ("410", 410, "Unregistered", None),
    ("Unregistered", 410, "Unregistered", None),
    ("429", 429, "TooManyRequests", None),
    ("503:2", 503, "ServiceUnavailable", "2"),
    ("500", 500, "InternalServerError", None),
    ("BadDeviceToken", 400, "BadDeviceToken", None),
    ("DeviceTokenNotForTopic", 400, "DeviceTokenNotForTopic", None)])
def test_apns_rules(apns, apns_key, action, status, reason, retry):
    jwt = fresh_jwt(apns_key)
    apns.set_rule("dead", (action, 1))
    aid = str(uuid.uuid4())
    r = apns_curl(apns, "deadbeef", apns_headers(jwt, aid))
    assert r.status == status and r.json["reason"] == reason
    assert r.headers["apns-id"] == aid
    assert r.headers.get("retry-after") == retry
    if status == 410:
        assert abs(r.json["timestamp"] - time.time() * 1000) < 10000
    else:
        assert "timestamp" not in r.json
    assert apns_curl(apns, "deadbeef", apns_headers(jwt)).status == 200
    assert [q.rule for q in apns.pushes()] == [action, None]


def test_apns_expired_once_and_reject_before(apns, apns_key):
    now = int(time.time())
    apns.set_rule("exp", "expired_once")
    jwt1 = fresh_jwt(apns_key, iat=now - 10)
    r = apns_curl(apns, "exp1", apns_headers(jwt1))
    assert r.status == 403 and r.json["reason"] == "ExpiredProviderToken"
    # The same JWT stays refused, for every device; a new one works.
    assert apns_curl(apns, "exp1", apns_headers(jwt1)).status == 403
    assert apns_curl(apns, "other", apns_headers(jwt1)).status == 403
    jwt2 = fresh_jwt(apns_key, iat=now)
    assert apns_curl(apns, "exp1", apns_headers(jwt2)).status == 200
    apns.reject_tokens_minted_before(now + 1)
    r = apns_curl(apns, "other", apns_headers(jwt2))
    assert r.json["reason"] == "ExpiredProviderToken"
    jwt3 = fresh_jwt(apns_key, iat=now + 1)
    assert apns_curl(apns, "other", apns_headers(jwt3)).status == 200
    apns.reject_tokens_minted_before(None)
    assert apns_curl(apns, "other", apns_headers(jwt2)).status == 200
    assert [(j.iat, j.uses) for j in apns.jwts()] == [
        (now - 10, 3), (now, 3), (now + 1, 1)]
    assert [q.rule for q in apns.pushes()][0] == "expired_once"


def test_apns_multiplexed_load_and_flow_control(apns, apns_key):
    jwt = fresh_jwt(apns_key)
    clients = [H2Client(apns.port, apns.ca_file) for _ in range(2)]
    results, errors = [], []

    def run(c, w):
        try:
            reqs = []
            for i in range(100):
                aid = str(uuid.uuid4())
                reqs.append(("/3/device/%064x" % (w * 1000 + i),
                             apns_headers(jwt, aid),
                             json.dumps(dict(PAYLOAD, n=i)).encode()))
            out = c.request_many(reqs)
            for (_, hdrs, _), o in zip(reqs, out):
                results.append((o["status"], o["headers"].get("apns-id"),
                                dict(hdrs)["apns-id"]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(c, w))
               for w, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 200 and {s for s, _, _ in results} == {200}
    assert all(got == sent for _, got, sent in results)
    assert apns.connections() == 2 and apns.open_connections() == 2
    qs = apns.pushes()
    assert len(qs) == 200 and {q.conn for q in qs} == {1, 2}
    assert max(q.stream for q in qs) == 199
    # A body far over the stream window (1 MiB) is read in full, so the
    # mock hands the window back as it reads, and is refused for its size.
    big = json.dumps({"aps": {}, "pad": "x" * (5 << 19)}).encode()
    (o,) = clients[0].request_many([("/3/device/big", apns_headers(jwt),
                                     big)])
    assert o["status"] == 413
    assert json.loads(o["body"]) == {"reason": "PayloadTooLarge"}
    assert len(apns.pushes()[-1].body) == len(big)
    for c in clients:
        c.close()


def test_apns_stall_reset_drop_over_one_connection(apns, apns_key):
    jwt = fresh_jwt(apns_key)
    apns.set_rule("stall", ("stall", 1))
    apns.set_rule("reset", ("reset", 1))
    c = H2Client(apns.port, apns.ca_file)
    body = json.dumps(PAYLOAD).encode()
    reqs = [("/3/device/stall1", apns_headers(jwt), body),
            ("/3/device/reset1", apns_headers(jwt), body),
            ("/3/device/ok1", apns_headers(jwt), body)]
    out = c.request_many(reqs, until=2)
    assert out[0]["done"] is False                  # still stalled
    assert out[1]["reset"] and out[2]["status"] == 200
    q = [x for x in apns.pushes() if x.key == "stall1"][0]
    assert q.outcome == "stall"
    apns.release_stalled()
    c.wait(out[:1])
    assert out[0]["status"] == 200
    assert q.outcome == "answered" and q.status == 200
    assert sorted((x.key, x.outcome) for x in apns.pushes()) == [
        ("ok1", "answered"), ("reset1", "reset"), ("stall1", "answered")]
    # "drop" closes the whole connection.
    apns.set_rule("drop", "drop")
    out = c.request_many([("/3/device/drop1", apns_headers(jwt), body)],
                         timeout=5)
    assert c.closed and out[0]["status"] is None
    assert apns.pushes()[-1].outcome == "drop"
    c.close()
    deadline = time.time() + 5
    while apns.open_connections() and time.time() < deadline:
        time.sleep(0.02)
    assert apns.open_connections() == 0 and apns.connections() == 1


def test_apns_curl_parallel_multiplexes(apns, apns_key):
    jwt = fresh_jwt(apns_key)
    args = ["curl", "-sS", "--http2", "--cacert", apns.ca_file, "-Z",
            "--parallel-max", "40", "-o", "/dev/null", "-w",
            "%{http_code}\n"]
    for k, v in apns_headers(jwt)[:-2]:
        args += ["-H", "%s: %s" % (k, v)]
    args += ["--data-binary", json.dumps(PAYLOAD)]
    args += [apns.url + "/3/device/dev%03d" % i for i in range(40)]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["200"] * 40
    assert apns.connections() == 1 and len(apns.pushes()) == 40
    assert len({q.stream for q in apns.pushes()}) == 40
