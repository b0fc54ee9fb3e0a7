"""The shape of the code and of the command line: layers import downward only (import-linter
contracts in pyproject.toml), every command's help speaks of the product and ends with an example,
shared options mean one thing everywhere, and renamed options still take their old spelling."""
from __future__ import annotations

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
