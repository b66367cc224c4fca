#!/usr/bin/env bash
# npm run test:mutation [-- MODULE… | --report]: mutation testing of the security core (issue 18), see
# dev/mutation.ts. Stryker 10 needs Node 22: like .ci/run, the npm registry's `node` package brings it into a
# prefix outside the project (kept in the temporary folder between runs), so the lock file stays as it is.
# Niced: it runs for tens of minutes on a machine others share.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE22_VERSION=22.23.3
prefix="${TMPDIR:-/tmp}/aada-mutation-node-$NODE22_VERSION-$(id -u)"
node22="$prefix/node_modules/.bin/node"
if [ ! -x "$node22" ] || [ "$("$node22" --version)" != "v$NODE22_VERSION" ]; then
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund "node@$NODE22_VERSION" >/dev/null
fi
if [ "$("$node22" --version)" != "v$NODE22_VERSION" ]; then
  echo "the node@$NODE22_VERSION package did not provide Node $NODE22_VERSION" >&2
  exit 1
fi
# Stryker, vitest and the processes they start take `node` from PATH.
PATH="$prefix/node_modules/.bin:$PATH" exec nice -n 10 node_modules/.bin/tsx dev/mutation.ts "$@"
