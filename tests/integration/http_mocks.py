"""Real HTTP servers standing in for the SMS gateways and push services.

Every mock listens on 127.0.0.1 (a free port, bound when the object is
made, so `url` is known before start()), serves from an asyncio loop in a
background thread, checks requests the way the real service does, answers
with the service's own status codes and JSON shapes, and records
everything. Use one as a context manager or call start() / stop();
stop() closes every connection, and start() after stop() listens on the
same port again (a gateway that goes down and comes back).

tls is False (plain HTTP), True (a throwaway CA and server certificate made
by make_certificates() under tmpdir, or a temporary directory), (cert_file,
key_file) or (ca_file, cert_file, key_file) - pass one make_certificates()
result to several mocks to give the daemon a single ca_file. The CA is
mock.ca_file.

    TwilioMock(account_sid, auth_token, tls=False, tmpdir=None, rules=None,
               port=0, http2=False)
        POST /2010-04-01/Accounts/{sid}/Messages.json, form-urlencoded
        To / From / Body (percent-decoded as UTF-8), HTTP Basic sid:token.
        201 {"sid":"SM"+32 hex,"status":"queued","to","from","body",
        "num_segments",...}. Refusals, in the order checked:
          401 {"code":20003} + WWW-Authenticate   credentials missing/wrong
          404 {"code":20404}   another path, or another account's sid
          405 {"code":20004}   not POST
          400 {"code":21604}   no To; 21603 no From; 21602 no/empty Body;
              21211 To not E.164 (+ and 8-15 digits); 21617 Body over 1600
              characters; 20001 the body is not UTF-8.
        Rule key: the To number.

    JsonGatewayMock(path="/send", tls=False, tmpdir=None, rules=None,
                    port=0, http2=False)
        POST {path} (query ignored) with Content-Type application/json and
        an object whose "to", "from", "text" and "ref" are strings.
        200 {"id":"gw-"+16 hex,"status":"accepted"}. Refusals: 404
        {"error":...} another path, 405 not POST, 415 not JSON, 400 a field
        missing or not a string / body not a JSON object. Rule key: "to".

    FcmMock(public_key_pem=None, client_email=None, project_id=None,
            tls=False, tmpdir=None, rules=None, port=0, http2=False,
            token_path="/token", expires_in=3599)
        Two endpoints on one server. `token_uri` (= url + token_path) is the
        OAuth endpoint: POST form grant_type=urn:ietf:params:oauth:
        grant-type:jwt-bearer & assertion=<JWT>. The assertion must be RS256
        and verify with public_key_pem, with iss == client_email, scope
        (space separated) holding .../auth/firebase.messaging, aud ==
        token_uri, 0 < exp - iat <= 3600, |iat - now()| <= 300 and exp >
        now(); otherwise 400 {"error":"invalid_grant" (or
        "unsupported_grant_type", "invalid_request", "invalid_scope"),
        "error_description":...}. Success: 200 {"access_token":"ya29.<random>",
        "expires_in":expires_in,"token_type":"Bearer"}; the token is valid
        until now() + expires_in. Every grant is kept in grants().
        POST /v1/projects/{project_id}/messages:send needs "Authorization:
        Bearer <token this mock issued, not expired, not revoked>" (else 401
        {"error":{"code":401,"status":"UNAUTHENTICATED",...}}); another
        project -> 403 PERMISSION_DENIED; the body must be {"message":
        {"token":str, "notification":{str: str}?, "data":{str: str}?}} (else
        400 INVALID_ARGUMENT, with a google.rpc.BadRequest fieldViolation
        naming e.g. message.data[job].value). 200 {"name":
        "projects/{p}/messages/0:<ms>%<hex>"}. Rule key: message.token.
        Other paths: 404 NOT_FOUND.
        make_service_account(directory) creates a service-account file whose
        token_uri is this mock's and makes the mock trust it; it returns
        (path, public_key_pem, client_email, project_id).

    ApnsMock(key_id, team_id, public_key_pem, topic, tls=True, tmpdir=None,
             rules=None, port=0, max_streams=1000, max_payload=4096)
        HTTP/2 over TLS only (ALPN "h2"; a connection that does not
        negotiate h2 is closed before any request, and so is a plain-text
        one). SETTINGS max_concurrent_streams = max_streams, 1 MiB stream
        windows, every DATA frame acknowledged. POST /3/device/<token>:
          405 MethodNotAllowed      not POST
          404 BadPath               another path
          400 BadDeviceToken        token not [0-9A-Za-z._-]{1,200}
          403 MissingProviderToken  no authorization header
          403 InvalidProviderToken  not "bearer <JWT>", alg != ES256, kid !=
                                    key_id, iss != team_id, no integer iat,
                                    iat more than 5 min in the future, or a
                                    signature that is not a raw 64-byte r||s
                                    verifying with public_key_pem
          403 ExpiredProviderToken  now() - iat > 3600, the JWT was expired by
                                    an "expired_once" rule, or its iat is
                                    before reject_tokens_minted_before(ts)
          400 MissingTopic / BadTopic        apns-topic absent / != topic
          400 InvalidPushType       apns-push-type absent or unknown
          400 BadPriority / BadExpirationDate / BadMessageId / BadCollapseId
                                    apns-priority not 1|5|10, apns-expiration
                                    not an integer, apns-id not a UUID,
                                    apns-collapse-id over 64 bytes
          400 PayloadEmpty / 413 PayloadTooLarge / 400 BadPayload
                                    no body / over max_payload / not a JSON
                                    object
        Success: 200, no body, apns-id = the request's (a new UUID when it
        had none) and apns-unique-id. Every error has {"reason":...} and the
        apns-id header; 410 also has "timestamp" (ms, mock clock). Rule key:
        the device token. Every distinct JWT is kept in jwts().

Rules (steering), as in smtp_sink: rules={key: value} or set_rule(key,
value) (value None removes the key). A key matches every rule key value
(To number, "to", device token) that starts with it, case-sensitively; the
longest matching key wins, and "" matches everything. A value is an action,
optionally with a count: action | (action, times) | (action, times,
retry_after) | Rule(action, times=..., retry_after=...). times = how many
requests per distinct key value the action applies to, after which they
succeed; None = every time (the default, except "401" on FCM and
"expired_once" on APNs, which default to 1). An action may carry ":N"
(e.g. "503:2"): N is the Retry-After header (seconds) of that answer; a bare
code sends no Retry-After. Actions common to every mock:
  "ok" or a 2xx code   success (with that status code)
  "stall"              the whole request is read and never answered, until
                       release_stalled() (then it gets the success answer)
                       or until the client goes away (outcome "gone")
  "drop"               the whole request is read and the TCP connection is
                       closed without an answer (on HTTP/2: the whole
                       connection, every stream on it)
  "reset"              HTTP/2 only: RST_STREAM (INTERNAL_ERROR) for that stream
  "delay:S"            the success answer after S seconds (float)
  a 3-digit code       that status with the service's error body
Service-specific actions:
  Twilio: "21610" (400 {"code":21610,"message":"Attempt to send to
    unsubscribed recipient","status":400,"more_info":...}) and any other
    5-digit Twilio error code (400 with that code); "429" -> 429
    {"code":20429}; "503" -> 503 {"code":20503}; "500" -> 500 {"code":20500};
    "401" -> 401 {"code":20003}; "404" -> {"code":20404}.
  JSON gateway: "noid" -> 200 {"status":"accepted"} (no id); "text" -> 200
    text/plain "OK"; an error code -> {"error":<reason phrase>,"code":N}.
  FCM: "UNREGISTERED" (404 NOT_FOUND), "SENDER_ID_MISMATCH" (403
    PERMISSION_DENIED), "QUOTA_EXCEEDED" (429 RESOURCE_EXHAUSTED),
    "INVALID_ARGUMENT" (400), "UNAVAILABLE" (503), "INTERNAL" (500),
    "THIRD_PARTY_AUTH_ERROR" (401), each {"error":{"code","message",
    "status","details":[{"@type":"type.googleapis.com/google.firebase.fcm.
    v1.FcmError","errorCode":...}]}}; the codes "404", "403", "429", "503",
    "500", "400" mean the same; "401" answers 401 UNAUTHENTICATED (no
    details) and revokes the access token the request used (an expired
    token: the same token keeps failing, a new grant works).
    set_token_rule(value) steers the token endpoint the same way (one rule
    for every grant, applied after the grant is verified: e.g. ("503:2", 1),
    "stall", "drop", "500"; an error code answers {"error":...} and issues
    no token).
  APNs: any APNs reason name ("Unregistered", "BadDeviceToken",
    "TooManyRequests", "DeviceTokenNotForTopic", "ServiceUnavailable",
    "Shutdown", "InternalServerError", "ExpiredProviderToken", ...) with its
    status; the codes "400" BadDeviceToken, "403" Forbidden, "404" BadPath,
    "410" Unregistered (+timestamp), "413" PayloadTooLarge, "429"
    TooManyRequests, "500" InternalServerError, "503" ServiceUnavailable;
    "expired_once" -> 403 ExpiredProviderToken and the JWT the request used
    counts as expired from then on (a client that re-sends it keeps getting
    403; one that mints a new JWT succeeds).

Common methods (thread-safe, callable from the test thread):
  start() / stop() / with-block       url ("http[s]://127.0.0.1:PORT"),
                                      host, port, tls, ca_file, cert_file,
                                      key_file. The port is bound (not
                                      listening: connections are refused)
                                      from construction until start(), and
                                      released by stop(). http2=True (the
                                      SMS and FCM mocks) also offers HTTP/2:
                                      ALPN "h2" over TLS, prior knowledge
                                      on plain TCP (no Upgrade: h2c).
  requests(kind=None)   every request read, in arrival order (MockRequest);
                        kind filters ("sms", "token", "send", "push", "other")
  accepted(kind=None)   those answered 2xx
  wait_requests(n, timeout=15.0, kind=None, answered=False)
                        waits until n are recorded (and answered, if asked);
                        returns them, or raises AssertionError
  connections()         TCP connections accepted since start / reset()
  open_connections()    connections open now
  connection_info()     [MockConnection] since reset(): id, peer, opened,
                        closed, tls_version, alpn, http ("1.1" | "2"),
                        requests (count), error; ids count on across
                        reset(), so the first one after reset() may be > 1
  reset()               forgets requests, connections, grants / JWT records
                        and rule use counts; rules, issued access tokens,
                        expired JWTs and reject_tokens_minted_before stay
  set_rule(key, value) / clear_rules()
  release_stalled()     answers every request stalled now (later "stall"
                        rules stall again)
  clock_offset_s        seconds added to time.time() for the mock's notion
                        of now (JWT iat/exp, access-token expiry, 410
                        timestamps); now() returns it
  loop_errors           errors the server loop swallowed (should stay [])
  FcmMock: token_uri, grants(), access_tokens(), revoke_access_tokens(),
           use_service_account(public_key_pem, client_email, project_id),
           make_service_account(directory), set_token_rule(value),
           sends() (= requests("send")), expires_in (attribute)
  ApnsMock: jwts(), reject_tokens_minted_before(ts or None), pushes()
           (= requests("push")), max_future_skew_s (attribute, 300)

MockRequest fields: id (1-based), at (time.time() when the whole request had
been read), conn (connection id), stream (HTTP/2 stream id or None), http
("1.1" | "2"), method, path (with query), headers (dict, lower-case names,
HTTP/2 pseudo-headers left out; header_list keeps every (name, value)),
body (bytes), text (body as UTF-8), form (dict of the first value of each
form field, or None when the body is not a form; form_pairs every pair),
json (parsed body when the content type says JSON, else None; APNs
bodies are always parsed), auth ((user,
password) of HTTP Basic or None), bearer (the Bearer token or None), kind,
key (the value rules are matched on), rule (the action applied, e.g.
"503:2", or None), refusal (why the mock refused it, e.g. "BadTopic",
"21604", "invalid_grant: ..."; None when it was acceptable), status (the
status code sent, None when none was sent), outcome ("pending", "stall",
"answered", "drop", "reset", "gone" = the client left before an answer),
answer (the answer body parsed as JSON, or None), answer_body (bytes),
answer_headers (dict), answered_at, ref (the provider reference sent with a
2xx: Twilio sid, gateway id, FCM name, APNs apns-id). APNs requests also
have device_token, jwt (the bearer JWT), jwt_header and jwt_claims; FCM
token requests have grant (the FcmGrant).

FcmGrant: at, request (id), assertion, header, claims, ok, error (the
error_description when refused), access_token, expires_at (mock clock).
ApnsJwt: token, header, claims, iat, kid, iss, valid, problem (why it is
not valid), first_seen, last_seen (time.time()), uses, conns (set of
connection ids).

Helpers: make_service_account(directory, token_uri, project_id=...,
client_email=None) and make_apns_key(directory, key_id="ABC123DEFG") use
the openssl CLI and write private keys with mode 0600; jwt_rs256(key_pem,
claims, header=None) and jwt_es256(key_pem, claims, kid) sign JWTs (raw
r||s for ES256); decode_jwt(token) -> (header, claims, signing_input,
signature); sms_segments(text) -> (encoding, segments);
twilio_signature(auth_token, url, params) -> the X-Twilio-Signature of an
inbound webhook; free_port() and make_certificates() are smtp_sink's.
"""

