"""Results that show themselves in Jupyter: each prediction draws itself (`_repr_html_`,
`_repr_png_`), a list of them shows the first dozen side by side, and `show()` works anywhere.

The rows stay what the API documents (plain JSON-able dicts to `json`, pandas and the CLI);
each task says how to draw one of its rows (`shows(draw, describe)`), this module only renders
and displays. Nothing here imports IPython until something is shown.
"""
from __future__ import annotations

import base64
import functools
import html
import io
from pathlib import Path
from typing import Any, Callable, Iterable

from PIL import Image

SIDE = 640    # longest side of a picture shown in a notebook
SHOWN = 12    # how many results of a list are drawn

Draw = Callable[[Image.Image, dict], Image.Image]
Describe = Callable[[dict], str]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where display() draws in the page)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def display(obj: Any) -> None:
    """Draw `obj` in the notebook, or open its picture in the system's viewer elsewhere."""
    if in_notebook():
        from IPython.display import display as ipython_display

        ipython_display(obj)
    else:
        obj.render().show()


def thumbnail(img: Image.Image, side: int = SIDE) -> Image.Image:
    img = img.convert("RGB")
    scale = side / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS) if scale < 1 else img


def encode(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def figure_html(img: Image.Image | None, caption: str, extra: str = "") -> str:
    """One result as HTML: the picture (JPEG, embedded) with its caption, and any `extra` markup."""
    picture = ""
    if img is not None:
        data = base64.b64encode(encode(thumbnail(img), "JPEG")).decode("ascii")
        picture = f'<img src="data:image/jpeg;base64,{data}" style="max-width:100%;display:block">'
    return (f'<figure style="display:inline-block;vertical-align:top;margin:4px;max-width:{SIDE}px">{picture}'
            f'<figcaption style="font-size:0.85em">{html.escape(caption)}</figcaption>{extra}</figure>')


def load_image(path: str) -> Image.Image | None:
    """The picture of a result's file as the model saw it (EXIF rotation applied), or None."""
    from ..data.decode import ImageDecodeError, load_rgb

    try:
        return load_rgb(path)
    except (ImageDecodeError, OSError):
        return None


class Shown(dict):
    """A result row (still a plain dict: JSON, pandas, `==` work as before) that draws itself:
    `draw(image, row)` is the task's own picture of it, over the image at the row's "path"."""

    def __init__(self, row: dict, draw: Draw, describe: Describe | None = None):
        super().__init__(row)
        self._draw, self._describe = draw, describe

    def caption(self) -> str:
        name = Path(str(self.get("path", ""))).name
        if self.get("error"):
            return f"{name}: {self['error']}"
        text = self._describe(self) if self._describe else ""
        return f"{name}: {text}" if text else name

    def render(self) -> Image.Image:
        """The picture of this result (a grey square when its image cannot be read)."""
        image = load_image(str(self["path"])) if self.get("path") and not self.get("error") else None
        return self._draw(image, self) if image is not None else Image.new("RGB", (64, 64), "lightgrey")

    def _repr_png_(self) -> bytes:
        return encode(thumbnail(self.render()), "PNG")

    def _repr_html_(self) -> str:
        return figure_html(None if self.get("error") else self.render(), self.caption())

    def show(self) -> None:
        display(self)


class Results(list):
    """A list of results; in a notebook the first dozen are drawn side by side."""

    def _repr_html_(self) -> str:
        items = [item._repr_html_() if hasattr(item, "_repr_html_") else html.escape(repr(item))
                 for item in self[:SHOWN]]
        more = f"<p>... and {len(self) - SHOWN} more</p>" if len(self) > SHOWN else ""
        return f'<div>{"".join(items)}</div>{more}'

    def render(self) -> Image.Image:
        """The first dozen pictures side by side, at one height (for `show()` outside a notebook)."""
        tiles = [thumbnail(item.render(), 320) for item in self[:SHOWN] if hasattr(item, "render")]
        sheet = Image.new("RGB", (max(1, sum(t.width + 4 for t in tiles)), max([1] + [t.height for t in tiles])),
                          "white")
        x = 0
        for t in tiles:
            sheet.paste(t, (x, 0))
            x += t.width + 4
        return sheet

    def show(self) -> None:
        display(self)


def shows(draw: Draw, describe: Describe | None = None) -> Callable:
    """Decorate a task's `predict`: its list of rows comes back as `Results` of `Shown` rows."""
    def wrap(predict: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(predict)
        def predict_and_show(*args: Any, **kwargs: Any) -> Any:
            rows = predict(*args, **kwargs)
            if not isinstance(rows, list):
                return rows
            return Results(Shown(r, draw, describe) if isinstance(r, dict) and "path" in r else r for r in rows)
        return predict_and_show
    return wrap


class ShowsTopK:
    """For a classification result with `path`, `predictions` (each `label`, `probability`) and
    `error`: the picture beside bars of its top-k, in a notebook and in `show()`."""

    def _pairs(self) -> list[tuple[str, float]]:
        return [(p.label, float(p.probability)) for p in getattr(self, "predictions", [])]

    def caption(self) -> str:
        name = Path(str(getattr(self, "path", ""))).name
        error = getattr(self, "error", None)
        return f"{name}: {error}" if error else name

    def render(self) -> Image.Image:
        image = load_image(str(self.path)) if not getattr(self, "error", None) else None
        return bars_image(image, self._pairs())

    def _repr_png_(self) -> bytes:
        return encode(self.render(), "PNG")

    def _repr_html_(self) -> str:
        image = load_image(str(self.path)) if not getattr(self, "error", None) else None
        return figure_html(image and thumbnail(image, 320), self.caption(), bars_html(self._pairs()))

    def show(self) -> None:
        display(self)


def bars_image(image: Image.Image | None, pairs: list[tuple[str, float]], side: int = 320) -> Image.Image:
    """The picture (or a grey square) with a bar per (label, probability) on its right."""
    from PIL import ImageDraw

    pic = thumbnail(image, side) if image is not None else Image.new("RGB", (side // 2, side // 2), "lightgrey")
    width = 330
    sheet = Image.new("RGB", (pic.width + width, max(pic.height, 22 * len(pairs) + 8)), "white")
    sheet.paste(pic, (0, 0))
    pen = ImageDraw.Draw(sheet)
    for i, (label, p) in enumerate(pairs):
        x, y = pic.width + 8, 6 + 22 * i
        pen.rectangle((x, y + 12, x + round(max(0.0, p) * (width - 20)), y + 18), fill=(76, 114, 176))
        pen.text((x, y), f"{label}  {p:.1%}", fill=(0, 0, 0))
    return sheet


def bars_html(pairs: Iterable[tuple[str, float]]) -> str:
    """Horizontal bars for (label, probability) pairs, as a small HTML table."""
    rows = "".join(
        f'<tr><td style="text-align:right;padding-right:6px">{html.escape(label)}</td>'
        f'<td style="width:220px"><div style="background:#4c72b0;height:12px;width:{max(0.0, p) * 100:.1f}%">'
        f'</div></td><td style="padding-left:6px">{p:.1%}</td></tr>'
        for label, p in pairs)
    return f'<table style="font-size:0.85em;border:none">{rows}</table>'
