#!/usr/bin/env bash
# hack/setup.sh (step: k8s build) — build the real Kubernetes programs our tests
# run, from the Go module proxy, into a cache outside the work tree:
#
#   ${TKE_K8S_CACHE:-/var/cache/tke-vpc-cni/k8s}/<K8S_VERSION>/bin/
#       kube-apiserver kube-scheduler kube-controller-manager kubelet kubectl kube-proxy
#       etcd kwok cnitool kustomize
#
# Pins are in hack/k8s/versions.env. Idempotent: a binary is rebuilt only when
# it is missing or its --version does not report the pinned version. A pinned
# Go toolchain is installed from the Go module proxy (hack/k8s/fetch_go.py)
# into ${TKE_K8S_CACHE}/go/<GO_VERSION>; any Go already on the machine is not used.
# Wrapper Go modules are generated from hack/k8s/*.in into
# ${TKE_K8S_CACHE}/<K8S_VERSION>/build/ (build recipes only; no Kubernetes source
# is ever copied into this repository).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${TKE_K8S_CACHE:-/var/cache/tke-vpc-cni/k8s}"
vdir="$cache_root/$K8S_VERSION"
bin="$vdir/bin"
build="$vdir/build"
goroot="$cache_root/go/$GO_VERSION"
mkdir -p "$bin" "$build"

t_all=$(date +%s)
log() { printf '[k8s build %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf '[k8s build] FAILED: %s\n  (hack/setup.sh step: k8s build; log above)\n' "$*" >&2; exit 1; }
timed() { # timed NAME CMD...: run and report the wall time of a step
  local name=$1 t0; shift; t0=$(date +%s)
  log "$name: start"
  "$@" || die "$name"
  log "$name: done in $(( $(date +%s) - t0 ))s"
}

# One build at a time per cache (setup may run from two shells).
exec 9>"$vdir/.build.lock"
flock 9

# --- Go toolchain -----------------------------------------------------------
install_go() { python3 "$here/fetch_go.py" "$GO_VERSION" "$goroot"; }
if ! "$goroot/bin/go" version 2>/dev/null | grep -q " $GO_VERSION "; then
  timed "go toolchain $GO_VERSION (from the Go module proxy)" install_go
fi
export GOROOT="$goroot" PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local CGO_ENABLED=0
# The wrappers are self-contained: no workspace, no flags from the caller's environment.
export GOWORK=off GOFLAGS=

go version | grep -q " $GO_VERSION " || die "go toolchain $GO_VERSION not usable at $goroot"
log "using $(go version) (GOROOT=$goroot)"

# --- helpers ----------------------------------------------------------------
# cached NAME EXPECT CMD...: true when bin/NAME exists and CMD's output contains EXPECT.
cached() {
  local name=$1 expect=$2; shift 2
  [ -x "$bin/$name" ] || return 1
  local out; out=$("$@" 2>&1) || true
  case "$out" in *"$expect"*) log "$name: cached ($(echo "$out" | grep -F -m1 -- "$expect"))"; return 0;; esac
  log "$name: present but reports '$(echo "$out" | head -1)', want '$expect': rebuilding"
  return 1
}
# verify NAME EXPECT CMD...: fail the step unless CMD's output contains EXPECT.
verify() {
  local name=$1 expect=$2; shift 2
  local out; out=$("$@" 2>&1) || true
  case "$out" in *"$expect"*) log "$name: verified: $(echo "$out" | grep -F -m1 -- "$expect")";;
    *) die "$name built but reports '$(echo "$out" | head -3)', want '$expect'";; esac
}
# render TEMPLATE OUT KEY=VALUE...: substitute @KEY@ placeholders (values may span lines).
render() {
  local tpl=$1 out=$2; shift 2
  python3 - "$tpl" "$out" "$@" <<'PY'
import sys
tpl, out, *pairs = sys.argv[1:]
text = open(tpl).read()
for pair in pairs:
    key, _, value = pair.partition("=")
    text = text.replace("@" + key + "@", value)
open(out, "w").write(text)
PY
}
tools_imports() { local p; for p in "$@"; do printf '\t_ "%s"\n' "$p"; done; }

# --- etcd -------------------------------------------------------------------
build_etcd() {
  local dir="$build/etcd"
  rm -rf "$dir"; mkdir -p "$dir"
  render "$here/etcd.go.mod.in" "$dir/go.mod" "ETCD_VERSION=$ETCD_VERSION"
  render "$here/tools.go.in" "$dir/tools.go" "IMPORTS=$(tools_imports go.etcd.io/etcd/server/v3)"
  (cd "$dir" && go mod tidy && \
    go build -trimpath -ldflags "-s -w" -o "$dir/etcd" go.etcd.io/etcd/server/v3) || return 1
  mv -f "$dir/etcd" "$bin/etcd"
}
if ! cached etcd "etcd Version: ${ETCD_VERSION#v}" "$bin/etcd" --version; then
  timed "etcd $ETCD_VERSION" build_etcd
  verify etcd "etcd Version: ${ETCD_VERSION#v}" "$bin/etcd" --version
fi

# --- kwok -------------------------------------------------------------------
build_kwok() {
  local tmp="$build/gobin"; rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" || return 1
  mv -f "$tmp/kwok" "$bin/kwok"
}
if ! cached kwok "$KWOK_VERSION" "$bin/kwok" --version; then
  timed "kwok $KWOK_VERSION" build_kwok
  verify kwok "$KWOK_VERSION" "$bin/kwok" --version
fi

