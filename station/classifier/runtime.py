"""The model runtime boundary: a TFLite ``Interpreter`` from ai-edge-litert or tflite-runtime.

``ai_edge_litert`` (the maintained successor, works with numpy 2) is preferred;
``tflite_runtime`` (legacy, numpy < 2) is the fallback. Both expose the same
``Interpreter(model_path=..., num_threads=...)`` API, so nothing above this module
knows which one runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

RUNTIMES = ("ai_edge_litert", "tflite_runtime")
"""Runtime packages in order of preference (import names)."""

PIP_NAMES = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}


class ModelError(RuntimeError):
    """A model, its labels or its runtime cannot be used; the message names the file."""


def _import(runtime: str) -> type | None:
    try:
        module = importlib.import_module(f"{runtime}.interpreter")
    except ImportError:
        return None
    return getattr(module, "Interpreter", None)


def available_runtimes() -> list[str]:
    """The runtime packages importable here, preferred first."""
    return [name for name in RUNTIMES if _import(name) is not None]


def interpreter_class(runtime: str = "auto") -> tuple[type, str]:
    """The ``Interpreter`` class of ``runtime`` (or of the first installed, for "auto")."""
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ModelError(f"unknown TFLite runtime {runtime!r} (allowed: auto, {', '.join(RUNTIMES)})")
    for name in RUNTIMES if runtime == "auto" else (runtime,):
        cls = _import(name)
        if cls is not None:
            return cls, name
    wanted = RUNTIMES if runtime == "auto" else (runtime,)
    pkgs = " or ".join(f"{PIP_NAMES[n]} (import {n})" for n in wanted)
    raise ModelError(f"no TFLite runtime installed: install {pkgs}, e.g. pip install {PIP_NAMES[wanted[0]]}")


def make_interpreter(model_path: Path, threads: int, runtime: str = "auto") -> tuple[Any, str]:
    """Load ``model_path`` and allocate its tensors; returns (interpreter, runtime name)."""
    cls, name = interpreter_class(runtime)
    try:
        interpreter = cls(model_path=str(model_path), num_threads=int(threads))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{model_path}: not a usable TFLite model ({name}: {reason})") from None
    return interpreter, name
