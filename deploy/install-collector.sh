#!/usr/bin/env bash
# Installs the broker and the collector on a Debian 12 server, from this checkout:
#
#   sudo deploy/install-collector.sh --hostname broker.example.org
#
#   apt        mosquitto, mosquitto-clients, openssl, python3-venv, rsync
#   broker     /etc/mosquitto/conf.d/camtrap.conf (deploy/mosquitto/camtrap.conf: TLS on 8883,
#              loopback 1883 for the collector, the dynamic-security plugin for accounts and
#              roles, persistence, queue limits); /etc/mosquitto/camtrap/: dynsec/ (accounts,
#              made and changed by `station provision`), and a CA with a certificate for
#              --hostname (default: this host's FQDN) unless you put your own ca.crt,
#              server.crt and server.key there first; the CA's key goes to /etc/camtrap/ca/
#   user       the collector's (as systemd/collector.service names it; default 'camtrap')
#   code       /opt/camtrap/src, venv /opt/camtrap/venv with .[collector,postgres]
#   account    `station provision --role collector collector`: /etc/camtrap/collector.password
#              and /etc/camtrap/collector.toml (never overwritten)
#   data       /var/lib/camtrap-collector
#   services   mosquitto (restarted when its files changed) and collector.service, enabled
#
# Idempotent: run it again and only what changed is redone. --root DIR installs into DIR
# and prints the commands that would change this machine (docs/deployment.md; the tests
# use it, with STATION_PYTHON naming a Python that has this package for provisioning).
set -euo pipefail
PROG=install-collector
# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOST_NAME=""
while [ $# -gt 0 ]; do
  case $1 in
    --hostname) HOST_NAME=${2:-}; shift 2 ;;
    --root) parse_root_arg "${2:-}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage 2 ;;
  esac
done
require_root_user

CHECKOUT=$(checkout_root)
SRC=/opt/camtrap/src
VENV=/opt/camtrap/venv
ETC=/etc/camtrap
DATA=/var/lib/camtrap-collector
BROKER=/etc/mosquitto/camtrap
USER_NAME=$(unit_user "$CHECKOUT/systemd/collector.service" camtrap)
HOST_NAME=${HOST_NAME:-$(hostname -f 2>/dev/null || hostname)}

# make_certificates: a CA and a server certificate for HOST_NAME, unless the broker has its own.
make_certificates() {
  local dir=$ROOT$BROKER tmp san have=0 f
  for f in ca.crt server.crt server.key; do [ ! -f "$dir/$f" ] || have=$((have + 1)); done
  [ "$have" -lt 3 ] || return 0
  [ "$have" -eq 0 ] || die "$BROKER has some of ca.crt, server.crt and server.key but not all: put all three there"
  if [[ $HOST_NAME =~ ^[0-9.]+$ || $HOST_NAME == *:* ]]; then san="IP:$HOST_NAME"; else san="DNS:$HOST_NAME"; fi
  log "making a CA and a broker certificate for $HOST_NAME (to use your own, put ca.crt, server.crt and server.key in $BROKER first)"
  tmp=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=camtrap broker CA" -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$HOST_NAME" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$san" >"$tmp/server.ext"
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 825 -out "$tmp/server.crt" -extfile "$tmp/server.ext" 2>/dev/null
  ensure_dir "$ETC" 0750 "root:$USER_NAME"
  ensure_dir "$ETC/ca" 0700 root:root
  put "$tmp/ca.key" "$ETC/ca/ca.key" 0600 root:root
  put "$tmp/ca.crt" "$ETC/ca/ca.crt" 0644 root:root
  put "$tmp/ca.crt" "$BROKER/ca.crt" 0644 root:root
  put "$tmp/server.crt" "$BROKER/server.crt" 0644 root:root
  put "$tmp/server.key" "$BROKER/server.key" 0640 root:mosquitto
  rm -rf "$tmp"
  log "the CA's key is $ETC/ca/ca.key: keep a copy offline; stations get ca.crt from 'station provision'"
}