import asyncio
import base64
import email.utils
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)

from smtp_sink import free_port, make_certificates

__all__ = ["TwilioMock", "JsonGatewayMock", "FcmMock", "ApnsMock", "Rule",
           "MockRequest", "MockConnection", "FcmGrant", "ApnsJwt",
           "make_service_account", "make_apns_key", "jwt_rs256", "jwt_es256",
           "decode_jwt", "sms_segments", "twilio_signature", "free_port",
           "make_certificates"]

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_MAX_LINE = 65536
_MAX_BODY = 8 << 20

REASON_PHRASES = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted",
    204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    410: "Gone", 413: "Payload Too Large", 415: "Unsupported Media Type",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def _phrase(status):
    return REASON_PHRASES.get(status, "Status %d" % status)


# ---------------------------------------------------------------------------
# JWT, keys, SMS segments

def _b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt(token):
    """Splits a compact JWS: (header, claims, signing_input, signature).
    Raises ValueError when it is not three base64url parts holding JSON
    objects."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three dot-separated parts, got %d"
                         % len(parts))
    header = json.loads(_b64url_decode(parts[0]))
    claims = json.loads(_b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    sig = _b64url_decode(parts[2])
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), sig


def _load_private(key_pem):
    if isinstance(key_pem, (str, Path)) and not str(key_pem).lstrip() \
            .startswith("-----"):
        key_pem = Path(key_pem).read_text()
    if isinstance(key_pem, str):
        key_pem = key_pem.encode("ascii")
    return serialization.load_pem_private_key(key_pem, password=None)


def _load_public(pem):
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    return serialization.load_pem_public_key(pem)


def jwt_rs256(key_pem, claims, header=None):
    """An RS256 JWT signed with key_pem (PEM text or a file path)."""
    key = _load_private(key_pem)
    h = {"alg": "RS256", "typ": "JWT"}
    h.update(header or {})
    signing = "%s.%s" % (_b64url(json.dumps(h)), _b64url(json.dumps(claims)))
    sig = key.sign(signing.encode("ascii"), padding.PKCS1v15(),
                   hashes.SHA256())
    return signing + "." + _b64url(sig)


def jwt_es256(key_pem, claims, kid, raw=True):
    """An ES256 JWT (header {"alg":"ES256","kid":kid}) signed with key_pem
    (PEM text or a file path); the signature is raw r||s, or DER with
    raw=False (what a broken client would send)."""
    key = _load_private(key_pem)
    h = {"alg": "ES256", "kid": kid}
    signing = "%s.%s" % (_b64url(json.dumps(h)), _b64url(json.dumps(claims)))
    der = key.sign(signing.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    if raw:
        r, s = decode_dss_signature(der)
        der = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing + "." + _b64url(der)


def twilio_signature(auth_token, url, params):
    """X-Twilio-Signature of a webhook request: base64(HMAC-SHA1(auth_token,
    url + every POST parameter, sorted by name, as name + value))."""
    data = url + "".join(k + v for k, v in sorted(dict(params).items()))
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"),
                   hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _openssl(*argv):
    r = subprocess.run(["openssl"] + [str(a) for a in argv],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(map(str, argv)),
                                                      r.stderr))
    return r.stdout


def make_service_account(directory, token_uri, project_id="rouse-test",
                         client_email=None, name="service-account.json"):
    """A Google-shaped service-account JSON file (mode 0600) with a new
    RSA-2048 key made by the openssl CLI. Returns (path, public_key_pem,
    client_email, project_id)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key_file = d / (name + ".key.pem")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", key_file)
    os.chmod(key_file, 0o600)
    private_pem = key_file.read_text()
    public_pem = _openssl("pkey", "-in", key_file, "-pubout")
    key_file.unlink()
    if client_email is None:
        client_email = "rouse-push@%s.iam.gserviceaccount.com" % project_id
    client_id = str(secrets.randbelow(10 ** 20) + 10 ** 20)
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": client_email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url":
            "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url":
            "https://www.googleapis.com/robot/v1/metadata/x509/"
            + urllib.parse.quote(client_email),
        "universe_domain": "googleapis.com",
    }
    path = d / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
    os.chmod(path, 0o600)
    return str(path), public_pem, client_email, project_id