# --- cnitool ----------------------------------------------------------------
# cnitool has no --version flag: its module version is read from the binary's
# build information (go version -m).
build_cnitool() {
  local tmp="$build/gobin"; rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/containernetworking/cni/cnitool@$CNITOOL_VERSION" || return 1
  mv -f "$tmp/cnitool" "$bin/cnitool"
}
cni_expect="github.com/containernetworking/cni	$CNITOOL_VERSION"
if ! cached cnitool "$cni_expect" go version -m "$bin/cnitool"; then
  timed "cnitool $CNITOOL_VERSION" build_cnitool
  verify cnitool "$cni_expect" go version -m "$bin/cnitool"
fi

# --- kube-apiserver, kube-scheduler, kube-controller-manager, kubelet, kubectl, kube-proxy
# kube-controller-manager runs Deployments, StatefulSets and garbage collection
# for the end-to-end tests and the local run; kubectl is for people using the
# local cluster (`tke-localcluster up`); kube-proxy gives the local run's nodes and
# control-plane host their Services. One go build of the binaries that are missing
# or stale (the wrapper module always lists all of them, so its go.sum is the same).
k8s_cmds=(kube-apiserver kube-scheduler kube-controller-manager kubelet kubectl kube-proxy)
k8s_missing=()
# version_cmd NAME: how a binary reports its version (kubectl has no --version).
version_cmd() { if [ "$1" = kubectl ]; then echo "version --client"; else echo "--version"; fi; }
k8s_expect() { if [ "$1" = kubectl ]; then echo "Client Version: $K8S_VERSION"; else echo "Kubernetes $K8S_VERSION"; fi; }
build_k8s() {
  local dir="$build/kubernetes" upstream info minor staging go_directives commit date ldflags pkgs=() c
  rm -rf "$dir"; mkdir -p "$dir"
  upstream=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])') || return 1
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  staging="v0.${K8S_VERSION#v1.}"
  # Every `k8s.io/x => ./staging/src/k8s.io/x` of upstream becomes `k8s.io/x => k8s.io/x v0.Y.Z`;
  # the go and godebug lines are copied so the binaries behave as upstream's.
  python3 - "$upstream" "$staging" > "$dir/replaces.txt" <<'PY' || return 1
import re, sys
text, staging = open(sys.argv[1]).read(), sys.argv[2]
mods = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/\1\s*$", text, re.M)
others = [l for l in re.findall(r"^\s*\S+\s+=>\s+\S+.*$", text, re.M) if "./staging/src/" not in l]
if not mods or others:
    sys.exit(f"unexpected replace directives in upstream go.mod: staging={mods} others={others}")
print("\n".join(f"\t{m} => {m} {staging}" for m in mods))
PY
  go_directives=$(grep -E '^(go|godebug) ' "$upstream")
  log "kubernetes: $(wc -l < "$dir/replaces.txt") staging modules replaced with $staging; $(echo "$go_directives" | tr '\n' ' ')"
  render "$here/kubernetes.go.mod.in" "$dir/go.mod" "GO_DIRECTIVES=$go_directives" \
    "K8S_VERSION=$K8S_VERSION" "STAGING_REPLACES=$(cat "$dir/replaces.txt")"
  for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  render "$here/tools.go.in" "$dir/tools.go" "IMPORTS=$(tools_imports "${pkgs[@]}")"
  info=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c \
    'import json,sys; d=json.load(sys.stdin); print((d.get("Origin") or {}).get("Hash",""), d.get("Time",""))')
  commit=${info%% *}; date=${info##* }
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=${date:-1970-01-01T00:00:00Z}"
    [ -n "$commit" ] && ldflags+=" -X $p.gitCommit=$commit"
  done
  log "kubernetes: go mod tidy"
  (cd "$dir" && go mod tidy) || return 1
  log "kubernetes: go build ${k8s_missing[*]} (one invocation; several minutes on 2 cores)"
  mkdir -p "$dir/out"
  pkgs=()
  for c in "${k8s_missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$dir/out/" "${pkgs[@]}") || return 1
  for c in "${k8s_missing[@]}"; do mv -f "$dir/out/$c" "$bin/$c"; done
}
for c in "${k8s_cmds[@]}"; do
  # shellcheck disable=SC2046
  cached "$c" "$(k8s_expect "$c")" "$bin/$c" $(version_cmd "$c") || k8s_missing+=("$c")
done
if [ "${#k8s_missing[@]}" -gt 0 ]; then
  timed "${k8s_missing[*]} $K8S_VERSION" build_k8s
  # shellcheck disable=SC2046
  for c in "${k8s_missing[@]}"; do verify "$c" "$(k8s_expect "$c")" "$bin/$c" $(version_cmd "$c"); done
fi

# --- kustomize ----------------------------------------------------------------
# The deploy/ tests build deploy/ with the kustomize kubectl v1.33 embeds. Its
# version is a link-time variable (without it, `kustomize version` says "(devel)").
build_kustomize() {
  local tmp="$build/gobin"; rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" || return 1
  mv -f "$tmp/kustomize" "$bin/kustomize"
}
if ! cached kustomize "$KUSTOMIZE_VERSION" "$bin/kustomize" version; then
  timed "kustomize $KUSTOMIZE_VERSION" build_kustomize
  verify kustomize "$KUSTOMIZE_VERSION" "$bin/kustomize" version
fi

# A manifest the Python side reads (localcluster/binaries.py) to check pins.
cat > "$bin/VERSIONS" <<EOF
K8S_VERSION=$K8S_VERSION
GO_VERSION=$GO_VERSION
ETCD_VERSION=$ETCD_VERSION
KWOK_VERSION=$KWOK_VERSION
CNITOOL_VERSION=$CNITOOL_VERSION
KUSTOMIZE_VERSION=$KUSTOMIZE_VERSION
EOF
log "all binaries ready in $bin ($(( $(date +%s) - t_all ))s)"
