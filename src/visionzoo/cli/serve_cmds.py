"""`visionzoo serve`: thin command over visionzoo.serve."""
from __future__ import annotations

from ._app import app  # noqa: F401  (the serve command registers here)
