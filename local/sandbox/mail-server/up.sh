#!/usr/bin/env bash
# Starts a local stand-in for Exchange Online's mail endpoints: Dovecot (IMAP, POP3, LMTP) and Postfix
# (SMTP submission), all on 127.0.0.1, accepting only Entra-shaped OAuth 2.0 access tokens (SASL
# XOAUTH2 / OAUTHBEARER) signed by the keys in the stack's key dict. See index.ts for the API.
#
#   up.sh STACK_DIR          (or MAIL_STACK_DIR=...; a second run re-renders and restarts)
#
# Settings (environment):
#   MAIL_TENANTS            tenant ids whose tokens are accepted, space- or comma-separated (required)
#   MAIL_AUTH_MECHANISMS    "xoauth2 oauthbearer" (default) or "xoauth2" (only what Exchange offers)
#   MAIL_IMAP_PORT=1143 MAIL_IMAPS_PORT=1993 MAIL_POP3_PORT=1110 MAIL_POP3S_PORT=1995
#   MAIL_SUBMISSION_PORT=1587 (STARTTLS) MAIL_SUBMISSIONS_PORT=1465 (implicit TLS)
#   MAIL_AUTH_PORT=12345 (Dovecot SASL for Postfix) MAIL_LMTP_PORT=1024
#   MAIL_TLS_CERT, MAIL_TLS_KEY, MAIL_TLS_CA   PEM files to serve; otherwise a local CA is made once
#
# Needs root: both masters start as root and drop privileges per service. Installs the Debian
# packages when they are missing (install.sh), then checks that they are versions the configuration
# is written for (check-versions.sh: Dovecot 2.3.x). Prints nothing on success; on failure says why,
# exits with 3 when a port is taken, 4 when the installed Dovecot is not a supported version, and 1
# otherwise, and stops whatever it had started.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
fail() {
  printf 'mail-server: %s\n' "$*" >&2
  exit 1
}
# A distinct status, so that a caller that picked free ports can pick others and try again.
port_taken() {
  printf 'mail-server: %s\n' "$*" >&2
  exit 3
}

stack=${1:-${MAIL_STACK_DIR:-}}
[ -n "$stack" ] || fail "usage: up.sh STACK_DIR (or set MAIL_STACK_DIR)"
[ "$(id -u)" = 0 ] || fail "up.sh must run as root: the Dovecot and Postfix masters start as root and drop privileges per service"

