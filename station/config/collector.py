"""The collector's configuration: one TOML file (``deploy/collector.example.toml``).

    [collector]  where the database and thumbnails live, batching, payload limits
    [mqtt]       the broker (same keys as the station's, minus the outbox) + shared subscription
    [http]       the researchers' JSON API and dashboard; tokens for exact locations
    [privacy]    how public views generalise coordinates (GBIF: 0.1 degree for high sensitivity)
    [feed]       the researchers' feed the collector republishes over MQTT
    [alerts]     Apprise URLs that rangers are notified on, and the rate limit
    [project]    Camtrap DP package metadata for exports
    [logging]

``load_collector_config(path)`` returns a frozen :class:`CollectorConfig` or raises the
same :class:`~station.config.load.ConfigError` as the station's loader, one sentence per
bad key. ``station config check --collector FILE`` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from station import times
from station.config.base import PathValue, Section
from station.config.logging import LoggingSection
from station.config.mqtt import CLIENT_ID_PATTERN, BrokerSection
from station.vocabulary import TAGS



class CollectorSection(Section):
    id: str = Field(default="collector", pattern=CLIENT_ID_PATTERN)
    """Names this collector in logs and in its default MQTT client id (camtrap-collector-ID)."""
    data_dir: PathValue = Path("/var/lib/camtrap-collector")
    """Thumbnails and (by default) the SQLite database live here."""
    database_url: str = "sqlite:///collector.sqlite3"
    """sqlite:///FILE (relative: under data_dir; sqlite:////abs/path.db) or postgresql://user@host/db."""
    batch_max: int = Field(default=500, ge=1, le=10_000)
    """Most messages stored in one transaction (then acknowledged to the broker)."""
    max_payload_kb: int = Field(default=512, ge=16, le=16_384)
    """Larger messages are rejected unread (a thumbnail/1 is at most ~342 KiB)."""
    retry_max_s: float = Field(default=30.0, gt=0, le=3600)
    """While the database is unreachable, storing is retried with backoff up to this."""
    max_clock_skew_s: float = Field(default=300.0, ge=1, le=7 * 86400)
    """A message dated more than this ahead of its arrival is stored flagged clock_skew_s (the
    station's clock runs ahead); it never pins the station's state either way."""

    def sqlite_resolved_url(self) -> str:
        """``database_url`` with a relative SQLite path made absolute under ``data_dir``."""
        url = self.database_url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rest = url[len("sqlite:///"):]
            if rest and not rest.startswith(":memory:"):
                return "sqlite:///" + str((self.data_dir / rest).absolute())
        return url

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @field_validator("database_url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("use sqlite:///path.db or postgresql://user@host/db")
        return v


class CollectorMqttSection(BrokerSection):
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Share detections and thumbnails between collectors ($share/GROUP/...): each message goes
    to one of them. Every collector of a group must use the same database."""
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    """MQTT 5 Receive Maximum: QoS 1 messages the broker may have in flight to us, unacknowledged."""

    def effective_collector_client_id(self, collector_id: str) -> str:
        """The broker binds each account's client id to its user name (docs/deployment.md), so
        that is the default; without an account, camtrap-collector-<collector.id>."""
        return self.client_id or self.username or f"camtrap-collector-{collector_id}"


class HttpSection(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    """127.0.0.1 serves this machine only; 0.0.0.0 every interface (put TLS in front: nginx, caddy)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """0: any free port (the log says which)."""
    token_file: PathValue | None = None
    """Bearer tokens (one per line, '#' comments) that unlock exact coordinates; a line
    ``NAME TOKEN`` also lets that researcher verify events (recorded as NAME)."""
    public: bool = True
    """false: every request needs a token (the dashboard asks for one)."""
    timezone: str = "UTC"
    """Hours of the diel activity chart are in this zone (e.g. Asia/Vladivostok)."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            times.zone(v)
        except times.TimeError:
            raise ValueError("not a known IANA time zone (e.g. 'Asia/Vladivostok', 'UTC')") from None
        return v

    @field_validator("token_file")
    @classmethod
    def _abs(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser()


class PrivacySection(Section):
    sensitive_tags: list[Literal[TAGS]] = ["leopard", "tiger"]  # type: ignore[valid-type]
    """Tags whose records make a location sensitive."""
    grid_deg: float = Field(default=0.1, gt=0, le=10)
    """Public coordinates are the centre of this grid cell (GBIF: 0.1 for high sensitivity)."""
    scope: Literal["all", "sensitive"] = "all"
    """all: every public coordinate is generalised (camera sites themselves draw poachers and
    thieves). sensitive: only stations that have recorded a sensitive tag; note that a station
    whose coordinates turn coarse after its first leopard tells a watcher where it was."""


class FeedSection(Section):
    enabled: bool = True
    """Republish each stored detection for researchers, coordinates as the public views show them
    ({topic_prefix}/_feed/generalised/{station_id}/detection; docs/mqtt-feed.md)."""
    exact: bool = True
    """Also publish the exact-coordinates feed ({topic_prefix}/_feed/exact/...), which only accounts
    provisioned with --exact-locations may read."""


class AlertsSection(Section):
    urls: list[SecretStr] = []
    """Apprise URLs (tgram://TOKEN/CHAT, mailtos://..., json://host/path). Prefer urls_file."""
    urls_file: PathValue | None = None
    """A file with one Apprise URL per line ('#' comments), readable only by the collector."""
    tags: list[Literal[TAGS]] = ["leopard", "tiger", "human", "vehicle"]  # type: ignore[valid-type]
    min_interval_s: float = Field(default=900, ge=0, le=7 * 86400)
    """At most one notification per station and tag in this time; the next one counts the rest."""
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    dashboard_url: str | None = None
    """Put a link to the dashboard in each notification."""
    timeout_s: float = Field(default=20.0, gt=0, le=300)

    # -- station alerts: silent, gone, trouble, power, reported problems, the daily digest --
    station_alerts: bool = True
    """Tell rangers when a station falls silent, goes offline, has trouble (camera, disk,
    outbox, clock), runs low on power or reports a problem, and when it recovers."""
    check_interval_s: float = Field(default=60.0, gt=0, le=3600)
    """How often the collector checks every station (a timer: silence needs no message)."""
    silent_after_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    """A station with no heartbeat or status for this long is silent. Default: learned per
    station, missed_heartbeats times the interval of its own heartbeats."""
    missed_heartbeats: int = Field(default=3, ge=1, le=100)
    """With silent_after_s unset: this many heartbeats missed in a row make a station silent."""
    gone_after_s: float = Field(default=300.0, ge=0, le=86400)
    """A station whose link dropped (its MQTT will) is reported once it has stayed offline this
    long: a link that comes back within it says nothing."""
    outbox_age_s: float = Field(default=1800.0, gt=0, le=30 * 86400)
    """Trouble when a station's oldest undelivered message is older than this and its outbox
    is not shrinking (or the outbox is full)."""
    clock_drift_s: float = Field(default=300.0, gt=0, le=7 * 86400)
    """Trouble when a station's clock is off by more than this: ahead (collector.max_clock_skew_s
    flags it), or behind (two heartbeats in a row arrive this late), or by its own estimate."""
    battery_low_v: float | None = Field(default=None, gt=0, le=100)
    """Power alert below this battery voltage (needs a station that reports one). Unset: only
    the station's own low-battery and under-voltage flags."""
    digest: bool = True
    """Send a daily digest: detections per station and tag, and the stations that need a visit."""
    digest_at: str = Field(default="07:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """When the digest goes out, HH:MM in the zone of http.timezone."""


class Contributor(Section):
    title: str = Field(min_length=1)
    email: str | None = None
    path: str | None = None
    role: Literal["contact", "principalInvestigator", "rightsHolder", "publisher", "contributor"] = "contributor"
    organization: str | None = None


class ProjectSection(Section):
    """Camtrap DP metadata (https://camtrap-dp.tdwg.org/metadata/)."""

    id: str | None = None
    title: str = "Camera-trap field station"
    acronym: str | None = None
    description: str | None = None
    path: str | None = None
    """Project website."""
    sampling_design: Literal["simpleRandom", "systematicRandom", "clusteredRandom", "experimental",
                             "targeted", "opportunistic"] = "targeted"
    individual_animals: bool = False
    contributors: list[Contributor] = [Contributor(title="Camera-trap field station", role="contact")]
    data_license: str = "CC-BY-4.0"
    """SPDX id of the data licence (observations and deployments)."""
    media_license: str = "CC-BY-4.0"
    rights_holder: str | None = None
    bibliographic_citation: str | None = None


class CollectorConfig(Section):
    collector: CollectorSection = CollectorSection()
    mqtt: CollectorMqttSection = CollectorMqttSection()
    http: HttpSection = HttpSection()
    privacy: PrivacySection = PrivacySection()
    feed: FeedSection = FeedSection()
    alerts: AlertsSection = AlertsSection()
    project: ProjectSection = ProjectSection()
    logging: LoggingSection = LoggingSection()


def parse_collector_config(data: dict[str, Any], source: str = "<collector config>") -> CollectorConfig:
    from station.config.load import validate_model
    return validate_model(CollectorConfig, data, source)


def load_collector_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> CollectorConfig:
    from station.config.load import read_toml
    return parse_collector_config(read_toml(Path(path), overrides), str(path))
