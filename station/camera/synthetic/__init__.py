"""A simulated forest camera trap: ``synthetic[:SEED]``.

The scene's script (:func:`build_schedule`) is pure and known in advance, so tests and
benchmarks can score motion detection and classification against it: every crossing
should yield an event, nothing should fire in the quiet stretches between them. The
camera (:class:`SyntheticCamera`) renders that script frame by frame.

Modules, in the order data flows:

- ``scene``: the schedule (crossings, disturbances), light drift and wind, pure.
- ``forest``: the still background and the swaying plants, painted once per seed.
- ``bodies``: body plans and gaits; ``fur``, ``coats``, ``coats_cats``, ``coats_prey``:
  the fur (or clothes) textures; ``animals``: a drawn animal walking across.
- ``pictures``: real pictures sliding across instead of drawn animals.
- ``render``: one frame at one stream's size (light, IR, snow, sway, noise).
- ``camera``: the :class:`~station.camera.base.Camera` that ties them to the clock.
"""

from station.camera.synthetic.camera import SyntheticCamera, load_truth, parse_uri
from station.camera.synthetic.pictures import find_pictures
from station.camera.synthetic.scene import (
    DISTURBANCE_KINDS,
    KINDS,
    Crossing,
    Disturbance,
    PictureRef,
    Schedule,
    ScheduleBuilder,
    build_schedule,
)

__all__ = [
    "DISTURBANCE_KINDS", "KINDS", "Crossing", "Disturbance", "PictureRef", "Schedule",
    "ScheduleBuilder", "SyntheticCamera", "build_schedule", "find_pictures", "load_truth",
    "parse_uri",
]
