#!/usr/bin/env bash
# Builds debian-12.qcow2: a Debian 12 (bookworm) cloud image that boots by
# itself from the BIOS (no -kernel), configured by cloud-init (NoCloud).
#
#   disk (MBR, syslinux mbr.bin)
#     partition 1 at 1 MiB, FAT32, bootable, label DEBIANBOOT:
#       ldlinux.sys/ldlinux.c32, syslinux.cfg, vmlinuz, initrd.img (Debian's own)
#     partition 2, ext4, label debian-root: the root filesystem (mmdebstrap)
#
# The guest: systemd, linux-image-amd64, cloud-init (datasources NoCloud, None;
# default user "debian" with passwordless sudo), openssh-server, ifupdown +
# isc-dhcp-client, cloud-guest-utils (the root partition grows to the disk on
# first boot), a getty on ttyS0. machine-id and SSH host keys are generated at
# first boot, so every VM gets its own.
#
# Usage: scripts/guest/build-debian.sh [--out DIR] [--force] [--size SIZE] [--refresh]
#   DIR        output dir; default $IAAS_GUEST_DIR, else <repo>/.cache/guests
#   --force    rebuild even if DIR/debian-12.qcow2 is newer than this script
#   --size     virtual disk size, e.g. 2G (default), 3G, 2560M
#   --refresh  also run mmdebstrap again (newer packages from the mirror) instead
#              of reusing the root filesystem tarball cached in DIR/.work
# Env: IAAS_DEBIAN_MIRROR=http://host/debian uses that mirror (bookworm,
#      bookworm-updates) instead of the one in this machine's apt sources;
#      IAAS_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security)
#      goes with it.
# Needs root (mmdebstrap installs packages in a chroot; the root filesystem keeps
# file owners). Missing tools are installed with apt-get when run as root.
set -euo pipefail

ORIG_ARGS=("$@")
PATH=$PATH:/usr/sbin:/sbin     # mke2fs, mkfs.vfat, sfdisk live there; not on every user's PATH
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

OUT=${IAAS_GUEST_DIR:-$REPO_ROOT/.cache/guests}
FORCE=0
REFRESH=0
SIZE=2G
ROOT_LABEL=debian-root
BOOT_LABEL=DEBIANBOOT
SUITE=bookworm

T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf 'build-debian: [%5.1fs] %s\n' "$(elapsed "$T0")" "$*"; }
die() { printf 'build-debian: error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --force|-f) FORCE=1; shift ;;
    --size) [[ $# -ge 2 ]] || die "--size needs a value such as 2G"; SIZE=$2; shift 2 ;;
    --size=*) SIZE=${1#--size=}; shift ;;
    --refresh) REFRESH=1; FORCE=1; shift ;;
    -h|--help) sed -n '2,27p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# --size: NG / NM (also GiB, MiB, lower case) -> MiB
if [[ $SIZE =~ ^([0-9]+)([GgMm])(i?[Bb])?$ ]]; then
  DISK_MB=${BASH_REMATCH[1]}
  [[ ${BASH_REMATCH[2]} == [Gg] ]] && DISK_MB=$((DISK_MB * 1024))
else
  die "--size $SIZE: give a size with a unit, e.g. 2G or 2560M"
fi
(( DISK_MB >= 1024 )) || die "--size $SIZE is too small: the image needs at least 1G"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
IMAGE=$OUT/debian-12.qcow2

if [[ $FORCE -eq 0 && -s $IMAGE && $IMAGE -nt $SCRIPT_PATH ]]; then
  log "$IMAGE is up to date (newer than the script); nothing to do (--force rebuilds)"
  echo "$IMAGE"
  exit 0
fi

