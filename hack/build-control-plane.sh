#!/usr/bin/env bash
# Builds the dev control plane's binaries from the pinned Go modules under hack/
# into a cache outside the repository, once per machine. Later calls return at
# once when every binary is present. Progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="v1.36.3"
etcd_version="v3.6.16"
kwok_version="v0.8.0"
cache="${TRIGGER_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trigger-operator}"
out="$cache/k8s-$k8s_version"
mkdir -p "$out"

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is required to build the dev control plane (go >= 1.26)" >&2
  exit 1
fi

export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
build_date="$(date -u -d @0 +%Y-%m-%dT%H:%M:%SZ)"
minor="$(echo "$k8s_version" | cut -d. -f2)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

step=0
total=6
build() {  # build <module dir> <output name> <package> <ldflags>
  local dir="$1" name="$2" pkg="$3" ldflags="$4"
  step=$((step + 1))
  if [[ -x "$out/$name" ]]; then
    echo "[$step/$total] $name: cached" >&2
    return
  fi
  echo "[$step/$total] building $name ($pkg) ..." >&2
  local start=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "[$step/$total] $name built in $((SECONDS - start)) s" >&2
}

build etcd etcd . "-s -w"
build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build k8s kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
echo "$out"
