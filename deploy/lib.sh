# shellcheck shell=bash
# Shared by deploy/install-station.sh, deploy/install-collector.sh and deploy/check-arm64.sh
# (sourced, never run).
#
# Every step looks before it acts, so a second run changes nothing. With --root DIR
# (or ROOT=DIR) every path is taken under DIR and files are really written there,
# while commands that change the machine itself (apt-get, useradd, chown, pip,
# systemctl start/restart) are printed as "would run: ..." instead: the tests install
# into a temporary folder this way, and a packager can use it as a DESTDIR.

ROOT=${ROOT:-}

# The station's code and venv on the Pi, and what pip installs there: the extras and the
# constraints install-station.sh uses, which deploy/check-arm64.sh checks for aarch64.
# shellcheck disable=SC2034  # read by the scripts that source this file
STATION_SRC=/opt/station/src
# shellcheck disable=SC2034
STATION_VENV=/opt/station/venv
# shellcheck disable=SC2034
STATION_EXTRAS=litert,power
# shellcheck disable=SC2034
STATION_CONSTRAINTS=deploy/constraints-pi.txt

log() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
in_root() { [ -n "$ROOT" ]; }

# A command that changes the machine: run it, or print it under --root.
sys() {
  if in_root; then
    printf '%s: would run: %s\n' "$PROG" "$*"
  else
    "$@"
  fi
}

# checkout_root: the folder holding station/, deploy/ and pyproject.toml.
usage() {  # the script's opening comment: on stdout for --help, on stderr after a bad option
  if [ "${1:-0}" -eq 0 ]; then
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"
  else
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" >&2
  fi
  exit "${1:-0}"
}

checkout_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

# parse_root_arg DIR: the --root option, made absolute.
parse_root_arg() {
  [ -n "${1:-}" ] || die "--root needs a folder"
  mkdir -p "$1"
  ROOT=$(cd "$1" && pwd)
}

require_root_user() {
  in_root && return 0
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...), or with --root DIR to install into a folder"
}

# set_owner PATH USER:GROUP -- only when it differs (chown is a 'sys' command).
set_owner() {
  local path=$1 owner=$2
  if in_root; then
    sys chown "$owner" "$path"
  elif [ "$(stat -c %U:%G "$path")" != "$owner" ]; then
    chown "$owner" "$path"
  fi
}

# set_mode PATH MODE -- only when it differs.
set_mode() {
  [ "$(stat -c %a "$1")" = "${2#0}" ] || chmod "$2" "$1"
}

# ensure_dir DIR MODE [OWNER]
ensure_dir() {
  local dir=$ROOT$1 mode=$2 owner=${3:-}
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    log "created $1"
  fi
  set_mode "$dir" "$mode"
  [ -z "$owner" ] || set_owner "$dir" "$owner"
}

# put SRC DEST MODE [OWNER] -- install SRC as DEST when DEST is missing or different.
# Sets WROTE=1 when DEST was written, WROTE=0 when it was already there and equal.
WROTE=0
put() {
  local src=$1 dest=$ROOT$2 mode=$3 owner=${4:-}
  WROTE=0
  if [ ! -f "$dest" ] || ! cmp -s "$src" "$dest"; then
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$src" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    log "installed $2"
    WROTE=1
  fi
  set_mode "$dest" "$mode"
  [ -z "$owner" ] || set_owner "$dest" "$owner"
}

# put_once SRC DEST MODE [OWNER] -- install SRC as DEST only if DEST does not exist yet:
# for files people edit (configs, the ACL), which a re-run must never overwrite.
put_once() {
  local src=$1 dest=$ROOT$2
  if [ -e "$dest" ]; then
    WROTE=0
    if ! cmp -s "$src" "$dest"; then
      log "kept $2 as it is (it differs from $src)"
    fi
    set_mode "$dest" "$3"
    [ -z "${4:-}" ] || set_owner "$dest" "$4"
    return 0
  fi
  put "$@"
}

# apt_install PACKAGE... -- only the missing ones.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    if in_root || ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if ! in_root; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive sys apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# apt_has PACKAGE -- whether apt knows the package (python3-picamera2 exists on Raspberry Pi OS only).
apt_has() { apt-cache show "$1" >/dev/null 2>&1; }

# unit_user UNIT_FILE DEFAULT -- the User= a systemd unit runs as.
unit_user() {
  local user=""
  [ -f "$1" ] && user=$(sed -n 's/^User=//p' "$1" | head -n 1)
  printf '%s\n' "${user:-$2}"
}

