#!/usr/bin/env bash
# Installs the Debian packages the mail server stack runs on, unless they are there already.
#
#   install.sh [LOG_FILE]
#
# up.sh runs it first; callers that pick free ports run it beforehand, so that the ports are not
# taken by someone else during the minute a first install can take. Prints nothing on success.
set -euo pipefail

fail() {
  printf 'mail-server: %s\n' "$*" >&2
  exit 1
}

binaries="/usr/sbin/dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/pop3 /usr/lib/dovecot/lmtp /usr/sbin/postfix"
packages="dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix"
installed() {
  for binary in $binaries; do [ -x "$binary" ] || return 1; done
}
installed && exit 0

[ "$(id -u)" = 0 ] || fail "Dovecot and Postfix are not installed, and installing them needs root: apt-get install $packages"
command -v apt-get >/dev/null || fail "Dovecot and Postfix are not installed and apt-get is not available: install $packages"

log=${1:-${TMPDIR:-/tmp}/m365-connector-mail-install.log}
mkdir -p "$(dirname "$log")"
# Test runs that start at the same time would otherwise run apt-get side by side; the second one
# waits here and then finds the packages installed.
lock_dir=/run/lock
[ -d "$lock_dir" ] || lock_dir=${TMPDIR:-/tmp}
exec 9>"$lock_dir/m365-connector-mail-install.lock"
flock -w 600 9 || fail "another installation of Dovecot and Postfix did not finish within 10 minutes"
installed && exit 0

export DEBIAN_FRONTEND=noninteractive
# Leaves the system-wide Postfix unconfigured: each stack brings its own configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# The package lists of a fresh machine are stale. An unreachable extra source only makes
# `apt-get update` warn or fail for that source; whether the install works is what counts.
apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1 || true
# shellcheck disable=SC2086 # the package list is meant to split into words
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $packages >>"$log" 2>&1 ||
  fail "installing $packages failed (full log: $log):
$(tail -n 15 "$log")"
installed || fail "$packages installed, but $binaries are not all there"
