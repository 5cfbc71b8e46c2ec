#!/usr/bin/env python3
"""Rebuild the station's animal/person/vehicle detector (MegadetectorLite) from PyPI packages.

Produces, in ``--out-dir`` (default: the directory holding this script):

* ``megadetector_lite_416_int8w.tflite`` - YOLOX-tiny MegadetectorLite, 416x416 input,
  int8 weights (per channel), float32 activations ("weight-only": the runtime
  dequantises the weights once at load, so it computes exactly like fp32)
* ``build_detector_eval.json`` - contract, sha256 and the check against PyTorch

and, with ``--all-variants`` (used to choose the shipped one; see models/README.md),
the fp32 and dynamic-range int8 twins and the 640 px versions, whose file names
follow the same pattern (``megadetector_lite_{416,640}_{fp32,int8w,int8dr}.tflite``).

Contract (every variant): one ``uint8`` NHWC ``[1, S, S, 3]`` **RGB** input, raw pixel
values 0..255 (no normalisation: YOLOX without ``legacy`` takes 0..255), the picture
letterboxed into the top-left corner (scale = min(S/w, S/h), the rest filled with grey
114); one ``float32`` output ``[1, N, 6]`` = ``cx, cy, w, h`` in input pixels,
objectness, class score (both after the sigmoid); N = 3549 at 416, 8400 at 640.
Score = objectness * class score. One class: "something of interest" (animal, person
or vehicle). Non-maximum suppression is left to the caller (see ``decode()``).

Pipeline (build time only):

1. Weights: ``zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth`` inside
   the PyPI wheel ``zamba`` 2.7.2 (MIT), installed with ``--no-deps`` (see
   requirements-build-nodeps.txt) so none of zamba's heavy dependencies come along;
   sha256 checked; read with ``torch.load(weights_only=True)``, key ``"model"``.
2. Model code: ``yolox.config.YoloxConfig`` / ``YoloxModule`` from ``pixeltable-yolox``
   0.4.3 (Apache-2.0), configured as zamba's ``TinyExp`` (depth 0.33, width 0.375,
   SiLU, 1 class; BatchNorm eps 1e-3 as YOLOX's ``get_model`` sets). Its NMS needs
   torchvision, which cannot be installed beside the CPU torch 2.13 wheel; the export
   never calls it, so when torchvision is missing an empty stand-in module is
   registered before ``yolox`` is imported (any call into it would fail loudly).
3. ``litert-torch`` 0.10.0 exports fp32; ``ai-edge-quantizer`` 0.10.0 makes the
   weight-only int8 (``weight_only_wi8_afp32``) and, for ``--all-variants``, the
   dynamic-range int8 (``dynamic_wi8_afp32``). Full int8 (``static_wi8_ai8``) is
   possible with ``--precision int8`` but not useful with this output: boxes (pixels)
   and scores (0..1) share one int8 tensor, so every score rounds to 0 (see README).
4. Checks: each TFLite model against PyTorch on the scikit-image photos, raw outputs
   and decoded boxes after the same NMS; written to ``build_detector_eval.json``.

Usage: see models/README.md (same venv as build_default_model.py plus
requirements-build-nodeps.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_default_model import (  # noqa: E402  (shared helpers of the classifier build)
    CALIB_SOURCES, check_versions, load_rgb, log, package_dir, random_augment, sha256_file,
)

WEIGHTS_REL = "object_detection/yolox/assets/yolox_tiny_640_20220528.pth"
KWARGS_REL = "object_detection/yolox/assets/yolox_tiny_640_20220528_model_kwargs.json"
WEIGHTS_SHA256 = "31f8690fc62f9d0756f1e8c09b0b02e5ade106173ed0a30743d47c004f88f4e0"
PAD_VALUE = 114
INPUT_NAME = "image"
OUTPUT_NAME = "detections"
SIGNATURE = "serving_default"
DEFAULT_VARIANTS = [(320, "int8w")]
ALL_VARIANTS = [(s, p) for s in (320, 416, 640) for p in ("fp32", "int8w", "int8dr")]

DET_PINNED = {"zamba": "2.7.2", "pixeltable-yolox": "0.4.3"}


def file_name(size: int, precision: str) -> str:
    return f"megadetector_lite_{size}_{precision}.tflite"


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

def import_yolox():
    """Import pixeltable-yolox; stand in for torchvision (only its NMS uses it)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # not installable beside torch 2.13 CPU (see docstring)
        def _missing(*_a, **_k):
            raise RuntimeError("torchvision is not installed in the build venv (stand-in module)")
        tv = types.ModuleType("torchvision")
        tv.ops = types.ModuleType("torchvision.ops")
        tv.ops.nms = tv.ops.batched_nms = _missing
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.ops"] = tv.ops
    from yolox.config import YoloxConfig
    return YoloxConfig


