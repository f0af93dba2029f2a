"""A real SMTP server for the integration tests, built on aiosmtpd.

SmtpSink listens on 127.0.0.1 (a free port) in a background thread and
answers each message according to rules chosen per recipient, so one sink
can accept some addresses, defer others and bounce the rest:

    sink = SmtpSink(tmp_path, rules={"t451x3@": ("451", 3),
                                     "gone@": "550 5.1.1 no such user"})

A rule key matches every recipient address that starts with it (compared
case-insensitively), so "t451x3@" matches that local part exactly and
"bounce" matches every local part starting with "bounce". The longest
matching key wins. A rule value is an action, optionally with a count and
a stage: action | (action, times) | (action, times, stage).

  action  "250", "451", "550 5.1.1", or a full reply such as
          "451 4.3.0 try later" (a bare code or code + enhanced code gets a
          stock text); "421" replies and then closes the connection;
          "drop" reads the whole message (it counts as received) and closes
          the connection without replying; "stall" reads the whole message
          (it counts as received) and sends no reply until release_stalled()
          or until the client goes away.
  times   how many times the action is applied to each address; after that
          the address gets 250. None (default) = every time.
  stage   "data" (default): the answer to the end of DATA; "rcpt": the
          answer to RCPT TO (drop and stall are always "data").

Without a matching key, a recipient whose local part is written
[rcpt-]smtp<what>[_<a>_<b>_<c>][x<times>] followed by "-", ".", "+", "_"
or the "@" carries its own rule: "smtp451x3-u1@example.com" (451 three
times), "smtp550_5_1_1-u2@example.com", "rcpt-smtp550_5_1_1-u3@...",
"smtpdropx1-u4@..." and "smtpstallx1-u5@...". Everybody else gets 250.

Whole-server modes: starttls=True offers STARTTLS with a throwaway CA and
server certificate made by the openssl CLI (ca_file is the CA to give the
client); auth=(user, password) makes AUTH PLAIN/LOGIN required before MAIL;
hold_greeting=True (or hold_greeting()) keeps every new connection waiting
for its 220 greeting until release_greeting(); delay=S waits S seconds
before each end-of-DATA reply (a slow server); port=N listens on N instead
of a free port; tls_tickets=N sets how many TLS 1.3 session tickets follow
each handshake (2, as OpenSSL servers send by default; 0 for none);
extensions are the extra EHLO keywords announced (PIPELINING and
ENHANCEDSTATUSCODES by default, as Postfix does); ehlo=False refuses EHLO
with 502, as servers from before ESMTP do, so only HELO works.

Everything is recorded: connections(), sessions() (commands with times,
EHLO name, STARTTLS, AUTH credentials, TLS state) and messages() (envelope,
the raw bytes after dot-unstuffing, the reply given, times).
"""

import asyncio
import email
import email.policy
import logging
import re
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

# aiosmtpd warns about AUTH without TLS and logs every session; the tests
# read the sink's records instead.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

STOCK_TEXT = {
    "250": "2.0.0 OK queued",
    "421": "4.3.2 service shutting down, closing channel",
    "450": "4.2.1 mailbox busy, try later",
    "451": "4.3.0 local error, try later",
    "452": "4.3.1 insufficient system storage",
    "550": "5.1.1 no such user",
    "551": "5.1.6 user not local",
    "552": "5.2.2 mailbox full",
    "553": "5.1.3 bad destination mailbox address syntax",
    "554": "5.6.0 transaction failed",
}
ENHANCED_TEXT = {
    "4.7.0": "temporary policy rejection, slow down",
    "4.7.1": "greylisted, try again later",
    "5.1.1": "no such user",
    "5.1.2": "bad destination domain",
    "5.1.3": "bad destination mailbox address syntax",
    "5.2.2": "mailbox full",
    "5.2.3": "message length exceeds administrative limit",
    "5.3.4": "message too big for system",
    "5.7.1": "message rejected by policy",
    "5.7.26": "unauthenticated mail is prohibited (DMARC)",
}

_BUILTIN = re.compile(
    r"^(?P<rcpt>rcpt-)?smtp(?P<what>[2-5]\d\d|drop|stall)"
    r"(?:_(?P<e1>\d)_(?P<e2>\d{1,3})_(?P<e3>\d{1,3}))?"
    r"(?:x(?P<n>\d+))?(?=[-.+_@]|$)", re.IGNORECASE)


