#!/usr/bin/python3
"""check_email.py DIR: checks every DIR/NAME.eml built by test_email against
DIR/NAME.json (the values the message must carry), reading it the way a
receiving program does: Python's email package with email.policy.default.

Checked per message: it parses without defects; exactly one each of From,
To, Date, Message-ID, Subject and MIME-Version (1.0); Date is RFC 5322 and
the given instant; Message-ID is the given one, in the domain of From;
Subject and both display names decode exactly to the expected strings;
every encoded-word is UTF-8, at most 75 characters and decodes to whole
characters on its own; header lines fold at 78 unless one unbreakable token
is longer, and no line exceeds 998 octets; CRLF only; the MIME structure
(multipart/alternative with text/plain first and text/html last, or one
part), charset=utf-8, a transfer encoding of quoted-printable or base64
(the expected one), and every body byte-identical after decoding to its
input with line ends normalised to CRLF. Exits 1 on any failure.
"""
import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import json
import pathlib
import re
import sys

SINGLE = ["From", "To", "Date", "Message-ID", "Subject", "MIME-Version"]
EW = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
RFC5322_DATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} [+-]\d{4}$")


def normalise_body(s):
    """The body as the builder must send it: every line end (CRLF, CR or
    LF) becomes CRLF, and a non-empty body ends with one."""
    s = re.sub(r"\r\n|\r|\n", "\r\n", s)
    if s and not s.endswith("\r\n"):
        s += "\r\n"
    return s.encode("utf-8")


