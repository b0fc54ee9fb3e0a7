"""2-D maps of a collection: a PNG scatter coloured by label, or a self-contained HTML page that
shows each image's thumbnail on hover (thumbnails inlined as base64 JPEG, no external files)."""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import write_text
from ..data.decode import ImageDecodeError
from .figure import figure, save, thumbnail

MAX_LEGEND = 20


def _palette(n: int) -> list[str]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [matplotlib.colors.to_hex(cmap(i % cmap.N)) for i in range(n)]


def scatter_png(xy: np.ndarray, labels: Sequence[str], out: str | os.PathLike, title: str = "") -> Path:
    names = sorted(set(labels))
    colours = dict(zip(names, _palette(len(names))))
    plt, fig, axes = figure(1, 1, (8, 7))
    ax = axes[0][0]
    lab = np.array(labels)
    for name in names:
        m = lab == name
        ax.scatter(xy[m, 0], xy[m, 1], s=12, c=colours[name], label=f"{name} ({int(m.sum())})", alpha=0.8,
                   linewidths=0)
    if len(names) <= MAX_LEGEND:
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    return save(plt, fig, out)


def _thumb_b64(path: str, size: int) -> str:
    try:
        img = thumbnail(path, size)
    except ImageDecodeError:
        return ""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px sans-serif; margin: 12px; }}
#tip {{ position: fixed; pointer-events: none; background: #fff; border: 1px solid #999; padding: 4px;
        display: none; max-width: 260px; word-break: break-all; box-shadow: 2px 2px 6px #0003; }}
#tip img {{ display: block; max-width: 250px; max-height: 250px; }}
circle:hover {{ stroke: #000; stroke-width: 2; }}
.legend span {{ display: inline-block; margin-right: 12px; }}
.legend i {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 5px; }}
</style></head><body>
<h3>{title}</h3><div class="legend">{legend}</div>
<svg id="map" width="{w}" height="{h}" style="border:1px solid #ddd"></svg>
<div id="tip"></div>
<script>
const points = {data};
const svg = document.getElementById("map"), tip = document.getElementById("tip");
const NS = "http://www.w3.org/2000/svg";
for (const p of points) {{
  const c = document.createElementNS(NS, "circle");
  c.setAttribute("cx", p.x); c.setAttribute("cy", p.y); c.setAttribute("r", 4);
  c.setAttribute("fill", p.c); c.setAttribute("fill-opacity", 0.8);
  c.addEventListener("mousemove", e => {{
    tip.style.display = "block";
    tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 14) + "px";
    tip.replaceChildren();
    if (p.img) {{ const im = document.createElement("img"); im.src = p.img; tip.appendChild(im); }}
    const t = document.createElement("div"); t.textContent = p.label + " | " + p.path; tip.appendChild(t);
  }});
  c.addEventListener("mouseleave", () => {{ tip.style.display = "none"; }});
  svg.appendChild(c);
}}
</script></body></html>
"""


def scatter_html(xy: np.ndarray, labels: Sequence[str], paths: Sequence[str], out: str | os.PathLike,
                 title: str = "", thumb_size: int = 96) -> Path:
    """Self-contained HTML scatter: hover a point to see its image, label and path."""
    w, h, pad = 900, 700, 20
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    px = pad + (xy - lo) / span * np.array([w - 2 * pad, h - 2 * pad])
    names = sorted(set(labels))
    colours = dict(zip(names, _palette(len(names))))
    points = [{"x": round(float(x), 1), "y": round(float(h - y), 1), "c": colours[lab], "label": lab, "path": p,
               "img": _thumb_b64(p, thumb_size)} for (x, y), lab, p in zip(px, labels, paths)]
    data = json.dumps(points).replace("</", "<\\/")
    legend = "".join(f'<span><i style="background:{colours[n]}"></i>{html.escape(n)}</span>' for n in names)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, _PAGE.format(title=html.escape(title), legend=legend, w=w, h=h, data=data))
    return out
