"""Results show themselves in Jupyter (visionzoo.viz.notebook) and stay what the API documents."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionzoo.viz.notebook import Results, Shown, shows

FACES = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "faces"


def _red_square(img: Image.Image, row: dict) -> Image.Image:
    out = img.copy()
    out.paste((255, 0, 0), tuple(row["box"]))
    return out


def test_a_shown_row_is_still_the_plain_row(photo_dir):
    row = {"path": str(photo_dir / "coffee.jpg"), "box": [10, 10, 60, 60], "error": None}
    shown = Shown(row, _red_square, lambda r: "one box")
    assert shown == row and json.loads(json.dumps(shown)) == row
    assert shown.caption() == "coffee.jpg: one box"
    picture = Image.open(io.BytesIO(shown._repr_png_()))
    assert picture.getpixel((20, 20)) == (255, 0, 0)          # the task's drawing, over the file's pixels
    assert picture.getpixel((200, 200)) != (255, 0, 0)
    assert 'src="data:image/jpeg;base64,' in shown._repr_html_()


def test_a_row_whose_file_failed_shows_its_error(tmp_path):
    shown = Shown({"path": str(tmp_path / "gone.jpg"), "error": "cannot read file"}, _red_square)
    assert shown.caption() == "gone.jpg: cannot read file"
    assert "<img" not in shown._repr_html_() and shown.render().size == (64, 64)


def test_a_decorated_predict_returns_results_that_draw_the_first_dozen(photo_dir):
    @shows(_red_square)
    def predict(paths):
        return [{"path": str(p), "box": [0, 0, 5, 5], "error": None} for p in paths]

    rows = predict(sorted(photo_dir.glob("*.jpg")) * 3)
    assert isinstance(rows, Results) and all(isinstance(r, Shown) for r in rows) and len(rows) == 15
    page = rows._repr_html_()
    assert page.count("<img") == 12 and "and 3 more" in page
    assert rows.render().width > 12 * 100


def test_classification_results_show_bars(photo_dir):
    import visionzoo

    results = visionzoo.classify([photo_dir / "coffee.jpg"], top_k=3)
    picture = np.asarray(Image.open(io.BytesIO(results[0]._repr_png_())).convert("RGB"))
    assert (np.abs(picture.astype(int) - (76, 114, 176)).sum(axis=2) == 0).sum() > 100   # the bars
    assert "espresso" in results._repr_html_()


@pytest.mark.skipif(not FACES.is_dir(), reason="needs ../shared/datasets/faces")
def test_found_faces_are_drawn_with_their_names(tmp_path):
    from visionzoo.tasks import faces

    (tmp_path / "people" / "paul_rudd").mkdir(parents=True)
    Image.open(FACES / "paul_rudd" / "1.jpg").save(tmp_path / "people" / "paul_rudd" / "1.jpg")
    row = faces.find(tmp_path / "people", [FACES / "paul_rudd" / "1.jpg"])[0]
    assert isinstance(row, Shown) and row.caption() == "1.jpg: paul_rudd"
    x1, y1, x2, y2 = (round(v) for v in row["faces"][0]["box"])
    picture = np.asarray(row.render())
    edge = picture[(y1 + y2) // 2, x1 - 1:x1 + 3]                   # the box's left side, drawn in green
    assert any(tuple(p) == (40, 220, 60) for p in edge)
