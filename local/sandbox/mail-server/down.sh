#!/usr/bin/env bash
# Stops the Dovecot and Postfix that up.sh started for a stack directory.
#
#   down.sh STACK_DIR        (or MAIL_STACK_DIR=...)
#
# Fast on purpose (tests run it at every teardown): each server's whole process group gets SIGTERM
# at once, because a Dovecot master signalled alone waits seconds for its login processes, and both
# are waited for together rather than through `postfix stop`, which polls in one-second steps.
# Whatever is still alive after 10 s gets SIGKILL.
set -uo pipefail

stack=${1:-${MAIL_STACK_DIR:-}}
[ -n "$stack" ] || {
  echo "usage: down.sh STACK_DIR (or set MAIL_STACK_DIR)" >&2
  exit 1
}
[ -d "$stack" ] || exit 0

# Fields of /proc/PID/stat after "PID (comm) ": state ppid pgrp ...
stat_fields() {
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  echo "${line##*) }"
}
process_name() { cat "/proc/$1/comm" 2>/dev/null; }
parent_of() {
  local fields
  fields=$(stat_fields "$1") || return 1
  set -- $fields
  echo "$2"
}

# Only a process that is still the one we started may be signalled: a pid file can outlive its
# process, and the pid may since belong to something else. Each of these leads a process group
# that holds its children: up.sh started them with setsid, and Postfix's master makes its own.
leaders=()
dovecot_pid=$(cat "$stack/run/dovecot.pid" 2>/dev/null)
if [ -n "$dovecot_pid" ] && [ "$(process_name "$dovecot_pid")" = dovecot ]; then
  leaders+=("$dovecot_pid")
fi
# `postfix start-fg` runs postfix-script, whose child is the master; the master records its pid.
postfix_pid=$(cat "$stack/run/postfix.pid" 2>/dev/null)
if [ -n "$postfix_pid" ] && [ "$(process_name "$postfix_pid")" = postfix-script ]; then
  leaders+=("$postfix_pid")
  master_pid=$(tr -d ' ' <"$stack/postfix/spool/pid/master.pid" 2>/dev/null)
  if [ -n "$master_pid" ] && [ "$(parent_of "$master_pid")" = "$postfix_pid" ]; then
    leaders+=("$master_pid")
  fi
fi

# Prints the groups among "${leaders[@]}" that still have a live (not zombie) member. Zombies are
# left for init to reap and hold no ports or files.
live_groups() {
  local stat line group
  for stat in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$stat" || continue
    set -- ${line##*) }
    [ "$1" != Z ] || continue
    for group in "${leaders[@]}"; do
      [ "$3" = "$group" ] && echo "$group"
    done
  done | sort -u
}

wait_for_groups() {
  local deadline=$((SECONDS + $1))
  while [ -n "$(live_groups)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

if [ ${#leaders[@]} -gt 0 ]; then
  for group in "${leaders[@]}"; do kill -TERM -- "-$group" 2>/dev/null; done
  if ! wait_for_groups 10; then
    for group in $(live_groups); do kill -KILL -- "-$group" 2>/dev/null; done
    wait_for_groups 5 || echo "mail-server: processes of $stack survived SIGKILL: groups $(live_groups)" >&2
  fi
fi
rm -f "$stack/run/dovecot.pid" "$stack/run/postfix.pid"
exit 0
