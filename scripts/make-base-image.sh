#!/usr/bin/env bash
# Make a stand-in for python:3.11-slim from Debian's own packages, for machines that reach
# Debian's archive but no image registry: Debian bookworm's python3 (3.11) and
# ca-certificates on the Essential package set, built by mmdebstrap with this host's apt
# sources, then `docker import`ed as $BASE_TAG (default trigger-operator-base:bookworm).
# Installs mmdebstrap with apt when it is missing (as root). Does nothing when the tag
# exists already; FORCE=1 makes it again.
#
# Differences from python:3.11-slim that matter to the Dockerfile: python is
# /usr/bin/python3 (no `python`), there is no pip, ensurepip or useradd, and the image
# has no ENV of its own (PATH is the default). The Dockerfile relies on none of those.
set -euo pipefail
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

BASE_TAG=${BASE_TAG:-trigger-operator-base:bookworm}
SUITE=bookworm

if [ -z "${FORCE:-}" ] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  echo "base image: $BASE_TAG (made earlier)"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
  apt_install mmdebstrap mmdebstrap
fi

# This host's sources when it runs the same release (its mirror may be the only one
# reachable); else Debian's default mirror, which mmdebstrap uses when given none.
mirrors=()
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = "$SUITE" ]; then
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
              /etc/apt/sources.list.d/*.sources; do
    [ -s "$file" ] && mirrors+=("$file")
  done
fi
# apt's proxy, when the host's apt has one, for the downloads only (the environment,
# not --aptopt, which would stay in the image).
proxy=$(apt-config shell value Acquire::http::Proxy 2>/dev/null | sed -n "s/^value='\(.*\)'$/\1/p")
if [ -n "$proxy" ] && [ -z "${http_proxy:-}" ]; then
  export http_proxy="$proxy"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Making $BASE_TAG from Debian $SUITE packages (mmdebstrap; about half a minute)..."
# essential: no apt or package tooling in the image. usr-is-merged stands for usrmerge,
# which would bring perl. Documentation, manuals and translations are left out.
# Its output (the hooks' too) goes to a log, shown when it fails.
if ! mmdebstrap --quiet --variant=essential \
  --include=usr-is-merged,python3,ca-certificates \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -f "$1"/etc/resolv.conf "$1"/etc/hostname' \
  --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*' \
  --skip=output/dev \
  "$SUITE" "$work/base.tar" "${mirrors[@]}" >"$work/mmdebstrap.log" 2>&1; then
  tail -n 40 "$work/mmdebstrap.log" >&2
  echo "mmdebstrap failed" >&2
  exit 1
fi
docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "python3 from Debian $SUITE packages (scripts/make-base-image.sh)" \
  "$work/base.tar" "$BASE_TAG" >/dev/null
echo "base image: $BASE_TAG ($(docker image inspect --format '{{.Size}}' "$BASE_TAG" | awk '{printf "%d MB", $1/1e6}'))"
