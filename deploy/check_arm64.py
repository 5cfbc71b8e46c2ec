#!/usr/bin/env python3
"""The Python half of ``deploy/check-arm64.sh``: reading pip's report and comparing probes.

    check_arm64.py requirements PYPROJECT EXTRAS     the station's requirements with EXTRAS, one a line
    check_arm64.py missing PIP_OUTPUT                 the packages pip found no wheel for (one a line)
    check_arm64.py summary REPORT REQUIREMENTS --python 3.11.2 [--apt NAME==VERSION ...]
                   [--constraints FILE] [--json OUT]  the resolved set, and markers read again for the Pi
    check_arm64.py installed RESOLVED PIP_LIST VENV   did pip on the (emulated) Pi install that set?
    check_arm64.py picture OUT                        a synthetic forest still with an animal (needs the station)
    check_arm64.py probe PICTURE                      classify it and run every model once: JSON on stdout
    check_arm64.py compare HOST_PROBE PI_PROBE        do this machine and the (emulated) Pi agree?

``requirements``, ``missing`` and ``summary`` need only the standard library and the
``packaging`` that pip carries; ``picture`` and ``probe`` need the station installed. On a
real board, ``python3 /opt/station/src/deploy/check_arm64.py probe still.jpg`` runs the probe.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # pip always carries it
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name

PI_KERNEL = ("6.6.51+rpt-rpi-v8", "#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)")
"""Raspberry Pi OS Bookworm's kernel, for the (rare) markers that read it."""

TAG_SCORE_TOLERANCE = 0.03
"""Largest difference in a tag's score between this machine and the Pi (int8 outputs step by 1/256)."""


def pi_environment(python: str) -> dict[str, str]:
    """The marker environment of Raspberry Pi OS Bookworm, 64-bit, with CPython ``python``."""
    return {"implementation_name": "cpython", "implementation_version": python, "os_name": "posix",
            "platform_machine": "aarch64", "platform_python_implementation": "CPython",
            "platform_release": PI_KERNEL[0], "platform_system": "Linux", "platform_version": PI_KERNEL[1],
            "python_full_version": python, "python_version": ".".join(python.split(".")[:2]),
            "sys_platform": "linux"}


# -- the requirements --------------------------------------------------------------------------------
def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The project's dependencies and those of ``extras``, as pyproject.toml writes them."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"check-arm64: no extra {', '.join(unknown)} in {pyproject} "
                         f"(there are: {', '.join(optional)})")
    return list(project["dependencies"]) + [r for e in extras for r in optional[e]]


