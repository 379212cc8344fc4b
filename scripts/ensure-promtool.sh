#!/usr/bin/env bash
# Make sure `promtool` is installed, for the tests of the alert rules
# (manifests/overlays/monitoring). Installs Debian's `prometheus` package, which ships it,
# when it is missing (as root); prints where it is. Exits non-zero when it cannot be had:
# the rule tests then skip and print why.
set -euo pipefail

if path=$(command -v promtool); then
  echo "promtool: $path"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "promtool is not installed, and installing it needs root." >&2
  echo "Run: sudo apt-get update && sudo apt-get install -y prometheus" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is missing and this system has no apt-get; install Prometheus's promtool" >&2
  echo "with the system's package manager." >&2
  exit 1
fi

echo "Installing promtool (Debian package prometheus)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Only the binaries are wanted: keep the package's service from starting where it could.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y --no-install-recommends prometheus

if path=$(command -v promtool); then
  echo "promtool: $path"
  exit 0
fi
echo "prometheus was installed, but promtool is still not found" >&2
exit 1
