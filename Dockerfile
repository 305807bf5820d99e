# syntax=docker/dockerfile:1
#
# One image with every gatewayq binary: worker (the default entrypoint),
# enqueue, sandbox and demo. docker-compose.yml picks the binary per service.
#
#   docker build -t gatewayq .
#   docker run --rm gatewayq --help                       # the worker
#   docker run --rm --entrypoint enqueue gatewayq -h      # the CLI

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
# Modules first, so a source change doesn't download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static binaries (no cgo), without local paths or debug tables.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/worker ./cmd/enqueue ./cmd/sandbox ./cmd/demo

# Alpine rather than distroless: its busybox wget and sh run the compose
# healthchecks (the worker's /healthz, the sandbox's PKI files).
FROM alpine:3.22
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 gatewayq \
    && adduser -S -D -H -u 10001 -G gatewayq gatewayq \
    # /pki is where the sandbox writes its CA, server and client
    # certificates. Created here, owned by the runtime user, so a named
    # volume mounted on it starts with that owner; workers run as the same
    # user and can read the owner-only (0600) keys that config insists on.
    && mkdir -p /pki \
    && chown gatewayq:gatewayq /pki \
    && chmod 0700 /pki
COPY --from=build /out/worker /out/enqueue /out/sandbox /out/demo /usr/local/bin/
USER 10001:10001
# 8080: worker health; 4046: sandbox mutual TLS (cloud); 4443: sandbox one-way TLS (desktop, OAuth).
EXPOSE 8080 4046 4443
ENTRYPOINT ["/usr/local/bin/worker"]