def load_torch_detector():
    import torch

    zamba = package_dir("zamba")
    weights = zamba / WEIGHTS_REL
    if not weights.is_file():
        raise SystemExit(f"{weights} missing: pip install --no-deps -r models/requirements-build-nodeps.txt")
    digest = sha256_file(weights)
    if digest != WEIGHTS_SHA256:
        raise SystemExit(f"weight file {weights} has sha256 {digest}, expected {WEIGHTS_SHA256}")
    kwargs = json.loads((zamba / KWARGS_REL).read_text())
    assert kwargs == {"num_classes": 1, "backbone": "yolox-tiny", "image_size": 640}, kwargs
    YoloxConfig = import_yolox()
    # zamba's TinyExp (yolox_model.py): depth 0.33, width 0.375, 1 class, SiLU, not depthwise
    cfg = YoloxConfig(name="megadetector_lite", num_classes=1, depth=0.33, width=0.375,
                      depthwise=False, act="silu")
    net = cfg.get_model()  # sets BatchNorm eps=1e-3 like YOLOX's Exp.get_model (zamba uses it)
    ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt["model"], strict=True)
    net.eval()
    net.head.decode_in_inference = True
    return net, weights, digest


def make_wrapper(net):
    import torch

    class UInt8NHWCDetector(torch.nn.Module):
        """uint8 NHWC RGB [1,S,S,3] -> [1,N,6] (cx, cy, w, h, objectness, class score)."""

        def __init__(self, detector: torch.nn.Module):
            super().__init__()
            self.detector = detector

        def forward(self, image: torch.Tensor):
            x = image.to(torch.float32).permute(0, 3, 1, 2)
            return {OUTPUT_NAME: self.detector(x)}

    return UInt8NHWCDetector(net).eval()


def export_fp32(wrapper, path: Path, size: int) -> None:
    import litert_torch
    import torch

    sample = {INPUT_NAME: torch.zeros((1, size, size, 3), dtype=torch.uint8)}
    edge = litert_torch.convert(wrapper, sample_kwargs=sample)
    edge.export(str(path))


def quantize(fp32: Path, out: Path, precision: str, calib: list[np.ndarray] | None, threads: int) -> None:
    from ai_edge_quantizer import calibrator, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    if precision in ("int8w", "int8dr"):
        rcp = recipe.weight_only_wi8_afp32() if precision == "int8w" else recipe.dynamic_wi8_afp32()
        quantizer.Quantizer(str(fp32), rcp).quantize().export_model(str(out), overwrite=True)
        return
    rcp = recipe.static_wi8_ai8()
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rcp)
    cal = calibrator.Calibrator(fp32.read_bytes(), num_threads=threads, qsv_update_func=qsv_utils.min_max_update)
    cal.calibrate({SIGNATURE: [{INPUT_NAME: img[None]} for img in calib]}, manager)
    q = quantizer.Quantizer(str(fp32), rcp)
    q.quantize(cal.get_model_qsvs()).export_model(str(out), overwrite=True)


# ----------------------------------------------------------------------------
# Pictures, decoding
# ----------------------------------------------------------------------------

