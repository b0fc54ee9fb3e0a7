"""What the server runs: classifiers (with their embeddings), task predictors, a search index.

Everything is loaded once at start. Classification reuses `tasks.classify` and `tasks.embed`
(preprocessing from the model's spec, the same runners as `extract`, ONNX Runtime on CPU);
detection, segmentation, faces and captioning go through the task packages' contract
`visionzoo.tasks.<task>.load_predictor(run_or_name, **options)`, chosen by a run folder's
config.json "task" or by a `TASK:NAME` argument. Each model gets its own micro-batcher.
"""
from __future__ import annotations

import base64
import inspect
import io
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..cpus import usable_cpus
from ..data import eval_array_transform, load_rgb
from ..data.calibration import calibration_set
from ..data.geometry import file_displayed_size
from ..errors import UsageError
from ..runtime.quantize import check_precision
from ..tasks.classify import label_names, probabilities, topk_predictions
from ..tasks.embed import DEFAULT_LAYER, feature_runner, recorded_calibration, weights_digest
from ..tasks.registry import TASK_ALIASES, TASKS, run_task, task_module
from ..zoo import DEFAULT_MODEL, as_model, is_run_dir
from .batching import MicroBatcher
from .config import ServeConfig
from .uploads import decode_upload

THUMBNAIL_PX = 192


@dataclass
class ModelArg:
    """One `--model` argument, parsed: `[TASK:]NAME_OR_RUN[,key=value...]`, or a loaded module."""

    task: str
    name: Any                      # str, or an nn.Module for classification
    options: dict[str, Any] = field(default_factory=dict)


def _option_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_model_arg(arg: Any) -> ModelArg:
    if isinstance(arg, torch.nn.Module):
        return ModelArg("classify", arg)
    if callable(arg) and isinstance(getattr(arg, "task", None), str):  # an already loaded task Predictor
        if arg.task not in TASK_ALIASES or TASK_ALIASES[arg.task] == "classify":
            raise UsageError(f"cannot serve a predictor of task {arg.task!r}")
        return ModelArg(TASK_ALIASES[arg.task], arg)
    text = os.fspath(arg).strip()
    head, *opts = text.split(",")
    options = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"model option {opt!r} in {text!r} is not key=value")
        options[key.strip()] = _option_value(value.strip())
    prefix, sep, rest = head.partition(":")
    if sep and prefix.lower() in TASK_ALIASES:       # "faces:dlib", "detect:RUN" ("C:\\..." is no task)
        return ModelArg(TASK_ALIASES[prefix.lower()], rest or None, options)
    if head.lower() in TASK_ALIASES and not is_run_dir(head):  # "faces": that task's default model
        return ModelArg(TASK_ALIASES[head.lower()], None, options)
    if is_run_dir(head):
        return ModelArg(run_task(head), head, options)
    return ModelArg("classify", head, options)


def jsonable(value: Any) -> Any:
    """Predictor outputs as JSON: arrays become lists, image-like arrays (masks) PNG data URLs."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, Image.Image):
        return png_data_url(value)
    if isinstance(value, np.ndarray):
        if value.ndim >= 2 and value.dtype in (np.bool_, np.uint8) and value.size > 64:
            return png_data_url(Image.fromarray(value.astype(np.uint8) * (255 if value.dtype == np.bool_ else 1)))
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def png_data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _batcher(fn: Callable, cfg: ServeConfig, name: str, max_batch: int | None = None, workers: int = 1) -> MicroBatcher:
    return MicroBatcher(fn, max_batch=max_batch or cfg.max_batch, window_s=cfg.batch_window_ms / 1000,
                        max_queue=cfg.max_queue, name=name, workers=workers)


def public_name(arg: Any) -> str:
    """How a model or index is named to clients: a run folder or file by its own name (runs/a/flowers ->
    flowers), never the server's path; zoo and task names as given."""
    text = os.fspath(arg)
    if "/" not in text and os.sep not in text:
        return text
    return Path(text).resolve().name or text


