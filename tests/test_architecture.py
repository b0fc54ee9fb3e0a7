"""The shape of the code and of the command line: layers import downward only (import-linter
contracts in pyproject.toml), every command's help speaks of the product and ends with an example,
shared options mean one thing everywhere, and renamed options still take their old spelling."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from visionzoo.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("--workers", "--device", "--quiet", "--top-k", "--processes", "--resume", "--seed", "--allow-pickle",
          "--draw", "--weights", "--engine", "--ray-address", "--max-distance", "--val-split", "--fps", "--every",
          "--start", "--end")


def _commands(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_layer_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_help_names_the_product_and_ends_with_an_example():
    commands = dict(_commands())
    assert {("classify", "train"), ("detect", "train"), ("segment", "train"), ("caption", "train"), ("train",),
            ("predict",)} <= set(commands)
    for path, cmd in commands.items():
        text = cmd.help or ""
        assert "issue" not in text.lower(), path
        if not cmd.hidden or path == ("classify", "images"):
            assert text.strip().splitlines()[-1].strip().startswith("Example: visionzoo "), path


def test_shared_options_mean_one_thing_everywhere():
    helps: dict[str, set[str]] = {}
    for path, cmd in _commands():
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt in SHARED:
                    helps.setdefault(opt, set()).add(param.help or "")
    assert set(helps) == set(SHARED), set(SHARED) - set(helps)
    for opt, texts in helps.items():
        assert len(texts) == 1, (opt, texts)


@pytest.mark.parametrize("args,new", [
    (["extract", "/no/such/dir", "--out", "x", "--num-workers", "2"], "--processes"),
    (["train", "/no/such/dir", "--out", "x", "--num-workers=2"], "--processes"),
    (["segment", "train", "/no/such/dir", "--out", "x", "--image-size", "64"], "--crop-size"),
    (["detect", "train", "/no/such/dir", "--out", "x", "-m", "efficientnet_lite0"], "--backbone"),
    (["faces", "verify", "/no/a.jpg", "/no/b.jpg", "--threshold", "0.5"], "--max-distance"),
    (["dedup", "/no/feats.parquet", "-t", "0.9", "--max-distance", "20"], "--max-hash-distance"),
])
def test_renamed_options_keep_their_old_spelling_with_a_warning(args, new):
    res = CliRunner().invoke(app, args)
    assert f"is renamed {new}" in res.output and "No such option" not in res.output, res.output
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output  # then the missing input is named


def test_renamed_python_keywords_warn_and_still_work(tmp_path):
    from visionzoo.errors import UsageError
    from visionzoo.tasks import detect, segment

    with pytest.warns(FutureWarning, match="img_size= is renamed image_size="), \
            pytest.raises(UsageError, match="no such"):
        detect.train(tmp_path / "none", tmp_path / "run", img_size=128, log=None)
    with pytest.warns(FutureWarning, match="crop_size="), pytest.raises(UsageError, match="no such dataset"):
        segment.train(tmp_path / "none", tmp_path / "run", img_size=128, log=None)


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_help_lists_every_command_that_the_modules_register_though_each_loads_on_demand():
    """The root loads a command's module only when it runs (cli._app.COMMAND_MODULES): a command whose module is
    missing from that table would vanish; `visionzoo --help` still lists them all, in the table's order."""
    from visionzoo.cli._app import COMMAND_MODULES

    registered = json.loads(_python(
        "import importlib, json, pkgutil, typer; import visionzoo.cli as cli\n"
        "for m in pkgutil.iter_modules(cli.__path__): importlib.import_module(f'visionzoo.cli.{m.name}')\n"
        "print(json.dumps(list(typer.main.get_command(cli._app.app).commands)))"))
    assert sorted(registered) == sorted(COMMAND_MODULES)
    listing = subprocess.run([sys.executable, "-m", "visionzoo", "--help"], capture_output=True, text=True,
                             check=True).stdout.split("Commands:")[1]
    assert [line.split()[0] for line in listing.splitlines() if line.startswith("  ")] == list(COMMAND_MODULES)


@pytest.mark.parametrize("argv,module", [(["detect", "predict", "--help"], "detect_cmds"),
                                         (["--version"], None), (["models", "--help"], "zoo_cmds")])
def test_a_command_imports_its_own_module_alone_and_no_torch(argv, module):
    """Start-up: `visionzoo detect predict` imports none of the other commands' code, and no torch (its ONNX
    Runtime path needs none; test_detect runs it whole)."""
    loaded, torch = json.loads(_python(
        f"import json, sys; sys.argv = ['visionzoo', *{argv!r}]\nfrom visionzoo.cli import main\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('visionzoo.cli.') and m.endswith(('_cmds', "
        "'_cmd'))), 'torch' in sys.modules]))").splitlines()[-1])
    assert loaded == ([f"visionzoo.cli.{module}"] if module else []) and not torch
