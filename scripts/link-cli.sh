#!/usr/bin/env bash
# Puts `iaas` on the user's PATH: a symlink to apps/cli/bin/iaas.mjs (what `npm link` makes) in the
# first of $IAAS_BIN_DIR, ~/.local/bin or npm's global bin directory that is on PATH and writable.
# It replaces only an `iaas` that is a link to some checkout's CLI. When no such directory exists,
# it prints the `export PATH=…` line that makes `iaas` (node_modules/.bin) usable.
# Run by `npm run up`; also on its own: bash scripts/link-cli.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET="$ROOT/apps/cli/bin/iaas.mjs"

on_path() { case ":$PATH:" in *":$1:"*) return 0 ;; *) return 1 ;; esac; }

current=$(command -v iaas 2>/dev/null || true)
if [ -n "$current" ] && [ "$(readlink -f "$current")" = "$(readlink -f "$TARGET")" ]; then
  echo "iaas is on your PATH ($current)"
  exit 0
fi

candidates=()
[ -n "${IAAS_BIN_DIR:-}" ] && candidates+=("$IAAS_BIN_DIR")
candidates+=("$HOME/.local/bin")
npm_bin="$(npm prefix -g 2>/dev/null || true)/bin"
[ "$npm_bin" != /bin ] && candidates+=("$npm_bin")

for dir in "${candidates[@]}"; do
  on_path "$dir" || [ "$dir" = "${IAAS_BIN_DIR:-}" ] || continue
  mkdir -p "$dir" 2>/dev/null || continue
  [ -w "$dir" ] || continue
  link="$dir/iaas"
  if [ -e "$link" ] || [ -L "$link" ]; then
    case "$(readlink "$link" 2>/dev/null || true)" in
      */apps/cli/bin/iaas.mjs) ;;
      *) echo "not replacing $link (not a link to an iaas checkout)"; continue ;;
    esac
  fi
  ln -sfn "$TARGET" "$link"
  if on_path "$dir"; then
    echo "linked $link -> $TARGET"
  else
    echo "linked $link -> $TARGET; add it to your PATH:"
    echo "  export PATH=\"$dir:\$PATH\""
  fi
  exit 0
done

echo "no writable directory on your PATH for iaas; add the project's to your PATH:"
echo "  export PATH=\"$ROOT/node_modules/.bin:\$PATH\""
