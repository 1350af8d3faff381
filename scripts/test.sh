#!/usr/bin/env bash
# The test command (README, .ci/run): typecheck, then every suite. Suites start their own
# Azurite, Dovecot and Graph simulator; the throwaway test CA is trusted through
# NODE_EXTRA_CA_CERTS, which Node reads only at start, so it is exported here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
if [ ! -x /usr/sbin/dovecot ]; then
  echo "dovecot is missing: run 'sudo apt-get install -y dovecot-imapd' (scripts/setup.sh does it)" >&2
  exit 1
fi
NODE_EXTRA_CA_CERTS="$(npx --no-install tsx test/harness/certs.ts)"
export NODE_EXTRA_CA_CERTS
npm run -s typecheck
npx --no-install vitest run "$@"
