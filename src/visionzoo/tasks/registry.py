"""Which task a run folder or `TASK:NAME` argument belongs to, and the package that runs it.

Every task package (detect, segment, faces, caption) exposes the same contract:
`load_predictor(run_or_name, **options)`, `predict(run_or_name, inputs, **options)` and, where
it can, `export_onnx(run_dir, out)`. Commands that take "any run" (`predict`, `export`, `serve`)
look the task up here instead of each keeping its own table.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

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
