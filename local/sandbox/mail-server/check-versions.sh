#!/usr/bin/env bash
# Checks that the Dovecot and Postfix that up.sh is about to configure and start are ones this
# stack's configuration is written for. Without it, a Dovecot 2.4 (Debian 13 ships it) fails only
# later, in doveconf, with "the Dovecot configuration is invalid": 2.4 no longer accepts the 2.3
# configuration syntax that dovecot.conf.in uses.
#
#   check-versions.sh
#
# up.sh runs it right after install.sh; it uses the commands on PATH, as up.sh does. Prints nothing
# on success; on failure says why, and exits with 4 when Dovecot is a version the configuration
# does not support and with 1 when a command is missing.
set -euo pipefail

fail() {
  printf 'mail-server: %s\n' "$*" >&2
  exit 1
}
# A distinct status: no retry or other port helps, only another Dovecot (another machine or container).
unsupported() {
  printf 'mail-server: %s\n' "$*" >&2
  exit 4
}

for command in dovecot doveconf postfix; do
  command -v "$command" >/dev/null ||
    fail "$command is not on PATH ($PATH). Debian installs Dovecot and Postfix in /usr/sbin, which a root shell that kept a user's PATH (plain 'su', for one) may lack: use 'su -' or 'sudo -i', or add /usr/sbin to PATH."
done

# Prints e.g. "2.3.19.1 (9b53102964)" on Debian 12 and "2.4.1-4 (7d8c0e5759)" on Debian 13.
output=$(dovecot --version 2>&1) || fail "'dovecot --version' failed: $output"
version=${output%% *}
case $version in
  2.3.*) ;;
  *)
    unsupported "Dovecot $version is installed, but this stack's configuration is written for Dovecot 2.3.x, as Debian 12 \"bookworm\" ships it; other versions do not accept it (2.4, in Debian 13 \"trixie\", changed the configuration syntax). Run the mail server stack on Debian 12, for example in a debian:12 container, or with Dovecot 2.3.x installed."
    ;;
esac
