"""The paho-mqtt client for a broker config section: the one place that reads the password,
builds TLS, makes and connects the client, and says what went wrong in words that name the
key to fix. The station's publisher, ``station selftest`` and the collector all use it.

    check_settings(cfg.mqtt)                        # files readable and usable, or FeedConfigError
    client = new_client(cfg.mqtt, client_id, password=read_password(cfg.mqtt),
                        tls=build_tls_context(cfg.mqtt))
    connect_async(client, cfg.mqtt)
    problem = describe_connect_error(cfg.mqtt, exc)  # -> BrokerProblem("mqtt.ca_file: ...", ...)
    problem = describe_refusal(cfg.mqtt, reason)     # a CONNACK with a failure reason code

Every section that holds broker settings is a :class:`~station.config.mqtt.BrokerSection`
under ``[mqtt]``, in a station's config and in a collector's, so the keys named here are
right for both.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.config.mqtt import BrokerSection


class FeedConfigError(ValueError):
    """A feed setting that cannot work; ``key`` is the config key, and the message starts with it."""

    def __init__(self, key: str, message: str):
        self.key = f"mqtt.{key}"
        super().__init__(f"{self.key}: {message}")


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedConfigError(key, f"{path}: no such file") from None
    except PermissionError:
        raise FeedConfigError(key, f"{path}: permission denied (the station's user cannot read it)") from None
    except IsADirectoryError:
        raise FeedConfigError(key, f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise FeedConfigError(key, f"{path}: cannot be read: {exc.strerror or exc}") from None


def read_password(cfg: BrokerSection) -> str | None:
    if cfg.password is not None:
        return cfg.password.get_secret_value()
    if cfg.password_file is None:
        return None
    try:
        text = _read("password_file", cfg.password_file).decode("utf-8")
    except UnicodeDecodeError:
        raise FeedConfigError("password_file", f"{cfg.password_file}: not UTF-8 text") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise FeedConfigError("password_file", f"{cfg.password_file}: is empty")
    return password


def _pem(key: str, path: Path, marker: bytes, what: str) -> str:
    data = _read(key, path)
    if marker not in data:
        raise FeedConfigError(key, f"{path}: not a PEM {what} (no '{marker.decode()}' block)")
    return data.decode("ascii", errors="replace")


def build_tls_context(cfg: BrokerSection) -> ssl.SSLContext | None:
    """The client's TLS context, or None without TLS. Every failure names its key."""
    if not cfg.tls:
        return None
    if cfg.ca_file is not None:
        ca = _pem("ca_file", cfg.ca_file, b"-----BEGIN CERTIFICATE-----", "certificate")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts this CA only, not the system's
        try:
            ctx.load_verify_locations(cadata=ca)
        except ssl.SSLError as exc:
            raise FeedConfigError("ca_file", f"{cfg.ca_file}: not a usable CA certificate ({exc.reason or exc})") from None
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file is not None and cfg.key_file is not None:
        cert = _pem("cert_file", cfg.cert_file, b"-----BEGIN CERTIFICATE-----", "certificate")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert)
        except ssl.SSLError as exc:
            raise FeedConfigError("cert_file", f"{cfg.cert_file}: not a usable certificate ({exc.reason or exc})") from None
        key = _pem("key_file", cfg.key_file, b"PRIVATE KEY-----", "private key")
        if "ENCRYPTED" in key:
            raise FeedConfigError("key_file", f"{cfg.key_file}: the key is encrypted; give an unencrypted key "
                                              "readable only by the station's user")
        try:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file, password=lambda: b"")
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                raise FeedConfigError("key_file", f"{cfg.key_file}: does not belong to the certificate "
                                                  f"in mqtt.cert_file ({cfg.cert_file})") from None
            raise FeedConfigError("key_file", f"{cfg.key_file}: not a usable private key ({exc.reason or exc})") from None
        except OSError as exc:
            raise FeedConfigError("key_file", f"{cfg.key_file}: {exc}") from None
    ctx.check_hostname = not cfg.tls_insecure
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_settings(cfg: BrokerSection) -> None:
    """Raise :class:`FeedConfigError` if the password file or TLS files cannot work
    (for ``station config check`` and the daemon's start-up)."""
    read_password(cfg)
    build_tls_context(cfg)


