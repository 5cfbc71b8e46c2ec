#!/usr/bin/env bash
# Installs the camera-trap station on Raspberry Pi OS Bookworm (64-bit; Pi 4, Pi 5 or
# Pi Zero 2 W), from this checkout:
#
#   sudo deploy/install-station.sh --bundle ./lazovsky-07    # files from `station provision`
#   sudo deploy/install-station.sh                           # config from the example, to edit
#
#   apt        python3-venv, python3-picamera2 (brings libcamera), rsync
#   user       'station' (as systemd/station.service names it), in groups video, render
#              and i2c (a battery monitor on the I2C pins), those that exist
#   code       /opt/station/src (code, models), venv /opt/station/venv, made with
#              --system-site-packages so picamera2 from apt is seen; pip installs the rest
#   config     /etc/station/station.toml (never overwritten), mqtt-password, ca.crt
#   data       /var/lib/station
#   service    station.service, enabled; started once the config passes `station config check`
#
# Idempotent: run it again (after a git pull, say) and only what changed is redone.
# --root DIR installs into DIR and prints the commands that would change this machine
# (docs/deployment.md; the tests use it).
set -euo pipefail
PROG=install-station
# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUNDLE=""
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) BUNDLE=${2:-}; shift 2 ;;
    --root) parse_root_arg "${2:-}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage 2 ;;
  esac
done
require_root_user

CHECKOUT=$(checkout_root)
SRC=$STATION_SRC
VENV=$STATION_VENV
ETC=/etc/station
DATA=/var/lib/station
USER_NAME=$(unit_user "$CHECKOUT/systemd/station.service" station)

if [ -n "$BUNDLE" ]; then
  [ -f "$BUNDLE/station.toml" ] || die "$BUNDLE/station.toml not found: make the bundle with 'station provision ID --out DIR'"
  BUNDLE=$(cd "$BUNDLE" && pwd)
fi

if ! in_root; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [ "$codename" = bookworm ] || log "warning: made for Raspberry Pi OS Bookworm; this is '${codename:-unknown}'"
  arch=$(dpkg --print-architecture)
  [ "$arch" = arm64 ] || log "warning: made for 64-bit Raspberry Pi OS (arm64); this is $arch (the model runtime needs 64 bits)"
fi

# 1. System packages. picamera2 exists in Raspberry Pi OS's archive only; elsewhere the
#    station still runs with USB/network cameras, files and the synthetic scene.
packages=(python3-venv python3-pip rsync)
if in_root || apt_has python3-picamera2; then
  packages+=(python3-picamera2)
else
  log "python3-picamera2 is not in this system's archive: no Raspberry Pi camera support (other cameras work)"
fi
apt_install "${packages[@]}"

# 2. The user the daemon runs as: cameras are group video (render: the Pi 5's dma heaps);
#    /dev/i2c-* is group i2c (an INA219 battery monitor, [power] in the config).
ensure_user "$USER_NAME" "$DATA" video render i2c

# 3. Code and models, and the venv that runs them.
install_code "$CHECKOUT" "$SRC" "$VENV" "$STATION_EXTRAS" "$SRC/$STATION_CONSTRAINTS" --system-site-packages

# 4. Configuration: readable by root and the station's group only (it holds the exact position).
ensure_dir "$ETC" 0750 "root:$USER_NAME"
if [ -n "$BUNDLE" ]; then
  put_once "$BUNDLE/station.toml" "$ETC/station.toml" 0640 "root:$USER_NAME"
  # Credentials follow the bundle: a rotated password is installed by running this again.
  if [ -f "$BUNDLE/mqtt-password" ]; then
    put "$BUNDLE/mqtt-password" "$ETC/mqtt-password" 0640 "root:$USER_NAME"
  fi
  if [ -f "$BUNDLE/ca.crt" ]; then
    put "$BUNDLE/ca.crt" "$ETC/ca.crt" 0644
  fi
else
  put_once "$CHECKOUT/deploy/station.example.toml" "$ETC/station.toml" 0640 "root:$USER_NAME"
  [ "$WROTE" -eq 0 ] || log "edit $ETC/station.toml (station id, position, [mqtt]) or install a bundle from 'station provision'"
fi

# 5. Data: events, the outbox.
ensure_dir "$DATA" 0750 "$USER_NAME:$USER_NAME"

# 6. The service: enabled at boot; started now if the config is complete.
install_unit "$CHECKOUT" station.service
if in_root; then
  sys systemctl start station.service
elif "$VENV/bin/station" config check "$ETC/station.toml" >/dev/null 2>&1; then
  if systemctl is-active --quiet station.service; then
    if [ "$SOURCE_CHANGED" -eq 1 ] || [ "$UNIT_CHANGED" -eq 1 ]; then
      systemctl restart station.service
      log "restarted station.service (new code or unit)"
    fi
  else
    systemctl start station.service
    log "started station.service: journalctl -u station -f"
  fi
else
  log "not started: $ETC/station.toml is not complete yet:"
  "$VENV/bin/station" config check "$ETC/station.toml" || true
  log "fix it, then: systemctl start station"
fi
log "done"
