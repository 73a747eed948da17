"""The report's ranking-agreement table (Kendall tau between metric/space rankings) and the
new metric columns, on a tiny fabricated set of results (numbers invented for the test)."""

from __future__ import annotations

import json

import pytest
from report_fakes import entry, generation_results
from scipy.stats import kendalltau

from medsyn.reports import build_report
from medsyn.reports.content.agreement import Source, ranking_agreement

FID = [120.0, 95.0, 150.0, 80.0, 101.0]
KID = [0.050, 0.030, 0.045, 0.020, 0.060]
PRECISION = [0.50, 0.66, 0.40, 0.70, 0.62]          # higher is better
SSL_FID = [10.0, 12.0, 9.0, 7.0, 11.0]
ALPHA = [0.8, 0.9, 0.7, 0.95, 0.85]


def _metrics(i: int, spaces: bool = True) -> dict:
    m = {"fid": entry(FID[i], 3.0), "kid": entry(KID[i], 0.004),
         "precision": entry(PRECISION[i], 0.02),
         "density": entry(1.0, 0.05),                     # no spread: tau undefined
         "alpha_precision": entry(ALPHA[i], 0.02),
         "authenticity": {**entry(0.7, 0.02), "heldout_real": {"value": 0.74, "n": 603,
                                                               "set": "cxr3/test"}},
         "vendi_fake": {**entry(12.0 + i, 0.5), "n_real": None}}
    if i < 2:
        m["mmd"] = entry(3.0 + i, 0.2)                     # only 2 evaluations: left out
    if spaces:
        m["spaces"] = {"ssl": {"fid": entry(SSL_FID[i], 0.5, extractor="ssl-resnet18"),
                               "precision": entry(PRECISION[4 - i], 0.02,
                                                  extractor="ssl-resnet18")},
                       "inception": {"fid": entry(FID[i], 3.0)}}       # same as top level
    return m


def test_tau_table_equals_scipy_on_the_raw_values():
    ag = ranking_agreement([(f"e{i}", _metrics(i)) for i in range(5)])
    inc, ssl = "inception", "ssl"           # the names under metrics.spaces
    fid, kid, prec = Source("fid", inc), Source("kid", inc), Source("precision", inc)
    ssl_fid, ssl_prec = Source("fid", ssl), Source("precision", ssl)
    assert set(ag.sources) >= {fid, kid, prec, ssl_fid, ssl_prec}
    assert len([s for s in ag.sources if s.metric == "fid"]) == 2      # duplicate space merged
    assert ag.cell(fid, kid).tau == pytest.approx(kendalltau(FID, KID).statistic)
    # directions aligned: lower FID vs higher precision
    assert ag.cell(fid, prec).tau == pytest.approx(
        kendalltau(FID, [-p for p in PRECISION]).statistic)
    assert ag.cell(fid, prec).tau == pytest.approx(1.0)                # they agree perfectly
    assert ag.cell(fid, ssl_fid).tau == pytest.approx(kendalltau(FID, SSL_FID).statistic)
    assert ag.cell(ssl_fid, ssl_prec).tau == pytest.approx(
        kendalltau(SSL_FID, [-p for p in PRECISION[::-1]]).statistic)
    assert ag.cell(fid, kid).p_value == pytest.approx(kendalltau(FID, KID).pvalue)
    assert ag.cell(fid, kid).n == 5
    density = Source("density", inc)
    # without metrics.spaces, a space is named by its entries' extractor
    alone = ranking_agreement([(f"e{i}", _metrics(i, spaces=False)) for i in range(5)])
    assert Source("fid", "inception-v3-compat") in alone.sources
    assert ag.cell(fid, density).tau is None and "same value" in ag.cell(fid, density).reason
    assert any(label.startswith("RBF-MMD") for label in ag.left_out)
    assert all(s.metric not in ("vendi_fake", "vendi_real") for s in ag.sources)  # unranked


def test_fewer_than_three_evaluations_give_no_table():
    assert ranking_agreement([(f"e{i}", _metrics(i)) for i in range(2)]) is None


def test_report_shows_the_agreement_table_and_the_new_metrics(tmp_path):
    paths = []
    for i in range(4):
        name = f"gen-{i}"
        data = generation_results(name, 10, FID[i], run_dir=None, figures=(), utility=False)
        data["run"].update(name=name, epoch=10)
        data["metrics"].update({k: v for k, v in _metrics(i, spaces=False).items()
                                if k not in ("fid", "kid", "precision", "density")})
        data["metrics"]["fd_infinity"] = entry(FID[i] - 20, 4.0)
        folder = tmp_path / name / "eval" / "epoch010"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(data))
        paths.append(folder / "results.json")
    result = build_report(paths, tmp_path / "report")
    html = result.index_html.read_text()
    assert "Ranking agreement between metrics and feature spaces" in html
    assert 'data-table="agreement"' in html and 'data-table="distribution"' in html
    assert "FD∞" in html and "α-precision" in html and "Authenticity" in html
    # FD-infinity of gen-0 with its interval, in the new table
    assert '<span class="v">100.00</span><span class="ci" title="95% CI">[96.00, 104.00]' in html
    assert "held-out real images (cxr3/test) score 0.740" in html
    md = result.summary_md.read_text()
    assert "### Ranking agreement (Kendall tau-b)" in md
    # FID vs FD-infinity: the same order (FD-inf = FID - 20), tau +1
    line = next(ln for ln in md.splitlines() if ln.startswith("| (1) FID"))
    assert "+1.00" in line
