"""``station export training-set``: what researchers verified becomes labelled pictures, in
the folders ``station evaluate`` and ``station train`` read, cropped from the collector's
own thumbnails by the machine's box. Real databases (SQLite and PostgreSQL), real JPEGs.
"""

from __future__ import annotations

import csv
import re
import shlex
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from station.classifier.evaluate import collect, expected_for
from station.cli import main
from station.collector.db import Database
from station.collector.export import ExportError, NothingToExport
from station.collector.training_set import MANIFEST, export_training_set, folder_for
from station.config.collector import parse_collector_config
from station.vocabulary import TAGS
from tests.collector_data import db_url, pytest_generate_tests  # noqa: F401 (fixtures)
from tests.test_collector_api import (PLACES, ZONE, Night, seed_night, sighting, store_with_thumbnail,
                                      thumbnail_jpeg)

ROOT = Path(__file__).resolve().parents[1]
BOX = [0.1, 0.42, 0.21, 0.18]  # tests.collector_data.detection's best_box: 34 x 22 px of a 160 x 120 thumbnail


def _config(db_url: str, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return parse_collector_config({"collector": {"data_dir": str(data), "database_url": db_url}})


def _night(db_url: str, tmp_path: Path) -> tuple[Database, object, Night]:
    cfg = _config(db_url, tmp_path)
    db = Database.open(cfg.collector.sqlite_resolved_url())
    db.migrate()
    night = seed_night(db, cfg.collector.thumbnails_dir)
    # a picture the classifier failed on, with its thumbnail: no box, so the whole of it
    failed = sighting(0, 2, 0, "bars-03", "unknown", None, datetime.now(ZoneInfo(ZONE)))
    store_with_thumbnail(db, cfg.collector.thumbnails_dir, failed, night, thumbnail_jpeg(None, 2))
    return db, cfg, night


# (index in the night, verified tag, species) -> the folder it lands in
VERDICTS = [(0, "leopard", None, "leopard"), (1, "tiger", "amur tiger", "tiger"), (2, "blank", None, "empty"),
            (3, "leopard", None, None),                 # no thumbnail reached the collector
            (4, "unknown", None, None),                 # "cannot tell": nothing to learn
            (5, "prey", "sika deer", "prey_sika deer"), (6, "prey", None, "prey"),
            (8, "human", None, "human")]                # the failed one: the whole thumbnail


def _verify(db: Database, night: Night) -> None:
    db.add_verification(night.detections[0]["event_id"], "tiger", None, "boris")  # changed below: the last counts
    for k, tag, species, _ in VERDICTS:
        db.add_verification(night.detections[k]["event_id"], tag, species, "anna")


def _decoded(path: Path) -> np.ndarray:
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)


def test_verified_crops_land_in_the_folders_station_train_reads(db_url, tmp_path):
    db, cfg, night = _night(db_url, tmp_path)
    try:
        _verify(db, night)
        seen: list[tuple[int, int]] = []
        out = tmp_path / "site-2026"
        summary = export_training_set(db, cfg, out, progress=lambda done, total, name: seen.append((done, total)))
    finally:
        db.close()
    expected = {night.detections[k]["event_id"]: folder for k, _, _, folder in VERDICTS if folder}
    files = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert files == {f"{folder}/{event_id}.jpg" for event_id, folder in expected.items()}
    assert summary.crops == 6 and summary.unknown == 1 and summary.whole == 1
    assert summary.folders == {folder: 1 for folder in expected.values()}
    assert [why for _, why in summary.left_out] == ["no thumbnail reached the collector"]
    assert seen == [(n, 8) for n in range(1, 9)]  # 8 verified events, each reported once

    # station evaluate / station train read exactly these labels back
    read = {path.stem: (tag, species) for path, tag, species in collect(out)}
    verdict = {night.detections[k]["event_id"]: (tag, species) for k, tag, species, folder in VERDICTS if folder}
    assert read == {e: (t, s if t == "prey" else None) for e, (t, s) in verdict.items()}

    # crops: the machine's box where there is one, else the whole thumbnail
    leopard = night.detections[0]["event_id"]
    crop = _decoded(out / "leopard" / f"{leopard}.jpg")
    thumb = _decoded(night.thumbnail_files[leopard])
    assert crop.shape == (22, 34, 3)
    region = thumb[50:72, 16:50].astype(int)
    assert np.abs(crop.astype(int) - region).mean() < 6  # the same pixels, JPEG aside
    assert _decoded(out / "human" / f"{night.detections[8]['event_id']}.jpg").shape == (120, 160, 3)

    with (out / MANIFEST).open(encoding="utf-8") as fh:
        rows = {r["event_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(expected)
    deer = rows[night.detections[5]["event_id"]]
    assert (deer["folder"], deer["tag"], deer["species"], deer["machine_tag"], deer["machine_species"]) == (
        "prey_sika deer", "prey", "sika deer", "prey", "wild boar")
    assert (deer["crop_x"], deer["crop_y"], deer["crop_w"], deer["crop_h"]) == ("16", "50", "34", "22")
    assert rows[leopard]["verified_by"] == "anna"
    text = (out / MANIFEST).read_text(encoding="utf-8")
    assert not any(f"{v:.3f}" in text for pair in PLACES.values() for v in pair)  # no coordinates
    # pictures of people: the owner's only
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.rglob("*") if p.is_file())
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in [out, *out.iterdir()] if p.is_dir())
    assert not list(tmp_path.glob(".site-2026.*"))