def new_client(cfg: BrokerSection, client_id: str, *, password: str | None, tls: ssl.SSLContext | None,
               **kwargs: Any) -> mqtt.Client:
    """A paho-mqtt 2 client for ``cfg`` (protocol, session, credentials, TLS, reconnect
    backoff); the station's publisher and the collector's ingest add their callbacks."""
    v5 = cfg.protocol == "5"
    args: dict[str, Any] = {"callback_api_version": CallbackAPIVersion.VERSION2, "client_id": client_id,
                            "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **kwargs}
    if not v5:
        args["clean_session"] = cfg.clean_start
    client = mqtt.Client(**args)
    client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
    if cfg.username is not None:
        client.username_pw_set(cfg.username, password)
    if tls is not None:
        client.tls_set_context(tls)
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
    return client


def connect_async(client: mqtt.Client, cfg: BrokerSection, receive_maximum: int | None = None) -> None:
    """Start connecting (paho's loop retries): MQTT 5 with the session expiry (and Receive
    Maximum, when given) as CONNECT properties."""
    if cfg.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = cfg.session_expiry_s
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s, clean_start=cfg.clean_start, properties=props)
    else:
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)


# -- what went wrong, naming the key ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BrokerProblem:
    """A failed connection in one line. ``message`` starts with the config key to fix when
    one is to blame (``key``); ``level`` is "error" for a setting that is wrong and
    "warning" for a broker that is away (retrying will get there)."""

    message: str
    key: str | None
    level: str


def credential_keys(cfg: BrokerSection) -> str:
    if cfg.username is None:
        return "mqtt.username and mqtt.password"
    return "mqtt.username and " + ("mqtt.password_file" if cfg.password_file else "mqtt.password")


def describe_refusal(cfg: BrokerSection, reason: Any) -> BrokerProblem:
    """The broker answered CONNECT with a failure reason code."""
    name = getattr(reason, "getName", lambda: str(reason))()
    where = f"the broker at {cfg.host}:{cfg.port} refused the connection: {name}"
    if name in ("Bad user name or password", "Not authorized"):
        if cfg.username is None:
            return BrokerProblem(f"{credential_keys(cfg)}: {where}; it wants credentials and none are set",
                                 "mqtt.username", "error")
        return BrokerProblem(f"{credential_keys(cfg)}: {where}; check the credentials", "mqtt.username", "error")
    if name == "Client identifier not valid":
        return BrokerProblem(f"mqtt.client_id: {where}", "mqtt.client_id", "error")
    if name == "Unsupported protocol version":
        return BrokerProblem(f"mqtt.protocol: {where}; try protocol = \"3.1.1\"", "mqtt.protocol", "error")
    return BrokerProblem(where, None, "error")


def describe_connect_error(cfg: BrokerSection, exc: BaseException | None) -> BrokerProblem:
    """A connection attempt that failed before the broker answered (TCP, DNS, TLS)."""
    host, port = cfg.host, cfg.port
    hostport = "mqtt.host/mqtt.port"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or str(exc)
        if exc.verify_code == 62 or "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            return BrokerProblem(f"mqtt.host: the broker's certificate does not name {host!r} ({detail}); "
                                 f"connect by a name the certificate holds, or set mqtt.tls_insecure = true",
                                 "mqtt.host", "error")
        ca = str(cfg.ca_file) if cfg.ca_file else "the system's CA certificates"
        return BrokerProblem(f"mqtt.ca_file: the broker's certificate at {host}:{port} is not trusted by {ca} "
                             f"({detail})", "mqtt.ca_file", "error")
    if isinstance(exc, ssl.SSLError):
        text = str(exc)
        if "certificate" in text.lower() and "alert" in text.lower():
            return BrokerProblem(f"mqtt.cert_file: the broker at {host}:{port} rejected the client certificate "
                                 f"({text})", "mqtt.cert_file", "error")
        return BrokerProblem(f"mqtt.tls: the TLS handshake with {host}:{port} failed ({text}); is mqtt.port a "
                             f"TLS port?", "mqtt.tls", "error")
    if isinstance(exc, ConnectionRefusedError):
        return BrokerProblem(f"{hostport}: {host}:{port} refused the connection (no broker on that port, or it "
                             f"is down)", hostport, "warning")
    if exc is not None and exc.__class__.__name__ == "gaierror":
        return BrokerProblem(f"mqtt.host: cannot resolve {host!r} ({getattr(exc, 'strerror', None) or exc}): a "
                             f"typo, or no network/DNS here", "mqtt.host", "error")
    if isinstance(exc, TimeoutError):
        return BrokerProblem(f"{hostport}: no answer from {host}:{port} (timed out: network down, or a "
                             f"firewall)", hostport, "warning")
    if exc is None:
        return BrokerProblem(f"{hostport}: cannot connect to {host}:{port}", hostport, "warning")
    return BrokerProblem(f"{hostport}: cannot connect to {host}:{port}: {getattr(exc, 'strerror', None) or exc}",
                         hostport, "warning")
