"""Checks on delivered email messages shared by the maildir and SMTP
tests: RFC 5322 shape (checklist 11), MIME parts (12), RFC 2047 words (13)
and raw header access."""
import email.header
import email.utils
import re
import time

ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def header_block(raw):
    """The top-level header lines of a message (bytes, without CRLF)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def unfolded(raw, name):
    """Raw (undecoded) values of header name, unfolded."""
    out = []
    cur = None
    for line in header_block(raw):
        if line[:1] in (b" ", b"\t"):
            if cur is not None:
                cur += line
            continue
        if cur is not None:
            out.append(cur)
            cur = None
        k, sep, v = line.partition(b":")
        if sep and k.strip().lower() == name.lower().encode():
            cur = v
    if cur is not None:
        out.append(cur)
    return out


def text_of(part):
    return part.get_content().replace("\r\n", "\n")


def body_parts(msg):
    """(text, html) of a delivered message; html None for text-only."""
    if msg.get_content_type() == "text/plain":
        return text_of(msg), None
    assert msg.get_content_type() == "multipart/alternative", \
        msg.get_content_type()
    parts = list(msg.iter_parts())
    return text_of(parts[0]), text_of(parts[-1])


def norm(s):
    return s.replace("\r\n", "\n")


def assert_rfc5322_shape(raw, msg):
    """Checklist 11 for one message."""
    for name in ("From", "To", "Date", "Message-ID", "Subject",
                 "MIME-Version"):
        got = msg.get_all(name) or []
        assert len(got) == 1, "%s appears %d times:\n%r" % (
            name, len(got), raw[:2000])
    assert str(msg["MIME-Version"]).strip() == "1.0"
    date = unfolded(raw, "Date")[0].decode("ascii").strip()
    parsed = email.utils.parsedate_tz(date)
    assert parsed is not None, "Date %r is not RFC 5322" % date
    assert re.fullmatch(
        r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} "
        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
        r"\d{2}:\d{2}(?::\d{2})? [+-]\d{4}", date), \
        "Date %r is not in RFC 5322 form" % date
    when = email.utils.mktime_tz(parsed)
    assert abs(when - time.time()) < 3 * 86400, "Date %r is off" % date
    assert len(msg["To"].addresses) == 1, str(msg["To"])
    # No bare CR or LF anywhere.
    assert re.search(rb"\r(?!\n)", raw) is None, "bare CR in %r" % raw[:300]
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in %r" % raw[:300]
    assert raw.endswith(b"\r\n")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, "line of %d octets" % len(line)
    for line in header_block(raw):
        if len(line) > 78:
            # Only an unbreakable token may run past 78: nothing to fold at.
            assert len(line.split()) <= 2, \
                "header line of %d octets could be folded: %r" % (
                    len(line), line)


def check_encoded_words(value):
    """Each RFC 2047 word in a raw header value is <= 75 chars and decodes
    to whole UTF-8 characters on its own. Returns the number of words."""
    words = ENCODED_WORD.findall(value)
    for m in ENCODED_WORD.finditer(value):
        assert len(m.group(0)) <= 75, "encoded word of %d chars: %r" % (
            len(m.group(0)), m.group(0))
        charset = m.group(1).decode().lower()
        assert charset in ("utf-8", "utf8"), charset
        (data, cs), = email.header.decode_header(m.group(0).decode())
        data.decode("utf-8")   # raises on a split character
    return len(words)
