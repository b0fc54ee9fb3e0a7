"""Captioning: a generated scene set with exact captions is learned; predict agrees with evaluate;
bad rows and files are reported, not fatal; Hugging Face captioners load from a local folder."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from interrupt import cli_args, history, kill_after_first_epoch
from PIL import Image

from visionzoo.errors import UsageError, WeightsUnavailableError
from visionzoo.tasks import caption
from visionzoo.tasks.caption.data import read_captions
from visionzoo.tasks.caption.scenes import make_scenes

pytestmark = pytest.mark.xdist_group("caption")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """400 scenes plus three bad rows: a missing image, an empty caption, an unreadable PNG."""
    root = tmp_path_factory.mktemp("scenes")
    path = make_scenes(root, 400, seed=1)
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["images/missing.png", "a small red circle on a white background"])
        w.writerow(["images/scene_0000.png", "   "])
        w.writerow(["images/broken.png", "a large blue square on a black background"])
    return root


# No dropout: then nothing random happens in training but what is seeded per batch and per image, so
# the killed-and-resumed run and the two-process run must reach the unbroken one's captions.
TRAIN = dict(epochs=25, dropout=0.0)


@pytest.fixture(scope="module")
def run(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("caprun") / "run"
    result = caption.train(scenes, out, log=lambda _: None, **TRAIN)
    return out, result


def test_scenes_are_learned_and_bad_rows_reported(run):
    out, result = run
    report = result["report"]
    assert report["split"] == "test" and report["n_images"] == 40
    assert report["bleu4"] >= 0.6, report   # exact captions: a working captioner gets most of them word for word
    assert report["bleu1"] >= report["bleu4"] and report["cider"] > 1.0
    problems = " | ".join(f"{w}: {r}" for w, r in result["problems"])
    assert "missing.png" in problems and "broken.png" in problems and "empty" in problems.lower(), problems
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "caption"
    for name in ("model.safetensors", "tokenizer.json", "history.csv", "curves.png", "examples.png"):
        assert (out / name).is_file(), name


def test_predict_gives_the_captions_evaluate_scored(run, scenes, tmp_path):
    out, _ = run
    report = caption.evaluate(out, scenes, tmp_path / "ev", split="test")
    scored = {r["path"]: r["caption"] for r in json.loads((tmp_path / "ev" / "captions.json").read_text())}
    assert len(scored) == 40 and report["bleu4"] >= 0.6
    paths = sorted(scored)[:8]
    predicted = caption.predict(out, paths, draw=tmp_path / "drawn")
    assert [r["caption"] for r in predicted] == [scored[p] for p in paths]
    assert all(r["error"] is None for r in predicted)
    assert len(list((tmp_path / "drawn").iterdir())) == 8
    # The in-memory predictor (what the server keeps loaded) says the same for a decoded image.
    predictor = caption.load_predictor(out)
    assert predictor([Image.open(paths[0]).convert("RGB")])[0]["caption"] == scored[paths[0]]


def test_cli_predict_reports_bad_files_and_exit_code(run, tmp_path):
    out, _ = run
    good = sorted((out.parent.parent).glob("scenes*/images/scene_000[1-2].png"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = subprocess.run([sys.executable, "-m", "visionzoo", "caption", "predict", str(out), *map(str, good),
                             str(bad), "--out", str(tmp_path / "c.json")], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    rows = json.loads((tmp_path / "c.json").read_text())
    assert [r["error"] is None for r in rows] == [True] * len(good) + [False]
    assert "bad.jpg" in result.stderr
    # The generic `visionzoo predict RUN` dispatches on the run's task.
    generic = subprocess.run([sys.executable, "-m", "visionzoo", "predict", str(out), str(good[0])],
                             capture_output=True, text=True)
    assert generic.returncode == 0 and json.loads(generic.stdout)[0]["caption"] == rows[0]["caption"]


def test_flickr_and_coco_layouts(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "Flickr8k.token.txt").write_text("a.jpg#0\tA dog runs .\na.jpg#1\ta dog running\n"
                                                  "b.jpg#0\tgrass\nc.jpg#0\tno such image\n")
    ds = read_captions(tmp_path)
    assert ds.layout == "flickr8k" and len(ds.captions[str(tmp_path / "a.jpg")]) == 2
    assert any("c.jpg" in w or "c.jpg" in r for w, r in ds.problems)
    coco = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
            "annotations": [{"id": 5, "image_id": 1, "caption": "x"}, {"id": 6, "image_id": 2, "caption": "y"},
                            {"id": 7, "image_id": 9, "caption": "z"}]}
    (tmp_path / "caps.json").write_text(json.dumps(coco))
    ds = read_captions(tmp_path, tmp_path / "caps.json")
    assert ds.layout == "coco" and len(ds.images) == 2 and len(ds.problems) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="captions.csv"):
        read_captions(tmp_path / "empty")


def _tiny_hf_captioner(folder):
    """A randomly initialised ViT + GPT-2 captioner saved as a Hugging Face folder (no network)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        PreTrainedTokenizerFast,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    words = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "cat", "on", "the", "mat"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]",
                            unk_token="[UNK]").save_pretrained(folder)
    enc = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    image_size=32, patch_size=8)
    dec = GPT2Config(vocab_size=len(words), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 2
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(cfg)
    for key, value in (("decoder_start_token_id", 1), ("pad_token_id", 0), ("eos_token_id", 2)):
        setattr(model.generation_config, key, value)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def test_hugging_face_captioner_from_a_local_folder(tmp_path, photo_dir, monkeypatch):
    folder = tmp_path / "tiny-captioner"
    _tiny_hf_captioner(folder)
    rows = caption.predict(folder, [photo_dir / "chelsea.jpg"])
    assert rows[0]["error"] is None and set(rows[0]["caption"].split()) <= {"a", "cat", "on", "the", "mat"}
    assert rows[0]["caption"]
    # By hub name with no cache and no network: one clear sentence, at once.
    monkeypatch.setenv("VISIONZOO_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(WeightsUnavailableError, match="caption train"):
        caption.load_predictor("blip")


@pytest.mark.slow
def test_killed_run_resumes_to_the_unbroken_result(run, scenes, tmp_path):
    """kill -9 inside epoch 2, then --resume: the cached features are reused and the result is the unbroken one."""
    out = tmp_path / "run"
    assert kill_after_first_epoch(["caption", "train", str(scenes), *cli_args(TRAIN)], out) == 1
    lines: list[str] = []
    result = caption.train(scenes, out, resume=True, log=lines.append)
    assert not any("computing them again" in line for line in lines)
    assert [r["epoch"] for r in history(out)] == [r["epoch"] for r in history(run[0])]
    assert result["report"]["bleu4"] == pytest.approx(run[1]["report"]["bleu4"], abs=0.02)


@pytest.mark.slow
def test_two_processes_stay_within_two_points_of_one(run, scenes, tmp_path):
    two = caption.train(scenes, tmp_path / "two", log=None, num_workers=2, **TRAIN)
    assert two["config"]["training"]["num_workers"] == 2
    assert abs(two["report"]["bleu4"] - run[1]["report"]["bleu4"]) <= 0.02, (two["report"], run[1]["report"])


@pytest.mark.slow
def test_video_is_captioned_at_its_scene_changes_with_subtitles(run, scenes, tmp_path):
    """Three different scenes, a second each: three captions (one per scene, as the images get them),
    their start times, a .srt with three cues and the captioned video beside it."""
    import av
    from videos import write_video

    out, _ = run
    chosen, backgrounds = [], []           # three scenes on three different backgrounds
    for path in sorted((scenes / "images").glob("scene_*.png")):
        bg = Image.open(path).convert("RGB").getpixel((1, 1))
        if all(sum(abs(a - b) for a, b in zip(bg, seen)) > 120 for seen in backgrounds):
            chosen.append(path)
            backgrounds.append(bg)
        if len(chosen) == 3:
            break
    video = write_video(tmp_path / "three.mp4", [Image.open(p).convert("RGB") for p in chosen for _ in range(5)], 5)
    srt = tmp_path / "three.srt"
    result = subprocess.run([sys.executable, "-m", "visionzoo", "caption", "predict", str(out), str(video),
                             "--out", str(srt), "--draw", str(tmp_path / "drawn"), "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    expected = [r["caption"] for r in caption.predict(out, chosen)]
    cues = srt.read_text().strip().split("\n\n")
    assert [c.splitlines()[2] for c in cues] == expected
    assert [c.splitlines()[1] for c in cues] == ["00:00:00,000 --> 00:00:01,000", "00:00:01,000 --> 00:00:02,000",
                                                 "00:00:02,000 --> 00:00:03,000"]
    assert (tmp_path / "drawn" / "three.srt").read_text() == srt.read_text()
    with av.open(str(tmp_path / "drawn" / "three.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15


def test_caption_files_are_read_strictly(tmp_path):
    """An unbalanced quote or an unquoted comma is an error naming the line, never a silently merged or
    cut caption; a Latin-1 file is named in one line, and --encoding reads it."""
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    cases = {"quote": 'image,caption\na.png,"a red square\na.png,a dog\n',
             "comma": "image,caption\na.png,a dog\na.png,a dog, running\n"}
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "captions.csv").write_text(text)
    with pytest.raises(UsageError, match="line 2: .*never closed"):
        read_captions(tmp_path / "quote")
    with pytest.raises(UsageError, match="line 3: 3 fields where the first row has 2"):
        read_captions(tmp_path / "comma")
    (tmp_path / "latin").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "latin" / "a.png")
    (tmp_path / "latin" / "captions.csv").write_bytes("image,caption\na.png,un café noir\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not utf-8 text .*--encoding"):
        read_captions(tmp_path / "latin")
    assert list(read_captions(tmp_path / "latin", encoding="latin-1").captions.values()) == [["un café noir"]]


def test_train_exits_1_when_rows_were_left_out(scenes, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "visionzoo", "caption", "train", str(scenes), "--out",
                           str(tmp_path / "r"), "--epochs", "1", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "missing.png" in proc.stderr and (tmp_path / "r" / "config.json").is_file()


def test_a_caption_does_not_depend_on_the_other_images_of_the_call(run, scenes):
    predictor = caption.load_predictor(run[0])
    images = [Image.open(p).convert("RGB") for p in sorted((scenes / "images").glob("scene_00[0-3]*.png"))[:4]]
    images.append(images[0].resize((90, 40)))
    for img, mixed in zip(images, predictor(images)):
        assert predictor([img])[0]["caption"] == mixed["caption"]
