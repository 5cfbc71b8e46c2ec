"""A TFLite image classifier and its labels, checked at load to fit each other.

    model = ClassifierModel("models/efficientnet_lite0_int8.tflite", "models/imagenet_labels.txt")
    probs = model.predict(rgb_uint8)      # (H, W, 3) at model.input_size -> float32 [N]

The contract the station needs from a model, checked once when it is loaded (every
problem is listed in one :class:`ModelError` that names the file):

* one input, rank 4, NHWC, batch 1, 3 channels; dtype ``uint8`` (raw pixels 0..255,
  any normalisation inside the graph), ``int8`` (needs quantisation parameters) or
  ``float32`` (normalised here as ``(x - mean) / std``, default mean = std = 127.5,
  i.e. [-1, 1]);
* one output of shape ``[1, N]`` with N equal to the number of labels; ``float32``,
  or ``int8``/``uint8`` with a scale, dequantised as ``(q - zero_point) * scale``;
* the output is probabilities or logits (softmax is applied here only to logits).

Metadata, optional: ``metadata`` may point to a JSON file, else a ``MANIFEST.json``
beside the model is used if it lists the model's file name (as ``models/MANIFEST.json``
does). Two shapes are understood:

* the manifest: ``{"model_name", "output": {"softmax_in_graph"}, "labels_file",
  "labels_sha256", "models": {KEY: {"file", "sha256", "input", "output"}}}``; the
  model's and the labels' sha256 are checked, so a corrupt default model is named as such;
* a flat sidecar for your own model: ``{"name": "...", "output": "probabilities" |
  "logits", "input_mean": 127.5, "input_std": 127.5, "sha256": "..."}`` (all optional).

Without metadata, the output kind is detected from a probe on a grey image: values all
in [0, 1] summing to at most 1 (plus quantisation slack) are probabilities, anything
else logits.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from station.classifier.runtime import ModelError, make_interpreter

__all__ = ["ClassifierModel", "ModelError", "ModelInfo", "read_labels", "sha256_file"]

MANIFEST_NAME = "MANIFEST.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_labels(path: Path) -> list[str]:
    """One label per line, in output order; a trailing newline is fine, a blank line is not."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: labels file not found") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: labels path is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: labels file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the labels file ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if blank:
        raise ModelError(f"{path}: blank label on line(s) {', '.join(map(str, blank[:5]))}")
    if not lines:
        raise ModelError(f"{path}: labels file is empty")
    return lines


@dataclass(frozen=True)
class Metadata:
    source: Path
    name: str | None = None
    sha256: str | None = None
    output: str | None = None  # "probabilities" | "logits" | None (detect)
    input_mean: float = 127.5
    input_std: float = 127.5
    labels_file: str | None = None
    labels_sha256: str | None = None
    expected: dict | None = None  # manifest's {"input": {...}, "output": {...}} for this model


def _load_metadata(path: Path | None, model_path: Path, required: bool) -> Metadata | None:
    if path is None:
        path = model_path.parent / MANIFEST_NAME
        if not path.is_file():
            return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: model metadata file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model metadata is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: model metadata must be a JSON object")
    if "models" not in data:  # flat sidecar
        output = data.get("output")
        if output not in (None, "probabilities", "logits"):
            raise ModelError(f"{path}: \"output\" must be \"probabilities\" or \"logits\", not {output!r}")
        try:
            mean, std = float(data.get("input_mean", 127.5)), float(data.get("input_std", 127.5))
        except (TypeError, ValueError):
            raise ModelError(f"{path}: input_mean and input_std must be numbers") from None
        if std == 0:
            raise ModelError(f"{path}: input_std must not be 0")
        return Metadata(Path(path), data.get("name"), data.get("sha256"), output, mean, std)
    entries = [(k, v) for k, v in data["models"].items() if isinstance(v, dict) and v.get("file") == model_path.name]
    if not entries:
        if required:
            raise ModelError(f"{path}: lists no model file named {model_path.name}")
        return None  # a manifest for other models sits beside this one: detect instead
    key, entry = entries[0]
    softmax = (data.get("output") or {}).get("softmax_in_graph")
    return Metadata(
        Path(path), f"{data.get('model_name', model_path.stem)}/{key}", entry.get("sha256"),
        None if softmax is None else ("probabilities" if softmax else "logits"),
        labels_file=data.get("labels_file"), labels_sha256=data.get("labels_sha256"),
        expected={"input": entry.get("input") or {}, "output": entry.get("output") or {}})


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    sha256: str
    size_bytes: int
    runtime: str
    threads: int
    input_size: tuple[int, int]  # (width, height)
    input_dtype: str
    output_kind: str  # "probabilities" | "logits"
    num_classes: int
    labels_path: Path