def full_reply(action):
    """A bare code ("451") or code + enhanced code ("550 5.1.1") with a
    stock text; a reply that already has text is kept as it is."""
    parts = action.split(None, 2)
    code = parts[0]
    if len(parts) == 1:
        return "%s %s" % (code, STOCK_TEXT.get(code, "test reply"))
    if len(parts) == 2 and re.fullmatch(r"\d\.\d{1,3}\.\d{1,3}", parts[1]):
        return "%s %s %s" % (code, parts[1],
                             ENHANCED_TEXT.get(parts[1], "test reply"))
    return action


class Rule:
    """What to answer one recipient; times=None = always."""

    def __init__(self, action, times=None, stage="data"):
        action = str(action).strip()
        if action.lower() in ("drop", "stall"):
            self.kind = action.lower()
            self.reply = None
            stage = "data"
        else:
            if not re.match(r"^[2-5]\d\d(?:\s|$)", action):
                raise ValueError("rule action %r: want a reply code, "
                                 "'drop' or 'stall'" % action)
            self.kind = "reply"
            self.reply = full_reply(action)
        if stage not in ("data", "rcpt"):
            raise ValueError("rule stage %r: want 'data' or 'rcpt'" % stage)
        self.times = times
        self.stage = stage

    @classmethod
    def of(cls, value):
        if isinstance(value, Rule):
            return value
        if isinstance(value, (tuple, list)):
            return cls(*value)
        return cls(value)

    def __repr__(self):
        return "Rule(%s, times=%r, stage=%s)" % (
            self.reply or self.kind, self.times, self.stage)


class SinkSession:
    """One SMTP connection as the sink saw it."""

    def __init__(self, sid, peer):
        self.id = sid
        self.peer = peer
        self.opened = time.time()
        self.greeted = None        # when the 220 greeting was sent
        self.closed = None
        self.commands = []         # [(time, VERB, argument or None)]
        self.ehlo = None
        self.starttls = False      # STARTTLS was issued
        self.tls = False           # the TLS handshake completed
        self.tls_version = None
        self.auth = []             # [(mechanism, login, password, success)]
        self.messages = []         # SinkMessage, in order

    def verbs(self):
        return [c[1] for c in self.commands]

    def rcpts(self):
        """Every RCPT TO argument, in order."""
        return [c[2] for c in self.commands if c[1] == "RCPT"]

    def __repr__(self):
        return "<SinkSession %d %s tls=%s cmds=%s>" % (
            self.id, self.peer, self.tls, self.verbs())


