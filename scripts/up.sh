#!/usr/bin/env bash
# Brings the whole stack up on this machine: packages, Postgres, Redis, migrations, the API and
# one worker in the background, and a demo image. `npm run down` stops the API and the worker.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

STATE="$ROOT/.iaas"
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/iaas}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export IAAS_IMAGE_STORE=${IAAS_IMAGE_STORE:-$STATE/images}
export IAAS_API_PORT=${IAAS_API_PORT:-8080}
export IAAS_HOST_ID=${IAAS_HOST_ID:-$(hostname | sed 's/[^A-Za-z0-9._-]/-/g' | cut -c1-63)}
export IAAS_DATA_DIR=${IAAS_DATA_DIR:-$STATE/hosts/$IAAS_HOST_ID}
export IAAS_ACCEL=${IAAS_ACCEL:-tcg}
URL="http://127.0.0.1:$IAAS_API_PORT"
export IAAS_URL=$URL

ensure_apt_packages
ensure_apt_lists
case "$DATABASE_URL" in *127.0.0.1*|*localhost*) ensure_postgres ;; esac
case "$REDIS_URL" in *127.0.0.1*|*localhost*) ensure_redis ;; esac
ensure_node_modules

log "building"
npm run build --silent >/dev/null

log "migrating $DATABASE_URL"
node scripts/db-create.mjs
npx prisma migrate deploy >/dev/null

mkdir -p "$STATE/logs" "$STATE/run" "$IAAS_IMAGE_STORE" "$IAAS_DATA_DIR"

# The API needs a token for every request: the first run makes an admin token and writes it to
# the CLI config ($IAAS_CONFIG, default ~/.config/iaas/config.json, mode 0600).
log "CLI credentials"
node apps/api/dist/bootstrap.js "$URL"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_bg() { # name pidfile command...
  local name=$1 pidfile=$2; shift 2
  if running "$pidfile"; then
    log "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  log "starting $name (log: ${STATE#"$ROOT"/}/logs/$name.log)"
  nohup "$@" >>"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
}

start_bg api "$STATE/run/api.pid" node apps/api/dist/main.js
for _ in $(seq 1 60); do curl -fs "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs "$URL/readyz" >/dev/null || die "the API did not become ready; see .iaas/logs/api.log"
if [ "${IAAS_AUTH:-token}" != none ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/vms")" != 401 ]; then
  die "the API answers /v1 without a token; an older API may still run (npm run down), or check IAAS_AUTH"
fi

# json_field JS-EXPRESSION: evaluates it with `d` = the JSON on stdin, prints the result.
json_field() { node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{try{const d=JSON.parse(s);console.log(eval(process.argv[1]))}catch{console.log("")}})' "$1"; }
iaas() { node apps/cli/dist/main.js "$@"; }
host_online() { [ "$(iaas host list -o json 2>/dev/null | json_field "d.items.some(h => h.id === '$IAAS_HOST_ID' && h.state === 'online')")" = true ]; }
start_bg worker "$STATE/run/worker.pid" node apps/worker/dist/main.js
for _ in $(seq 1 120); do
  host_online && break
  running "$STATE/run/worker.pid" || die "the worker exited; see .iaas/logs/worker.log: $(tail -3 "$STATE/logs/worker.log")"
  sleep 0.5
done
host_online || die "host '$IAAS_HOST_ID' did not come online; see .iaas/logs/worker.log"

if ! iaas network show default >/dev/null 2>&1; then
  log "creating the 'default' nat network (DHCP, DNS, outbound NAT; a free 10.x.y.0/24)"
  iaas network create default --mode nat >/dev/null || die "could not create the default network"
fi

demo_json=$(iaas image show demo -o json 2>/dev/null || true)
demo_state=$(printf '%s' "$demo_json" | json_field d.state)
demo_reason=$(printf '%s' "$demo_json" | json_field 'd.lastError ? d.lastError.message : ""')
if [ "$demo_state" = ready ]; then
  # The row may outlive its file (a re-cloned checkout, a store cleared by hand): check the file
  # (exists, size, sha256, qemu-img check) before trusting it.
  verify_rc=0
  verify_err=$(iaas image verify demo --wait 2>&1 >/dev/null) || verify_rc=$?
  if [ "$verify_rc" = 1 ]; then
    demo_state=error
    demo_reason=$(printf '%s\n' "$verify_err" | sed -n 's/^error: //p' | head -1)
  elif [ "$verify_rc" != 0 ]; then
    log "could not verify the demo image (exit $verify_rc), keeping it: $(printf '%s\n' "$verify_err" | sed -n 's/^error: //p' | head -1)"
  fi
fi
if [ -n "$demo_state" ] && [ "$demo_state" != ready ]; then
  log "the demo image is in state $demo_state${demo_reason:+ ($demo_reason)}; deleting it and importing it again"
  iaas image delete demo --wait >/dev/null || die "could not delete the demo image (see above); delete it with: iaas image delete demo --wait"
  demo_state=""
fi
if [ -z "$demo_state" ]; then
  log "building the demo guest image (Debian kernel + busybox, offline)"
  bash scripts/guest/build-linux.sh --out "$ROOT/.cache/guests" >"$STATE/logs/guest-build.log" 2>&1 \
    || die "building the demo image failed; see .iaas/logs/guest-build.log"
  log "importing it as 'demo'"
  node apps/cli/dist/main.js image import demo --file "$ROOT/.cache/guests/linux.qcow2" --description "Linux demo guest (busybox)" --wait
fi

node apps/cli/dist/main.js host list
node apps/cli/dist/main.js network list
log "putting iaas on your PATH"
bash scripts/link-cli.sh
cat <<MSG

The stack is up: API $URL, worker for host '$IAAS_HOST_ID' ($IAAS_ACCEL). Logs: .iaas/logs/.
Try:
  iaas vm create hello --image demo --start --wait
  iaas vm ip hello
  iaas vm console hello
  iaas vm stop hello --wait
  iaas job list
  source <(iaas completion bash)     # tab completion (zsh, fish: iaas completion --help)
Stop the API and the worker (VMs keep running) with: npm run down
MSG
