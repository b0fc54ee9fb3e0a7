"""The speed reference of detect_bench.py: a YOLO-style one-stage ONNX graph run over photos as a whole
process, with the minimal pipeline a user would write around it: decode (PIL, JPEG draft mode down to the
input size, as `detect predict` decodes), letterbox to the graph's square input, ONNX Runtime, the boxes
decoded, class-aware NMS (visionzoo's own, NumPy), boxes scaled back to the photo. One ONNX Runtime session
with one intra-op thread, called by one thread per core, each decoding the photo it runs: the scheme
`detect predict` uses, so both sides get the same help from the cores.

Ultralytics is not a dependency of visionzoo. Make the graphs once in a throwaway venv (Ultralytics'
yolo11n architecture with random weights: the same compute as the trained model, no download):

    python3 -m venv /tmp/yolo-venv && /tmp/yolo-venv/bin/pip install ultralytics onnx onnxslim
    cd /tmp && for s in 384 640; do /tmp/yolo-venv/bin/python -c "from ultralytics import YOLO; \\
        YOLO('yolo11n.yaml').export(format='onnx', imgsz=$s, opset=17, simplify=True)" && mv yolo11n.onnx yolo11n_$s.onnx; done

    .venv/bin/python benchmarks/yolo_reference.py /tmp/yolo11n_384.onnx PHOTO_OR_FOLDER... [--out boxes.json]

Random weights score many boxes: at most MAX_CANDIDATES per photo (the best) go to NMS, as Ultralytics caps
them; a trained model keeps far fewer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from visionzoo.tasks.detect.operating import suppress_arrays  # the NMS `detect predict` applies (NumPy)

CONF, IOU, MAX_CANDIDATES = 0.25, 0.45, 300
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class Yolo:
    def __init__(self, path: str):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.size = int(self.session.get_inputs()[0].shape[-1])

    def detect(self, path: str) -> dict:
        img = Image.open(path)
        img.draft("RGB", (self.size, self.size))                   # JPEG: decode at 1/2-1/8 scale when it can
        img = img.convert("RGB")
        w, h = img.size
        scale = self.size / max(w, h)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.full((self.size, self.size, 3), 114, np.uint8)
        top, left = (self.size - nh) // 2, (self.size - nw) // 2
        canvas[top:top + nh, left:left + nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
        x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        out = self.session.run(None, {self.input: x})[0][0]  # (4 + classes, anchors)
        scores_all = out[4:]
        labels = scores_all.argmax(0)
        scores = scores_all[labels, np.arange(out.shape[1])]
        cand = np.flatnonzero(scores >= CONF)
        cand = cand[np.argsort(-scores[cand])[:MAX_CANDIDATES]]
        cx, cy, bw, bh = out[:4, cand]
        boxes = np.stack([cx - bw / 2 - left, cy - bh / 2 - top, cx + bw / 2 - left, cy + bh / 2 - top], 1) / scale
        keep = suppress_arrays(boxes, scores[cand], labels[cand], IOU, None)
        return {"path": path, "detections": [{"label": int(c), "score": round(float(s), 5), "box": b}
                                             for c, s, b in zip(labels[cand][keep].tolist(), scores[cand][keep].tolist(),
                                                                np.round(boxes[keep], 2).tolist())]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    files = []
    for p in args.inputs:
        files += sorted(str(f) for f in Path(p).rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS) \
            if Path(p).is_dir() else [p]
    model = Yolo(args.onnx)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        rows = list(pool.map(model.detect, files))
    text = json.dumps(rows)
    if args.out:
        args.out.write_text(text)
    print(f"{len(rows)} photos, {sum(len(r['detections']) for r in rows)} boxes", file=sys.stderr)


if __name__ == "__main__":
    main()
