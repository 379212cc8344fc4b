#!/usr/bin/env bash
# Make sure a Docker engine answers, for `make image` and the container tier
# (tests/container). Installs Debian's `docker.io` when docker or dockerd is missing, and
# starts dockerd in the background when no engine answers (a fresh CI machine often has
# the docker CLI and no daemon), with its log in $DOCKERD_LOG; both need root. Prints what
# it found. Exits non-zero, saying why, when no engine can be had: the Makefile then skips
# the image build and the container tier skips with that reason.
set -euo pipefail
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/trigger-operator-dockerd.log}
SOCKET=/var/run/docker.sock

engine_answers() {
  command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1
}

if engine_answers; then
  echo "Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  # docker.io brings dockerd, containerd and runc (and a docker CLI, when none is there).
  apt_install "the Docker engine (dockerd)" docker.io
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "No Docker engine answers this user: dockerd is not running (starting it needs" >&2
  echo "root: sudo systemctl start docker), or its socket is not open to this user (add" >&2
  echo "the user to the docker group)." >&2
  exit 1
fi

if [ ! -S "$SOCKET" ] || ! engine_answers; then
  echo "Starting dockerd in the background (log: $DOCKERD_LOG)..."
  # setsid: the daemon outlives this script and the make that ran it, and a Ctrl-C in
  # the terminal does not reach it.
  setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    engine_answers && break
    sleep 0.5
  done
fi

if engine_answers; then
  echo "Docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
  exit 0
fi
echo "dockerd did not answer within 30 s; the end of its log ($DOCKERD_LOG):" >&2
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
