"""Pictures the field will produce, good and bad, on their way to the model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from station.classifier.preprocess import (
    ImageError, choose_boxes, crop_square, decode, image_size, load_views, parse_box, read_bytes, reduction,
    to_bgr8,
)

SIZE = (224, 224)


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def scene(w: int = 640, h: int = 360, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


def test_views_are_the_whole_frame_then_one_crop_per_box_in_rgb(tmp_path):
    img = np.zeros((360, 640, 3), np.uint8)
    img[:, :320] = (255, 0, 0)  # blue on the left (BGR)
    img[:, 320:] = (0, 0, 255)  # red on the right
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), img)
    views, used = load_views(path, [(0.7, 0.4, 0.1, 0.1)], SIZE, 0.25, 2)
    assert len(views) == 2 and used == [(0.7, 0.4, 0.1, 0.1)]
    assert all(v.shape == (224, 224, 3) and v.dtype == np.uint8 for v in views)
    assert tuple(views[1][112, 112]) == (255, 0, 0)  # red crop, as RGB
    assert tuple(views[0][112, 10]) == (0, 0, 255)  # whole frame: blue on the left, as RGB


def test_crop_is_square_with_margin_and_clamped_inside_the_frame():
    # a box in the corner: the square is shifted in, not shrunk
    x0, y0, side = crop_square((0.95, 0.9, 0.05, 0.1), 1280, 720, 0.25)
    assert side == round(72 * 1.5)
    assert x0 + side <= 1280 and y0 + side <= 720 and x0 >= 0 and y0 >= 0
    # a box taller than the frame is wide: the crop is capped at the short side
    x0, y0, side = crop_square((0.4, 0.0, 0.2, 1.0), 1280, 720, 0.25)
    assert side == 720 and y0 == 0
    # a tiny box still gets a useful crop
    assert crop_square((0.5, 0.5, 0.001, 0.001), 1280, 720, 0.25)[2] == 32


def test_overlapping_boxes_give_one_crop_and_the_largest_come_first():
    boxes = [(0.1, 0.1, 0.1, 0.1), (0.5, 0.5, 0.3, 0.3), (0.51, 0.51, 0.3, 0.3), (0.8, 0.1, 0.05, 0.05)]
    chosen = choose_boxes(boxes, 1280, 720, 0.25, 2)
    assert chosen == [(0.5, 0.5, 0.3, 0.3), (0.1, 0.1, 0.1, 0.1)]


def test_bad_boxes_in_a_record_are_ignored():
    assert parse_box([0.1, 0.2, 0.3, 0.4]) == (0.1, 0.2, 0.3, 0.4)
    for bad in (None, [0.1, 0.2, 0.3], [0.1, 0.2, 0, 0.4], ["a", 0, 1, 1], [1.5, 0, 0.1, 0.1], [0, 0, float("nan"), 1]):
        assert parse_box(bad) is None


def test_big_stills_are_decoded_at_reduced_scale_when_the_views_allow():
    assert reduction((4056, 3040), [], SIZE, 0.25) == 8
    assert reduction((1280, 720), [], SIZE, 0.25) == 4
    assert reduction((1280, 720), [(0.4, 0.4, 0.25, 0.25)], SIZE, 0.25) == 2
    assert reduction((1280, 720), [(0.4, 0.4, 0.05, 0.05)], SIZE, 0.25) == 1
    assert reduction(None, [], SIZE, 0.25) == 1


def test_reduced_decoding_sees_the_same_picture():
    data = jpeg(scene(1280, 720))
    assert image_size(data) == (1280, 720)
    full, half = decode(data, "x.jpg", 1), decode(data, "x.jpg", 2)
    assert half.shape == (360, 640, 3)
    diff = np.abs(cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA).astype(int) - half.astype(int))
    assert diff.mean() < 3


def test_png_header_size():
    assert image_size(cv2.imencode(".png", scene(33, 17))[1].tobytes()) == (33, 17)
    assert image_size(b"not an image at all") is None


def test_truncated_jpeg_is_named(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg(scene())[:4000])
    with pytest.raises(ImageError, match=r"cut\.jpg: truncated JPEG"):
        load_views(path, [], SIZE, 0.25, 2)


def test_zero_byte_file_is_named(tmp_path):
    path = tmp_path / "zero.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"zero\.jpg: empty file \(0 bytes\)"):
        load_views(path, [], SIZE, 0.25, 2)


def test_text_file_named_jpg_is_named(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("ranger notes: fresh tracks by the stream\n")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image format"):
        load_views(path, [], SIZE, 0.25, 2)


def test_corrupt_jpeg_body_is_named(tmp_path):
    data = bytearray(jpeg(scene()))
    data[200:-2] = bytes(len(data) - 202)  # keep the start and the end marker, wipe the rest
    path = tmp_path / "wiped.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"wiped\.jpg: corrupt JPEG data"):
        load_views(path, [], SIZE, 0.25, 2)


def test_truncated_png_is_named(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(cv2.imencode(".png", scene())[1].tobytes()[:3000])
    with pytest.raises(ImageError, match=r"cut\.png: corrupt or truncated PNG"):
        load_views(path, [], SIZE, 0.25, 2)


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(ImageError, match=r"gone\.jpg: file not found"):
        read_bytes(tmp_path / "gone.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_bytes(tmp_path)


def test_odd_pictures_become_model_inputs(tmp_path):
    cases = {
        "one_pixel.png": np.full((1, 1, 3), 200, np.uint8),
        "grey.png": scene()[:, :, 0],
        "deep.png": (scene().astype(np.uint16) * 257),
        "strip.png": np.full((10, 4000, 3), 90, np.uint8),
        "tower.jpg": np.full((3000, 12, 3), 90, np.uint8),
    }
    for name, img in cases.items():
        path = tmp_path / name
        assert cv2.imwrite(str(path), img)
        views, _ = load_views(path, [(0.0, 0.0, 0.5, 0.5)], SIZE, 0.25, 2)
        assert all(v.shape == (224, 224, 3) and v.dtype == np.uint8 for v in views), name


def test_arrays_of_any_common_kind_become_bgr8():
    grey = np.full((4, 5), 7, np.uint8)
    assert to_bgr8(grey).shape == (4, 5, 3)
    assert to_bgr8(grey[:, :, None]).shape == (4, 5, 3)
    assert to_bgr8(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert to_bgr8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    assert to_bgr8(np.full((2, 2, 3), 1.0)).max() == 255
    with pytest.raises(ImageError, match="not an image"):
        to_bgr8(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ImageError, match="not supported"):
        to_bgr8(np.zeros((4, 5, 3), np.complex64))
    with pytest.raises(ImageError, match="not an image"):
        to_bgr8(np.zeros((0, 5, 3), np.uint8))
