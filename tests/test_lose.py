"""Never lose a result (issue 34): every command checks all its outputs (results, pictures, folders
of drawings / masks / crops, the device) before it reads the first input; a refused run is one line,
exit 2, no traceback, and every file that was there before is byte-for-byte as it was; inputs that
share a name are drawn apart; an optional picture that fails never costs the results; SIGTERM stops
a run as Ctrl-C does, and kill -9 leaves the earlier results whole.

`python tests/test_lose.py` prints the table of mistakes x commands and what each run answered.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interrupt import start_held
from PIL import Image
from test_detect import run as detect_run  # noqa: F401 - the tiny detector run fixture, and its data set
from test_detect import voc  # noqa: F401
from typer.testing import CliRunner

from visionzoo.cli import app

runner = CliRunner()
HERE = Path(__file__).resolve().parent
BOTTLE = HERE.parents[1] / "shared" / "datasets" / "video" / "bottle-detection.mp4"
ENV = {**os.environ, "VISIONZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def make_place(root: Path) -> Path:
    """Photos that share names (a.jpg / a.png, sub/x/1.jpg / sub/y/1.jpg), two clips that share a
    stem, class folders, and the earlier results a mistaken run must leave alone."""
    sys.path.insert(0, str(HERE))
    from videos import write_video

    rng = np.random.default_rng(0)
    for rel in ("a.jpg", "a.png", "sub/x/1.jpg", "sub/y/1.jpg", "data/x/1.png", "data/y/1.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(root / rel)
    frames = [Image.fromarray(np.full((48, 64, 3), 20 * k, np.uint8)) for k in range(10)]
    write_video(root / "clip.mp4", frames, 10)
    write_video(root / "clip.mkv", frames, 10, fmt="matroska")
    (root / "folder").mkdir()
    (root / "file.txt").write_text("not a folder")
    (root / "out.json").write_text('[{"path": "earlier.jpg", "error": null}]')
    (root / "out.csv").write_text("path,error\nearlier.jpg,\n")
    (root / "out.jsonl").write_text('{"path": "earlier.mp4#t=0", "frame": 0}\n' * 3)
    (root / "grid.png").write_bytes(b"an earlier picture")
    return root


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    return make_place(tmp_path_factory.mktemp("lose"))


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


# (command, arguments, what the one line says). Every row is refused with exit 2 before any input is read.
RUN = "{root}/folder"   # where a run folder or a feature file goes: never read, the mistake is found first
MISTAKES = [
    ("classify", "{a} --out {root}/out.json --grid {root}/grid.pgn", "--grid {root}/grid.pgn: not a picture format (.pgn)"),
    ("classify", "{a} --out {root}/labels.txt", ".json or .csv or .jsonl"),
    ("classify", "{a} --out {root}/folder", "is a folder"),
    ("classify", "{a} --out {root}/file.txt/x.json", "not a writable folder"),
    ("classify", "{a} --out {root}/out.json --device tpu", "--device tpu: not a device"),
    ("classify", "{a} --out {root}/out.json --device cuda", "no CUDA GPU"),
    ("classify", "{a} --conf 0.5", "No such option: --conf (see 'visionzoo classify --help')"),
    ("predict", RUN + " {a} --out {root}/p.txt", ".json or .csv or .jsonl"),
    ("detect predict", RUN + " {a} --out {root}/boxes.txt", ".json or .csv or .jsonl"),
    ("detect predict", RUN + " {a} --out {root}/out.jsonl --draw {root}/file.txt", "--draw {root}/file.txt is a file"),
    ("detect predict", RUN + " {a} --out {root}/out.jsonl --masks {root}/file.txt", "--masks {root}/file.txt is a file"),
    ("detect predict", RUN + " {a} --out {root}/out.jsonl --conf 1.5", "Invalid value for '--conf'"),
    ("detect predict", RUN + " {a} --out {root}/out.jsonl --device cuda:x", "--device cuda:x"),
    ("detect evaluate", "fasterrcnn_resnet50_fpn_v2 {root}/data", "pass --out DIR"),
    ("detect evaluate", RUN + " {root}/data --out {root}/file.txt", "is a file"),
    ("detect train", "{root}/data --out {root}/file.txt", "is a file"),
    ("segment predict", RUN + " {a} --out {root}/shares.txt", ".json or .csv or .jsonl"),
    ("segment predict", RUN + " {a} --out {root}/out.json --masks {root}/file.txt", "is a file"),
    ("segment evaluate", "deeplabv3_resnet50 {root}/data", "pass --out DIR"),
    ("segment train", "{root}/data --out {root}/file.txt", "is a file"),
    ("caption predict", "blip {a} --out {root}/caps.txt", ".json or .csv or .jsonl or .srt"),
    ("caption predict", "blip {a} --out {root}/out.json --draw {root}/file.txt", "is a file"),
    ("caption train", "{root}/data --out {root}/file.txt", "is a file"),
    ("caption evaluate", RUN + " {root}/data --out {root}/file.txt", "is a file"),
    ("faces detect", "{a} --out {root}/faces.txt", ".json or .csv or .jsonl"),
    ("faces detect", "{a} --out {root}/out.json --crops {root}/file.txt", "--crops {root}/file.txt is a file"),
    ("faces detect", "{a} --out {root}/out.json --draw {root}/file.txt", "--draw {root}/file.txt is a file"),
    ("faces verify", "{a} {a} --out {root}/out.csv", "writes .json files"),
    ("faces find", "{root}/data {a} --out {root}/who.txt", ".json or .csv or .jsonl"),
    ("faces index", "{root}/clip.mp4 --out {root}/faces.parquet", "is a video: a face index holds photos"),
    ("faces cluster", "--index " + RUN + " --out {root}/file.txt", "--out {root}/file.txt is a file"),
    ("faces mesh", "{a} --out {root}/file.txt", "--out {root}/file.txt is a file"),
    ("audit", "{root}/data --out {root}/file.txt", "--out {root}/file.txt is a file"),
    ("search", RUN + " {a} --out {root}/out.json --grid {root}/nb.txt", "--grid {root}/nb.txt: not a picture format (.txt)"),
    ("search", RUN + " {a} --out {root}/nb.txt", ".json or .csv"),
    ("dedup", RUN + " --out {root}/out.json", "writes .csv files"),
    ("cluster", RUN + " --out {root}/file.txt", "is a file"),
    ("probe", RUN + " --out {root}/file.txt", "is a file"),
    ("index", RUN + " --out {root}/file.txt", "is a file"),
    ("export", "efficientnet_lite0 --out {root}/tom.txt", "--out {root}/tom.txt: this command writes .onnx files"),
    ("export", "efficientnet_lite0 --out {root}/out.json", "already exists"),
    ("extract", "{a} --out {root}/f.parquet --device tpu", "not a device"),
    ("train", "{root}/data --out {root}/file.txt", "is a file"),
    ("evaluate", RUN + " {root}/data --out {root}/file.txt", "is a file"),
    ("serve", "--device tpu", "not a device"),
    ("demo", "--out {root}/file.txt", "is a file"),
]


def argv(command: str, args: str, root: Path) -> list[str]:
    return command.split() + args.format(root=root, a=root / "a.jpg").split()


def run_mistake(place: Path, command: str, args: str, message: str):
    before = snapshot(place)
    res = runner.invoke(app, argv(command, args, place), prog_name="visionzoo")
    return res, before, snapshot(place)


@pytest.mark.parametrize("command,args,message", MISTAKES, ids=[f"{c} {i}" for i, (c, _, _) in enumerate(MISTAKES)])
def test_a_mistake_is_refused_before_any_work_and_every_file_is_left_as_it_was(place, command, args, message):
    if "--device cuda" in args and has_gpu():
        pytest.skip("this machine has a GPU")
    res, before, after = run_mistake(place, command, args, message)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output      # one line, nothing else
    assert message.format(root=place) in lines[0] and "Traceback" not in res.output, res.output
    assert "classify images" not in res.output                                  # never a hidden command's name
    assert after == before                                                      # byte for byte, nothing added


def test_a_read_only_folder_is_refused_before_any_work(place, monkeypatch):
    """`--grid ro/grid.png` where ro/ cannot be written (os.access, as a non-root user sees it)."""
    import visionzoo.outputs as outputs

    readonly = place / "folder"
    monkeypatch.setattr(outputs.os, "access", lambda path, mode: Path(path) != readonly)
    before = snapshot(place)
    res = runner.invoke(app, ["classify", str(place / "a.jpg"), "--out", str(place / "out.json"),
                              "--grid", str(readonly / "grid.png")], prog_name="visionzoo")
    assert res.exit_code == 2 and res.output.strip() == (f"error: --grid {readonly / 'grid.png'}: cannot write there "
                                                         f"({readonly} is not a writable folder)"), res.output
    assert snapshot(place) == before


def test_inputs_that_share_a_name_are_drawn_apart(place, tmp_path):
    """a.jpg / a.png, sub/x/1.jpg / sub/y/1.jpg and clip.mp4 / clip.mkv: one naming for photos and videos."""
    inputs = [place / p for p in ("a.jpg", "a.png", "sub/x/1.jpg", "sub/y/1.jpg", "clip.mp4", "clip.mkv")]
    drawn, out = tmp_path / "drawn", tmp_path / "faces.json"
    res = runner.invoke(app, ["faces", "detect", *map(str, inputs), "--draw", str(drawn), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    made = sorted(p.relative_to(drawn).as_posix() for p in drawn.rglob("*") if p.is_file())
    assert made == ["a.jpg.faces.jpg", "a.png.faces.jpg", "clip.mkv.mp4", "clip.mp4.mp4",
                    "sub/x/1.faces.jpg", "sub/y/1.faces.jpg"], made
    assert len(json.loads(out.read_text())) == 4 + 2 * 11   # 4 photos; per clip 10 frames and its summary


def test_a_picture_that_fails_costs_no_results(place, tmp_path, monkeypatch, lite0):
    from visionzoo.viz import grid

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(grid, "topk_grid", full_disk)
    out = tmp_path / "labels.json"
    res = runner.invoke(app, ["classify", str(place / "a.jpg"), "--out", str(out), "--grid", str(tmp_path / "g.png")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert json.loads(out.read_text())[0]["path"] == str(place / "a.jpg")          # the results, whole
    assert f"not written --grid {tmp_path / 'g.png'}: No space left on device" in res.output, res.output


def test_a_run_that_fails_midway_leaves_the_earlier_results(place, monkeypatch):
    """Rows already streamed to --out FILE.jsonl go to a hidden temporary; a failure drops it."""
    import visionzoo.video.runner as video_runner
    from visionzoo.errors import UsageError

    def fails_after_a_row(task, predictor, sources, opts):
        yield {"path": f"{sources[0]}#t=0", "frame": 0, "time": 0.0, "faces": [], "error": None}
        raise UsageError("something refused after the first frame")

    monkeypatch.setattr(video_runner, "run_sources", fails_after_a_row)
    before = snapshot(place)
    res = runner.invoke(app, ["faces", "detect", str(place / "clip.mp4"), "--out", str(place / "out.jsonl"), "--quiet"])
    assert res.exit_code == 2 and "something refused" in res.output and "Traceback" not in res.output, res.output
    assert snapshot(place) == before


def test_a_frame_time_outside_the_video_is_refused(place, lite0):
    res = runner.invoke(app, ["classify", f"{place / 'clip.mp4'}#t=99", f"{place / 'clip.mp4'}#t=0.5"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "no frame at 99 s: the video's frames run from 0 s to 1.000 s" in res.output, res.output
    assert "0 of" not in res.output and "1 of 2 image(s) done, 1 failed" in res.output


def test_the_pixel_limit_quoted_is_the_one_applied(tmp_path):
    from visionzoo.data.decode import ImageDecodeError, load_rgb

    Image.new("L", (3000, 2000)).save(tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="over the limit of 5,000,000"):
        load_rgb(str(tmp_path / "big.png"), max_pixels=5_000_000)


def test_a_second_cluster_run_leaves_no_montage_of_the_first(place, tmp_path):
    """Fewer clusters the second time: the old cluster_NN.png files beyond them are gone."""
    from visionzoo.downstream import cluster

    paths = [str(place / p) for p in ("a.jpg", "a.png", "sub/x/1.jpg", "sub/y/1.jpg")] * 2
    vectors = np.random.default_rng(0).normal(size=(len(paths), 8))
    cluster((paths, vectors), 4, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("cluster_*.png")) == [f"cluster_{j:02d}.png" for j in range(4)]
    cluster((paths, vectors), 2, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("cluster_*.png")) == ["cluster_00.png", "cluster_01.png"]


def test_an_index_being_rewritten_is_not_marked_complete(place, tmp_path, monkeypatch):
    """The old index's "complete" mark goes before its files are rewritten: a crash in between leaves
    a folder that `search` refuses, never an old mark over new, half-written files."""
    from visionzoo.downstream import build_index
    from visionzoo.downstream import index as index_module

    paths = [str(place / "a.jpg"), str(place / "a.png")]
    build_index((paths, np.eye(2, 8)), tmp_path / "idx")
    assert (tmp_path / "idx" / index_module.META_FILE).is_file()

    def crash(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_module, "write_json", crash)
    with pytest.raises(OSError):
        build_index((paths, np.eye(2, 8)), tmp_path / "idx")
    assert not (tmp_path / "idx" / index_module.META_FILE).exists()


def test_a_killed_writers_half_files_are_swept_and_no_one_elses(tmp_path):
    from visionzoo.atomic import sweep_temporaries, temporary_name

    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)          # a writer that is no more
    live = tmp_path / temporary_name("part-00001.parquet")                       # this process: still writing
    dead = tmp_path / temporary_name("part-00002.parquet").replace(f".{os.getpid()}.", f".{gone}.")
    elsewhere = tmp_path / f".part-00003.parquet.other-host.{gone}.0123abcd.tmp"  # another host's writer
    users = [tmp_path / ".notes.tmp", tmp_path / "part-00000.parquet"]     # not a writer's temporary
    for path in [live, dead, elsewhere, *users]:
        path.write_bytes(b"x")
    assert sweep_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [live, elsewhere, *users])


# --------------------------------------------------------------------------- slow: signals in the middle
def hidden_rows(out: Path) -> int:
    try:
        return sum(len(p.read_text().splitlines()) for p in out.parent.glob(f".{out.name}.*.tmp"))
    except FileNotFoundError:   # renamed into place between the listing and the read
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_a_tracked_video_stopped_midway(detect_run, tmp_path, sig):  # noqa: F811 - the fixture
    """SIGTERM: the rows so far and a playable video of their frames, exit 143. kill -9: the earlier
    --out and drawing exactly as they were (hidden temporaries are all that is added)."""
    import av

    out, drawn = tmp_path / "boxes.jsonl", tmp_path / "drawn"
    drawn.mkdir()
    out.write_text('{"earlier": true}\n')
    (drawn / "bottle-detection.mp4").write_bytes(b"an earlier drawing")
    before = snapshot(tmp_path)
    log = tmp_path / "log.txt"
    proc = start_held(["detect", "predict", detect_run, BOTTLE, "--track", "--draw", drawn, "--out", out, "--quiet"],
                      "row:5", log)  # held after its fifth row: mid-video, certainly
    assert hidden_rows(out) == 5
    os.killpg(proc.pid, sig)
    proc.wait(timeout=300)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert {k: v for k, v in snapshot(tmp_path).items() if "/." not in f"/{k}" and k != "log.txt"} == \
            {k: v for k, v in before.items()}
        return
    text = log.read_text()
    assert proc.returncode == 143 and "terminated (SIGTERM)" in text and "Traceback" not in text, text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(r["path"].startswith(f"{BOTTLE}#t=") for r in rows)
    with av.open(str(drawn / "bottle-detection.mp4")) as c:
        shown = [float(f.time) for f in c.decode(video=0)]
    assert len(shown) >= len(rows) and shown[: len(rows)] == pytest.approx([r["time"] for r in rows], abs=1e-3)
    assert not list(tmp_path.rglob(".*.tmp"))                                        # nothing half-written left


@pytest.mark.slow
@pytest.mark.parametrize("command", ["extract", "faces index"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_shards_stopped_midway_are_whole_and_resume(tmp_path, command, sig):
    """After the first shard is written: what is left opens (every finished shard reads whole), and
    --resume finishes the rest."""
    import pyarrow.parquet as pq
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    faces = next(p for p in (HERE.parents[1] / "shared" / "datasets" / "faces").iterdir() if p.is_dir())
    sources = [Image.fromarray(getattr(data, n)()) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    sources += [Image.open(p).convert("RGB") for p in sorted(faces.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    for i in range(120):
        sources[i % len(sources)].save(photos / f"{i:03d}.jpg", quality=90)
    out = tmp_path / "out.parquet"
    args = [*command.split(), photos, "--out", out, "--partition-size", "2"]
    log = tmp_path / "log.txt"
    proc = start_held([*args, "--quiet"], "shard:1", log)  # held after its first shard: mid-run, certainly
    if sig == signal.SIGTERM:
        os.kill(proc.pid, sig)           # `kill PID`: the command alone, as a scheduler stops a job
    else:
        os.killpg(proc.pid, sig)         # a crash: the command and every process it started
    proc.wait(timeout=300)
    text = log.read_text()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "terminated (SIGTERM)" in text and "Traceback" not in text, text
    shards = sorted(out.glob("part-*.parquet"))
    assert len(shards) == 1 and all(pq.read_table(s).num_rows >= 0 for s in shards)   # each whole: it opens (photos may hold no face)
    assert json.loads((out / "_manifest.json").read_text()).get("status") != "complete"
    resumed = subprocess.run([sys.executable, "-m", "visionzoo", *map(str, args), "--resume", "--quiet"], env=ENV,
                             capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "_manifest.json").read_text())["status"] == "complete"


def table(rows=MISTAKES) -> str:
    """The mistakes x commands table, run here: what each answered, and whether every file stayed."""
    import tempfile

    lines = ["| command | mistake | exit | the one line | earlier files intact |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        place = make_place(Path(tmp))
        for command, args, message in rows:
            res, before, after = run_mistake(place, command, args, message)
            said = " / ".join(line for line in res.output.splitlines() if line.strip()).replace(str(place), "…")
            shown = args.format(root="…", a="a.jpg").replace("…/", "")
            lines.append(f"| {command} | `{shown}` | {res.exit_code} | {said} | {'yes' if after == before else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
