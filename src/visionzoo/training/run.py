"""One run folder for every task: start or resume it, train on every rank, finish it the same way.

A task describes its training as a `Recipe` (data, model, hooks, phases, how to save and
evaluate); `train_run` does what is the same for all: refuse to overwrite a run, `--resume` with
the run's original arguments, spawn data-parallel ranks, run the Trainer and hand Ctrl-C on. Every
run folder then comes out of `finish_run` in one format: `model.safetensors`, `config.json`
(format, task, status, classes, image_size, preprocessing, training arguments, dataset, metrics),
`history.csv`, `curves.png` and the task's report of the saved run on its held-out images.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from ..atomic import write_json
from ..cpus import default_threads
from ..errors import UsageError
from ..versions import package_versions
from ..zoo.rundir import CONFIG_FILE, is_run_dir, read_config, save_run_model
from . import callbacks as cb
from . import distributed
from .engine import Fit, Phase, TaskHooks, Trainer

ARGS_FILE = "train_args.json"
# How a run computes, not what it learns: free to change on resume. (Threads change float rounding
# only: a run is repeatable for a given --threads, and its default depends on the cores, not the load.)
RUNTIME = ("device", "workers", "num_workers", "threads")
Log = Callable[[str], None]


def quiet(_msg: str) -> None:
    return None


@dataclass
class RunConfig:
    """Arguments every task's training takes (each task's config adds its own)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    val_split: float = 0.2
    patience: int = 10
    seed: int = 0
    workers: int | None = None         # decoding processes [default: cpus.default_workers]
    num_workers: int = 1               # data-parallel ranks (processes), each on a slice of every batch
    device: str = "auto"
    threads: int | None = None         # PyTorch intra-op threads per process [default: cpus.default_threads]
    time_budget: float | None = None   # seconds the epochs may take, checked every step [default: no limit]

    def check(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1:
            raise UsageError("--epochs and --batch-size must be at least 1")
        check_limits(self)
        if self.num_workers < 1:
            raise UsageError("--processes must be at least 1")
        if not 0 <= self.val_split < 1:
            raise UsageError(f"--val-split must be in [0, 1), got {self.val_split}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


def check_limits(config: Any) -> None:
    """The options every trainer shares that no task defaults: --threads and --time-budget."""
    if config.threads is not None and config.threads < 1:
        raise UsageError("--threads must be at least 1")
    if config.time_budget is not None and config.time_budget <= 0:
        raise UsageError("--time-budget must be positive (leave it out for no limit)")


class Evaluated(NamedTuple):
    """What a task's evaluation of its saved run gives `finish_run`."""

    split: str | None                          # the held-out images' name ("val", "test"), None: nothing held out
    report: dict[str, Any]
    metrics: dict[str, Any]                    # recorded as config.json metrics[split]
    config: dict[str, Any] = {}                # chosen on those images and recorded too (the operating point)


class Recipe:
    """A task's training. Built cheaply from its config on every rank; `setup` (after the ranks
    joined) reads the data and builds `module`, `hooks` and `phases`; `finish` saves and evaluates."""

    task = ""
    parallel = True            # whether data-parallel ranks help (not for heads fitted on cached features)
    why_not_parallel = ""
    sync_bn = True
    find_unused = False
    module: nn.Module
    hooks: TaskHooks
    phases: list[Phase]

    def __init__(self, config: RunConfig, inputs: dict[str, str | None]):
        self.config, self.inputs = config, inputs

    def setup(self, run_dir: Path, log: Log, progress: bool) -> None:
        raise NotImplementedError

    def run(self, run_dir: Path, checkpoint: dict | None, log: Log, progress: bool) -> dict[str, Any] | None:
        """Train and (on rank 0) finish the run; returns what `finish` returns (None on other ranks)."""
        trainer = Trainer(self.module, self.hooks, self.phases, run_dir=run_dir, patience=self.config.patience,
                          device=self.config.device, seed=self.config.seed, log=log, progress=progress,
                          sync_bn=self.sync_bn, find_unused=self.find_unused,
                          time_budget=self.config.time_budget)
        fit = trainer.fit(checkpoint)
        if not distributed.is_main():
            return None
        result = self.finish(run_dir, fit, log)
        if fit.interrupted:
            raise KeyboardInterrupt
        return result

    def finish(self, run_dir: Path, fit: Fit, log: Log) -> dict[str, Any]:
        raise NotImplementedError


def _same_inputs(stored: dict[str, str | None], given: dict[str, str | None]) -> str | None:
    for key, value in given.items():
        old = stored.get(key)
        if (old is None) != (value is None) or (value is not None and Path(old).resolve() != Path(value).resolve()):
            return f"{key} {old}, not {value}"
    return None


def _resumed(run_dir: Path, config: RunConfig, inputs: dict[str, str | None]) -> tuple[RunConfig, dict | None]:
    """The run's stored arguments (with this call's runtime settings) and its last epoch's checkpoint."""
    args_file = run_dir / ARGS_FILE
    if not args_file.is_file():
        raise UsageError(f"nothing to resume in {run_dir} (no {ARGS_FILE}); start without --resume")
    stored = json.loads(args_file.read_text("utf-8"))
    differs = _same_inputs(stored["inputs"], inputs)
    if differs:
        raise UsageError(f"{run_dir} was trained on {differs}")
    resumed = type(config).from_dict({**stored["config"], **{k: getattr(config, k) for k in RUNTIME}})
    return resumed, cb.read_checkpoint(run_dir)


def train_run(entry: Callable[..., Any], recipe: Recipe, out: str | os.PathLike, *, resume: bool, progress: bool,
              log: Log | None, call: dict[str, Any]) -> dict[str, Any]:
    """Train `recipe` into the run folder `out`. `entry` is the task's public train function and
    `call` the keywords it was called with: data-parallel ranks start by calling it again."""
    log = log or quiet
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} is a file; a run is a folder (give a new folder name)")
    config, checkpoint = recipe.config, None
    if resume and not (run_dir / cb.CHECKPOINT_FILE).exists() and is_run_dir(run_dir) \
            and read_config(run_dir).get("status") == "complete":
        log(f"{run_dir} is already complete; nothing to resume")
        report = run_dir / "report.json"
        return {"run_dir": str(run_dir), "config": read_config(run_dir),
                "report": json.loads(report.read_text("utf-8")) if report.is_file() else {}}
    if resume:
        config, checkpoint = _resumed(run_dir, config, recipe.inputs)
        recipe.config = config
    elif is_run_dir(run_dir) or (run_dir / ARGS_FILE).exists():
        raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    config.check()
    if config.num_workers > 1 and recipe.parallel and not distributed.launched():
        return distributed.launch(entry, config.num_workers, resume=resume, progress=progress, log=log, **call)
    world = distributed.join(config.num_workers, config.device, log, parallel=recipe.parallel,
                             why_not=recipe.why_not_parallel)
    if world is None:
        return {"run_dir": str(run_dir)}
    config.num_workers = world
    if config.batch_size % world:
        raise UsageError(f"--batch-size ({config.batch_size}) must split evenly over --processes ({world}): it is "
                         f"the global batch, shared out between the processes")
    if not distributed.is_main():
        log, progress = quiet, False
    config.threads = config.threads or default_threads(distributed.cores_per_rank())
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        recipe.setup(run_dir, log, progress)  # reads the data: a wrong dataset leaves no half-started run behind
        if distributed.is_main() and not resume:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / ARGS_FILE, {"inputs": recipe.inputs, "config": config.to_dict()})
        return recipe.run(run_dir, checkpoint, log, progress) or {"run_dir": str(run_dir)}
    finally:
        torch.set_num_threads(before)


