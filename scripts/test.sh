#!/usr/bin/env bash
# The test command (README, .ci/run): setup (installs only what is missing, so `npm test` works
# as the first command on a fresh machine), then typecheck and every suite on Node 22 (the
# Azure runtime's version). Suites start their own Azurite, Dovecot and Graph simulator; the
# throwaway test CA is trusted through NODE_EXTRA_CA_CERTS, which Node reads only at start, so
# it is exported here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/node-env.sh
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$UMC_NODE_MAJOR" ] || { echo "test: Node $(node -v) is older than $UMC_NODE_MAJOR (scripts/setup.sh installs it)" >&2; exit 1; }
NODE_EXTRA_CA_CERTS="$(npx --no-install tsx test/harness/certs.ts)"
export NODE_EXTRA_CA_CERTS
npm run -s typecheck
npx --no-install vitest run "$@"