# -- pip's verdict -----------------------------------------------------------------------------------
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)[^\s(]*(?: \(from ([^)(]+)\))?")
_DEPENDS = re.compile(r"^\s+(\S+) (\S+) depends on ([A-Za-z0-9._-]+)")


def missing_wheels(pip_output: str) -> dict[str, list[str]]:
    """Packages pip found no wheel for, each with the packages that need it (may be empty).

    pip says it two ways: "No matching distribution found for X (from Y)" (Y is missing
    when X was asked for directly), and, when it backtracked through versions of what needs
    X, a list under "some packages in these conflicts have no matching distributions
    available for your environment" after the lines "Y 1.0 depends on X"."""
    names, needed_by = [], {}
    for name, asker in _NO_MATCH.findall(pip_output):
        names.append(canonicalize_name(name))
        if asker and not asker.startswith("-r "):
            needed_by.setdefault(canonicalize_name(name), []).append(asker)
    lines = pip_output.splitlines()
    for i, line in enumerate(lines):
        if "no matching distributions available for your environment" in line:
            for follow in lines[i + 1:]:
                if not follow.strip():
                    break
                names.append(canonicalize_name(follow.strip()))
    versions: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        m = _DEPENDS.match(line)
        if m:
            versions.setdefault((canonicalize_name(m.group(3)), m.group(1)), []).append(m.group(2))
    for (name, asker), seen in versions.items():
        needed_by.setdefault(name, []).append(f"{asker} {seen[0]}" if len(seen) == 1
                                              else f"{asker} ({len(seen)} versions)")
    return {name: needed_by.get(name, []) for name in dict.fromkeys(names)}


# -- the resolved set --------------------------------------------------------------------------------
def marker_differences(report: dict, requested: list[str], pi_env: dict[str, str],
                       apt: dict[str, str]) -> tuple[list[str], list[str]]:
    """pip reads markers for the machine it runs on, not for ``--platform``: read them again
    for the Pi. Returns (what the Pi needs that the resolution lacks, what only this machine
    asked for); the first is a failure, the second harmless (checked although not needed)."""
    host_env = report["environment"]
    have = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    have.update({canonicalize_name(k): v for k, v in apt.items()})
    askers = [("the station", [""], requested)]
    for item in report["install"]:
        meta = item["metadata"]
        askers.append((f"{meta['name']} {meta['version']}", [""] + list(item.get("requested_extras") or []),
                       meta.get("requires_dist") or []))
    lacking, only_here = [], []
    for who, extras, lines in askers:
        for line in lines:
            req = Requirement(line)
            if req.marker is None:
                continue
            on_pi = any(req.marker.evaluate({**pi_env, "extra": e}) for e in extras)
            here = any(req.marker.evaluate({**host_env, "extra": e}) for e in extras)
            if on_pi and not here:
                version = have.get(canonicalize_name(req.name))
                if version is None or not req.specifier.contains(version, prereleases=True):
                    lacking.append(f"{who} needs {req} on the Pi; this resolution has "
                                   f"{req.name + ' ' + version if version else 'none'}")
            elif here and not on_pi:
                only_here.append(f"{who}: {req} (not on the Pi)")
    return lacking, only_here


def wheel_tags(filename: str) -> str:
    """``numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.whl`` -> ``cp311-cp311-manylinux_2_17_aarch64``."""
    stem = filename[:-4] if filename.endswith(".whl") else filename
    return "-".join(stem.split("-")[-3:])


def pinned(constraints: str) -> set[str]:
    """The names a constraints file pins with ``==``."""
    names = set()
    for line in constraints.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and "==" in line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


def summary(report: dict, requested: list[str], python: str, apt: dict[str, str],
            pins: set[str] | None = None) -> tuple[dict, list[str]]:
    """The resolved set as a document (packages from PyPI and from apt) and the problems found.
    With ``pins``, the document also lists what pip installs that the constraints leave unpinned."""
    packages = []
    for item in report["install"]:
        meta, info = item["metadata"], item["download_info"]
        filename = info["url"].rsplit("/", 1)[-1]
        packages.append({"name": meta["name"], "version": meta["version"], "source": "pypi",
                         "wheel": filename, "sha256": info.get("archive_info", {}).get("hashes", {}).get("sha256")})
    problems = [f"{p['name']} {p['version']}: {p['wheel']} is not a wheel" for p in packages
                if not p["wheel"].endswith(".whl")]
    for name, version in apt.items():
        packages.append({"name": name, "version": version, "source": "apt", "wheel": None, "sha256": None})
    lacking, only_here = marker_differences(report, requested, pi_environment(python), apt)
    doc = {"target": {"os": "Raspberry Pi OS Bookworm, 64-bit", "python": python, "machine": "aarch64",
                      "implementation": "cp"},
           "pip": report.get("pip_version"), "requested": requested,
           "packages": sorted(packages, key=lambda p: canonicalize_name(p["name"])),
           "markers_only_here": only_here,
           "unpinned": [] if pins is None else [p["name"] for p in packages if p["source"] == "pypi"
                                                and canonicalize_name(p["name"]) not in pins]}
    return doc, problems + lacking


def print_summary(doc: dict, problems: list[str]) -> None:
    t = doc["target"]
    print(f"check-arm64: {t['os']}: CPython {t['python']}, {t['machine']}, wheels only (pip {doc['pip']})")
    for p in doc["packages"]:
        where = f"wheel {wheel_tags(p['wheel'])}" if p["source"] == "pypi" else "from apt (Debian's, seen by the venv)"
        print(f"  {p['name']:28} {p['version']:12} {where}")
    if doc["unpinned"]:
        print(f"  note: not pinned in the constraints (a Pi takes the newest): {', '.join(doc['unpinned'])}")
    for line in doc["markers_only_here"]:
        print(f"  note: resolved for this machine's markers only: {line}")
    for line in problems:
        print(f"check-arm64: {line}", file=sys.stderr)
    pypi = sum(p["source"] == "pypi" for p in doc["packages"])
    apt = len(doc["packages"]) - pypi
    if not problems:
        print(f"check-arm64: {pypi} packages from PyPI, each with an aarch64 wheel; {apt} from apt")


def installed_differences(resolved: dict, pip_list: list[dict], venv: str) -> list[str]:
    """Did pip, installing on the (emulated) Pi, take exactly the set resolved for it? ``pip_list``
    is ``pip list --format json -v`` in the venv; apt's packages must come from outside it."""
    own = {"pip", "setuptools", "wheel", "camtrap-station"}
    found = {canonicalize_name(p["name"]): p for p in pip_list}
    problems = []
    for p in resolved["packages"]:
        name = canonicalize_name(p["name"])
        got = found.get(name)
        in_venv = got is not None and got.get("location", "").startswith(venv)
        if got is None or got["version"] != p["version"]:
            problems.append(f"{p['name']}: resolved {p['version']}, the Pi has {got['version'] if got else 'none'}")
        elif in_venv != (p["source"] == "pypi"):
            problems.append(f"{p['name']} {p['version']}: expected from {p['source']}, found in {got.get('location')}")
    resolved_names = {canonicalize_name(p["name"]) for p in resolved["packages"]}
    for name, got in sorted(found.items()):
        if name not in resolved_names and name not in own and got.get("location", "").startswith(venv):
            problems.append(f"the Pi's pip also installed {got['name']} {got['version']}, which the resolution did not")
    return problems


# -- on the board (or under emulation) ---------------------------------------------------------------
def picture(out: Path) -> None:
    """A daytime still of the synthetic forest with an animal crossing, as the camera writes stills."""
    import cv2

    from station.camera.synthetic.camera import SyntheticCamera

    cam = SyntheticCamera(seed=3, realtime=False, duration_s=600)
    cam.open()
    try:
        crossing = next(c for c in cam.schedule.crossings if not c.night and c.kind != "human")
        frame = cam.frame_at((crossing.start_s + crossing.end_s) / 2, want_main=True)
    finally:
        cam.close()
    if not cv2.imwrite(str(out), frame.main, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise SystemExit(f"check-arm64: cannot write {out}")


def probe(path: Path) -> dict:
    """Import the station, classify ``path`` with the default config, and run every model in
    models/ once on the picture (resized to its input): what a Pi must be able to do."""
    import importlib.metadata

    t0 = time.perf_counter()
    import cv2
    import numpy as np

    from station.bench.machine import identity
    from station.classifier import Classifier
    from station.classifier.runtime import make_interpreter
    from station.config.classifier import PROJECT_ROOT, ClassifierSection

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = Classifier.from_config(ClassifierSection()).classify_image(path).to_dict()
    t_classify = time.perf_counter() - t0
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    models = {}
    t0 = time.perf_counter()
    for model in sorted((PROJECT_ROOT / "models").glob("*.tflite")):
        try:
            interpreter, runtime = make_interpreter(model, 2)
            detail = interpreter.get_input_details()[0]
            height, width = (int(n) for n in detail["shape"][1:3])
            x = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)[None].astype(detail["dtype"])
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            outputs = [interpreter.get_tensor(o["index"]).astype(np.float64).ravel()
                       for o in interpreter.get_output_details()]
        except Exception as exc:  # the probe names whatever a model does on this machine
            models[model.name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        models[model.name] = {"runtime": runtime, "outputs": [np.round(o, 6).tolist() for o in outputs]}
    versions = {}
    for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "camtrap-station"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"machine": platform.machine(), "python": platform.python_version(), "versions": versions,
            "numpy_from": str(Path(np.__file__).parent.parent), "identity": identity(),
            "seconds": {"import": round(t_import, 2), "classify": round(t_classify, 2),
                        "models": round(time.perf_counter() - t0, 2)},
            "classify": result, "models": models}


def compare(host: dict, pi: dict) -> list[str]:
    """What differs between this machine's probe and the Pi's. The station's classification
    must agree (tag, top label unless the first two tie, tag scores within int8 noise); every
    model must load, run and give outputs of the same sizes, all finite. The models' values
    themselves are reported (:func:`model_agreement`), not judged: int8 kernels round
    differently on x86 and Arm, and a detection list can gain, lose or swap an entry."""
    problems = []
    a, b = host["classify"], pi["classify"]
    if "error" in b:
        problems.append(f"the Pi could not classify the picture: {b['error']}")
    else:
        if a["tag"] != b["tag"]:
            problems.append(f"tag {b['tag']!r} on the Pi, {a['tag']!r} here")
        ka, kb = a["top_k"], b["top_k"]
        tie = len(ka) > 1 and ka[0]["p"] - ka[1]["p"] <= TAG_SCORE_TOLERANCE
        if ka[0]["label"] != kb[0]["label"] and not tie:
            problems.append(f"top label {kb[0]['label']!r} on the Pi, {ka[0]['label']!r} here")
        worst = max(abs(a["tag_scores"][k] - b["tag_scores"].get(k, -1.0)) for k in a["tag_scores"])
        if worst > TAG_SCORE_TOLERANCE:
            problems.append(f"tag scores differ by up to {worst:.4f} (tolerance {TAG_SCORE_TOLERANCE})")
    if set(host["models"]) != set(pi["models"]):
        problems.append(f"models run: {sorted(pi['models'])} on the Pi, {sorted(host['models'])} here")
    for name in sorted(set(host["models"]) & set(pi["models"])):
        mine, theirs = host["models"][name], pi["models"][name]
        if "error" in theirs:
            problems.append(f"{name}: {theirs['error']}")
            continue
        if [len(o) for o in mine.get("outputs", [])] != [len(o) for o in theirs["outputs"]]:
            problems.append(f"{name}: outputs of {[len(o) for o in theirs['outputs']]} values on the Pi, "
                            f"{[len(o) for o in mine.get('outputs', [])]} here")
        elif not all(math.isfinite(v) for o in theirs["outputs"] for v in o):
            problems.append(f"{name}: an output is not finite on the Pi")
    return problems


def model_agreement(host: dict, pi: dict) -> dict[str, tuple[float, float]]:
    """Per model: the lowest cosine similarity of an output to this machine's, and the largest
    difference as a share of the output's range (at least 1; raw int8 outputs span 128)."""
    out = {}
    for name in sorted(set(host["models"]) & set(pi["models"])):
        cosine, worst = 1.0, 0.0
        pairs = zip(host["models"][name].get("outputs", []), pi["models"][name].get("outputs", []))
        for x, y in pairs:
            scale = max([1.0] + [abs(v) for v in x])
            worst = max([worst] + [abs(p - q) / scale for p, q in zip(x, y)])
            nx, ny = math.sqrt(sum(v * v for v in x)), math.sqrt(sum(v * v for v in y))
            if nx and ny:
                cosine = min(cosine, sum(p * q for p, q in zip(x, y)) / (nx * ny))
        out[name] = (round(cosine, 5), round(worst, 4))
    return out


# -- the command line --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_arm64.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("requirements")
    p.add_argument("pyproject", type=Path)
    p.add_argument("extras")
    p = sub.add_parser("missing")
    p.add_argument("pip_output", type=Path)
    p = sub.add_parser("summary")
    p.add_argument("report", type=Path)
    p.add_argument("requirements", type=Path)
    p.add_argument("--python", required=True)
    p.add_argument("--apt", action="append", default=[], help="NAME==VERSION that apt provides")
    p.add_argument("--json", type=Path, help="write the resolved set here")
    p.add_argument("--constraints", type=Path, help="note what these leave unpinned")
    p = sub.add_parser("installed")
    p.add_argument("resolved", type=Path)
    p.add_argument("pip_list", type=Path)
    p.add_argument("venv")
    p = sub.add_parser("picture")
    p.add_argument("out", type=Path)
    p = sub.add_parser("probe")
    p.add_argument("picture", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("host", type=Path)
    p.add_argument("pi", type=Path)
    args = parser.parse_args(argv)

    if args.command == "requirements":
        print("\n".join(requirements(args.pyproject, [e for e in args.extras.split(",") if e])))
    elif args.command == "missing":
        for name, askers in missing_wheels(args.pip_output.read_text()).items():
            print(f"{name} (needed by {', '.join(askers)})" if askers else name)
    elif args.command == "summary":
        report = json.loads(args.report.read_text())
        requested = [r for r in args.requirements.read_text().splitlines() if r.strip()]
        apt = dict(spec.split("==", 1) for spec in args.apt)
        pins = pinned(args.constraints.read_text()) if args.constraints else None
        doc, problems = summary(report, requested, args.python, apt, pins)
        print_summary(doc, problems)
        if args.json:
            args.json.write_text(json.dumps(doc, indent=1) + "\n")
        return 1 if problems else 0
    elif args.command == "installed":
        problems = installed_differences(json.loads(args.resolved.read_text()),
                                         json.loads(args.pip_list.read_text()), args.venv)
        for line in problems:
            print(f"check-arm64: {line}", file=sys.stderr)
        if problems:
            return 1
        print("check-arm64: pip on the emulated Pi installed exactly the resolved set")
    elif args.command == "picture":
        picture(args.out)
    elif args.command == "probe":
        print(json.dumps(probe(args.picture)))
    elif args.command == "compare":
        host, pi = (json.loads(p.read_text().strip().splitlines()[-1]) for p in (args.host, args.pi))
        problems = compare(host, pi)
        for who, probe_ in (("here", host), ("the Pi", pi)):
            c = probe_["classify"]
            if "error" not in c:
                top = ", ".join(f"{t['label']} {t['p']:.3f}" for t in c["top_k"][:3])
                print(f"  {who:7} tag {c['tag']} {c['confidence']:.3f} ({top})")
        for name, (cosine, worst) in model_agreement(host, pi).items():
            print(f"  {name:48} cosine to this machine's outputs {cosine:.5f}, largest difference {worst:.4f} of range")
        for line in problems:
            print(f"check-arm64: {line}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
