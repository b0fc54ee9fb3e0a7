"""`visionzoo caption ...`: thin commands over visionzoo.tasks.caption."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from . import results, videos
from ._app import (
    TASK_TRAIN_RENAMES,
    DeviceOpt,
    DrawOpt,
    EncodingOpt,
    EndOpt,
    EveryOpt,
    FpsOpt,
    ProcessesHelp,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    StartOpt,
    TimeBudgetOpt,
    TrainThreadsOpt,
    ValSplitHelp,
    WorkersOpt,
    app,
    command,
    console,
    fail,
    folder_check,
    new_app,
    out_file,
    say,
    show_progress,
)

caption_app = new_app("Image captioning: train a CNN encoder + LSTM decoder on your captions, predict, evaluate "
                      "(BLEU, CIDEr); Hugging Face captioners by name.")
app.add_typer(caption_app, name="caption")

AnnotationsOpt = typer.Option(None, "--annotations", help="COCO captions JSON (images under DATA).")
BeamOpt = typer.Option(None, "--beam", min=1, help="Beam width [default: the run's, 3].")
BackendOpt = typer.Option("auto", "--backend", help="Encoder runtime: auto, onnx or torch.")
BatchOpt = typer.Option(16, "--batch-size", min=1, help="Images per forward pass.")


def _scores(report: dict) -> str:
    return "  ".join(f"{k} {report[k]:.3f}" for k in ("bleu1", "bleu2", "bleu3", "bleu4", "cider") if k in report)


@command(caption_app, "train", TASK_TRAIN_RENAMES)
def train_cmd(
    data: Path = typer.Argument(..., help="Folder with captions.csv (image,caption), Flickr8k's captions.txt, "
                                "or images for --annotations."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Run folder to write (decoder, vocabulary, config, report)."),
    annotations: Optional[Path] = AnnotationsOpt,
    encoding: str = EncodingOpt,
    backbone: str = typer.Option("efficientnet_lite0", "--backbone",
                                 help="Encoder: zoo name or run folder (frozen; its features are cached)."),
    decoder: str = typer.Option("lstm", "--decoder", help="lstm or transformer."),
    dropout: float = typer.Option(0.3, "--dropout", min=0, max=0.9, help="Decoder dropout while training."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Captions per training step (over all processes)."),
    lr: float = typer.Option(2e-3, "--lr"),
    beam: int = typer.Option(3, "--beam", min=1, help="Beam width used for validation BLEU and saved as default."),
    val_split: float = typer.Option(0.1, "--val-split", help=ValSplitHelp),
    test_split: float = typer.Option(0.1, "--test-split", help="Images held out for the final report."),
    patience: int = typer.Option(8, "--patience", min=1, help="Early stopping patience in epochs."),
    time_budget: Optional[float] = TimeBudgetOpt,
    threads: Optional[int] = TrainThreadsOpt,
    resume: bool = ResumeOpt,
    seed: int = SeedOpt,
    workers: Optional[int] = WorkersOpt,
    processes: int = typer.Option(1, "--processes", min=1, help=ProcessesHelp),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a captioner (frozen zoo encoder + LSTM decoder, teacher forcing; best epoch by val BLEU-4).

    Example: visionzoo caption train flickr8k/ --out runs/captions
    """
    from ..tasks.caption import train

    result = train(data, out, annotations=annotations, encoding=encoding, resume=resume,
                   progress=show_progress(quiet), log=say,
                   backbone=backbone, decoder=decoder, dropout=dropout, epochs=epochs, batch_size=batch_size, lr=lr, beam=beam,
                   val_split=val_split, test_split=test_split, patience=patience, seed=seed, workers=workers,
                   time_budget=time_budget, threads=threads, num_workers=processes, device=device)
    for where, reason in result.get("problems", []):
        fail(where, reason, "left out")
    if result.get("report"):
        console.print(f"held-out: {_scores(result['report'])}", highlight=False)
    raise typer.Exit(results.trained(result))


@caption_app.command("predict")
def predict_cmd(
    model: str = typer.Argument(..., help="Caption run folder, Hugging Face model id or folder, or blip, "
                                "blip-large, vit-gpt2."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders (recursive) or globs; videos, image sequences "
                                       "(frames/%04d.png), rtsp:// or http(s):// streams, a webcam index."),
    out: Optional[Path] = out_file((*videos.VIDEO_KINDS, ".srt")),
    beam: Optional[int] = BeamOpt,
    draw: Optional[Path] = DrawOpt,
    fps: Optional[float] = FpsOpt,
    every: Optional[int] = EveryOpt,
    start: Optional[float] = StartOpt,
    end: Optional[float] = EndOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    backend: str = BackendOpt,
    quiet: bool = QuietOpt,
):
    """Caption images with a trained run or a pretrained captioner; a video gets a caption at each
    scene change (rows per scene, subtitles: --out FILE.srt, or STEM.srt beside the --draw video).

    Example: visionzoo caption predict runs/captions photos/ --out captions.csv
    """
    from ..tasks.caption import predict
    from ..video import VideoOptions, predict_videos

    listed = results.listed(inputs, videos=True)
    images, sources = videos.split(listed.files)
    srt = out if out is not None and out.suffix.lower() == ".srt" else None
    if srt is not None and (images or len(sources) != 1):
        raise UsageError("--out FILE.srt holds the subtitles of one video; give one video (or --out FILE.json)")
    rows = predict(model, images, beam=beam, batch_size=batch_size, workers=workers, device=device, backend=backend,
                   draw=draw, progress=show_progress(quiet)) if images else []
    options = VideoOptions(videos.sampling(fps, every, start, end), batch_size=batch_size, draw=draw,
                           progress=show_progress(quiet), log=say)
    frames = predict_videos(model, sources, task="caption", options=options, beam=beam, device=device,
                            backend=backend) if sources else ()
    if srt is not None:
        frames = videos.subtitles(frames, srt)
    raise typer.Exit(videos.finish(rows, frames, None if srt else out, listed.skipped,
                                   line=lambda r: f"{r['path']}: {r['caption']}"))


@caption_app.command("evaluate")
def evaluate_cmd(
    model: str = typer.Argument(..., help="Caption run folder or pretrained captioner."),
    data: Path = typer.Argument(..., help="A captioned dataset (as for train)."),
    out: Path = typer.Option(..., "--out", "-o", callback=folder_check("--out"), help="Report folder (report.json, captions.json, examples.png)."),
    annotations: Optional[Path] = AnnotationsOpt,
    encoding: str = EncodingOpt,
    split: str = typer.Option("all", "--split", help="all, or the run's train / val / test images of DATA."),
    beam: Optional[int] = BeamOpt,
    batch_size: int = BatchOpt,
    workers: Optional[int] = WorkersOpt,
    device: str = DeviceOpt,
    backend: str = BackendOpt,
    quiet: bool = QuietOpt,
):
    """Corpus BLEU-1..4 (against all references of an image) and CIDEr, with best and worst examples.

    Example: visionzoo caption evaluate runs/captions flickr8k/ --split test --out eval/
    """
    from ..tasks.caption import evaluate

    report = evaluate(model, data, out, annotations=annotations, split=split, beam=beam, batch_size=batch_size,
                      workers=workers, device=device, backend=backend, encoding=encoding,
                      progress=show_progress(quiet))
    console.print(f"{report['n_images']} images: {_scores(report)}", highlight=False)
    for p in report["problems"]:
        fail(p["where"], p["error"], "left out")
    for f in report["failures"]:
        fail(f["path"], f["error"])
    say(f"wrote {out}/report.json")
    raise typer.Exit(1 if report["failures"] or report["problems"] else 0)
