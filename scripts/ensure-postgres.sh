#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are installed, for the tests and
# benchmarks that start a throwaway server. Installs Debian's `postgresql` package when they
# are missing (as root); prints where they are. Exits non-zero when they cannot be had.
set -euo pipefail
# shellcheck source=scripts/apt-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

find_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  return 1
}

if bindir=$(find_bindir); then
  echo "PostgreSQL server binaries: $bindir"
  exit 0
fi

apt_install "PostgreSQL server binaries (initdb, pg_ctl)" postgresql

if bindir=$(find_bindir); then
  echo "PostgreSQL server binaries: $bindir"
  exit 0
fi
echo "postgresql was installed, but initdb and pg_ctl are still not found" >&2
exit 1
