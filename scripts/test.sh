#!/usr/bin/env bash
# `npm test [-- vitest args]`: gets what the tests need, then builds, type-checks the tests and runs
# them. Nothing to set first:
#   - npm packages: installed (npm ci) when node_modules is missing or older than the lock file;
#   - PostgreSQL and Redis: DATABASE_URL / REDIS_URL when set; otherwise the local servers on
#     127.0.0.1:5432 / :6379 when they answer; otherwise, as root with apt, installed and started
#     (as .ci/run does); otherwise left unset, so the tests start containers with testcontainers
#     (needs a Docker engine);
#   - QEMU, qemu-img and the guest-building tools (apt, as root), and the offline test guests
#     (built once into .cache/guests, rebuilt only when their scripts change).
# IAAS_TEST_SKIP_SETUP=1 skips all of it and runs the tests with the environment as it is.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
set -e

can_install() { is_root && have apt-get; }

if [ "${IAAS_TEST_SKIP_SETUP:-}" != 1 ]; then
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "npm ci (node_modules missing or older than package-lock.json)"
    npm ci --no-audit --no-fund
  fi

  if [ -z "${DATABASE_URL:-}" ]; then
    if pg_ready || { can_install && ensure_postgres; }; then
      export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
      log "PostgreSQL: $DATABASE_URL (set DATABASE_URL to use another server)"
    else
      log "PostgreSQL: none on 127.0.0.1:5432 and DATABASE_URL unset; the tests start a container (testcontainers)"
    fi
  fi
  if [ -z "${REDIS_URL:-}" ]; then
    if redis_ready || { can_install && ensure_redis; }; then
      export REDIS_URL=redis://127.0.0.1:6379
      log "Redis: $REDIS_URL (set REDIS_URL to use another server)"
    else
      log "Redis: none on 127.0.0.1:6379 and REDIS_URL unset; the tests start a container (testcontainers)"
    fi
  fi

  ensure_apt_packages
  ensure_apt_lists
  log "offline test guests (.cache/guests; built once)"
  node scripts/guest/build-bootsector.mjs --out "$ROOT/.cache/guests"
  bash scripts/guest/build-linux.sh --out "$ROOT/.cache/guests"
  bash scripts/guest/build-debian.sh --out "$ROOT/.cache/guests"
fi

export TURBO_TELEMETRY_DISABLED=1
npm run build
npm run typecheck:tests
exec npx vitest run "$@"
