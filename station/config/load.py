"""The root config model and the loader that turns pydantic errors into plain sentences."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, model_validator

from station.config.base import Section
from station.config.camera import CameraSection
from station.config.classifier import ClassifierSection
from station.config.events import EventsSection
from station.config.identity import StationSection
from station.config.logging import LoggingSection
from station.config.motion import MotionSection
from station.config.mqtt import MqttSection
from station.config.power import PowerSection
from station.config.schedule import ScheduleSection
from station.config.storage import StorageSection
from station.config.trigger import TriggerSection


class StationConfig(Section):
    station: StationSection
    camera: CameraSection = CameraSection()
    motion: MotionSection = MotionSection()
    events: EventsSection = EventsSection()
    storage: StorageSection = StorageSection()
    classifier: ClassifierSection = ClassifierSection()
    mqtt: MqttSection = MqttSection()
    schedule: ScheduleSection = ScheduleSection()
    power: PowerSection = PowerSection()
    trigger: TriggerSection = TriggerSection()
    logging: LoggingSection = LoggingSection()

    @model_validator(mode="after")
    def _low_battery_needs_a_monitor(self) -> "StationConfig":
        if self.schedule.low_battery_v is not None and not self.power.enabled:
            raise ValueError("schedule.low_battery_v: needs a battery monitor to read the voltage: set "
                             "[power] monitor = \"ina219\" (docs/ranger-guide.md), or remove low_battery_v")
        return self

    @model_validator(mode="after")
    def _pins(self) -> "StationConfig":
        t, c = self.trigger, self.camera
        if t.mode != "motion" and t.pir_pin is None and not c.uri.strip().lower().startswith("synthetic"):
            raise ValueError(f"trigger.pir_pin: required with mode = {t.mode!r} (the GPIO the PIR is wired to); "
                             "only a synthetic scene has a PIR of its own")
        if t.pir_pin is not None and t.pir_pin == c.ir_light:
            raise ValueError(f"trigger.pir_pin = {t.pir_pin}: the same GPIO as camera.ir_light")
        return self


class ConfigError(ValueError):
    """The configuration is unusable. ``problems`` holds one sentence per bad key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} configuration error(s):\n{lines}")


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The section model that holds the key at ``loc`` (to list the keys it allows)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


_OWN_KEY = re.compile(r"[a-z_]+\.[a-z_]+: ")
_TOML_TYPES = {"bool_type": "write true or false", "int_type": "write a whole number",
               "float_type": "write a number"}


def _describe(err: dict[str, Any], root: type[BaseModel] = StationConfig) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc)
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see deploy/station.example.toml"
        return f"{key}: unknown key (allowed here: {allowed})"
    if kind == "missing":
        return f"{key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if _OWN_KEY.match(msg) and (not loc or msg.startswith(f"{key}.")):
        return msg  # a check across keys names the key itself ("schedule.timezone: required ...")
    if kind in _TOML_TYPES and isinstance(err.get("input"), str):
        msg += f" ({_TOML_TYPES[kind]}, without quotes)"
    if "input" in err and not isinstance(err["input"], dict):
        return f"{key} = {err['input']!r}: {msg}"
    if not loc:
        return msg  # a rule across sections: the sentence names its keys
    return f"{key}: {msg}"


def validate_model(root: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """``root.model_validate(data)``, its errors as one :class:`ConfigError` naming every key."""
    try:
        return root.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(e, root) for e in exc.errors()]) from None


def parse_config(data: dict[str, Any], source: str = "<config>") -> StationConfig:
    return validate_model(StationConfig, data, source)


def read_toml(path: Path, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The TOML table in ``path`` with ``overrides`` (section -> key -> value) applied."""
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad writes one) is read past, not an error
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    for section, values in (overrides or {}).items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(str(path), [f"{section}: must be a table, not {type(target).__name__}"])
        target.update(values)
    return data


def load_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> StationConfig:
    """Read and validate ``path``; ``overrides`` (section -> key -> value) win over the file."""
    return parse_config(read_toml(Path(path), overrides), str(path))