def make_apns_key(directory, key_id="ABC123DEFG"):
    """An APNs token-signing key: EC P-256, PKCS#8 PEM, written by the
    openssl CLI as AuthKey_<key_id>.p8 with mode 0600. Returns (path,
    public_key_pem)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / ("AuthKey_%s.p8" % key_id)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)
    return str(path), _openssl("pkey", "-in", path, "-pubout")


_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")


def sms_segments(text):
    """("GSM-7" | "UCS-2", segments) as a gateway counts them: GSM-7 160
    septets (153 per part), extension characters cost two; otherwise UCS-2
    70 UTF-16 units (67 per part)."""
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in text):
        n = sum(2 if c in _GSM_EXT else 1 for c in text)
        return "GSM-7", 1 if n <= 160 else math.ceil(n / 153)
    n = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if n <= 70 else math.ceil(n / 67)


# ---------------------------------------------------------------------------
# Rules

_DEFAULT = object()


class Rule:
    """What to answer: action (see the module comment), times (None =
    always), retry_after (seconds for the Retry-After header, or None)."""

    def __init__(self, action, times=_DEFAULT, retry_after=None, once=()):
        text = str(action).strip()
        self.text = text
        name, sep, arg = text.partition(":")
        self.action = name
        self.delay = 0.0
        if name.lower() == "delay":
            if not sep:
                raise ValueError("rule %r: delay needs seconds, delay:S"
                                 % text)
            self.delay = float(arg)
        elif sep:
            if not re.fullmatch(r"\d+", arg):
                raise ValueError("rule %r: the part after ':' is the "
                                 "Retry-After seconds" % text)
            if retry_after is None:
                retry_after = int(arg)
        self.retry_after = retry_after
        if times is _DEFAULT:
            times = 1 if name in once else None
        self.times = times

    @property
    def lower(self):
        return self.action.lower()

    @classmethod
    def of(cls, value, once=()):
        if isinstance(value, Rule):
            return value
        if isinstance(value, (tuple, list)):
            return cls(*value, once=once)
        return cls(value, once=once)

    def __str__(self):
        return self.text

    def __repr__(self):
        return "Rule(%s, times=%r, retry_after=%r)" % (
            self.text, self.times, self.retry_after)


# ---------------------------------------------------------------------------
# Records

class MockConnection:
    """One TCP connection the mock accepted."""

    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.opened = time.time()
        self.closed = None
        self.tls_version = None
        self.alpn = None
        self.http = None
        self.requests = 0
        self.error = None

    def __repr__(self):
        return "<MockConnection %d %s http=%s tls=%s reqs=%d%s>" % (
            self.id, self.peer, self.http, self.tls_version, self.requests,
            " closed" if self.closed else "")


class MockRequest:
    """One request the mock read in full (see the module comment)."""

    def __init__(self, rid, conn, stream, http, method, target, header_list,
                 body):
        self.id = rid
        self.at = time.time()
        self.conn = conn
        self.stream = stream
        self.http = http
        self.method = method
        self.path = target
        self.header_list = list(header_list)
        self.headers = {}
        for k, v in self.header_list:
            self.headers[k] = v
        self.body = bytes(body)
        self.kind = "other"
        self.key = None
        self.rule = None
        self.refusal = None
        self.status = None
        self.outcome = "pending"
        self.answer = None
        self.answer_body = None
        self.answer_headers = {}
        self.answered_at = None
        self.ref = None
        self.form = None
        self.form_pairs = None
        self.json = None
        self.auth = None
        self.bearer = None
        self._gone = None
        ctype = self.headers.get("content-type", "").split(";")[0].strip() \
            .lower()
        if ctype == "application/x-www-form-urlencoded":
            try:
                self.form_pairs = urllib.parse.parse_qsl(
                    self.body.decode("ascii"), keep_blank_values=True,
                    encoding="utf-8", errors="strict")
            except (UnicodeDecodeError, ValueError):
                self.form_pairs = None
            if self.form_pairs is not None:
                self.form = {}
                for k, v in self.form_pairs:
                    self.form.setdefault(k, v)
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                self.json = json.loads(self.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self.json = None
        authz = self.headers.get("authorization", "")
        scheme, _, cred = authz.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, pw = base64.b64decode(cred.strip(), validate=True) \
                    .decode("utf-8").partition(":")
                self.auth = (user, pw)
            except (ValueError, UnicodeDecodeError):
                self.auth = None
        elif scheme.lower() == "bearer":
            self.bearer = cred.strip()

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def route(self):
        """The path without its query."""
        return self.path.split("?", 1)[0]

    def __repr__(self):
        return "<MockRequest %d conn=%s %s %s key=%r rule=%s %s %s>" % (
            self.id, self.conn, self.method, self.path, self.key, self.rule,
            self.outcome, self.status)


class _Reply:
    """An answer the mock decided on; action "answer", "stall" (then = the
    answer after release), "drop" or "reset"; delay seconds first."""

    def __init__(self, status=200, body=None, headers=(), action="answer",
                 delay=0.0, then=None, ref=None, ctype=None):
        self.status = status
        self.headers = list(headers)
        if isinstance(body, (dict, list)):
            self.body = json.dumps(body).encode("utf-8")
            ctype = ctype or "application/json; charset=utf-8"
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
            ctype = ctype or "text/plain; charset=utf-8"
        else:
            self.body = body or b""
        self.ctype = ctype
        self.action = action
        self.delay = delay
        self.then = then
        self.ref = ref

    def all_headers(self):
        out = []
        if self.ctype:
            out.append(("content-type", self.ctype))
        out.extend((k.lower(), str(v)) for k, v in self.headers)
        return out


# ---------------------------------------------------------------------------
# The server core


class _Buffered:
    """A StreamReader with a buffer of its own, so reading ahead (to notice
    a client going away while a request is stalled) loses nothing."""

    def __init__(self, reader, initial=b""):
        self.reader = reader
        self.buf = bytearray(initial)
        self.eof = False

    async def fill(self):
        if self.eof:
            return False
        chunk = await self.reader.read(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    async def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > _MAX_LINE:
                raise ValueError("line too long")
            if not await self.fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    async def readexactly(self, n):
        while len(self.buf) < n:
            if not await self.fill():
                raise ConnectionError("client closed mid-body")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def watch(self, gone):
        """Reads ahead until EOF, then sets gone."""
        while await self.fill():
            pass
        gone.set()


class _HttpMock:
    """Shared machinery: listener, loop thread, HTTP/1.1 and HTTP/2,
    records, rules. Subclasses provide _plan(req) -> _Reply."""

    name = "http-mock"
    _ONCE = ()
    _H1 = True

    def __init__(self, tls=False, tmpdir=None, rules=None, port=0,
                 http2=False):
        self._lock = threading.Lock()
        self._rules = {}
        self._uses = {}
        self._requests = []
        self._conns = []
        self._next_req = 0
        self._next_conn = 0
        self._open = 0
        self.clock_offset_s = 0.0
        self.loop_errors = []
        self.http2 = http2
        self.tmpdir = Path(tmpdir) if tmpdir is not None else None
        self.ca_file = self.cert_file = self.key_file = None
        self.tls = bool(tls)
        if tls is True:
            d = self.tmpdir
            if d is None:
                import tempfile
                d = Path(tempfile.mkdtemp(prefix="rouse-%s-" % self.name))
            self.ca_file, self.cert_file, self.key_file = make_certificates(
                d / ("tls-" + self.name))
        elif tls:
            files = [str(x) for x in tls]
            if len(files) == 3:
                self.ca_file, self.cert_file, self.key_file = files
            elif len(files) == 2:
                self.cert_file, self.key_file = files
            else:
                raise ValueError("tls: True, (cert, key) or (ca, cert, key)")
        for k, v in (rules or {}).items():
            self.set_rule(k, v)
        self.host = "127.0.0.1"
        self._sock = self._bind(port)
        self.port = self._sock.getsockname()[1]
        self._loop = None
        self._thread = None
        self._server = None
        self._writers = set()
        self._tasks = set()
        self._release = None

    # -- life cycle ----------------------------------------------------------
    @staticmethod
    def _bind(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))     # listen() comes with start()
        s.setblocking(False)
        return s

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.port)

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def _alpn(self):
        return ["h2", "http/1.1"] if self.http2 else ["http/1.1"]

    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.set_alpn_protocols(self._alpn())
        return ctx

    def start(self):
        if self.running:
            return self
        if self._sock is None:
            self._sock = self._bind(self.port)
        self._ssl = self._ssl_context() if self.tls else None
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure = []

        def run():
            loop = self._loop
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(self._on_loop_error)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as e:  # noqa: B902 - reported to start()
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True,
                                        name="%s:%d" % (self.name, self.port))
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    async def _startup(self):
        self._release = asyncio.Event()
        self._server = await asyncio.start_server(
            self._on_client, sock=self._sock, backlog=1024,
            limit=_MAX_LINE * 2)

    def _on_loop_error(self, loop, context):
        with self._lock:
            self.loop_errors.append(context.get("message", "")
                                    + " " + repr(context.get("exception")))

    def stop(self):
        if not self.running:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._thread = None
            self._sock = None

    async def _shutdown(self):
        self._server.close()
        self._release.set()
        for w in list(self._writers):
            try:
                w.transport.abort()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        for t in list(self._tasks):
            t.cancel()
        await asyncio.sleep(0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def now(self):
        """The mock's clock: time.time() + clock_offset_s."""
        return time.time() + self.clock_offset_s

    # -- steering ------------------------------------------------------------
    def _check_rule(self, rule):
        """Raises ValueError for an action this mock does not know."""
        a = rule.lower
        if a in ("ok", "stall", "drop", "delay", "reset") or \
                re.fullmatch(r"[2-5]\d\d", a):
            return
        raise ValueError("%s: unknown rule action %r" % (self.name,
                                                         rule.text))

    def set_rule(self, key, value):
        """Adds or replaces the rule for keys starting with key; None
        removes it."""
        with self._lock:
            if value is None:
                self._rules.pop(key, None)
                return
            rule = Rule.of(value, self._ONCE)
            self._check_rule(rule)
            self._rules[key] = rule

    def clear_rules(self):
        with self._lock:
            self._rules.clear()

    def _take_rule(self, value, table=None):
        """The rule for value, counting one use; None = plain success."""
        if value is None:
            return None
        with self._lock:
            rules = self._rules if table is None else table
            best = None
            for k, r in rules.items():
                if value.startswith(k) and (best is None
                                            or len(k) > len(best[0])):
                    best = (k, r)
            if best is None:
                return None
            k, rule = best
            n = self._uses.get((id(rules), k, value), 0)
            if rule.times is not None and n >= rule.times:
                return None
            self._uses[(id(rules), k, value)] = n + 1
            return rule

    def release_stalled(self):
        """Answers every request stalled now with its success answer."""
        if self._loop is None or not self.running:
            return

        def release():
            self._release.set()
            self._release = asyncio.Event()
        self._loop.call_soon_threadsafe(release)

    def reset(self):
        with self._lock:
            self._requests = []
            self._conns = []
            self._uses = {}
            self._reset_extra()

    def _reset_extra(self):
        pass

    # -- reading what happened ------------------------------------------------
    def requests(self, kind=None):
        with self._lock:
            return [r for r in self._requests
                    if kind is None or r.kind == kind]

    def accepted(self, kind=None):
        return [r for r in self.requests(kind)
                if isinstance(r.status, int) and 200 <= r.status < 300]

    def connections(self):
        with self._lock:
            return len(self._conns)

    def open_connections(self):
        with self._lock:
            return self._open

    def connection_info(self):
        with self._lock:
            return list(self._conns)

    def wait_requests(self, n, timeout=15.0, kind=None, answered=False):
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(kind)
            if answered:
                got = [r for r in got if r.outcome not in ("pending",
                                                           "stall")]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("%s: %d of %d requests within %.0fs"
                                     % (self.name, len(got), n, timeout))
            time.sleep(0.02)

    # -- recording (loop thread) ----------------------------------------------
    def _new_conn(self, peer):
        with self._lock:
            self._next_conn += 1
            c = MockConnection(self._next_conn, peer)
            self._conns.append(c)
            self._open += 1
            return c

    def _conn_closed(self, crec):
        with self._lock:
            if crec.closed is None:
                crec.closed = time.time()
                self._open -= 1

    def _new_request(self, crec, http, stream, method, target, headers,
                     body):
        with self._lock:
            self._next_req += 1
            rid = self._next_req
            crec.requests += 1
        req = MockRequest(rid, crec.id, stream, http, method, target,
                          headers, body)
        req._gone = asyncio.Event()
        return req

    def _publish(self, req):
        with self._lock:
            self._requests.append(req)

    def _finish(self, req, outcome):
        with self._lock:
            req.outcome = outcome
            if outcome != "stall":
                req.answered_at = time.time()

    def _answered(self, req, reply):
        answer = None
        if reply.body:
            try:
                answer = json.loads(reply.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                answer = None
        with self._lock:
            req.status = reply.status
            req.answer_body = reply.body
            req.answer = answer
            req.answer_headers = dict(reply.all_headers())
            req.answered_at = time.time()
            req.outcome = "answered"
            if 200 <= reply.status < 300:
                req.ref = reply.ref

    def _not_sent(self, req):
        """The answer recorded by _answered never left: the client went."""
        with self._lock:
            req.status = None
            req.ref = None
            req.outcome = "gone"

    def _plan_safe(self, req):
        try:
            plan = self._plan(req)
        except Exception:  # noqa: BLE001 - a mock bug becomes a 500
            tb = traceback.format_exc()
            sys.stderr.write("%s: error handling %r\n%s" % (self.name, req,
                                                           tb))
            req.refusal = "mock error: " + tb.strip().splitlines()[-1]
            plan = _Reply(500, {"error": "mock error"})
        self._publish(req)
        return plan

    def _apply(self, req, rule, success, error):
        """The reply for rule (None = success); error(rule) builds an
        error reply for a status/reason action."""
        if rule is None:
            return success
        req.rule = rule.text
        a = rule.lower
        if a == "stall":
            return _Reply(action="stall", then=success)
        if a == "drop":
            return _Reply(action="drop")
        if a == "reset":
            return _Reply(action="reset")
        if a == "delay":
            success.delay = rule.delay
            return success
        if a == "ok":
            return success
        if re.fullmatch(r"2\d\d", a):
            success.status = int(a)
            return success
        reply = error(rule)
        if rule.retry_after is not None:
            reply.headers.append(("Retry-After", str(rule.retry_after)))
        return reply

    async def _await_plan(self, req, plan):
        """Waits out delay and stall; the reply to send now, or None when
        the client went away first."""
        if plan.delay > 0:
            await self._first(asyncio.sleep(plan.delay), req._gone.wait())
            if req._gone.is_set():
                self._finish(req, "gone")
                return None
        if plan.action == "stall":
            self._finish(req, "stall")
            release = self._release
            await self._first(release.wait(), req._gone.wait())
            if not release.is_set():
                self._finish(req, "gone")
                return None
            plan = plan.then
        return plan

    @staticmethod
    async def _first(*coros):
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()

    # -- connections ----------------------------------------------------------
    async def _on_client(self, reader, writer):
        peer = writer.get_extra_info("peername")
        crec = self._new_conn("%s:%s" % peer[:2] if peer else "?")
        self._writers.add(writer)
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            initial = b""
            alpn = None
            if self._ssl is not None:
                try:
                    await writer.start_tls(self._ssl,
                                           ssl_handshake_timeout=15)
                except (ssl.SSLError, ConnectionError, OSError,
                        asyncio.TimeoutError) as e:
                    crec.error = "TLS handshake: %s" % e
                    return
                obj = writer.get_extra_info("ssl_object")
                crec.tls_version = obj.version() if obj else None
                alpn = obj.selected_alpn_protocol() if obj else None
                crec.alpn = alpn
                use_h2 = alpn == "h2"
            else:
                use_h2 = False
                if self.http2:
                    while len(initial) < len(H2_PREFACE):
                        chunk = await reader.read(len(H2_PREFACE)
                                                  - len(initial))
                        if not chunk:
                            break
                        initial += chunk
                        if not H2_PREFACE.startswith(initial):
                            break
                    use_h2 = initial == H2_PREFACE
            if use_h2:
                crec.http = "2"
                await _H2Server(self, reader, writer, crec).run(initial)
            elif self._H1:
                crec.http = "1.1"
                await self._serve_h1(_Buffered(reader, initial), writer,
                                     crec)
            else:
                crec.error = "refused: no HTTP/2 (ALPN %r)" % (alpn,)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError,
                OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conn_closed(crec)
            self._writers.discard(writer)
            self._tasks.discard(task)
            try:
                writer.transport.abort()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    async def _serve_h1(self, buf, writer, crec):
        while True:
            try:
                line = await buf.readline()
            except ValueError:
                await self._h1_error(writer, 431)
                return
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            parts = line.decode("latin-1").strip().split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                await self._h1_error(writer, 400)
                return
            method, target, version = parts
            if target.startswith(("http://", "https://")):
                target = "/" + target.split("/", 3)[3] \
                    if target.count("/") >= 3 else "/"
            headers = []
            while True:
                try:
                    h = await buf.readline()
                except ValueError:
                    await self._h1_error(writer, 431)
                    return
                if h in (b"\r\n", b"\n"):
                    break
                if not h:
                    return
                name, sep, value = h.decode("latin-1").partition(":")
                if not sep:
                    await self._h1_error(writer, 400)
                    return
                headers.append((name.strip().lower(), value.strip()))
            hd = dict(headers)
            # Header values arrive as bytes; keep UTF-8 text readable.
            headers = [(k, _latin1_to_utf8(v)) for k, v in headers]
            if hd.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if "chunked" in hd.get("transfer-encoding", "").lower():
                body = bytearray()
                while True:
                    size_line = await buf.readline()
                    try:
                        size = int(size_line.split(b";")[0].strip(), 16)
                    except ValueError:
                        await self._h1_error(writer, 400)
                        return
                    if size == 0:
                        while (await buf.readline()) not in (b"\r\n", b"\n",
                                                              b""):
                            pass
                        break
                    body += await buf.readexactly(size)
                    await buf.readexactly(2)
                    if len(body) > _MAX_BODY:
                        await self._h1_error(writer, 413)
                        return
            else:
                try:
                    length = int(hd.get("content-length", "0") or "0")
                except ValueError:
                    await self._h1_error(writer, 400)
                    return
                if length > _MAX_BODY:
                    await self._h1_error(writer, 413)
                    return
                body = await buf.readexactly(length)
            conn_hdr = hd.get("connection", "").lower()
            keep = (version == "HTTP/1.1" and "close" not in conn_hdr) or \
                (version == "HTTP/1.0" and "keep-alive" in conn_hdr)
            req = self._new_request(crec, "1.1", None, method.upper(), target,
                                    headers, body)
            plan = self._plan_safe(req)
            if plan.action in ("drop", "reset"):
                self._finish(req, "drop")
                writer.transport.abort()
                return
            watcher = None
            if plan.delay > 0 or plan.action == "stall":
                watcher = asyncio.ensure_future(buf.watch(req._gone))
            try:
                final = await self._await_plan(req, plan)
            finally:
                if watcher is not None and not watcher.done():
                    watcher.cancel()
            if final is None:
                return
            if final.action in ("drop", "reset"):
                self._finish(req, "drop")
                writer.transport.abort()
                return
            head = ["HTTP/1.1 %d %s" % (final.status, _phrase(final.status)),
                    "Date: %s" % email.utils.formatdate(usegmt=True),
                    "Server: rouse-%s" % self.name]
            for k, v in final.all_headers():
                head.append("%s: %s" % (_title(k), v))
            head.append("Content-Length: %d" % len(final.body))
            head.append("Connection: %s" % ("keep-alive" if keep else
                                            "close"))
            # Recorded first: a client that reads the answer finds it.
            self._answered(req, final)
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8")
                         + final.body)
            await writer.drain()
            if not keep or buf.eof:
                return

    async def _h1_error(self, writer, status):
        body = _phrase(status).encode()
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (
                         status, _phrase(status).encode(), len(body), body))
        try:
            await writer.drain()
        except ConnectionError:
            pass


