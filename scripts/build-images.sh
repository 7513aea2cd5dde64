#!/usr/bin/env bash
# Build cleanroom's local images into the rootless user's storage. Cached: an image
# that already exists is skipped (FORCE=1 rebuilds). No registry is needed.
#
#   localhost/cleanroom/busybox:latest     busybox-static, a few MB, PATH set
#   localhost/cleanroom/services:bookworm  Debian minbase + PostgreSQL 15 + Redis + python3
#   localhost/cleanroom/python:bookworm    Debian minbase + python3 + pytest (a user's own suite in a sandbox)
#
# Run as root (it calls mmdebstrap and imports as CLEANROOM_USER), or as a user
# whose rootless Podman works (then it imports into that user's storage and needs
# mmdebstrap to work unprivileged, which it does in --mode=unshare).
set -euo pipefail

CR_USER=${CLEANROOM_USER:-cleanroom}
BUSYBOX_IMAGE=localhost/cleanroom/busybox:latest
SERVICES_IMAGE=localhost/cleanroom/services:bookworm
PYTHON_IMAGE=localhost/cleanroom/python:bookworm
SUITE=${CLEANROOM_SUITE:-bookworm}
PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

log() { printf '[build-images] %s\n' "$*"; }
die() { printf '[build-images] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  CR_UID=$(id -u "$CR_USER") || die "user $CR_USER missing: run scripts/setup-host.sh first"
  CR_HOME=$(getent passwd "$CR_USER" | cut -d: -f6)
  as_user() { (cd / && runuser -u "$CR_USER" -- env HOME="$CR_HOME" XDG_RUNTIME_DIR="/run/user/$CR_UID" "$@"); }
  MMDEBSTRAP_MODE=root
else
  as_user() { "$@"; }
  MMDEBSTRAP_MODE=unshare
fi

have_image() { as_user podman image exists "$1"; }

WORK=$(mktemp -d /tmp/cleanroom-images.XXXXXX)
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

build_busybox() {
  local bb=/bin/busybox
  [ -x "$bb" ] && "$bb" --list >/dev/null 2>&1 || die "busybox-static missing: apt-get install busybox-static"
  file -L "$bb" 2>/dev/null | grep -q "dynamically" && die "$bb is not static; install busybox-static"
  local root="$WORK/busybox"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,etc,proc,sys,dev,root,var/tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  cp "$bb" "$root/bin/busybox"
  for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -sf /bin/busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$WORK/busybox.tar" .
  chmod 0644 "$WORK/busybox.tar"
  as_user podman import --quiet --change "ENV $PATH_ENV" --change 'CMD ["/bin/sh"]' \
      "$WORK/busybox.tar" "$BUSYBOX_IMAGE" >/dev/null
}

build_services() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
  local tarball="$WORK/services.tar"
  # No docs, man pages or locales: they are most of the size and no test reads them.
  mmdebstrap --mode="$MMDEBSTRAP_MODE" --variant=minbase --quiet \
    --include=postgresql-15,redis-server,python3-minimal,ca-certificates,procps \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='mkdir -p "$1/var/run/postgresql" && chmod 2777 "$1/var/run/postgresql"' \
    --customize-hook='rm -rf "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*' \
    "$SUITE" "$tarball"
  chmod 0644 "$tarball"
  as_user podman import --quiet \
      --change "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["/bin/bash"]' \
      "$tarball" "$SERVICES_IMAGE" >/dev/null
}

build_python() {
  command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
  local tarball="$WORK/python.tar"
  mmdebstrap --mode="$MMDEBSTRAP_MODE" --variant=minbase --quiet \
    --include=python3,python3-pytest,make \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*' \
    "$SUITE" "$tarball"
  chmod 0644 "$tarball"
  # No bytecode written next to a read-only checkout; pytest's cache off for the same reason.
  as_user podman import --quiet \
      --change "ENV $PATH_ENV" --change 'ENV LANG=C.UTF-8' --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
      --change 'CMD ["/usr/bin/python3"]' \
      "$tarball" "$PYTHON_IMAGE" >/dev/null
}

want=${*:-busybox services python}
for name in $want; do
  case $name in
    busybox)  img=$BUSYBOX_IMAGE;  fn=build_busybox ;;
    services) img=$SERVICES_IMAGE; fn=build_services ;;
    python)   img=$PYTHON_IMAGE;   fn=build_python ;;
    *) die "unknown image '$name' (known: busybox services python)" ;;
  esac
  if [ "${FORCE:-0}" != 1 ] && have_image "$img"; then
    log "$img present (FORCE=1 rebuilds)"
    continue
  fi
  log "building $img"
  start=$(date +%s)
  "$fn"
  log "built $img in $(( $(date +%s) - start )) s"
done
