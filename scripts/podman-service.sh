#!/usr/bin/env bash
# Start, stop or check cleanroom's Podman API service, without touching running containers.
# As root it acts for CLEANROOM_USER (default cleanroom); as any other user, for itself.
# setup-host.sh starts the service with it; the tests restart a service of their own with it.
#
#   podman-service.sh start    start the service unless it already answers; the PID file gets
#                              the PID of the process that serves the socket (read from /proc),
#                              never a wrapper (rootless podman re-executes itself inside its user
#                              namespace: the first podman only waits for the second)
#   podman-service.sh stop     stop it by that PID: TERM, KILL after 10 s
#   podman-service.sh status   exit 0 if the recorded PID serves the socket and it answers
#   podman-service.sh pid      print the PID that serves the socket now
#
# Containers outlive the service: they run under conmon, in the user namespace the pause
# process (or any live conmon) keeps. `podman system migrate` stops every one of them, so it
# runs only when the namespace really must be rebuilt: set-up just changed the user's
# subuid/subgid ranges (CLEANROOM_USERNS_CHANGED=1), or Podman itself refuses to run and asks
# for it. A dead service alone never needs it.
#
# Env: PODMAN_SOCK (default $XDG_RUNTIME_DIR/podman/podman.sock), PODMAN_PIDFILE (default
# /run/cleanroom/podman-service.pid), PODMAN_SERVICE_LOG (default
# ~/.local/state/cleanroom/podman-service.log), CLEANROOM_USERNS_CHANGED.
set -euo pipefail

