"""`audit(DATA, OUT)`: one pass over a dataset, every check, one report.

Order: read DATA with the task's own reader; one small decode per image (unreadable and junk
files); features of every image from the extract runner (resumable); copies across splits and
labels; outliers; the task's label check (cross-validated classifier heads, cross-fitted
detectors, mask contents); class balance; then issues.csv, report.json, report.md, the montages
and, with `fix`, the cleaned split."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from ..versions import package_versions
from . import features as feats
from .balance import balance
from .findings import KINDS, Finding, by_kind, ordered
from .inventory import Inventory, read
from .junk import image_stats, junk_findings
from .leakage import copy_findings
from .outliers import outlier_findings
from .report import verdict, write_all

Log = Callable[[str], None]


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


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def _check_args(data: Path, out: Path, fix: Path | None, task: str, model: str | None, resume: bool) -> None:
    if data.is_dir() and _inside(out, data):
        raise UsageError(f"--out {out} is inside DATA {data}: the report's pictures would join the data; "
                         f"choose a folder outside it")
    if fix is not None and data.is_dir() and _inside(fix, data):
        raise UsageError(f"--fix {fix} is inside DATA {data}; choose a folder outside it")
    if not resume and (out / feats.FEATURES_DIR).exists():
        raise UsageError(f"{out} already holds an audit; pass --resume to reuse its features, or choose another --out")
    if task == "segment" and model is not None:
        raise UsageError("--model: a segmentation audit checks masks without a model; leave --model out")


def _feature_models(task: str, model: str | None) -> list[str]:
    """classify: --model names the backbone(s) whose features judge the labels ("auto": the bundled
    ones, each cross-validated); detect and segment: the default backbone (--model is the detector)."""
    if task != "classify" or model is None:
        return [feats.DEFAULT_MODEL]
    from ..tasks.classify.auto import candidate_models

    return candidate_models(model)


def _detect_check(inv: Inventory, items: dict, out: Path, model: str | None, folds: int | None, options: dict,
                  log: Log) -> tuple[list[Finding], dict[str, Any], dict[str, dict]]:
    from .boxes import model_findings, rule_findings
    from .detector import FOLDS, crossfit, run_predictions

    found = rule_findings(inv.samples, inv.classes, items)
    if model is not None:
        preds = run_predictions(model, inv.samples, device=options["device"], workers=options["workers"],
                                progress=options["progress"])
        how = f"boxes of the trained detector {model} (it may have seen these images)"
    else:
        k = folds or FOLDS
        preds = crossfit(inv.samples, inv.classes, inv.root, out, folds=k, log=log, **options)
        how = f"{k} cross-fitted detectors, each predicting the images it did not train on"
    judged, summary = model_findings(inv.samples, preds, inv.classes, items)
    return found + judged, {**summary, "predictions": how}, {p["path"]: p for p in preds}


def audit(data: str | os.PathLike, out: str | os.PathLike, *, task: str | None = None, model: str | None = None,
          annotations: str | None = None, classes: list[str] | None = None, folds: int | None = None,
          fix: str | os.PathLike | None = None, resume: bool = False, seed: int = 0, workers: int | None = None,
          device: str = "auto", progress: bool = False, log: Log | None = None) -> AuditResult:
    """Audit DATA (class folders, a path,label CSV, a VOC / COCO / YOLO set, or images beside masks)
    into the folder `out`. Findings are the result, not failures; unreadable files are findings too."""
    log = log or (lambda _msg: None)
    start = time.perf_counter()
    data_path, out = Path(data), Path(out)
    inv = read(data_path, task, annotations=annotations, classes=classes)
    _check_args(data_path, out, Path(fix) if fix else None, inv.task, model, resume)
    out.mkdir(parents=True, exist_ok=True)
    log(f"audit: {inv.task}: {inv.detail}")
    items = {i.path: i for i in inv.items}
    split = {p: i.split for p, i in items.items()}
    paths = [i.path for i in inv.items]
    seconds: dict[str, float] = {}

    def lap(name: str, t: float) -> None:
        seconds[name] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    findings = list(inv.findings) + junk_findings(image_stats(paths, workers), items)
    lap("files", t)
    t = time.perf_counter()
    found = feats.extract(paths, out, _feature_models(inv.task, model), resume=resume, workers=workers, device=device,
                          progress=progress)
    lap("features", t)
    log(f"audit: features of {len(found.first.paths)} images ({found.computed} computed now, "
        f"{seconds['features']:.0f} s)")
    seen = {f.path for f in findings if f.kind == "unreadable"}
    findings += [Finding("unreadable", p, 1.0, why, split=split.get(p, "")) for p, why in found.failures.items()
                 if p not in seen]
    t = time.perf_counter()
    first = found.first
    findings += copy_findings(first.paths, first.matrix, items)
    lap("copies", t)
    t = time.perf_counter()
    findings += outlier_findings(first.paths, first.matrix, items)
    lap("outliers", t)
    how: dict[str, str] = {}
    extra: dict[str, Any] = {}
    pictures: dict[str, Any] = {}
    mask_classes = None
    t = time.perf_counter()
    if inv.task == "classify":
        from .labels import label_findings

        check = label_findings(found.models, items, inv.classes, seed=seed, folds=folds)
        findings += check.findings
        extra["labels"] = check.summary
        if "C" in check.summary:
            s = check.summary
            how["label_error"] = (f"Out-of-fold probabilities of a logistic-regression head on {s['model']} features "
                                  f"(C={s['C']:g} chosen by {s['folds']}-fold x {s['repeats']} CV log-loss, as "
                                  f"`train --model auto` does; CV accuracy {s['cv_accuracy']:.3f}), ranked by "
                                  f"cleanlab's find_label_issues.")
    elif inv.task == "detect":
        boxes, extra["boxes"], predictions = _detect_check(
            inv, items, out, model, folds, {"seed": seed, "resume": resume, "device": device, "workers": workers,
                                            "progress": progress}, log)
        findings += boxes
        how["box_error"] = f"cleanlab's object-detection label quality on {extra['boxes']['predictions']}."
        pictures = {"samples": {s.path: s for s in inv.samples}, "predictions": predictions, "classes": inv.classes}
    else:
        from .masks import mask_check

        rare, mask_classes, extra["pixel_share"] = mask_check(inv.samples, inv.classes, items)
        findings += rare
    lap(f"{inv.task} check", t)
    used = {"models": [f.model for f in found.models], "images": len(first.paths), "computed": found.computed,
            "folder": str(out / feats.FEATURES_DIR)}
    return _finish(inv, findings, out, fix, mask_classes, extra, how, pictures, seconds, start, model, folds, seed,
                   used, log)


def _finish(inv: Inventory, findings: list[Finding], out: Path, fix: Any, mask_classes: Any, extra: dict,
            how: dict, pictures: dict, seconds: dict, start: float, model: Any, folds: Any, seed: int,
            features: dict, log: Log) -> AuditResult:
    from .montages import draw_montages

    findings = ordered(findings)
    grouped = by_kind(findings)
    counts = {k: len(grouped.get(k, [])) for k in KINDS}
    clean, rate, sentence = verdict(counts, len(inv.items))
    checked = {"unreadable", "leakage", "duplicate", "outlier", "junk",
               *{"classify": ("label_error",), "detect": ("box_error", "rare_class"),
                 "segment": ("mask_error", "rare_class")}[inv.task]}
    t = time.perf_counter()
    montages = draw_montages(grouped, out / "montages", **pictures)
    seconds["pictures"] = round(time.perf_counter() - t, 2)
    report: dict[str, Any] = {
        "data": inv.root, "task": inv.task, "describe": inv.detail, "images": len(inv.items),
        "splits": {s: sum(i.split == s for i in inv.items) for s in inv.splits}, "classes": inv.classes,
        "findings": counts, "per_1000": round(rate, 2), "clean": clean, "verdict": sentence,
        "checked": sorted(checked), "balance": balance(inv, mask_classes), **extra, "how": how,
        "features": features, "skipped": inv.skipped, "montages": montages,
        "settings": {"model": model, "folds": folds, "seed": seed},
        "versions": package_versions(),
    }
    if fix is not None:
        from .fix import write_fix

        report["fix"] = {"folder": str(fix), **write_fix(inv, findings, fix)}
    seconds["total"] = round(time.perf_counter() - start, 2)
    report["seconds"] = seconds
    write_all(report, findings, grouped, out)
    log(f"audit: {sentence}")
    return AuditResult(str(out), report, findings)
