"""Class logits for an image of any size in bounded memory.

An image that fits in one tile runs in one pass (padded to a multiple of 32). A bigger one runs as
overlapping tiles whose logits are blended with a window that ramps down across the overlap, so
no tile edge (where context is missing) decides a pixel alone. Tiles are processed one row at a
time and the rows that no later tile touches are handed out at once: memory holds one row of
tiles (classes x tile x width floats), whatever the image height.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

PAD_MULTIPLE = 32  # encoders downsample 32x; U-Net skips must line up
Network = Callable[[torch.Tensor], torch.Tensor]  # N x 3 x H x W in [0, 1] -> N x C x H x W logits


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad the bottom and right of (..., H, W) to (height, width): mirrored where the image is big
    enough for that, else by repeating the edge."""
    ph, pw = height - x.shape[-2], width - x.shape[-1]
    if ph <= 0 and pw <= 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    squeeze = x.ndim == 3
    out = F.pad(x[None] if squeeze else x, (0, max(pw, 0), 0, max(ph, 0)), mode=mode)
    return out[0] if squeeze else out


def _round_up(n: int, m: int = PAD_MULTIPLE) -> int:
    return -(-n // m) * m


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets covering [0, length): every `stride`, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(tile: int, overlap: int) -> torch.Tensor:
    """1-D blending weights: 1 in the middle, falling linearly to 1/(overlap+1) at both edges."""
    i = torch.arange(tile, dtype=torch.float32)
    edge = torch.minimum(i, tile - 1 - i) + 1
    return torch.clamp(edge / (overlap + 1), max=1.0)


@torch.inference_mode()
def logit_rows(model: Network, image: torch.Tensor, *, tile: int | None = 1024, overlap: float = 0.25,
               device: torch.device | str = "cpu", tile_batch: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first row, float32 logits C x rows x W) blocks that together cover the uint8 image
    (3 x H x W) top to bottom. `model` takes N x 3 x H x W RGB in [0, 1] (normalising inside, as
    Segmenter.network() and the ONNX export do). `tile` None: always one pass."""
    _, h, w = image.shape
    if tile is None or (h <= tile and w <= tile):
        x = (pad_to(image, _round_up(h), _round_up(w)).float() / 255)[None].to(device)
        yield 0, model(x)[0, :, :h, :w].float().cpu()
        return
    tile = _round_up(tile)
    step = max(PAD_MULTIPLE, tile - int(round(tile * overlap)))
    hp, wp = max(h, tile), max(w, tile)
    padded = pad_to(image, hp, wp)
    ys, xs = tile_starts(hp, tile, step), tile_starts(wp, tile, step)
    r = ramp(tile, tile - step)
    window = r[:, None] * r[None, :]
    batch = tile_batch or max(1, (1024 * 1024) // (tile * tile))
    carry: tuple[torch.Tensor, torch.Tensor] | None = None
    for row, y0 in enumerate(ys):
        acc, weight = None, torch.zeros(tile, wp)
        for b in range(0, len(xs), batch):
            chunk = xs[b:b + batch]
            tiles = torch.stack([padded[:, y0:y0 + tile, x0:x0 + tile] for x0 in chunk])
            out = model((tiles.float() / 255).to(device)).float().cpu()
            if acc is None:
                acc = torch.zeros(out.shape[1], tile, wp)
            for x0, logits in zip(chunk, out):
                acc[:, :, x0:x0 + tile] += logits * window
                weight[:, x0:x0 + tile] += window
        if carry is not None:  # the previous row's tiles reach into this one
            acc[:, :carry[1].shape[0]] += carry[0]
            weight[:carry[1].shape[0]] += carry[1]
        done = (ys[row + 1] if row + 1 < len(ys) else y0 + tile) - y0
        carry = (acc[:, done:], weight[done:])
        rows = min(done, h - y0)
        if rows > 0:
            yield y0, (acc[:, :rows, :w] / weight[:rows, :w])


def decide(logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """Class indices from C x H x W logits: the most likely class, or, for two classes with a
    `threshold`, class 1 where its probability reaches the threshold."""
    if threshold is None or logits.shape[0] != 2:
        return logits.argmax(0)
    return (foreground(logits) >= threshold).long()


def foreground(logits: torch.Tensor) -> torch.Tensor:
    """Probability of class 1 from 2 x H x W logits (a softmax over two classes is a sigmoid of the difference)."""
    return torch.sigmoid(logits[1] - logits[0])


def label_map(model: Network, image: torch.Tensor, *, threshold: float | None = None, **options) -> torch.Tensor:
    """H x W class indices (int64); never holds more than a row of tiles' logits."""
    return torch.cat([decide(block, threshold) for _, block in logit_rows(model, image, **options)], dim=0)

