#!/usr/bin/env bash
# Refreshes the README's screenshots (docs/screenshots): every page at a
# desktop and a phone size, taken by the accessibility test.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/screenshots
SHOTS="$PWD/docs/screenshots" cargo test -p tapedeck-server --test accessibility -- --nocapture
