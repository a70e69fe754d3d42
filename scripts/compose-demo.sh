#!/usr/bin/env bash
# `docker compose up`'s one-shot `demo` service: once the API answers, makes sure the CLI config
# on the `cliconfig` volume holds an admin token (for `docker compose run --rm cli ...`), creates
# the `default` nat network when the worker manages networks, and imports the demo guest (built
# into the image from Debian packages, see the Dockerfile) as the image `demo`. Safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
iaas() { node apps/cli/dist/main.js "$@"; }
json_field() { node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{try{const d=JSON.parse(s);console.log(eval(process.argv[1]))}catch{console.log("")}})' "$1"; }

: "${IAAS_URL:?IAAS_URL must name the API, e.g. http://api:8080}"
node apps/api/dist/bootstrap.js "$IAAS_URL"

for _ in $(seq 1 120); do
  [ "$(iaas host list -o json 2>/dev/null | json_field 'd.items.some(h => h.state === "online")')" = true ] && break
  sleep 1
done
mode=$(iaas host list -o json | json_field 'd.items.find(h => h.state === "online")?.network?.mode ?? ""')
[ -n "$mode" ] || { echo "no worker came online; see: docker compose logs worker" >&2; exit 1; }

if [ "$mode" = bridge ] && ! iaas network show default >/dev/null 2>&1; then
  iaas network create default --mode nat
fi
state=$(iaas image show demo -o json 2>/dev/null | json_field 'd.state' || true)
if [ "$state" != ready ]; then
  [ -z "$state" ] || iaas image delete demo --wait
  iaas image import demo --file /app/.cache/guests/linux.qcow2 --description "Linux demo guest (busybox)" --wait
fi
iaas host list
cat <<MSG
The stack is up. Use the CLI through compose:
  docker compose run --rm cli vm create hello --image demo --start --wait
  docker compose run --rm cli vm console hello
MSG
