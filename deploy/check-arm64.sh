#!/usr/bin/env bash
# Checks that the station's Python packages install on Raspberry Pi OS Bookworm, 64-bit
# (CPython 3.11, aarch64), from wheels alone, the way deploy/install-station.sh installs
# them: a venv made with --system-site-packages, where Debian's numpy (which apt's
# python3-picamera2 brings) is kept, and pip installs the rest, with the station's extras,
# against deploy/constraints-pi.txt. Fails, naming the package, when one has no aarch64 wheel.
#
#   deploy/check-arm64.sh              resolve that set with pip for the Pi (metadata only, seconds)
#   deploy/check-arm64.sh --emulate    then install it into an arm64 Debian under qemu-user as
#                                      install-station.sh does, and classify a picture there on
#                                      the CPU of each board, comparing with this machine
#
#   --extras LIST       the station's extras (default: install-station.sh's)
#   --with REQ          also check REQ, e.g. a package you think of adding (repeatable)
#   --constraints FILE  instead of deploy/constraints-pi.txt
#   --unpinned          leave out the constraints' == pins: what updating them would take
#   --no-apt            numpy from pip too (an arm64 Debian without python3-picamera2)
#   --report FILE       the resolved set as JSON
#   --index-url URL     the package index (default https://pypi.org/simple); --find-links DIR
#                       adds wheels of your own. pip's config files are not read.
#   --rootfs DIR        the arm64 Debian for --emulate (made once with debootstrap, ~5 minutes;
#                       default ~/.cache/camtrap/arm64-bookworm); --boards zero2w,pi4,pi5
#
# Exit status: 0 all good; 1 a package has no aarch64 wheel, or the emulated station failed
# or disagreed with this machine; 2 bad usage; 77 cannot check here (the index cannot be
# reached; for --emulate: not root, or no qemu-user-static, binfmt or debootstrap), reason
# on stderr. PYTHON is the Python whose pip resolves (pip 23.3 or newer) and which, with
# --emulate, runs the station here for comparison (default: the checkout's .venv).
set -euo pipefail
PROG=check-arm64
# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PI_PYTHON=3.11.2        # Raspberry Pi OS Bookworm's python3
PI_GLIBC_MINOR=36       # its glibc 2.36: wheels tagged manylinux_2_17 ... manylinux_2_36 install
# Python packages apt puts where the venv sees them and pip keeps (when they satisfy):
# numpy, a dependency of python3-picamera2, at Debian bookworm's version (python3-numpy).
APT_PYTHON=(numpy==1.24.2)
DEBIAN_MIRROR=http://deb.debian.org/debian
ROOTFS_PACKAGES=python3,python3-venv,python3-numpy,ca-certificates

CHECKOUT=$(checkout_root)
HELPER=$CHECKOUT/deploy/check_arm64.py
EXTRAS=$STATION_EXTRAS
CONSTRAINTS=$CHECKOUT/$STATION_CONSTRAINTS
INDEX=https://pypi.org/simple
FIND_LINKS=()
WITH=()
UNPINNED=0
USE_APT=1
REPORT=""
EMULATE=0
ROOTFS=${XDG_CACHE_HOME:-$HOME/.cache}/camtrap/arm64-bookworm
BOARDS=zero2w,pi4,pi5

need() { [ -n "${2:-}" ] || { printf '%s: %s needs a value\n' "$PROG" "$1" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case $1 in
    --extras) need "$@"; EXTRAS=$2; shift 2 ;;
    --with) need "$@"; WITH+=("$2"); shift 2 ;;
    --constraints) need "$@"; CONSTRAINTS=$2; shift 2 ;;
    --unpinned) UNPINNED=1; shift ;;
    --no-apt) USE_APT=0; shift ;;
    --report) need "$@"; REPORT=$2; shift 2 ;;
    --index-url) need "$@"; INDEX=$2; shift 2 ;;
    --find-links) need "$@"; FIND_LINKS+=(--find-links "$2"); shift 2 ;;
    --emulate) EMULATE=1; shift ;;
    --rootfs) need "$@"; ROOTFS=$2; shift 2 ;;
    --boards) need "$@"; BOARDS=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage 2 ;;
  esac
done
[ -f "$CONSTRAINTS" ] || { printf '%s: --constraints %s: no such file\n' "$PROG" "$CONSTRAINTS" >&2; exit 2; }

skip() { printf '%s: cannot check here: %s\n' "$PROG" "$*" >&2; exit 77; }
usage_error() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 2; }