def _title(name):
    """Content-Type, Retry-After, WWW-Authenticate ... as HTTP/1.1 servers
    spell them (HTTP/2 names stay lower-case)."""
    if name.lower() == "www-authenticate":
        return "WWW-Authenticate"
    return "-".join(p[:1].upper() + p[1:] for p in name.split("-"))


def _latin1_to_utf8(value):
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


class _H2Server:
    """One HTTP/2 connection, server side."""

    def __init__(self, mock, reader, writer, crec):
        self.mock = mock
        self.reader = reader
        self.writer = writer
        self.crec = crec
        self.streams = {}
        self.active = {}
        self.window = asyncio.Event()
        self.closed = False
        self.tasks = set()
        cfg = h2.config.H2Configuration(client_side=False,
                                        header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        sc = h2.settings.SettingCodes
        self.conn.local_settings = h2.settings.Settings(
            client=False, initial_values={
                sc.MAX_CONCURRENT_STREAMS: getattr(mock, "max_streams", 1000),
                sc.MAX_HEADER_LIST_SIZE: 65536,
                sc.INITIAL_WINDOW_SIZE: 1 << 20,
            })

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.writer.write(data)

    async def run(self, initial=b""):
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.flush()
        data = initial
        try:
            while True:
                if data:
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError as e:
                        self.crec.error = "HTTP/2: %s" % e
                        self.flush()
                        return
                    for ev in events:
                        self.on_event(ev)
                    self.flush()
                    if self.closed:
                        return
                data = await self.reader.read(65536)
                if not data:
                    return
        finally:
            self.closed = True
            self.window.set()
            for req in self.active.values():
                req._gone.set()
            for t in list(self.tasks):
                if not t.done():
                    await asyncio.wait([t], timeout=0.5)

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.streams[ev.stream_id] = (ev.headers, bytearray())
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st[1].extend(ev.data)
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                    ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.start_request(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.streams.pop(ev.stream_id, None)
            req = self.active.get(ev.stream_id)
            if req is not None:
                req._gone.set()
            self.window.set()
        elif isinstance(ev, (h2.events.WindowUpdated,
                             h2.events.RemoteSettingsChanged)):
            self.window.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def start_request(self, sid):
        st = self.streams.pop(sid, None)
        if st is None:
            return
        t = asyncio.ensure_future(self.handle(sid, st[0], bytes(st[1])))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def handle(self, sid, raw_headers, body):
        pseudo = {k: v for k, v in raw_headers if k.startswith(":")}
        headers = [(k, v) for k, v in raw_headers if not k.startswith(":")]
        mock = self.mock
        req = mock._new_request(self.crec, "2", sid,
                                pseudo.get(":method", ""),
                                pseudo.get(":path", ""), headers, body)
        self.active[sid] = req
        try:
            plan = mock._plan_safe(req)
            final = plan
            if plan.action == "answer" or plan.action == "stall":
                final = await mock._await_plan(req, plan)
                if final is None:
                    return
            if final.action == "drop":
                mock._finish(req, "drop")
                self.closed = True
                self.writer.transport.abort()
                return
            if final.action == "reset":
                mock._finish(req, "reset")
                try:
                    self.conn.reset_stream(sid, h2.errors.ErrorCodes
                                           .INTERNAL_ERROR)
                    self.flush()
                except h2.exceptions.StreamClosedError:
                    pass
                return
            await self.respond(sid, req, final)
        finally:
            self.active.pop(sid, None)

    async def respond(self, sid, req, reply):
        hdrs = [(":status", str(reply.status))]
        hdrs += reply.all_headers()
        hdrs.append(("content-length", str(len(reply.body))))
        # Recorded first: a client that reads the answer finds it.
        self.mock._answered(req, reply)
        try:
            if self.closed:
                raise ConnectionError
            self.conn.send_headers(sid, hdrs, end_stream=not reply.body)
            self.flush()
            view = memoryview(reply.body)
            off = 0
            while off < len(view):
                if self.closed or req._gone.is_set():
                    raise ConnectionError
                win = self.conn.local_flow_control_window(sid)
                if win <= 0:
                    self.window.clear()
                    await self.window.wait()
                    continue
                n = min(win, self.conn.max_outbound_frame_size,
                        len(view) - off)
                self.conn.send_data(sid, bytes(view[off:off + n]),
                                    end_stream=off + n == len(view))
                off += n
                self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError,
                ConnectionError):
            self.mock._not_sent(req)
            return
        try:
            await self.writer.drain()
        except ConnectionError:
            pass


# ---------------------------------------------------------------------------
# Twilio

TWILIO_ERRORS = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20004: "Method not allowed",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region "
           "indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
}
_TWILIO_STATUS_CODE = {401: 20003, 404: 20404, 405: 20004, 429: 20429,
                       500: 20500, 503: 20503}


