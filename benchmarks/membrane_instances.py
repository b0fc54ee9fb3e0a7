"""An instance-mask set (COCO JSON, polygon masks) from the membrane EM images, for Mask R-CNN's figures.

Source: ../shared/datasets/membrane, 20 electron-microscopy images (512 x 512, gray) of neural tissue with
binary membrane labels (white: inside a cell, black: membrane), as distributed with zhixuhao's `unet`
repository (ISBI 2012 segmentation challenge slices), MIT licence (its LICENSE file, copyright 2019
zhixuhao). The instances below are derived from those labels; the set keeps that licence.

Recipe (deterministic, no randomness):
1. Cells: the white region of a label; membrane specks inside a cell (holes under --min-area pixels) are
   filled, then each 4-connected component is one cell (4-connectivity: a one-pixel diagonal gap in a
   membrane line does not merge two cells). What a cell encloses (an organelle's membrane and inside) is part
   of it, as COCO polygons have no holes; an enclosed white region is also a cell of its own.
2. Tiles: each image is cut into --tile x --tile squares (256: four per image), because a whole image holds
   ~120 cells, the smallest 6-8 pixels across once the default fits the image into 384 px, below the
   finest anchors (32 px); a 256 tile fitted into 384 shows the same cells 1.5x larger, ~30 per tile.
3. A cell cut by a tile's or the image's border stays an instance (it is visible, so a detector should find
   it), with the polygon(s) of its visible part; visible parts under --min-area pixels (specks, slivers at
   a border) are dropped. One instance may have several polygons when the cut leaves it in pieces.
4. Polygons: the outline of each piece (skimage.measure.find_contours at 0.5, unsimplified), in COCO pixel
   coordinates, where pycocotools rasterises them back to exactly the piece's pixels; area and bbox from it.
5. Split by source image: the images named in --test (default the last five, 15-19) give every test tile;
   no tile of a test image is in train.json.

    python benchmarks/membrane_instances.py OUT [--tile 256] [--test 15,16,17,18,19] [--draw DIR]

writes OUT/train/*.png + OUT/train.json and OUT/test/*.png + OUT/test.json, then
`visionzoo detect train OUT/train --annotations OUT/train.json --arch maskrcnn --out RUN`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "membrane"
MIN_AREA = 48          # pixels: smaller visible pieces are specks or border slivers, not cells to find


def cells(label: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """Instance ids (0 = membrane) of one binary membrane label."""
    from skimage import measure, morphology

    inside = morphology.remove_small_holes(label > 127, max_size=min_area - 1)
    return measure.label(inside, connectivity=1)


def polygons(mask: np.ndarray) -> list[list[float]]:
    """Outlines of a binary mask's pieces as COCO polygons (x, y, x, y, ...; pixel i spans [i, i + 1])."""
    from skimage import measure

    padded = np.pad(mask.astype(np.uint8), 1)
    out = []
    for contour in measure.find_contours(padded, 0.5):
        if len(contour) < 3:
            continue
        xy = contour[:, ::-1] - 1 + 0.5            # (row, col) of the padded array -> x, y of pixel centres
        out.append(np.round(xy, 2).ravel().tolist())
    return out


def tile_annotations(ids: np.ndarray, min_area: int = MIN_AREA) -> list[dict[str, Any]]:
    """One COCO annotation (no ids yet) per cell visible in `ids` with at least `min_area` pixels."""
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    h, w = ids.shape
    anns = []
    for cell in np.unique(ids):
        if cell == 0:
            continue
        mask = ndimage.binary_fill_holes(ids == cell)
        if mask.sum() < min_area:
            continue
        seg = polygons(mask)
        if not seg:
            continue
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        area = float(mask_utils.area(rle))
        x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
        anns.append({"segmentation": seg, "area": area, "bbox": [x, y, bw, bh], "iscrowd": 0, "category_id": 1})
    return anns


def build(out: Path, source: Path = SOURCE, tile: int = 256, test: tuple[int, ...] = (15, 16, 17, 18, 19),
          images: tuple[int, ...] | None = None, min_area: int = MIN_AREA) -> dict[str, Path]:
    """Write the train / test tiles and their COCO JSON under `out`; returns {"train": json, "test": json}."""
    names = sorted((p.stem for p in (source / "image").glob("*.png")), key=int)
    if images is not None:
        names = [n for n in names if int(n) in images]
    sets: dict[str, dict[str, Any]] = {
        split: {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}],
                "info": {"description": f"membrane cells, {tile} px tiles (benchmarks/membrane_instances.py)",
                         "licence": "MIT, (c) 2019 zhixuhao (../shared/datasets/membrane/LICENSE)"}}
        for split in ("train", "test")}
    for name in names:
        split = "test" if int(name) in test else "train"
        gray = np.asarray(Image.open(source / "image" / f"{name}.png").convert("L"))
        ids = cells(np.asarray(Image.open(source / "label" / f"{name}.png").convert("L")), min_area)
        (out / split).mkdir(parents=True, exist_ok=True)
        for top in range(0, gray.shape[0] - tile + 1, tile):
            for left in range(0, gray.shape[1] - tile + 1, tile):
                file_name = f"{name}_{top}_{left}.png"
                Image.fromarray(gray[top:top + tile, left:left + tile]).save(out / split / file_name)
                coco = sets[split]
                image_id = len(coco["images"]) + 1
                coco["images"].append({"id": image_id, "file_name": file_name, "width": tile, "height": tile})
                for ann in tile_annotations(ids[top:top + tile, left:left + tile], min_area):
                    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id, **ann})
    paths = {}
    for split, coco in sets.items():
        paths[split] = out / f"{split}.json"
        paths[split].write_text(json.dumps(coco))
    return paths


def draw(coco_json: Path, folder: Path, out: Path, n: int = 4) -> list[Path]:
    """The first `n` images with each instance's mask in its own colour, for looking at."""
    from pycocotools import mask as mask_utils

    coco = json.loads(coco_json.read_text())
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for row in coco["images"][:n]:
        img = np.asarray(Image.open(folder / row["file_name"]).convert("RGB")).astype(np.float32)
        for ann in (a for a in coco["annotations"] if a["image_id"] == row["id"]):
            m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], row["height"],
                                                                          row["width"]))).astype(bool)
            img[m] = 0.5 * img[m] + 0.5 * rng.integers(40, 255, 3)
        path = out / f"{Path(row['file_name']).stem}_masks.png"
        Image.fromarray(img.astype(np.uint8)).resize((2 * row["width"], 2 * row["height"]), Image.NEAREST).save(path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--test", default="15,16,17,18,19", help="source images held out for test")
    parser.add_argument("--min-area", type=int, default=MIN_AREA)
    parser.add_argument("--draw", type=Path, default=None, help="also draw the first test tiles' masks here")
    args = parser.parse_args()
    paths = build(args.out, args.source, args.tile, tuple(int(v) for v in args.test.split(",")),
                  min_area=args.min_area)
    for split, path in paths.items():
        coco = json.loads(path.read_text())
        counts = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=len(coco["images"]) + 1)[1:]
        print(f"{split}: {len(coco['images'])} tiles, {len(coco['annotations'])} cells "
              f"({counts.min()}-{counts.max()} per tile, median {np.median(counts):.0f}): {path}")
    if args.draw:
        for path in draw(paths["test"], args.out / "test", args.draw):
            print(f"drawn: {path}")


if __name__ == "__main__":
    main()
