#!/usr/bin/env bash
# Installs the pinned npm packages the SARIF schema test uses (ajv and the
# SARIF 2.1.0 schema shipped in @microsoft/sarif-multitool-linux) into
# .cache/sarif-validate, once.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/sarif-validate
if [ -f "$dir/.installed" ] && cmp -s report/testdata/sarif/package-lock.json "$dir/package-lock.json"; then
  exit 0
fi
sh report/testdata/sarif/install.sh "$PWD/$dir"
touch "$dir/.installed"
