"""Would `extract --precision int8` pay? ONNX Runtime static quantization of the default model,
calibrated on a sample of the inputs, against fp32: speed, and agreement of what users keep.

For each calibration method (MinMax, Percentile), QDQ format, per-channel int8 weights and
uint8 activations (ONNX Runtime's CPU recommendation), calibrated on 64 of the photos:
  - speed: images/s of one single-thread session per core, batch 8 (how extract runs ONNX)
  - pre_logits features (what extract writes): cosine to fp32, min and median
  - logits: top-1 agreement with fp32, on all photos and on those fp32 is >= 50% sure of
  - a linear probe (logistic regression, 5-fold CV) on lfw_subset face / non-face features

The photos are the real ones of ../shared/datasets, as in extract_bench.py.

    .venv/bin/python benchmarks/int8_bench.py
"""
from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("VISIONZOO_OFFLINE", "1")


def rate(runner, x: np.ndarray, pipelines: int) -> float:
    batches = [x[i:i + 8] for i in range(0, len(x), 8)]
    runner(batches[0])
    start = time.perf_counter()
    with ThreadPoolExecutor(pipelines) as pool:
        list(pool.map(runner, batches))
    return len(x) / (time.perf_counter() - start)


def quantize(src: str, out: str, calib: np.ndarray, method) -> float:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"images": calib[i:i + 8]} for i in range(0, len(calib), 8)])

        def get_next(self):
            return next(self.batches, None)

    start = time.perf_counter()
    prepared = out + ".pre.onnx"
    quant_pre_process(src, prepared, skip_symbolic_shape=True)
    quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method)
    return time.perf_counter() - start


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def probe_accuracy(features: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, features, y, cv=5).mean())


def main() -> None:
    import logging

    from onnxruntime.quantization import CalibrationMethod
    from PIL import Image
    from skimage.data import lfw_subset

    import visionzoo
    from visionzoo.data import eval_array_transform, load_rgb
    from visionzoo.runtime.onnx_session import OnnxRunner
    from visionzoo.tasks.embed import feature_runner

    logging.getLogger().setLevel(logging.ERROR)
    os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
    from extract_bench import make_real_photos

    cpus = len(os.sched_getaffinity(0))
    model = visionzoo.load_model("efficientnet_lite0")
    pre = model.zoo_spec.preprocessing
    transform = eval_array_transform(pre)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "photos").mkdir()
        paths = make_real_photos(Path(tmp) / "photos", 320)
        x = np.stack([transform(load_rgb(p, pre.resize_size)) for p in paths])
        calib, test = x[::5][:64], x[64:]
        faces = lfw_subset()
        y = np.array([1] * 100 + [0] * 100)
        lfw = np.stack([transform(Image.fromarray((f * 255).astype(np.uint8)).convert("RGB")) for f in faces])

        exports = {layer: str(feature_runner(model, layer, backend="onnx", device="cpu")[0].path)
                   for layer in ("pre_logits", "logits")}
        fp32 = {layer: OnnxRunner(path, 1) for layer, path in exports.items()}
        ref = {layer: r(test) for layer, r in fp32.items()}
        sure = np.exp(ref["logits"] - ref["logits"].max(1, keepdims=True))
        sure = (sure / sure.sum(1, keepdims=True)).max(1) >= 0.5
        rows = [("fp32", rate(fp32["pre_logits"], test, cpus), 1.0, 1.0, 1.0, 1.0,
                 probe_accuracy(fp32["pre_logits"](lfw), y), 0.0)]
        for method in (CalibrationMethod.MinMax, CalibrationMethod.Percentile):
            q, seconds = {}, 0.0
            for layer, path in exports.items():
                out = str(Path(tmp) / f"{layer}-{method.name}.onnx")
                seconds += quantize(path, out, calib, method)
                q[layer] = OnnxRunner(out, 1)
            cos = cosine(q["pre_logits"](test), ref["pre_logits"])
            top1 = q["logits"](test).argmax(1) == ref["logits"].argmax(1)
            rows.append((f"int8 {method.name}", rate(q["pre_logits"], test, cpus), float(cos.min()),
                         float(np.median(cos)), float(top1.mean()), float(top1[sure].mean()) if sure.any() else float("nan"),
                         probe_accuracy(q["pre_logits"](lfw), y), seconds))
    print(f"\nint8 vs fp32, efficientnet_lite0, {len(test)} real photos ({int(sure.sum())} with fp32 top-1 >= 50%), "
          f"{cpus} single-thread sessions at once, batch 8")
    print("| precision | img/s | features cosine min / median | top-1 agreement (all / sure) "
          "| lfw probe acc (5-fold) | quantize s |\n|---|---|---|---|---|---|")
    for name, r, cmin, cmed, agree, agree_sure, probe, secs in rows:
        print(f"| {name} | {r:.1f} ({r / rows[0][1]:.2f}x) | {cmin:.3f} / {cmed:.3f} | {agree:.2f} / {agree_sure:.2f} "
              f"| {probe:.3f} | {secs:.0f} |")


if __name__ == "__main__":
    main()
