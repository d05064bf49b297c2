#!/usr/bin/env bash
# Minimal Debian arm64 root filesystem (the Raspberry Pi OS base) run through qemu-user-static.
#
#   tools/arm64-rootfs.sh [--release bookworm|bullseye] build          # debootstrap it (once, cached)
#   tools/arm64-rootfs.sh [--release ...] run [--bind DIR] -- CMD ...   # run CMD inside (cwd: DIR if bound)
#   tools/arm64-rootfs.sh [--release ...] path                          # print the rootfs folder
#   --cpu cortex-a76 (Raspberry Pi 5, default) or cortex-a72 (Pi 4): the CPU qemu emulates.
#
# The rootfs lives under ${XDG_CACHE_HOME:-~/.cache}/edgeprune/arm64-rootfs-RELEASE. Needs root, mmdebstrap and
# qemu-user-static. Foreign binaries run through binfmt_misc when it can be registered (mmdebstrap, chroot), else
# through proot -q (debootstrap --foreign + second stage; far slower: on a loaded 2-core VM the second stage was
# still configuring essential packages after 25 min). EDGEPRUNE_ARM64_PROOT=1 forces proot.
set -euo pipefail

RELEASE=bookworm
CPU=cortex-a76
MIRROR=${EDGEPRUNE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
QEMU=/usr/bin/qemu-aarch64-static
PACKAGES=python3,python3-venv,ca-certificates

die() { echo "arm64-rootfs: $*" >&2; exit 2; }

while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --release) RELEASE=${2:?--release needs bookworm or bullseye}; shift 2 ;;
    --cpu) CPU=${2:?--cpu needs cortex-a76 or cortex-a72}; shift 2 ;;
    *) die "unknown option $1 (use --release bookworm|bullseye, --cpu cortex-a76|cortex-a72)" ;;
  esac
done
[[ $RELEASE == bookworm || $RELEASE == bullseye ]] || die "release '$RELEASE' is not bookworm or bullseye"
case $CPU in
  cortex-a76) PART=0xd0b VARIANT=0x4 REVISION=1
              FEATURES="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  cortex-a72) PART=0xd08 VARIANT=0x0 REVISION=3 FEATURES="fp asimd evtstrm crc32 cpuid" ;;
  *) die "cpu '$CPU' is not cortex-a76 or cortex-a72" ;;
esac
ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/edgeprune/arm64-rootfs-$RELEASE
ACTION=${1:-}; shift || true

need() { command -v "$1" >/dev/null || die "$1 is missing: apt-get install -y $2"; }

# 0 when the kernel runs aarch64 ELF files through qemu (binfmt_misc), registering the handler if it can.
binfmt_ready() {
  local bm=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [[ $(uname -m) == aarch64 ]] && return 0
  [[ ${EDGEPRUNE_ARM64_PROOT:-0} == 1 ]] && return 1
  [[ -e $bm/register ]] || mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || return 1
  [[ -e $bm/qemu-aarch64 ]] || { [[ -r $conf ]] && cat "$conf" > "$bm/register" 2>/dev/null; } || return 1
  [[ $(head -1 "$bm/qemu-aarch64") == enabled ]]
}

build() {
  [[ $(uname -m) == aarch64 ]] || need qemu-aarch64-static qemu-user-static
  if [[ -x $ROOT/usr/bin/python3 ]]; then echo "$ROOT (cached)"; return; fi
  rm -rf "$ROOT.partial"; mkdir -p "$(dirname "$ROOT")"
  if binfmt_ready; then
    need mmdebstrap mmdebstrap
    mmdebstrap --mode=root --arch=arm64 --variant=apt --include="$PACKAGES" "$RELEASE" "$ROOT.partial" "$MIRROR"
  else  # no binfmt_misc: unpack only, then run the maintainer scripts under proot + qemu
    need debootstrap debootstrap; need proot proot
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$PACKAGES" "$RELEASE" "$ROOT.partial" "$MIRROR"
    # The first stage leaves proc as a link to /proc, which proot refuses to bind over.
    [[ -L $ROOT.partial/proc ]] && rm "$ROOT.partial/proc" && mkdir "$ROOT.partial/proc"
    proot -0 -q "$QEMU" -r "$ROOT.partial" -b /proc -b /dev -b /sys -w / \
      /usr/bin/env DEBOOTSTRAP_DIR=/debootstrap /bin/sh /debootstrap/debootstrap --second-stage
  fi
  mv "$ROOT.partial" "$ROOT"
  echo "$ROOT"
}

# An arm64 /proc/cpuinfo for the emulated CPU: qemu-user passes the host's x86 one through, and the cpuinfo
# library inside onnxruntime crashes parsing it. "model name" says plainly that the CPU is emulated.
write_cpuinfo() {
  local i
  for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nmodel name\t: %s emulated by qemu-user\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' \
      "$i" "$CPU" "$FEATURES"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
      "$VARIANT" "$PART" "$REVISION"
  done > "$1"
}

# Runs "$@" inside the rootfs; BIND (optional) is mounted at the same path and used as the working directory.
run_in() {
  [[ -x $ROOT/usr/bin/python3 ]] || die "no rootfs at $ROOT: run '$0 --release $RELEASE build' first"
  local bind=""
  if [[ ${1:-} == --bind ]]; then bind=$(realpath "${2:?--bind needs a folder}"); shift 2; fi
  [[ ${1:-} == -- ]] && shift
  [[ $# -gt 0 ]] || die "run needs a command after --"
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  # The host's trust store: a TLS-intercepting proxy's CA in it must be trusted inside too (pip, urllib).
  local ca=/etc/ssl/certs/ca-certificates.crt cpuinfo=$ROOT/etc/edgeprune-cpuinfo
  if [[ -r $ca ]]; then cp -L "$ca" "$ROOT/etc/ssl/certs/host-ca-bundle.crt"; ca=/etc/ssl/certs/host-ca-bundle.crt; fi
  write_cpuinfo "$cpuinfo"
  export QEMU_CPU=$CPU
  local env=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
             PIP_CERT=$ca SSL_CERT_FILE=$ca PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 QEMU_CPU=$CPU)
  if binfmt_ready; then
    # A private mount namespace: the bind mounts vanish with the process, nothing to clean up.
    exec unshare --mount --propagation private -- bash -c '
      root=$1 bind=$2; shift 2
      mount -t proc proc "$root/proc"; mount --rbind /dev "$root/dev"; mount --rbind /sys "$root/sys"
      [[ $(uname -m) == aarch64 ]] || mount --bind "$root/etc/edgeprune-cpuinfo" "$root/proc/cpuinfo"
      mount -t tmpfs tmpfs "$root/tmp"
      if [[ -n $bind ]]; then mkdir -p "$root$bind"; mount --bind "$bind" "$root$bind"; fi
      exec chroot "$root" /bin/sh -c "cd \"\${0:-/}\" && exec \"\$@\"" "${bind:-/}" "$@"' \
      _ "$ROOT" "$bind" "${env[@]}" "$@"
  fi
  need proot proot
  local args=(-q "$QEMU" -r "$ROOT" -b /proc -b /dev -b /sys -b "$cpuinfo:/proc/cpuinfo" -w "${bind:-/}")
  [[ -n $bind ]] && args+=(-b "$bind")
  exec proot "${args[@]}" "${env[@]}" "$@"
}

case $ACTION in
  build) build ;;
  run) run_in "$@" ;;
  path) echo "$ROOT" ;;
  *) die "usage: $0 [--release bookworm|bullseye] [--cpu cortex-a76|cortex-a72]" \
         "build | run [--bind DIR] -- CMD... | path" ;;
esac
