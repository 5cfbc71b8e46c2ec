"""``[classifier]``: the on-device model, its labels and taxonomy, and how events are scored.

Paths: ``~`` is expanded; a relative path is taken relative to the project root (the
folder that holds ``station/`` and ``models/``), not the working directory, so the
defaults find the shipped model wherever the station runs (systemd starts it in ``/``).
Give absolute paths for files of your own.

Only the shape of the values is checked here. Whether the files exist and fit each
other (tensor shapes, label count, quantisation, taxonomy labels, region) is checked
when the classifier is loaded, and a problem there never stops capture: events are
then marked ``classification failed`` with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from station.config.base import PathValue, Section

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_path(value: Path) -> Path:
    value = Path(value).expanduser()
    return value if value.is_absolute() else PROJECT_ROOT / value


class ClassifierSection(Section):
    enabled: bool = True
    model: PathValue = Path("models/efficientnet_lite0_int8.tflite")
    """TFLite image classifier: one NHWC RGB input, one [1, N] output."""
    labels: PathValue = Path("models/imagenet_labels.txt")
    """One label per line, in the model's output order."""
    taxonomy: PathValue = Path("models/taxonomy_imagenet.toml")
    """Label -> tag/species mapping and the regional roll-ups."""
    metadata: PathValue | None = None
    """JSON describing the model (output kind, input normalisation, sha256). Default: the
    MANIFEST.json beside the model, if it lists the model's file."""
    region: str = Field(default="russian_far_east", pattern=r"^[a-z0-9_]{1,64}$")
    """Roll-up region defined in the taxonomy file; "none" for the model's own labels."""
    runtime: Literal["auto", "ai_edge_litert", "tflite_runtime"] = "auto"
    """TFLite runtime package; auto prefers ai_edge_litert, else tflite_runtime."""
    threads: int = Field(default=2, ge=1, le=8)
    min_confidence: float = Field(default=0.4, gt=0, lt=1)
    """Below this event score the tag becomes "unknown" instead of a guess. 0.4 from
    generated data, not field pictures: over 250 generated pictures with nothing in them
    (noise, colours, gradients, shapes, synthetic forest) and 60 synthetic empty events,
    no alert tag (leopard, tiger, prey, human, vehicle) scored 0.38 or more, so at 0.4
    none would have fired; at 0.35 noise reached "human" 0.38. "unknown" sends an event to
    a person instead of a wrong tag, so erring towards it is the cheap mistake."""
    crop_margin: float = Field(default=0.25, ge=0, le=2)
    """Context added on each side of a motion box, as a fraction of its longer side."""
    max_frames: int = Field(default=8, ge=1, le=64)
    """Stills classified per event: the first after the trigger, then the most moving."""
    max_boxes: int = Field(default=2, ge=0, le=8)
    """Motion-box crops per still (largest first), besides the whole frame."""
    top_k: int = Field(default=5, ge=1, le=50)
    retry_after_s: float = Field(default=600, gt=0, le=86400)
    """The daemon retries a failed classification after this long."""
    max_attempts: int = Field(default=3, ge=1, le=100)
    """After this many failed attempts the failure is final: the detection is sent as
    "classification failed" (a ranger must still hear that something moved) and the
    event is not retried again until the station restarts with a working model."""

    @field_validator("model", "labels", "taxonomy", "metadata")
    @classmethod
    def _resolve(cls, v: Path | None) -> Path | None:
        return None if v is None else resolve_path(v)
