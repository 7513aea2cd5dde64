#!/usr/bin/env bash
# Run a command the way cleanroom is meant to run: as the unprivileged user, against
# its rootless Podman, from a checkout that user can read.
#
# As root: set up the host (idempotent), build missing images, then run CMD as
# $CLEANROOM_USER. If this checkout is not readable by that user (e.g. under /root),
# it is mirrored to /var/tmp/cleanroom-work/main first (with ../shared beside it).
# As any other user: assume rootless Podman already works and just run CMD.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CR_USER=${CLEANROOM_USER:-cleanroom}
VENV=${CLEANROOM_VENV:-/opt/cleanroom/venv}

if [ "$(id -u)" -ne 0 ]; then
  cd "$REPO"
  exec "$@"
fi

SRC=$REPO
if ! id "$CR_USER" >/dev/null 2>&1 || ! runuser -u "$CR_USER" -- test -r "$REPO/pyproject.toml" 2>/dev/null \
   || ! runuser -u "$CR_USER" -- test -x "$REPO/sandbox" 2>/dev/null; then
  SRC=/var/tmp/cleanroom-work/main
  echo "[as-cleanroom] $REPO is not readable by $CR_USER; mirroring to $SRC"
  mkdir -p "$SRC"
  cp -a "$REPO/." "$SRC/"
  [ -d "$REPO/../shared" ] && { rm -rf /var/tmp/cleanroom-work/shared; cp -a "$REPO/../shared" /var/tmp/cleanroom-work/shared; }
  chmod -R a+rX /var/tmp/cleanroom-work
  chmod a+rx /var/tmp /var/tmp/cleanroom-work
fi

bash "$SRC/scripts/setup-host.sh"
bash "$SRC/scripts/build-images.sh"

CR_UID=$(id -u "$CR_USER")
CR_HOME=$(getent passwd "$CR_USER" | cut -d: -f6)
cd "$SRC"
exec runuser -u "$CR_USER" -- env -i \
  HOME="$CR_HOME" USER="$CR_USER" LOGNAME="$CR_USER" \
  XDG_RUNTIME_DIR="/run/user/$CR_UID" \
  PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 TERM="${TERM:-dumb}" \
  ${CI:+CI="$CI"} ${CLEANROOM_ENV:+CLEANROOM_ENV="$CLEANROOM_ENV"} \
  "$@"
