#!/usr/bin/env bash
# `npm run bench`: benchmarks print figures with their reference; they start their own stack.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh
NODE_EXTRA_CA_CERTS="$(npx --no-install tsx test/harness/certs.ts)"
export NODE_EXTRA_CA_CERTS
exec npx --no-install tsx bench/run.ts "$@"