class ServedClassifier:
    """A classification model: top-k labels, and the embeddings `/v1/embed` and `/v1/search` use."""

    task = "classify"
    keeps_image = False        # `prepare` returns the model's small input, not the decoded image
    source: str | None = None  # the --model argument, accepted as an alias of the name

    def __init__(self, name: str, module: torch.nn.Module, cfg: ServeConfig, *, digest: str,
                 embedding: dict[str, Any] | None = None, precision: str = "fp32", calibration: Any = None):
        _, self.spec = as_model(module)
        self.name = name
        self.cfg = cfg
        self.digest = digest
        self.labels = label_names(self.spec)
        self.transform = eval_array_transform(self.spec.preprocessing)  # PIL + NumPy: the extract reader's
        # The index's layer / pool / normalize when this is the model that made the index, so an
        # embedding from /v1/embed is comparable with the stored rows.
        self.embedding = {"layer": DEFAULT_LAYER, "pool": None, "normalize": False, **(embedding or {})}
        # On CPU, as extract does: ONNX Runtime sessions on one thread each, called by one batcher thread per
        # core, so every core runs a forward pass while the next requests are decoded.
        cores = cfg.threads or usable_cpus()
        self.precision = precision
        run = dict(backend=cfg.backend, device=cfg.device, threads=1, digest=digest, precision=precision,
                   calibration=calibration)
        logits, self.backend = feature_runner(module, "logits", **run)
        self.features, _ = feature_runner(module, self.embedding["layer"], self.embedding["pool"],
                                          bool(self.embedding["normalize"]), **run)
        workers = cores if self.backend == "onnx" else 1
        if self.backend != "onnx" and cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.embedding["dim"] = int(self.features(np.zeros((1, *self.spec.preprocessing.input_size), np.float32)).shape[1])
        self.classify_batcher = _batcher(lambda xs: list(probabilities(torch.from_numpy(logits(np.stack(xs))), self.spec)),
                                         cfg, f"{name}-classify", workers=workers)
        self.embed_batcher = _batcher(lambda xs: list(self.features(np.stack(xs))), cfg, f"{name}-embed",
                                      workers=workers)

    def prepare(self, data: bytes, filename: str) -> np.ndarray:
        """Decode (JPEG draft mode down to the resize size) and preprocess: runs in a request thread."""
        size = self.spec.preprocessing.resize_size
        img = decode_upload(data, filename, max_pixels=self.cfg.max_pixels, target_size=size,
                            max_resized_pixels=self.cfg.max_pixels)
        return self.transform(img)

    def top_k(self, probs: torch.Tensor, k: int) -> list[dict[str, Any]]:
        return [vars(p) for p in topk_predictions(probs[None], self.labels, k)[0]]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "task": "classification", "endpoints": ["/v1/classify", "/v1/embed"],
                "arch": self.spec.full_arch, "num_classes": len(self.labels), "classes": self.labels,
                "preprocessing": self.spec.to_dict()["preprocessing"], "weights_sha256": self.digest,
                "backend": self.backend, "precision": self.precision, "embedding": self.embedding,
                "batches": self.classify_batcher.batches, "images": self.classify_batcher.items,
                "waiting": self.classify_batcher.waiting}

    def close(self) -> None:
        self.classify_batcher.close()
        self.embed_batcher.close()


class ServedPredictor:
    """A task predictor (`Predictor(list[PIL.Image]) -> list[dict]`), batched across requests."""

    keeps_image = True         # the decoded image waits in the batcher's queue
    source: str | None = None

    def __init__(self, name: str, task: str, predictor: Any, cfg: ServeConfig):
        self.name = name
        self.task = task
        self.cfg = cfg
        self.predictor = predictor
        # A predictor that can answer for a reduced-size decode (detect) gets large JPEGs decoded at the
        # size its network sees, as on the command line, and its answers scaled to the upload's pixels.
        self.decode_size = getattr(predictor, "decode_size", None) if callable(getattr(predictor, "rescale", None)) \
            else None
        self.batcher = _batcher(self._predict, cfg, f"{name}-{task}",
                                max_batch=min(cfg.max_batch, getattr(predictor, "batch_size", None) or cfg.max_batch),
                                workers=getattr(predictor, "parallel", 1))  # calls a thread-safe predictor takes at once

    def _predict(self, items: list[tuple[Image.Image, tuple[int, int] | None]]) -> list[Any]:
        results = self.predictor([img for img, _ in items])
        return [jsonable(self.predictor.rescale(r, size) if size else r) for r, (_, size) in zip(results, items)]

    def prepare(self, data: bytes, filename: str) -> tuple[Image.Image, tuple[int, int] | None]:
        """(the decoded image, the upload's displayed size when decoded smaller): the predictor answers in
        the uploaded image's pixels."""
        img = decode_upload(data, filename, max_pixels=self.cfg.max_pixels, target_size=self.decode_size)
        size = file_displayed_size(io.BytesIO(data)) if self.decode_size else None
        return img, (size if size and size != img.size else None)

    def info(self) -> dict[str, Any]:
        classes = getattr(self.predictor, "classes", None) or getattr(self.predictor, "labels", None)
        return {"name": self.name, "task": getattr(self.predictor, "task", self.task),
                "endpoints": [f"/v1/{self.task}"], "classes": list(classes) if classes is not None else None,
                "batches": self.batcher.batches, "images": self.batcher.items,
                "waiting": self.batcher.waiting}

    def close(self) -> None:
        self.batcher.close()


