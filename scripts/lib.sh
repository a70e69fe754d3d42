# Shared by scripts/up.sh and .ci/run: install and start what the stack and its tests need.
# shellcheck shell=bash

IAAS_APT_PACKAGES=(qemu-system-x86 qemu-utils busybox-static syslinux syslinux-common mtools fdisk dosfstools cpio xz-utils util-linux openssl
  iproute2 nftables dnsmasq-base e2fsprogs mmdebstrap openssh-client)

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

# Installs the Debian packages that are missing (QEMU, qemu-img, the guest-image tools).
ensure_apt_packages() {
  local missing=() p
  for p in "${IAAS_APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root || ! have apt-get; then
    die "missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# apt-get download (used to fetch the guest kernel) needs package lists.
ensure_apt_lists() {
  if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || [ -z "$(apt-cache policy linux-image-amd64 2>/dev/null | grep Candidate | grep -v none)" ]; then
    is_root && apt-get update -qq || true
  fi
}

pg_ready() { have pg_isready && pg_isready -h 127.0.0.1 -p 5432 -q; }

ensure_postgres() {
  pg_ready && return 0
  if ! have pg_ctlcluster; then
    is_root || die "PostgreSQL is not running on 127.0.0.1:5432; start it or set DATABASE_URL"
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
  die "PostgreSQL did not come up on 127.0.0.1:5432"
}

redis_ready() { have redis-cli && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
  redis_ready && return 0
  if ! have redis-server; then
    is_root || die "Redis is not running on 127.0.0.1:6379; start it or set REDIS_URL"
    log "installing Redis"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis_ready && return 0; sleep 1; done
  die "Redis did not come up on 127.0.0.1:6379"
}

# npm ci when node_modules is missing or older than the lock file.
ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm packages"
    npm ci --no-audit --no-fund
  fi
}
