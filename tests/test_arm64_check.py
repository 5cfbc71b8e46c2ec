"""The Pi's packages, checked from here: ``deploy/check-arm64.sh`` resolves with pip what a
Raspberry Pi OS Bookworm, 64-bit, installs (CPython 3.11, aarch64, Debian's numpy kept) and
fails, naming the package, when one has no aarch64 wheel.

The resolution needs the package index (about ten seconds; skipped, with the reason, where
the index cannot be reached). The emulated install (``--emulate``: an arm64 Debian under
qemu-user, the station installed as install-station.sh does and a picture classified on the
CPU of each board) takes minutes, so it runs only when asked:
``CAMTRAP_EMULATE=1 scripts/test -k emulated`` (docs/deployment.md).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "check-arm64.sh"
CONSTRAINTS = ROOT / "deploy" / "constraints-pi.txt"

_spec = importlib.util.spec_from_file_location("check_arm64", ROOT / "deploy" / "check_arm64.py")
check_arm64 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_arm64)


def run_check(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The script as a user runs it, with this interpreter's pip; exit 77 means it cannot check here."""
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 77:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    return done


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[canonical(name)] = version
    return found


def write_wheel(folder: Path, name: str, tag: str, requires: tuple[str, ...] = ()) -> None:
    """A real (tiny) wheel of ``name`` 1.0 for ``tag`` (python-abi-platform)."""
    dist = name.replace("-", "_")
    info = f"{dist}-1.0.dist-info"
    files = {
        f"{dist}/__init__.py": b"",
        f"{info}/METADATA": "\n".join(["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0",
                                       *(f"Requires-Dist: {r}" for r in requires)]).encode() + b"\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(folder / f"{dist}-1.0-{tag}.whl", "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)


