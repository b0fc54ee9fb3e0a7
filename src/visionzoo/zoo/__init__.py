"""Model zoo: names and aliases -> ModelSpec (weights + preprocessing + labels) -> nn.Module."""
from .aliases import DEFAULT_MODEL, FAMILIAR
from .registry import ModelInfo, available_offline, list_models, load_model, resolve, spec_of
from .rundir import is_run_dir, save_run_model
from .spec import ModelSpec, Preprocessing

__all__ = [
    "DEFAULT_MODEL", "FAMILIAR", "ModelInfo", "ModelSpec", "Preprocessing", "available_offline",
    "is_run_dir", "list_models", "load_model", "resolve", "save_run_model", "spec_of",
]
