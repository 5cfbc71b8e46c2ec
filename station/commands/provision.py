"""``station provision NAME``: a broker account and the files it is installed from
(:mod:`station.deploy`, docs/deployment.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction) -> None:
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


def cmd_provision(args: argparse.Namespace) -> int:
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
