"""``medsyn audit``: which metric detects which failure, measured on the user's own real data.

    from medsyn.evaluators.audit import audit
    result = audit("pneumoniamnist", "test", quick=True, out_dir="runs/audit-pneumoniamnist")

perturbations.py builds the controlled failures from held-out real images, runner.py scores
them with every registered metric (that declares a worse direction) in every chosen space,
verdict.py judges each response, card.py / figures.py write the trust card. scoring.py scores
one set; statistics.py runs the optional --power (power.py), --reference-sensitivity and
--preprocessing (sensitivity.py) analyses, card_statistics.py tabulates them. docs/audit.md,
docs/statistics.md.
"""

from __future__ import annotations

import importlib

__all__ = ["QUICK", "audit", "audited_metrics"]


def __getattr__(name):
    # lazily: the report reads audit cards (card.py) without loading torch
    if name in __all__:
        return getattr(importlib.import_module("medsyn.evaluators.audit.runner"), name)
    raise AttributeError(f"module 'medsyn.evaluators.audit' has no attribute {name!r}")
