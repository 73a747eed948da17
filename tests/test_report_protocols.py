"""The report names the protocol of --protocol runs and sets a published row of a protocol
beside them as comparable only when the runs were computed by that protocol's code."""

from __future__ import annotations

import json

from report_fakes import entry, make_generation_run

from medsyn.reports import build_report, compare, load_baselines
from medsyn.reports.sections import run_protocol

BASELINE = '''schema = 1

[[baseline]]
id = "leaderboard-x"
kind = "generation"
method = "Model X"
short = "Leaderboard X"
citation = "Fabricated test row."
url = "https://example.org/leaderboard"
dataset = "the leaderboard's test set"
resolution = "as submitted"
sample_count = "one image per prompt"
feature_extractor = "RAD-DINO"
protocol = "CheXGenBench metrics/fid.py"
compare_on = ["protocol"]
conditions = { protocol = "chexgenbench" }
metrics = { cxgb_fid = { value = 54.2 } }
'''


def _cxgb_block(fid):
    e = lambda v: entry(v, 0.0, n_fake=100, n_real=100, extractor="rad-dino:rad-dino")  # noqa: E731
    return {"protocol": "chexgenbench", "fid": e(fid), "kid": e(0.01),
            **{k: e(0.5) for k in ("precision", "recall", "density", "coverage")}}


def test_run_protocol():
    assert run_protocol({"fid": {}}) == "medsyn"
    assert run_protocol({"chexgenbench": {"protocol": "chexgenbench"}}) == "chexgenbench"
    assert run_protocol({"chexgenbench": {"protocol": "chexgenbench"},
                         "cmmd": {"protocol": "cmmd", "value": 1.0}}) == "several"


def test_protocol_condition_decides_comparability(tmp_path):
    (tmp_path / "b.toml").write_text(BASELINE)
    row = load_baselines(tmp_path / "b.toml")[0]
    assert compare(row, {"protocol": {"chexgenbench"}}).comparable
    note = compare(row, {"protocol": {"medsyn"}}).note
    assert "different protocol (chexgenbench vs ours medsyn)" in note


def test_report_names_protocol_and_compares_only_same_protocol(tmp_path):
    (tmp_path / "b.toml").write_text(BASELINE)
    runs = tmp_path / "runs"
    run = make_generation_run(runs, "gan-a", {2: 120.0}, utility=False)
    results = run / "eval" / "epoch002" / "results.json"
    data = json.loads(results.read_text())
    data["metrics"]["chexgenbench"] = _cxgb_block(61.5)
    results.write_text(json.dumps(data))
    out = build_report(out_dir=tmp_path / "rep", runs_root=runs,
                       baselines_path=tmp_path / "b.toml")
    html = out.index_html.read_text()
    assert "Leaderboard protocols" in html and "protocol: chexgenbench" in html
    assert "FID (CheXGenBench)" in html and "61.5" in html and "54.2" in html
    assert "Directly comparable: same protocol" in html
    # the same number computed by medsyn's own families is not set beside the row as comparable
    data["metrics"]["chexgenbench"].pop("protocol")
    results.write_text(json.dumps(data))
    out = build_report(out_dir=tmp_path / "rep2", runs_root=runs,
                       baselines_path=tmp_path / "b.toml")
    html = out.index_html.read_text()
    assert "different protocol (chexgenbench vs ours medsyn)" in html
