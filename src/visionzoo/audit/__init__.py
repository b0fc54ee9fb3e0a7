"""`visionzoo audit DATA`: what is wrong with a dataset before training on it: label errors
(cross-validated probabilities ranked by cleanlab), copies leaking across splits and labels,
outliers, unreadable and junk files, box and mask problems, class balance; a report, pictures and
an optional cleaned split."""
from ..lazy import lazy_exports

_EXPORTS = {"audit": "runner", "AuditResult": "runner", "Finding": "findings"}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
