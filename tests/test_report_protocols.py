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


def test_shipped_chexgenbench_rows_sit_only_beside_their_protocol(tmp_path):
    """The CheXGenBench leaderboard rows of medsyn/reports/baselines.toml (FID (RadDino)): in
    the "Leaderboard protocols" table only, directly comparable only with runs computed by
    --protocol chexgenbench on CheXGenBench's real set."""
    rows = {b.id: b for b in load_baselines()}
    sana = rows["chexgenbench-sana"]
    assert sana.cell("cxgb_fid").value == 54.23 and sana.cell("fid") is None
    assert rows["chexgenbench-sd-v2"].cell("cxgb_fid").value == 194.72
    assert sum(1 for i in rows if i.startswith("chexgenbench-")) == 11
    same = {"protocol": {"chexgenbench"}, "dataset": {"mimic-cxr-chexgenbench-test"}}
    assert compare(sana, same).comparable
    assert not compare(sana, {**same, "protocol": {"medsyn"}}).comparable
    assert not compare(sana, {**same, "protocol": {"dgm-eval"}}).comparable
    assert not compare(sana, {**same, "dataset": {"cxr3"}}).comparable

    runs = tmp_path / "runs"
    run = make_generation_run(runs, "gan-a", {2: 120.0}, utility=False)
    out = build_report(out_dir=tmp_path / "plain", runs_root=runs)
    assert "CheXGenBench: Sana" not in out.index_html.read_text()   # no protocol table
    results = run / "eval" / "epoch002" / "results.json"
    data = json.loads(results.read_text())
    data["metrics"]["chexgenbench"] = _cxgb_block(61.5)
    results.write_text(json.dumps(data))
    html = build_report(out_dir=tmp_path / "cxgb", runs_root=runs).index_html.read_text()
    assert "CheXGenBench: Sana (0.6B)" in html and "54.23" in html and "194.72" in html
    assert "Directly comparable" not in html           # same protocol, another real set
    assert "different dataset (MIMIC-CXR (CheXGenBench test prompts) vs ours" in html
    data["metrics"]["chexgenbench"]["protocol"] = "dgm-eval"
    results.write_text(json.dumps(data))
    html = build_report(out_dir=tmp_path / "other", runs_root=runs).index_html.read_text()
    assert "different protocol (chexgenbench vs ours dgm-eval)" in html
