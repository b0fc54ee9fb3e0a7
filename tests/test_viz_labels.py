"""Pictures readable at any size: labels and lines grow with the image, distances read as
distances, masks carry a legend, grids keep tiles large and captions clear, names sort naturally."""
from __future__ import annotations

import numpy as np
from PIL import Image

from visionzoo.data.natural import natural_key


def _tab_height(img: Image.Image, x: int, y_box: int, colour: tuple[int, int, int]) -> int:
    """Rows of the label tab's colour straight above the box's top edge, at column x."""
    arr = np.asarray(img)
    n = 0
    for y in range(y_box - 1, -1, -1):
        if np.abs(arr[y, x].astype(int) - colour).sum() > 30:
            break
        n += 1
    return n


def test_detection_labels_scale_with_the_image():
    from visionzoo.tasks.detect.draw import _colour, render

    heights = {}
    for w, h in ((640, 480), (4510, 3000)):
        img = Image.new("RGB", (w, h), (128, 128, 128))
        box = [w * 0.3, h * 0.4, w * 0.7, h * 0.8]
        out = render(img, [{"label": "raccoon", "score": 0.92, "box": box}])
        heights[w] = _tab_height(out, int(box[0]) + 2, int(box[1]), _colour("raccoon"))
    assert heights[640] >= 14                      # readable on a small picture
    assert heights[4510] >= 5 * heights[640]       # and as readable on a 4510 px photo (~110 px of text)


def test_face_labels_say_distance_and_landmarks_scale():
    from visionzoo.tasks.faces.draw import face_label

    assert face_label({"identity": "biden", "distance": 0.38}, 0.9) == "biden d=0.38"
    assert face_label({}, 0.9123) == "face 0.91"
    assert face_label({"identity": "unknown", "distance": 0.71}, 0.9) == "unknown d=0.71"


def test_mask_overlay_has_a_legend_of_the_classes_present():
    from visionzoo.tasks.segment.predictor import overlay, palette

    img = Image.new("RGB", (600, 400), (128, 128, 128))
    mask = np.zeros((400, 600), np.uint8)
    mask[200:, :300] = 2
    plain = np.asarray(overlay(img, mask, 3))
    keyed = np.asarray(overlay(img, mask, 3, classes=["background", "road", "car"]))
    car = palette(3)[2]
    corner = keyed[:60, :200].reshape(-1, 3)
    assert (np.abs(corner.astype(int) - car).sum(1) < 10).sum() > 50      # the car swatch, top left
    assert not (np.abs(plain[:60, :200].reshape(-1, 3).astype(int) - car).sum(1) < 10).any()
    assert not (np.abs(corner.astype(int) - palette(3)[1]).sum(1) < 10).any()  # no road: not in the key


def test_audit_montage_tiles_are_large(tmp_path):
    from visionzoo.audit.montages import _grid

    for k in range(4):
        Image.new("RGB", (300, 900 if k % 2 else 200), (40 * k, 90, 160)).save(tmp_path / f"{k}.png")
    out = _grid([(str(tmp_path / f"{k}.png"), f"{k}.png\ntrain") for k in range(4)], tmp_path / "m.png", "t", 4)
    assert Image.open(out).width / 4 >= 200


def test_names_sort_naturally():
    names = ["unknown #10", "unknown #2", "unknown #1", "face #11", "a.mp4#t=10", "a.mp4#t=9.5"]
    assert sorted(names, key=natural_key) == ["a.mp4#t=9.5", "a.mp4#t=10", "face #11", "unknown #1", "unknown #2",
                                               "unknown #10"]


def test_crowded_detections_keep_the_surest_label_and_tell_touching_instances_apart():
    """Thirty cells a tile: each instance mask gets its own colour, and a label that would cover another
    is left out, the surest box's kept."""
    from visionzoo.tasks.detect.draw import render
    from visionzoo.tasks.detect.masks import encode_mask

    img = Image.new("RGB", (400, 300), (128, 128, 128))
    left, right = np.zeros((300, 400), bool), np.zeros((300, 400), bool)
    left[100:200, 100:200], right[100:200, 200:300] = True, True          # two cells that touch
    dets = [{"label": "cell", "score": 0.40, "box": [104, 100, 300, 200], "mask": encode_mask(right)},
            {"label": "cell", "score": 0.90, "box": [100, 100, 200, 200], "mask": encode_mask(left)}]
    out = np.asarray(render(img, dets)).astype(int)
    assert np.abs(out[150, 150] - out[150, 250]).sum() > 60                # two colours, not one
    sure = tuple(out[150, 150] * 2 - 128)                                   # its mask's colour, untinted
    unsure = out[150, 250] * 2 - 128

    def tab_pixels(picture: np.ndarray, colour: np.ndarray) -> int:   # in the strip above the boxes' tops
        return int((np.abs(picture[70:98, 100:300] - colour).sum(-1) < 20).sum())

    assert tab_pixels(out, sure) > 300                                      # the 0.90 label is drawn
    assert tab_pixels(out, unsure) == 0                                     # the 0.40 one would cover it: not
    alone = np.asarray(render(img, dets[:1])).astype(int)
    assert tab_pixels(alone, alone[150, 250] * 2 - 128) > 300              # (alone, it is)
