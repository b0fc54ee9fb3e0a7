"""The typer app, its error handling, and what every command shares: consoles, option definitions
(one name, one meaning, everywhere) and renamed options' old spellings. Commands hold no logic."""
from __future__ import annotations

import importlib
import os
import signal
import sys
import warnings
from typing import Any, Callable, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from ..errors import VisionZooError

try:  # typer >= 0.26 carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import NoArgsIsHelpError
    from click.exceptions import UsageError as ClickUsageError

# Piped output keeps whole lines (file names, labels) instead of truncating to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)        # results (stdout)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)  # logs, failures and errors


DEBUG_ENV = "VISIONZOO_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class Group(TyperGroup):
    """One handler for every command below it: a user's mistake (a bad option, a missing file, a folder
    where a file goes, a model that does not exist) becomes one line naming it and exit 2; Ctrl-C exit
    130. `visionzoo --debug ...` (or VISIONZOO_DEBUG=1) shows the traceback instead."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ClickUsageError as exc:   # a bad option or argument: one line too, naming where to look
            if debugging() or isinstance(exc, NoArgsIsHelpError):
                raise
            err_console.print(f"[red]error:[/red] {escape(exc.format_message())} (see '{_help_path(exc.ctx)} --help')",
                              highlight=False, emoji=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except VisionZooError as exc:
            if debugging():
                raise
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, emoji=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a path the user gave: missing, a folder, not writable
            if debugging() or exc.filename is None:
                raise
            err_console.print(f"[red]error:[/red] {escape(f'{exc.filename}: {exc.strerror or exc}')}", highlight=False,
                              emoji=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            how = "terminated (SIGTERM)" if _TERMINATED else "interrupted"
            err_console.print(f"{how}: what was finished is kept (the files named above); --resume continues a "
                              f"training run, an index or a feature extraction", highlight=False)
            raise typer.Exit(128 + signal.SIGTERM if _TERMINATED else 130) from None


_TERMINATED = False


def _terminate(signum: int, frame: Any) -> None:
    global _TERMINATED
    _TERMINATED = True
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """`kill PID` (SIGTERM, as service managers and schedulers stop jobs) stops a command as Ctrl-C
    does: every file it finished is closed whole (results, the drawn video), then exit 143."""
    signal.signal(signal.SIGTERM, _terminate)


def _help_path(ctx: Any) -> str:
    """The command a user can ask --help of: a hidden default command's group (`visionzoo classify`)."""
    if ctx is None:
        return "visionzoo"
    if ctx.command.hidden and ctx.parent is not None:
        return ctx.parent.command_path
    return ctx.command_path


class DefaultGroup(Group):
    """A group that runs its hidden `default` command when the first word is not a subcommand:
    `visionzoo classify photos/` and `visionzoo classify train DATA` both work."""

    default = "images"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in self.get_help_option_names(ctx):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def renamed(table: dict[str, str]) -> type[TyperCommand]:
    """A command class that still takes each renamed option's old spelling (`table`: old -> new), with a warning."""

    class Renamed(TyperCommand):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            out = []
            for arg in args:
                name, eq, value = arg.partition("=")
                if name in table:
                    err_console.print(f"warning: {name} is renamed {table[name]}; the old spelling goes away in the "
                                      f"next release", highlight=False)
                    arg = table[name] + eq + value
                out.append(arg)
            return super().parse_args(ctx, out)

    return Renamed


# The module of this package that registers each top-level command, in `visionzoo --help`'s order.
COMMAND_MODULES = {
    "audit": "audit_cmds", "train": "classify_cmds", "evaluate": "classify_cmds", "predict": "classify_cmds",
    "demo": "demo_cmd", "index": "downstream_cmds", "search": "downstream_cmds", "dedup": "downstream_cmds",
    "cluster": "downstream_cmds", "probe": "downstream_cmds", "map": "downstream_cmds", "models": "zoo_cmds",
    "layers": "zoo_cmds", "export": "zoo_cmds", "extract": "extract_cmds", "serve": "serve_cmds",
    "caption": "caption_cmds", "classify": "classify_cmds", "detect": "detect_cmds", "faces": "faces_cmds",
    "segment": "segment_cmds",
}


def load_commands(*modules: str) -> None:
    """Register the commands of `modules` (of COMMAND_MODULES) on `app`; with none named, every command."""
    for module in modules or sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__package__}.{module}")


