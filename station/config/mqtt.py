"""``[mqtt]``: the detection feed's broker, credentials, TLS and store-and-forward outbox.

Only the shape of the values is checked here. Whether the files can be read and hold
what they should (a CA certificate, a certificate and its key, a password) is checked
when the feed starts (:func:`station.feed.client.check_settings`), and those errors
name the key too, e.g. ``mqtt.ca_file: not a PEM certificate``.

Protocol: MQTT 5 by default. Mosquitto 2 and paho-mqtt 2 both speak it, and it gives
the station three things 3.1.1 cannot: a session that expires on the broker
(``session_expiry_s``) instead of living forever, reason codes on CONNACK and PUBACK
(a refused credential or a publish the broker's ACL denies is reported as such, where
3.1.1 brokers drop a denied publish silently and still acknowledge it), and the
broker's Receive Maximum, which the station honours. ``protocol = "3.1.1"`` is there
for brokers that cannot do 5.

Session: ``clean_start = false`` keeps the broker-side session across reconnects, so
commands sent to the station while it was offline (QoS 1 subscriptions) wait for it
on the broker for up to ``session_expiry_s``. Detections never rely on the broker's
session: they stay in the local outbox until the broker acknowledges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from station.config.base import PathValue, Section
from station.vocabulary import ID_PATTERN as CLIENT_ID_PATTERN



def _absolute(value: Path | None, key: str) -> Path | None:
    if value is None:
        return None
    value = Path(value).expanduser()
    if not value.is_absolute():
        raise ValueError(f"give an absolute path for {key} (the daemon runs from /)")
    return value


class BrokerSection(Section):
    """How to reach the broker: shared by the station's ``[mqtt]`` and the collector's ``[mqtt]``."""

    host: str = Field(default="localhost", min_length=1, max_length=253)
    port: int = Field(default=1883, ge=1, le=65535)
    """1883 plain, 8883 is the usual port for TLS."""
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, pattern=CLIENT_ID_PATTERN)
    """Fixed MQTT client id (default: the station id). Two stations must never share one."""
    topic_prefix: str = "camtrap/v1"
    """First levels of every topic: {topic_prefix}/{station_id}/detection, ..."""

    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_file: PathValue | None = None
    """A file holding the password (first line); keeps it out of the config file."""

    tls: bool = False
    ca_file: PathValue | None = None
    """CA certificate(s) the broker's certificate must chain to (default: the system's)."""
    cert_file: PathValue | None = None
    """Client certificate, for brokers that require one (with key_file)."""
    key_file: PathValue | None = None
    tls_insecure: bool = False
    """Skip the check that the broker's certificate names `host` (the CA check stays)."""

    keepalive_s: int = Field(default=60, ge=10, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=600)
    """First wait before reconnecting; it doubles after each failure..."""
    reconnect_max_s: float = Field(default=120.0, gt=0, le=86400)
    """...up to this. No attempt is made in between: an offline station idles."""
    clean_start: bool = False
    """false: a persistent session (commands wait on the broker while the station is away)."""
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    """MQTT 5: how long the broker keeps the session after a disconnect."""

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        if "+" in v or "#" in v:
            raise ValueError("must not contain the MQTT wildcards '+' or '#'")
        if v.startswith("/") or v.endswith("/"):
            raise ValueError("must not start or end with '/'")
        if "//" in v:
            raise ValueError("must not contain an empty level ('//')")
        if "\x00" in v or len(v.encode()) > 200:
            raise ValueError("must be at most 200 bytes with no NUL characters")
        return v

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, v: Path | None) -> Path | None:
        return _absolute(v, "ca_file")

    @field_validator("cert_file")
    @classmethod
    def _cert(cls, v: Path | None) -> Path | None:
        return _absolute(v, "cert_file")

    @field_validator("key_file")
    @classmethod
    def _key(cls, v: Path | None) -> Path | None:
        return _absolute(v, "key_file")

    @field_validator("password_file")
    @classmethod
    def _password_file(cls, v: Path | None) -> Path | None:
        return _absolute(v, "password_file")

    @model_validator(mode="after")
    def _consistent(self) -> "MqttSection":
        # Messages name the keys, since a model-level error has no single key of its own.
        if self.password is not None and self.password_file is not None:
            raise ValueError("mqtt.password and mqtt.password_file: give one or the other, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("mqtt.username: required when a password is given")
        if (self.cert_file is None) != (self.key_file is None):
            missing = "mqtt.key_file" if self.key_file is None else "mqtt.cert_file"
            raise ValueError(f"{missing}: mqtt.cert_file and mqtt.key_file must be given together")
        if not self.tls:
            for key in ("ca_file", "cert_file", "key_file", "tls_insecure"):
                if getattr(self, key):
                    raise ValueError(f"mqtt.{key}: only used with TLS; set mqtt.tls = true")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s: must not be less than mqtt.reconnect_min_s")
        return self

    def effective_client_id(self, station_id: str) -> str:
        return self.client_id or station_id


class MqttSection(BrokerSection):
    """The station's ``[mqtt]``: the broker plus the feed's outbox, heartbeat and thumbnails."""

    enabled: bool = False
    """Publish detections to the broker. Off: events are still kept on the card."""
    outbox_path: PathValue | None = None
    """SQLite outbox (default: DATA_DIR/outbox.sqlite3; a relative path is under DATA_DIR)."""
    outbox_cap_mb: float = Field(default=50, gt=0, le=100_000)
    """Cap on queued messages. Thumbnails are evicted first; detections are never dropped."""
    max_inflight: int = Field(default=20, ge=1, le=1000)
    """Messages published and not yet acknowledged (also bounded by the broker's Receive Maximum)."""
    health_interval_s: float = Field(default=60, ge=5, le=86400)
    thumbnails: bool = False
    """Also publish a small JPEG of each detection's best still."""
    thumbnail_max_bytes: int = Field(default=24576, ge=1024, le=262144)

    @field_validator("outbox_path")
    @classmethod
    def _outbox(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser()

    def outbox_file(self, data_dir: Path) -> Path:
        if self.outbox_path is None:
            return Path(data_dir) / "outbox.sqlite3"
        return self.outbox_path if self.outbox_path.is_absolute() else Path(data_dir) / self.outbox_path

    @property
    def outbox_cap_bytes(self) -> int:
        return int(self.outbox_cap_mb * 1024 * 1024)