def finish_run(run_dir: Path, module: nn.Module, *, task: str, classes: list[str], image_size: int | None,
               preprocessing: dict[str, Any], config: RunConfig, dataset: dict[str, Any], fit: Fit | None,
               evaluate: Callable[[Path], tuple],
               curve_keys: tuple[str, ...] = ("loss",), extra: dict[str, Any] | None = None,
               log: Log = quiet) -> dict[str, Any]:
    """Save `module` (with its `zoo_spec`) and the run's config, then evaluate the run as reloaded
    from disk (`evaluate(run_dir) -> Evaluated`: split name, report, metrics and choices), so the report
    is what the saved run predicts. An interrupted run stays resumable: its checkpoint is kept."""
    from ..viz.train_plots import learning_curves

    fit = fit or Fit()
    history = fit.history
    best_logs = next((r for r in history if r["epoch"] == fit.best_epoch), history[-1] if history else {})
    record = {
        "task": task,
        "status": "interrupted" if fit.interrupted else "complete",
        "classes": list(classes),
        "image_size": image_size,
        "preprocessing": preprocessing,
        **(extra or {}),
        "training": {**config.to_dict(), "seconds": round(fit.seconds, 1), "stopped_by": fit.stopped_by,
                     "epochs_planned": fit.epochs_planned, "epochs_done": len(history), "budget_cut": fit.cut},
        "dataset": dataset,
        "epochs_run": len(history),
        "best_epoch": fit.best_epoch,
        "metrics": {"best_epoch": {k: v for k, v in best_logs.items() if isinstance(v, float)}},
        "versions": package_versions(),
    }
    save_run_model(module, run_dir, record)
    if history:
        learning_curves(history, run_dir / "curves.png", keys=curve_keys)
    split, report, metrics, chosen = Evaluated(*evaluate(run_dir))
    saved = read_config(run_dir)
    if split is not None:
        saved["metrics"][split] = metrics
    saved.update(chosen)
    write_json(run_dir / CONFIG_FILE, saved)
    if history:
        _report_training(run_dir, fit)
    (run_dir / cb.BEST_FILE).unlink(missing_ok=True)
    if not fit.interrupted:
        for leftover in (cb.CHECKPOINT_FILE, ARGS_FILE):
            (run_dir / leftover).unlink(missing_ok=True)
    log(f"saved run: {run_dir}" + (f" (training {fit.seconds:.0f} s, {fit.summary()})" if history else ""))
    return {"run_dir": str(run_dir), "report": report, "config": saved}


def _report_training(run_dir: Path, fit: Fit) -> None:
    """Say in the run's report (report.json "training", report.md) why training ended and what an
    unlimited run would have done, beside the figures it reached."""
    training = {"stopped_by": fit.stopped_by, "epochs_planned": fit.epochs_planned,
                "epochs_done": len(fit.history), "best_epoch": fit.best_epoch, "budget_cut": fit.cut,
                "summary": fit.summary()}
    report = run_dir / "report.json"
    if report.is_file():
        write_json(report, {**json.loads(report.read_text("utf-8")), "training": training})
    markdown = run_dir / "report.md"
    if markdown.is_file():
        with markdown.open("a", encoding="utf-8") as f:
            f.write(f"\n## Training\n\nTraining {fit.summary()}.\n")
