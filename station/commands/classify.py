"""``station classify`` and ``station evaluate``: the station's recognition on pictures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station.commands.common import classifier_section


def register(sub: argparse._SubParsersAction) -> None:
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


def cmd_classify(args: argparse.Namespace) -> int:
    from station.classifier import Classifier, ClassifierError, ImageError

    try:
        classifier = Classifier.from_config(classifier_section(args))
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
    from station.classifier.evaluate import evaluate, format_report
    from station.progress import progress

    if not args.dir.is_dir():
        print(f"station evaluate: {args.dir}: no such folder", file=sys.stderr)
        return 2
    try:
        classifier = Classifier.from_config(classifier_section(args))
    except ClassifierError as exc:
        print(f"station evaluate: {exc}", file=sys.stderr)
        return 2
    with progress("evaluate", unit="picture") as bar:
        report = evaluate(args.dir, classifier, progress=bar)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(format_report(report))
    return 0
