"""``station collector``: MQTT ingest, database, alerts, API and dashboard; ``station alerts
test``: a test notification to every configured Apprise URL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.args import seconds
from station.commands.common import LOG_LEVELS, install_signal_handlers
from station.log import setup_logging


def register(sub: argparse._SubParsersAction) -> None:
    col = sub.add_parser("collector", help="run the collector: MQTT ingest, database, alerts, API and dashboard")
    col.add_argument("--config", required=True, type=Path, help="collector TOML file")
    col.add_argument("--no-http", action="store_true", help="ingest only, no API/dashboard")
    col.add_argument("--duration", type=seconds, default=None, help="stop after S seconds")
    col.add_argument("--log-level", choices=LOG_LEVELS)
    col.set_defaults(func=cmd_collector)

    alerts = sub.add_parser("alerts", help="ranger alerts (Apprise)")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    atest = asub.add_parser("test", help="send a test notification to every configured Apprise URL")
    atest.add_argument("--config", required=True, type=Path, help="collector TOML file")
    atest.set_defaults(func=cmd_alerts_test)


def cmd_collector(args: argparse.Namespace) -> int:
    """Run the collector until SIGTERM/SIGINT (or --duration)."""
    from station.collector.service import CollectorService, CollectorSetupError
    from station.config.collector import load_collector_config
    from station.feed.client import FeedConfigError
    from station.sdnotify import Notifier

    overrides: dict = {}
    if args.log_level:
        overrides["logging"] = {"level": args.log_level}
    cfg = load_collector_config(args.config, overrides)
    setup_logging(cfg.logging.level)
    try:
        service = CollectorService.build(cfg, http=False if args.no_http else None)
    except (CollectorSetupError, FeedConfigError) as exc:
        print(f"station collector: {exc}", file=sys.stderr)
        return 2
    install_signal_handlers(service.request_stop)
    service.notifier = Notifier.from_environment()  # systemd: READY after start, a watchdog thread
    try:
        service.start()
        if service.url:
            print(f"collector: dashboard at {service.url}", flush=True)
        service.wait(args.duration)
    finally:
        service.stop()
    return 0


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from station.collector.alerts import send_test_alerts

    return send_test_alerts(args.config)
