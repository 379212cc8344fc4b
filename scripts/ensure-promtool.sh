#!/usr/bin/env bash
# Make sure `promtool` is installed, for the tests of the alert rules
# (manifests/overlays/monitoring). Installs Debian's `prometheus` package, which ships it,
# when it is missing (as root); prints where it is. Exits non-zero when it cannot be had:
# the rule tests then skip and print why.
set -euo pipefail
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

if path=$(command -v promtool); then
  echo "promtool: $path"
  exit 0
fi

apt_install promtool prometheus

if path=$(command -v promtool); then
  echo "promtool: $path"
  exit 0
fi
echo "prometheus was installed, but promtool is still not found" >&2
exit 1