class ServedIndex:
    """A `visionzoo index` folder: nearest stored images, and thumbnails of exactly those images."""

    def __init__(self, path: str | os.PathLike):
        from ..downstream import load_index

        self.path = str(path)
        self.name = public_name(path)
        self.index = load_index(path)
        self.manifest = self.index.manifest
        if not self.manifest or "model" not in self.manifest:
            raise UsageError(f"{path} was built from features without a manifest, so uploaded images cannot be "
                             "embedded the way its rows were; rebuild it from a `visionzoo extract` feature file")
        self._indexed = frozenset(self.index.paths)
        self.thumbnail = lru_cache(maxsize=1024)(self._thumbnail)
        self.classifier: ServedClassifier | None = None   # the model that embeds queries (`attach`)
        self.batcher: MicroBatcher | None = None

    def attach(self, classifier: ServedClassifier, cfg: ServeConfig) -> None:
        """Queries are embedded by `classifier` and searched in the same worker thread, batched."""
        self.classifier = classifier
        self.batcher = _batcher(self._embed_and_search, cfg, "index-search")

    @property
    def embedding(self) -> dict[str, Any]:
        m = self.manifest
        return {"layer": m.get("layer") or DEFAULT_LAYER, "pool": m.get("pool"), "normalize": bool(m.get("normalize"))}

    def _embed_and_search(self, items: list[tuple[np.ndarray, int]]) -> list[list[dict[str, Any]]]:
        """(preprocessed image, k) pairs -> each one's k nearest stored images, one FAISS call per batch."""
        vectors = self.classifier.features(np.stack([x for x, _ in items]))
        scores, rows = self.index.search_vectors(vectors, max(k for _, k in items))
        return [[{"path": self.index.paths[j], "score": round(float(s), 6)} for s, j in zip(srow[:k], rrow[:k]) if j >= 0]
                for (_, k), srow, rrow in zip(items, scores, rows)]

    def check_precision(self, precision: str, cal: Any) -> None:
        """Queries must be embedded at the precision (and int8 calibration) of the stored rows."""
        stored = self.manifest.get("precision", "fp32")
        if stored != precision:
            raise UsageError(f"the index {self.path} holds {stored} features and the server runs its model at "
                             f"{precision}; int8 and fp32 features are not comparable: serve with --precision {stored}")
        recorded = (self.manifest.get("calibration") or {}).get("sha256")
        if cal is not None and recorded != cal.sha256:
            raise UsageError(f"the index {self.path} holds int8 features calibrated on other photos "
                             f"({self.manifest['calibration']['source']}); serve with that --calibration")

    def is_indexed(self, path: str) -> bool:
        return path in self._indexed

    def _thumbnail(self, path: str) -> bytes:
        """JPEG thumbnail of an indexed image (callers check `is_indexed` first: no other file is read)."""
        img = load_rgb(path, target_size=THUMBNAIL_PX)
        img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
        return buf.getvalue()

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "count": len(self.index.paths), "kind": self.index.kind,
                "model": self.manifest.get("model"), "weights_sha256": self.manifest.get("weights_sha256"),
                **self.embedding, "served_by": self.classifier.name if self.classifier else None}

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


