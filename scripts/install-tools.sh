#!/usr/bin/env bash
# Installs the Go-built tools the demo and the tests run, once, into GOBIN:
# the Temporal CLI (dev server + Web UI) and versitygw (a real S3 server,
# for the tests only). Usage: install-tools.sh [temporal|all]
set -euo pipefail
GOBIN=${GOBIN:-$(go env GOPATH)/bin}
export GOBIN
# The versions, defined here only.
TEMPORAL_VERSION=v1.5.1
VERSITYGW_VERSION=v1.8.0
has() { go version -m "$GOBIN/$1" 2>/dev/null | grep -qE "^\s+mod\s+$2\s+$3\s"; }
if ! has temporal github.com/temporalio/cli $TEMPORAL_VERSION; then
  echo "installing the Temporal CLI $TEMPORAL_VERSION (about 10 minutes the first time)"
  go install github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION
fi
if [ "${1:-all}" = all ] && ! has versitygw github.com/versity/versitygw $VERSITYGW_VERSION; then
  echo "installing versitygw $VERSITYGW_VERSION (S3 server for the store tests)"
  go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION
fi