class TwilioMock(_HttpMock):
    """Twilio's Messages API (see the module comment)."""

    name = "twilio"

    def __init__(self, account_sid, auth_token, tls=False, tmpdir=None,
                 rules=None, port=0, http2=False):
        self.account_sid = account_sid
        self.auth_token = auth_token
        super().__init__(tls=tls, tmpdir=tmpdir, rules=rules, port=port,
                         http2=http2)

    @property
    def messages_path(self):
        return "/2010-04-01/Accounts/%s/Messages.json" % self.account_sid

    def _check_rule(self, rule):
        if re.fullmatch(r"[1-9]\d{4}", rule.action):
            return
        super()._check_rule(rule)

    @staticmethod
    def _error(status, code, message=None):
        return _Reply(status, {
            "code": code,
            "message": message or TWILIO_ERRORS.get(code, "Error %d" % code),
            "more_info": "https://www.twilio.com/docs/errors/%d" % code,
            "status": status})

    def _refuse(self, req, status, code, message=None):
        req.refusal = str(code)
        r = self._error(status, code, message)
        if status == 401:
            r.headers.append(("WWW-Authenticate", 'Basic realm="Twilio API"'))
        return r

    def _plan(self, req):
        req.kind = "sms"
        if req.auth != (self.account_sid, self.auth_token):
            return self._refuse(req, 401, 20003)
        m = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json",
                         req.route)
        if m is None or m.group(1) != self.account_sid:
            req.kind = "other"
            return self._refuse(req, 404, 20404)
        if req.method != "POST":
            return self._refuse(req, 405, 20004)
        if req.form is None and req.body:
            return self._refuse(req, 400, 20001,
                                "The request body is not UTF-8 form data")
        form = req.form or {}
        to, from_, body = form.get("To"), form.get("From"), form.get("Body")
        req.key = to
        if not to:
            return self._refuse(req, 400, 21604)
        if not from_ and not form.get("MessagingServiceSid"):
            return self._refuse(req, 400, 21603)
        if not body:
            return self._refuse(req, 400, 21602)
        if not re.fullmatch(r"\+[1-9]\d{7,14}", to):
            return self._refuse(req, 400, 21211)
        if len(body) > 1600:
            return self._refuse(req, 400, 21617)
        now = email.utils.formatdate(usegmt=True)
        sid = "SM" + secrets.token_hex(16)
        encoding, segments = sms_segments(body)
        success = _Reply(201, {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api",
            "error_code": None, "error_message": None,
            "from": from_,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(segments),
            "price": None, "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": "%s/%s/Media.json" % (
                self.messages_path[:-5], sid)},
            "to": to,
            "uri": "%s/%s.json" % (self.messages_path[:-5], sid),
        }, ref=sid)
        rule = self._take_rule(to)

        def error(rule):
            a = rule.action
            if re.fullmatch(r"[1-9]\d{4}", a):
                return self._error(400, int(a))
            status = int(a)
            return self._error(status, _TWILIO_STATUS_CODE.get(
                status, 20000 + status), _phrase(status))
        return self._apply(req, rule, success, error)


