#!/usr/bin/env bash
# Builds the certplane image without pulling anything: the static binary is
# compiled on this host and copied into a FROM scratch image (Dockerfile
# target runtime-prebuilt). Hosts with registry access can instead run
# `docker compose build`, which compiles inside golang:1.26.
#
# Usage: testenv/build.sh [image-tag]   (default: certplane:testenv)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
tag=${1:-${CERTPLANE_IMAGE:-certplane:testenv}}
out=$here/.state/build

mkdir -p "$out/data"
arch=$(docker version --format '{{.Server.Arch}}' 2>/dev/null || go env GOARCH)
# The commit goes in by -X: GOFLAGS may carry -buildvcs=false.
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" \
	go build -trimpath -ldflags="-s -w -X github.com/certplane/certplane/internal/buildinfo.commit=$commit" \
	-o "$out/certplane" ./cmd/certplane)

# The Dockerfile has no "# syntax=" line, so neither the legacy builder nor
# BuildKit (with its built-in frontend) pulls anything for this target.
(cd "$root" && docker build --quiet --target runtime-prebuilt -t "$tag" -f Dockerfile . >/dev/null)
echo "built $tag from $out/certplane"
