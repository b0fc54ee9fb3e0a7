"""The run folder of a classifier: dataset figures, the held-out split, and the report of the saved run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from ...errors import UsageError
from ...training.engine import Fit
from ...training.run import finish_run
from .config import TrainConfig
from .data import LabeledDataset, Split

Log = Callable[[str], None]
CURVE_KEYS = ("loss", "acc")


def held_out(ds: LabeledDataset, train: Split, val: Split | None) -> tuple[str, Split]:
    """The split the saved run is reported on: test, else val, else (nothing held out) train."""
    if ds.test:
        return "test", ds.test
    if val:
        return "val", val
    return "train", train


def dataset_info(ds: LabeledDataset, train: Split, val: Split | None, failures: dict[str, str]) -> dict[str, Any]:
    k = len(ds.labels)
    info = {"source": ds.source, "layout": ds.layout, "skipped_non_images": len(ds.skipped),
            "train": dict(zip(ds.labels, train.counts(k)))}
    if val:
        info["val"] = dict(zip(ds.labels, val.counts(k)))
    if ds.test:
        info["test"] = dict(zip(ds.labels, ds.test.counts(k)))
    info["failures"] = [{"path": p, "error": e} for p, e in sorted(failures.items())]
    return info


def finish(module: nn.Module, cfg: TrainConfig, ds: LabeledDataset, train: Split, val: Split | None,
           report_on: tuple[str, Split], run_dir: Path, fit: Fit | None, failures: dict[str, str], log: Log,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run folder of a classifier, reported on `report_on` as reloaded from disk."""
    from .evaluation import evaluate_split, summary_line, write_report
    from .operating import operating_point, unbalanced

    for path, reason in sorted(failures.items()):
        log(f"skipped {path}: {reason}")
    name, split = report_on
    extra = extra or {}
    if val and unbalanced(train.counts(len(ds.labels))):
        y, probs, _, _ = evaluate_split(module, val, ds.labels, batch_size=cfg.batch_size, workers=cfg.workers,
                                        device=cfg.device)
        point = operating_point(module, ds.labels, train.counts(len(ds.labels)), y, probs)
        if point is not None:
            log(f"operating point: {point['note']} (val macro F1 {point['macro_f1']:.4f}; "
                f"{point['macro_f1_at_half']:.4f} at 0.5)")
            extra = {**extra, "operating_point": point}

    def evaluate(saved_dir: Path):
        from ...zoo import load_model

        y_true, probs, paths, failed = evaluate_split(load_model(saved_dir), split, ds.labels,
                                                      batch_size=cfg.batch_size, workers=cfg.workers,
                                                      device=cfg.device)
        if not paths:
            raise UsageError(f"none of the {name} images could be read")
        report = write_report(saved_dir, y_true, probs, paths, ds.labels, failed,
                              title=f"{Path(saved_dir).name}: {cfg.strategy} {cfg.model} on {name} images",
                              extra={"run": str(saved_dir), "split": name, **extra})
        log(f"{name}: {summary_line(report)}")
        keys = ("accuracy", "macro_f1", "log_loss", "roc_auc", "pr_auc", "n_images")
        return name, report, {k: report[k] for k in keys if k in report}

    spec = module.zoo_spec
    result = finish_run(run_dir, module, task="classify", classes=ds.labels, image_size=spec.preprocessing.image_size,
                      preprocessing=spec.to_dict()["preprocessing"], config=cfg,
                      dataset=dataset_info(ds, train, val, failures), fit=fit, evaluate=evaluate,
                      curve_keys=CURVE_KEYS, log=log,
                      extra={"architecture": spec.full_arch, "labels": ds.labels, **extra})
    result["skipped"] = sorted(failures.items())
    return result
