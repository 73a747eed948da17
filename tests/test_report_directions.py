"""Each metric's direction is declared once, where it is registered; the report reads it (and
stays free of torch while doing so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn.errors import ConfigError
from medsyn.evaluators.metrics import declared_directions, metric_directions, register_results
from medsyn.evaluators.metrics.registry import _METRICS, _RESULT_BLOCKS, register_metric
from medsyn.reports.content.metrics import METRICS, Cell, mark_best

REPO = Path(__file__).resolve().parents[1]


def test_building_a_report_loads_no_torch(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from report_fakes import make_generation_run, make_sr_run
from medsyn.reports import build_report
runs = {str(tmp_path / "runs")!r}
from pathlib import Path
make_generation_run(Path(runs), "acgan", {{2: 120.0, 4: 110.0}})
make_sr_run(Path(runs))
result = build_report(None, {str(tmp_path / "out")!r}, runs_root=runs, select_by="density")
assert result.n_evaluations == 4 and not result.problems, result.problems
print(sorted(m for m in ("torch", "torchvision", "torch_fidelity", "sklearn",
                         "medsyn.evaluators.metrics.context") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"},
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_every_column_takes_the_registered_direction():
    declared = declared_directions()
    for spec in METRICS.values():
        direction = declared.get(spec.direction_key or spec.key)
        if direction is None or not direction.ranks:
            assert spec.better == "unranked" and spec.arrow == "", spec.key
        elif direction.worse == "higher":
            assert spec.better == "lower" and spec.arrow == "↓", spec.key
        elif direction.worse == "lower":
            assert spec.better == "higher" and spec.arrow == "↑", spec.key
        else:
            assert spec.better == f"closer to {direction.ideal:g}", spec.key
    # density: one declaration for the audit (either way from real-vs-real is worse) and the
    # report (closest to 1, the value of identical distributions, is best)
    assert metric_directions()["density"] == "either" and declared["density"].ideal == 1.0
    assert METRICS["density"].better == "closer to 1" and METRICS["density"].arrow == "→1"
    assert METRICS["sr_fid"].better == METRICS["fid"].better == "lower"
    for key in ("memorization", "vendi_fake"):        # audited, but not a ranking
        assert key in metric_directions() and not METRICS[key].ranked
    for key in ("fid_floor", "vendi_real", "trtr_acc", "psnr_y_bicubic"):     # references
        assert key not in declared and not METRICS[key].ranked


def test_a_direction_declared_in_the_registry_changes_the_report_column():
    assert not METRICS["vendi_real"].ranked
    register_results("direction_test", "test only", worse={"vendi_real": "lower"})
    try:
        assert METRICS["vendi_real"].better == "higher"
        cells = [Cell(value=v) for v in (3.0, 5.0, 4.0)]
        mark_best(cells, METRICS["vendi_real"])
        assert [c.best for c in cells] == [False, True, False]
    finally:
        _RESULT_BLOCKS.pop("direction_test")
    assert not METRICS["vendi_real"].ranked


@pytest.mark.parametrize("kwargs, message", [
    ({"worse": {"x_test": "higher"}, "ideal": {"x_test": 0.0}}, "only a key whose worse"),
    ({"worse": {"x_test": "up"}}, "must be one of"),
    ({"worse": {}, "unranked": ("x_test",)}, "have no worse direction"),
    ({"worse": {"fid": "lower"}}, "already declared by 'fid'"),
])
def test_inconsistent_declarations_are_refused(kwargs, message):
    before = metric_directions()
    with pytest.raises(ConfigError, match=message):
        register_metric("direction_test", lambda ctx: {}, "test only", **kwargs)
    with pytest.raises(ConfigError, match=message):
        register_results("direction_test", "test only", **kwargs)
    assert "direction_test" not in _METRICS and "direction_test" not in _RESULT_BLOCKS
    assert metric_directions() == before


def test_families_registered_by_reference_load_when_run():
    from medsyn.evaluators.metrics import resolve_metrics

    spec = resolve_metrics(["fid"], have_discriminator=False)[0]
    assert spec.function == "medsyn.evaluators.metrics.fidelity:metric_fid"
    from medsyn.evaluators.metrics.fidelity import metric_fid

    assert spec.fn is metric_fid
    with pytest.raises(ConfigError, match="module:function"):
        register_metric("direction_test", "no_colon_here", "test only")
