"""On-device classification: a TFLite model, a taxonomy of tags, and events scored as a whole.

    from station.classifier import Classifier
    classifier = Classifier.from_config(cfg.classifier)
    record["classification"] = classifier.classify_event(record, event_dir)

Modules, in the order data flows: ``runtime`` (which TFLite interpreter), ``model``
(load and check a model + labels, predict), ``preprocess`` (decode, crops, resize),
``taxonomy`` (labels -> tags, regional roll-up), ``aggregate`` (views -> one result),
``classify`` (the ``Classifier``), ``evaluate`` (accuracy on a folder of pictures).
"""

from station.classifier.classify import Classifier, Result, failed, select_frames
from station.classifier.model import ClassifierModel, ModelInfo, read_labels
from station.classifier.preprocess import ImageError
from station.classifier.runtime import ModelError, available_runtimes
from station.classifier.taxonomy import TAGS, Taxonomy, TaxonomyError, load_taxonomy
from station.vocabulary import UNKNOWN

ClassifierError = (ModelError, TaxonomyError, ImageError)
"""Everything the classifier raises for bad files; each message names the file."""

__all__ = [
    "TAGS", "UNKNOWN", "Classifier", "ClassifierError", "ClassifierModel", "ImageError", "ModelError",
    "ModelInfo", "Result", "Taxonomy", "TaxonomyError", "available_runtimes", "failed", "load_taxonomy",
    "read_labels", "select_frames",
]
