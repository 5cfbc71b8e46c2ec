"""The project's words, defined once: tags, ids, message kinds, commands.

Everything that names a tag, checks a station id, or routes a message kind imports it
from here; the JSON Schemas in ``station/feed/schemas/`` spell the same words, and
``tests/test_vocabulary.py`` fails when the two drift apart. To add a tag: add it to
:data:`TAGS` (and to :data:`ANIMAL_TAGS` if it is an animal), then to the ``tag`` enum
of ``detection.schema.json``; the test tells you what else is missing.
"""

from __future__ import annotations

TAGS = ("leopard", "tiger", "prey", "human", "vehicle", "other_animal", "blank", "unknown")
"""Every tag a detection can carry, in the order reports list them."""
UNKNOWN = "unknown"
"""The tag of a picture the station could not decide (or could not classify)."""
BLANK = "blank"
"""Nothing of interest in the picture."""
CLASSIFIER_TAGS = tuple(t for t in TAGS if t != UNKNOWN)
"""What a taxonomy may map a model's label to (``unknown`` is an outcome, not a label)."""
ANIMAL_TAGS = ("leopard", "tiger", "prey", "other_animal")
"""Tags of animals (a species may be named)."""
BLANK_FOLDER = "empty"
"""A labelled picture folder (``station evaluate``, ``station train``, ``station export
training-set``) holds one sub-folder per tag, named after it, but blank pictures go in this one."""
SPECIES_FOLDER_TAG = "prey"
"""The tag whose labelled pictures may also go in a folder per species: ``prey_<species>``."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Station, deployment, collector and MQTT client ids: 1-64 characters, letters, digits,
'_', '.', '-', starting with a letter or digit (safe as an MQTT topic level and a file name)."""

MESSAGE_KINDS = ("detection", "status", "health", "thumbnail", "command", "command_result")
"""The feed's messages: each has a topic kind and a schema ``<kind>/<major>``."""
COLLECTOR_KINDS = ("feed_detection",)
"""Messages the collector publishes (the researchers' republished feed)."""
SCHEMA_KINDS = MESSAGE_KINDS + COLLECTOR_KINDS
"""Every message with a JSON Schema in ``station/feed/schemas/``."""
STORED_KINDS = ("detection", "thumbnail", "status", "health")
"""What the collector subscribes to and stores; commands and their results are for operators."""
COMMANDS = ("snapshot", "reload")
"""Operator commands a station answers (``{prefix}/{station}/command/{name}``)."""
