"""Box predictions that never saw the image's own boxes, for judging those boxes.

Cross-fitting: the images are dealt into FOLDS seeded folds; for each fold, `visionzoo detect
train` (the same recipe and engine, on the bundled backbone) learns from the other folds and its
saved run predicts this fold (its final evaluation writes the boxes to predictions.json at the
evaluation threshold). Each fold's run folder lives in OUT/detectors/, so `--resume` reuses the
finished ones and continues an interrupted one. Or the user names a trained detector (`--model
RUN`): faster, but it has seen the boxes it trained on, so it vouches for their mistakes.

Defaults from the raccoon photos on a 2-core CPU: a detector trained on half of them (80 photos) at
320 px reached val mAP50 0.50, 0.61, 0.82 and 0.80 on the other half after epochs 1-4, so three
epochs; two folds, because each fold costs a training run. No time budget (`detect train`'s default
900 s cut a fold to one epoch on a busy machine, mAP50 0.55): what is flagged must not depend on
the machine's load. benchmarks/audit_bench.py measures what this finds and what it costs."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from ..atomic import write_json
from ..data.splits import shuffled
from ..errors import UsageError

FOLDS = 2
EPOCHS = 3
IMAGE_SIZE = 320
DETECTORS_DIR = "detectors"
Log = Callable[[str], None]


def _coco(samples: Sequence[Any], classes: list[str], out: Path) -> Path:
    """The samples as a COCO file with absolute image paths (boxes are already in displayed pixels)."""
    images, anns = [], []
    for n, s in enumerate(samples):
        images.append({"id": n, "file_name": os.path.abspath(s.path), "width": s.size[0], "height": s.size[1]})
        for box, label, crowd in zip(s.boxes, s.labels, s.crowd):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append({"id": len(anns) + 1, "image_id": n, "category_id": int(label) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd)})
    return write_json(out, {"images": images, "annotations": anns,
                            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)]})


def crossfit(samples: Sequence[Any], classes: list[str], root: str, out: Path, *, folds: int = FOLDS, seed: int = 0,
             resume: bool = False, device: str = "auto", workers: int | None = None, progress: bool = False,
             log: Log | None = None) -> list[dict[str, Any]]:
    """Per sample, in order: {"path", "detections"} from the fold run that did not train on it."""
    from ..tasks.detect.training import train

    if folds < 2 or folds > len(samples):
        raise UsageError(f"--folds must be between 2 and the number of images ({len(samples)}), got {folds}")
    order = shuffled(len(samples), seed)
    fold_of = {int(i): n % folds for n, i in enumerate(order)}
    folder = out / DETECTORS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    predicted: dict[str, dict[str, Any]] = {}
    for f in range(folds):
        fit = [s for i, s in enumerate(samples) if fold_of[i] != f]
        held = [s for i, s in enumerate(samples) if fold_of[i] == f]
        fit_file, held_file = folder / f"fold{f}.train.json", folder / f"fold{f}.predict.json"
        run_dir = folder / f"fold{f}"
        if not (resume and run_dir.exists()):
            _coco(fit, classes, fit_file)
            _coco(held, classes, held_file)
        if log:
            log(f"audit: detector {f + 1} of {folds}: trained on {len(fit)} images, predicting the other {len(held)}")
        with warnings.catch_warnings():   # the size is the audit's own choice, in today's meaning: no news to its user
            warnings.filterwarnings("ignore", message="detect train: image_size", category=FutureWarning)
            train(root, run_dir, annotations=fit_file, val=root, val_annotations=held_file, epochs=EPOCHS,
                  time_budget=None, image_size=IMAGE_SIZE, seed=seed, device=device, workers=workers,
                  resume=resume and run_dir.exists(), progress=progress, log=log)
        for p in json.loads((run_dir / "predictions.json").read_text("utf-8")):
            predicted[os.path.abspath(p["path"])] = p
    return [predicted.get(os.path.abspath(s.path), {"path": s.path, "detections": [], "error": "not predicted"})
            for s in samples]


def run_predictions(model: str, samples: Sequence[Any], *, device: str = "auto",
                    workers: int | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Per sample, in order, the boxes of a trained detector (a run folder or a torchvision name)."""
    from ..tasks.detect.evaluation import predict_samples
    from ..tasks.detect.predictor import EVAL_CONF, load_predictor

    predictor = load_predictor(model, conf=EVAL_CONF, device=device)
    return predict_samples(predictor, list(samples), workers=workers, progress=progress)