class LazyGroup(Group):
    """The root: a command's module is imported when that command runs or `visionzoo --help` lists it, so
    `visionzoo detect predict` starts without importing the code of every other command."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMAND_MODULES, *(name for name in self.commands if name not in COMMAND_MODULES)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:  # an unknown name loads them all, for typer's 'Did you mean ...?'
            self._load(*[COMMAND_MODULES[cmd_name]] if cmd_name in COMMAND_MODULES else [])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self._load()  # the listing shows every command's help line: all of them, built at once
        super().format_commands(ctx, formatter)

    def _load(self, *modules: str) -> None:
        load_commands(*modules)
        built = typer.main.get_command(app).commands  # type: ignore[attr-defined]
        self.commands.update({name: cmd for name, cmd in built.items() if name not in self.commands})


def new_app(help: str, *, default: bool = False, completion: bool = False,  # noqa: A002 - typer's word
            cls: type[Group] | None = None) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=completion, pretty_exceptions_enable=False,
                       cls=cls or (DefaultGroup if default else Group), rich_markup_mode=None)


# Not the user's business: PIL's decompression-bomb warning (decode.load_rgb enforces its own pixel limit
# and names the file), and libraries' notes about their own future versions.
warnings.filterwarnings("ignore", message=".*DecompressionBomb.*|.*decompression bomb.*")
warnings.filterwarnings("ignore", category=FutureWarning, module="(torch|timm|torchvision|transformers)")

app = new_app("Pretrained vision models: model zoo, classification, features at scale, transfer learning, "
              "detection, segmentation, faces, captioning, serving.", completion=True,  # --install-completion
              cls=LazyGroup)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"visionzoo {__version__}")
        raise typer.Exit()


def _debug(value: bool) -> None:
    if value:
        os.environ[DEBUG_ENV] = "1"


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", callback=_debug, envvar=DEBUG_ENV,
                                     help="Show the full traceback when a command fails.")) -> None:
    """Pretrained vision models: model zoo, classification, features at scale, transfer learning,
    detection, segmentation, faces, captioning, serving."""


def show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def say(msg: str) -> None:
    """A line of the run's log on stderr (training epochs, files written); results go to stdout."""
    err_console.print(msg, highlight=False, markup=False)


def wrote(*paths: Any) -> None:
    for p in paths:
        say(f"wrote {p}")


def fail(path: str, reason: str, verb: str = "failed") -> None:
    err_console.print(f"[red]{verb}[/red] {path}: {reason}", highlight=False)


# --------------------------------------------------------------------------- shared options
# Every command that has one of these takes it under the same name with the same meaning.
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bar (for logs and scripts).")


def _checking(check: Callable[[Any], None]) -> Callable[[Any], Any]:
    """An option callback: `check` the value as it is parsed, so it is refused before the command reads any input."""
    def callback(value: Any) -> Any:
        check(value)
        return value
    return callback


def _check_device(device: str) -> None:
    from ..outputs import check_device

    check_device(device)


def folder_check(option: str) -> Callable[[Any], Any]:
    def check(path: Any) -> None:
        from ..outputs import check_folder

        check_folder(path, option)
    return _checking(check)


def picture_file(option: str, help: str) -> Any:
    """An option naming one picture (--grid): its format (any matplotlib writes) and place checked as it is parsed."""
    def check(path: Any) -> None:
        from ..outputs import check_picture

        check_picture(path, option)
    return typer.Option(None, option, help=help, callback=_checking(check))


def out_folder(option: str, help: str) -> Any:
    """An optional folder of per-input files (--masks, --crops), refused as it is parsed if it cannot be one."""
    return typer.Option(None, option, help=help, callback=folder_check(option))


DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps.", callback=_checking(_check_device))
WorkersOpt = typer.Option(None, "--workers", min=0, help="Image-decoding workers beside the model (on CPU, extract's "
                          "ONNX Runtime pipelines decode their own) [default: auto].")
ProcessesHelp = ("Model processes working in parallel: data-parallel training ranks (DDP, each on a slice of every "
                 "batch) in train commands; Ray tasks at once with --engine ray [default: 1; Ray: one per GPU, else "
                 "one per node].")
TopKHelp = "How many of the best answers to keep per image (labels, or neighbours for search)."
TopKOpt = typer.Option(5, "--top-k", "-k", min=1, help=TopKHelp)
ResumeOpt = typer.Option(False, "--resume", help="Continue an interrupted run from what it had finished (its last epoch, "
                         "its written shards); a finished run has nothing left to do.")