# ---------------------------------------------------------------------------
# Tools. Each: command, Debian package that provides it.
need() { command -v "$1" >/dev/null 2>&1 || MISSING+=("$2"); }
find_mbr() {
  SYSLINUX_MBR=
  local f
  for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/SYSLINUX/mbr.bin /usr/share/syslinux/mbr.bin; do
    [[ -f $f ]] && { SYSLINUX_MBR=$f; return 0; }
  done
  return 1
}
check_tools() { # fills MISSING with the Debian packages that provide what is not installed
  MISSING=()
  need mmdebstrap mmdebstrap
  need mke2fs e2fsprogs
  need mkfs.vfat dosfstools
  need mcopy mtools
  need sfdisk fdisk
  need syslinux syslinux
  need qemu-img qemu-utils
  need tar tar
  need flock util-linux
  find_mbr || MISSING+=(syslinux-common)
  if [[ ${#MISSING[@]} -gt 0 ]]; then mapfile -t MISSING < <(printf '%s\n' "${MISSING[@]}" | sort -u); fi
}
check_tools
if [[ ${#MISSING[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages: ${MISSING[*]}
  install them with: apt-get install -y ${MISSING[*]}"
  fi
  log "installing missing Debian packages: ${MISSING[*]} (apt-get install -y)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${MISSING[@]}" \
    || die "apt-get install -y ${MISSING[*]} failed (run apt-get update first?)"
  check_tools
  [[ ${#MISSING[@]} -eq 0 ]] || die "still missing after apt-get install: ${MISSING[*]}"
fi
[[ $(id -u) -eq 0 ]] || die "must run as root: mmdebstrap installs the packages in a chroot and the
  root filesystem has to keep its file owners (try: sudo $0${ORIG_ARGS[*]:+ ${ORIG_ARGS[*]}})"
# (output captured first: awk quitting early would make mke2fs die of SIGPIPE under pipefail)
MKE2FS_VERSION=$(mke2fs -V 2>&1 || true)
awk '/^mke2fs/ { split($2, v, "."); ok = (v[1] > 1 || v[2] >= 43) } END { exit !ok }' <<<"$MKE2FS_VERSION" \
  || die "mke2fs is too old for -d (needs e2fsprogs >= 1.43)"

# ---------------------------------------------------------------------------
# Mirror: the Debian bookworm entries of this machine's apt sources (one-line
# *.list and deb822 *.sources), as "deb URI SUITE main" lines.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed 's/#.*//' "$f" | awk '$1 == "deb" {
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }   # skip [options]
      if (i + 1 <= NF) print $i, $(i + 1)
    }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
    {
      types = uris = suites = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^[ \t#]/ || index(line, ":") == 0) continue   # comments, continuation lines
        k = tolower(substr(line, 1, index(line, ":") - 1)); v = substr(line, index(line, ":") + 1)
        if (k == "types") types = v; else if (k == "uris") uris = v
        else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
      }
      if (enabled ~ /no/ || types !~ /(^|[ \t])deb([ \t]|$)/) next
      n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
      for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) if (U[a] != "" && S[b] != "") print U[a], S[b]
    }' "$f"
  done
}
MIRRORS=()
if [[ -n ${IAAS_DEBIAN_MIRROR:-} ]]; then
  MIRRORS=("deb $IAAS_DEBIAN_MIRROR $SUITE main" "deb $IAAS_DEBIAN_MIRROR $SUITE-updates main"
    "deb ${IAAS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $SUITE-security main")
  MIRROR_FROM="IAAS_DEBIAN_MIRROR"
else
  while read -r uri suite; do
    [[ $suite =~ ^$SUITE(-updates|-security)?$ ]] || continue
    line="deb ${uri%/} $suite main"
    dup=0
    for m in "${MIRRORS[@]}"; do [[ $m == "$line" ]] && dup=1; done
    [[ $dup -eq 1 ]] || MIRRORS+=("$line")
  done < <(host_sources)
  MIRROR_FROM="this machine's apt sources"
  if ! printf '%s\n' "${MIRRORS[@]}" | grep -q " $SUITE main$"; then
    MIRRORS=("deb http://deb.debian.org/debian $SUITE main" "deb http://deb.debian.org/debian $SUITE-updates main"
      "deb http://deb.debian.org/debian-security $SUITE-security main")
    MIRROR_FROM="default (no '$SUITE' entry in this machine's apt sources; set IAAS_DEBIAN_MIRROR to choose)"
  fi
fi

# ---------------------------------------------------------------------------
# What mmdebstrap installs. Everything here goes into the cache key of the
# root filesystem tarball; what follows (configuration, disk) is cheap to redo.
PACKAGES=(
  systemd-sysv linux-image-amd64 cloud-init openssh-server netbase ifupdown
  isc-dhcp-client iproute2 sudo dbus libpam-systemd   # libpam-systemd: logind sessions for logins
  cloud-guest-utils e2fsprogs fdisk   # growpart (+ sfdisk) and resize2fs: grow the root on first boot
  ca-certificates procps less iputils-ping
  zstd   # initramfs-tools compresses with zstd when it is there (gzip otherwise: bigger, slower to unpack)
)
DPKG_OPTS=(
  # documentation, man pages, translations (copyright files stay)
  'path-exclude=/usr/share/man/*'
  'path-exclude=/usr/share/info/*'
  'path-exclude=/usr/share/locale/*'
  'path-include=/usr/share/locale/locale.alias'
  'path-exclude=/usr/share/doc/*'
  'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/lintian/*'
  # kernel modules no VM needs: sound, TV/camera, Wi-Fi/Bluetooth, InfiniBand,
  # industrial I/O, staging, and the GPU drivers of real graphics cards (the
  # emulated ones - bochs, cirrus, qxl, virtio-gpu - stay). Everything else
  # (virtio, block, SCSI, ATA, USB, HID, input, net, filesystems) stays.
  # The kernel package ships its modules under /lib/modules.
  'path-exclude=/lib/modules/*/kernel/sound/*'
  'path-exclude=/lib/modules/*/kernel/drivers/media/*'
  'path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*'
  'path-exclude=/lib/modules/*/kernel/net/wireless/*'
  'path-exclude=/lib/modules/*/kernel/net/mac80211/*'
  'path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*'
  'path-exclude=/lib/modules/*/kernel/net/bluetooth/*'
  'path-exclude=/lib/modules/*/kernel/drivers/infiniband/*'
  'path-exclude=/lib/modules/*/kernel/drivers/iio/*'
  'path-exclude=/lib/modules/*/kernel/drivers/staging/*'
  'path-exclude=/lib/modules/*/kernel/drivers/comedi/*'
  'path-exclude=/lib/modules/*/kernel/drivers/isdn/*'
  'path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/amd/*'
  'path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/radeon/*'
  'path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/nouveau/*'
  'path-exclude=/lib/modules/*/kernel/drivers/gpu/drm/i915/*'
)
# initramfs-tools settings, written before the kernel's postinst builds the
# initramfs: MODULES=most (the default: every storage/virtio driver, so the
# image boots on virtio-blk, virtio-scsi, AHCI, IDE); FSTYPE=ext4 puts
# fsck.ext4 in (by default it probes the build host's device for "/"); no
# resume device (the build host's swap must not end up in the guest).
SETUP_HOOK='mkdir -p "$1/etc/initramfs-tools/conf.d" && printf "%s\n" MODULES=most FSTYPE=ext4 RESUME=none >"$1/etc/initramfs-tools/conf.d/iaas.conf"'

MM_ARGS=(--variant=minbase --mode=root --format=tar "--include=$(IFS=,; echo "${PACKAGES[*]}")")
for o in "${DPKG_OPTS[@]}"; do MM_ARGS+=("--dpkgopt=$o"); done
MM_ARGS+=("--setup-hook=$SETUP_HOOK")

COMPRESS=
command -v zstd >/dev/null 2>&1 && COMPRESS=.zst
CACHE_TAR=$OUT/.work/debian-12-rootfs.tar$COMPRESS
CACHE_KEY_FILE=$OUT/.work/debian-12-rootfs.key
CACHE_KEY=$(printf '%s\n' "$(mmdebstrap --version 2>&1)" "$SUITE" "${MM_ARGS[@]}" "${MIRRORS[@]}" | sha256sum | cut -d' ' -f1)

WORK=$OUT/.work/debian
mkdir -p "$OUT/.work"
# One build at a time per output dir; whoever waited re-checks whether the
# image is now up to date.
exec 9>"$OUT/.work/debian.lock"
if ! flock -n 9; then
  log "another build-debian.sh is running for $OUT; waiting for it"
  flock 9
  if [[ $FORCE -eq 0 && -s $IMAGE && $IMAGE -nt $SCRIPT_PATH ]]; then
    log "$IMAGE was built meanwhile; nothing to do"
    echo "$IMAGE"
    exit 0
  fi
fi
TMP_IMAGE=$IMAGE.tmp.$$
TMP_TAR=$OUT/.work/debian-12-rootfs.tmp$$.tar$COMPRESS   # mmdebstrap compresses by extension
cleanup() { rm -rf "$WORK" "$TMP_IMAGE" "$TMP_TAR"; }
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK"

STEP= STEP_T=
TIMINGS=()
step() { # step "description": ends the previous step (prints its time), starts the next
  local now
  now=$(date +%s.%N)
  if [[ -n $STEP ]]; then
    TIMINGS+=("$(awk -v a="$STEP_T" -v b="$now" 'BEGIN{printf "%6.1f s", b-a}')  $STEP")
    log "  ... $(awk -v a="$STEP_T" -v b="$now" 'BEGIN{printf "%.1f", b-a}') s"
  fi
  STEP=$1 STEP_T=$now
  [[ -n $STEP ]] && log "$STEP"
  return 0
}

# ---------------------------------------------------------------------------
# 1. Root filesystem tarball (mmdebstrap), cached by its inputs.
if [[ $REFRESH -eq 0 && -s $CACHE_TAR && -f $CACHE_KEY_FILE && $(cat "$CACHE_KEY_FILE") == "$CACHE_KEY" ]]; then
  log "reusing cached root filesystem $CACHE_TAR ($(du -m "$CACHE_TAR" | cut -f1) MB; --refresh runs mmdebstrap again)"
else
  log "mirror ($MIRROR_FROM):"
  printf '    %s\n' "${MIRRORS[@]}"
  step "mmdebstrap $SUITE (minbase + ${#PACKAGES[@]} packages) -> root filesystem tarball"
  rm -f "$OUT"/.work/debian-12-rootfs.tar* "$CACHE_KEY_FILE"
  if ! mmdebstrap "${MM_ARGS[@]}" "$SUITE" "$TMP_TAR" "${MIRRORS[@]}" >"$OUT/.work/debian-12-mmdebstrap.log" 2>&1; then
    tail -n 30 "$OUT/.work/debian-12-mmdebstrap.log" >&2
    die "mmdebstrap failed (last lines above); is the mirror reachable? (${MIRRORS[0]})"
  fi
  mv -f "$TMP_TAR" "$CACHE_TAR"
  printf '%s\n' "$CACHE_KEY" >"$CACHE_KEY_FILE"
  log "root filesystem tarball: $(du -m "$CACHE_TAR" | cut -f1) MB ($CACHE_TAR)"
fi

# ---------------------------------------------------------------------------
# 2. Unpack and configure.
ROOT=$WORK/root
step "unpacking the root filesystem"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf "$CACHE_TAR"

step "configuring (cloud-init, fstab, ssh, getty, identity)"
KVER=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)
[[ -n $KVER && -f $ROOT/boot/initrd.img-$KVER ]] || die "no /boot/vmlinuz-* with its initrd.img in the root filesystem"
# virtio_blk / virtio_pci must be in the initramfs (or built into the kernel)
chroot "$ROOT" lsinitramfs "/boot/initrd.img-$KVER" >"$WORK/initrd.list" \
  || die "lsinitramfs /boot/initrd.img-$KVER failed (in the root filesystem)"
for m in virtio_pci virtio_blk ext4; do
  sym=CONFIG_$(tr '[:lower:]' '[:upper:]' <<<"$m")
  grep -q "^$sym=y" "$ROOT/boot/config-$KVER" && continue
  grep -q "/$m\.ko" "$WORK/initrd.list" || die "$m is neither built into kernel $KVER nor in its initramfs"
done
grep -q 'sbin/fsck\.ext4$' "$WORK/initrd.list" || log "warning: no fsck.ext4 in the initramfs; systemd will check the root filesystem instead"

# Debian's cloud.cfg must give us the "debian" user with passwordless sudo
awk '/^system_info:/{s=1} s && /default_user:/{d=1} d && /name: debian/{n=1} d && /NOPASSWD:ALL/{p=1} END{exit !(n && p)}' \
  "$ROOT/etc/cloud/cloud.cfg" || die "cloud-init's cloud.cfg no longer has default_user debian with NOPASSWD sudo; check $ROOT/etc/cloud/cloud.cfg"
cat >"$ROOT/etc/cloud/cloud.cfg.d/99-iaas.cfg" <<'EOF'
# IaaS image (scripts/guest/build-debian.sh). The VM manager attaches a NoCloud
# seed (a filesystem labelled CIDATA with meta-data, user-data, network-config).
datasource_list: [ NoCloud, None ]
# /etc/hosts gets the instance's hostname (sudo and others resolve it)
manage_etc_hosts: true
# C.UTF-8 is built into libc: nothing to generate (the default, en_US.UTF-8,
# would run locale-gen at first boot)
locale: C.UTF-8
# no DSA host key (OpenSSH 9 does not use it)
ssh_genkeytypes: [ rsa, ecdsa, ed25519 ]
EOF

printf '# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_LABEL" >"$ROOT/etc/fstab"
printf 'LANG=C.UTF-8\n' >"$ROOT/etc/default/locale"
# hostname: cloud-init sets it (meta-data local-hostname); this is the fallback
echo debian >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
rm -f "$ROOT/etc/resolv.conf"       # copied from the build host by mmdebstrap; DHCP writes it
# per-VM identity: an empty machine-id makes systemd generate one at first boot
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
[[ -d $ROOT/var/lib/dbus ]] && ln -s /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*
# SSH host keys: cloud-init (cc_ssh) deletes and regenerates them once per
# instance (also with the None datasource, i.e. without a seed). Debian's
# ssh.service does not create missing keys (sshd -t fails without them), so a
# guest whose cloud-init is disabled or removed needs this safety net.
cat >"$ROOT/etc/systemd/system/iaas-ssh-keygen.service" <<'EOF'
[Unit]
Description=Generate missing SSH host keys
After=cloud-init.service
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=ssh.service
EOF
mkdir -p "$ROOT/etc/systemd/system/ssh.service.wants" "$ROOT/etc/systemd/system/getty.target.wants"
ln -sf /etc/systemd/system/iaas-ssh-keygen.service "$ROOT/etc/systemd/system/ssh.service.wants/"
[[ -L $ROOT/etc/systemd/system/multi-user.target.wants/ssh.service ]] \
  || ln -sf /lib/systemd/system/ssh.service "$ROOT/etc/systemd/system/multi-user.target.wants/ssh.service"
ln -sf /lib/systemd/system/serial-getty@.service "$ROOT/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
# ACPI power button (QMP system_powerdown) early in the boot. systemd-logind
# handles it, but logind starts after cloud-init's network stage (under TCG
# about a minute into the first boot) and a press before that is lost: the VM
# would ignore the VM manager's stop. This unit watches the button from early
# boot until logind is up (logind's drop-in stops it then; Conflicts= would put
# both start jobs in one boot transaction and systemd would drop one of them).
mkdir -p "$ROOT/usr/local/sbin" "$ROOT/etc/systemd/system/sysinit.target.wants"
cat >"$ROOT/usr/local/sbin/iaas-early-powerbutton" <<'EOF'
#!/bin/bash
# Powers off when the ACPI power button is pressed before systemd-logind runs.
# Installed by build-debian.sh (IaaS Debian image); see iaas-early-powerbutton.service.
modprobe -q button 2>/dev/null || true
devs=()
for _ in $(seq 1 20); do   # the input device may still be appearing
  for ev in /sys/class/input/event*; do
    [[ -e $ev && $(cat "$ev/device/name" 2>/dev/null) == "Power Button" && -c /dev/input/${ev##*/} ]] \
      && devs+=("/dev/input/${ev##*/}")
  done
  [[ ${#devs[@]} -gt 0 ]] && break
  sleep 0.5
done
[[ ${#devs[@]} -gt 0 ]] || { echo "no ACPI power button found"; exit 0; }
# a press is a few struct input_event (24 bytes each): any read means one
for d in "${devs[@]}"; do dd if="$d" of=/dev/null bs=24 count=1 status=none & done
wait -n
echo "ACPI power button pressed before systemd-logind started: powering off"
exec systemctl --no-block poweroff
EOF
chmod 755 "$ROOT/usr/local/sbin/iaas-early-powerbutton"
cat >"$ROOT/etc/systemd/system/iaas-early-powerbutton.service" <<'EOF'
[Unit]
Description=Power off on the ACPI power button until systemd-logind handles it
DefaultDependencies=no
After=systemd-udevd.service
Before=shutdown.target
Conflicts=shutdown.target

[Service]
ExecStart=/usr/local/sbin/iaas-early-powerbutton

[Install]
WantedBy=sysinit.target
EOF
ln -sf /etc/systemd/system/iaas-early-powerbutton.service "$ROOT/etc/systemd/system/sysinit.target.wants/"
mkdir -p "$ROOT/etc/systemd/system/systemd-logind.service.d"
cat >"$ROOT/etc/systemd/system/systemd-logind.service.d/iaas-early-powerbutton.conf" <<'EOF'
[Service]
# logind now watches the power button itself
ExecStartPost=-/bin/systemctl --no-block stop iaas-early-powerbutton.service
EOF
# ifupdown reads what cloud-init writes to /etc/network/interfaces.d/
grep -qs '^source.*interfaces.d' "$ROOT/etc/network/interfaces" || cat >"$ROOT/etc/network/interfaces" <<'EOF'
# The NICs are configured by cloud-init in /etc/network/interfaces.d/50-cloud-init
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
EOF
# Kernel updates inside the guest: copy the newest kernel and initramfs to the
# boot partition, which syslinux reads (update-initramfs calls this hook).
mkdir -p "$ROOT/etc/initramfs/post-update.d"
cat >"$ROOT/etc/initramfs/post-update.d/zz-iaas-syslinux" <<EOF
#!/bin/sh
# Installed by build-debian.sh (IaaS Debian image). The disk boots through
# syslinux from the FAT partition labelled $BOOT_LABEL, which holds /vmlinuz and
# /initrd.img. update-initramfs runs this (\$1 = kernel version, \$2 = initramfs):
# copy the newest kernel and its initramfs there.
ver=\$1; initrd=\${2:-/boot/initrd.img-\$1}
newest=\$(linux-version list 2>/dev/null | linux-version sort 2>/dev/null | tail -n 1)
[ -z "\$newest" ] || [ "\$ver" = "\$newest" ] || exit 0
[ -f "/boot/vmlinuz-\$ver" ] && [ -f "\$initrd" ] || exit 0
dev=\$(blkid -L $BOOT_LABEL 2>/dev/null) || { echo "zz-iaas-syslinux: no $BOOT_LABEL partition; boot files not updated" >&2; exit 0; }
mnt=\$(mktemp -d) || exit 0
if ! mount -t vfat "\$dev" "\$mnt"; then rmdir "\$mnt"; echo "zz-iaas-syslinux: cannot mount \$dev; boot files not updated" >&2; exit 0; fi
if cp "/boot/vmlinuz-\$ver" "\$mnt/vmlinuz.new" && cp "\$initrd" "\$mnt/initrd.img.new" \\
   && mv -f "\$mnt/vmlinuz.new" "\$mnt/vmlinuz" && mv -f "\$mnt/initrd.img.new" "\$mnt/initrd.img"; then
  echo "zz-iaas-syslinux: boot partition updated to kernel \$ver"
else
  rm -f "\$mnt/vmlinuz.new" "\$mnt/initrd.img.new"
  echo "zz-iaas-syslinux: WARNING: copying kernel \$ver to the boot partition failed; it still boots the old one" >&2
fi
umount "\$mnt"; rmdir "\$mnt"
exit 0
EOF
chmod 755 "$ROOT/etc/initramfs/post-update.d/zz-iaas-syslinux"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
ROOT_USED_MB=$(du -sm "$ROOT" | cut -f1)
log "root filesystem: $ROOT_USED_MB MB, kernel $KVER ($(du -m "$ROOT/lib/modules/$KVER" | tail -n1 | cut -f1) MB of modules), initrd $(du -m "$ROOT/boot/initrd.img-$KVER" | cut -f1) MB"

# ---------------------------------------------------------------------------
# 3. Disk: MBR + FAT boot partition (syslinux, kernel, initrd) + ext4 root.
KERNEL_MB=$(( ($(stat -c %s "$ROOT/boot/vmlinuz-$KVER") + $(stat -c %s "$ROOT/boot/initrd.img-$KVER")) / 1048576 + 1 ))
FAT_MB=$(( 2 * KERNEL_MB + 32 ))     # room for a second kernel + initrd during an update
(( FAT_MB < 128 )) && FAT_MB=128
ROOT_MB=$(( DISK_MB - 1 - FAT_MB ))
NEED_MB=$(( ROOT_USED_MB * 12 / 10 + 128 ))
(( ROOT_MB >= NEED_MB )) || die "--size $SIZE is too small: the root filesystem needs about $NEED_MB MiB, plus $((FAT_MB + 1)) MiB boot; use --size $(( (NEED_MB + FAT_MB + 1 + 1023) / 1024 ))G"
FAT=$WORK/boot.fat
EXT4=$WORK/root.ext4
RAW=$WORK/disk.raw

step "boot partition: FAT32 ${FAT_MB} MiB (mkfs.vfat -C, mcopy vmlinuz initrd.img syslinux.cfg)"
mkfs.vfat -C -F 32 -n "$BOOT_LABEL" "$FAT" $((FAT_MB * 1024)) >/dev/null
cat >"$WORK/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 1
LABEL debian
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=$ROOT_LABEL ro console=tty0 console=ttyS0,115200n8
CFG
export MTOOLS_SKIP_CHECK=1
mcopy -i "$FAT" "$ROOT/boot/vmlinuz-$KVER" ::/vmlinuz
mcopy -i "$FAT" "$ROOT/boot/initrd.img-$KVER" ::/initrd.img
mcopy -i "$FAT" "$WORK/syslinux.cfg" ::/syslinux.cfg

step "root partition: ext4 ${ROOT_MB} MiB (mke2fs -d, label $ROOT_LABEL)"
truncate -s "${ROOT_MB}M" "$EXT4"
mke2fs -F -q -t ext4 -L "$ROOT_LABEL" -d "$ROOT" "$EXT4" "${ROOT_MB}M"
rm -rf "$ROOT"

step "disk ${DISK_MB} MiB: partition table (sfdisk), dd both partitions, syslinux --install --offset 1048576, mbr.bin"
truncate -s "${DISK_MB}M" "$RAW"
printf 'label: dos\nstart=2048, size=%d, type=c, bootable\nstart=%d, type=83\n' \
  $((FAT_MB * 2048)) $(((1 + FAT_MB) * 2048)) | sfdisk --quiet "$RAW"
dd if="$FAT" of="$RAW" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$EXT4" of="$RAW" bs=1M seek=$((1 + FAT_MB)) conv=notrunc,sparse status=none
rm -f "$FAT" "$EXT4"
syslinux --install --offset 1048576 "$RAW"
dd if="$SYSLINUX_MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none

step "qemu-img convert -c -O qcow2"
qemu-img convert -c -W -m 4 -f raw -O qcow2 "$RAW" "$TMP_IMAGE"
mv -f "$TMP_IMAGE" "$IMAGE"
step ""

log "wrote $IMAGE: $(du -m "$IMAGE" | cut -f1) MB file, ${DISK_MB} MiB virtual; Debian $SUITE, kernel $KVER"
log "step times:"
printf '  %s\n' "${TIMINGS[@]}"
log "total $(elapsed "$T0") s"
echo "$IMAGE"
