"""Progress bars: tqdm's, imported only as a bar is made, and tqdm.auto's (a notebook's widget in Jupyter) only
when the bar is shown: tqdm.auto imports asyncio, ~0.02 s of a command's start-up spent for nothing when the
bar is hidden (output piped, --quiet)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(iterable: Iterable[Any] | None = None, *, disable: bool, **kwargs: Any) -> Any:
    """`tqdm(iterable, disable=disable, **kwargs)`: the same bar and the same calls, shown or not."""
    if disable:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, disable=disable, **kwargs)