SeedOpt = typer.Option(0, "--seed", help="Seed of the split, the initial weights and the augmentations.")
TrainThreadsOpt = typer.Option(None, "--threads", min=1, help="PyTorch threads per process (training and its "
                               "evaluation); recorded in config.json [default: half the cores, at least 1: "
                               "more stall when other jobs share the cores].")
TimeBudgetOpt = typer.Option(None, "--time-budget", min=0.001, help="Stop training once this many seconds are "
                             "spent (checked every step); config.json and the report say so [default: no limit, "
                             "so the run does not depend on how busy the machine is].")
ValSplitHelp = "Fraction held out to choose the best epoch when DATA has no validation split of its own (0 = none)."
ValSplitOpt = typer.Option(0.2, "--val-split", help=ValSplitHelp)
ModelOpt = typer.Option(None, "--model", "-m", help="Zoo name, timm/torchvision name, or a saved run folder "
                        "[default: efficientnet_lite0, offline].")
WeightsOpt = typer.Option(None, "--weights", help="Local weights file (.safetensors or .pth) for a pretrained name.")
EngineOpt = typer.Option("local", "--engine", help="local, or ray: the same work as Ray tasks on a cluster "
                         "(pip install 'visionzoo\\[ray]'), same output.")
RayAddressOpt = typer.Option(None, "--ray-address", help="--engine ray: auto, HOST:6379 or ray://HOST:10001 "
                             "(default: $RAY_ADDRESS, else a local Ray for this run).")
PickleOpt = typer.Option(False, "--allow-pickle", help="Allow reading a .pkl feature file (unpickling can run code: "
                         "only for files you trust).")
EncodingOpt = typer.Option("utf-8", "--encoding", help="Text encoding of the dataset's CSV / caption files.")
RootOpt = typer.Option(None, "--root", help="Where the images of the feature file are now, if the collection moved "
                       "since `extract` (the folder it recorded is replaced by this one).")
DrawOpt = typer.Option(None, "--draw", callback=folder_check("--draw"), help="Folder for each picture drawn with its results (boxes, names, captions); "
                       "each video as an annotated STEM.mp4.")

# Videos, streams, webcams and image sequences, wherever images are taken: which frames to look at.
FpsOpt = typer.Option(None, "--fps", min=0.001, help="Videos: frames per second to look at (the first frame of each "
                      "1/F s) [default: every frame].")
EveryOpt = typer.Option(None, "--every", min=1, help="Videos: look at every Nth frame.")
StartOpt = typer.Option(None, "--start", min=0.0, help="Videos: seconds into each video to start at.")
EndOpt = typer.Option(None, "--end", min=0.0, help="Videos: seconds into each video to stop at.")
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32, or int8: the ONNX export quantized on calibration "
                            "photos, on the CPU (the network 1.3-1.6x faster; features and labels close to fp32's, "
                            "measured in the docs' benchmarks).")
CalibrationOpt = typer.Option(None, "--calibration", help="--precision int8: photos typical of your inputs to "
                              "calibrate on (a folder or glob; up to 64 spread over it) [default: the bundled photos].")

TRAIN_RENAMES = {"--num-workers": "--processes"}
TASK_TRAIN_RENAMES = {**TRAIN_RENAMES, "-m": "--backbone"}  # -m is --model everywhere


def out_file(kinds: Sequence[str] = (".json", ".csv"), required: bool = False) -> Any:
    """--out FILE: its extension (one of `kinds`) and place checked as it is parsed, before any work."""
    def check(path: Any) -> None:
        from ..outputs import check_file

        check_file(path, "--out", kinds)
    return typer.Option(... if required else None, "--out", "-o", callback=_checking(check),
                        help=f"Results file ({' or '.join(k.upper().lstrip('.') for k in kinds)}, by its extension).")


def out_dir(what: str, default: str | None = None, required: bool = True) -> Any:
    return typer.Option(... if required and default is None else default, "--out", "-o", help=f"Folder to write: {what}.")


def command(target: Any, name: str | None = None, renames: dict[str, str] | None = None, **kwargs: Any) -> Callable:
    """`target.command(name)` with the old spellings of renamed options (`renames`: old -> new) still taken."""
    return target.command(name, cls=renamed(renames) if renames else None, **kwargs)
