#!/bin/sh
# Installs the pinned SARIF validator (ajv, ajv-formats and the SARIF 2.1.0
# schema that Microsoft's SARIF SDK ships in @microsoft/sarif-multitool-linux)
# into a git-ignored cache directory, for report's
# TestSARIFValidatesAgainstOfficialSchema. Nothing is downloaded at test time.
#
# Usage (from anywhere):  sh report/testdata/sarif/install.sh [CACHE_DIR]
# CACHE_DIR defaults to <repo root>/.cache/sarif-validate, which is where the
# test looks (override with IMGAUDIT_SARIF_VALIDATOR_DIR).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dest=${1:-${IMGAUDIT_SARIF_VALIDATOR_DIR:-$root/.cache/sarif-validate}}

mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
# npm ci installs exactly what the committed lock file pins (with integrity
# hashes). --ignore-scripts: we only need the schema file, not the .NET
# multitool's postinstall.
npm ci --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error
test -f "$dest/node_modules/@microsoft/sarif-multitool-linux/sarif-2.1.0.json"
echo "SARIF validator installed in $dest"