# ---------------------------------------------------------------------------
# Generic JSON gateway

class JsonGatewayMock(_HttpMock):
    """A generic JSON SMS gateway (see the module comment)."""

    name = "json-gateway"

    def __init__(self, path="/send", tls=False, tmpdir=None, rules=None,
                 port=0, http2=False):
        self.path = path
        super().__init__(tls=tls, tmpdir=tmpdir, rules=rules, port=port,
                         http2=http2)

    @property
    def send_url(self):
        return self.url + self.path

    def _check_rule(self, rule):
        if rule.lower in ("noid", "text"):
            return
        super()._check_rule(rule)

    def _refuse(self, req, status, why):
        req.refusal = why
        return _Reply(status, {"error": why, "code": status})

    def _plan(self, req):
        req.kind = "sms"
        if req.route != self.path:
            req.kind = "other"
            return self._refuse(req, 404, "not found")
        if req.method != "POST":
            return self._refuse(req, 405, "method not allowed")
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype.lower() != "application/json":
            return self._refuse(req, 415, "want application/json")
        if not isinstance(req.json, dict):
            return self._refuse(req, 400, "body is not a JSON object")
        req.key = req.json.get("to") if isinstance(req.json.get("to"),
                                                   str) else None
        for field in ("to", "from", "text", "ref"):
            if not isinstance(req.json.get(field), str):
                return self._refuse(req, 400, "field %r missing or not a "
                                    "string" % field)
        gid = "gw-" + secrets.token_hex(8)
        success = _Reply(200, {"id": gid, "status": "accepted"}, ref=gid)
        rule = self._take_rule(req.key)
        if rule is not None and rule.lower == "noid":
            req.rule = rule.text
            return _Reply(200, {"status": "accepted"})
        if rule is not None and rule.lower == "text":
            req.rule = rule.text
            return _Reply(200, "OK")

        def error(rule):
            status = int(rule.action)
            return _Reply(status, {"error": _phrase(status), "code": status})
        return self._apply(req, rule, success, error)


# ---------------------------------------------------------------------------
# FCM

FCM_ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED",
                       "Quota exceeded for quota metric 'Send requests'."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT",
                         "Request contains an invalid argument."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently "
                    "unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED",
                               "Auth error from APNS or Web Push Service"),
}
_FCM_CODE_ACTIONS = {"404": "UNREGISTERED", "403": "SENDER_ID_MISMATCH",
                     "429": "QUOTA_EXCEEDED", "400": "INVALID_ARGUMENT",
                     "503": "UNAVAILABLE", "500": "INTERNAL"}
_UNAUTH_MSG = ("Request had invalid authentication credentials. Expected "
               "OAuth 2 access token, login cookie or other valid "
               "authentication credential. See https://developers.google.com"
               "/identity/sign-in/web/devconsole-project.")


class FcmGrant:
    """One jwt-bearer grant the token endpoint read."""

    def __init__(self, request, assertion):
        self.at = time.time()
        self.request = request
        self.assertion = assertion
        self.header = None
        self.claims = None
        self.ok = False
        self.error = None
        self.access_token = None
        self.expires_at = None

    def __repr__(self):
        return "<FcmGrant req=%s ok=%s %s>" % (self.request, self.ok,
                                               self.error or "")


