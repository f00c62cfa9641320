#!/usr/bin/env bash
# CI entry for the TypeScript SDK: install (npm ci, cached under the cargo target dir),
# check the generated types, build with tsc, run `node --test` against a real node.
#   sdk/typescript/test.sh            from anywhere; NEXUS_BIN overrides the nexus binary
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
cache="$target/sdk-typescript"
mkdir -p "$cache"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "sdk/typescript: Node >= 20 is required (found $(node --version))" >&2
  exit 1
fi

cd "$here"
# npm ci only when the lockfile changed since the last install (its hash is the stamp);
# the download cache lives under the target dir, so a reinstall is offline and quick.
stamp="node_modules/.nexus-lock-sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --cache "$cache/npm-cache" --prefer-offline --no-audit --no-fund
  echo "$want" > "$stamp"
fi

export NEXUS_BIN="${NEXUS_BIN:-$target/debug/nexus}"
if [ ! -x "$NEXUS_BIN" ]; then
  echo "sdk/typescript: $NEXUS_BIN missing; building it" >&2
  (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build -p nexus)
fi

npm run --silent build
npm test
