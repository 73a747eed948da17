"""``medsyn audit``: which metric detects which failure, measured on the user's own real data.

    from medsyn.evaluators.audit import audit
    result = audit("pneumoniamnist", "test", quick=True, out_dir="runs/audit-pneumoniamnist")

perturbations.py builds the controlled failures from held-out real images, runner.py scores
them with every registered metric (that declares a worse direction) in every chosen space,
verdict.py judges each response, card.py / figures.py write the trust card. docs/audit.md.
"""

from __future__ import annotations

from medsyn.evaluators.audit.runner import QUICK, audit, audited_metrics

__all__ = ["QUICK", "audit", "audited_metrics"]
