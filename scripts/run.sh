#!/usr/bin/env bash
# Quick start: installs what is missing (ffmpeg, chromium-headless-shell),
# builds, and runs the server on the
# embedded default (SQLite + ./data) at http://127.0.0.1:8700.
# On the first run it creates an admin account (and an API key for
# programs) and prints how to sign in.
# Extra arguments go to `tapedeck serve` (e.g. --listen 0.0.0.0:8700).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked
bin=target/release/tapedeck
data="${TAPEDECK_SERVER__DATA_DIR:-data}"
if [ -z "$($bin users list --data-dir "$data")" ] && [ -z "$($bin keys list --data-dir "$data")" ]; then
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  echo "$password" | $bin users create admin --admin --data-dir "$data" >/dev/null
  token=$($bin keys create --user admin --admin --data-dir "$data" | tail -n 1)
  echo
  echo "  First run: an admin account was created. Sign in on the web page (the address is printed below) as"
  echo "    user name: admin"
  echo "    password:  $password"
  echo "  (change it: target/release/tapedeck users passwd admin --data-dir $data)"
  echo "  and an admin API key for programs (curl, the CLI's --token):"
  echo "    $token"
  echo
fi
exec "$bin" serve --data-dir "$data" "$@"
