#!/usr/bin/env bash
# Builds linux.qcow2: a bootable disk with a tiny Linux test guest, offline from
# Debian packages and without root (no mount, no loop devices, no mknod).
#
#   disk (MBR, syslinux mbr.bin) -> partition 1 at 1 MiB, FAT, bootable
#     ldlinux.sys/ldlinux.c32, syslinux.cfg, vmlinuz (Debian kernel),
#     initrd.gz (busybox-static + virtio/e1000/ACPI-button modules + /init)
#
# The guest prints IAAS-GUEST-READY on ttyS0 when it is up, configures its NICs
# (DHCP in the background, or a static address from fw_cfg), and powers off
# when the ACPI power button is pressed (QMP system_powerdown), so QEMU exits.
#
# Usage: scripts/guest/build-linux.sh [--out DIR] [--force] [--kernel-version VER]
#   DIR      output dir; default $IAAS_GUEST_DIR, else <repo>/.cache/guests
#   VER      kernel ABI name, e.g. 6.1.0-56-amd64; default $IAAS_GUEST_KVER, else
#            what the linux-image-amd64 metapackage depends on (apt-cache)
#   --force  rebuild even if DIR/linux.qcow2 is newer than this script
# Env: IAAS_GUEST_KERNEL_DEB=/path/linux-image-*.deb uses that package instead of
#      apt-get download; IAAS_GUEST_EXTRA_MODULES="mod1 mod2" adds modules.
# The downloaded kernel package is cached in DIR/.work/debs/ (rm -rf DIR/.work to drop it).
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

OUT=${IAAS_GUEST_DIR:-$REPO_ROOT/.cache/guests}
FORCE=0
KVER=${IAAS_GUEST_KVER:-}

