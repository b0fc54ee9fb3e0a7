"""The task-agnostic training engine: one Trainer every task plugs into through hooks (what a batch
is, the train step, the validation metric), callbacks, resume, data-parallel ranks, and one
run-folder format (`run.finish_run`)."""
from .engine import Fit, Phase, Step, TaskHooks, Trainer
from .run import Recipe, RunConfig, finish_run, train_run

__all__ = ["Fit", "Phase", "Recipe", "RunConfig", "Step", "TaskHooks", "Trainer", "finish_run", "train_run"]
