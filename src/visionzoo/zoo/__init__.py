"""Model zoo: names and aliases -> ModelSpec (weights + preprocessing + labels) -> nn.Module."""
from ..lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_MODEL": "aliases", "FAMILIAR": "aliases",
    "ModelInfo": "registry", "as_model": "registry", "available_offline": "registry", "list_models": "registry", "load_model": "registry",
    "resolve": "registry", "spec_of": "registry",
    "is_run_dir": "rundir", "save_run_model": "rundir",
    "ModelSpec": "spec", "Preprocessing": "spec",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
