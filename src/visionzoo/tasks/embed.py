"""Embeddings: the pooled penultimate features (pre-logits), the class scores, or any stage.

`feature_fn` is the one definition of "what a layer is" shared by extract (eager and ONNX),
train (linear probe), search queries and classify's backbone, so every path computes the same
vector. Stages are taken with a forward hook that stops the forward pass right after the stage,
which works the same for timm models, torchvision models and saved run folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data import eval_transform, expand_inputs, iter_batches
from ..data.calibration import BUNDLED, CalibrationSet, calibration_batches, calibration_set
from ..errors import UsageError
from ..progress import progress_bar
from ..runtime import TorchRunner
from ..runtime.quantize import check_precision, int8_device
from ..zoo import as_model
from ..zoo.spec import DEFAULT_LAYER
from ..zoo.weights import weights_digest  # noqa: F401  (re-exported: the digest feature manifests record)

ModelArg = str | os.PathLike | nn.Module | None

FINAL_MAP = "forward_features"          # the last feature map, before the model's own pooling
POOLS = ("avg", "max", "avgmax", "gem", "none")
_PRE_LOGITS_ALIASES = (DEFAULT_LAYER, "default", "features")
GEM_P = 3.0


# --------------------------------------------------------------------------- layers
@dataclass
class LayerInfo:
    name: str
    channels: int           # feature size after pooling (channels of a map, or the vector size)
    reduction: int | None   # input size / map size (None for vectors)
    shape: tuple[int, ...]  # output shape for one image, before pooling


def _stage_root(model: nn.Module) -> nn.Module:
    """Where stage names are looked up: the wrapped torchvision net, or the model itself."""
    from ..zoo.torchvision_adapter import TorchvisionClassifier

    return model.net if isinstance(model, TorchvisionClassifier) else model


def stage_names(model: nn.Module) -> list[str]:
    """The intermediate stages worth taking: timm's feature_info, else the net's main children."""
    root = _stage_root(model)
    info = getattr(root, "feature_info", None)
    if info is not None:
        names = [d["module"] for d in (info.info if hasattr(info, "info") else info)]
        return [n for n in dict.fromkeys(names) if n] + [FINAL_MAP]
    features = getattr(root, "features", None)
    if isinstance(features, nn.Sequential):  # vgg, alexnet, mobilenet, efficientnet, densenet
        return [f"features.{n}" for n, _ in features.named_children()]
    head = (nn.Linear, nn.Dropout, nn.Identity, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)
    return [n for n, m in root.named_children() if not isinstance(m, head)]


def layer_names(model: nn.Module) -> list[str]:
    return stage_names(model) + [DEFAULT_LAYER, "logits"]


def check_layer(model: nn.Module, layer: str, pool: str | None) -> None:
    """UsageError for a layer the model lacks (listing the valid ones) or a pool that cannot apply."""
    if pool is not None and pool not in POOLS:
        raise UsageError(f"unknown pooling {pool!r}; use one of {', '.join(POOLS)}")
    if layer in _PRE_LOGITS_ALIASES or layer == "logits":
        if pool is not None:
            raise UsageError(
                f"layer {layer!r} is a vector the model already pooled; --pool applies to feature maps "
                f"(e.g. --layer {FINAL_MAP} --pool {pool})"
            )
        return
    if layer == FINAL_MAP and FINAL_MAP in stage_names(model):
        return
    try:
        _stage_root(model).get_submodule(layer)
    except AttributeError:
        raise UsageError(
            f"model has no layer {layer!r}; valid layers: {', '.join(layer_names(model))} "
            f"(see `visionzoo layers MODEL`)"
        ) from None


def pool_features(x: torch.Tensor, pool: str | None = "avg") -> torch.Tensor:
    """(N, C, H, W) maps or (N, T, C) tokens -> (N, D); vectors pass through; 'none' flattens."""
    pool = pool or "avg"
    if x.ndim == 2 or pool == "none":
        return x.flatten(1)
    dims = (2, 3) if x.ndim == 4 else tuple(range(1, x.ndim - 1))
    if pool == "avg":
        return x.mean(dims)
    if pool == "max":
        return x.amax(dims)
    if pool == "avgmax":  # timm's definition: the mean of average and max pooling
        return 0.5 * (x.mean(dims) + x.amax(dims))
    if pool == "gem":  # generalised mean (Radenovic et al.), p=3: between avg (p=1) and max
        return x.clamp(min=1e-6).pow(GEM_P).mean(dims).pow(1.0 / GEM_P)
    raise UsageError(f"unknown pooling {pool!r}; use one of {', '.join(POOLS)}")


class _Stop(Exception):
    """Raised by the stage hook so nothing after the requested stage is computed."""


def _stage_output(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    if layer == FINAL_MAP:
        return model.forward_features(x)
    try:
        module = _stage_root(model).get_submodule(layer)
    except AttributeError:
        check_layer(model, layer, None)
        raise
    captured: list[torch.Tensor] = []

    def hook(_m, _inp, out):
        captured.append(out[0] if isinstance(out, (tuple, list)) else out)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise UsageError(f"layer {layer!r} is not used by the model's forward pass")
    return captured[0]


def feature_fn(
    layer: str = DEFAULT_LAYER, pool: str | None = None, normalize: bool = False
) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """(model, batch) -> (N, D) features for `layer`.

    "pre_logits" (default): the model's own pooled penultimate vector; "logits": class scores;
    a stage name (see `layer_names`) or "forward_features": that feature map pooled by `pool`
    (avg by default). `normalize` scales each row to unit L2 norm.
    """
    if layer in _PRE_LOGITS_ALIASES:
        base = lambda m, x: m.forward_head(m.forward_features(x), pre_logits=True).flatten(1)  # noqa: E731
    elif layer == "logits":
        base = lambda m, x: m(x)  # noqa: E731
    else:
        base = lambda m, x: pool_features(_stage_output(m, x, layer), pool)  # noqa: E731
    if not normalize:
        return base
    return lambda m, x: nn.functional.normalize(base(m, x).float(), dim=1)


def list_layers(model: ModelArg = None) -> list[LayerInfo]:
    """Every layer name with its size, found by one forward pass of a blank image.

    Shapes do not depend on the weights, so a named model is built without them (works offline).
    """
    from ..zoo import DEFAULT_MODEL, is_run_dir, load_model

    if model is None or (isinstance(model, (str, os.PathLike)) and not is_run_dir(model)):
        model = load_model(os.fspath(model or DEFAULT_MODEL), pretrained=False)
    module, spec = as_model(model)
    size = spec.preprocessing.input_size
    x = torch.zeros(1, *size)
    rows = []
    with torch.inference_mode():
        for name in layer_names(module):
            if name in (DEFAULT_LAYER, "logits"):
                out = feature_fn(name)(module, x)
            else:
                out = _stage_output(module, x, name)
            shape = tuple(out.shape[1:])
            reduction = size[-1] // shape[-1] if out.ndim == 4 and shape[-1] else None
            channels = shape[0] if out.ndim == 4 else shape[-1]
            rows.append(LayerInfo(name, int(channels), reduction, shape))
    return rows


# --------------------------------------------------------------------------- backends
BACKENDS = ("auto", "torch", "onnx")


def recorded_calibration(manifest: dict[str, Any]) -> CalibrationSet | None:
    """The calibration set a feature file's int8 rows were made with (files are found again only if
    the quantized model has left the cache), None for fp32 rows."""
    if manifest.get("precision", "fp32") != "int8":
        return None
    rec = manifest.get("calibration") or {}
    if not rec.get("sha256"):
        raise UsageError("this feature file says int8 but records no calibration set; extract it again")
    return CalibrationSet((), rec.get("source", BUNDLED), rec["sha256"], int(rec.get("views", 1)))


def int8_export(fp32: str | os.PathLike, preprocessing, cal: CalibrationSet) -> Any:
    """The cached int8 file of the fp32 export `fp32`, calibrated on `cal` (quantized the first time)."""
    from ..runtime.quantize import cached_int8

    def batches():
        found = cal
        if not found.files:  # a recorded set: find its photos again, and make sure they are the same
            found = calibration_set(None if cal.source == BUNDLED else cal.source)
            if found.sha256 != cal.sha256:
                raise UsageError(f"the int8 model of these features was calibrated on photos ({cal.source}) that "
                                 f"have changed or gone since, and it is no longer cached: its vectors cannot be "
                                 f"reproduced; extract the features again")
        if preprocessing is None:
            raise UsageError("--precision int8 needs a model with preprocessing (a zoo model or a run folder)")
        return calibration_batches(found, preprocessing)

    return cached_int8(fp32, cal.sha256, batches)


def feature_runner(
    module: nn.Module,
    layer: str = DEFAULT_LAYER,
    pool: str | None = None,
    normalize: bool = False,
    *,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    digest: str | None = None,
    precision: str = "fp32",
    calibration: CalibrationSet | None = None,
) -> tuple[Callable[[Any], np.ndarray], str]:
    """(runner, backend used): `runner(batch) -> float32 (N, D) array` for the layer on the chosen
    backend; the batch may be a NumPy array or a tensor.

    "auto" is ONNX Runtime on CPU (several times faster than eager PyTorch there), PyTorch with
    channels_last and autocast on CUDA/MPS; if a model cannot be exported, auto falls back to PyTorch.
    `precision="int8"`: the ONNX export quantized on `calibration` (default: the bundled photos),
    on the CPU; it never falls back.
    """
    from ..runtime import pick_device

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    spec = getattr(module, "zoo_spec", None)
    int8 = check_precision(precision) == "int8"
    if int8:
        device, backend = int8_device(device, backend), "onnx"
    dev = pick_device(device)
    fn = feature_fn(layer, pool, normalize)
    if backend == "onnx" or (backend == "auto" and dev.type == "cpu" and spec is not None):
        from ..runtime import OnnxRunner, cached_onnx

        key = {"arch": spec.full_arch if spec else type(module).__name__, "layer": layer, "pool": pool,
               "normalize": normalize, "weights": digest or weights_digest(module)}
        if spec is not None and spec.tta:  # the same weights with test-time augmentation compute other features
            key["tta"] = spec.tta
        input_size = spec.preprocessing.input_size if spec else (3, 224, 224)
        try:
            path = cached_onnx(module, fn, input_size, key, spec.arch if spec else "model")
            if int8:
                path = int8_export(path, spec.preprocessing if spec else None, calibration or calibration_set())
            return OnnxRunner(path, threads, dev.type), "onnx"
        except UsageError as exc:
            if backend == "onnx":
                raise
            import warnings

            warnings.warn(f"{exc}; using PyTorch instead", stacklevel=2)
    if threads and dev.type == "cpu":
        torch.set_num_threads(threads)
    runner = TorchRunner(module, fn, device=dev)
    return (lambda x: runner(torch.as_tensor(x)).numpy()), "torch"


# --------------------------------------------------------------------------- in-memory embeddings
@dataclass
class Embeddings:
    paths: list[str]
    matrix: np.ndarray                       # (len(paths), D) float32, rows follow `paths`
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def embed_images(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelArg = None,
    *,
    layer: str = DEFAULT_LAYER,
    pool: str | None = None,
    normalize: bool = False,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    backend: str = "torch",
    progress: bool = False,
    precision: str = "fp32",
    calibration: CalibrationSet | None = None,
) -> Embeddings:
    """In-memory embeddings for a modest number of images (extract streams to disk for more).
    `backend`: torch (eager), or auto / onnx for the extract path's ONNX Runtime export on CPU;
    `precision="int8"` takes the ONNX path quantized on `calibration` (see `feature_runner`)."""
    files = expand_inputs(inputs).files
    module, spec = as_model(model)
    check_layer(module, layer, pool)
    if backend == "torch" and check_precision(precision) == "fp32":
        torch_runner = TorchRunner(module, feature_fn(layer, pool, normalize), device=device)
        runner = lambda x: torch_runner(x).numpy()  # noqa: E731
    else:
        runner, _ = feature_runner(module, layer, pool, normalize, backend="auto" if backend == "torch" else backend,
                                   device=device, precision=precision, calibration=calibration)
    rows: list[np.ndarray] = []
    paths: list[str] = []
    failures: list[tuple[str, str]] = []
    with progress_bar(total=len(files), unit="img", disable=not progress, desc="embed") as bar:
        for batch in iter_batches(files, eval_transform(spec.preprocessing), batch_size=batch_size,
                                  workers=workers, target_size=spec.preprocessing.resize_size):
            failures += [(files[i], reason) for i, reason in batch.failures]
            if batch.tensor is not None:
                rows.append(np.asarray(runner(batch.tensor), dtype=np.float32))
                paths += [files[i] for i in batch.indices]
            bar.update(len(batch.indices) + len(batch.failures))
    matrix = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    return Embeddings(paths, matrix, failures)


def embed_like(
    manifest: dict[str, Any],
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = False,
) -> Embeddings:
    """Embed new images exactly as a feature file was made (model, weights, layer, pool, normalize,
    precision: int8 rows get int8 queries from the same calibration).

    Refuses when the model loaded now has other weights than the one that made the file, since
    its vectors would not be comparable. Face features (`faces embed`, `faces index`: one row per
    face) are answered per image with its largest face's descriptor.
    """
    if manifest.get("task") == "faces":     # by name: the task packages stay independent
        from .registry import task_module

        paths, matrix, failures = task_module("faces").embed_largest_faces(inputs)
        return Embeddings(paths, matrix, failures)
    module, _ = as_model(manifest["model"])
    expected = manifest.get("weights_sha256")
    if expected and weights_digest(module) != expected:
        raise UsageError(
            f"the weights of model {manifest['model']!r} differ from those that made the feature file "
            f"(weights_sha256 {expected[:12]}...); its vectors would not be comparable"
        )
    return embed_images(
        inputs, module, layer=manifest.get("layer") or DEFAULT_LAYER, pool=manifest.get("pool"),
        normalize=bool(manifest.get("normalize")), batch_size=batch_size, workers=workers,
        device=device, progress=progress, precision=manifest.get("precision", "fp32"),
        calibration=recorded_calibration(manifest),
    )
