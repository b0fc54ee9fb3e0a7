"""`audit(DATA, OUT)`: one pass over a dataset, every check, one report.

Order: read DATA with the task's own reader; one small decode per image (unreadable and junk
files); features of every image from the extract runner (resumable); copies across splits and
labels; outliers; the task's label check (cross-validated classifier heads, cross-fitted
detectors, mask contents); class balance; then issues.csv, report.json, report.md, the montages
and, with `fix`, the cleaned split."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UsageError
from ..versions import package_versions
from . import features as feats
from .balance import balance
from .findings import KINDS, Finding, by_kind, ordered
from .inventory import Inventory, read
from .junk import BLANK_STD, image_stats, junk_findings
from .leakage import copy_findings
from .outliers import outlier_findings
from .report import verdict, write_all

Log = Callable[[str], None]
CHECKED = {"classify": ("label_error",), "detect": ("box_error", "rare_class"), "segment": ("mask_error", "rare_class")}


@dataclass
class AuditResult:
    out: str
    report: dict[str, Any]
    findings: list[Finding]

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        return [(f.path, f.detail) for f in self.findings if f.kind == "unreadable"]

    @property
    def exit_code(self) -> int:
        """0: the audit is done (findings are not failures); 1: some files could not be read."""
        return 1 if self.unreadable else 0


@dataclass
class Options:
    model: str | None = None
    folds: int | None = None
    seed: int = 0
    resume: bool = False
    workers: int | None = None
    device: str = "auto"
    progress: bool = False
    log: Log = field(default=lambda _msg: None)


@dataclass
class TaskCheck:
    """What a task's own check adds: findings, report sections, and what its pictures need."""

    findings: list[Finding] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    pictures: dict[str, Any] = field(default_factory=dict)
    mask_classes: list[list[str]] | None = None


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def _check_args(data: Path, out: Path, fix: Path | None, task: str, opt: Options) -> None:
    if data.is_dir() and _inside(out, data):
        raise UsageError(f"--out {out} is inside DATA {data}: the report's pictures would join the data; "
                         f"choose a folder outside it")
    if fix is not None and data.is_dir() and _inside(fix, data):
        raise UsageError(f"--fix {fix} is inside DATA {data}; choose a folder outside it")
    if not opt.resume and (out / feats.FEATURES_DIR).exists():
        raise UsageError(f"{out} already holds an audit; pass --resume to reuse its features, or choose another --out")
    if task == "segment" and opt.model is not None:
        raise UsageError("--model: a segmentation audit checks masks without a model; leave --model out")


def _feature_models(task: str, model: str | None) -> list[str]:
    """classify: --model names the backbone(s) whose features judge the labels ("auto": the bundled
    ones, each cross-validated); detect and segment: the default backbone (--model is the detector)."""
    if task != "classify" or model is None:
        return [feats.DEFAULT_MODEL]
    from ..tasks.classify.auto import candidate_models

    return candidate_models(model)


def _classify_check(inv: Inventory, items: dict, found: feats.Features, out: Path, opt: Options) -> TaskCheck:
    from .labels import label_findings

    check = label_findings(found.models, items, inv.classes, seed=opt.seed, folds=opt.folds)
    how = {}
    if "C" in check.summary:
        s = check.summary
        how["label_error"] = (f"Out-of-fold probabilities of a logistic-regression head on {s['model']} features "
                              f"(C={s['C']:g} chosen by {s['folds']}-fold CV log-loss, as `train --model auto` does; "
                              f"CV accuracy {s['cv_accuracy']:.3f}), ranked by cleanlab's find_label_issues.")
    return TaskCheck(check.findings, {"labels": check.summary}, how)


def _detect_check(inv: Inventory, items: dict, found: feats.Features, out: Path, opt: Options) -> TaskCheck:
    from .boxes import model_findings, rule_findings
    from .detector import FOLDS, crossfit, run_predictions

    runtime = {"device": opt.device, "workers": opt.workers, "progress": opt.progress}
    if opt.model is not None:
        preds = run_predictions(opt.model, inv.samples, **runtime)
        how = f"boxes of the trained detector {opt.model} (it may have seen these images)"
    else:
        k = opt.folds or FOLDS
        preds = crossfit(inv.samples, inv.classes, inv.root, out, folds=k, seed=opt.seed, resume=opt.resume,
                         log=opt.log, **runtime)
        how = f"{k} cross-fitted detectors, each predicting the images it did not train on"
    judged, summary = model_findings(inv.samples, preds, inv.classes, items)
    pictures = {"samples": {s.path: s for s in inv.samples}, "predictions": {p["path"]: p for p in preds}}
    return TaskCheck(rule_findings(inv.samples, inv.classes, items) + judged,
                     {"boxes": {**summary, "predictions": how}},
                     {"box_error": f"cleanlab's object-detection label quality on {how}."}, pictures)


