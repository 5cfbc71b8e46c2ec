"""Setting up a collector: every mistake is one line naming the key, before anything starts.

`station config check-collector` and `station collector` agree: a private collector
without readable tokens, or a SQLite database in a folder that does not exist, is refused
by both, naming the key (no traceback, and no folder made by mistake). What the collector
writes holds exact coordinates, so it is readable by its own user only.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from station.cli import main
from station.collector.db import Database, StorageError

REPO = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, http: str = "", collector: str = "") -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n{collector}\n'
                    f'[mqtt]\nhost = "127.0.0.1"\nport = 1\n[http]\nport = 0\n{http}\n', encoding="utf-8")
    return path


def _both_refuse(config: Path, capsys, words: list[str]) -> None:
    assert main(["config", "check-collector", str(config)]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert main(["collector", "--config", str(config), "--duration", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("station collector: ") and "Traceback" not in err, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("http, tokens, words", [
    ('public = false\ntoken_file = "{tmp}/missing-tokens"', None, ["http.token_file", "missing-tokens", "cannot read"]),
    ("public = false", None, ["http.token_file", "not set", "http.public = false"]),
    ('public = false\ntoken_file = "{tmp}/tokens"', "# nobody yet\n", ["http.token_file", "holds no token"]),
    ('token_file = "{tmp}/tokens"', "short\n", ["http.token_file", "line 1", "at least 16"]),
    ('token_file = "{tmp}/missing-tokens"', None, ["http.token_file", "missing-tokens"]),
])
def test_a_private_collector_without_usable_tokens_is_refused_by_check_and_start_alike(tmp_path, capsys, http,
                                                                                      tokens, words):
    if tokens is not None:
        (tmp_path / "tokens").write_text(tokens)
    config = _config(tmp_path, http.format(tmp=tmp_path))
    _both_refuse(config, capsys, words)


def test_a_good_private_collector_passes_the_check(tmp_path, capsys):
    (tmp_path / "tokens").write_text("ranger-token-7f3a9c1e55d04b2e\n")
    config = _config(tmp_path, f'public = false\ntoken_file = "{tmp_path}/tokens"')
    assert main(["config", "check-collector", str(config)]) == 0
    assert "OK" in capsys.readouterr().out


def test_a_database_in_a_folder_that_does_not_exist_is_an_error_not_a_new_folder(tmp_path, capsys):
    missing = tmp_path / "typo" / "nested"
    config = _config(tmp_path, collector=f'database_url = "sqlite:///{missing}/collector.sqlite3"')
    _both_refuse(config, capsys, ["collector.database_url", str(missing), "does not exist"])
    with pytest.raises(StorageError, match="does not exist .*collector.database_url"):
        Database.open(f"sqlite:///{missing}/collector.sqlite3")
    assert not (tmp_path / "typo").exists()
    out = tmp_path / "out.csv"
    assert main(["export", "csv", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "collector.database_url" in err and not (tmp_path / "typo").exists()


def test_the_default_database_under_data_dir_is_made_at_start(tmp_path, capsys):
    config = _config(tmp_path)  # data_dir does not exist yet: the collector makes it
    assert main(["config", "check-collector", str(config)]) == 0
    capsys.readouterr()


def test_the_database_and_its_journal_are_readable_by_the_collector_only(tmp_path):
    with Database.open(f"sqlite:///{tmp_path}/c.db") as db:
        db.migrate()
        db.store_batch([], [], [])
        files = [p for p in tmp_path.iterdir() if p.name.startswith("c.db")]
        assert {p.name for p in files} >= {"c.db", "c.db-wal"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_collector_makes_its_data_folder_private(tmp_path):
    from station.collector.service import CollectorService
    from station.config.collector import parse_collector_config
    cfg = parse_collector_config({"collector": {"data_dir": str(tmp_path / "data")}, "http": {"enabled": False},
                                  "mqtt": {"host": "127.0.0.1", "port": 1}})
    CollectorService.build(cfg)
    for path in (tmp_path / "data", tmp_path / "data" / "thumbnails"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((tmp_path / "data" / "collector.sqlite3").stat().st_mode) == 0o600


@pytest.mark.parametrize("zone", ["posixrules", "right/UTC", "localtime", "Asia/" + "x" * 3000])
def test_a_time_zone_that_is_not_an_iana_name_is_a_config_error(tmp_path, capsys, zone):
    config = _config(tmp_path, f'timezone = "{zone}"')
    assert main(["config", "check-collector", str(config)]) == 2
    assert "http.timezone" in capsys.readouterr().err


def test_a_private_collector_without_tokens_exits_cleanly_as_a_process(tmp_path):
    config = _config(tmp_path, f'public = false\ntoken_file = "{tmp_path}/missing-tokens"')
    run = subprocess.run([sys.executable, "-m", "station", "collector", "--config", str(config)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("station collector: http.token_file")
