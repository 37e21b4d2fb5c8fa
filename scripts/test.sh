#!/usr/bin/env bash
# Installs what the test suite needs when it is missing, then runs the whole suite.
#
#   scripts/test.sh            install missing tools, then `cargo test --workspace`
#   scripts/test.sh -- ARGS    extra arguments for cargo test (e.g. `-- --nocapture`)
#
# Live tests start their own PostgreSQL and Redis servers on free loopback ports in
# temporary directories; nothing touches a server that happens to be running.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || missing+=(postgresql)
ls /usr/share/postgresql/*/extension/hstore.control >/dev/null 2>&1 || missing+=(postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v age >/dev/null 2>&1 || missing+=(age)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)   # rootless podman tests
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# moto (an S3-compatible server from PyPI) for the repository's S3 tests.
if ! command -v moto_server >/dev/null 2>&1; then
  log "installing moto[server] from PyPI"
  python3 -m pip install --quiet 'moto[server]'
fi

# s3s-fs (an S3 server that checks SigV4 signatures) for the repository's S3 tests.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  log "installing s3s-fs from crates.io"
  cargo install --quiet s3s-fs@0.14.1 --features binary --locked
fi

# The package's own cluster is not needed: tests run their own servers.
if [ -n "${pg_bin:-}" ] || pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); then
  export PATH="$pg_bin:$PATH"
fi

log "tools: $(initdb --version | head -1); $(redis-server --version | cut -d' ' -f1-3); $(zstd --version)"
log "running cargo test --workspace"
exec cargo test --workspace --no-fail-fast "${@:2}"
