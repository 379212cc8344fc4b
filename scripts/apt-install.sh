# Sourced by the ensure-*.sh scripts: install Debian packages the tests need, or say why not.
# apt_install WHAT PACKAGE...: WHAT names what is missing, for the messages. Returns
# non-zero, having said what to run, when not root or without apt-get. Package services are
# kept from starting while installing: only the binaries are wanted.

apt_install() {
  local what="$1"
  shift
  if [ "$(id -u)" -ne 0 ]; then
    echo "$what is not installed, and installing it needs root." >&2
    echo "Run: sudo apt-get update && sudo apt-get install -y $*" >&2
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$what is missing and this system has no apt-get; install it with the system's" >&2
    echo "package manager." >&2
    return 1
  fi
  echo "Installing $what (Debian package $*)..."
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
  fi
  local status=0
  apt-get update && apt-get install -y --no-install-recommends "$@" || status=$?
  [ -n "$created" ] && rm -f "$policy"
  return "$status"
}
