"""Which task a run folder or `TASK:NAME` argument belongs to, and the package that runs it.

Every task package (classify, detect, segment, faces, caption) exposes the same contract:
`predict(run_or_name, inputs, **options) -> [{"path", ..., "error"}]`, `load_predictor(run_or_name,
**options)` for serving and, where it can, `export_onnx(run_or_name, out)`. Commands that take
"any run" (`predict`, `export`, `serve`) look the task up here instead of each keeping its own table.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from ..errors import UsageError
from ..zoo.rundir import is_run_dir, read_config

# Task package name for each spelling of a task found in configs and arguments.
TASK_ALIASES = {
    "classify": "classify", "classification": "classify",
    "detect": "detect", "detection": "detect", "instance_segmentation": "detect",
    "segment": "segment", "segmentation": "segment", "semantic_segmentation": "segment",
    "faces": "faces", "face": "faces",
    "caption": "caption", "captioning": "caption",
}
TASKS = ("classify", "detect", "segment", "faces", "caption")


def run_task(path: str | os.PathLike) -> str:
    """The task of a saved run folder ("classify" for runs written before tasks were recorded)."""
    task = read_config(path).get("task") or "classify"
    if task not in TASK_ALIASES:
        raise UsageError(f"{path}: unknown task {task!r} in config.json (known: {', '.join(TASKS)})")
    return TASK_ALIASES[task]


def task_of(model: str | os.PathLike) -> str:
    """The task of a run folder; "classify" for anything else (zoo names are classifiers)."""
    return run_task(model) if is_run_dir(model) else "classify"


def task_module(task: str) -> ModuleType:
    """`visionzoo.tasks.<task>`, with a clear message when its optional dependencies are missing."""
    try:
        return importlib.import_module(f"visionzoo.tasks.{TASK_ALIASES.get(task, task)}")
    except ImportError as exc:
        raise UsageError(f"the {task} task is not available here ({exc}); "
                         f"pip install 'visionzoo[all]' installs every task's dependencies") from None


def predict(run_or_name: str | os.PathLike, inputs: str | os.PathLike | Sequence[str | os.PathLike],
            **options: Any) -> list[dict[str, Any]]:
    """Any run (or zoo classifier) on files, folders or globs: one JSON-able dict per file with "path"
    and "error", shaped as that task's own `predict` command writes it."""
    return task_module(task_of(run_or_name)).predict(run_or_name, inputs, **options)


EXPORT_FORMATS = ("onnx",)


def export(model: Any, out: str | os.PathLike, *, format: str = "onnx", overwrite: bool = False,  # noqa: A002
           **options: Any) -> Path:
    """`visionzoo export`: a model, or a run folder of any task, as a self-describing ONNX file checked
    against PyTorch. `options` (layer, pool, normalize) choose what a classifier outputs."""
    if format not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    from ..outputs import check_file

    out = Path(out)
    check_file(out, "--out", (f".{format}",), exists_ok=overwrite)
    task = task_of(model) if isinstance(model, (str, os.PathLike)) else "classify"
    exporter = getattr(task_module(task), "export_onnx", None)
    if exporter is None:
        raise UsageError(f"{model} is a {task} run; ONNX export is not available for {task} models")
    return Path(exporter(model, out, **options) if task == "classify" else exporter(model, out))
