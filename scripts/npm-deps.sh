#!/bin/sh
# Install the npm packages spool's tests run (deps/npm: s3rver, the S3 server behind
# tests/support/s3proxy.py; bullmq for make bench-queue; @redocly/cli for test_openapi) into DIR/node_modules with `npm ci`: exactly the versions
# and hashes deps/npm/package-lock.json pins, nothing outside DIR. make calls it when
# the lock file is newer than DIR's stamp (tests/tests.mk), so it is idle otherwise.
# Usage: scripts/npm-deps.sh DIR (default build/npm)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/build/npm}
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "npm-deps: node and npm are missing: run 'make deps' (deps/debian.txt lists nodejs and npm)" >&2
    exit 1
fi
mkdir -p "$dir"
rm -f "$dir/node_modules/.spool-installed"
cp "$here/deps/npm/package.json" "$here/deps/npm/package-lock.json" "$dir/"
echo "npm-deps: npm ci in $dir (node $(node --version), npm $(npm --version))" >&2
# --ignore-scripts: no package in the lock needs an install script (msgpackr-extract's
# only builds from source when no prebuilt binary fits; msgpackr falls back to JS).
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
touch "$dir/node_modules/.spool-installed"
