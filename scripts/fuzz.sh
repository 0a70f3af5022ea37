#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 15) each, under a 1 GB
# memory limit; a crash or running out of it fails.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH" RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked --quiet
# cargo-fuzz has no --locked: a lock file that no longer matches the
# targets' manifest fails here instead of being rewritten in the clone.
cargo fetch --locked --quiet
target_dir="${CARGO_TARGET_DIR:-../target}/fuzz"
log=$(mktemp)
for t in $(cargo fuzz list); do
  # Committed seeds (fuzz/seeds/TARGET) start the search from real inputs.
  corpus=()
  [ -d "seeds/$t" ] && mkdir -p "corpus/$t" && corpus=("corpus/$t" "seeds/$t")
  if ! cargo fuzz run --sanitizer none -O --target-dir "$target_dir" "$t" "${corpus[@]}" -- \
      -max_total_time="${FUZZ_SECONDS:-15}" -rss_limit_mb=1024 > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED"
    exit 1
  fi
  echo "fuzz: $t $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
done
rm -f "$log"
