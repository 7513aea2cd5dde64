#!/usr/bin/env bash
# Prepare a Debian 12 host for cleanroom's rootless path. Run as root; idempotent.
#
# What it does (see ../shared/HOST.md for why each step exists):
#   1. Debian packages: podman, runc, slirp4netns, uidmap, mmdebstrap, busybox-static ...
#   2. an unprivileged user (default: cleanroom) with subuid/subgid ranges
#   3. runc as the OCI runtime (crun refuses cgroup v1 hybrid hosts), cgroupfs manager
#   4. /dev/net/tun usable by that user (slirp4netns needs it)
#   5. a delegated cgroup v1 subtree cleanroom.<user> under memory, pids, cpu, cpuacct
#   6. a Python venv the user can read, with cleanroom's dependencies
#   7. the Podman API service, started as that user on a known socket, PID kept in a file
#      (scripts/podman-service.sh: the PID that serves the socket; running containers survive)
#
# Environment knobs: CLEANROOM_USER (default cleanroom), CLEANROOM_VENV (default
# /opt/cleanroom/venv), CLEANROOM_SKIP_APT=1 to skip the package step.
set -euo pipefail

CR_USER=${CLEANROOM_USER:-cleanroom}
VENV=${CLEANROOM_VENV:-/opt/cleanroom/venv}
STATE_DIR=/run/cleanroom
CONF_DIR=/etc/cleanroom
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

