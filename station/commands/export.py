"""``station export camtrap-dp|csv|validate|training-set``: the collector's detections as a
Camera Trap Data Package or a CSV file (:mod:`station.collector.export`), and the verified
ones as labelled pictures for ``station train`` (:mod:`station.collector.training_set`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.config import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="export the collector's detections (Camtrap DP, CSV)")
    xsub = export.add_subparsers(dest="export_command", required=True)
    for name, what, out in (("camtrap-dp", "a Camera Trap Data Package (Camtrap DP 1.0.2)",
                             "folder for datapackage.json, deployments/media/observations.csv"),
                            ("csv", "one CSV row per detection, for a spreadsheet",
                             "CSV file (or an existing folder: DIR/detections.csv)")):
        xp = xsub.add_parser(name, help=f"write {what}")
        xp.add_argument("--config", required=True, type=Path, help="collector TOML file")
        xp.add_argument("--out", required=True, type=Path, help=out)
        xp.add_argument("--exact", action="store_true",
                        help="exact coordinates (restricted: never publish); default generalises them")
        xp.add_argument("--station", help="only this station id")
        xp.add_argument("--since", help="only events starting at or after T (RFC 3339, e.g. 2026-11-01T00:00:00Z)")
        xp.add_argument("--until", help="only events starting before T")
        xp.set_defaults(func=cmd_export)
    xt = xsub.add_parser("training-set", help="write the verified events' pictures as DIR/<tag>/ for station train")
    xt.add_argument("--config", required=True, type=Path, help="collector TOML file")
    xt.add_argument("--out", required=True, type=Path,
                    help="folder for <tag>/<event_id>.jpg and training-set.csv (new, empty, or an earlier set)")
    xt.add_argument("--station", help="only this station id")
    xt.add_argument("--since", help="only events starting at or after T (RFC 3339, e.g. 2026-11-01T00:00:00Z)")
    xt.add_argument("--until", help="only events starting before T")
    xt.set_defaults(func=cmd_training_set)
    xv = xsub.add_parser("validate", help="check a Camtrap DP package offline (frictionless)")
    xv.add_argument("package", type=Path, help="package folder or its datapackage.json")
    xv.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from station.collector import camtrap_dp

    prog = "station export validate"
    target = args.package / "datapackage.json" if args.package.is_dir() else args.package
    if not target.is_file():
        print(f"{prog}: {target}: no such file", file=sys.stderr)
        return 2
    try:
        report = camtrap_dp.validate(target)
    except ImportError:
        print(f"{prog}: needs frictionless: pip install 'camtrap-station[collector]'", file=sys.stderr)
        return 2
    if report.valid:
        print(f"{target}: valid Camtrap DP {camtrap_dp.VERSION} (checked offline)")
        return 0
    for problem in camtrap_dp.problems(report):
        print(f"{target}: {problem}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    from station.collector.db import Database, StorageError
    from station.collector.export import ExportError, NothingToExport, export_camtrap_dp, export_csv
    from station.config.collector import load_collector_config

    prog = f"station export {args.export_command}"
    try:
        cfg = load_collector_config(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc.source}: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    try:
        with Database.open(cfg.collector.sqlite_resolved_url()) as db:
            db.migrate()
            export = export_camtrap_dp if args.export_command == "camtrap-dp" else export_csv
            summary = export(db, cfg, args.out, exact=args.exact, station=args.station,
                             since=args.since, until=args.until)
    except StorageError as exc:
        print(f"{prog}: database: {exc}", file=sys.stderr)
        return 2
    except NothingToExport as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for warning in summary.warnings():
        print(f"{prog}: warning: {warning}", file=sys.stderr)
    print(summary.line())
    return 0


def cmd_training_set(args: argparse.Namespace) -> int:
    from station.collector.db import Database, StorageError
    from station.collector.export import ExportError, NothingToExport
    from station.collector.training_set import export_training_set
    from station.config.collector import load_collector_config
    from station.progress import progress

    prog = "station export training-set"
    try:
        cfg = load_collector_config(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc.source}: {'; '.join(exc.problems)}", file=sys.stderr)
        return 2
    try:
        with Database.open(cfg.collector.sqlite_resolved_url()) as db:
            db.migrate()
            with progress("training set", unit="event") as bar:
                summary = export_training_set(db, cfg, args.out, station=args.station, since=args.since,
                                              until=args.until, progress=bar)
    except StorageError as exc:
        print(f"{prog}: database: {exc}", file=sys.stderr)
        return 2
    except NothingToExport as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for warning in summary.warnings():
        print(f"{prog}: warning: {warning}", file=sys.stderr)
    print(summary.line())
    return 0
