"""The power sampler: a thread that reads the battery monitor and the Pi's flags every
``[power] sample_interval_s`` and keeps the latest of both, and the day's watt-hours.

    sampler = PowerSampler(open_monitor=lambda: open_ina219(1, 0x40, 0.1), flags=PiFlagsReader(),
                           ledger=ledger, interval_s=10)
    sampler.start()
    state = sampler.state()          # PowerState: the reading, its error, the flags, the energy
    sampler.stop()                   # the watt-hours are saved

Capture never waits for it: the daemon only looks at :meth:`PowerSampler.state`, a frozen
snapshot replaced whole after each sample. A monitor that fails is reported (in the state
and, once per kind of failure, in the log) and tried again at the next sample; a monitor
that was never there (no smbus2, no /dev/i2c-1) is opened again at each sample too, so
switching I2C on and rebooting is all a ranger has to do.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from station.log import get_logger
from station.power.energy import EnergyLedger, EnergyTotals
from station.power.ina219 import BatteryReading, MonitorError
from station.power.pi import PiFlags, PiFlagsReader

log = get_logger("power")

MAX_EVENTS = 1_000_000
"""Counters stop here (health/1's bound): a number beyond it is not a count but a fault."""
UNDERVOLTAGE_LOG_EVERY_S = 600.0
"""A supply that dips again and again is logged at most this often (health counts them all)."""


class Monitor(Protocol):
    name: str

    def read(self) -> BatteryReading: ...


@dataclass(frozen=True, slots=True)
class PowerState:
    at: float | None = None
    """When the last sample was taken (Unix time); None before the first."""
    monitor: str | None = None
    """The battery monitor's kind ("ina219"); None without one."""
    reading: BatteryReading | None = None
    """The last sample's reading; None if it failed (``monitor_error`` says why)."""
    monitor_error: str | None = None
    flags: PiFlags | None = None
    """The Pi's supply and heat flags; None off a Pi."""
    undervoltage_events: int = 0
    """Times the Pi's supply fell under its limit since the station started (as sampled)."""
    energy: EnergyTotals | None = None


class PowerSampler:
    def __init__(self, *, open_monitor: Callable[[], Monitor] | None = None, monitor_name: str | None = None,
                 flags: PiFlagsReader | None = None, ledger: EnergyLedger | None = None,
                 interval_s: float = 10.0, clock: Callable[[], float] = time.time):
        self._open_monitor = open_monitor
        self.monitor_name = monitor_name if open_monitor is not None else None
        self._monitor: Monitor | None = None
        self.flags = flags
        self.ledger = ledger
        self.interval_s = interval_s
        self.clock = clock
        self._state = PowerState(monitor=self.monitor_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_lock = threading.Lock()
        self._undervoltage_warned: float | None = None
        """Monotonic time of the last under-voltage warning."""
        self._episode_logged = False

    def state(self) -> PowerState:
        return self._state

    # -- one sample --------------------------------------------------------------------------
    def sample(self) -> PowerState:
        """Read everything once (the thread does this every ``interval_s``; tests call it)."""
        with self._sample_lock:
            now = self.clock()
            before = self._state
            reading, error = self._read_monitor()
            flags = self._read_flags()
            events = self._count_undervoltage(before, flags)
            if error != before.monitor_error:
                if error is not None:
                    log.error("power: battery monitor failed; trying again at each sample",
                              monitor=self.monitor_name, error=error)
                elif before.monitor_error is not None:
                    log.info("power: battery monitor reads again", monitor=self.monitor_name,
                             battery_v=reading.battery_v if reading else None)
            energy = None
            if self.ledger is not None:
                self.ledger.add(now, reading.power_w if reading is not None else None)
                energy = self.ledger.totals(now)
            self._state = PowerState(at=now, monitor=self.monitor_name, reading=reading, monitor_error=error,
                                     flags=flags, undervoltage_events=events, energy=energy)
            return self._state

    def _count_undervoltage(self, before: PowerState, flags: PiFlags | None) -> int:
        """The episode count after this sample; an episode's start and end are logged, at
        most every :data:`UNDERVOLTAGE_LOG_EVERY_S`."""
        events = before.undervoltage_events
        was_under = bool(before.flags and before.flags.undervoltage)
        if flags is None or flags.undervoltage == was_under:
            return events
        if flags.undervoltage:
            events = min(MAX_EVENTS, events + 1)
            mono, last = time.monotonic(), self._undervoltage_warned
            self._episode_logged = last is None or mono - last >= UNDERVOLTAGE_LOG_EVERY_S
            if self._episode_logged:
                self._undervoltage_warned = mono
                log.warning("power: the Pi's own supply is under-voltage (below about 4.6 V): check the "
                            "5 V converter and its cable", source=flags.source, times=events)
        elif self._episode_logged:
            log.info("power: the Pi's supply voltage is normal again", source=flags.source, times=events)
        return events

    def _read_monitor(self) -> tuple[BatteryReading | None, str | None]:
        if self._open_monitor is None:
            return None, None
        try:
            if self._monitor is None:
                self._monitor = self._open_monitor()
            return self._monitor.read(), None
        except MonitorError as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a driver's surprise must not stop the sampling
            log.exception("power: battery monitor raised")
            return None, f"{type(exc).__name__}: {exc}"

    def _read_flags(self) -> PiFlags | None:
        if self.flags is None:
            return None
        try:
            return self.flags.read()
        except Exception:  # noqa: BLE001 - the same
            log.exception("power: reading the Pi's flags raised")
            return None

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="power", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - sampling must outlive any one bad sample
                log.exception("power: sample failed")
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        """Stop sampling and save the watt-hours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self.ledger is not None:
            with self._sample_lock:
                self.ledger.save()
