#!/usr/bin/env bash
# `make image`: build the operator image from the Dockerfile with no network access inside
# the build. Everything the build installs is fetched here, on the host, by the host's pip
# (which trusts whatever CA the host trusts; a fresh container would not), into
# build/image/ (git-ignored), and checked against the hashes of the lock files:
#   build/image/wheels/  requirements/runtime.txt and requirements/installer.txt (pip);
#   build/image/dist/    the operator's own wheel.
#
# Settings (environment):
#   IMAGE       the tag to build (default trigger-operator:dev)
#   BASE_IMAGE  the base (default python:3.11-slim). Left unset, when python:3.11-slim is
#               neither present nor pullable, the Debian stand-in of
#               scripts/make-base-image.sh (trigger-operator-base:bookworm) is made once
#               and used.
#   PIP         the host's pip (default .venv/bin/pip, else python3 -m pip)
#
# Warm runs are quick: the wheels are fetched again only when a lock file changes, the
# operator's wheel is built reproducibly (SOURCE_DATE_EPOCH), so unchanged sources leave
# every layer of the build cached, and the base is kept in Docker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${IMAGE:-trigger-operator:dev}
DEFAULT_BASE=python:3.11-slim
STAND_IN=trigger-operator-base:bookworm
CONTEXT=build/image
if [ -n "${PIP:-}" ]; then
  read -r -a pip <<<"$PIP"
elif [ -x .venv/bin/pip ]; then
  pip=(.venv/bin/pip)
else
  pip=(python3 -m pip)
fi

bash scripts/ensure-docker.sh >/dev/null

choose_base() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    echo "$BASE_IMAGE"
    return
  fi
  if docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1 ||
     timeout 60 docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    echo "$DEFAULT_BASE"
    return
  fi
  echo "$DEFAULT_BASE cannot be pulled here: using the Debian stand-in $STAND_IN" >&2
  BASE_TAG=$STAND_IN bash scripts/make-base-image.sh >&2
  echo "$STAND_IN"
}

fetch_wheels() {
  local wheels=$CONTEXT/wheels arch platforms=() minor
  arch=$(uname -m)
  # pip takes a --platform literally: every manylinux tag glibc 2.36 satisfies.
  for minor in $(seq 36 -1 17); do
    platforms+=(--platform "manylinux_2_${minor}_$arch")
  done
  platforms+=(--platform "manylinux2014_$arch")
  local stamp
  stamp=$(cat requirements/runtime.txt requirements/installer.txt | sha256sum | cut -c1-16)-$arch
  if [ "$(cat "$wheels/.locked" 2>/dev/null)" = "$stamp" ]; then
    return
  fi
  echo "Fetching the locked wheels into $wheels..."
  rm -rf "$wheels"
  mkdir -p "$wheels"
  # For the image's interpreter, not the host's: CPython 3.11 on glibc >= 2.36 (Debian
  # bookworm, which python:3.11-slim is built on too). Binary wheels only: a wheel built
  # here from an sdist would not match the sdist's hash in the lock.
  "${pip[@]}" download --quiet --no-deps --require-hashes --only-binary :all: \
    --implementation cp --python-version 3.11 --abi cp311 \
    "${platforms[@]}" --dest "$wheels" \
    -r requirements/runtime.txt -r requirements/installer.txt
  echo "$stamp" >"$wheels/.locked"
}

build_wheel() {
  local dist=$CONTEXT/dist
  rm -rf "$dist" build/lib build/bdist.*
  mkdir -p "$dist"
  # A fixed date makes the wheel's bytes depend on the sources only, so that Docker's
  # layer cache holds when nothing changed.
  SOURCE_DATE_EPOCH=315532800 "${pip[@]}" wheel --quiet --no-deps \
    --wheel-dir "$dist" . >/dev/null
  rm -rf build/lib build/bdist.*
}

base=$(choose_base)
fetch_wheels
build_wheel
log=$CONTEXT/build.log
echo "Building $IMAGE on $base (no network inside the build; log: $log)..."
started=$SECONDS
# The classic builder: Debian's docker.io has no buildx. --network none is the proof that
# the build needs nothing but its context.
if ! DOCKER_BUILDKIT=0 docker build --network none --build-arg "BASE_IMAGE=$base" \
       --tag "$IMAGE" . >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "docker build failed; the whole log is in $log" >&2
  exit 1
fi
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "$IMAGE: $((size / 1000000)) MB on $base, built in $((SECONDS - started)) s"