declare -A port=(
  [imap]=${MAIL_IMAP_PORT:-1143} [imaps]=${MAIL_IMAPS_PORT:-1993}
  [pop3]=${MAIL_POP3_PORT:-1110} [pop3s]=${MAIL_POP3S_PORT:-1995}
  [submission]=${MAIL_SUBMISSION_PORT:-1587} [submissions]=${MAIL_SUBMISSIONS_PORT:-1465}
  [auth]=${MAIL_AUTH_PORT:-12345} [lmtp]=${MAIL_LMTP_PORT:-1024}
)
seen=" "
for name in "${!port[@]}"; do
  p=${port[$name]}
  [[ $p =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || fail "port for $name is not a port number: '$p'"
  [[ $seen != *" $p "* ]] || fail "port $p is given for two services"
  seen="$seen$p "
done

tenants=${MAIL_TENANTS:-}
tenants=${tenants//,/ }
issuers=""
for tenant in $tenants; do
  # Tenant ids end up inside config files: allow only what a GUID or a domain name contains.
  [[ $tenant =~ ^[A-Za-z0-9._-]+$ ]] || fail "tenant id '$tenant' has characters other than letters, digits, '.', '_' and '-'"
  issuers="$issuers${issuers:+ }https://sts.windows.net/$tenant/"
done
[ -n "$issuers" ] || fail "no tenants: set MAIL_TENANTS to the tenant ids whose tokens the servers accept"

mechanisms=""
for mechanism in ${MAIL_AUTH_MECHANISMS:-xoauth2 oauthbearer}; do
  mechanism=$(printf '%s' "$mechanism" | tr 'A-Z' 'a-z')
  case $mechanism in
    xoauth2 | oauthbearer) mechanisms="$mechanisms${mechanisms:+ }$mechanism" ;;
    *) fail "unsupported SASL mechanism '$mechanism' (use xoauth2 and/or oauthbearer)" ;;
  esac
done
[ -n "$mechanisms" ] || fail "MAIL_AUTH_MECHANISMS is empty"

if [ -n "${MAIL_TLS_CERT:-}" ] || [ -n "${MAIL_TLS_KEY:-}" ]; then
  [ -r "${MAIL_TLS_CERT:-}" ] && [ -r "${MAIL_TLS_KEY:-}" ] || fail "MAIL_TLS_CERT and MAIL_TLS_KEY must both name readable PEM files"
  [ -z "${MAIL_TLS_CA:-}" ] || [ -r "$MAIL_TLS_CA" ] || fail "MAIL_TLS_CA '$MAIL_TLS_CA' is not readable"
elif [ -n "${MAIL_TLS_CA:-}" ]; then
  fail "MAIL_TLS_CA is only used together with MAIL_TLS_CERT and MAIL_TLS_KEY"
fi

mkdir -p "$stack"
stack=$(cd "$stack" && pwd -P)
# The path is written into config files, and Dovecot's sockets live under it: unix socket paths
# are limited to 108 bytes, and the longest socket name Dovecot uses is 23 characters.
[[ $stack =~ ^/[A-Za-z0-9._/+-]+$ ]] || fail "stack directory '$stack' has characters other than letters, digits and ./_+-"
[ "${#stack}" -le 64 ] || fail "stack directory '$stack' is longer than 64 characters, too long for Dovecot's unix sockets"

# A previous run of this stack may still be up: a second run restarts it.
if [ -e "$stack/run/dovecot.pid" ] || [ -e "$stack/run/postfix.pid" ]; then
  "$here/down.sh" "$stack"
fi

# --- packages ---------------------------------------------------------------------------------
mkdir -p "$stack/log"
"$here/install.sh" "$stack/log/install.log"
# Before anything is rendered for them: a Dovecot the configuration does not fit fails here with its
# version and what is supported (status 4), not later as an invalid configuration.
"$here/check-versions.sh"

# --- directories --------------------------------------------------------------------------------
# Dovecot's login and auth processes (dovenull, dovecot), Postfix's daemons (postfix) and the mail
# processes (uid 5000) must all reach files below the stack directory.
chmod 755 "$stack"
mkdir -p "$stack/etc" "$stack/tls" "$stack/run/dovecot" "$stack/state" "$stack/log" "$stack/mail" \
  "$stack/postfix/etc" "$stack/postfix/spool" "$stack/postfix/data"
chmod 755 "$stack/etc" "$stack/tls" "$stack/run" "$stack/log" "$stack/postfix"
chown 5000:5000 "$stack/mail"
chown postfix "$stack/postfix/data"
for user in dovenull dovecot postfix; do
  runuser -u "$user" -- test -x "$stack/etc" ||
    fail "user '$user' cannot reach $stack: every parent directory of the stack needs o+x (mkdtemp makes 0700 directories)"
done

# --- TLS ---------------------------------------------------------------------------------------
tls=$stack/tls
if [ -n "${MAIL_TLS_CERT:-}" ]; then
  install -m 644 "$MAIL_TLS_CERT" "$tls/server.pem"
  install -m 600 "$MAIL_TLS_KEY" "$tls/server.key"
  # Without a CA the certificate itself is the trust anchor clients need (a self-signed one).
  install -m 644 "${MAIL_TLS_CA:-$MAIL_TLS_CERT}" "$tls/ca.pem"
  rm -f "$tls/ca.key" "$tls/generated"
elif [ ! -e "$tls/generated" ]; then
  # Kept across restarts, so clients that trust ca.pem keep trusting the stack.
  openssl_log="$stack/log/openssl.log"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" -subj "/CN=m365-connector sandbox mail CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" &&
      printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext" &&
      openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$tls/server.ext" -out "$tls/server.pem"
  } >"$openssl_log" 2>&1 || fail "openssl could not make the stack's TLS certificates:
$(tail -n 10 "$openssl_log")"
  chmod 600 "$tls/ca.key" "$tls/server.key"
  chmod 644 "$tls/ca.pem" "$tls/server.pem"
  rm -f "$tls/server.csr" "$tls/server.ext"
  touch "$tls/generated"
