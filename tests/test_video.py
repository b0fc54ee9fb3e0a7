"""Videos, streams and tracking: frame counts and times equal PyAV's on the real sample videos,
sampling, rotation metadata, bad files named one by one, extract + dedup on frames, ByteTrack
scored with motmetrics, a live HTTP stream that drops, Ctrl-C, the faces timeline, and the server."""
from __future__ import annotations

import base64
import csv
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from interrupt import start_held
from PIL import Image
from servers import serving
from videos import box_iou, mot_scores, write_video

from visionzoo.data import load_rgb
from visionzoo.data.video import Sampling, format_time, frame_key, probe
from visionzoo.data.video_frames import iter_frames
from visionzoo.video.tracking import Tracker

pytestmark = pytest.mark.xdist_group("video")
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "video"
FACES = VIDEOS.parent / "faces"
BOTTLE = VIDEOS / "bottle-detection.mp4"
ENV = {**os.environ, "VISIONZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visionzoo", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def pyav_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """The first second of a real sample video (a face in view), 10 frames at 10 fps."""
    frames = [f for f in iter_frames(str(VIDEOS / "thanks.mkv"), Sampling(every=3, end=1.0))]
    return write_video(tmp_path_factory.mktemp("clip") / "thanks_1s.mp4", [f.image for f in frames], 10)


def test_frame_counts_and_times_equal_pyav_on_the_real_videos():
    counts = {"bottle-detection.mp4": 1189}  # README.md of the shared videos
    for path in sorted(VIDEOS.glob("*.m[pk][4v]")):
        times = pyav_times(path)
        info = probe(str(path))
        assert info.frames == len(times) == counts.get(path.name, len(times)), path
        np.testing.assert_allclose(info.times, times, atol=1e-9)
        assert (info.width, info.height) == ((640, 360) if path.name.startswith("bottle") else (640, 480))
    frames = list(iter_frames(str(VIDEOS / "no.mkv")))
    expected = pyav_times(VIDEOS / "no.mkv")
    assert [f.index for f in frames] == list(range(len(expected)))
    assert [f.key for f in frames] == [f"{VIDEOS / 'no.mkv'}#t={format_time(t)}" for t in expected]
    # A key names its frame wherever a path is read: the same pixels as the sequential decode.
    np.testing.assert_array_equal(np.asarray(load_rgb(frames[40].key)), np.asarray(frames[40].image))


def test_sampling_by_rate_step_and_range():
    times = probe(str(BOTTLE)).times
    by_rate = [f.time for f in iter_frames(str(BOTTLE), Sampling(fps=2, start=10, end=14))]
    assert len(by_rate) == 8 and all(10 <= t < 14 for t in by_rate)
    assert np.all(np.diff(by_rate) > 0.45) and np.all(np.diff(by_rate) < 0.55)
    assert [i for i, _ in probe(str(BOTTLE)).sampled(Sampling(every=100))] == list(range(0, len(times), 100))
    assert len(probe(str(BOTTLE)).sampled(Sampling(fps=1))) == int(np.ceil(times[-1] - times[0] + 1e-9))
    r = cli("faces", "detect", BOTTLE, "--fps", "1", "--every", "2")
    assert r.returncode == 2 and "--fps or --every" in r.stderr


def test_rotation_metadata_is_honoured(tmp_path):
    """A phone-style display matrix (90 degrees counter-clockwise): frames come out as displayed."""
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:12, :12] = 255                                  # a white block at the stored top-left
    path = write_video(tmp_path / "phone.mp4", [arr] * 3, 10, rotation=90)
    info = probe(str(path))
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    frame = next(iter_frames(str(path)))
    shown = np.asarray(frame.image.convert("L"))
    assert shown.shape == (64, 32)
    assert shown[-6:, :6].mean() > 200 and shown[:6, :6].mean() < 50   # turned counter-clockwise: bottom-left
    np.testing.assert_array_equal(np.asarray(load_rgb(frame.key)), np.asarray(frame.image))


