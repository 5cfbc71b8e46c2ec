"""The low-battery switch: when the station follows ``[schedule] low_battery_active``.

    gate = LowBatteryGate()
    changed = gate.update(volts, at, cfg.schedule)    # True when gate.low flipped
    switch = LowBatterySwitch()                       # the daemon's: gate, log, schedule
    cfg_now = switch.config(cfg, sampler.state())

Below ``low_battery_v`` for ``low_battery_hold_s`` the battery is low; it is well again only
above ``low_battery_recover_v`` (default 0.3 V higher) for as long. The gap is the
hysteresis: a battery under load reads lower than at rest, so closing the camera alone
lifts it a little, and without the gap the station would switch back and forth. The hold
time keeps a short dip (an infrared illuminator or a modem switching on) from counting.

The gate is a pure function of the readings and their times (no clock is read), so tests
pin both. A missing reading changes nothing: the station stays as it is until the monitor answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from station.log import get_logger

if TYPE_CHECKING:
    from station.config import StationConfig
    from station.config.schedule import ScheduleSection
    from station.power.sampler import PowerState

log = get_logger("power")


class LowBatteryGate:
    def __init__(self) -> None:
        self.low = False
        self._since: float | None = None
        """When the voltage first crossed towards the other state (None: it has not)."""

    def update(self, volts: float | None, at: float, schedule: "ScheduleSection") -> bool:
        """Take one reading; True if :attr:`low` changed. Without ``low_battery_v`` the gate
        opens (not low) at once."""
        limits = schedule.low_battery
        if limits is None:
            changed, self.low, self._since = self.low, False, None
            return changed
        if volts is None:
            return False
        below, above = limits
        crossing = volts > above if self.low else volts < below
        if not crossing:
            self._since = None
            return False
        if self._since is None or at < self._since:
            self._since = at
        if at - self._since >= schedule.low_battery_hold_s:
            self.low, self._since = not self.low, None
            return True
        return False


class LowBatterySwitch:
    """The daemon's side of it: feeds the gate each new sample of the power sampler, says
    so in the log when it switches, and gives the config whose schedule applies now.

        cfg_now = switch.config(daemon.cfg, sampler.state())   # cfg, or cfg with the reduced schedule
        switch.note                                            # " (low battery: dusk-dawn)" or ""
    """

    def __init__(self) -> None:
        self.gate = LowBatteryGate()
        self._seen_at: float | None = None
        self._reduced: tuple[object, "StationConfig"] | None = None

    @property
    def low(self) -> bool:
        return self.gate.low

    def config(self, cfg: "StationConfig", state: "PowerState | None") -> "StationConfig":
        s = cfg.schedule
        fresh = state is not None and state.at is not None and state.at != self._seen_at
        if fresh or (s.low_battery is None and self.gate.low):
            volts = state.reading.battery_v if fresh and state.reading is not None else None
            at = state.at if fresh else 0.0
            if fresh:
                self._seen_at = state.at
            if self.gate.update(volts, at, s):
                self._log_switch(cfg, volts)
        if not self.gate.low:
            return cfg
        if self._reduced is None or self._reduced[0] is not cfg:
            self._reduced = (cfg, cfg.model_copy(update={"schedule": s.reduced()}))
        return self._reduced[1]

    def note(self, cfg: "StationConfig") -> str:
        """What the schedule's state line adds while the battery is low."""
        return f" (low battery: {cfg.schedule.reduced().describe()})" if self.gate.low else ""

    def _log_switch(self, cfg: "StationConfig", volts: float | None) -> None:
        s = cfg.schedule
        if self.gate.low:
            below, above = s.low_battery or (None, None)
            log.warning("power: battery low; following the low-battery schedule", battery_v=volts,
                        low_battery_v=below, recover_above_v=above, schedule=s.reduced().describe())
        elif s.low_battery is None:
            log.info("power: low_battery_v is no longer set; back to the schedule", schedule=s.describe())
        else:
            log.info("power: battery recovered; back to the schedule", battery_v=volts,
                     recover_above_v=s.low_battery[1], schedule=s.describe())