fi

# --- configuration ------------------------------------------------------------------------------
render() {
  sed -e "s|@STACK@|$stack|g" -e "s|@ISSUERS@|$issuers|g" -e "s|@AUTH_MECHS@|$mechanisms|g" \
    -e "s|@IMAP_PORT@|${port[imap]}|g" -e "s|@IMAPS_PORT@|${port[imaps]}|g" \
    -e "s|@POP3_PORT@|${port[pop3]}|g" -e "s|@POP3S_PORT@|${port[pop3s]}|g" \
    -e "s|@SMTP_PORT@|${port[submission]}|g" -e "s|@SMTPS_PORT@|${port[submissions]}|g" \
    -e "s|@AUTH_PORT@|${port[auth]}|g" -e "s|@LMTP_PORT@|${port[lmtp]}|g" \
    "$here/$1" >"$2.tmp"
  chmod 644 "$2.tmp"
  mv "$2.tmp" "$2"
}
render dovecot.conf.in "$stack/etc/dovecot.conf"
render oauth2-delegated.conf.ext.in "$stack/etc/oauth2-delegated.conf.ext"
render oauth2-app.conf.ext.in "$stack/etc/oauth2-app.conf.ext"
render postfix-main.cf.in "$stack/postfix/etc/main.cf"
render postfix-master.cf.in "$stack/postfix/etc/master.cf"
# The signing keys are data, not configuration (index.ts writes them): keep them across restarts.
keys=$stack/etc/oauth2-keys.dict
[ -e "$keys" ] || : >"$keys"
chmod 644 "$keys"

doveconf -c "$stack/etc/dovecot.conf" -n >/dev/null 2>"$stack/log/doveconf.log" ||
  fail "the Dovecot configuration is invalid: $(tail -n 5 "$stack/log/doveconf.log")"
# A main.cf written moments ago makes `postfix check` take two seconds longer; its age does not matter.
touch -d '2000-01-01 00:00' "$stack/postfix/etc/main.cf" "$stack/postfix/etc/master.cf"
postfix -c "$stack/postfix/etc" check >"$stack/log/postfix-check.log" 2>&1 ||
  fail "the Postfix configuration is invalid: $(tail -n 5 "$stack/log/postfix-check.log")"

# --- start ---------------------------------------------------------------------------------------
for name in "${!port[@]}"; do
  if (: <>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null; then
    port_taken "port ${port[$name]} ($name) is already in use on 127.0.0.1"
  fi
done

started=false
cleanup() {
  if [ "$started" = true ]; then "$here/down.sh" "$stack" || true; fi
}
trap cleanup EXIT

started=true
log_tail() {
  tail -n 8 "$@" 2>/dev/null | grep -v '^==>' | grep -v '^$' || true
}
# setsid: the servers must outlive the caller's process group (a test runner, a terminal).
setsid dovecot -F -c "$stack/etc/dovecot.conf" >>"$stack/log/dovecot.stdout" 2>&1 </dev/null &
echo $! >"$stack/run/dovecot.pid"
# check just ran, so start-fg may skip its own.
touch "$stack/postfix/spool/quick-start"
setsid postfix -c "$stack/postfix/etc" start-fg >>"$stack/log/postfix.stdout" 2>&1 </dev/null &
echo $! >"$stack/run/postfix.pid"

deadline=$((SECONDS + 20))
waiting="${!port[*]}"
while [ -n "$waiting" ]; do
  for server in dovecot postfix; do
    kill -0 "$(cat "$stack/run/$server.pid")" 2>/dev/null && continue
    why=$(log_tail "$stack/log/$server.stdout" "$stack/log/$server.log")
    # Someone may have taken a port between the check above and the server's bind().
    case $why in *"Address already in use"*) port_taken "$server failed to start: $why" ;; esac
    fail "$server failed to start: $why"
  done
  still=""
  for name in $waiting; do
    (: <>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null || still="$still $name"
  done
  waiting=${still# }
  [ -z "$waiting" ] && break
  [ "$SECONDS" -lt "$deadline" ] ||
    fail "timed out after 20 s waiting for ports: $waiting. Last log lines:
$(log_tail "$stack/log/dovecot.log" "$stack/log/postfix.log")"
  sleep 0.05
done
started=false
