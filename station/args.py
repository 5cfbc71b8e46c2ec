"""Argument types for the ``station`` command line (argparse ``type=`` functions).

Each raises :class:`argparse.ArgumentTypeError`, which argparse prints as one line naming
the option: ``station run: error: argument --duration: must be a number of seconds above
0, got 'nan'``.
"""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A duration: a finite number of seconds above 0 (``nan``, ``inf``, 0 and below are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value