if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ ! -x "$CHECKOUT/.venv/bin/python" ] || PYTHON=$CHECKOUT/.venv/bin/python
fi
"$PYTHON" -c 'import sys, pip; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (23, 3))' 2>/dev/null \
  || usage_error "$PYTHON needs pip 23.3 or newer (for --dry-run with --platform): $PYTHON -m pip install --upgrade pip"

TMP=$(mktemp -d)
MOUNTS=()
# shellcheck disable=SC2329  # run by the trap
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pip as the Pi's venv sees it: a Python environment holding only what apt provides, and
# pip's own package beside it. pip's config files and resolution settings from the
# environment stay out (they may add indexes or wheels a Pi does not have); certificate,
# proxy and timeout settings stay in.
for var in $(compgen -e | grep '^PIP_' || true); do
  case $var in
    PIP_CERT|PIP_CLIENT_CERT|PIP_PROXY|PIP_TRUSTED_HOST|PIP_DEFAULT_TIMEOUT|PIP_TIMEOUT|PIP_RETRIES) ;;
    PIP_CACHE_DIR|PIP_NO_CACHE_DIR|PIP_DISABLE_PIP_VERSION_CHECK) ;;
    *) unset "$var" ;;
  esac
done
export PIP_CONFIG_FILE=/dev/null
"$PYTHON" -m venv --without-pip "$TMP/pi"
mkdir "$TMP/pip"
ln -s "$("$PYTHON" -c 'import os, pip; print(os.path.dirname(pip.__file__))')" "$TMP/pip/pip"
pip_pi() { "$TMP/pi/bin/python" "$TMP/pip/pip" "$@"; }
apt_args=()
if [ "$USE_APT" -eq 1 ]; then
  site=$("$TMP/pi/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  for spec in "${APT_PYTHON[@]}"; do
    name=${spec%%==*} version=${spec#*==}
    mkdir -p "$site/$name-$version.dist-info"
    printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n' "$name" "$version" > "$site/$name-$version.dist-info/METADATA"
    printf 'debian\n' > "$site/$name-$version.dist-info/INSTALLER"
    : > "$site/$name-$version.dist-info/RECORD"
    apt_args+=(--apt "$spec")
  done
fi

"$PYTHON" "$HELPER" requirements "$CHECKOUT/pyproject.toml" "$EXTRAS" > "$TMP/requirements.txt"
[ ${#WITH[@]} -eq 0 ] || printf '%s\n' "${WITH[@]}" >> "$TMP/requirements.txt"
if [ "$UNPINNED" -eq 1 ]; then
  grep -v '==' "$CONSTRAINTS" > "$TMP/constraints.txt" || true
else
  cp "$CONSTRAINTS" "$TMP/constraints.txt"
fi

platforms=()
for ((minor = PI_GLIBC_MINOR; minor >= 17; minor--)); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
platforms+=(--platform manylinux2014_aarch64 --platform linux_aarch64)

if ! pip_pi index versions pip --index-url "$INDEX" "${FIND_LINKS[@]}" --retries 1 --timeout 30 >"$TMP/index.out" 2>&1; then
  skip "$INDEX cannot be reached: $(grep -m1 -o 'Failed to resolve.*\|Max retries.*\|ERROR.*' "$TMP/index.out" || tail -n 1 "$TMP/index.out")"
fi

started=$SECONDS
if ! pip_pi install --dry-run --quiet --report "$TMP/report.json" --index-url "$INDEX" "${FIND_LINKS[@]}" \
    "${platforms[@]}" --python-version "$PI_PYTHON" --implementation cp --only-binary=:all: \
    -c "$TMP/constraints.txt" -r "$TMP/requirements.txt" >"$TMP/pip.out" 2>&1; then
  no_wheel=$("$PYTHON" "$HELPER" missing "$TMP/pip.out")
  if [ -n "$no_wheel" ]; then
    printf '%s: no wheel for aarch64, CPython 3.11 (glibc 2.%s) on %s for:\n' "$PROG" "$PI_GLIBC_MINOR" "$INDEX" >&2
    while IFS= read -r line; do printf '  %s\n' "$line"; done <<< "$no_wheel" >&2
  else
    printf '%s: pip cannot resolve the set for the Pi:\n' "$PROG" >&2
    cat "$TMP/pip.out" >&2
  fi
  exit 1
fi
pin_args=(--constraints "$TMP/constraints.txt")
[ "$UNPINNED" -eq 0 ] || pin_args=()
"$PYTHON" "$HELPER" summary "$TMP/report.json" "$TMP/requirements.txt" --python "$PI_PYTHON" \
  "${apt_args[@]}" "${pin_args[@]}" --json "$TMP/resolved.json"
[ -z "$REPORT" ] || cp "$TMP/resolved.json" "$REPORT"
log "resolved in $((SECONDS - started)) s, metadata only"
[ "$EMULATE" -eq 1 ] || exit 0

# --- --emulate: the same install on an arm64 Debian under qemu-user ---------------------------------
[ "$(id -u)" -eq 0 ] || skip "--emulate needs root (debootstrap, chroot, mount)"
for tool in debootstrap qemu-aarch64-static chroot mount; do
  command -v "$tool" >/dev/null || skip "--emulate needs $tool: apt-get install qemu-user-static binfmt-support debootstrap"
done
BINFMT=/proc/sys/fs/binfmt_misc/qemu-aarch64
if [ ! -r "$BINFMT" ] || [ "$(head -n 1 "$BINFMT")" != enabled ]; then
  skip "--emulate needs aarch64 programs to run through qemu (binfmt_misc): mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64"
fi
"$PYTHON" -c 'import station.classifier, cv2' 2>/dev/null \
  || usage_error "--emulate compares with this machine: PYTHON=$PYTHON must have the station installed (scripts/bootstrap)"
if [ "$USE_APT" -eq 0 ]; then
  usage_error "--emulate installs on Debian's numpy, as on Raspberry Pi OS: leave out --no-apt"
fi

# binfmt runs the interpreter by its path inside the chroot unless registered with F (fix binary).
interpreter=$(sed -n 's/^interpreter //p' "$BINFMT")
place_interpreter() {
  if ! sed -n 's/^flags: //p' "$BINFMT" | grep -q F; then
    mkdir -p "$ROOTFS$(dirname "$interpreter")"
    cmp -s "$(readlink -f "$interpreter")" "$ROOTFS$interpreter" || cp "$(readlink -f "$interpreter")" "$ROOTFS$interpreter"
  fi
}

stamp="bookworm arm64 minbase $ROOTFS_PACKAGES"
if [ "$(cat "$ROOTFS/.camtrap-rootfs" 2>/dev/null || true)" != "$stamp" ]; then
  if [ -e "$ROOTFS" ] && [ -n "$(ls -A "$ROOTFS")" ] && [ ! -f "$ROOTFS/.camtrap-rootfs" ]; then
    usage_error "--rootfs $ROOTFS is not empty and was not made by this script: name another folder"
  fi
  if grep -q " $ROOTFS/" /proc/mounts; then
    usage_error "something is mounted under $ROOTFS (a run that was killed?): umount it first"
  fi
  [ ! -f "$ROOTFS/.camtrap-rootfs" ] || rm -rf "$ROOTFS"
  log "making an arm64 Debian bookworm in $ROOTFS (debootstrap; once, several minutes)"
  started=$SECONDS
  mkdir -p "$ROOTFS"
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$ROOTFS_PACKAGES" bookworm "$ROOTFS" \
    "$DEBIAN_MIRROR" >"$TMP/debootstrap.out" 2>&1 || { tail -n 20 "$TMP/debootstrap.out" >&2; exit 1; }
  place_interpreter
  chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >"$TMP/debootstrap.out" 2>&1 \
    || { tail -n 20 "$TMP/debootstrap.out" >&2; exit 1; }
  printf '%s\n' "$stamp" > "$ROOTFS/.camtrap-rootfs"
  log "made $ROOTFS in $((SECONDS - started)) s"
fi
place_interpreter

# The Pi's view of itself: /proc mounted, DNS, and the trust store this machine's pip uses.
umount "$ROOTFS/proc/cpuinfo" 2>/dev/null || true   # left by a run that was killed
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
MOUNTS+=("$ROOTFS/proc")
cat /etc/resolv.conf > "$ROOTFS/etc/resolv.conf"
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOTFS/etc/ssl/certs/camtrap-check-ca.crt"
in_pi() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/camtrap-check-ca.crt "$@"
}

# install-station.sh's steps 3 (code, venv, pip) with the same commands as lib.sh's install_code.
(ROOT=$ROOTFS; sync_source "$CHECKOUT" "$STATION_SRC")
cp "$TMP/constraints.txt" "$ROOTFS/opt/station/check-constraints.txt"
if [ ! -x "$ROOTFS$STATION_VENV/bin/python" ]; then
  log "making the venv (--system-site-packages) under emulation"
  in_pi python3 -m venv --system-site-packages "$STATION_VENV"
fi
installed=$({ cat "$CHECKOUT/pyproject.toml" "$TMP/constraints.txt"; printf '%s\n' "$EXTRAS" "${WITH[@]}"; } \
  | sha256sum | cut -c1-16)
if [ ! -f "$ROOTFS$STATION_VENV/.camtrap-check-$installed" ]; then
  log "pip install -e .[$EXTRAS] under emulation (a few minutes)"
  started=$SECONDS
  rm -f "$ROOTFS$STATION_VENV"/.camtrap-check-*
  if ! { in_pi "$STATION_VENV/bin/python" -m pip install -q --upgrade pip &&
         in_pi "$STATION_VENV/bin/python" -m pip install -q -c /opt/station/check-constraints.txt \
           -e "${STATION_SRC}[$EXTRAS]" "${WITH[@]}"; } >"$TMP/install.out" 2>&1; then
    printf '%s: pip install failed on the emulated Pi:\n' "$PROG" >&2
    tail -n 30 "$TMP/install.out" >&2
    exit 1
  fi
  touch "$ROOTFS$STATION_VENV/.camtrap-check-$installed"
  log "installed in $((SECONDS - started)) s"
fi
in_pi "$STATION_VENV/bin/python" -m pip list --format json -v > "$TMP/pi-list.json"
"$PYTHON" "$HELPER" installed "$TMP/resolved.json" "$TMP/pi-list.json" "$STATION_VENV"
in_pi "$STATION_VENV/bin/python" -m pip check | sed "s/^/$PROG: pip check on the Pi: /"

# One picture, classified here and on each board's CPU; every model in models/ run once.
"$PYTHON" "$HELPER" picture "$TMP/picture.jpg"
cp "$TMP/picture.jpg" "$ROOTFS/tmp/camtrap-check-picture.jpg"
"$PYTHON" "$HELPER" probe "$TMP/picture.jpg" > "$TMP/host.json" 2>"$TMP/host.err" \
  || { tail -n 20 "$TMP/host.err" >&2; exit 1; }
# XNNPACK (the runtime's CPU kernels) reads the CPU from /proc/cpuinfo and the core list from
# /sys; qemu-user passes the host's through, so each board's are put in their place.
mkdir -p "$ROOTFS/sys/devices/system/cpu"
echo 0-3 > "$ROOTFS/sys/devices/system/cpu/possible"
echo 0-3 > "$ROOTFS/sys/devices/system/cpu/present"
cpuinfo() {  # BOARD -> a /proc/cpuinfo as the board's kernel writes it (serial number left out)
  local part variant revision features model n
  case $1 in
    zero2w) part=0xd03 variant=0x0 revision=4 model="Raspberry Pi Zero 2 W Rev 1.0"
            features="fp asimd evtstrm crc32 cpuid" ;;
    pi4) part=0xd08 variant=0x0 revision=3 model="Raspberry Pi 4 Model B Rev 1.5"
         features="fp asimd evtstrm crc32 cpuid" ;;
    pi5) part=0xd0b variant=0x4 revision=1 model="Raspberry Pi 5 Model B Rev 1.0"
         features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  esac
  for n in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$n" "$features"
    printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
  done
  printf 'Model\t\t: %s\n' "$model"
}
failed=0
IFS=, read -r -a boards <<< "$BOARDS"
for board in "${boards[@]}"; do
  case $board in
    zero2w) cpu=cortex-a53 ;;
    pi4) cpu=cortex-a72 ;;
    pi5) cpu=cortex-a76 ;;
    *) usage_error "--boards: unknown board $board (zero2w, pi4, pi5)" ;;
  esac
  cpuinfo "$board" > "$TMP/cpuinfo-$board"
  mount --bind "$TMP/cpuinfo-$board" "$ROOTFS/proc/cpuinfo"
  MOUNTS+=("$ROOTFS/proc/cpuinfo")
  started=$SECONDS
  if in_pi QEMU_CPU=$cpu "$STATION_VENV/bin/python" "$STATION_SRC/deploy/check_arm64.py" probe \
      /tmp/camtrap-check-picture.jpg > "$TMP/$board.json" 2>"$TMP/$board.err"; then
    log "$board ($cpu, emulated): imported the station, classified the picture, ran every model in $((SECONDS - started)) s"
    "$PYTHON" "$HELPER" compare "$TMP/host.json" "$TMP/$board.json" || failed=1
  else
    printf '%s: %s (%s, emulated): the probe failed:\n' "$PROG" "$board" "$cpu" >&2
    grep -v '^ts=' "$TMP/$board.err" | tail -n 20 >&2
    failed=1
  fi
  umount "$ROOTFS/proc/cpuinfo"
  unset 'MOUNTS[${#MOUNTS[@]}-1]'
done
[ "$failed" -eq 0 ] && log "the station runs on every board asked for, as on this machine"
exit "$failed"