# ensure_user NAME HOME [GROUP...] -- a system user with its own group, added to GROUPs that exist.
ensure_user() {
  local name=$1 home=$2 group
  shift 2
  if in_root || ! id -u "$name" >/dev/null 2>&1; then
    sys useradd --system --user-group --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$name"
  fi
  for group in "$@"; do
    if in_root; then
      sys usermod -a -G "$group" "$name"
    elif getent group "$group" >/dev/null && ! id -nG "$name" | tr ' ' '\n' | grep -qx "$group"; then
      usermod -a -G "$group" "$name"
    fi
  done
}

# sync_source CHECKOUT DEST -- copy what the installed package needs (code, models, docs, deploy
# files, units); the venv installs it editable from DEST, so the classifier finds models/
# beside station/ as it does in a checkout. Sets SOURCE_CHANGED=1 when anything changed.
SOURCE_CHANGED=0
sync_source() {
  local src=$1 dest=$ROOT$2 changes
  if [ "$(realpath -m "$src")" = "$(realpath -m "$dest")" ]; then
    return 0
  fi
  command -v rsync >/dev/null || die "rsync is needed to copy the source (apt-get install rsync)"
  mkdir -p "$dest"
  changes=$(rsync -a --delete --itemize-changes \
    --exclude '__pycache__/' --exclude '*.pyc' --exclude '*.egg-info/' \
    --include '/pyproject.toml' --include '/README.md' --include '/CHANGELOG.md' --include '/LICENSE*' \
    --include '/station/***' --include '/models/***' --include '/deploy/***' --include '/systemd/***' \
    --include '/docs/***' \
    --exclude '*' "$src/" "$dest/")
  if [ -n "$changes" ]; then
    log "copied the source to $2 ($(printf '%s\n' "$changes" | wc -l) changes)"
    # shellcheck disable=SC2034  # read by the install scripts
    SOURCE_CHANGED=1
  fi
}

# make_venv VENV [--system-site-packages]
make_venv() {
  local venv=$1
  shift
  if [ ! -x "$ROOT$venv/bin/python" ]; then
    sys python3 -m venv "$@" "$ROOT$venv"
  fi
}

# pip_install VENV SOURCE EXTRAS [CONSTRAINTS] -- pip install -e SOURCE[EXTRAS], again only
# when pyproject.toml, the constraints or the extras changed (a stamp file in the venv).
pip_install() {
  local venv=$1 src=$2 extras=$3 constraints=${4:-} stamp args=()
  stamp=$({ cat "$ROOT$src/pyproject.toml"; [ -z "$constraints" ] || cat "$ROOT$constraints"
            printf '%s' "$extras"; } | sha256sum | cut -c1-16)
  stamp="$ROOT$venv/.camtrap-installed-$stamp"
  [ -z "$constraints" ] || args=(-c "$ROOT$constraints")
  if [ ! -f "$stamp" ]; then
    sys "$ROOT$venv/bin/python" -m pip install -q --upgrade pip
    sys "$ROOT$venv/bin/python" -m pip install -q "${args[@]}" -e "$ROOT${src}[$extras]"
    sys touch "$stamp"
  fi
}

# install_code CHECKOUT SRC VENV EXTRAS CONSTRAINTS [VENV_ARGS...] -- the source copied to
# SRC, installed editable into VENV, its bytecode compiled (the services see /opt
# read-only under ProtectSystem=strict: without this every start would compile it again
# in memory, seconds on a Pi Zero 2 W). CONSTRAINTS may be "".
install_code() {
  local checkout=$1 src=$2 venv=$3 extras=$4 constraints=$5
  shift 5
  ensure_dir "$(dirname "$src")" 0755
  sync_source "$checkout" "$src"
  make_venv "$venv" "$@"
  pip_install "$venv" "$src" "$extras" "$constraints"
  if [ "$SOURCE_CHANGED" -eq 1 ]; then
    sys "$ROOT$venv/bin/python" -m compileall -q "$ROOT$src/station"
  fi
}

# install_unit CHECKOUT NAME -- the unit file from systemd/, enabled. Sets UNIT_CHANGED=1.
UNIT_CHANGED=0
install_unit() {
  local src=$1/systemd/$2 name=$2
  [ -f "$src" ] || { log "no systemd/$name in this checkout: not installed"; return 0; }
  put "$src" "/etc/systemd/system/$name" 0644
  [ "$WROTE" -eq 0 ] || UNIT_CHANGED=1
  if in_root; then
    if command -v systemctl >/dev/null; then
      systemctl --root="$ROOT" is-enabled --quiet "$name" 2>/dev/null \
        || systemctl --root="$ROOT" enable "$name" 2>/dev/null
    else
      sys systemctl enable "$name"
    fi
  else
    [ "$UNIT_CHANGED" -eq 0 ] || systemctl daemon-reload
    systemctl is-enabled --quiet "$name" 2>/dev/null || systemctl enable "$name"
  fi
}