def _segment_check(inv: Inventory, items: dict, found: feats.Features, out: Path, opt: Options) -> TaskCheck:
    from .masks import mask_check

    rare, mask_classes, share = mask_check(inv.samples, inv.classes, items)
    return TaskCheck(rare, {"pixel_share": share}, mask_classes=mask_classes)


TASK_CHECKS = {"classify": _classify_check, "detect": _detect_check, "segment": _segment_check}


def audit(data: str | os.PathLike, out: str | os.PathLike, *, task: str | None = None, model: str | None = None,
          annotations: str | None = None, classes: list[str] | None = None, folds: int | None = None,
          fix: str | os.PathLike | None = None, resume: bool = False, seed: int = 0, workers: int | None = None,
          device: str = "auto", progress: bool = False, log: Log | None = None) -> AuditResult:
    """Audit DATA (class folders, a path,label CSV, a VOC / COCO / YOLO set, or images beside masks)
    into the folder `out`. Findings are the result, not failures; unreadable files are findings too."""
    opt = Options(model, folds, seed, resume, workers, device, progress, log or (lambda _msg: None))
    start, seconds = time.perf_counter(), {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        seconds[name] = round(time.perf_counter() - t, 2)

    data_path, out = Path(data), Path(out)
    inv = read(data_path, task, annotations=annotations, classes=classes)
    _check_args(data_path, out, Path(fix) if fix else None, inv.task, opt)
    out.mkdir(parents=True, exist_ok=True)
    opt.log(f"audit: {inv.task}: {inv.detail}")
    items = {i.path: i for i in inv.items}
    with timed("files"):
        stats = image_stats([i.path for i in inv.items], workers)
        findings = list(inv.findings) + junk_findings(stats, items)
    with timed("features"):
        found = feats.extract([i.path for i in inv.items], out, _feature_models(inv.task, model), resume=resume,
                              workers=workers, device=device, progress=progress)
    opt.log(f"audit: features of {len(found.first.paths)} images ({found.computed} computed now, "
            f"{seconds['features']:.0f} s)")
    seen = {f.path for f in findings if f.kind == "unreadable"}
    findings += [Finding("unreadable", p, 1.0, why, split=items[p].split) for p, why in found.failures.items()
                 if p not in seen]
    with timed("copies"):
        flat = {s.path for s in stats if s.error is None and s.spread < BLANK_STD}
        findings += copy_findings(found.first.paths, found.first.matrix, items, flat)
    with timed("outliers"):
        findings += outlier_findings(found.first.paths, found.first.matrix, items)
    with timed(f"{inv.task} check"):
        check = TASK_CHECKS[inv.task](inv, items, found, out, opt)
    used = {"models": [f.model for f in found.models], "images": len(found.first.paths), "computed": found.computed,
            "folder": str(out / feats.FEATURES_DIR)}
    report = _report(inv, findings + check.findings, check, used, opt)
    return _write(inv, report, findings + check.findings, check, out, fix, seconds, start, opt.log)


def _report(inv: Inventory, findings: list[Finding], check: TaskCheck, used: dict, opt: Options) -> dict[str, Any]:
    grouped = by_kind(findings)
    counts = {k: len(grouped.get(k, [])) for k in KINDS}
    clean, rate, sentence = verdict(counts, len(inv.items))
    return {
        "data": inv.root, "task": inv.task, "describe": inv.detail, "images": len(inv.items),
        "splits": {s: sum(i.split == s for i in inv.items) for s in inv.splits}, "classes": inv.classes,
        "findings": counts, "per_1000": round(rate, 2), "clean": clean, "verdict": sentence,
        "checked": sorted({"unreadable", "leakage", "duplicate", "look_alike", "outlier", "junk", *CHECKED[inv.task]}),
        "balance": balance(inv, check.mask_classes), **check.report, "how": check.how, "features": used,
        "skipped": inv.skipped, "settings": {"model": opt.model, "folds": opt.folds, "seed": opt.seed},
        "versions": package_versions(),
    }


def _write(inv: Inventory, report: dict[str, Any], findings: list[Finding], check: TaskCheck, out: Path, fix: Any,
           seconds: dict[str, float], start: float, log: Log) -> AuditResult:
    from .montages import draw_montages

    findings = ordered(findings)
    grouped = by_kind(findings)
    t = time.perf_counter()
    report["montages"] = draw_montages(grouped, out / "montages", **check.pictures)
    seconds["pictures"] = round(time.perf_counter() - t, 2)
    if fix is not None:
        from .fix import write_fix

        report["fix"] = {"folder": str(fix), **write_fix(inv, findings, fix)}
    seconds["total"] = round(time.perf_counter() - start, 2)
    report["seconds"] = seconds
    write_all(report, findings, grouped, out)
    log(f"audit: {report['verdict']}")
    return AuditResult(str(out), report, findings)
