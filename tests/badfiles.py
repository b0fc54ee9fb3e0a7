"""Generators of the awkward files real folders contain (shared by tests of every command)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def bomb_png(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A tiny PNG whose header claims width x height pixels (1.6 G pixels by default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    return path


def write_bad_files(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """One file of each bad kind; returns {kind: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_jpeg.read_bytes()
    files = {
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.jpg",
        "not_image": folder / "notes.jpg",
        "unreadable": folder / "dangling.png",
        "bomb": folder / "bomb.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["empty"].write_bytes(b"")
    files["not_image"].write_text("this is not an image\n")
    files["unreadable"].symlink_to(folder / "does-not-exist.png")
    bomb_png(files["bomb"])
    return files


def write_odd_modes(folder: Path, photo: Image.Image) -> dict[str, Path]:
    """The same photo as grayscale, RGBA, CMYK, palette, 16-bit and EXIF-rotated files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "gray": folder / "gray.png", "rgba": folder / "rgba.png", "cmyk": folder / "cmyk.jpg",
        "palette": folder / "palette.png", "gray16": folder / "gray16.png", "exif": folder / "exif.jpg",
    }
    photo.convert("L").save(files["gray"])
    rgba = photo.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(files["rgba"])
    photo.convert("CMYK").save(files["cmyk"], quality=92)
    photo.convert("P", palette=Image.ADAPTIVE).save(files["palette"])
    Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257).save(files["gray16"])
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    photo.rotate(90, expand=True).save(files["exif"], exif=exif, quality=92)
    return files
