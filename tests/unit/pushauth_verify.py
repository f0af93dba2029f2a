#!/usr/bin/python3
"""pushauth_verify.py ALG PUBLIC_KEY_PEM: verifies JWTs made by test_pushauth.

Reads one compact JWT per line from stdin and checks, for each: three
base64url parts without padding or characters outside the base64url
alphabet; a JSON header whose "alg" is ALG; and the signature, with the
public key, by python-cryptography:
  RS256: RSASSA-PKCS1-v1_5 with SHA-256;
  ES256: exactly 64 bytes, the raw big-endian r||s of RFC 7518 section 3.4
         (not DER), both halves in [1, n), verified as ECDSA P-256 SHA-256.
For each token prints one JSON line {"header":..., "claims":...,
"sig_len":N, "leading_zero":B} (B: r or s had a leading zero byte, so the
zero padding of that half was exercised). Exits 1 on the first failure.
"""
import base64
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def fail(msg):
    print("pushauth_verify: " + msg, file=sys.stderr)
    sys.exit(1)


def b64url(part, what):
    if not B64URL.match(part):
        fail("%s: not unpadded base64url: %r" % (what, part[:40]))
    if len(part) % 4 == 1:
        fail("%s: impossible base64 length %d" % (what, len(part)))
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("RS256", "ES256"):
        fail("usage: pushauth_verify.py RS256|ES256 PUBLIC_KEY_PEM")
    alg = sys.argv[1]
    with open(sys.argv[2], "rb") as f:
        key = serialization.load_pem_public_key(f.read())
    if alg == "RS256" and not isinstance(key, rsa.RSAPublicKey):
        fail("RS256 needs an RSA public key")
    if alg == "ES256" and not (isinstance(key, ec.EllipticCurvePublicKey)
                               and isinstance(key.curve, ec.SECP256R1)):
        fail("ES256 needs a P-256 public key")
    count = 0
    for lineno, line in enumerate(sys.stdin, 1):
        token = line.rstrip("\n")
        if not token:
            continue
        parts = token.split(".")
        if len(parts) != 3:
            fail("token %d: %d parts, expected 3" % (lineno, len(parts)))
        try:
            header = json.loads(b64url(parts[0], "token %d header" % lineno))
            claims = json.loads(b64url(parts[1], "token %d claims" % lineno))
        except ValueError as e:
            fail("token %d: header or claims not JSON: %s" % (lineno, e))
        sig = b64url(parts[2], "token %d signature" % lineno)
        signed = (parts[0] + "." + parts[1]).encode("ascii")
        if not isinstance(header, dict) or header.get("alg") != alg:
            fail("token %d: header alg is not %s: %r" % (lineno, alg, header))
        if not isinstance(claims, dict):
            fail("token %d: claims are not an object" % lineno)
        leading_zero = False
        try:
            if alg == "RS256":
                if len(sig) != key.key_size // 8:
                    fail("token %d: RS256 signature of %d bytes"
                         % (lineno, len(sig)))
                key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(sig) != 64:
                    fail("token %d: ES256 signature of %d bytes, expected "
                         "64 (raw r||s)" % (lineno, len(sig)))
                r = int.from_bytes(sig[:32], "big")
                s = int.from_bytes(sig[32:], "big")
                if not (0 < r < P256_N and 0 < s < P256_N):
                    fail("token %d: r or s out of range" % lineno)
                leading_zero = sig[0] == 0 or sig[32] == 0
                key.verify(encode_dss_signature(r, s), signed,
                           ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            fail("token %d: %s signature does not verify" % (lineno, alg))
        print(json.dumps({"header": header, "claims": claims,
                          "sig_len": len(sig),
                          "leading_zero": leading_zero}))
        count += 1
    if count == 0:
        fail("no token on stdin")


if __name__ == "__main__":
    main()