@dataclass
class Served:
    """Everything loaded, by task; the first model of a task answers when a request names none."""

    models: dict[str, list[Any]] = field(default_factory=lambda: {t: [] for t in TASKS})
    index: ServedIndex | None = None

    def get(self, task: str, name: str | None = None):
        """The loaded model of `task` called `name` (or the first); LookupError with a hint otherwise."""
        loaded = self.models[task]
        if not loaded:
            hint = {"classify": "--model NAME", "faces": "--model faces"}.get(task, f"--model {task}:NAME_OR_RUN")
            raise LookupError(f"no {task} model is loaded (start the server with {hint})")
        if name is None:
            return loaded[0]
        for m in loaded:
            if name in (m.name, getattr(m, "source", None)):
                return m
        raise LookupError(f"model {name!r} is not loaded for {task}; loaded: {', '.join(m.name for m in loaded)}")

    def all(self) -> list[Any]:
        return [m for task in TASKS for m in self.models[task]]

    def close(self) -> None:
        for m in self.all():
            m.close()
        if self.index is not None:
            self.index.close()


def _load_task_predictor(arg: ModelArg) -> Any:
    """`visionzoo.tasks.<task>.load_predictor(name, **options)`; a bare task word takes its default."""
    load = getattr(task_module(arg.task), "load_predictor", None)
    if load is None:
        raise UsageError(f"the {arg.task} task cannot be served: visionzoo.tasks.{arg.task} has no load_predictor")
    if arg.name is not None:
        return load(arg.name, **arg.options)
    first = next(iter(inspect.signature(load).parameters.values()), None)
    if first is not None and first.default is inspect.Parameter.empty:
        raise UsageError(f"name a {arg.task} model or run: --model {arg.task}:NAME_OR_RUN")
    return load(**arg.options)


def load_served(cfg: ServeConfig) -> Served:
    """Load every model and the index once; an index made by none of the models loads its own."""
    served = Served()
    index = ServedIndex(cfg.index) if cfg.index else None
    wanted = index.manifest.get("weights_sha256") if index else None
    cal = calibration_set(cfg.calibration) if check_precision(cfg.precision) == "int8" else None
    for raw in cfg.models or [DEFAULT_MODEL]:
        arg = parse_model_arg(raw)
        if arg.task == "classify":
            if arg.options:
                raise UsageError(f"classification models take no options ({arg.options})")
            module, spec = as_model(arg.name)
            name = spec.name if isinstance(arg.name, torch.nn.Module) else public_name(arg.name)
            digest = weights_digest(module)
            mine = index is not None and index.classifier is None and digest == wanted
            if mine:
                index.check_precision(cfg.precision, cal)
            clf = ServedClassifier(name, module, cfg, digest=digest, embedding=index.embedding if mine else None,
                                   precision=cfg.precision, calibration=cal)
            clf.source = raw if isinstance(raw, str) else None
            served.models["classify"].append(clf)
            if mine:
                index.attach(clf, cfg)
        else:
            loaded = arg.name is not None and not isinstance(arg.name, str)
            predictor = arg.name if loaded else _load_task_predictor(arg)
            name = (getattr(predictor, "name", None) or arg.task) if loaded else public_name(arg.name or arg.task)
            task = TASK_ALIASES.get(str(getattr(predictor, "task", arg.task)), arg.task)
            served.models[task].append(ServedPredictor(name, task, predictor, cfg))
            served.models[task][-1].source = raw if isinstance(raw, str) else None
    if index is not None and index.classifier is None:
        module, _ = as_model(index.manifest["model"])
        digest = weights_digest(module)
        if wanted and digest != wanted:
            raise UsageError(f"the weights of model {index.manifest['model']!r} differ from those that made the index "
                             f"{cfg.index} (weights_sha256 {wanted[:12]}...); its vectors would not be comparable")
        clf = ServedClassifier(str(index.manifest["model"]), module, cfg, digest=digest, embedding=index.embedding,
                               precision=index.manifest.get("precision", "fp32"),
                               calibration=recorded_calibration(index.manifest))
        index.attach(clf, cfg)
        served.models["classify"].append(clf)
    served.index = index
    for task, loaded in served.models.items():
        names = [m.name for m in loaded]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            served.close()
            raise UsageError(f"two {task} models are both named {twice[0]!r} (clients pick models by name); "
                             "rename one of the run folders")
    return served
