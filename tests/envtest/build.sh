#!/usr/bin/env bash
# Builds (or reuses) the envtest control plane: a real kube-apiserver and etcd, compiled from the
# Go module proxy at the versions pinned in tests/envtest/{apiserver,etcd}/go.mod.
#
# The LAST line of stdout is the assets directory (what KUBEBUILDER_ASSETS should point at);
# everything else goes to stderr. Usage:
#   export KUBEBUILDER_ASSETS="$(bash tests/envtest/build.sh | tail -n 1)"
#
# Environment:
#   KUBEBUILDER_ASSETS  if it already holds kube-apiserver and etcd, it is printed and reused.
#   ENVTEST_CACHE       cache root (default ~/.cache/a2i-retraining-operator); binaries go to
#                       $ENVTEST_CACHE/envtest/<k8s-version>/, Go caches to $ENVTEST_CACHE/go/.
#   ENVTEST_REBUILD=1   ignore an existing build in the cache.
set -euo pipefail

log() { printf '[envtest] %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" \
    && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
    log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
    printf '%s\n' "${KUBEBUILDER_ASSETS}"
    exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
apiserver_mod="${here}/apiserver"
etcd_mod="${here}/etcd"

# The pinned versions are read from the committed go.mod files (single source of truth).
k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "${apiserver_mod}/go.mod")"
etcd_version="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "${etcd_mod}/go.mod")"
if [[ -z "${k8s_version}" || -z "${etcd_version}" ]]; then
    log "cannot read the pinned versions from ${apiserver_mod}/go.mod and ${etcd_mod}/go.mod"
    exit 1
fi

cache_root="${ENVTEST_CACHE:-${HOME}/.cache/a2i-retraining-operator}"
assets="${cache_root}/envtest/${k8s_version#v}"
stamp="kube-apiserver ${k8s_version}, etcd ${etcd_version}"

if [[ "${ENVTEST_REBUILD:-0}" != 1 && -x "${assets}/kube-apiserver" && -x "${assets}/etcd" ]]; then
    if [[ -f "${assets}/VERSIONS" && "$(cat "${assets}/VERSIONS")" != "${stamp}" ]]; then
        log "cached build in ${assets} is '$(cat "${assets}/VERSIONS")', want '${stamp}': rebuilding"
    else
        log "reusing ${assets} (${stamp})"
        printf '%s\n' "${assets}"
        exit 0
    fi
fi

if ! command -v go >/dev/null 2>&1; then
    log "go is not on PATH; install Go >= 1.26 (the modules are fetched from the Go module proxy)"
    exit 1
fi

export GOMODCACHE="${cache_root}/go/mod"
export GOCACHE="${cache_root}/go/build"
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly"
mkdir -p "${GOMODCACHE}" "${GOCACHE}" "${assets}"

# Build into a scratch dir next to the final one, then rename: an interrupted build never leaves
# a half-written binary that the reuse check above would accept.
work="$(mktemp -d "${assets}/.build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

start=$(date +%s)
log "building etcd ${etcd_version} ($(go version))"
(cd "${etcd_mod}" && go build -trimpath -ldflags="-s -w" -o "${work}/etcd" .) >&2

log "building kube-apiserver ${k8s_version} (this takes a while on a cold cache)"
ver_pkg="k8s.io/component-base/version"
minor="$(cut -d. -f2 <<<"${k8s_version}")"
ldflags="-s -w -X ${ver_pkg}.gitVersion=${k8s_version} -X ${ver_pkg}.gitMajor=1"
ldflags+=" -X ${ver_pkg}.gitMinor=${minor} -X ${ver_pkg}.gitTreeState=clean"
(cd "${apiserver_mod}" \
    && go build -trimpath -ldflags="${ldflags}" -o "${work}/kube-apiserver" \
        k8s.io/kubernetes/cmd/kube-apiserver) >&2

mv -f "${work}/etcd" "${assets}/etcd"
mv -f "${work}/kube-apiserver" "${assets}/kube-apiserver"
printf '%s\n' "${stamp}" >"${assets}/VERSIONS"
log "built ${stamp} into ${assets} in $(($(date +%s) - start))s"
printf '%s\n' "${assets}"
