#!/usr/bin/env bash
# Builds every test guest image into the guest cache and prints their paths.
#
# Usage: scripts/guest/build-all.sh [--out DIR] [--force] [--verify]
#   DIR       default $IAAS_GUEST_DIR, else <repo>/.cache/guests
#   --force   rebuild even when the images are up to date
#   --verify  afterwards boot each image under QEMU (TCG) and check its marker
#             and its reaction to QMP system_powerdown (scripts/guest/verify.mjs)
# Both builders are idempotent, so running this again is cheap (~0.4 s).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
OUT=${IAAS_GUEST_DIR:-$REPO_ROOT/.cache/guests}
PASS=()
VERIFY=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "build-all: error: --out needs a directory" >&2; exit 1; }; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --force|-f) PASS+=(--force); shift ;;
    --verify) VERIFY=1; shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-all: error: unknown argument: $1 (see --help)" >&2; exit 1 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

command -v node >/dev/null || { echo "build-all: error: node (>= 20) is needed for build-bootsector.mjs" >&2; exit 1; }

t0=$(date +%s.%N)
node "$SCRIPT_DIR/build-bootsector.mjs" --out "$OUT" "${PASS[@]}"
bash "$SCRIPT_DIR/build-linux.sh" --out "$OUT" "${PASS[@]}"
BOOT=$OUT/bootsector.raw
LINUX=$OUT/linux.qcow2
[[ -s $BOOT && -s $LINUX ]] || { echo "build-all: error: an image is missing after the build" >&2; exit 1; }
t1=$(date +%s.%N)
echo "build-all: done in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"

if [[ $VERIFY -eq 1 ]]; then
  echo "build-all: verifying (boots each image under QEMU/TCG)"
  node "$SCRIPT_DIR/verify.mjs" all --out "$OUT"
fi

echo "bootsector=$BOOT"
echo "linux=$LINUX"
