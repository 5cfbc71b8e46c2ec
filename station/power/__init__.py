"""Power: the battery, the Pi's supply and heat, watt-hours per day, the low-battery switch.

    sampler = build_sampler(cfg)          # None where there is nothing to read (not a Pi, no monitor)
    sampler.start(); sampler.state(); sampler.stop()

* :mod:`station.power.pi`: the kernel's under-voltage and throttling flags (sysfs, with
  ``vcgencmd`` as a fallback) - which file on which Pi.
* :mod:`station.power.ina219`: the INA219 battery monitor over I2C (smbus2), with the
  datasheet's register formats.
* :mod:`station.power.energy`: watt-hours per local day, kept on the card across restarts.
* :mod:`station.power.sampler`: the thread that reads all of it every ``[power]
  sample_interval_s``.
* :mod:`station.power.low_battery`: when ``[schedule] low_battery_active`` applies
  (hysteresis and hold time).

The SoC temperature stays where the heartbeat always read it,
:func:`station.sysinfo.cpu_temperature_c`. Tests fake the two boundaries: a /sys tree in a
temporary folder, and an SMBus object that answers like the chip.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from station.feed.control import PowerFacts
from station.power.energy import ENERGY_FILE, EnergyLedger
from station.power.ina219 import open_ina219
from station.power.pi import SYS, PiFlagsReader
from station.power.sampler import Monitor, PowerSampler, PowerState

if TYPE_CHECKING:
    from station.config import StationConfig

__all__ = ["ENERGY_FILE", "PowerSampler", "PowerState", "build_sampler", "facts", "open_monitor"]


def open_monitor(cfg: "StationConfig") -> Callable[[], Monitor] | None:
    """How to open the configured battery monitor; None for ``monitor = "none"``."""
    p = cfg.power
    if not p.enabled:
        return None
    return lambda: open_ina219(p.i2c_bus, p.i2c_address, p.shunt_ohms)


def build_sampler(cfg: "StationConfig", *, sys_root: Path = SYS, vcgencmd: str | None = "vcgencmd",
                  opener: Callable[[], Monitor] | None = None) -> PowerSampler | None:
    """The sampler for ``cfg``, or None where it would have nothing to read (no battery
    monitor configured and no Pi flags in ``sys_root``). ``opener`` replaces the real
    monitor (tests: an INA219 on a fake bus)."""
    flags = PiFlagsReader(sys_root, vcgencmd=vcgencmd)
    opener = opener or open_monitor(cfg)
    if opener is None and flags.read() is None:
        return None
    ledger = None
    if opener is not None:
        ledger = EnergyLedger(Path(cfg.storage.data_dir) / ENERGY_FILE, cfg.schedule.zone,
                              max_gap_s=3 * cfg.power.sample_interval_s)
        ledger.load()
    return PowerSampler(open_monitor=opener, monitor_name=(cfg.power.monitor if cfg.power.enabled else "ina219") if opener else None, flags=flags,
                        ledger=ledger, interval_s=cfg.power.sample_interval_s)


def facts(state: PowerState, low_battery: bool | None) -> PowerFacts:
    """health/1's ``power`` section from the sampler's state (``low_battery``: the daemon's
    switch, None when no ``low_battery_v`` is set)."""
    r, f, e = state.reading, state.flags, state.energy
    return PowerFacts(
        monitor=state.monitor,
        battery_v=r.battery_v if r else None, current_a=r.current_a if r else None, power_w=r.power_w if r else None,
        wh_today=e.wh_today if e else None, wh_today_covered_s=e.covered_s if e else 0.0,
        wh_yesterday=e.wh_yesterday if e else None, day=e.day if e else None,
        low_battery=low_battery, monitor_error=state.monitor_error,
        undervoltage=f.undervoltage if f else None, undervoltage_events=state.undervoltage_events,
        throttled=f.throttled if f else None, frequency_capped=f.frequency_capped if f else None,
        soft_temperature_limit=f.soft_temperature_limit if f else None)
