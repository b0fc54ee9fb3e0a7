"""Resolve any model name to a ModelSpec, and build the model with the right weights.

Names accepted, in order: a saved run folder; a familiar name (`resnet_v1_50`); a timm name
with or without tag (`resnet50.a1_in1k`); a torchvision classifier (`torchvision:resnet50`,
or a bare name timm lacks, e.g. `alexnet`).
"""
from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotFoundError, UsageError, WeightsUnavailableError
from . import rundir
from .aliases import DEFAULT_MODEL, FAMILIAR, NO_WEIGHTS, alias_index
from .labels import labels_for
from .spec import ModelSpec, Preprocessing
from .torchvision_adapter import TorchvisionClassifier
from .tta import with_tta
from .weights import (
    align_state_dict,
    bundled_weights_path,
    ensure_downloadable,
    read_state_dict,
    torch_hub_file,
    weights_digest,
)

TV_PREFIX = "torchvision:"


# --------------------------------------------------------------------------- resolving names
def _timm():
    import timm

    return timm


def _tv_classifiers() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


def _tv_weights(arch: str):
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(arch).DEFAULT
    except Exception:
        return None


def _timm_spec(name: str, full: str, top1: float | None, note: str | None) -> ModelSpec | None:
    timm = _timm()
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(full)
    if not timm.is_model(arch):
        return None
    if tag and full not in timm.list_pretrained(full):
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        raise ModelNotFoundError(f"'{arch}' has no weights tagged '{tag}'; tags: {', '.join(tags) or 'none'}")
    cfg = get_pretrained_cfg(full, allow_unregistered=True) or get_pretrained_cfg(arch)
    pre = Preprocessing(
        input_size=tuple(cfg.input_size),
        interpolation=cfg.interpolation or "bicubic",
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        crop_pct=float(cfg.crop_pct or 0.875),
        crop_mode=cfg.crop_mode or "center",
    )
    offset = int(cfg.label_offset or 0)
    return ModelSpec(
        name=name, arch=arch, library="timm", tag=cfg.tag, num_classes=cfg.num_classes,
        label_offset=offset, labels=labels_for(cfg.num_classes, offset, cfg),
        preprocessing=pre, top1=top1, note=note,
    )


def _tv_spec(name: str, arch: str, top1: float | None, note: str | None) -> ModelSpec | None:
    if arch not in _tv_classifiers():
        return None
    weights = _tv_weights(arch)
    pre = Preprocessing()
    labels = None
    if weights is not None:
        t = weights.transforms()
        resize, crop = t.resize_size[0], t.crop_size[0]
        pre = Preprocessing(
            input_size=(3, crop, crop), interpolation=t.interpolation.value,
            mean=tuple(t.mean), std=tuple(t.std), crop_pct=crop / resize,
        )
        labels = list(weights.meta["categories"])
        if top1 is None:
            top1 = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return ModelSpec(
        name=name, arch=TV_PREFIX + arch, library="torchvision",
        tag=weights.name if weights is not None else None, labels=labels,
        preprocessing=pre, top1=top1, note=note,
    )


def resolve(name: str = DEFAULT_MODEL) -> ModelSpec:
    """Name -> ModelSpec (architecture, weights tag, preprocessing, labels), without building."""
    if rundir.is_run_dir(name):
        return rundir.read_spec(name)
    key = name.strip()
    if key.lower() in NO_WEIGHTS:
        raise WeightsUnavailableError(
            f"'{name}' has no pretrained ImageNet weights anywhere (none were ever published in a "
            f"loadable form); the closest with weights: {NO_WEIGHTS[key.lower()]}."
        )
    canonical = alias_index().get(key.lower())
    target, top1, note = key, None, None
    if canonical:
        alias = FAMILIAR[canonical]
        target, top1, note = alias.target, alias.top1, alias.note
    else:  # a timm name of a familiar entry's weights inherits its published top-1
        top1 = next((a.top1 for a in FAMILIAR.values() if a.target == key), None)
    spec = None
    if target.startswith(TV_PREFIX):
        spec = _tv_spec(name, target[len(TV_PREFIX):], top1, note)
    else:
        spec = _timm_spec(name, target, top1, note)
        if spec is None:
            spec = _tv_spec(name, target, top1, note)
    if spec is None:
        raise ModelNotFoundError(_not_found_message(name))
    return spec