# -- against the package index ----------------------------------------------------------------------
def test_every_package_a_pi_installs_has_an_aarch64_wheel_and_is_pinned(tmp_path):
    done = run_check("--report", str(tmp_path / "pi.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "pi.json").read_text())
    packages = {canonical(p["name"]): p for p in doc["packages"]}
    assert packages["numpy"]["source"] == "apt" and packages["numpy"]["version"] == "1.24.2"
    for name in ("ai-edge-litert", "opencv-python-headless", "pydantic-core", "paho-mqtt"):
        assert packages[name]["source"] == "pypi", name
    from_pypi = {name: p for name, p in packages.items() if p["source"] == "pypi"}
    for p in from_pypi.values():
        assert p["wheel"].endswith(".whl") and ("aarch64" in p["wheel"] or p["wheel"].endswith("-none-any.whl")), p
    # The constraints pin exactly what a Pi installs from PyPI, and the docs say which versions.
    assert doc["unpinned"] == [] and doc["markers_only_here"] == []
    assert pins() == {name: p["version"] for name, p in from_pypi.items()}
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    for p in doc["packages"]:
        assert f"| `{p['name']}` | {p['version']} |" in deployment, p["name"]


def test_a_package_with_no_aarch64_wheel_is_named_with_what_needs_it(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "camtrap-x86-only", "cp311-cp311-manylinux_2_17_x86_64")
    write_wheel(wheels, "camtrap-needs-x86", "py3-none-any", requires=("camtrap-x86-only",))
    done = run_check("--with", "camtrap-needs-x86", "--find-links", str(wheels))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no wheel for aarch64, CPython 3.11" in done.stderr
    assert "camtrap-x86-only (needed by camtrap-needs-x86)" in done.stderr


def test_the_numpy_the_check_takes_from_apt_is_debian_bookworms():
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if "VERSION_CODENAME=bookworm" not in os_release or shutil.which("apt-cache") is None:
        pytest.skip("needs Debian bookworm's package lists (apt-cache) to compare with")
    shown = subprocess.run(["apt-cache", "show", "python3-numpy"], capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip("apt-cache knows no python3-numpy (apt-get update first)")
    upstream = {re.sub(r"^\d+:", "", v).split("-")[0] for v in re.findall(r"^Version: (\S+)", shown.stdout, re.M)}
    ours = re.search(r"^APT_PYTHON=\(numpy==(\S+)\)", SCRIPT.read_text(), re.M).group(1)
    assert ours in upstream, (ours, upstream)


# -- reading pip's report and the probes -------------------------------------------------------------
def report_with(requires_dist: list[str], installed: dict[str, str]) -> dict:
    items = [{"metadata": {"name": "camtrap-lib", "version": "1.0", "requires_dist": requires_dist},
              "download_info": {"url": "https://files.example/camtrap_lib-1.0-py3-none-any.whl"}}]
    items += [{"metadata": {"name": name, "version": version},
               "download_info": {"url": f"https://files.example/{name}-{version}-py3-none-any.whl"}}
              for name, version in installed.items()]
    env = {"implementation_name": "cpython", "implementation_version": "3.11.7", "os_name": "posix",
           "platform_machine": "x86_64", "platform_python_implementation": "CPython", "platform_release": "6.1",
           "platform_system": "Linux", "platform_version": "#1", "python_full_version": "3.11.7",
           "python_version": "3.11", "sys_platform": "linux"}
    return {"environment": env, "install": items, "pip_version": "26.3"}


def test_a_dependency_only_the_pi_asks_for_is_not_missed():
    """pip reads markers for the machine it runs on: a dependency an aarch64 marker asks for must
    be in the set all the same, at a version it accepts."""
    pi = check_arm64.pi_environment("3.11.2")
    needs = ['camtrap-arm-helper>=2; platform_machine == "aarch64"', 'camtrap-x86-helper; platform_machine == "x86_64"']
    lacking, only_here = check_arm64.marker_differences(report_with(needs, {}), [], pi, {})
    assert lacking == ['camtrap-lib 1.0 needs camtrap-arm-helper>=2; platform_machine == "aarch64" on the Pi; '
                       'this resolution has none']
    assert only_here == ['camtrap-lib 1.0: camtrap-x86-helper; platform_machine == "x86_64" (not on the Pi)']
    lacking, _ = check_arm64.marker_differences(report_with(needs, {"camtrap-arm-helper": "1.5"}), [], pi, {})
    assert "this resolution has camtrap-arm-helper 1.5" in lacking[0]
    lacking, _ = check_arm64.marker_differences(report_with(needs, {"camtrap-arm-helper": "2.1"}), [], pi, {})
    assert lacking == []
    lacking, _ = check_arm64.marker_differences(report_with([], {}), ['numpy>=1.24; platform_machine == "aarch64"'],
                                                pi, {"numpy": "1.24.2"})
    assert lacking == []  # the station's own requirement, met by apt's numpy


def test_pips_two_ways_of_saying_no_wheel_are_both_read():
    direct = "ERROR: Could not find a version that satisfies the requirement onnxruntime-gpu (from versions: none)\n" \
             "ERROR: No matching distribution found for onnxruntime-gpu\n"
    assert check_arm64.missing_wheels(direct) == {"onnxruntime-gpu": []}
    needed = "ERROR: No matching distribution found for rpds-py>=0.25 (from referencing)\n"
    assert check_arm64.missing_wheels(needed) == {"rpds-py": ["referencing"]}
    conflict = ("ERROR: Cannot install picamera2==0.3.38 because these package versions have conflicting dependencies.\n\n"
                "The conflict is caused by:\n    picamera2 0.3.38 depends on PiDNG\n\n"
                "Additionally, some packages in these conflicts have no matching distributions available "
                "for your environment:\n    pidng\n\nTo fix this you could try to:\n")
    assert check_arm64.missing_wheels(conflict) == {"pidng": ["picamera2 0.3.38"]}


def probe(tag: str = "prey", top: str = "wild boar", p: float = 0.62, outputs=None, error: str | None = None) -> dict:
    classify = {"tag": tag, "confidence": p, "tag_scores": {"prey": p, "blank": 0.1},
                "top_k": [{"label": top, "p": p}, {"label": "badger", "p": 0.05}]}
    model = {"error": error} if error else {"runtime": "ai_edge_litert", "outputs": outputs or [[0.1, 0.9]]}
    return {"classify": classify, "models": {"detector.tflite": model}}


def test_the_pi_and_this_machine_must_agree_within_int8_noise():
    assert check_arm64.compare(probe(), probe(p=0.62 + 2 / 256)) == []
    assert check_arm64.compare(probe(), probe(tag="blank")) == ["tag 'blank' on the Pi, 'prey' here"]
    assert "top label 'badger'" in check_arm64.compare(probe(), probe(top="badger"))[0]
    assert "tag scores differ by up to 0.2000" in check_arm64.compare(probe(), probe(p=0.82))[0]
    assert check_arm64.compare(probe(), probe(error="RuntimeError: op not supported")) == \
        ["detector.tflite: RuntimeError: op not supported"]
    assert check_arm64.compare(probe(), probe(outputs=[[0.1, float("nan")]])) == \
        ["detector.tflite: an output is not finite on the Pi"]
    assert "outputs of [3] values on the Pi, [2] here" in \
        check_arm64.compare(probe(), probe(outputs=[[0.1, 0.9, 0.0]]))[0]
    assert check_arm64.model_agreement(probe(), probe(outputs=[[0.1, 0.8]])) == {"detector.tflite": (0.99991, 0.1)}


def test_pip_on_the_pi_must_install_exactly_the_resolved_set():
    resolved = {"packages": [{"name": "pydantic", "version": "2.14.4", "source": "pypi"},
                             {"name": "numpy", "version": "1.24.2", "source": "apt"}]}
    venv = "/opt/station/venv"
    site = f"{venv}/lib/python3.11/site-packages"
    listed = [{"name": "pydantic", "version": "2.14.4", "location": site},
              {"name": "numpy", "version": "1.24.2", "location": "/usr/lib/python3/dist-packages"},
              {"name": "pip", "version": "26.3", "location": site},
              {"name": "six", "version": "1.16.0", "location": "/usr/lib/python3/dist-packages"}]
    assert check_arm64.installed_differences(resolved, listed, venv) == []
    shadowed = [*listed[:1], {"name": "numpy", "version": "1.24.2", "location": site}, *listed[2:]]
    assert check_arm64.installed_differences(resolved, shadowed, venv) == \
        [f"numpy 1.24.2: expected from apt, found in {site}"]
    extra = [*listed, {"name": "protobuf", "version": "7.36.2", "location": site}]
    assert check_arm64.installed_differences(resolved, extra, venv) == \
        ["the Pi's pip also installed protobuf 7.36.2, which the resolution did not"]


# -- under emulation (opt-in: minutes) ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_station_installs_and_classifies_on_emulated_pi_cpus():
    if os.environ.get("CAMTRAP_EMULATE") != "1":
        pytest.skip("emulation is opt-in (an arm64 Debian under qemu-user: ~5 min to make once, then ~3 min): "
                    "CAMTRAP_EMULATE=1, or deploy/check-arm64.sh --emulate")
    done = run_check("--emulate", timeout=3500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pip on the emulated Pi installed exactly the resolved set" in done.stdout
    for board in ("zero2w (cortex-a53, emulated)", "pi4 (cortex-a72, emulated)", "pi5 (cortex-a76, emulated)"):
        assert board in done.stdout