def _quant(detail: dict) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def _check_tensors(inputs: list[dict], outputs: list[dict], n_labels: int, labels_path: Path) -> list[str]:
    problems = []
    if len(inputs) != 1:
        problems.append(f"has {len(inputs)} inputs, expected 1 image input")
    else:
        d = inputs[0]
        shape, dtype = [int(s) for s in d["shape"]], np.dtype(d["dtype"]).name
        if len(shape) != 4:
            problems.append(f"input {d['name']} has shape {shape}, expected rank 4 [1, height, width, 3] (NHWC)")
        else:
            if shape[0] != 1:
                problems.append(f"input batch size is {shape[0]}, expected 1")
            if shape[3] != 3:
                problems.append(f"input has {shape[3]} channels in the last axis, expected 3 (RGB, NHWC)")
            if shape[1] < 8 or shape[2] < 8:
                problems.append(f"input height x width {shape[1]}x{shape[2]} is too small")
        if dtype not in ("uint8", "int8", "float32"):
            problems.append(f"input dtype is {dtype}, expected uint8, int8 or float32")
        elif dtype == "int8" and _quant(d)[0] == 0.0:
            problems.append("input is int8 without quantisation parameters (scale 0)")
    if len(outputs) != 1:
        problems.append(f"has {len(outputs)} outputs, expected 1 class-score output")
    else:
        d = outputs[0]
        shape, dtype = [int(s) for s in d["shape"]], np.dtype(d["dtype"]).name
        if len(shape) != 2 or shape[0] != 1:
            problems.append(f"output {d['name']} has shape {shape}, expected [1, N]")
        elif shape[1] != n_labels:
            problems.append(f"output has {shape[1]} classes but {labels_path} has {n_labels} labels")
        if dtype not in ("float32", "int8", "uint8"):
            problems.append(f"output dtype is {dtype}, expected float32, int8 or uint8")
        elif dtype != "float32" and _quant(d)[0] == 0.0:
            problems.append(f"output is {dtype} without quantisation parameters (scale 0): cannot dequantise")
    return problems


def _check_expected(meta: Metadata, inputs: list[dict], outputs: list[dict]) -> list[str]:
    """Compare the tensors with what the manifest says about them."""
    problems = []
    for side, details in (("input", inputs), ("output", outputs)):
        want = (meta.expected or {}).get(side) or {}
        if not want or len(details) != 1:
            continue
        d = details[0]
        if "shape" in want and [int(s) for s in d["shape"]] != list(want["shape"]):
            problems.append(f"{side} shape {[int(s) for s in d['shape']]} differs from {meta.source}: {want['shape']}")
        if "dtype" in want and np.dtype(d["dtype"]).name != want["dtype"]:
            problems.append(f"{side} dtype {np.dtype(d['dtype']).name} differs from {meta.source}: {want['dtype']}")
        q = want.get("quantization", "absent")
        if q != "absent":
            scale, zero = _quant(d)
            want_scale, want_zero = (q or {}).get("scale", 0.0), (q or {}).get("zero_point", 0)
            if abs(scale - want_scale) > 1e-9 or zero != want_zero:
                problems.append(f"{side} quantisation (scale {scale:g}, zero point {zero}) differs from "
                                f"{meta.source}: (scale {want_scale:g}, zero point {want_zero})")
    return problems


def _looks_like_probabilities(values: np.ndarray, scale: float) -> bool:
    slack = 0.02 + values.size * scale / 2
    return bool(values.min() >= -1e-6 and values.max() <= 1 + 1e-6 and values.sum() <= 1 + slack)