def _not_found_message(name: str) -> str:
    pool = list(alias_index()) + _timm().list_models() + _tv_classifiers()
    close = difflib.get_close_matches(name.lower(), pool, n=5, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    return f"unknown model '{name}'.{hint} List models with `visionzoo models [PATTERN]`."


# --------------------------------------------------------------------------- building
def _build_arch(spec: ModelSpec, num_classes: int) -> nn.Module:
    if spec.library == "torchvision":
        import torchvision.models as tvm

        arch = spec.arch[len(TV_PREFIX):]
        kwargs = {}
        if arch in ("googlenet", "inception_v3"):  # match the published weights' configuration
            kwargs = {"aux_logits": False, "transform_input": True, "init_weights": False}
        return tvm.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    return _timm().create_model(spec.arch, pretrained=False, num_classes=num_classes)


def _load_tensors(model: nn.Module, sd: dict[str, torch.Tensor]) -> None:
    target = model.state_dict()
    extra = [k for k in sd if k not in target]
    if extra and all("aux" in k for k in extra):  # torchvision inception-style auxiliary heads
        sd = {k: v for k, v in sd.items() if k in target}
    model.load_state_dict(align_state_dict(sd, target))


def _classifier_rows(sd: dict[str, torch.Tensor], model: nn.Module) -> int | None:
    """Output count of the checkpoint's classifier (its last 2-D weight matching the model's)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Linear):
        return None
    weights_2d = [v for k, v in sd.items() if k.endswith("weight") and v.ndim == 2]
    if weights_2d and weights_2d[-1].shape[1] == head.in_features:
        return int(weights_2d[-1].shape[0])
    return None


def _hub_state_dict(spec: ModelSpec) -> tuple[dict[str, torch.Tensor], str]:
    """Weights from the hub caches, downloading only when the hubs can be reached."""
    if spec.library == "torchvision":
        weights = _tv_weights(spec.arch[len(TV_PREFIX):])
        if weights is None:
            raise WeightsUnavailableError(f"torchvision has no pretrained weights for '{spec.name}'")
        cached = torch_hub_file(weights.url)
        if cached.is_file():
            return read_state_dict(cached), str(cached)
        ensure_downloadable(spec.name)
        return weights.get_state_dict(progress=True, check_hash=True), weights.url
    cached = cached_timm_file(spec)
    if cached is not None:
        return read_state_dict(cached), str(cached)
    ensure_downloadable(spec.name)
    model = _timm().create_model(spec.full_arch, pretrained=True)
    return model.state_dict(), f"hub:{spec.full_arch}"


def cached_timm_file(spec: ModelSpec) -> Path | None:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.full_arch, allow_unregistered=True)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for fname in filter(None, (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")):
            hit = try_to_load_from_cache(repo, fname, revision=revision or None)
            if isinstance(hit, str):
                return Path(hit)
    if cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if path.is_file():
            return path
    return None


def has_pretrained(spec: ModelSpec) -> bool:
    if spec.library == "torchvision":
        return _tv_weights(spec.arch[len(TV_PREFIX):]) is not None
    if bundled_weights_path(spec.arch) is not None:
        return True
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.full_arch, allow_unregistered=True)
    return bool(cfg and (cfg.hf_hub_id or cfg.url or cfg.file))


def available_offline(spec: ModelSpec) -> bool:
    """True when the weights can be loaded right now without any network."""
    if spec.weights and Path(spec.weights).is_file():
        return True
    if spec.library == "torchvision":
        weights = _tv_weights(spec.arch[len(TV_PREFIX):])
        return bool(weights) and (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)).is_file()
    return bundled_weights_path(spec.arch) is not None or cached_timm_file(spec) is not None


def load_model(
    name: str | ModelSpec = DEFAULT_MODEL,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    num_classes: int | None = None,
) -> nn.Module:
    """Build a model in eval mode with its weights; its ModelSpec rides along as `model.zoo_spec`.

    Weight sources, in order: `weights` (a local file), a bundled offline package, the hub
    cache, a hub download. `num_classes` swaps in a fresh head (for transfer learning).
    """
    if isinstance(name, (str, os.PathLike)) and rundir.is_run_dir(name):
        model = rundir.load_run_model(name, builder=_build_arch)
    else:
        spec = name if isinstance(name, ModelSpec) else resolve(str(name))
        spec = replace(spec)
        sd, source = None, None
        if weights is not None:
            sd, source = read_state_dict(weights), str(weights)
        elif pretrained:
            bundled = bundled_weights_path(spec.arch) if spec.library == "timm" else None
            if bundled is not None:
                sd, source = read_state_dict(bundled), str(bundled)
            elif not has_pretrained(spec):
                raise WeightsUnavailableError(
                    f"'{spec.name}' has no pretrained weights; build it with pretrained=False "
                    f"(e.g. to train from scratch) or pass --weights FILE."
                )
            else:
                sd, source = _hub_state_dict(spec)
        model = _build_arch(spec, spec.num_classes)
        if sd is not None:
            rows = _classifier_rows(sd, model) if spec.library == "timm" else None
            if rows and rows != spec.num_classes:  # e.g. a TF-slim head with a background class
                model.reset_classifier(rows)
                spec.label_offset = 1 if rows == 1001 else 0
                spec.num_classes = rows
                spec.labels = labels_for(rows, spec.label_offset)
            _load_tensors(model, sd)
            spec.weights = source
        if spec.library == "torchvision":
            model = TorchvisionClassifier(model)
        if sd is not None:
            spec.weights_sha256 = weights_digest(model)  # the same digest feature manifests record
        model.zoo_spec = spec
    if num_classes is not None and num_classes != model.zoo_spec.num_classes:
        model.reset_classifier(num_classes)
        model.zoo_spec = replace(model.zoo_spec, num_classes=num_classes, label_offset=0, labels=None)
    return with_tta(model, model.zoo_spec.tta).eval()  # a run trained with TTA predicts with it, whoever loads it


def as_model(model: str | os.PathLike | nn.Module | None = None,
             weights: str | os.PathLike | None = None) -> tuple[nn.Module, ModelSpec]:
    """Accept a zoo name, a run folder, or an already loaded model; return (module, spec)."""
    if isinstance(model, nn.Module):
        return model, spec_of(model)
    module = load_model(os.fspath(model) if model is not None else DEFAULT_MODEL, weights=weights)
    return module, spec_of(module)


def spec_of(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        raise UsageError("this model carries no visionzoo spec; load it with visionzoo.load_model")
    return spec


# --------------------------------------------------------------------------- listing
@dataclass
class ModelInfo:
    name: str
    target: str
    aliases: tuple[str, ...]
    params_m: float | None
    input_size: int
    offline: bool
    top1: float | None
    note: str | None = None


def _count_params(spec: ModelSpec) -> float | None:
    try:
        with torch.device("meta"):
            model = _build_arch(spec, spec.num_classes)
        return sum(p.numel() for p in model.parameters()) / 1e6
    except Exception:
        return None


def list_models(pattern: str | None = None, *, with_params: bool | None = None) -> list[ModelInfo]:
    """Familiar names first, then every pretrained timm and torchvision name matching `pattern`.

    With no pattern only the familiar names are listed. Parameter counts need a (meta-device)
    build per model, so they are computed for at most 60 matches unless `with_params` is True.
    """
    names: list[str] = []
    familiar = list(FAMILIAR)
    if pattern is None:
        names = familiar
    else:
        pat = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"
        names = [n for n in familiar if fnmatch.fnmatch(n, pat) or fnmatch.fnmatch(FAMILIAR[n].target, pat)]
        names += [n for n in _timm().list_pretrained() if fnmatch.fnmatch(n.lower(), pat)]
        names += [TV_PREFIX + n for n in _tv_classifiers() if fnmatch.fnmatch(TV_PREFIX + n, pat) or fnmatch.fnmatch(n, pat)]
    if with_params is None:
        with_params = len(names) <= 60
    secondary = {n: FAMILIAR[n].aliases for n in familiar}
    rows = []
    for name in dict.fromkeys(names):
        spec = resolve(name)
        rows.append(ModelInfo(
            name=name,
            target=spec.full_arch,
            aliases=secondary.get(name, ()),
            params_m=_count_params(spec) if with_params else None,
            input_size=spec.preprocessing.image_size,
            offline=available_offline(spec),
            top1=spec.top1,
            note=spec.note,
        ))
    return rows
