# certplane's container image: one static binary in an empty (scratch) image,
# running as an unprivileged user. Two targets build the same runtime image:
#
#   docker build -t certplane .
#       Default target "runtime": compiles from source in golang:1.26. Needs a
#       registry to pull the Go toolchain image.
#
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' \
#       -o testenv/.state/build/certplane ./cmd/certplane
#   mkdir -p testenv/.state/build/data
#   docker build --target runtime-prebuilt -t certplane .
#       Copies a binary built on the host: no image is pulled at all, so it
#       works on hosts without registry access (testenv/build.sh does this).
#
# runtime-prebuilt comes first on purpose: the legacy builder (no BuildKit)
# builds every stage up to --target, and a later "FROM golang" would make it
# pull. BuildKit builds only the stages the target needs, in any order.
#
# /data is created owned by 65532 so that a named volume mounted there starts
# writable by the unprivileged user (Docker copies the mount point's owner
# into an empty named volume), with no root init step.

FROM scratch AS runtime-prebuilt
COPY testenv/.state/build/certplane /certplane
COPY --chown=65532:65532 testenv/.state/build/data /data
USER 65532:65532
ENTRYPOINT ["/certplane"]

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces go-pkcs12 with this patched copy: go mod download reads its go.mod.
COPY third_party/go-pkcs12/go.mod third_party/go-pkcs12/
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) .
ARG VERSION
ARG COMMIT
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w -X github.com/certplane/certplane/internal/buildinfo.version=${VERSION} -X github.com/certplane/certplane/internal/buildinfo.commit=${COMMIT}" \
    -o /out/certplane ./cmd/certplane \
 && mkdir -p /out/data

FROM scratch AS runtime
COPY --from=build /out/certplane /certplane
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENTRYPOINT ["/certplane"]