class FcmMock(_HttpMock):
    """FCM HTTP v1 and Google's OAuth token endpoint (see the module
    comment)."""

    name = "fcm"
    _ONCE = ("401",)

    def __init__(self, public_key_pem=None, client_email=None,
                 project_id=None, tls=False, tmpdir=None, rules=None, port=0,
                 http2=False, token_path="/token", expires_in=3599):
        self.token_path = token_path
        self.expires_in = expires_in
        self._token_rules = {}
        self._grants = []
        self._tokens = {}
        self.public_key_pem = self.client_email = self.project_id = None
        self._public_key = None
        super().__init__(tls=tls, tmpdir=tmpdir, rules=rules, port=port,
                         http2=http2)
        if public_key_pem is not None:
            self.use_service_account(public_key_pem, client_email,
                                     project_id)

    @property
    def token_uri(self):
        return self.url + self.token_path

    def use_service_account(self, public_key_pem, client_email, project_id):
        key = _load_public(public_key_pem)
        with self._lock:
            self.public_key_pem = public_key_pem
            self._public_key = key
            self.client_email = client_email
            self.project_id = project_id

    def make_service_account(self, directory, project_id="rouse-test",
                             client_email=None):
        """Creates a service-account file pointing at this mock's token_uri
        and trusts its key. Returns (path, public_key_pem, client_email,
        project_id)."""
        out = make_service_account(directory, self.token_uri,
                                   project_id=project_id,
                                   client_email=client_email)
        self.use_service_account(out[1], out[2], out[3])
        return out

    def set_token_rule(self, value):
        with self._lock:
            if value is None:
                self._token_rules.pop("", None)
                return
            rule = Rule.of(value)
            _HttpMock._check_rule(self, rule)
            self._token_rules[""] = rule

    def _check_rule(self, rule):
        if rule.action.upper() in FCM_ERRORS or rule.action == "401":
            return
        super()._check_rule(rule)

    def _reset_extra(self):
        self._grants = []

    def grants(self):
        with self._lock:
            return list(self._grants)

    def access_tokens(self):
        """{token: {"issued_at", "expires_at" (mock clock), "revoked"}}."""
        with self._lock:
            return {k: dict(v) for k, v in self._tokens.items()}

    def revoke_access_tokens(self):
        with self._lock:
            for v in self._tokens.values():
                v["revoked"] = True

    def sends(self):
        return self.requests("send")

    @staticmethod
    def _gerror(status, gstatus, message, error_code=None, details=None):
        err = {"code": status, "message": message, "status": gstatus}
        d = list(details or [])
        if error_code is not None:
            d.append({"@type": "type.googleapis.com/google.firebase.fcm.v1."
                               "FcmError", "errorCode": error_code})
        if d:
            err["details"] = d
        return _Reply(status, {"error": err})

    def _plan(self, req):
        if req.route == self.token_path:
            return self._plan_token(req)
        m = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", req.route)
        if m is None or req.method != "POST":
            req.refusal = "NOT_FOUND"
            return self._gerror(404, "NOT_FOUND", "Requested entity was not "
                                "found.")
        req.kind = "send"
        now = self.now()
        with self._lock:
            tok = self._tokens.get(req.bearer) if req.bearer else None
            valid = tok is not None and not tok["revoked"] and \
                now < tok["expires_at"]
        if not valid:
            req.refusal = "UNAUTHENTICATED"
            r = self._gerror(401, "UNAUTHENTICATED", _UNAUTH_MSG)
            r.headers.append(("WWW-Authenticate", 'Bearer realm='
                              '"https://accounts.google.com/"'))
            return r
        if m.group(1) != self.project_id:
            req.refusal = "PERMISSION_DENIED"
            return self._gerror(403, "PERMISSION_DENIED", "Permission "
                                "'cloudmessaging.messages.create' denied on "
                                "resource '//cloudresourcemanager.googleapis"
                                ".com/projects/%s'" % m.group(1))
        problem = self._check_message(req)
        if problem is not None:
            field, why = problem
            req.refusal = "INVALID_ARGUMENT: %s" % field
            return self._gerror(
                400, "INVALID_ARGUMENT", why, "INVALID_ARGUMENT",
                [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                  "fieldViolations": [{"field": field, "description": why}]}])
        name = "projects/%s/messages/0:%d%%%s" % (
            self.project_id, int(time.time() * 1000), secrets.token_hex(8))
        success = _Reply(200, {"name": name}, ref=name)
        rule = self._take_rule(req.key)
        if rule is not None and rule.action == "401":
            with self._lock:
                self._tokens[req.bearer]["revoked"] = True

        def error(rule):
            a = rule.action.upper()
            if a == "401":
                return self._gerror(401, "UNAUTHENTICATED", _UNAUTH_MSG)
            a = _FCM_CODE_ACTIONS.get(a, a)
            if a not in FCM_ERRORS:
                return self._gerror(int(a), "UNKNOWN", _phrase(int(a)))
            status, gstatus, msg = FCM_ERRORS[a]
            return self._gerror(status, gstatus, msg, a)
        return self._apply(req, rule, success, error)

    def _check_message(self, req):
        """(field, description) of the first problem, or None."""
        body = req.json
        if not isinstance(body, dict) or not isinstance(body.get("message"),
                                                        dict):
            return ("message", "Invalid JSON payload received. Expected an "
                    "object with a \"message\" object.")
        msg = body["message"]
        targets = [k for k in ("token", "topic", "condition") if k in msg]
        if targets != ["token"] or not isinstance(msg["token"], str) or \
                not msg["token"]:
            return ("message.token", "Exactly one of message.token, "
                    "message.topic or message.condition must be set; this "
                    "service sends to tokens.")
        req.key = msg["token"]
        data = msg.get("data")
        if data is not None:
            if not isinstance(data, dict):
                return ("message.data", "Invalid value at 'message.data' "
                        "(Map), expected an object")
            for k, v in data.items():
                if not isinstance(v, str):
                    return ("message.data[%s].value" % k,
                            "Invalid value at 'message.data[%s].value' "
                            "(TYPE_STRING), %s" % (k, json.dumps(v)))
        note = msg.get("notification")
        if note is not None:
            if not isinstance(note, dict):
                return ("message.notification", "Invalid value at "
                        "'message.notification', expected an object")
            for k, v in note.items():
                if not isinstance(v, str):
                    return ("message.notification.%s" % k,
                            "Invalid value at 'message.notification.%s' "
                            "(TYPE_STRING), %s" % (k, json.dumps(v)))
        return None

    def _grant_error(self, req, grant, error, description):
        grant.error = "%s: %s" % (error, description)
        req.refusal = grant.error
        return _Reply(400, {"error": error, "error_description": description})

    def _plan_token(self, req):
        req.kind = "token"
        form = req.form or {}
        grant = FcmGrant(req.id, form.get("assertion"))
        req.grant = grant
        with self._lock:
            self._grants.append(grant)
        if req.method != "POST":
            return self._grant_error(req, grant, "invalid_request",
                                     "Token requests use POST")
        if form.get("grant_type") != JWT_BEARER:
            return self._grant_error(req, grant, "unsupported_grant_type",
                                     "Invalid grant_type: %s"
                                     % form.get("grant_type", ""))
        if not grant.assertion:
            return self._grant_error(req, grant, "invalid_request",
                                     "Missing required parameter: assertion")
        try:
            header, claims, signing, sig = decode_jwt(grant.assertion)
        except ValueError as e:
            return self._grant_error(req, grant, "invalid_grant",
                                     "Invalid JWT: %s" % e)
        grant.header, grant.claims = header, claims
        if header.get("alg") != "RS256":
            return self._grant_error(req, grant, "invalid_grant",
                                     "Invalid JWT: alg must be RS256")
        if self._public_key is None:
            return self._grant_error(req, grant, "invalid_grant",
                                     "no service account configured")
        try:
            self._public_key.verify(sig, signing, padding.PKCS1v15(),
                                    hashes.SHA256())
        except InvalidSignature:
            return self._grant_error(req, grant, "invalid_grant",
                                     "Invalid JWT Signature.")
        if claims.get("iss") != self.client_email:
            return self._grant_error(req, grant, "invalid_grant",
                                     "Invalid grant: account not found")
        if claims.get("aud") != self.token_uri:
            return self._grant_error(
                req, grant, "invalid_grant", "Invalid JWT: Failed audience "
                "check. The right audience is %s" % self.token_uri)
        scope = claims.get("scope")
        if not isinstance(scope, str) or FCM_SCOPE not in scope.split():
            return self._grant_error(req, grant, "invalid_scope",
                                     "scope must include %s" % FCM_SCOPE)
        iat, exp = claims.get("iat"), claims.get("exp")
        now = self.now()
        if not isinstance(iat, int) or not isinstance(exp, int) or \
                not 0 < exp - iat <= 3600 or abs(iat - now) > 300 or \
                exp <= now:
            return self._grant_error(
                req, grant, "invalid_grant", "Invalid JWT: Token must be a "
                "short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.")
        rule = self._take_rule("", self._token_rules)
        if rule is not None and (rule.lower in ("drop", "reset") or
                                 re.fullmatch(r"[13-5]\d\d", rule.lower)):
            grant.error = "rule: " + rule.text

            def error(rule):
                status = int(rule.action)
                return _Reply(status, {"error": "internal_failure" if
                                       status >= 500 else "invalid_grant",
                                       "error_description": _phrase(status)})
            return self._apply(req, rule, None, error)
        token = "ya29." + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = {"issued_at": now,
                                   "expires_at": now + self.expires_in,
                                   "revoked": False}
        grant.ok = True
        grant.access_token = token
        grant.expires_at = now + self.expires_in
        success = _Reply(200, {"access_token": token,
                               "expires_in": self.expires_in,
                               "token_type": "Bearer"}, ref=token)
        success.headers.append(("Cache-Control", "no-cache, no-store, "
                                "max-age=0, must-revalidate"))
        return self._apply(req, rule, success, None)


