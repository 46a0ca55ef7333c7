#!/usr/bin/env bash
# Installs the real components the tests run against, outside the repository,
# skipping what is already there: versitygw (S3 server), daprd (Dapr sidecar),
# jq (the README blocks' test runs them with curl and jq) and chromium (the
# console's browser tests).
# Prints the directory holding the binaries on its last line.
set -euo pipefail

TOOLS_DIR=${COMMONOPS_TOOLS_DIR:-$HOME/.cache/commonops-tools}
VERSITYGW_VERSION=v1.8.0
DAPR_VERSION=v1.14.0
mkdir -p "$TOOLS_DIR"

if [ ! -x "$TOOLS_DIR/versitygw" ]; then
  echo "installing versitygw $VERSITYGW_VERSION into $TOOLS_DIR" >&2
  GOBIN="$TOOLS_DIR" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
fi

if [ ! -x "$TOOLS_DIR/daprd" ]; then
  echo "building daprd $DAPR_VERSION into $TOOLS_DIR (10-15 minutes on a fresh machine)" >&2
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  gomod=$(cd "$build" && go mod download -json "github.com/dapr/dapr@$DAPR_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  (
    cd "$build"
    {
      echo "module daprdbuild"
      echo
      grep -E '^go [0-9]' "$gomod"
      echo
      echo "require github.com/dapr/dapr $DAPR_VERSION"
      echo
      # The replace directives of dapr's own go.mod, single-line and block form.
      awk '/^replace \(/{inblock=1; print; next} inblock{print; if ($0 ~ /^\)/) inblock=0; next} /^replace /{print}' "$gomod"
    } > go.mod
    echo 'package main' > tools.go
    echo 'import _ "github.com/dapr/dapr/cmd/daprd"' >> tools.go
    GOFLAGS=-mod=mod go mod tidy >&2 || true
    GOFLAGS=-mod=mod go build -tags stablecomponents -o "$TOOLS_DIR/daprd" github.com/dapr/dapr/cmd/daprd >&2
  )
fi

if ! command -v jq >/dev/null; then
  echo "installing jq" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq jq >/dev/null
fi

if ! command -v chromium >/dev/null; then
  echo "installing chromium (the console's browser tests)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "$TOOLS_DIR"