def _bad_videos(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"corrupt": folder / "corrupt.mp4", "truncated": folder / "truncated.mkv", "empty": folder / "empty.mp4",
             "audio": folder / "audio.mp4", "unknown": folder / "unknown.avi"}
    files["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    files["truncated"].write_bytes((VIDEOS / "book.mkv").read_bytes()[:40_000])
    files["empty"].write_bytes(b"")
    with av.open(str(files["audio"]), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    write_video(folder / "m4.avi", [np.full((32, 32, 3), 9 * k, np.uint8) for k in range(5)], 10, codec="mpeg4")
    files["unknown"].write_bytes((folder / "m4.avi").read_bytes().replace(b"FMP4", b"QQQ9"))
    (folder / "m4.avi").unlink()
    return files


def test_bad_videos_are_named_with_their_reason_and_the_others_go_on(tmp_path, short_clip):
    bad = _bad_videos(tmp_path / "bad")
    times = [0, 0.1, 0.15, 0.5, 0.55, 1.3]                            # a variable frame rate
    vfr = write_video(tmp_path / "vfr.mp4", [np.full((48, 64, 3), 40 * k, np.uint8) for k in range(6)], 10, times=times)
    big = write_video(tmp_path / "uhd.mp4", [np.full((2160, 3840, 3), 90, np.uint8)] * 2, 10)
    out = tmp_path / "faces.jsonl"
    r = cli("faces", "detect", *bad.values(), vfr, big, short_clip, "--out", out, "--quiet")
    assert r.returncode == 1, r.stderr
    reasons = {"corrupt": "not a readable video", "truncated": "truncated: frames stop at", "empty": "empty file",
               "audio": "no video stream (audio only)", "unknown": "unknown video codec"}
    for kind, path in bad.items():
        assert f"{path}: {reasons[kind]}" in r.stderr, (kind, r.stderr)
    assert "variable frame rate" in r.stderr and "3840x2160" in r.stderr
    rows = read_jsonl(out)
    summaries = {r["path"]: r for r in rows if "frame" not in r}
    assert summaries[str(vfr)]["error"] is None and summaries[str(big)]["error"] is None
    assert [r["time"] for r in rows if r["path"].startswith(f"{vfr}#")] == pytest.approx(times)
    assert summaries[str(short_clip)]["frames"] == 10 and summaries[str(short_clip)]["timeline"]
    assert summaries[str(bad["truncated"])]["frames"] > 0          # the frames before the cut are kept
    assert "3 of 8 video(s) done, 5 failed" in r.stderr


@pytest.mark.slow
def test_extract_on_video_then_dedup_groups_a_static_scene(tmp_path):
    feats = tmp_path / "frames.parquet"
    r = cli("extract", BOTTLE, VIDEOS / "book.mkv", tmp_path / "missing.mkv", "--fps", "1", "--out", feats, "--quiet")
    assert r.returncode == 2 and "missing.mkv" in r.stderr                     # a usage error, as for images
    (tmp_path / "empty.mp4").write_bytes(b"")
    r = cli("extract", BOTTLE, VIDEOS / "book.mkv", tmp_path / "empty.mp4", "--fps", "1", "--out", feats, "--quiet")
    assert r.returncode == 1 and f"{tmp_path / 'empty.mp4'}: empty file" in r.stderr
    r = cli("dedup", feats, "--out", tmp_path / "dups.csv")
    assert r.returncode == 0, r.stderr
    groups: dict[str, list[str]] = {}
    for row in csv.DictReader((tmp_path / "dups.csv").open()):
        groups.setdefault(row["group"], []).append(row["path"])
    groups = list(groups.values())
    bottle = [p for g in groups for p in g if p.startswith(f"{BOTTLE}#t=")]
    assert max(sum(p.startswith(f"{BOTTLE}#") for p in g) for g in groups) >= 2     # frames of the scene group (never chained)
    assert not any(any(p.startswith(str(VIDEOS / "book.mkv")) for p in g) and any(p in bottle for p in g) for g in groups)
    assert cli("extract", BOTTLE, VIDEOS / "book.mkv", tmp_path / "empty.mp4", "--fps", "1", "--out", feats,
               "--resume", "--quiet").stderr.count("0 computed now") == 1
    r = cli("extract", BOTTLE, VIDEOS / "book.mkv", "--fps", "2", "--out", feats, "--resume", "--quiet")
    assert r.returncode == 2 and "other inputs" in r.stderr


def test_bytetrack_keeps_ids_through_jitter_misses_and_a_crossing():
    rng = np.random.default_rng(0)
    truth, frames = [], []
    for k in range(60):
        a = k / 59
        objects = [(1, "thing", [20 + 200 * a, 40, 80 + 200 * a, 100]), (2, "thing", [220 - 200 * a, 60, 280 - 200 * a, 120])]
        truth.append(objects)
        dets = [{"box": [v + rng.normal(0, 2) for v in b], "score": 0.9, "label": "thing"}
                for _, _, b in objects if rng.random() > 0.1]
        frames.append(dets)
    tracker = Tracker(rate=10, threshold=0.25)
    rows = []
    for k, dets in enumerate(frames):
        ids = tracker.update(k / 10, [d["box"] for d in dets], [d["score"] for d in dets], [d["label"] for d in dets])
        rows.append({"frame": k, "detections": [{**d, "track_id": i} for d, i in zip(dets, ids)]})
    scores = mot_scores(truth, rows)
    assert scores["idf1"] >= 0.9 and scores["max_switches_per_track"] <= 1, scores
    summary = tracker.summary()
    assert all(t["frames"] >= 20 for t in summary[:2]) and summary[0]["first_seen"] == 0.0
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)


def test_tracks_start_from_the_detectors_operating_point_and_low_boxes_continue_them():
    """A run whose operating point keeps boxes from 0.8: a box scoring 0.85 starts a track at once; later
    a 0.3 box on that track continues it (ByteTrack's second association) and is kept, a 0.3 box
    elsewhere is dropped as a still image would drop it; `--conf` replaces the run's point."""
    from visionzoo.tasks.detect.operating import OperatingPoint
    from visionzoo.video.sessions import DetectSession, track_threshold

    class Run:
        point = OperatingPoint(conf=0.9, per_class={"raccoon": 0.8})

    assert track_threshold(Run()) == 0.8 and track_threshold(object()) == 0.25
    assert track_threshold(type("Conf", (), {"point": Run.point.with_conf(0.3)})()) == 0.3
    session = DetectSession(Run(), rate=10, track=True)
    assert session.predictor.point.conf == 0.1 and Run.point.lowest == 0.8     # the run's predictor untouched
    rows = []
    for k in range(4):
        frame = type("Frame", (), {"key": f"v.mp4#t={k / 10}", "index": k, "time": k / 10})()
        box = [10 + 3 * k, 10, 60 + 3 * k, 60]
        dets = [{"label": "raccoon", "score": 0.85 if k < 2 else 0.3, "box": box},
                {"label": "raccoon", "score": 0.3, "box": [200, 200, 240, 240]}]
        rows.append(session.row(frame, {"detections": dets}))
    assert [len(r["detections"]) for r in rows] == [1, 1, 1, 1]
    assert {r["detections"][0]["track_id"] for r in rows} == {rows[0]["detections"][0]["track_id"]} != {None}
    assert session.summary()["tracks"][0]["frames"] == 4 and session.summary()["counts"] == {"raccoon": 4}


class _Stream(http.server.BaseHTTPRequestHandler):
    data = b""
    plan: list[str] = []      # per request: "full", "half" (then the connection ends early), "refuse"

    def do_GET(self):
        how = self.plan.pop(0) if self.plan else "refuse"
        if how == "refuse":
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data if how == "full" else self.data[: len(self.data) // 2])
        if how == "half":  # closed cleanly short of its length: the client reads every byte sent, then fails
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_live_stream_reconnects_then_gives_up_with_its_frames_kept(tmp_path, monkeypatch):
    import visionzoo.data.video_frames as video_frames

    monkeypatch.setattr(video_frames, "RECONNECT_DELAY_S", 0.02)
    frames = [np.full((64, 96, 3), 5 * k, np.uint8) for k in range(40)]
    _Stream.data = write_video(tmp_path / "cam.ts", frames, 10, fmt="mpegts").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/cam.ts"
    try:
        _Stream.plan = ["half", "full"]                  # drops once, comes back
        log: list[str] = []
        got = list(iter_frames(url, log=log.append))
        assert len(got) > 40 and "reconnecting (1 of 3)" in log[0]
        assert np.all(np.diff([f.time for f in got]) > 0) and got[0].key == frame_key(url, 0.0)
        _Stream.plan = ["half"]                          # drops for good
        got, error = [], None
        try:
            for f in iter_frames(url, log=log.append):
                got.append(f)
        except Exception as exc:  # noqa: BLE001 - the assertion names it
            error = exc
        assert 5 < len(got) < 40 and "gave up after 3 reconnects" in str(error) and url in str(error)
    finally:
        server.shutdown()


def rows_so_far(out: Path) -> int:
    """Lines of a running command's --out FILE.jsonl, written under a hidden temporary name beside it."""
    return sum(len(p.read_text().splitlines()) for p in out.parent.glob(f".{out.name}.*.tmp"))


@pytest.mark.slow
def test_ctrl_c_ends_cleanly_with_everything_written(tmp_path):
    out, drawn = tmp_path / "frames.jsonl", tmp_path / "drawn"
    proc = start_held(["faces", "detect", BOTTLE, "--out", out, "--draw", drawn, "--quiet"], "row:5",
                      tmp_path / "run.log")  # held after its fifth row is written: mid-video, certainly
    assert not out.exists() and rows_so_far(out) == 5  # the rows grow under a hidden name until the run ends
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=300)
    err = (tmp_path / "run.log").read_text()
    assert proc.returncode == 130, err
    assert "interrupted at" in err and "written" in err
    rows = read_jsonl(out)
    assert len(rows) == 5 and all(r["path"].startswith(f"{BOTTLE}#t=") for r in rows)
    with av.open(str(drawn / "bottle-detection.mp4")) as c:
        shown = [float(f.time) for f in c.decode(video=0)]
    assert len(shown) >= len(rows) and shown[: len(rows)] == pytest.approx([r["time"] for r in rows], abs=1e-3)


def test_faces_find_on_a_video_gives_who_appears_when(tmp_path):
    people = sorted(p for p in FACES.iterdir() if p.is_dir())
    photos = [next(p.iterdir()) for p in people]
    frames = []
    for photo in photos:                       # each person fills one second (5 frames at 5 fps)
        img = Image.open(photo).convert("RGB")
        img.thumbnail((320, 320))
        canvas = Image.new("RGB", (320, 320), (30, 30, 30))
        canvas.paste(img, ((320 - img.width) // 2, (320 - img.height) // 2))
        frames += [canvas] * 5
    video = write_video(tmp_path / "people.mp4", frames, 5)
    r = cli("faces", "find", FACES, video, "--out", tmp_path / "who.json", "--draw", tmp_path / "named", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "who.json").read_text())
    timeline = rows[-1]["timeline"]
    faces = [f for r in rows[:-1] for f in r.get("faces", [])]
    assert faces and all(f["track_id"] is not None or f["untracked"] for f in faces)  # tracked, or says why not
    assert sum(f["track_id"] is not None for f in faces) >= len(faces) - len(people)
    for k, person in enumerate(people):
        assert timeline[person.name] == [[pytest.approx(k, abs=0.01), pytest.approx(k + 0.8, abs=0.01)]], timeline
    with av.open(str(tmp_path / "named" / "people.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20


@pytest.mark.slow
def test_serve_answers_a_video_upload_per_frame_and_the_page_plays_it(short_clip, tmp_path):
    import httpx

    from visionzoo.serve.app import create_app

    bad = _bad_videos(tmp_path / "bad")
    with serving(create_app(models=["faces"]), 600) as base:
        with httpx.Client(base_url=base, timeout=600) as client:
            _check_video_answers(client, short_clip, bad)
        _page_plays_the_annotated_video(base, short_clip)


def _check_video_answers(client, short_clip: Path, bad: dict[str, Path]) -> None:
    r = client.post("/v1/faces", files={"file": ("clip.mp4", short_clip.read_bytes(), "video/mp4")})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert len(answer["frames"]) == 10 and answer["frames"][0]["path"].startswith("clip.mp4#t=")
    assert sum(len(f["faces"]) == 1 for f in answer["frames"]) >= 8 and answer["summary"]["timeline"]
    data = base64.b64decode(answer["video"].split(",", 1)[1])
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and sum(1 for _ in c.decode(video=0)) == 10
    for kind, status in (("audio", 415), ("corrupt", 415), ("empty", 400)):
        r = client.post("/v1/faces", files={"file": (bad[kind].name, bad[kind].read_bytes(), "video/mp4")})
        assert r.status_code == status and r.json()["error"], (kind, r.text)


def test_image_sequences_and_a_missing_webcam(tmp_path):
    """frames/img%03d.png is a video of its images (25 fps, each frame keyed by its own file); a webcam
    index that is not there is a clear failure, and the other inputs go on."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(5):
        Image.fromarray(np.full((40, 60, 3), 40 * k, np.uint8)).save(folder / f"img{k + 1:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    frames = list(iter_frames(str(folder / "img%03d.png"), Sampling(every=2)))
    assert [Path(f.key).name for f in frames] == ["img001.png", "img003.png", "img005.png"]
    assert [f.time for f in frames] == pytest.approx([0, 0.08, 0.16]) and frames[1].image.getpixel((0, 0))[0] == 80
    out = tmp_path / "seq.jsonl"
    r = cli("faces", "detect", folder / "img%03d.png", "7", "--out", out, "--quiet")
    assert r.returncode == 1 and "no webcam 7 (/dev/video7 does not exist)" in r.stderr, r.stderr
    summaries = [row for row in read_jsonl(out) if "frame" not in row]
    assert summaries[0]["frames"] == 5 and summaries[0]["error"] is None


def _page_plays_the_annotated_video(base: str, clip: Path) -> None:
    """Chromium (the system browser, headless) uploads the clip on the page and plays the answer."""
    chromium = "/usr/bin/chromium"
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} is missing (apt-get install chromium)")
    artifacts = Path(os.environ.get("VISIONZOO_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(base + "/")
            sync_api.expect(page.locator("#status")).to_contain_text("faces", timeout=300_000)
            page.set_input_files("#file", str(clip))
            sync_api.expect(page.locator("#found")).to_contain_text("10 frame(s)", timeout=300_000)
            page.wait_for_function("() => { const v = document.getElementById('movie');"
                                   " return v.src.startsWith('data:video/mp4') && v.readyState >= 2; }", timeout=300_000)
            page.screenshot(path=str(artifacts / "serve_video_page.png"), full_page=True)
        finally:
            browser.close()
