#!/bin/sh
# Installs the Debian 12 packages rouse needs to build (and, with "test",
# to run its tests). Only missing packages are installed; sudo is used when
# not running as root. Safe to run repeatedly.
set -eu
BUILD_PKGS="build-essential cmake pkg-config libuv1-dev libjansson-dev libsqlite3-dev
 libgmime-3.0-dev libcurl4-openssl-dev libmicrohttpd-dev libjwt-dev libssl-dev"
TEST_PKGS="python3 python3-pytest python3-aiosmtpd sqlite3 strace clang libclang-rt-14-dev
 faketime valgrind procps iproute2 openssl python3-h2 python3-cryptography curl nginx-light"
want="$BUILD_PKGS"
[ "${1:-}" = "test" ] && want="$want $TEST_PKGS"
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
