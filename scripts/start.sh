#!/usr/bin/env bash
# `npm start`: installs what is missing (scripts/setup.sh), then runs the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/node-env.sh
NODE_EXTRA_CA_CERTS="$(npx --no-install tsx test/harness/certs.ts)"
export NODE_EXTRA_CA_CERTS
exec npx --no-install tsx scripts/local-stack.ts "$@"