def letterbox(rgb: np.ndarray, size: int, pad: int = PAD_VALUE) -> tuple[np.ndarray, float]:
    """Top-left letterbox into size x size (area interpolation when shrinking); returns (image, scale)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.full((size, size, 3), pad, np.uint8)
    out[:nh, :nw] = cv2.resize(rgb, (nw, nh), interpolation=interp)
    return out, scale


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS on x1, y1, x2, y2 boxes; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        ious = inter / np.maximum(area(boxes[i]) + area(boxes[rest]) - inter, 1e-9)
        order = rest[ious <= iou]
    return keep


def decode(raw: np.ndarray, threshold: float, iou: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """[N, 6] model output -> (boxes x1, y1, x2, y2 in input pixels, scores), NMS applied."""
    score = raw[:, 4] * raw[:, 5]
    m = score >= threshold
    r, s = raw[m], score[m]
    boxes = np.stack([r[:, 0] - r[:, 2] / 2, r[:, 1] - r[:, 3] / 2, r[:, 0] + r[:, 2] / 2, r[:, 1] + r[:, 3] / 2], 1)
    keep = nms(boxes, s, iou)
    return boxes[keep], s[keep]


def check_images(size: int) -> list[tuple[str, np.ndarray]]:
    data = package_dir("skimage") / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "grass.png"]
    return [(n, letterbox(np.asarray(load_rgb(data / n)), size)[0]) for n in names]


def calibration_images(n: int, seed: int, size: int) -> list[np.ndarray]:
    """Seeded augmentations of the skimage photos, letterboxed like the station does."""
    data = package_dir("skimage") / "data"
    sources = [load_rgb(data / name) for name in CALIB_SOURCES]
    rng = random.Random(seed)
    out = [letterbox(np.asarray(im), size)[0] for im in sources]
    while len(out) < n:
        aug = random_augment(sources[len(out) % len(sources)], rng)  # 224x224 crop
        # paste at a random scale so objects of many sizes appear
        side = rng.randint(size // 4, size)
        out.append(letterbox(aug, side, PAD_VALUE)[0] if side == size else
                   np.pad(letterbox(aug, side)[0], ((0, size - side), (0, size - side), (0, 0)),
                          constant_values=PAD_VALUE))
    return out[:n]


class TFLiteDetector:
    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def raw(self, img: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp["index"], img[None])
        self.it.invoke()
        y = self.it.get_tensor(self.out["index"])[0]
        scale, zp = self.out["quantization"]
        return (y.astype(np.float32) - zp) * scale if scale else y.astype(np.float32)

    def contract(self) -> dict:
        def desc(d):
            scale, zp = d["quantization"]
            return {"tensor_name": d["name"], "shape": [int(s) for s in d["shape"]],
                    "dtype": np.dtype(d["dtype"]).name,
                    "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None}
        return {"signature": self.it.get_signature_list(), "input": desc(self.inp), "outputs": [desc(self.out)]}


def box_agreement(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> dict:
    """Match boxes of b to a (greedy IoU); report counts and worst matched IoU / score gap."""
    ba, sa = a
    bb, sb = b
    ious, gaps = [], []
    used = set()
    for i in range(len(ba)):
        best, bj = 0.0, -1
        for j in range(len(bb)):
            if j in used:
                continue
            ix = max(0.0, min(ba[i, 2], bb[j, 2]) - max(ba[i, 0], bb[j, 0]))
            iy = max(0.0, min(ba[i, 3], bb[j, 3]) - max(ba[i, 1], bb[j, 1]))
            inter = ix * iy
            u = (ba[i, 2] - ba[i, 0]) * (ba[i, 3] - ba[i, 1]) + (bb[j, 2] - bb[j, 0]) * (bb[j, 3] - bb[j, 1]) - inter
            iou = inter / u if u > 0 else 0.0
            if iou > best:
                best, bj = iou, j
        if bj >= 0:
            used.add(bj)
            ious.append(float(best))
            gaps.append(abs(float(sa[i]) - float(sb[bj])))
        else:
            ious.append(0.0)
    return {"n_ref": int(len(ba)), "n_other": int(len(bb)),
            "min_iou": round(float(min(ious)), 4) if ious else None,
            "max_score_gap": round(max(gaps), 4) if gaps else None}


def compare_with_torch(wrapper, path: Path, size: int, threshold: float = 0.1) -> dict:
    import torch

    det = TFLiteDetector(path)
    report = {"threshold": threshold, "images": []}
    worst_raw_score = 0.0
    for name, img in check_images(size):
        with torch.no_grad():
            ref = wrapper(image=torch.from_numpy(img[None].copy()))[OUTPUT_NAME][0].numpy()
        got = det.raw(img)
        s_ref, s_got = ref[:, 4] * ref[:, 5], got[:, 4] * got[:, 5]
        worst_raw_score = max(worst_raw_score, float(np.max(np.abs(s_ref - s_got))))
        a, b = decode(ref, threshold), decode(got, threshold)
        report["images"].append({"image": name, "max_abs_score_diff": round(float(np.max(np.abs(s_ref - s_got))), 5),
                                 "max_abs_box_px_diff_where_ref_score_ge_0.1": round(float(np.max(np.abs(
                                     ref[s_ref >= 0.1, :4] - got[s_ref >= 0.1, :4]), initial=0.0)), 3),
                                 "torch_top_score": round(float(s_ref.max()), 4),
                                 **box_agreement(a, b)})
    report["max_abs_score_diff"] = round(worst_raw_score, 5)
    return report


# ----------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--all-variants", action="store_true",
                    help="also build 640 px and fp32 / full-int8 variants (for measuring; not shipped)")
    ap.add_argument("--precision", nargs="*", choices=("fp32", "int8w", "int8dr", "int8"),
                    help="build these precisions instead (for measuring), at --size")
    ap.add_argument("--size", type=int, default=416, help="input side for --precision (a multiple of 32)")
    ap.add_argument("--num-calib", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import importlib.metadata

    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    versions = check_versions()
    for dist, want in DET_PINNED.items():
        try:
            have = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            have = None
        versions[dist] = have
        if have != want:
            log(f"WARNING: {dist}: want {want}, have {have} (output may differ)")

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log("loading MegadetectorLite (YOLOX-tiny) weights from the zamba wheel")
    net, weights_path, weights_sha = load_torch_detector()
    wrapper = make_wrapper(net)
    variants = ALL_VARIANTS if args.all_variants else DEFAULT_VARIANTS
    if args.precision:
        variants = [(args.size, p) for p in args.precision]
    built: dict[str, dict] = {}
    evaluation: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sorted({s for s, _ in variants}):
            fp32_tmp = Path(tmp) / file_name(size, "fp32")
            log(f"exporting {size}x{size} fp32 with litert-torch")
            export_fp32(wrapper, fp32_tmp, size)
            calib = None
            for s, precision in variants:
                if s != size:
                    continue
                path = out / file_name(size, precision)
                if precision == "fp32":
                    path.write_bytes(fp32_tmp.read_bytes())
                else:
                    if precision == "int8" and calib is None:
                        log(f"building {args.num_calib} calibration images (seed {args.seed})")
                        calib = calibration_images(args.num_calib, args.seed, size)
                    log(f"quantising {path.name} ({precision})")
                    quantize(fp32_tmp, path, precision, calib, args.threads)
                os.chmod(path, 0o644)  # the quantizer writes its output executable
                built[path.name] = {"size": size, "precision": precision, "sha256": sha256_file(path),
                                    "size_bytes": path.stat().st_size, **TFLiteDetector(path).contract()}
                if not args.skip_eval:
                    evaluation[path.name] = compare_with_torch(wrapper, path, size)
                    log(f"{path.name}: vs torch max |score diff| {evaluation[path.name]['max_abs_score_diff']}")
    summary = {
        "weights_package": "zamba==2.7.2", "weights_file": f"zamba/{WEIGHTS_REL}", "weights_sha256": weights_sha,
        "model_code_package": "pixeltable-yolox==0.4.3", "build_versions": versions,
        "build_script": "models/build_detector.py", "models": built,
    }
    if not args.skip_eval:
        summary["torch_vs_tflite"] = evaluation
    (out / "build_detector_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, b in built.items():
        log(f"{name}: {b['size_bytes']} bytes sha256 {b['sha256']}")
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