def test_every_verified_tag_has_the_folder_evaluate_expects():
    for tag in TAGS:
        for species in (None, "sika deer"):
            folder = folder_for(tag, species)
            if tag == "unknown":
                assert folder is None
                continue
            assert expected_for(folder) == (tag, species if tag == "prey" else None), (tag, species)


def test_a_new_set_replaces_the_earlier_one_whole_and_a_foreign_folder_is_left_alone(tmp_path):
    db, cfg, night = _night("sqlite:///camtrap.db", tmp_path)
    with db:
        _verify(db, night)
        out = tmp_path / "set"
        export_training_set(db, cfg, out)
        leopard = night.detections[0]["event_id"]
        assert (out / "leopard" / f"{leopard}.jpg").is_file()
        db.add_verification(leopard, "tiger", "amur tiger", "boris")  # a second look
        export_training_set(db, cfg, out)
        assert not (out / "leopard").exists() and (out / "tiger" / f"{leopard}.jpg").is_file()

        foreign = tmp_path / "photos"
        foreign.mkdir()
        (foreign / "holiday.jpg").write_bytes(b"mine")
        with pytest.raises(ExportError, match="not a training set written by this command"):
            export_training_set(db, cfg, foreign)
        assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]
        with pytest.raises(NothingToExport, match="no verified detections .station=nowhere."):
            export_training_set(db, cfg, tmp_path / "none", station="nowhere")
        assert not (tmp_path / "none").exists()


def test_a_thumbnail_file_lost_or_broken_is_named_and_the_rest_written(tmp_path):
    db, cfg, night = _night("sqlite:///camtrap.db", tmp_path)
    with db:
        _verify(db, night)
        lost, broken = night.detections[1]["event_id"], night.detections[2]["event_id"]
        night.thumbnail_files[lost].unlink()
        night.thumbnail_files[broken].write_bytes(b"\xff\xd8 not a picture")
        summary = export_training_set(db, cfg, tmp_path / "set")
    why = dict(summary.left_out)
    assert "thumbnail file is missing" in why[lost] and "not a readable JPEG" in why[broken]
    assert summary.crops == 4 and any(lost in w for w in summary.warnings())


def _collector_toml(tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "sqlite:///camtrap.db"\n')
    return path


def test_the_command_writes_the_set_and_names_problems_in_one_line(tmp_path, capsys, monkeypatch):
    config = _collector_toml(tmp_path)
    db, _, night = _night("sqlite:///camtrap.db", tmp_path)
    with db:
        assert main(["export", "training-set", "--config", str(config), "--out", str(tmp_path / "t")]) == 1
        assert "no verified detections" in capsys.readouterr().err
        _verify(db, night)
    # the lines of docs/exports.md, as written
    monkeypatch.chdir(tmp_path)
    doc = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
    lines = [line.split("#")[0] for block in re.findall(r"```sh\n(.*?)```", doc, re.S)
             for line in block.splitlines() if line.startswith("station export training-set")]
    assert lines
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
        captured = capsys.readouterr()
        assert "6 pictures in 6 folders" in captured.out and "1 verified unknown not used" in captured.out
        assert captured.err.count("warning: left out") == 1 and "no thumbnail" in captured.err
    (tmp_path / "taken").write_text("")
    assert main(["export", "training-set", "--config", str(config), "--out", str(tmp_path / "taken" / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "taken: is a file, not a folder" in err
    assert main(["export", "training-set", "--config", str(tmp_path / "missing.toml"), "--out", "x"]) == 2
    assert "missing.toml" in capsys.readouterr().err
