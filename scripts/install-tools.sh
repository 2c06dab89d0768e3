#!/usr/bin/env bash
# Installs the Go-built tools the demo and the tests run, once, into GOBIN:
# the Temporal CLI (dev server + Web UI) and versitygw (a real S3 server,
# for the tests only). Usage: install-tools.sh [temporal|all]
set -euo pipefail
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
export GOBIN
has() { go version -m "$GOBIN/$1" 2>/dev/null | grep -qE "^\s+mod\s+$2\s+$3\s"; }
if ! has temporal github.com/temporalio/cli v1.5.1; then
  echo "installing the Temporal CLI v1.5.1 (about 10 minutes the first time)"
  go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi
if [ "${1:-all}" = all ] && ! has versitygw github.com/versity/versitygw v1.8.0; then
  echo "installing versitygw v1.8.0 (S3 server for the store tests)"
  go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