log() { printf '[setup-host] %s\n' "$*"; }
die() { printf '[setup-host] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and delegates cgroups); as a normal user with rootless Podman working, skip set-up"

# --- 1. packages -------------------------------------------------------------------
# gcc + libc6-dev: the security tests build a static seccomp probe (tests/security/seccomp_probe.c).
# libfaketime: the frozen clock of deterministic execution (deterministic_clock), mounted into sandboxes.
# chromium: the HTML run report is checked in a real headless browser (tests/integration/test_run_report.py).
# (No catatonit: sessions pause in cleanroom-helper's own agent; Podman's recommends may still bring it.)
# docker-registry: the image tests' registry on 127.0.0.1 (started and stopped by the test).
PKGS=(podman runc slirp4netns uidmap fuse-overlayfs mmdebstrap busybox-static docker-registry
      python3-venv python3-dev iproute2 procps curl file gcc libc6-dev openssl libfaketime chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${CLEANROOM_SKIP_APT:-0}" != 1 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # With recommends, as HOST.md measured it: podman relies on several of them.
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "packages present"
fi
# docker-registry is only a binary the image tests start on 127.0.0.1 themselves; the
# package's own service would listen on every interface, so it stays off.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# --- 2. the unprivileged user --------------------------------------------------------
if ! id "$CR_USER" >/dev/null 2>&1; then
  log "creating user $CR_USER"
  useradd -m -s /bin/bash "$CR_USER"
fi
CR_UID=$(id -u "$CR_USER")
CR_GID=$(id -g "$CR_USER")
CR_HOME=$(getent passwd "$CR_USER" | cut -d: -f6)
# useradd adds ranges on Debian, but a user made some other way may lack them. A change
# here means an existing user namespace has the wrong mapping: the service start below
# then runs `podman system migrate` (which stops running containers) — and only then.
USERNS_CHANGED=0
for f in /etc/subuid /etc/subgid; do
  if ! grep -q "^$CR_USER:" "$f" 2>/dev/null; then
    log "adding $f range for $CR_USER"
    usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$CR_USER"
    USERNS_CHANGED=1
  fi
done

# --- 3. runtime configuration for the user ------------------------------------------
CONF="$CR_HOME/.config/containers/containers.conf"
install -d -o "$CR_USER" -g "$CR_GID" "$CR_HOME/.config" "$CR_HOME/.config/containers"
cat > "$CONF.tmp" <<EOF
# Written by cleanroom scripts/setup-host.sh.
# crun refuses cgroup v1 hybrid hosts; runc works. There is no systemd user session,
# so cgroups are managed through cgroupfs and events go to a file.
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[containers]
log_driver = "k8s-file"
EOF
if ! cmp -s "$CONF.tmp" "$CONF" 2>/dev/null; then mv "$CONF.tmp" "$CONF"; else rm -f "$CONF.tmp"; fi
chown "$CR_USER:$CR_GID" "$CONF"
# Without this, rootless Podman 4.3 falls back to vfs here (/dev/fuse is 0600), which
# copies the whole image for every container: seconds per PostgreSQL sandbox. The
# kernel's native rootless overlay works and shares layers.
STORAGE_CONF="$CR_HOME/.config/containers/storage.conf"
if ! grep -q '^driver = "overlay"' "$STORAGE_CONF" 2>/dev/null; then
  printf '# Written by cleanroom scripts/setup-host.sh.\n[storage]\ndriver = "overlay"\n' > "$STORAGE_CONF"
  chown "$CR_USER:$CR_GID" "$STORAGE_CONF"
fi

# --- 4. /dev/net/tun ----------------------------------------------------------------
if [ -e /dev/net/tun ]; then
  chmod 0666 /dev/net/tun
else
  log "warning: /dev/net/tun is missing; only --network none sandboxes will work"
fi

# --- 5. delegated cgroup subtree ---------------------------------------------------
if [ -d /sys/fs/cgroup/memory ]; then
  for c in memory pids cpu cpuacct blkio; do
    base=/sys/fs/cgroup/$c
    [ -d "$base" ] || continue
    d="$base/cleanroom.$CR_USER"
    mkdir -p "$d"
    # Delegation on v1: the user owns the directory and the files it writes into.
    chown "$CR_USER:$CR_GID" "$d"
    for f in cgroup.procs tasks cgroup.clone_children notify_on_release; do
      [ -e "$d/$f" ] && chown "$CR_USER:$CR_GID" "$d/$f"
    done
    for f in "$d"/"$c".*; do [ -f "$f" ] && chown "$CR_USER:$CR_GID" "$f"; done
  done
  # memory.use_hierarchy must be on for limits to apply to children.
  [ -w /sys/fs/cgroup/memory/cleanroom.$CR_USER/memory.use_hierarchy ] && \
    echo 1 > /sys/fs/cgroup/memory/cleanroom.$CR_USER/memory.use_hierarchy 2>/dev/null || true
  log "cgroup v1 subtree cleanroom.$CR_USER delegated to $CR_USER"
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  d=/sys/fs/cgroup/cleanroom.$CR_USER
  mkdir -p "$d"
  for ctl in memory pids cpu io; do
    grep -qw "$ctl" /sys/fs/cgroup/cgroup.controllers && echo "+$ctl" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
  done
  chown -R "$CR_USER:$CR_GID" "$d"
  log "cgroup v2 subtree $d delegated to $CR_USER"
fi

# --- 6. python venv readable by the user -------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  install -d -m 0755 "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
# Reinstall only when pyproject.toml or the source location changed.
stamp="$VENV/.cleanroom-stamp"
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $REPO"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing cleanroom (editable) from $REPO into $VENV"
  if ! "$VENV/bin/pip" install -q -e "$REPO[test]" >/tmp/cleanroom-pip.log 2>&1; then
    cat /tmp/cleanroom-pip.log >&2; die "pip install of cleanroom failed (log above)"
  fi
  echo "$want" > "$stamp"
fi
chmod -R a+rX "$VENV"

# --- 7. Podman API service -------------------------------------------------------------
RUNTIME_DIR=/run/user/$CR_UID
install -d -m 0700 -o "$CR_USER" -g "$CR_GID" "$RUNTIME_DIR" "$RUNTIME_DIR/podman"
install -d -m 0755 "$STATE_DIR" "$CONF_DIR"
SOCK="$RUNTIME_DIR/podman/podman.sock"
PIDFILE="$STATE_DIR/podman-service.pid"
as_user() { runuser -u "$CR_USER" -- env HOME="$CR_HOME" XDG_RUNTIME_DIR="$RUNTIME_DIR" \
              PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
podman_service() { CLEANROOM_USER="$CR_USER" CLEANROOM_USERNS_CHANGED="$USERNS_CHANGED" PODMAN_SOCK="$SOCK" \
              PODMAN_PIDFILE="$PIDFILE" bash "$HERE/podman-service.sh" "$@"; }

# A store made earlier with vfs cannot be opened with overlay: stop our service (by
# its recorded PID), reset the store, and let build-images.sh import the images again.
if [ -d "$CR_HOME/.local/share/containers/storage/vfs" ]; then
  log "migrating $CR_USER's container storage from vfs to overlay (images will be re-imported)"
  podman_service stop || true
  as_user podman --storage-driver vfs system reset -f >/dev/null 2>&1 || true
  rm -rf "$CR_HOME/.local/share/containers/storage/vfs"*
fi

# Start it unless it answers. Running containers (singletons) survive: no migrate unless the
# ranges above just changed; the PID file gets the PID that serves the socket (see the script).
podman_service start || die "the Podman API service did not start on $SOCK; see $CR_HOME/.local/state/cleanroom/podman-service.log"
echo "unix://$SOCK" > "$CONF_DIR/podman-socket"
chmod 0644 "$CONF_DIR/podman-socket"
log "done: user=$CR_USER socket=unix://$SOCK venv=$VENV"
