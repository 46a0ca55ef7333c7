# syntax=docker/dockerfile:1
# The commonops image: one static binary on distroless, run as a non-root
# user, with no shell. Build it from the repository root:
#
#   docker build -t commonops:dev --build-arg VERSION=$(git describe --always) .
#
# The builder stage's go build line is replayed by TestDockerfileBuild
# (cmd/commonops), so CI checks it without a container engine.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so a code change reuses the downloaded dependencies.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver (modernc.org/sqlite) is pure Go, so the
# binary is static and runs on an image without a C library.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/commonops ./cmd/commonops

FROM gcr.io/distroless/static-debian12:nonroot
# uid and gid 65532 (nonroot); the working directory is its home, where the
# default data directory (./data: the SQLite file and local files) can be
# written. Mount a volume there, or use PostgreSQL and S3.
WORKDIR /home/nonroot
COPY --from=build /out/commonops /usr/local/bin/commonops
USER 65532:65532
# 8080: the API, probes and /metrics; 8081: Dapr deliveries (set
# COMMONOPS_DAPR_APP_ADDR=0.0.0.0:8081 only when the sidecar is not on
# loopback; in a pod it is).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/commonops"]
CMD ["serve"]