class SinkMessage:
    """One message whose final "." the sink read."""

    def __init__(self, session, mail_from, rcpt_tos, raw, tls):
        self.session = session.id
        self.at = time.time()
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.raw = bytes(raw)      # after dot-unstuffing
        self.tls = tls
        self.reply = None          # the reply sent, "drop" or "stall"
        self.replied_at = None
        self.accepted = False      # 250 sent, or the "." read (drop/stall)
        self._parsed = None

    @property
    def msg(self):
        if self._parsed is None:
            self._parsed = email.message_from_bytes(
                self.raw, policy=email.policy.default)
        return self._parsed

    @property
    def message_id(self):
        m = re.search(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]*>)", self.raw)
        return m.group(1).decode("ascii", "replace") if m else None

    def __repr__(self):
        return "<SinkMessage %s -> %s %s reply=%r>" % (
            self.mail_from, self.rcpt_tos, self.message_id, self.reply)


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on (at the moment)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(directory, host="127.0.0.1"):
    """A throwaway CA and a server certificate it signs (EC P-256), made
    with the openssl CLI. Returns (ca_file, cert_file, key_file)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.pem"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.pem"
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:%s,DNS:%s,DNS:localhost\n" % (host, host))

    def run(*argv):
        r = subprocess.run(["openssl"] + list(argv), capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s"
                               % (" ".join(argv), r.stderr))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "2", "-subj", "/CN=rouse test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=%s" % host)
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt),
        "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(crt),
        "-days", "2", "-extfile", str(ext))
    return str(ca_crt), str(crt), str(key)


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with recording, held greetings, 421-and-close and
    replies that are never sent."""

    def __init__(self, handler, sink, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(handler, **kw)
        self._sink = sink
        self._rec = None
        self._greeted = False
        self.mute = False
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recorder(verb, method)

    def _recorder(self, verb, method):
        async def recorded(arg):
            if self._rec is not None:
                self._sink._note_command(self._rec, verb, arg)
            await method(arg)
            if verb == "STARTTLS" and self._tls_protocol is not None:
                self._sink._note_tls(self._rec, self.transport)
        return recorded

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._rec = self._sink._new_session(self.session.peer)

    def connection_lost(self, error):
        if self._rec is not None:
            self._rec.closed = time.time()
        super().connection_lost(error)

    def close_now(self):
        """Closes the connection without a word."""
        self.mute = True
        t = self._original_transport or self.transport
        if t is not None:
            t.abort()

    async def push(self, status):
        if self.mute:
            return
        if not self._greeted:
            self._greeted = True
            while self._sink._greeting_hold.is_set():
                await asyncio.sleep(0.02)
            if self.transport is None:
                return
            self._rec.greeted = time.time()
        text = status.decode("utf-8", "replace") \
            if isinstance(status, bytes) else status
        if self.transport is None:
            return
        await super().push(status)
        if text.startswith("421"):
            self.mute = True
            self.transport.close()


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        if not self.sink.ehlo:     # an old server: the client must HELO
            session.host_name = None
            session.extended_smtp = False
            return ["502 5.5.2 Error: command not recognized"]
        session.host_name = hostname
        if self.sink.auth is None:   # no AUTH offered without credentials
            responses = [r for r in responses
                         if not r[4:].upper().startswith("AUTH")]
        # Announced like a real MTA (aiosmtpd handles pipelined commands
        # in order and every reply above carries an enhanced code).
        extra = ["250-" + e for e in self.sink.extensions]
        return responses[:-1] + extra + responses[-1:]

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        rule = self.sink._take_rule(address, "rcpt")
        if rule is not None and rule.kind == "reply" and \
                not rule.reply.startswith("2"):
            return rule.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        rec = server._rec
        raw = envelope.original_content
        m = SinkMessage(rec, envelope.mail_from, envelope.rcpt_tos, raw,
                        server._tls_protocol is not None)
        rule = None
        for rcpt in envelope.rcpt_tos:
            rule = sink._take_rule(rcpt, "data")
            if rule is not None:
                break
        kind = rule.kind if rule is not None else "reply"
        reply = rule.reply if rule is not None else full_reply("250")
        m.reply = reply if kind == "reply" else kind
        m.accepted = kind != "reply" or reply.startswith("2")
        sink._add_message(rec, m)
        if kind == "drop":
            server.close_now()
            return "250 2.0.0 not sent"
        if kind == "stall":
            try:
                while not sink._stall_release.is_set():
                    if server.transport is None:
                        return "250 2.0.0 not sent"
                    await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                m.reply = "stall (client gone)"
                raise
            m.reply = "stall then 250"
            reply = full_reply("250")
        if sink.delay > 0:
            await asyncio.sleep(sink.delay)
        m.replied_at = time.time()
        return reply


class _Controller(Controller):
    def __init__(self, sink, handler, port, **kw):
        super().__init__(handler, hostname="127.0.0.1", port=port, **kw)
        self._sink = sink

    def factory(self):
        return _SinkSMTP(self.handler, self._sink, **self.SMTP_kwargs)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """See the module comment. Use as a context manager or start()/stop()."""

    def __init__(self, tmpdir, rules=None, starttls=False, auth=None,
                 hold_greeting=False, hostname="sink.test", timeout=300,
                 delay=0.0, port=0, tls_tickets=2,
                 extensions=("PIPELINING", "ENHANCEDSTATUSCODES"),
                 ehlo=True):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rules = {}
        for k, v in (rules or {}).items():
            self.set_rule(k, v)
        self._uses = {}
        self._sessions = []
        self._messages = []
        self._greeting_hold = threading.Event()
        self._stall_release = threading.Event()
        self._hold_at_start = hold_greeting
        self.auth = auth
        self.delay = delay         # seconds before each end-of-DATA reply
        self.extensions = tuple(extensions)
        self.ehlo = ehlo           # False: EHLO refused (502), HELO only
        self.ca_file = self.cert_file = self.key_file = None
        kw = {"server_hostname": hostname, "timeout": timeout,
              "data_size_limit": 64 << 20, "auth_require_tls": False}
        if starttls:
            self.ca_file, self.cert_file, self.key_file = make_certificates(
                self.dir / "tls")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert_file, self.key_file)
            # TLS 1.3 session tickets arrive after the handshake, as from
            # most real servers; 0 turns them off.
            ctx.num_tickets = tls_tickets
            kw["tls_context"] = ctx
        if auth is not None:
            kw["auth_required"] = True
            kw["authenticator"] = self._authenticate
        self._controller = _Controller(self, _Handler(self), port, **kw)
        self.host = "127.0.0.1"
        self.port = None

    # -- life cycle ----------------------------------------------------
    def start(self):
        self._controller.start()
        self.port = self._controller.port
        self.reset()
        if self._hold_at_start:
            self.hold_greeting()
        return self

    def stop(self):
        if self._controller is not None and self._controller._thread:
            self._greeting_hold.clear()
            self._stall_release.set()
            self._controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self):
        """Forgets every recorded session and message and every rule's use
        count (the rules stay)."""
        with self._lock:
            self._sessions = []
            self._messages = []
            self._uses = {}

    # -- steering ----------------------------------------------------------
    def set_rule(self, key, value):
        """Adds or replaces the rule for recipients starting with key; a
        value of None removes it."""
        with self._lock:
            if value is None:
                self._rules.pop(key.lower(), None)
            else:
                self._rules[key.lower()] = Rule.of(value)

    def hold_greeting(self):
        self._greeting_hold.set()

    def release_greeting(self):
        self._greeting_hold.clear()

    def release_stalled(self):
        """Answers 250 to every stalled message, and to later ones at once."""
        self._stall_release.set()

    def _rule_for(self, address):
        a = address.lower()
        best = None
        for k, r in self._rules.items():
            if a.startswith(k) and (best is None or len(k) > len(best[0])):
                best = (k, r)
        if best is not None:
            return best
        local = a.split("@", 1)[0]
        m = _BUILTIN.match(local)
        if m is None:
            return None
        what = m.group("what").lower()
        if what.isdigit() and m.group("e1") is not None:
            what += " %s.%s.%s" % (m.group("e1"), m.group("e2"),
                                   m.group("e3"))
        n = m.group("n")
        return (m.group(0).lower(),
                Rule(what, int(n) if n else None,
                     "rcpt" if m.group("rcpt") else "data"))

    def _take_rule(self, address, stage):
        """The rule to apply to address at stage, counting one use; None
        when the address gets a plain 250 there."""
        with self._lock:
            found = self._rule_for(address)
            if found is None:
                return None
            key, rule = found
            if rule.stage != stage:
                return None
            n = self._uses.get((key, address.lower()), 0)
            if rule.times is not None and n >= rule.times:
                return None
            self._uses[(key, address.lower())] = n + 1
            return rule

    def _authenticate(self, server, session, envelope, mechanism, data):
        login = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        ok = (login, password) == tuple(self.auth)
        with self._lock:
            server._rec.auth.append((mechanism, login, password, ok))
        return AuthResult(success=ok, handled=False)

    # -- recording (loop thread) ---------------------------------------------
    def _new_session(self, peer):
        with self._lock:
            s = SinkSession(len(self._sessions) + 1, peer)
            self._sessions.append(s)
            return s

    def _note_command(self, rec, verb, arg):
        with self._lock:
            rec.commands.append((time.time(), verb, arg))
            if verb in ("EHLO", "HELO"):
                rec.ehlo = arg
            elif verb == "STARTTLS":
                rec.starttls = True

    def _note_tls(self, rec, transport):
        with self._lock:
            obj = transport.get_extra_info("ssl_object") if transport else None
            rec.tls = obj is not None
            rec.tls_version = obj.version() if obj is not None else None

    def _add_message(self, rec, m):
        with self._lock:
            rec.messages.append(m)
            self._messages.append(m)

    # -- reading what happened ---------------------------------------------
    def connections(self):
        with self._lock:
            return len(self._sessions)

    def sessions(self):
        with self._lock:
            return list(self._sessions)

    def messages(self, accepted_only=True):
        """Messages whose "." the sink read, in order; with accepted_only,
        only those answered 250 (or dropped/stalled after the dot)."""
        with self._lock:
            return [m for m in self._messages
                    if m.accepted or not accepted_only]

    def commands(self, verb=None):
        """Every command of every session: [(session id, time, VERB, arg)]."""
        with self._lock:
            return [(s.id,) + c for s in self._sessions for c in s.commands
                    if verb is None or c[1] == verb]

    def by_message_id(self, accepted_only=True):
        """{Message-ID: [SinkMessage, ...]}."""
        out = {}
        for m in self.messages(accepted_only):
            out.setdefault(m.message_id, []).append(m)
        return out

    def wait_messages(self, n, timeout=15.0, accepted_only=True):
        """Waits until at least n messages are recorded; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.messages(accepted_only)
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("sink: %d of %d messages within %.0fs"
                                     % (len(got), n, timeout))
            time.sleep(0.05)
