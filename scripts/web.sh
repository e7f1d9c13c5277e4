#!/usr/bin/env bash
# The story page (--web-addr): its committed bundle is what its source
# builds to, and it works in a real browser.
#
# 1. The locked npm packages in assistant-server/web, then `npm run build`: code generated
#    from proto/assistant.proto, type-checked, bundled. The build must
#    leave the committed src/gen/ and dist/app.js unchanged: a stale
#    bundle fails here, with the difference shown.
# 2. test/browser.mjs: Debian's Chromium, driven by playwright-core,
#    against the server binary: the page loads, a whole story is typed
#    exactly, split characters show whole, Cancel reaches the server, and
#    the pace changes mid-story.
#
# Installs Debian's chromium if it is missing (needs root or sudo), and the
# page's npm packages (the npm registry). Usage: scripts/web.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

if ! command -v chromium >/dev/null; then
  say "installing chromium"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

say "installing the page's packages"
# Not `npm ci`: buf ships a binary per platform as optional packages, and a
# registry mirror that lacks some platforms' (as some do) makes `npm ci`
# call the lock file out of sync. `install --no-save` installs the locked
# versions of what the lock holds, skips what the registry lacks, and
# leaves the lock alone.
(cd assistant-server/web && npm install --no-save --no-audit --no-fund --loglevel=error)

say "rebuilding the bundle from its source"
(cd assistant-server/web && npm run --silent build)
if ! git diff --quiet -- assistant-server/web/src/gen assistant-server/web/dist \
  || [ -n "$(git ls-files --others --exclude-standard -- assistant-server/web/src/gen assistant-server/web/dist)" ]; then
  git --no-pager diff --stat -- assistant-server/web/src/gen assistant-server/web/dist
  git ls-files --others --exclude-standard -- assistant-server/web/src/gen assistant-server/web/dist
  echo "FAIL: the committed bundle is stale: run \`npm run build\` in assistant-server/web and commit the result" >&2
  exit 1
fi
echo "PASS  the committed bundle is what the source builds to"

say "building the server"
cargo build --quiet -p assistant-server
say "the page in Chromium"
ASSISTANT_SERVER="$PWD/target/debug/assistant-server" node assistant-server/web/test/browser.mjs