# ---------------------------------------------------------------------------
# APNs

APNS_REASONS = {
    "BadCollapseId": 400, "BadDeviceToken": 400, "BadExpirationDate": 400,
    "BadMessageId": 400, "BadPriority": 400, "BadTopic": 400,
    "DeviceTokenNotForTopic": 400, "DuplicateHeaders": 400,
    "IdleTimeout": 400, "InvalidPushType": 400, "MissingDeviceToken": 400,
    "MissingTopic": 400, "PayloadEmpty": 400, "TopicDisallowed": 400,
    "BadPayload": 400,
    "BadCertificate": 403, "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403, "Forbidden": 403,
    "InvalidProviderToken": 403, "MissingProviderToken": 403,
    "UnrelatedKeyIdInToken": 403,
    "BadPath": 404, "MethodNotAllowed": 405,
    "ExpiredToken": 410, "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429, "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503, "Shutdown": 503,
}
_APNS_CODE_REASON = {"400": "BadDeviceToken", "403": "Forbidden",
                     "404": "BadPath", "410": "Unregistered",
                     "413": "PayloadTooLarge", "429": "TooManyRequests",
                     "500": "InternalServerError",
                     "503": "ServiceUnavailable"}
APNS_PUSH_TYPES = ("alert", "background", "location", "voip", "complication",
                   "fileprovider", "mdm", "liveactivity", "pushtotalk")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class ApnsJwt:
    """One distinct provider token the mock saw."""

    def __init__(self, token):
        self.token = token
        self.header = None
        self.claims = None
        self.iat = None
        self.kid = None
        self.iss = None
        self.valid = False
        self.problem = None
        self.first_seen = self.last_seen = time.time()
        self.uses = 0
        self.conns = set()

    def __repr__(self):
        return "<ApnsJwt iat=%s kid=%s uses=%d valid=%s %s>" % (
            self.iat, self.kid, self.uses, self.valid, self.problem or "")


class ApnsMock(_HttpMock):
    """APNs provider API over HTTP/2 (see the module comment)."""

    name = "apns"
    _ONCE = ("expired_once",)
    _H1 = False

    def __init__(self, key_id, team_id, public_key_pem, topic, tls=True,
                 tmpdir=None, rules=None, port=0, max_streams=1000,
                 max_payload=4096):
        if not tls:
            raise ValueError("APNs is HTTP/2 over TLS only")
        self.key_id = key_id
        self.team_id = team_id
        self.public_key_pem = public_key_pem
        self._public_key = _load_public(public_key_pem)
        self.topic = topic
        self.max_streams = max_streams
        self.max_payload = max_payload
        self.max_future_skew_s = 300
        self._jwts = {}
        self._expired = set()
        self._reject_before = None
        super().__init__(tls=tls, tmpdir=tmpdir, rules=rules, port=port,
                         http2=True)

    def _alpn(self):
        return ["h2"]

    def _check_rule(self, rule):
        if rule.action in APNS_REASONS or rule.lower == "expired_once":
            return
        super()._check_rule(rule)

    def _reset_extra(self):
        self._jwts = {}

    def jwts(self):
        """Every distinct JWT seen since reset(), in order of first use."""
        with self._lock:
            return list(self._jwts.values())

    def pushes(self):
        return self.requests("push")

    def reject_tokens_minted_before(self, ts):
        """From now on, JWTs whose iat < ts get 403 ExpiredProviderToken
        (None: stop)."""
        with self._lock:
            self._reject_before = ts

    def _error(self, req, reason, status=None, apns_id=None):
        status = status or APNS_REASONS[reason]
        body = {"reason": reason}
        if status == 410:
            body["timestamp"] = int(self.now() * 1000)
        r = _Reply(status, body)
        r.headers.append(("apns-id", apns_id or
                          req.headers.get("apns-id") or str(uuid.uuid4())))
        return r

    def _refuse(self, req, reason):
        req.refusal = reason
        return self._error(req, reason)

    def _check_jwt(self, req, token):
        """The reason to refuse token, or None."""
        now = self.now()
        with self._lock:
            rec = self._jwts.get(token)
            if rec is None:
                rec = ApnsJwt(token)
                self._jwts[token] = rec
                rec.problem = self._verify_jwt(rec)
                rec.valid = rec.problem is None
            rec.uses += 1
            rec.last_seen = time.time()
            rec.conns.add(req.conn)
            req.jwt_header, req.jwt_claims = rec.header, rec.claims
            if rec.problem is not None:
                return rec.problem
            if now - rec.iat > 3600:
                return "ExpiredProviderToken"
            if rec.iat > now + self.max_future_skew_s:
                return "InvalidProviderToken"
            if token in self._expired:
                return "ExpiredProviderToken"
            if self._reject_before is not None and \
                    rec.iat < self._reject_before:
                return "ExpiredProviderToken"
        return None

    def _verify_jwt(self, rec):
        try:
            header, claims, signing, sig = decode_jwt(rec.token)
        except ValueError:
            return "InvalidProviderToken"
        rec.header, rec.claims = header, claims
        rec.kid, rec.iss = header.get("kid"), claims.get("iss")
        rec.iat = claims.get("iat")
        if header.get("alg") != "ES256" or rec.kid != self.key_id or \
                rec.iss != self.team_id or not isinstance(rec.iat, int) or \
                len(sig) != 64:
            return "InvalidProviderToken"
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                   int.from_bytes(sig[32:], "big"))
        try:
            self._public_key.verify(der, signing, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "InvalidProviderToken"
        return None

    def _plan(self, req):
        req.kind = "push"
        req.device_token = None
        req.jwt = req.jwt_header = req.jwt_claims = None
        if req.method != "POST":
            return self._refuse(req, "MethodNotAllowed")
        m = re.fullmatch(r"/3/device/([^/]*)", req.route)
        if m is None:
            req.kind = "other"
            return self._refuse(req, "BadPath")
        req.device_token = req.key = m.group(1)
        if not re.fullmatch(r"[0-9A-Za-z._-]{1,200}", req.device_token):
            return self._refuse(req, "MissingDeviceToken"
                                if not req.device_token else "BadDeviceToken")
        authz = req.headers.get("authorization")
        if authz is None:
            return self._refuse(req, "MissingProviderToken")
        scheme, _, token = authz.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._refuse(req, "InvalidProviderToken")
        req.jwt = token.strip()
        why = self._check_jwt(req, req.jwt)
        if why is not None:
            return self._refuse(req, why)
        topic = req.headers.get("apns-topic")
        if topic is None:
            return self._refuse(req, "MissingTopic")
        if topic != self.topic:
            return self._refuse(req, "BadTopic")
        if req.headers.get("apns-push-type") not in APNS_PUSH_TYPES:
            return self._refuse(req, "InvalidPushType")
        if req.headers.get("apns-priority", "10") not in ("1", "5", "10"):
            return self._refuse(req, "BadPriority")
        if not re.fullmatch(r"\d+", req.headers.get("apns-expiration", "0")):
            return self._refuse(req, "BadExpirationDate")
        apns_id = req.headers.get("apns-id")
        if apns_id is not None and not _UUID.fullmatch(apns_id):
            return self._refuse(req, "BadMessageId")
        if len(req.headers.get("apns-collapse-id", "").encode()) > 64:
            return self._refuse(req, "BadCollapseId")
        if not req.body:
            return self._refuse(req, "PayloadEmpty")
        if len(req.body) > self.max_payload:
            return self._refuse(req, "PayloadTooLarge")
        try:
            req.json = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            req.json = None
        if not isinstance(req.json, dict):
            return self._refuse(req, "BadPayload")
        apns_id = apns_id or str(uuid.uuid4())
        success = _Reply(200, b"", [("apns-id", apns_id),
                                    ("apns-unique-id", str(uuid.uuid4()))],
                         ref=apns_id)
        rule = self._take_rule(req.device_token)

        def error(rule):
            a = rule.action
            if a.lower() == "expired_once":
                with self._lock:
                    self._expired.add(req.jwt)
                a = "ExpiredProviderToken"
            a = _APNS_CODE_REASON.get(a, a)
            if a.isdigit():
                return self._error(req, _phrase(int(a)).replace(" ", ""),
                                   int(a), apns_id)
            return self._error(req, a, apns_id=apns_id)
        return self._apply(req, rule, success, error)