class ClassifierModel:
    """A loaded model: checked once, then ``predict`` many times (thread-safe)."""

    def __init__(self, model_path: str | Path, labels_path: str | Path, threads: int = 2,
                 metadata_path: str | Path | None = None, runtime: str = "auto"):
        self.path = Path(model_path)
        labels_path = Path(labels_path)
        if not self.path.is_file():
            what = "is a folder, not a file" if self.path.is_dir() else "not found"
            raise ModelError(f"{self.path}: model file {what}")
        meta = _load_metadata(Path(metadata_path) if metadata_path else None, self.path,
                              required=metadata_path is not None)
        digest = sha256_file(self.path)
        if meta and meta.sha256 and meta.sha256 != digest:
            raise ModelError(f"{self.path}: sha256 {digest[:12]}… differs from {meta.source} "
                             f"({meta.sha256[:12]}…): the file is corrupt or was replaced")
        self.labels = read_labels(labels_path)
        if (meta and meta.labels_sha256 and meta.labels_file == labels_path.name
                and sha256_file(labels_path) != meta.labels_sha256):
            raise ModelError(f"{labels_path}: sha256 differs from {meta.source}: the labels file was changed")
        self._interp, runtime_name = make_interpreter(self.path, threads, runtime)
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        problems = _check_tensors(inputs, outputs, len(self.labels), labels_path)
        if not problems and meta:
            problems = _check_expected(meta, inputs, outputs)
        if problems:
            raise ModelError(f"{self.path}: does not fit the station's classifier contract:\n  - "
                             + "\n  - ".join(problems))
        self._in, self._out = inputs[0], outputs[0]
        self._in_dtype = np.dtype(self._in["dtype"])
        self._in_scale, self._in_zero = _quant(self._in)
        self._out_scale, self._out_zero = _quant(self._out)
        self._mean, self._std = (meta.input_mean, meta.input_std) if meta else (127.5, 127.5)
        self._lock = threading.Lock()
        _, h, w, _ = (int(s) for s in self._in["shape"])
        self._size = (w, h)
        self._softmax = False
        kind = meta.output if meta else None
        if kind is None:  # probe with a grey picture
            probe = self.predict(np.full((h, w, 3), 128, np.uint8))
            kind = "probabilities" if _looks_like_probabilities(probe, self._out_scale) else "logits"
        self._softmax = kind == "logits"
        self.info = ModelInfo(
            name=(meta.name if meta and meta.name else self.path.stem), path=self.path, sha256=digest,
            size_bytes=self.path.stat().st_size, runtime=runtime_name, threads=int(threads),
            input_size=(w, h), input_dtype=self._in_dtype.name, output_kind=kind,
            num_classes=len(self.labels), labels_path=labels_path)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model takes."""
        return self._size

    @property
    def interpreter(self) -> Any:
        """The raw interpreter (for benchmarks)."""
        return self._interp

    def _input(self, rgb: np.ndarray) -> np.ndarray:
        if self._in_dtype == np.uint8:
            return rgb[None]
        x = (rgb.astype(np.float32) - self._mean) / self._std
        if self._in_dtype == np.float32:
            return x[None]
        q = np.round(x / self._in_scale + self._in_zero)
        return np.clip(q, -128, 127).astype(np.int8)[None]

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Class probabilities (float32, label order) for one RGB uint8 image at ``input_size``."""
        w, h = self._size
        if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"predict() needs a uint8 RGB image of shape {(h, w, 3)}, got {rgb.dtype} {rgb.shape}")
        x = self._input(np.ascontiguousarray(rgb))
        with self._lock:
            self._interp.set_tensor(self._in["index"], x)
            self._interp.invoke()
            y = self._interp.get_tensor(self._out["index"])[0]
        if self._out_scale:
            y = (y.astype(np.float32) - self._out_zero) * self._out_scale
        y = y.astype(np.float32, copy=True)
        if self._softmax:
            y = np.exp(y - y.max())
            y /= y.sum()
        return y
