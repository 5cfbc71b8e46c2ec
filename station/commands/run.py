"""``station run``: the station daemon."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from station.args import seconds
from station.commands.common import LOG_LEVELS, config_overrides, install_signal_handlers
from station.config import StationConfig, load_config
from station.log import get_logger, setup_logging

log = get_logger("cli")


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the station daemon")
    run.add_argument("--config", required=True, type=Path, help="station TOML file")
    run.add_argument("--camera", help="override camera.uri (picamera2, opencv:N, rtsp://..., FILE, DIR, synthetic[:SEED])")
    run.add_argument("--duration", type=seconds, help="stop after S seconds (camera clock)")
    run.add_argument("--speed", choices=["realtime", "max"], help="replay/simulation pace")
    run.add_argument("--data-dir", type=Path, help="override storage.data_dir")
    run.add_argument("--log-level", choices=LOG_LEVELS)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    overrides = config_overrides(args)
    cfg = load_config(args.config, overrides)
    setup_logging(cfg.logging.level)
    return run_station(cfg, args.duration, reloader=lambda: load_config(args.config, overrides))


def run_station(cfg: StationConfig, duration: float | None, on_event=None, reloader=None) -> int:
    """Build the daemon from ``cfg`` and run it until a signal, the end of a replay, or
    ``duration`` seconds; 0 on a clean stop, 1 if the camera failed for good, 2 if it
    could not start."""
    from station.camera.base import CameraError
    from station.daemon import SceneTruthError, StationDaemon, write_truth_if_simulated
    from station.sdnotify import Notifier

    data_dir = cfg.storage.data_dir
    try:
        (data_dir / "events").mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        print(f"station: storage.data_dir = {str(data_dir)!r}: not a writable folder ({exc.strerror})",
              file=sys.stderr)
        return 2
    try:
        daemon = StationDaemon.build(cfg, on_event=on_event)
    except CameraError as exc:
        print(f"station: camera: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a bad camera URI, or mqtt.* files that cannot work (names the key)
        print(f"station: {exc}", file=sys.stderr)
        return 2
    install_signal_handlers(daemon.stop)
    daemon.notifier = Notifier.from_environment()  # systemd: READY, WATCHDOG from the capture loop
    if reloader is not None:
        daemon.reloader = reloader
        # SIGHUP re-reads the config, as `systemctl reload` expects.
        signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload(
            lambda ok, msg: log.info("reload via SIGHUP", ok=ok, result=msg)))
    daemon.run(duration_s=duration)
    if daemon.failure:
        print(f"station: camera: {daemon.failure}", file=sys.stderr)
        return 1
    try:
        truth = write_truth_if_simulated(daemon.camera, cfg.storage.data_dir)
    except SceneTruthError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 1
    if truth:
        log.info("scene ground truth written", path=str(truth))
    return 0
