"""The report's privacy section: the verdict of ``metrics.privacy`` in plain language and the
numbers behind it, one row per feature space and test."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TESTS = (
    ("dcr", "DCR: synthetic vs held-out distance to the nearest training image"),
    ("data_copying", "C_T data-copying test (Meehan et al. 2020)"),
    ("membership_inference", "membership-inference attack (distance to the synthetic set)"),
)


def _num(value, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _interval(ci) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"[{_num(ci[0])}, {_num(ci[1])}]"
    return ""


def _row(space: str, key: str, label: str, test: Mapping[str, Any]) -> dict:
    flags = test.get("flags")
    if key == "dcr":
        frac = test.get("fraction_below_heldout_p5")
        frac = 100 * frac if isinstance(frac, (int, float)) else None
        expected = 100 * test.get("expected_fraction_without_copying", 0.05)
        value = (f"median ratio {_num(test.get('median_ratio'))} "
                 f"{_interval(test.get('median_ratio_ci95'))}; {_num(frac, 1)} % closer than "
                 f"the held-out 5th percentile (expected {_num(expected, 1)} %)")
        n = f"{test.get('n_fake')} synthetic, {test.get('n_heldout')} held-out"
    elif key == "data_copying":
        value = (f"C_T {_num(test.get('value'), 2)}, z {_num(test.get('z'), 2)} "
                 f"({test.get('n_cells_used')} of {test.get('n_cells')} cells)")
        n = f"{sum(c.get('n_fake', 0) for c in test.get('cells', []) if c.get('included'))} " \
            "synthetic in used cells"
    elif key == "membership_inference":
        value = (f"AUC {_num(test.get('auc'))} {_interval(test.get('ci95'))} (0.5 = no leak); "
                 f"TPR at {_num(100 * test.get('low_fpr', 0.01), 0)} % FPR "
                 f"{_num(test.get('tpr_at_low_fpr'))} {_interval(test.get('tpr_at_low_fpr_ci95'))}"
                 f" (about {_num(test.get('low_fpr', 0.01), 2)} = no leak)")
        n = f"{test.get('n_members')} training, {test.get('n_nonmembers')} held-out"
    else:                                   # a registered extra test (e.g. authenticity)
        value = _num(test.get("value"))
        n = ""
    return {"space": space, "test": label, "value": value, "p": _num(test.get("p_value")),
            "n": n, "flags": flags, "rule": test.get("rule", ""),
            "status": "flags" if flags else "n/a" if flags is None else "no"}


def privacy_view(metrics: Mapping[str, Any]) -> dict | None:
    """What the template shows for ``metrics.privacy`` (None when the block is absent)."""
    block = metrics.get("privacy")
    if not isinstance(block, Mapping):
        return None
    if block.get("unavailable") or not isinstance(block.get("spaces"), Mapping):
        return {"unavailable": block.get("unavailable") or "no per-space results recorded"}
    verdict = block.get("verdict") if isinstance(block.get("verdict"), Mapping) else {}
    rows = []
    labels = dict(TESTS)
    for space, tests in block["spaces"].items():
        if not isinstance(tests, Mapping):
            continue
        for key, test in tests.items():
            if isinstance(test, Mapping) and "flags" in test:
                rows.append(_row(space, key, labels.get(key, key), test))
    patients = block.get("patients") if isinstance(block.get("patients"), Mapping) else {}
    if patients.get("known"):
        who = (f"patient ids known ({patients.get('n_train_patients')} training, "
               f"{patients.get('n_heldout_patients')} held-out patients): intervals resample "
               f"patients; {patients.get('same_patient_pairs')}.")
    else:
        who = "no patient ids: images are treated as independent (intervals resample images)."
    return {"text": verdict.get("text", "no verdict recorded"),
            "leak": bool(verdict.get("leak_suspected")), "rows": rows,
            "alpha": verdict.get("alpha"), "rules": verdict.get("rules", []),
            "patients": who, "figures": []}


def markdown_line(metrics: Mapping[str, Any]) -> str | None:
    """One line for summary.md: the verdict and which tests flag."""
    view = privacy_view(metrics)
    if view is None:
        return None
    if "unavailable" in view:
        return f"privacy: n/a ({view['unavailable']})"
    return f"privacy: {view['text']}"
