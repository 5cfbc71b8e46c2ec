"""The README's two commands and its examples are run here, so they cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_readme_gives_exactly_two_commands_and_ci_runs_the_test_one():
    first = commands(code_blocks(README)[0])
    assert first == ["scripts/demo", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci


@pytest.mark.slow
def test_the_demo_command_shows_an_event(tmp_path):
    out = subprocess.run([str(ROOT / "scripts" / "demo"), "--duration", "35", "--speed", "max",
                          "--data-dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "event " in out.stdout and "before the trigger" in out.stdout
    assert "crossing(s):" in out.stdout


def test_every_station_example_in_the_readme_runs(tmp_path):
    examples = [c for block in code_blocks(README)[1:] for c in commands(block) if c.startswith("station ")]
    assert len(examples) >= 5
    for example in examples:
        args = shlex.split(example.replace("/tmp/ev", str(tmp_path / "ev")))[1:]
        if args[:2] == ["run", "--config"] and args[2] == "station.toml":
            if "--camera" not in args:
                continue  # needs a Pi camera: the daemon itself is tested elsewhere
            (tmp_path / "station.toml").write_text((ROOT / "deploy" / "station.example.toml").read_text())
            args[2] = str(tmp_path / "station.toml")
            args[args.index("--duration") + 1] = "60"
        if args[:1] == ["bench"]:
            continue  # a benchmark, run by hand: figures, not a test
        out = subprocess.run([sys.executable, "-m", "station", *args], capture_output=True, text=True,
                             timeout=300, cwd=ROOT)
        assert out.returncode == 0, f"README example failed: {example}\n{out.stderr[-2000:]}"


def test_the_config_error_shown_in_the_readme_is_what_users_see(tmp_path):
    shown = re.search(r"\$ station config check bad.toml\n(.*?)```", README, flags=re.S).group(1).strip()
    bad = tmp_path / "bad.toml"
    bad.write_text('[station]\nid = "s1"\ndeployment_id = "d1"\nlatitude = 91\nlongitude = 131\n'
                   "[motion]\ntreshold = 30\n")
    out = subprocess.run([sys.executable, "-m", "station", "config", "check", str(bad)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().replace(str(bad), "bad.toml") == shown
