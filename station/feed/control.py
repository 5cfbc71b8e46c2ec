"""What the feed needs of the station it speaks for: a small control protocol.

    class StationDaemon:                      # implements StationControl
        def request_snapshot(self, done): ...
        def request_reload(self, done): ...
        def facts(self) -> StationFacts: ...

The feed answers operators' commands through it and reads the facts for each health
heartbeat, without knowing how the station is built. A test hands the feed a fake of a
few lines; benchmarks hand it None (no commands answered, facts left empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

SnapshotDone = Callable[[str | None, str], None]
"""``done(event_id or None, message)``: called once, from the station's capture thread."""
ReloadDone = Callable[[bool, str], None]
"""``done(ok, message)``: called once, after the new config is applied or refused."""


@dataclass(frozen=True, slots=True)
class CameraFacts:
    state: str = "starting"           # starting, ok, failed, ended
    uri: str | None = None            # as shown (secrets taken out)
    fps: float | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class DiskFacts:
    free_mb: float | None = None
    store_mb: float | None = None
    low: bool = False                 # the free-space floor or size cap is crossed after pruning


@dataclass(frozen=True, slots=True)
class PowerFacts:
    """health/1's optional ``power`` section (docs/mqtt-feed.md#health1)."""

    monitor: str | None = None        # the battery monitor ("ina219"); None without one
    battery_v: float | None = None    # the monitor's last reading; None if it failed or there is none
    current_a: float | None = None
    power_w: float | None = None
    wh_today: float | None = None     # watt-hours drawn on local day `day`; None while unmeasured
    wh_today_covered_s: float = 0.0   # seconds of that day the readings cover
    wh_yesterday: float | None = None
    day: str | None = None            # "2026-11-25", in [schedule] timezone
    low_battery: bool | None = None   # on the low-battery schedule; None without low_battery_v
    monitor_error: str | None = None
    undervoltage: bool | None = None  # the Pi's own supply, now; None off a Pi
    undervoltage_events: int = 0      # times it fell under since the station started
    throttled: bool | None = None
    frequency_capped: bool | None = None
    soft_temperature_limit: bool | None = None


@dataclass(frozen=True, slots=True)
class IrFacts:
    """The IR illuminator (``[camera] ir_light``)."""

    pin: int
    mode: str                         # light, schedule
    on: bool                          # switched on (it is off while the camera sleeps)
    switches: int = 0                 # times switched since start
    light_level: float | None = None  # mean grey level it decides by (light mode)


@dataclass(frozen=True, slots=True)
class StationFacts:
    """A snapshot of the station's state for a health heartbeat."""

    camera: CameraFacts = CameraFacts()
    disk: DiskFacts = DiskFacts()
    pending_classification: int = 0
    schedule: str | None = None
    """"active", or "sleeping until 18:42" outside [schedule] active hours; None if unknown.
    " (low battery: dusk-dawn)" is added while the low-battery schedule applies."""
    power: PowerFacts | None = None
    """None where there is nothing to say (no battery monitor, not a Pi)."""
    ir_light: IrFacts | None = None
    """None when the station has no IR illuminator."""


class StationControl(Protocol):
    def request_snapshot(self, done: SnapshotDone) -> None:
        """Take a full-resolution still as its own event at the next frame."""

    def request_reload(self, done: ReloadDone) -> None:
        """Re-read and apply the config file; a bad file is refused whole."""

    def facts(self) -> StationFacts:
        """The state the health heartbeat reports; cheap, safe from any thread."""
