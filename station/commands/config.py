"""``station config check`` and ``station config check-collector``: validate a TOML file and
say in a few lines what it sets up."""

from __future__ import annotations

import argparse
from pathlib import Path

from station.config import ConfigError, load_config
from station.uris import redact_uri


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a station TOML file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)
    ccheck = csub.add_parser("check-collector", help="validate a collector TOML file")
    ccheck.add_argument("file", type=Path)
    ccheck.set_defaults(func=cmd_collector_check)


def _broker_file_problems(cfg) -> list[str]:
    """The password and TLS files of an [mqtt] section, each problem naming its key."""
    from station.feed.client import FeedConfigError, check_settings

    try:
        check_settings(cfg.mqtt)
    except FeedConfigError as exc:
        return [str(exc)]
    return []


def cmd_config_check(args: argparse.Namespace) -> int:
    from station.config.check import check_station

    cfg = load_config(args.file)
    problems = check_station(cfg) + (_broker_file_problems(cfg) if cfg.mqtt.enabled else [])
    if problems:
        raise ConfigError(str(args.file), problems)
    print(f"{args.file}: OK")
    print(f"  station {cfg.station.id} (deployment {cfg.station.deployment_id}) "
          f"at {cfg.station.latitude:.5f}, {cfg.station.longitude:.5f}")
    print(f"  camera {redact_uri(cfg.camera.uri)} main {cfg.camera.main_size[0]}x{cfg.camera.main_size[1]} "
          f"lores {cfg.camera.lores_size[0]}x{cfg.camera.lores_size[1]} @ {cfg.camera.fps:g} fps")
    if cfg.mqtt.enabled:
        print(f"  feed to mqtt{'s' if cfg.mqtt.tls else ''}://{cfg.mqtt.host}:{cfg.mqtt.port} "
              f"under {cfg.mqtt.topic_prefix}/{cfg.station.id}/")
    print(f"  events to {cfg.storage.data_dir} (free-space floor {cfg.storage.min_free_mb:g} MB"
          + (f", cap {cfg.storage.max_size_mb:g} MB)" if cfg.storage.max_size_mb else ")"))
    return 0


def cmd_collector_check(args: argparse.Namespace) -> int:
    from station.config.collector import load_collector_config

    from station.collector.service import CollectorSetupError, preflight

    cfg = load_collector_config(args.file)
    problems = _broker_file_problems(cfg)
    try:
        preflight(cfg)
    except CollectorSetupError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(str(args.file), problems)
    print(f"{args.file}: OK")
    print(f"  collector {cfg.collector.id}: database {redact_uri(cfg.collector.sqlite_resolved_url())}, "
          f"thumbnails in {cfg.collector.thumbnails_dir}")
    print(f"  feed from mqtt{'s' if cfg.mqtt.tls else ''}://{cfg.mqtt.host}:{cfg.mqtt.port} "
          f"under {cfg.mqtt.topic_prefix}/+/" + (f" (shared group {cfg.mqtt.shared_group})"
                                                   if cfg.mqtt.shared_group else ""))
    if cfg.http.enabled:
        print(f"  dashboard on http://{cfg.http.host}:{cfg.http.port}/ "
              f"({'public, generalised locations' if cfg.http.public else 'token required'})")
    return 0
