"""``station`` command line: a thin layer over the library.

    station run --config FILE [--camera URI] [--duration S] [--speed max] [--data-dir DIR]
    station selftest --config FILE [--json]
    station config check FILE
    station config check-collector FILE
    station collector --config FILE [--no-http] [--duration S]
    station alerts test --config FILE
    station provision NAME [--role station|collector|researcher|operator] ...
    station export camtrap-dp|csv --config FILE --out PATH | station export validate DIR
    station events (--data-dir DIR | --config FILE) [--json]
    station scene [--seed N] [--duration S] [--json]
    station bench motion [--json]
    station bench classifier [--json]
    station classify IMAGE... [--json]
    station evaluate DIR [--json]
    station demo [--duration S]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from station import __version__
from station.config import ConfigError, StationConfig, load_config
from station.log import get_logger, setup_logging

log = get_logger("cli")


def _overrides(args: argparse.Namespace) -> dict:
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


def _install_signal_handlers(stop) -> None:
    def handler(signum, _frame):
        log.info("signal received; stopping", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_station(cfg: StationConfig, duration: float | None, on_event=None, reloader=None) -> int:
    from station.camera.base import CameraError
    from station.daemon import StationDaemon, write_truth_if_simulated

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
    _install_signal_handlers(daemon.stop)
    from station.sdnotify import Notifier

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
    truth = write_truth_if_simulated(daemon.camera, cfg.storage.data_dir)
    if truth:
        log.info("scene ground truth written", path=str(truth))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    cfg = load_config(args.config, overrides)
    setup_logging(cfg.logging.level)
    return run_station(cfg, args.duration, reloader=lambda: load_config(args.config, overrides))


def cmd_selftest(args: argparse.Namespace) -> int:
    """One screen a ranger can read: camera, model, disk, clock, broker, schedule."""
    from station.selftest import exit_code, format_report, run_selftest

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        if args.json:
            json.dump({"checks": [{"name": "config", "level": "FAIL", "message": str(exc)}], "exit_code": 2},
                      sys.stdout, indent=1)
            print()
        else:
            print(f"FAIL  config    {exc}")
        return 2
    checks = run_selftest(cfg, timeout_s=args.timeout)
    if args.json:
        json.dump({"station_id": cfg.station.id, "checks": [c.to_dict() for c in checks],
                   "exit_code": exit_code(checks)}, sys.stdout, indent=1)
        print()
    else:
        print(format_report(cfg, checks, config_path=args.config))
    return exit_code(checks)


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    if cfg.mqtt.enabled:
        from station.feed.publisher import FeedConfigError, check_settings

        try:
            check_settings(cfg.mqtt)
        except FeedConfigError as exc:
            raise ConfigError(str(args.file), [str(exc)]) from None
    print(f"{args.file}: OK")
    print(f"  station {cfg.station.id} (deployment {cfg.station.deployment_id}) "
          f"at {cfg.station.latitude:.5f}, {cfg.station.longitude:.5f}")
    print(f"  camera {cfg.camera.uri} main {cfg.camera.main_size[0]}x{cfg.camera.main_size[1]} "
          f"lores {cfg.camera.lores_size[0]}x{cfg.camera.lores_size[1]} @ {cfg.camera.fps:g} fps")
    if cfg.mqtt.enabled:
        print(f"  feed to mqtt{'s' if cfg.mqtt.tls else ''}://{cfg.mqtt.host}:{cfg.mqtt.port} "
              f"under {cfg.mqtt.topic_prefix}/{cfg.station.id}/")
    print(f"  events to {cfg.storage.data_dir} (free-space floor {cfg.storage.min_free_mb:g} MB"
          + (f", cap {cfg.storage.max_size_mb:g} MB)" if cfg.storage.max_size_mb else ")"))
    return 0


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] + "Z"


def cmd_events(args: argparse.Namespace) -> int:
    from station.events.store import EventStore

    if args.data_dir:
        data_dir = Path(args.data_dir)
    elif args.config:
        data_dir = load_config(args.config).storage.data_dir
    else:
        print("station events: give --data-dir DIR or --config FILE", file=sys.stderr)
        return 2
    if not data_dir.is_dir():
        print(f"station events: {data_dir}: no such directory", file=sys.stderr)
        return 2
    records = list(EventStore(data_dir).records())
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'event id':36}  {'start (UTC)':23}  {'length':>7}  {'stills':>6}  {'pre':>5}  {'status':7}  end reason")
    for r in records:
        end = r.get("end_timestamp")
        length = f"{end - r['start_timestamp']:.1f}s" if end is not None else "-"
        stills = sum(1 for f in r.get("frames", []) if f.get("file"))
        print(f"{r['id']:36}  {_fmt_time(r['start_timestamp']):23}  {length:>7}  {stills:>6}  "
              f"{r.get('pre_trigger_s', 0):>4.1f}s  {r.get('status', '?'):7}  {r.get('end_reason') or '-'}")
    print(f"{len(records)} event(s) in {data_dir}")
    return 0


def cmd_scene(args: argparse.Namespace) -> int:
    from station.camera.synthetic import build_schedule

    schedule = build_schedule(args.seed, args.duration)
    data = schedule.to_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
        return 0
    print(f"synthetic scene seed {args.seed}, {args.duration:g} s")
    for c in data["crossings"]:
        print(f"  crossing  {c['start_s']:8.1f} – {c['end_s']:8.1f} s  {c['kind']}{' (night)' if c.get('night') else ''}")
    for d in data["disturbances"]:
        print(f"  quiet     {d['start_s']:8.1f} – {d['end_s']:8.1f} s  {d['kind']}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "motion":
        from station.bench import motion as bench

        report = bench.run(quick=args.quick)
    elif args.bench_command == "classifier":
        from station.bench import classifier as bench

        report = bench.run(quick=args.quick)
    elif args.bench_command == "feed":
        from station.bench import feed as bench
        from station.bench import latency

        report = bench.run(quick=args.quick)
        report["event_to_delivered"] = latency.measure(samples=20 if args.quick else 50,
                                                      scene_s=300.0 if args.quick else 900.0)
        if not args.json:
            bench.print_report(report)
            lat = report["event_to_delivered"]
            print(f"\nEvent closed -> classified -> outbox -> broker -> subscriber ({lat['delivered']}/"
                  f"{lat['samples']} real events, one every {lat['interval_s']} s): median {lat['median_ms']} ms, "
                  f"p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms (target p95 <= 1000 ms)")
            return 0
    elif args.bench_command == "dashboard":
        from station.bench import dashboard as bench

        report = bench.run(rows=args.rows, repeat=args.repeat, directory=args.dir,
                           postgres=args.postgres)
    elif args.bench_command == "collector":
        from station.bench import collector as bench

        report = bench.run(quick=args.quick, postgres=None if args.no_postgres else args.postgres)
    else:
        from station.bench import pipeline as bench

        seeds = [int(x) for x in args.seeds.split(",")]
        report = bench.run(seeds=seeds, duration_s=args.duration, pictures=args.pictures)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        bench.print_report(report)
    return 0


def _classifier_section(args: argparse.Namespace):
    """The [classifier] section of --config (default: the shipped model), with --region applied."""
    from station.config.classifier import ClassifierSection

    section = load_config(args.config).classifier if args.config else ClassifierSection()
    if args.region:
        section = ClassifierSection.model_validate({**section.model_dump(), "region": args.region})
    return section


def cmd_classify(args: argparse.Namespace) -> int:
    from station.classifier import Classifier, ClassifierError, ImageError

    try:
        classifier = Classifier.from_config(_classifier_section(args))
    except ClassifierError as exc:
        print(f"station classify: {exc}", file=sys.stderr)
        return 2
    results, failures = [], 0
    for image in args.images:
        try:
            result = classifier.classify_image(image).to_dict()
        except ImageError as exc:
            failures += 1
            result = {"file": str(image), "error": str(exc)}
            if not args.json:
                print(f"station classify: {exc}", file=sys.stderr)
        results.append(result)
        if not args.json and "error" not in result:
            top = ", ".join(f"{t['label']} {t['p']:.2f}" for t in result["top_k"][:3])
            species = f" / {result['species']}" if result.get("species") else ""
            print(f"{image}: {result['tag']}{species} {result['confidence']:.2f}  (model: {top})")
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    return 1 if failures else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from station.classifier import Classifier, ClassifierError
    from station.classifier.evaluate import ProgressBar, evaluate, format_report

    if not args.dir.is_dir():
        print(f"station evaluate: {args.dir}: no such folder", file=sys.stderr)
        return 2
    try:
        classifier = Classifier.from_config(_classifier_section(args))
    except ClassifierError as exc:
        print(f"station evaluate: {exc}", file=sys.stderr)
        return 2
    report = evaluate(args.dir, classifier, progress=ProgressBar())
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(format_report(report))
    return 0


def cmd_collector(args: argparse.Namespace) -> int:
    """Run the collector until SIGTERM/SIGINT (or --duration)."""
    from station.collector.service import CollectorService, CollectorSetupError
    from station.config.collector import load_collector_config
    from station.feed.publisher import FeedConfigError

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
    _install_signal_handlers(service.request_stop)
    from station.sdnotify import Notifier

    service.notifier = Notifier.from_environment()  # systemd: READY after start, a watchdog thread
    try:
        service.start()
        if service.url:
            print(f"collector: dashboard at {service.url}", flush=True)
        service.wait(args.duration)
    finally:
        service.stop()
    return 0


def cmd_collector_check(args: argparse.Namespace) -> int:
    from station.config.collector import load_collector_config
    from station.feed.publisher import FeedConfigError, check_settings

    cfg = load_collector_config(args.file)
    try:
        check_settings(cfg.mqtt)
    except FeedConfigError as exc:
        raise ConfigError(str(args.file), [str(exc)]) from None
    from station.collector.ingest import _redact

    print(f"{args.file}: OK")
    print(f"  collector {cfg.collector.id}: database {_redact(cfg.collector.sqlite_resolved_url())}, "
          f"thumbnails in {cfg.collector.thumbnails_dir}")
    print(f"  feed from mqtt{'s' if cfg.mqtt.tls else ''}://{cfg.mqtt.host}:{cfg.mqtt.port} "
          f"under {cfg.mqtt.topic_prefix}/+/" + (f" (shared group {cfg.mqtt.shared_group})"
                                                   if cfg.mqtt.shared_group else ""))
    if cfg.http.enabled:
        print(f"  dashboard on http://{cfg.http.host}:{cfg.http.port}/ "
              f"({'public, generalised locations' if cfg.http.public else 'token required'})")
    return 0


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from station.collector.alerts import cmd_alerts_test as run

    return run(args)


def cmd_provision(args: argparse.Namespace) -> int:
    """station provision NAME: a broker account and the files it is installed from (station.deploy)."""
    from station.config.collector import load_collector_config
    from station.deploy.provision import ProvisionError, Request, provision, summary

    req = Request(name=args.name, role=args.role, broker_dir=args.broker_dir, out=args.out,
                  target_dir=args.target_dir, host=args.host, port=args.port, tls=args.tls,
                  ca_file=args.ca_file, rotate=args.rotate, latitude=args.latitude,
                  longitude=args.longitude, deployment_id=args.deployment_id,
                  exact_locations=args.exact_locations, create_broker_dir=args.create_broker_dir,
                  control_port=None if args.offline else args.control_port)
    try:
        report = provision(req)
    except (ProvisionError, OSError) as exc:
        print(f"station provision: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary(report, args.broker_dir)))
    if report.config is not None and report.config in report.written:
        try:  # a file just made from the example: say now what it still lacks
            (load_config if args.role == "station" else load_collector_config)(report.config)
        except ConfigError as exc:
            print(f"  check:  {exc}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from station.demo import run_demo

    return run_demo(duration=args.duration, data_dir=args.data_dir, seed=args.seed,
                    pictures=args.pictures, speed=args.speed, broker_kind=args.broker, port=args.port)


def cmd_export(args: argparse.Namespace) -> int:
    """station export camtrap-dp|csv|validate: a thin layer over station.collector.export."""
    from station.collector.db import Database, StorageError
    from station.collector.export import ExportError, NothingToExport, export_camtrap_dp, export_csv
    from station.config.collector import load_collector_config

    prog = f"station export {args.export_command}"
    if args.export_command == "validate":
        from station.collector import camtrap_dp

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
    print(summary.line())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="Camera-trap field station")
    p.add_argument("--version", action="version", version=f"station {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the station daemon")
    run.add_argument("--config", required=True, type=Path, help="station TOML file")
    run.add_argument("--camera", help="override camera.uri (picamera2, opencv:N, rtsp://..., FILE, DIR, synthetic[:SEED])")
    run.add_argument("--duration", type=float, help="stop after S seconds (camera clock)")
    run.add_argument("--speed", choices=["realtime", "max"], help="replay/simulation pace")
    run.add_argument("--data-dir", type=Path, help="override storage.data_dir")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    selftest = sub.add_parser("selftest", help="check camera, model, disk, clock, broker and schedule "
                                               "(exit 0 all OK, 1 warnings, 2 failures)")
    selftest.add_argument("--config", required=True, type=Path, help="station TOML file")
    selftest.add_argument("--json", action="store_true")
    selftest.add_argument("--timeout", type=float, default=10.0, help="seconds each check may take (default 10)")
    selftest.set_defaults(func=cmd_selftest)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a station TOML file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)
    ccheck = csub.add_parser("check-collector", help="validate a collector TOML file")
    ccheck.add_argument("file", type=Path)
    ccheck.set_defaults(func=cmd_collector_check)

    events = sub.add_parser("events", help="list the events in a station's store")
    events.add_argument("--data-dir", type=Path)
    events.add_argument("--config", type=Path)
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)

    scene = sub.add_parser("scene", help="show what a synthetic scene will contain (its ground truth)")
    scene.add_argument("--seed", type=int, default=0)
    scene.add_argument("--duration", type=float, default=600.0)
    scene.add_argument("--json", action="store_true")
    scene.set_defaults(func=cmd_scene)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    bm = bsub.add_parser("motion", help="motion detection speed, idle CPU, RSS, and accuracy against a frame-difference baseline")
    bm.add_argument("--json", action="store_true")
    bm.add_argument("--quick", action="store_true", help="shorter run (less precise figures)")
    bm.set_defaults(func=cmd_bench)
    bc = bsub.add_parser("classifier", help="model size, load time, latency (1/2 threads, int8/fp32, runtimes), classify-path overhead, RSS")
    bc.add_argument("--json", action="store_true")
    bc.add_argument("--quick", action="store_true", help="fewer invokes (less precise figures)")
    bc.set_defaults(func=cmd_bench)
    bf = bsub.add_parser("feed", help="outbox commit and drain rates to a local Mosquitto; event-to-delivered latency")
    bf.add_argument("--json", action="store_true")
    bf.add_argument("--quick", action="store_true")
    bf.set_defaults(func=cmd_bench)
    bcol = bsub.add_parser("collector", help="collector ingest rate (SQLite, PostgreSQL) against a plain subscriber; backlog drain")
    bcol.add_argument("--json", action="store_true")
    bcol.add_argument("--quick", action="store_true", help="2,000 messages instead of 10,000")
    bcol.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                      help="PostgreSQL to measure on (a temporary schema is made and dropped)")
    bcol.add_argument("--no-postgres", action="store_true")
    bcol.set_defaults(func=cmd_bench)
    bdash = bsub.add_parser("dashboard", help="API and dashboard latency over HTTP with a million detections")
    bdash.add_argument("--rows", type=int, default=1_000_000)
    bdash.add_argument("--repeat", type=int, default=20)
    bdash.add_argument("--dir", type=Path, default=None, help="where the SQLite file is made and kept "
                                                              "(default ~/.cache/camtrap-bench)")
    bdash.add_argument("--postgres", default=None, help="also fill and measure this PostgreSQL (temporary schema)")
    bdash.add_argument("--json", action="store_true")
    bdash.set_defaults(func=cmd_bench)
    bp = bsub.add_parser("pipeline", help="the whole station on synthetic scenes: events found and tags given per kind")
    bp.add_argument("--seeds", default="1,2,3", help="comma-separated scene seeds")
    bp.add_argument("--duration", type=float, default=900.0, help="scene seconds each")
    bp.add_argument("--pictures", type=Path, default=None, help="walk real pictures across the scene instead")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=cmd_bench)

    cl = sub.add_parser("classify", help="classify pictures with the station's model")
    cl.add_argument("images", nargs="+", type=Path)
    cl.add_argument("--config", type=Path, help="take the [classifier] section of this station config")
    cl.add_argument("--region", help="regional roll-up from the taxonomy (e.g. russian_far_east, none)")
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_classify)

    ev = sub.add_parser("evaluate", help="accuracy on DIR/<expected tag>/*.jpg (leopard, tiger, prey_deer, empty, ...)")
    ev.add_argument("dir", type=Path)
    ev.add_argument("--config", type=Path, help="take the [classifier] section of this station config")
    ev.add_argument("--region", help="regional roll-up (default: the config's; the shared evaluation set wants none)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    col = sub.add_parser("collector", help="run the collector: MQTT ingest, database, alerts, API and dashboard")
    col.add_argument("--config", required=True, type=Path, help="collector TOML file")
    col.add_argument("--no-http", action="store_true", help="ingest only, no API/dashboard")
    col.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    col.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    col.set_defaults(func=cmd_collector)

    alerts = sub.add_parser("alerts", help="ranger alerts (Apprise)")
    asub = alerts.add_subparsers(dest="alerts_command", required=True)
    atest = asub.add_parser("test", help="send a test notification to every configured Apprise URL")
    atest.add_argument("--config", required=True, type=Path, help="collector TOML file")
    atest.set_defaults(func=cmd_alerts_test)

    prov = sub.add_parser("provision", help="a broker account (station, collector, researcher, operator) "
                                            "and the files it is installed from (docs/deployment.md)")
    prov.add_argument("name", help="station id (also its user name), or the account's name")
    prov.add_argument("--role", choices=["station", "collector", "researcher", "operator"], default="station")
    prov.add_argument("--broker-dir", type=Path, default=Path("/etc/mosquitto/camtrap"),
                      help="the broker's accounts (dynsec/), ca.crt and provisioning password (default: %(default)s)")
    prov.add_argument("--create-broker-dir", action="store_true",
                      help="make --broker-dir if it does not exist (else a missing folder is refused)")
    prov.add_argument("--control-port", type=int, default=1883,
                      help="the running broker's loopback listener, where changes are sent (default: %(default)s)")
    prov.add_argument("--offline", action="store_true",
                      help="write the broker's account file without asking a running broker (install --root)")
    prov.add_argument("--exact-locations", action=argparse.BooleanOptionalAction, default=None,
                      help="researcher/operator: also read the feed with exact coordinates (trusted accounts)")
    prov.add_argument("--out", type=Path, help="where to write the account's files (default: ./NAME)")
    prov.add_argument("--target-dir", type=Path,
                      help="where those files will live, as the config names them (default: /etc/station "
                           "for a station, else --out)")
    prov.add_argument("--host", help="the broker's host name as clients reach it (default: this host's FQDN; "
                                     "127.0.0.1 for the collector)")
    prov.add_argument("--port", type=int, help="default 8883 with TLS, 1883 without")
    prov.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                      help="connect with TLS (default: yes, but not for the collector on the broker's host)")
    prov.add_argument("--ca-file", type=Path, help="CA certificate clients check the broker with "
                                                   "(default: BROKER_DIR/ca.crt)")
    prov.add_argument("--rotate", action="store_true", help="issue a new password")
    prov.add_argument("--latitude", type=float, help="station: where the camera stands")
    prov.add_argument("--longitude", type=float)
    prov.add_argument("--deployment-id", help="station: Camtrap DP deploymentID (default: ID-YYYYMMDD)")
    prov.set_defaults(func=cmd_provision)

    demo = sub.add_parser("demo", help="broker, collector with dashboard and two simulated stations on this machine")
    demo.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: until Ctrl-C)")
    demo.add_argument("--data-dir", type=Path, default=None, help="where stations, broker and collector keep data (default: a temporary folder)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--pictures", type=Path, default=None, help="folder of real animal pictures to walk across the scene")
    demo.add_argument("--speed", choices=["realtime", "max"], default="realtime")
    demo.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                      help="Mosquitto on a free port when installed (auto), or the embedded Python broker")
    demo.add_argument("--port", type=int, default=8080, help="dashboard port (a free one if taken)")
    demo.set_defaults(func=cmd_demo)

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
    xv = xsub.add_parser("validate", help="check a Camtrap DP package offline (frictionless)")
    xv.add_argument("package", type=Path, help="package folder or its datapackage.json")
    xv.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("info")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `station events | head`
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