cmd=${1:-}
case "$cmd" in start|stop|status|pid) ;; *) echo "usage: $0 start|stop|status|pid" >&2; exit 2 ;; esac
log() { printf '[podman-service] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  # Root prepares what the user cannot (its runtime dir, a PID file it may rewrite: the engine
  # restarts the service as the user), then runs this same script as the user.
  CR_USER=${CLEANROOM_USER:-cleanroom}
  CR_UID=$(id -u "$CR_USER")
  CR_GID=$(id -g "$CR_USER")
  CR_HOME=$(getent passwd "$CR_USER" | cut -d: -f6)
  RUNTIME_DIR=/run/user/$CR_UID
  PIDFILE=${PODMAN_PIDFILE:-/run/cleanroom/podman-service.pid}
  for d in "$RUNTIME_DIR" "$RUNTIME_DIR/podman"; do
    [ -d "$d" ] || install -d -m 0700 -o "$CR_USER" -g "$CR_GID" "$d"
  done
  [ -d "$(dirname "$PIDFILE")" ] || install -d -m 0755 "$(dirname "$PIDFILE")"
  [ -e "$PIDFILE" ] || : > "$PIDFILE"
  chown "$CR_USER:$CR_GID" "$PIDFILE"
  chmod 0644 "$PIDFILE"
  # Earlier set-ups opened the log as root; the user must be able to append to it.
  LOG_DEFAULT=$CR_HOME/.local/state/cleanroom/podman-service.log
  runuser -u "$CR_USER" -- mkdir -p "$(dirname "$LOG_DEFAULT")"
  [ -e "$LOG_DEFAULT" ] && chown "$CR_USER:$CR_GID" "$LOG_DEFAULT"
  # The script is fed on stdin: its checkout may not be readable by the user.
  exec runuser -u "$CR_USER" -- env -i HOME="$CR_HOME" USER="$CR_USER" LOGNAME="$CR_USER" \
    XDG_RUNTIME_DIR="$RUNTIME_DIR" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PODMAN_SOCK="${PODMAN_SOCK:-$RUNTIME_DIR/podman/podman.sock}" PODMAN_PIDFILE="$PIDFILE" \
    ${PODMAN_SERVICE_LOG:+PODMAN_SERVICE_LOG="$PODMAN_SERVICE_LOG"} \
    CLEANROOM_USERNS_CHANGED="${CLEANROOM_USERNS_CHANGED:-0}" bash -s -- "$cmd" < "${BASH_SOURCE[0]}"
fi

SOCK=${PODMAN_SOCK:-${XDG_RUNTIME_DIR:?XDG_RUNTIME_DIR is not set}/podman/podman.sock}
PIDFILE=${PODMAN_PIDFILE:-/run/cleanroom/podman-service.pid}
LOG=${PODMAN_SERVICE_LOG:-$HOME/.local/state/cleanroom/podman-service.log}

serving_pid() {
  # The listening socket's inode (flag __SO_ACCEPTCON), then the process holding it.
  local ino fd p
  ino=$(awk -v s="$SOCK" '$8 == s && $4 == "00010000" { print $7; exit }' /proc/net/unix)
  [ -n "$ino" ] || return 1
  for fd in /proc/[0-9]*/fd/*; do
    if [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$ino]" ]; then
      p=${fd#/proc/}
      echo "${p%%/*}"
      return 0
    fi
  done
  return 1
}

answers() { curl -s --max-time 3 --unix-socket "$SOCK" http://d/_ping 2>/dev/null | grep -q OK; }

recorded_pid() { if [ -r "$PIDFILE" ]; then tr -dc '0-9' < "$PIDFILE"; fi; }

is_up() {
  local pid now
  pid=$(recorded_pid)
  now=$(serving_pid) || return 1
  [ -n "$pid" ] && [ "$pid" = "$now" ] && answers
}

write_pid() {
  [ -w "$PIDFILE" ] || [ -w "$(dirname "$PIDFILE")" ] || die "cannot write $PIDFILE (run scripts/setup-host.sh as root)"
  echo "$1" > "$PIDFILE"
}

needs_migrate() {
  if [ "${CLEANROOM_USERNS_CHANGED:-0}" = 1 ]; then
    log "subuid/subgid ranges changed: the user namespace must be rebuilt"
    return 0
  fi
  local out
  if out=$(timeout 60 podman info --format '{{.Host.Security.Rootless}}' 2>&1); then
    return 1
  fi
  # e.g. "invalid internal status, try resetting the pause process with podman system migrate"
  if grep -qi "system migrate" <<<"$out"; then
    log "podman asks for a migrate: $(tail -n1 <<<"$out")"
    return 0
  fi
  die "podman does not run for $(id -un): $(tail -n1 <<<"$out")"
}

case "$cmd" in
  pid)
    serving_pid || { log "nothing serves $SOCK"; exit 1; }
    ;;
  status)
    if is_up; then echo "running: pid $(recorded_pid) serves $SOCK"; else echo "not running on $SOCK"; exit 1; fi
    ;;
  start)
    if is_up; then
      log "already running (pid $(recorded_pid)) on $SOCK"
      exit 0
    fi
    if now=$(serving_pid) && answers; then
      write_pid "$now"
      log "already running (pid $now) on $SOCK; PID file corrected"
      exit 0
    fi
    rm -f "$SOCK"  # a dead service leaves its socket; podman refuses to bind over it
    if needs_migrate; then
      running=$(podman ps -q 2>/dev/null | wc -l || true)
      log "running podman system migrate (stops ${running:-0} running container(s))"
      podman system migrate >/dev/null
    fi
    mkdir -p "$(dirname "$LOG")" "$(dirname "$SOCK")"
    log "starting the Podman API service on $SOCK"
    # From /: conmon inherits the service's working directory, and once that directory is
    # gone (a removed checkout) every container start fails ("Failed to get working directory").
    (cd / && exec setsid podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 < /dev/null) &
    for _ in $(seq 1 150); do
      answers && now=$(serving_pid) && break
      sleep 0.1
    done
    [ -n "${now:-}" ] || die "the Podman API service did not answer on $SOCK; see $LOG"
    write_pid "$now"
    log "Podman API service up (pid $now) on $SOCK"
    ;;
  stop)
    pid=$(recorded_pid)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      log "not running (no live PID in $PIDFILE)"
      exit 0
    fi
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = podman ] || die "PID $pid in $PIDFILE is not podman; not stopping it"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored TERM; killing it"; kill -KILL "$pid"; fi
    : > "$PIDFILE"
    log "stopped (pid $pid)"
    ;;
esac
