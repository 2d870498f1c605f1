#!/usr/bin/env bash
# Builds (or reuses) promtool, Prometheus's rule checker, from the Go module proxy at the pinned
# version below. The chart's PrometheusRule is checked (`promtool check rules`) and unit-tested
# (`promtool test rules`, tests/packaging/promtool/) with it.
#
# The LAST line of stdout is the promtool binary's path; everything else goes to stderr. Usage:
#   export PROMTOOL="$(bash tests/promtool/build.sh | tail -n 1)"
#
# Environment:
#   PROMTOOL            if it is already an executable file, it is printed and reused.
#   PROMTOOL_CACHE      cache root (default ~/.cache/a2i-retraining-operator); the binary and the
#                       Go caches go to $PROMTOOL_CACHE/promtool/<version>/.
#   PROMTOOL_REBUILD=1  ignore an existing build in the cache.
set -euo pipefail

# Prometheus 3.x tags its Go module v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
version="v0.316.0"
module="github.com/prometheus/prometheus/cmd/promtool"

log() { printf '[promtool] %s\n' "$*" >&2; }

if [[ -n "${PROMTOOL:-}" && -x "${PROMTOOL}" && ! -d "${PROMTOOL}" ]]; then
    log "using PROMTOOL=${PROMTOOL}"
    printf '%s\n' "${PROMTOOL}"
    exit 0
fi

cache_root="${PROMTOOL_CACHE:-${HOME}/.cache/a2i-retraining-operator}"
root="${cache_root}/promtool/${version}"
binary="${root}/bin/promtool"

if [[ "${PROMTOOL_REBUILD:-0}" != 1 && -x "${binary}" ]]; then
    log "reusing ${binary} (${version})"
    printf '%s\n' "${binary}"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    log "go is not on PATH; install Go >= 1.26 (promtool is fetched from the Go module proxy)"
    exit 1
fi

# The Go toolchain on PATH builds it: GOTOOLCHAIN=local refuses to download another one (only
# the module proxy is reachable), so a too-old Go fails here with go's own message.
export GOTOOLCHAIN=local
export GOPATH="${root}/gopath"
export GOMODCACHE="${root}/mod"
export GOCACHE="${root}/build"
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -modcacherw"
mkdir -p "${GOPATH}" "${GOMODCACHE}" "${GOCACHE}" "${root}/bin"

# Install into a scratch GOBIN next to the final one, then rename: an interrupted build never
# leaves a half-written binary that the reuse check above would accept.
work="$(mktemp -d "${root}/.build.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

start=$(date +%s)
log "building ${module}@${version} ($(go version); several minutes on a cold cache)"
# `promtool --version` names the Prometheus release: module v0.MMM.P is Prometheus 3.(MMM-300).P.
minor="$(cut -d. -f2 <<<"${version}")"
release="3.$((minor - 300)).$(cut -d. -f3 <<<"${version}")"
ldflags="-s -w -X github.com/prometheus/common/version.Version=${release}"
ldflags+=" -X github.com/prometheus/common/version.Branch=${version}"
GOBIN="${work}" go install -trimpath -ldflags="${ldflags}" "${module}@${version}" >&2

mv -f "${work}/promtool" "${binary}"
log "built promtool ${version} into ${binary} in $(($(date +%s) - start))s"
printf '%s\n' "${binary}"
