"""What several command groups share: config overrides from options, signal handling,
the ``[classifier]`` section a command works with."""

from __future__ import annotations

import argparse
import signal
from typing import Callable

from station.log import get_logger

log = get_logger("cli")

LOG_LEVELS = ("debug", "info", "warning", "error")


def config_overrides(args: argparse.Namespace) -> dict:
    """The station config keys that command-line options override (``--camera``, ...)."""
    out: dict = {}
    if getattr(args, "camera", None):
        out.setdefault("camera", {})["uri"] = args.camera
    if getattr(args, "speed", None):
        out.setdefault("camera", {})["speed"] = args.speed
    if getattr(args, "data_dir", None):
        out.setdefault("storage", {})["data_dir"] = str(args.data_dir)
    if getattr(args, "log_level", None):
        out.setdefault("logging", {})["level"] = args.log_level
    return out


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop`` (systemd stops with SIGTERM, a terminal with Ctrl-C)."""
    def handler(signum, _frame):
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def classifier_section(args: argparse.Namespace):
    """The [classifier] section of --config (default: the shipped model), with --region applied."""
    from station.config import load_config
    from station.config.classifier import ClassifierSection

    section = load_config(args.config).classifier if args.config else ClassifierSection()
    if args.region:
        section = ClassifierSection.model_validate({**section.model_dump(), "region": args.region})
    return section