T0=$(date +%s.%N)
log() { printf 'build-linux: [%5.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
die() { printf 'build-linux: error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --force|-f) FORCE=1; shift ;;
    --kernel-version) [[ $# -ge 2 ]] || die "--kernel-version needs a value"; KVER=$2; shift 2 ;;
    --kernel-version=*) KVER=${1#--kernel-version=}; shift ;;
    -h|--help) sed -n '2,20p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
IMAGE=$OUT/linux.qcow2

if [[ $FORCE -eq 0 && -s $IMAGE && $IMAGE -nt $SCRIPT_PATH ]]; then
  log "$IMAGE is up to date (newer than the script); nothing to do (--force rebuilds)"
  echo "$IMAGE"
  exit 0
fi

# ---------------------------------------------------------------------------
# Tools. Each: command, Debian package that provides it.
MISSING=()
need() { command -v "$1" >/dev/null 2>&1 || MISSING+=("$2"); }
need dpkg-deb dpkg
need cpio cpio
need gzip gzip
need mkfs.vfat dosfstools
need mcopy mtools
need sfdisk fdisk
need syslinux syslinux
need qemu-img qemu-utils
[[ -n ${IAAS_GUEST_KERNEL_DEB:-} ]] || { need apt-get apt; need apt-cache apt; }
SYSLINUX_MBR=
for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/SYSLINUX/mbr.bin /usr/share/syslinux/mbr.bin; do
  [[ -f $f ]] && { SYSLINUX_MBR=$f; break; }
done
[[ -n $SYSLINUX_MBR ]] || MISSING+=(syslinux-common)
elf_has_interp() { # true if ELF file $1 has a PT_INTERP program header (= dynamically linked)
  local f=$1 phoff phentsize phnum i
  phoff=$(od -An -tu8 -j32 -N8 "$f" | tr -d ' ')
  phentsize=$(od -An -tu2 -j54 -N2 "$f" | tr -d ' ')
  phnum=$(od -An -tu2 -j56 -N2 "$f" | tr -d ' ')
  for ((i = 0; i < phnum; i++)); do
    [[ $(od -An -tu4 -j$((phoff + i * phentsize)) -N4 "$f" | tr -d ' ') == 3 ]] && return 0
  done
  return 1
}
BUSYBOX=/bin/busybox
if [[ ! -x $BUSYBOX ]] || elf_has_interp "$BUSYBOX"; then
  MISSING+=(busybox-static)   # the dynamically linked "busybox" package is no use in an initramfs
fi
if [[ ${#MISSING[@]} -gt 0 ]]; then
  mapfile -t MISSING < <(printf '%s\n' "${MISSING[@]}" | sort -u)
  die "missing Debian packages: ${MISSING[*]}
  install them with: apt-get install -y ${MISSING[*]}"
fi

WORK=$OUT/.work/linux
DEBS=$OUT/.work/debs
mkdir -p "$DEBS"
# One build at a time per output dir (test runners may start several at once);
# whoever waited re-checks whether the image is now up to date.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$OUT/.work/linux.lock"
  if ! flock -n 9; then
    log "another build-linux.sh is running for $OUT; waiting for it"
    flock 9
    if [[ $FORCE -eq 0 && -s $IMAGE && $IMAGE -nt $SCRIPT_PATH ]]; then
      log "$IMAGE was built meanwhile; nothing to do"
      echo "$IMAGE"
      exit 0
    fi
  fi
fi
TMP_IMAGE=$IMAGE.tmp.$$
cleanup() { rm -rf "$WORK" "$TMP_IMAGE"; }
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"
T_START=$(date +%s.%N)

# ---------------------------------------------------------------------------
# 1. Kernel package.
if [[ -n ${IAAS_GUEST_KERNEL_DEB:-} ]]; then
  DEB=$(readlink -f "$IAAS_GUEST_KERNEL_DEB")
  [[ -f $DEB ]] || die "IAAS_GUEST_KERNEL_DEB=$IAAS_GUEST_KERNEL_DEB does not exist"
  log "using kernel package $DEB"
else
  if [[ -z $KVER ]]; then
    # linux-image-amd64 (metapackage) -> "Depends: linux-image-6.1.0-56-amd64"
    KVER=$(apt-cache depends linux-image-amd64 2>/dev/null \
      | sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*-amd64\)\(-unsigned\)\{0,1\}$/\1/p' | head -n1 || true)
    if [[ -z $KVER ]]; then
      # no metapackage in the apt lists: take the newest linux-image-*-amd64 known to apt
      KVER=$(apt-cache pkgnames linux-image- 2>/dev/null \
        | sed -n 's/^linux-image-\([0-9][0-9.]*-[0-9][0-9]*-amd64\)$/\1/p' | sort -V | tail -n1 || true)
    fi
    [[ -n $KVER ]] || die "cannot find a Debian kernel package in the apt lists; run: apt-get update
  (or pass --kernel-version 6.1.0-NN-amd64, or IAAS_GUEST_KERNEL_DEB=/path/to/linux-image-*.deb)"
  fi
  PKG=linux-image-$KVER
  DEB=$(find "$DEBS" -maxdepth 1 -name "${PKG}_*_amd64.deb" | sort -V | tail -n1)
  if [[ -n $DEB ]]; then
    log "kernel $KVER: reusing cached $(basename "$DEB")"
  else
    log "kernel $KVER: apt-get download $PKG"
    APT_OPTS=()
    # as root apt drops privileges to _apt, which may not be able to write here
    [[ $(id -u) -eq 0 ]] && APT_OPTS+=(-o APT::Sandbox::User=root)
    if ! (cd "$DEBS" && apt-get download "${APT_OPTS[@]}" -q "$PKG"); then
      die "apt-get download $PKG failed; run apt-get update (needs a Debian mirror); list kernels with: apt-cache search --names-only '^linux-image-[0-9].*-amd64\$' (or set IAAS_GUEST_KERNEL_DEB)"
    fi
    DEB=$(find "$DEBS" -maxdepth 1 -name "${PKG}_*_amd64.deb" | sort -V | tail -n1)
    [[ -n $DEB ]] || die "apt-get download $PKG left no ${PKG}_*_amd64.deb in $DEBS"
  fi
fi

log "unpacking $(basename "$DEB") (dpkg-deb -x)"
dpkg-deb -x "$DEB" "$WORK/pkg"
MODROOT=
for d in "$WORK"/pkg/lib/modules/* "$WORK"/pkg/usr/lib/modules/*; do
  [[ -d $d/kernel ]] && { MODROOT=$d; break; }
done
[[ -n $MODROOT ]] || die "no lib/modules/<version>/kernel in $DEB"
PKG_KVER=$(basename "$MODROOT")
[[ -z $KVER || $KVER == "$PKG_KVER" ]] || log "note: package contains kernel $PKG_KVER (asked for $KVER)"
KVER=$PKG_KVER
VMLINUZ=
for f in "$WORK/pkg/boot/vmlinuz-$KVER" "$MODROOT/vmlinuz"; do
  [[ -f $f ]] && { VMLINUZ=$f; break; }
done
[[ -n $VMLINUZ ]] || die "no vmlinuz-$KVER in $DEB"

# ---------------------------------------------------------------------------
# 2. Modules, in dependency order (read from each module's .modinfo "depends=").
WANT_MODULES=(virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
  virtio_blk failover net_failover virtio_net e1000 button evdev qemu_fw_cfg)
# shellcheck disable=SC2206
WANT_MODULES+=(${IAAS_GUEST_EXTRA_MODULES:-})

ROOT=$WORK/initramfs
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,mnt,etc/iaas,var}
ln -s ../run "$ROOT/var/run"
DEST_MODDIR=$ROOT/lib/modules/$KVER
mkdir -p "$DEST_MODDIR"
declare -A MOD_STATE=()   # name -> visiting|done
LOAD_ORDER=()

declare -A MOD_PATH=() MOD_BUILTIN=()   # module name (with _) -> file / 1
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; MOD_PATH[${n//-/_}]=$f
done < <(find "$MODROOT/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
if [[ -f $MODROOT/modules.builtin ]]; then
  while IFS= read -r f; do
    n=${f##*/}; n=${n%.ko}; MOD_BUILTIN[${n//-/_}]=1
  done <"$MODROOT/modules.builtin"
fi
decompress_to() { # src dest(.ko)
  case "$1" in
    *.ko) cp "$1" "$2" ;;
    *.ko.xz) command -v xz >/dev/null || die "$1 is xz-compressed: apt-get install -y xz-utils"; xz -dc "$1" >"$2" ;;
    *.ko.zst) command -v zstd >/dev/null || die "$1 is zstd-compressed: apt-get install -y zstd"; zstd -qdc "$1" >"$2" ;;
    *.ko.gz) gzip -dc "$1" >"$2" ;;
  esac
}
add_module() {
  local name=${1//-/_} src rel dst deps dep
  case "${MOD_STATE[$name]:-}" in
    done) return 0 ;;
    visiting) die "module dependency cycle at $name" ;;
  esac
  if [[ -n ${MOD_BUILTIN[$name]:-} ]]; then MOD_STATE[$name]="done"; return 0; fi
  src=${MOD_PATH[$name]:-}
  [[ -n $src ]] || die "module $name not found in $DEB"
  MOD_STATE[$name]=visiting
  rel=${src#"$MODROOT"/}
  rel=${rel%.xz}; rel=${rel%.zst}; rel=${rel%.gz}
  dst=$DEST_MODDIR/$rel
  mkdir -p "$(dirname "$dst")"
  decompress_to "$src" "$dst"
  deps=$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p')
  for dep in ${deps//,/ }; do add_module "$dep"; done
  MOD_STATE[$name]="done"
  LOAD_ORDER+=("$rel")
}
for m in "${WANT_MODULES[@]}"; do add_module "$m"; done
printf '%s\n' "${LOAD_ORDER[@]}" >"$ROOT/etc/iaas/modules"
cp "$MODROOT"/modules.builtin "$MODROOT"/modules.order "$DEST_MODDIR/" 2>/dev/null || true
# modules.dep etc. so that `modprobe` works inside the guest too (/init uses insmod in order)
"$BUSYBOX" depmod -b "$ROOT" "$KVER" 2>/dev/null || log "note: busybox depmod failed; modprobe will not work in the guest (insmod does)"
log "modules (load order): $(sed 's|.*/||; s|\.ko$||' "$ROOT/etc/iaas/modules" | tr '\n' ' ')"

# ---------------------------------------------------------------------------
# 3. Initramfs: busybox-static (/init makes the applet symlinks with
#    `busybox --install -s`: ~270 symlinks cost nothing at boot but ~2 s of
#    forks at build time), /init, udhcpc script.
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"

cat >"$ROOT/init" <<'INIT'
#!/bin/sh
# /init of the IaaS test guest (PID 1, busybox ash). Built by scripts/guest/build-linux.sh.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
/bin/busybox --install -s      # applet symlinks: /bin/mount, /sbin/insmod, ...
# devtmpfs first: it provides every device node, so the build needs no mknod
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
KVER=$(uname -r)

say() { echo "$*"; }
fwcfg() { # fwcfg NAME -> value of the fw_cfg entry opt/NAME (from -fw_cfg name=opt/NAME,string=...)
  [ -r "/sys/firmware/qemu_fw_cfg/by_name/opt/$1/raw" ] && cat "/sys/firmware/qemu_fw_cfg/by_name/opt/$1/raw"
}

# --- modules, dependencies first (list made at build time) ------------------
while read -r m; do
  insmod "/lib/modules/$KVER/$m" || say "iaas-init: insmod $m failed"
done </etc/iaas/modules

# --- ACPI power button -> poweroff ------------------------------------------
# button.ko turns the ACPI power button into an input device named
# "Power Button"; evdev exposes it as /dev/input/eventN. Any event there is a
# press (QMP system_powerdown): block until one struct input_event (24 bytes on
# x86_64; evdev rejects shorter reads) can be read, then power off.
pb=0
for ev in /sys/class/input/event*; do
  [ -e "$ev" ] || continue
  if [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ]; then
    ( dev=/dev/input/${ev##*/}
      until [ "$(dd if="$dev" bs=24 count=1 2>/dev/null | wc -c)" -ge 24 ]; do sleep 1; done
      printf '\nIAAS-GUEST-POWEROFF\n'   # own line, even after a shell prompt
      sync
      poweroff -f ) &
    pb=$((pb + 1))
  fi
done
[ "$pb" -gt 0 ] || say "iaas-init: no ACPI power button found; system_powerdown will be ignored"

# --- identity ----------------------------------------------------------------
hn=$(fwcfg iaas/hostname || true)
hostname "${hn:-iaas-guest}"

say "IAAS-GUEST-READY"
say "IAAS-GUEST-INFO kernel=$KVER hostname=$(hostname) $(grep -o 'MemTotal:.*' /proc/meminfo | tr -s ' ')"
for f in /sys/firmware/qemu_fw_cfg/by_name/opt/*/raw /sys/firmware/qemu_fw_cfg/by_name/opt/*/*/raw; do
  [ -r "$f" ] || continue
  n=${f#/sys/firmware/qemu_fw_cfg/by_name/}; n=${n%/raw}
  say "IAAS-FW-CFG $n=$(head -c 200 "$f" | head -n1)"
done

# --- network (never blocks the boot) -----------------------------------------
# Per NIC: static address from fw_cfg opt/iaas/ethN ("10.0.0.5/24" or
# "10.0.0.5/24,10.0.0.1" with a gateway), else DHCP (3 tries, then give up).
ip link set lo up
dhcp_pids=
for dev in /sys/class/net/*; do
  n=${dev##*/}
  [ "$n" = lo ] && continue
  ip link set "$n" up
  cfg=$(fwcfg "iaas/$n" || true)
  if [ -n "$cfg" ]; then
    addr=${cfg%%,*}; gw=${cfg#*,}
    ip addr add "$addr" dev "$n"
    [ "$gw" != "$cfg" ] && [ -n "$gw" ] && ip route add default via "$gw" dev "$n"
    say "IAAS-GUEST-IP $n ${addr%/*}"
  else
    udhcpc -i "$n" -q -n -t 3 -T 1 -A 1 -s /etc/iaas/udhcpc.script >/dev/null 2>&1 &
    dhcp_pids="$dhcp_pids $!"
  fi
done

# --- interactive shells (console, and ttyS1 if a second UART exists) --------
# The console shell starts once DHCP is done (<= ~4 s), so that the
# IAAS-GUEST-IP lines come before its prompt.
respawn_shell() {
  while :; do
    setsid sh -c "exec sh -l <$1 >$1 2>&1"
    sleep 1
  done
}
( for p in $dhcp_pids; do while kill -0 "$p" 2>/dev/null; do sleep 0.2; done; done
  respawn_shell /dev/ttyS0 ) &
grep -q '^1: uart:[^u]' /proc/tty/driver/serial 2>/dev/null && respawn_shell /dev/ttyS1 &

# PID 1 must never exit
while :; do sleep 3600; done
INIT
chmod 755 "$ROOT/init"

cat >"$ROOT/etc/iaas/udhcpc.script" <<'DHCP'
#!/bin/sh
# udhcpc event script: apply the lease, print a marker line on the console
case "$1" in
  deconfig) ip addr flush dev "$interface" 2>/dev/null ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "${router:-}" ]; then
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : >/etc/resolv.conf
    for d in ${dns:-}; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "IAAS-GUEST-IP $interface $ip" >/dev/console
    ;;
esac
exit 0
DHCP
chmod 755 "$ROOT/etc/iaas/udhcpc.script"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\n' >"$ROOT/etc/group"
printf 'export PS1="\\h:\\w# "\n' >"$ROOT/etc/profile"

# cpio (newc) of the tree, owned by root whoever builds it, plus a hand-made
# archive member for /dev/console (a device node we cannot create without root;
# the kernel opens it for /init before /init mounts devtmpfs).
newc_entry() { # name mode(octal) rdevmajor rdevminor
  local name=$1 mode=$2 maj=$3 min=$4 namesize hdr pad
  namesize=$((${#name} + 1))
  hdr=$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "$((8#$mode))" 0 0 1 0 0 0 0 "$maj" "$min" "$namesize" 0)
  printf '%s%s\0' "$hdr" "$name"
  pad=$(( (4 - (110 + namesize) % 4) % 4 ))
  head -c "$pad" /dev/zero
}
INITRD=$WORK/initrd.gz
(
  cd "$ROOT"
  find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0
  { newc_entry dev 040755 0 0; newc_entry dev/console 020600 5 1; newc_entry 'TRAILER!!!' 0 0 0; }
) | gzip -9 -n >"$INITRD"
log "initramfs: $(du -k "$INITRD" | cut -f1) KiB (busybox $("$BUSYBOX" --help 2>&1 | sed -n '1s/^BusyBox \([^ ]*\).*/\1/p'), ${#LOAD_ORDER[@]} modules)"

# ---------------------------------------------------------------------------
# 4. Bootable disk: MBR (syslinux mbr.bin) + one bootable FAT partition at 1 MiB.
KERNEL_KB=$(du -k "$VMLINUZ" | cut -f1)
INITRD_KB=$(du -k "$INITRD" | cut -f1)
FAT_MB=$(( (KERNEL_KB + INITRD_KB) / 1024 + 4 ))
(( FAT_MB < 31 )) && FAT_MB=31        # 32 MiB disk: room to spare, still tiny as qcow2
FAT=$WORK/fat.img
RAW=$WORK/disk.raw
log "FAT filesystem: ${FAT_MB} MiB (mkfs.vfat -C), copying vmlinuz, initrd.gz, syslinux.cfg (mcopy)"
mkfs.vfat -C -F 16 -n IAASBOOT "$FAT" $((FAT_MB * 1024)) >/dev/null
cat >"$WORK/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 1
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0,115200 quiet panic=-1 cryptomgr.notests
CFG
export MTOOLS_SKIP_CHECK=1
mcopy -i "$FAT" "$VMLINUZ" ::/vmlinuz
mcopy -i "$FAT" "$INITRD" ::/initrd.gz
mcopy -i "$FAT" "$WORK/syslinux.cfg" ::/syslinux.cfg

log "partition table (sfdisk), FAT at 1 MiB (dd), syslinux --install --offset 1048576, mbr.bin"
truncate -s $(( (FAT_MB + 1) * 1024 * 1024 )) "$RAW"
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk --quiet "$RAW"
dd if="$FAT" of="$RAW" bs=1M seek=1 conv=notrunc status=none
syslinux --install --offset 1048576 "$RAW"
dd if="$SYSLINUX_MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none

qemu-img convert -f raw -O qcow2 "$RAW" "$TMP_IMAGE"
mv -f "$TMP_IMAGE" "$IMAGE"
printf '%s\n' "$KVER" >"$OUT/linux.kernel-version"

T_END=$(date +%s.%N)
log "wrote $IMAGE ($(du -k "$IMAGE" | cut -f1) KiB on disk, $((FAT_MB + 1)) MiB virtual; kernel $KVER) in $(awk -v a="$T_START" -v b="$T_END" 'BEGIN{printf "%.1f", b-a}') s"
echo "$IMAGE"
