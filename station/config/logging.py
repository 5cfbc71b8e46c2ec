"""``[logging]``."""

from typing import Literal

from station.config.base import Section


class LoggingSection(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
