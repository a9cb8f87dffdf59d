#!/usr/bin/env bash
# Installs the pinned npm packages the SARIF schema test uses (ajv and the
# SARIF 2.1.0 schema shipped in @microsoft/sarif-multitool-linux) into
# .cache/sarif-validate, once, pnpm for the pnpm store tests, and yarn 1
# and yarn 4 for the yarn cache tests.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/sarif-validate
if ! { [ -f "$dir/.installed" ] && cmp -s report/testdata/sarif/package-lock.json "$dir/package-lock.json"; }; then
  sh report/testdata/sarif/install.sh "$PWD/$dir"
  touch "$dir/.installed"
fi

# pnpm, for the pnpm store tests (pkgdb, scanner): Debian 12 packages no
# pnpm, so npm installs this pinned release globally when none is on PATH.
if ! command -v pnpm >/dev/null 2>&1; then
  npm install -g --no-fund --no-audit pnpm@10.34.9
fi

# yarn 1 (classic), for the yarn cache tests (pkgdb, scanner): Debian's
# yarnpkg does not run on the Node.js that npm needs here, so npm installs
# this pinned release globally when no yarn is on PATH.
if ! command -v yarn >/dev/null 2>&1; then
  npm install -g --no-fund --no-audit yarn@1.22.22
fi

# yarn 4 ("berry"), for the yarn 2+ cache tests, as the command yarn-berry
# (yarn 1 keeps the name yarn): npm installs this pinned release under
# /usr/local/lib/yarn-berry when no yarn-berry is on PATH.
if ! command -v yarn-berry >/dev/null 2>&1; then
  npm install -g --no-fund --no-audit --prefix /usr/local/lib/yarn-berry @yarnpkg/cli-dist@4.18.1
  ln -sf /usr/local/lib/yarn-berry/lib/node_modules/@yarnpkg/cli-dist/bin/yarn.js /usr/local/bin/yarn-berry
fi
