"""The report's privacy section: the verdict of ``metrics.privacy`` in plain language and the
numbers behind it, one row per feature space and test, the baseline the tests used and the
exchangeability check of that baseline beside them (a shifted baseline's tests are shown as
confounded, and the tests against the control follow)."""

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


def _shift_row(space: str, check: Mapping[str, Any]) -> dict:
    dist = check.get("distance") if isinstance(check.get("distance"), Mapping) else {}
    mmd = check.get("mmd") if isinstance(check.get("mmd"), Mapping) else {}
    shift = check.get("shift_detected")
    value = (f"distance to the training images: AUC {_num(dist.get('auc'))} (0.5 = no shift; "
             f"p {_num(dist.get('p_value'))}), median ratio held-out / training "
             f"{_num(dist.get('median_ratio'))}; MMD^2 {_num(mmd.get('mmd2'), 4)} "
             f"(p {_num(mmd.get('p_value'))})")
    return {"space": space, "test": f"exchangeability check: training vs {check.get('set')}",
            "value": value, "p": _num(check.get("p_value")),
            "n": f"{check.get('n_probe')} training, {check.get('n_heldout')} held-out",
            "flags": False, "rule": check.get("rule", ""), "check": True, "shift": bool(shift),
            "status": "SHIFT" if shift else "no shift" if shift is not None else "n/a"}


def _rows(spaces: Mapping[str, Any], against: str = "", confounded: bool = False) -> list:
    rows = []
    labels = dict(TESTS)
    for space, tests in spaces.items():
        if not isinstance(tests, Mapping):
            continue
        check = tests.get("exchangeability")
        if isinstance(check, Mapping):
            rows.append(_shift_row(space, check))
        for key, test in tests.items():
            if isinstance(test, Mapping) and "flags" in test:
                row = _row(space, key, labels.get(key, key) + against, test)
                if confounded:
                    # read as confounded by the shift, not as a finding (the verdict says so)
                    row.update(flags=False, status="confounded" + (" (flags)" if test.get(
                        "flags") else ""))
                rows.append(row)
    return rows


def _baseline_text(baseline: Mapping[str, Any]) -> str | None:
    if not baseline.get("set"):
        return None
    text = f"{baseline['set']}, {baseline.get('role')}; {baseline.get('why')}; " \
           f"{baseline.get('n')} images"
    if baseline.get("n_excluded_identical_to_synthetic"):
        text += (f", {baseline['n_excluded_identical_to_synthetic']} more left out as "
                 "pixel-identical to synthetic images")
    if baseline.get("control_available"):
        text += f"; control when it is shifted: {baseline['control_available']}"
    return text + "."


def privacy_view(metrics: Mapping[str, Any]) -> dict | None:
    """What the template shows for ``metrics.privacy`` (None when the block is absent)."""
    block = metrics.get("privacy")
    if not isinstance(block, Mapping):
        return None
    if block.get("unavailable") or not isinstance(block.get("spaces"), Mapping):
        return {"unavailable": block.get("unavailable") or "no per-space results recorded"}
    verdict = block.get("verdict") if isinstance(block.get("verdict"), Mapping) else {}
    shifted = verdict.get("exchangeable") is False
    rows = _rows(block["spaces"], confounded=shifted)
    control = block.get("control") if isinstance(block.get("control"), Mapping) else {}
    if isinstance(control.get("spaces"), Mapping):
        rows += _rows(control["spaces"], f", against the control {control.get('set')}")
    patients = block.get("patients") if isinstance(block.get("patients"), Mapping) else {}
    if patients.get("known"):
        who = (f"patient ids known ({patients.get('n_train_patients')} training, "
               f"{patients.get('n_heldout_patients')} held-out patients): intervals resample "
               f"patients; {patients.get('same_patient_pairs')}.")
    else:
        who = "no patient ids: images are treated as independent (intervals resample images)."
    baseline = block.get("baseline") if isinstance(block.get("baseline"), Mapping) else {}
    rules = list(verdict.get("rules", []))
    rules += sorted({f"exchangeability check: {r['rule']}" for r in rows
                     if r.get("check") and r.get("rule")})[:1]
    return {"text": verdict.get("text", "no verdict recorded"),
            "leak": bool(verdict.get("leak_suspected")), "rows": rows,
            "alpha": verdict.get("alpha"), "rules": rules,
            "patients": who, "figures": [], "baseline": _baseline_text(baseline),
            "shifted": shifted, "undecided": shifted and verdict.get("basis") is None}


def markdown_line(metrics: Mapping[str, Any]) -> str | None:
    """One line for summary.md: the verdict and which tests flag."""
    view = privacy_view(metrics)
    if view is None:
        return None
    if "unavailable" in view:
        return f"privacy: n/a ({view['unavailable']})"
    return f"privacy: {view['text']}"
