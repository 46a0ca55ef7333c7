#!/usr/bin/env bash
# Runs the whole commonops test suite, with the race detector, against real
# components: PostgreSQL, versitygw (S3), Dapr sidecars on Redis and
# RabbitMQ, and chromium for the console. Installs versitygw, daprd, jq and
# chromium on first use (cached in ~/.cache/commonops-tools; daprd takes
# 10-15 minutes to build once) and starts PostgreSQL and Redis if they are
# not running (RabbitMQ is expected on 127.0.0.1:5672).
#
#   scripts/test.sh              every package
#   scripts/test.sh ./httpapi/   some packages (any go test arguments)
set -euo pipefail
cd "$(dirname "$0")/.."

tools=$(bash .ci/tools.sh | tail -n 1)
export COMMONOPS_VERSITYGW="$tools/versitygw"
export COMMONOPS_DAPRD="$tools/daprd"
export COMMONOPS_TEST_DATABASE_URL=${COMMONOPS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

# PostgreSQL and Redis: start them where this machine has them but they are down.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

go vet ./...
(cd bench && go vet ./...) # the benchmark module builds too, so it cannot rot
# The Kubernetes manifests: rendered with kustomize and decoded strictly into
# the Kubernetes and Dapr API types (a module of its own, see deploy/go.mod).
(cd deploy && go vet ./... && go test -count=1 ./...)
if [ $# -eq 0 ]; then set -- ./...; fi
go test -race -count=1 -timeout 40m "$@"
