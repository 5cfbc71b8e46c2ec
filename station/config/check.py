"""What ``station config check`` looks at beyond the file's own shape.

:func:`~station.config.load.load_config` checks types and ranges only, so a config can be
checked on a laptop before it goes to the station, and a station whose model file went
missing keeps capturing (its events are marked "classification failed" and retried).
:func:`check_station` adds what can be checked here and now, each problem naming its key:
the classifier's files exist and can be read, the free-space floor fits the disk under
``storage.data_dir``, a battery monitor's driver (smbus2) is installed. (The MQTT password
and TLS files are checked by the feed's own :func:`station.feed.client.check_settings`,
which ``station config check`` also runs.)
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from station.config.load import StationConfig


def _file_problem(key: str, path: Path) -> str | None:
    if not path.exists():
        return f"{key} = '{path}': file not found"
    if not path.is_file():
        return f"{key} = '{path}': not a file"
    if not os.access(path, os.R_OK):
        return f"{key} = '{path}': not readable by this user"
    return None


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def check_station(cfg: StationConfig) -> list[str]:
    """Every problem found, one sentence each starting with its key; [] when all is well."""
    problems: list[str] = []
    c = cfg.classifier
    if c.enabled:
        files = [("classifier.model", c.model), ("classifier.labels", c.labels), ("classifier.taxonomy", c.taxonomy)]
        if c.metadata is not None:
            files.append(("classifier.metadata", c.metadata))
        problems += [p for key, path in files if (p := _file_problem(key, path))]
    if cfg.power.monitor == "ina219" and not _importable("smbus2"):
        problems.append("power.monitor = 'ina219': the smbus2 package is not installed (pip install "
                        "'station[power]' in the station's venv, or sudo apt install python3-smbus2)")
    data_dir = cfg.storage.data_dir
    if data_dir.is_dir():
        total_mb = shutil.disk_usage(data_dir).total / 2**20
        if cfg.storage.min_free_mb >= total_mb:
            problems.append(f"storage.min_free_mb = {cfg.storage.min_free_mb:g}: the disk under {data_dir} holds "
                            f"only {total_mb:.0f} MB, so no still would ever be saved")
    return problems