def raw_headers(raw):
    """(name, unfolded value, [physical lines]) for the top-level header
    section, read from the bytes without any library."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += line
            fields[-1][2].append(line)
        else:
            name, _, value = line.partition(":")
            fields.append([name, value, [line]])
    return [(n, v.lstrip(" \t"), lines) for n, v, lines in fields]


def decode_ew_payload(enc, text):
    if enc in "bB":
        return base64.b64decode(text, validate=True)
    return binascii.a2b_qp(text.replace("_", " "), header=True)


def compliant_phrase(value):
    """RFC 2047 decoding of the display-name part of "phrase <addr>"
    (blanks between adjacent encoded-words ignored, as the RFC says)."""
    if "<" not in value:
        return ""
    phrase = value[:value.rindex("<")].strip()
    return str(email.header.make_header(email.header.decode_header(phrase)))


class Checker:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.notes = []

    def expect(self, cond, what):
        if not cond:
            self.failures.append(what)
        return cond

    def equal(self, got, want, what):
        return self.expect(got == want, f"{what}: got {got!r}, want {want!r}")


def check_mailbox(c, msg, fields, hname, want_name, want_addr):
    header = msg[hname]
    addrs = header.addresses if header is not None else ()
    if not c.equal(len(addrs), 1, f"{hname}: number of addresses"):
        return
    c.equal(addrs[0].addr_spec, want_addr, f"{hname}: address")
    raw_value = [v for n, v, _ in fields if n.lower() == hname.lower()][0]
    c.equal(compliant_phrase(raw_value), want_name,
            f"{hname}: display name (RFC 2047 decoding)")
    got = addrs[0].display_name
    if got != want_name:
        # Python's address parser keeps one space between two adjacent
        # encoded-words of a phrase (RFC 2047 says to drop it); accept
        # exactly that difference and nothing else.
        adjacent = len(EW.findall(raw_value)) > 1
        if adjacent and got.replace(" ", "") == want_name.replace(" ", ""):
            c.notes.append(f"{hname}: Python joins adjacent encoded-words "
                           f"of a phrase with a space: {got!r}")
        else:
            c.equal(got, want_name, f"{hname}: display name (policy.default)")


def check_part(c, part, subtype, input_text, want_cte, what):
    c.equal(part.get_content_type(), f"text/{subtype}", f"{what}: type")
    c.equal(part.get_param("charset"), "utf-8", f"{what}: charset")
    cte = part.get("Content-Transfer-Encoding", "")
    c.expect(cte in ("quoted-printable", "base64"),
             f"{what}: transfer encoding {cte!r} is not 7-bit safe")
    c.equal(cte, want_cte, f"{what}: transfer encoding")
    c.equal(part.get_payload(decode=True), normalise_body(input_text),
            f"{what}: decoded body")


def check_message(eml, want):
    c = Checker(want["name"])
    raw = eml.read_bytes()

    c.expect(raw.endswith(b"\r\n"), "message does not end in CRLF")
    c.expect(re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is None, "bare CR or LF")
    c.expect(all(b < 0x80 for b in raw), "byte outside 7-bit ASCII")
    for i, line in enumerate(raw.split(b"\r\n")):
        c.expect(len(line) <= 998, f"line {i + 1} has {len(line)} octets")

    fields = raw_headers(raw)
    for name, value, lines in fields:
        for i, line in enumerate(lines):
            if len(line) > 78:
                body = line.split(":", 1)[1] if i == 0 else line
                c.expect(len(body.split()) == 1,
                         f"{name}: {len(line)}-octet line is not one token: {line!r}")
        for m in EW.finditer(value):
            c.expect(len(m.group(0)) <= 75,
                     f"{name}: encoded-word of {len(m.group(0))} characters")
            c.equal(m.group(1).lower(), "utf-8", f"{name}: encoded-word charset")
            try:
                decode_ew_payload(m.group(2), m.group(3)).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as e:
                c.expect(False, f"{name}: encoded-word {m.group(0)} is not whole "
                                f"UTF-8 characters on its own ({e})")

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        c.equal(list(part.defects), [], f"defects in {part.get_content_type()}")
    for name in SINGLE:
        c.equal(len(msg.get_all(name, [])), 1, f"number of {name} headers")
    for name in ("Cc", "Bcc"):
        c.equal(msg.get_all(name, []), [], f"{name} headers")
    c.equal(str(msg["MIME-Version"]), "1.0", "MIME-Version")

    date_value = [v for n, v, _ in fields if n.lower() == "date"][0]
    c.expect(RFC5322_DATE.match(date_value), f"Date not RFC 5322: {date_value!r}")
    dt = msg["Date"].datetime
    c.equal(int(dt.timestamp()), want["date_ms"] // 1000, "Date instant")

    want_id = want["message_id"]
    if not want_id.startswith("<"):
        want_id = f"<{want_id}>"
    c.equal(str(msg["Message-ID"]), want_id, "Message-ID")
    c.equal(want_id.rstrip(">").rsplit("@", 1)[1], want["from_addr"].rsplit("@", 1)[1],
            "Message-ID domain vs From domain")

    c.equal(str(msg["Subject"]), want["subject"], "Subject")
    check_mailbox(c, msg, fields, "From", want["from_name"], want["from_addr"])
    check_mailbox(c, msg, fields, "To", want["to_name"], want["to_addr"])

    for hname, hvalue in want["extra"]:
        c.equal(len(msg.get_all(hname, [])), 1, f"number of {hname} headers")
        got = [v for n, v, _ in fields if n.lower() == hname.lower()]
        clean = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "", hvalue).strip(" \t")
        c.equal(got[:1], [clean], f"{hname} value")

    text, html = want["text_input"], want["html_input"]
    if text is not None and html is not None:
        c.equal(msg.get_content_type(), "multipart/alternative", "top-level type")
        parts = msg.get_payload()
        if c.equal(len(parts), 2, "number of parts"):
            check_part(c, parts[0], "plain", text, want["cte_text"], "part 1")
            check_part(c, parts[1], "html", html, want["cte_html"], "part 2")
    elif text is not None:
        check_part(c, msg, "plain", text, want["cte_text"], "body")
    else:
        check_part(c, msg, "html", html, want["cte_html"], "body")
    return c


def main():
    if len(sys.argv) != 2:
        print("usage: check_email.py DIR", file=sys.stderr)
        return 2
    directory = pathlib.Path(sys.argv[1])
    emls = sorted(directory.glob("*.eml"))
    if not emls:
        print(f"check_email: no .eml files in {directory}", file=sys.stderr)
        return 1
    failed = 0
    for eml in emls:
        want = json.loads(eml.with_suffix(".json").read_text(encoding="utf-8"))
        try:
            c = check_message(eml, want)
        except Exception as e:  # a message Python cannot even read fails
            c = Checker(want["name"])
            c.failures.append(f"unreadable: {type(e).__name__}: {e}")
        for note in c.notes:
            print(f"check_email: {c.name}: note: {note}")
        for f in c.failures:
            print(f"check_email: {c.name}: FAIL: {f}", file=sys.stderr)
        failed += bool(c.failures)
    print(f"check_email: {len(emls) - failed}/{len(emls)} messages ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