# broker_state: a checksum of what the broker reads only when it starts, to restart it only
# on change. Accounts are not in it: `station provision` hands them to the running broker.
broker_state() {
  { cat "$ROOT/etc/mosquitto/conf.d/camtrap.conf" "$ROOT$BROKER"/{ca.crt,server.crt,server.key} 2>/dev/null \
    || true; } | sha256sum
}

# broker_conf: camtrap.conf with the dynamic-security plugin where this machine's mosquitto
# package has it (the shipped file names amd64's path).
broker_conf() {
  local shipped=$CHECKOUT/deploy/mosquitto/camtrap.conf plugin
  plugin=$(dpkg -L mosquitto 2>/dev/null | grep '/mosquitto_dynamic_security\.so$' | head -n 1 || true)
  if [ -z "$plugin" ] || grep -q "^plugin $plugin\$" "$shipped"; then
    cat "$shipped"
  else
    sed "s|^plugin /.*/mosquitto_dynamic_security\.so\$|plugin $plugin|" "$shipped"
  fi
}

# 1. System packages.
apt_install mosquitto mosquitto-clients openssl python3-venv python3-pip rsync

# 2. The collector's user.
ensure_user "$USER_NAME" "$DATA"

# 3. Code and venv.
install_code "$CHECKOUT" "$SRC" "$VENV" collector,postgres ""

# 4. The broker: configuration, ACL, TLS.
before=$(broker_state)
ensure_dir "$BROKER" 0750 root:mosquitto
conf=$(mktemp)
broker_conf >"$conf"
put "$conf" /etc/mosquitto/conf.d/camtrap.conf 0644
rm -f "$conf"
make_certificates
if ! grep -qs '^include_dir /etc/mosquitto/conf.d' "$ROOT/etc/mosquitto/mosquitto.conf"; then
  log "warning: /etc/mosquitto/mosquitto.conf has no 'include_dir /etc/mosquitto/conf.d' (Debian's has): add it"
fi

# 5. The collector's account and config (station provision is idempotent: the password stays).
# A running broker with the plugin takes it at once; otherwise it goes into the plugin's file,
# which the restart below loads (accounts of an older passwd/acl pair are carried over).
ensure_dir "$ETC" 0750 "root:$USER_NAME"
PY=${STATION_PYTHON:-$ROOT$VENV/bin/python}
provision=(-m station provision collector --role collector --broker-dir "$ROOT$BROKER"
           --out "$ROOT$ETC" --target-dir "$ETC")
if in_root; then provision+=(--offline); fi  # a broker running here is not the one in ROOT
if [ -x "$PY" ]; then
  "$PY" "${provision[@]}" | sed "s/^/$PROG: /"
else
  sys "$PY" "${provision[@]}"
fi
for f in "$ROOT$ETC/collector.password" "$ROOT$ETC/collector.toml"; do
  [ ! -f "$f" ] || { set_mode "$f" 0640; set_owner "$f" "root:$USER_NAME"; }
done

# 6. Data.
ensure_dir "$DATA" 0750 "$USER_NAME:$USER_NAME"

# 7. Services.
if in_root; then
  systemctl --root="$ROOT" is-enabled --quiet mosquitto.service 2>/dev/null || sys systemctl enable mosquitto.service
  sys systemctl restart mosquitto.service
else
  systemctl is-enabled --quiet mosquitto.service || systemctl enable mosquitto.service
  if [ "$before" != "$(broker_state)" ] || ! systemctl is-active --quiet mosquitto.service; then
    systemctl restart mosquitto.service
    log "restarted mosquitto (new configuration, accounts or certificates)"
  fi
fi
install_unit "$CHECKOUT" collector.service
if [ -f "$CHECKOUT/systemd/collector.service" ]; then
  if in_root; then
    sys systemctl start collector.service
  elif systemctl is-active --quiet collector.service; then
    if [ "$SOURCE_CHANGED" -eq 1 ] || [ "$UNIT_CHANGED" -eq 1 ]; then
      systemctl restart collector.service
      log "restarted collector.service (new code or unit)"
    fi
  else
    systemctl start collector.service
    log "started collector.service: journalctl -u collector -f"
  fi
fi
log "done. Stations: station provision ID --host $HOST_NAME (docs/deployment.md)"
