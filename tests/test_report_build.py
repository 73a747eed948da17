"""`medsyn report` on fabricated results.json files and run folders (see report_fakes.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fakes import generation_results, make_generation_run, make_sr_run, write_png
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.errors import ConfigError
from medsyn.reports import build_report, compare, load_baselines
from medsyn.reports.build import select_epochs
from medsyn.reports.content.inputs import gather_runs
from medsyn.reports.content.metrics import METRICS, Cell, mark_best

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


class _Tables(HTMLParser):
    """Text of every summary-table cell, row by row, from an index.html."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.img_srcs: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "summary" in (attrs.get("class") or ""):
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self._cell = []
        if tag in ("img", "script", "link") and (attrs.get("src") or attrs.get("href")):
            url = attrs.get("src") or attrs.get("href")
            if tag == "img":
                self.img_srcs.append(url)
            if re.match(r"^(https?:)?//", url):
                self.external.append(url)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def two_results(tmp_path_factory):
    """Two small fabricated results.json files (two runs, one evaluation each) -> a report."""
    root = tmp_path_factory.mktemp("two")
    paths = []
    for name, fid, dataset, size in (("acgan-a", 121.5, "cxr3", 112),
                                     ("acgan-b", 140.25, "cxr3", 112)):
        eval_dir = root / name / "eval" / "epoch010"
        eval_dir.mkdir(parents=True)
        data = generation_results(name, 10, fid, run_dir=None, dataset=dataset, image_size=size,
                                  figures=())
        data["run"].update(name=name, epoch=10)
        (eval_dir / "results.json").write_text(json.dumps(data))
        paths.append(eval_dir / "results.json")
    result = build_report(paths, root / "report")
    return result, result.index_html.read_text()


def test_report_from_two_results_contains_runs_baselines_and_intervals(two_results):
    result, html = two_results
    assert result.n_runs == 2 and result.n_evaluations == 2 and not result.problems
    parsed = _parse(html)
    fidelity = parsed.tables[0]
    header = fidelity[0]
    fid_col = header.index("FID ↓")
    rows = {r[0]: r for r in fidelity[1:] if r}
    run_a = next(v for k, v in rows.items() if k.startswith("acgan-a"))
    run_b = next(v for k, v in rows.items() if k.startswith("acgan-b"))
    # value, 95% interval and n in the same cell; the lower FID is marked best
    assert run_a[fid_col].startswith("121.50 best [118.40, 124.60] n=2808 / 2808")
    assert run_b[fid_col] == "140.25 [137.15, 143.35] n=2808 / 2808"
    # the real-vs-real floor is the column beside FID
    assert header[fid_col + 1].startswith("FID floor") and run_a[fid_col + 1].startswith("4.12")
    # baseline rows: values as published with their spread, a visible comparability note
    karbhari = next(v for k, v in rows.items() if k.startswith("Karbhari et al. 2021"))
    assert karbhari[fid_col].startswith("50.67 ± 8.13†")
    assert "Not directly comparable: different dataset (COVIDx (2 classes) vs ours cxr3)" in html
    assert "different feature extractor (keras-inceptionv3 vs ours inception-v3-compat)" in html
    # citations with DOI / URL
    assert "Diagnostics 11(5):895" in html and "https://doi.org/10.3390/diagnostics11050895" in html
    assert "https://github.com/giocoal/CXR-ACGAN-chest-xray-generator-covid19-pneumonia" in html
    assert "doi.org/10.1038/s41597-022-01721-8" in html
    # IS: unavailable with its reason, never "nan"
    is_col = header.index("IS ↑")
    assert run_a[is_col].startswith("n/a")
    assert "IS unavailable: Inception weights have no classifier layer" in html
    assert not re.search(r"\bnan\b", html, re.IGNORECASE)
    # nothing is loaded from the network
    assert parsed.external == []


def test_summary_csv_and_markdown(two_results):
    result, _ = two_results
    with open(result.summary_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    runs = [r for r in rows if r["row_type"] == "run" and r["table"] == "fidelity"]
    assert {r["run"] for r in runs} == {"acgan-a", "acgan-b"}
    a = next(r for r in runs if r["run"] == "acgan-a")
    assert float(a["fid"]) == 121.5 and float(a["fid_ci_low"]) == pytest.approx(118.4)
    assert a["fid_n"] == "n=2808 / 2808" and a["is"] == "" and a["is_unavailable"]
    baseline = next(r for r in rows if r["baseline_id"] == "cxr-acgan-epoch288"
                    and r["table"] == "fidelity")
    assert float(baseline["fid"]) == 123.26 and float(baseline["fid_published_spread"]) == 0.02
    assert baseline["comparability"].startswith("Not directly comparable")
    md = result.summary_md.read_text()
    assert "| acgan-a @ epoch 10 ★ | **121.50 [118.40, 124.60] (n=2808 / 2808)**" in md
    assert "CXR-ACGAN replication: AC-GAN (CXR-ACGAN, epoch 288) [2]† | 123.26 ± 0.02†" in md
    assert "Note 1: IS unavailable: Inception weights have no classifier layer" in md
    assert "https://doi.org/10.3390/diagnostics11050895" in md


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """Run folders as `medsyn train` + `medsyn evaluate` write them (fabricated numbers)."""
    root = tmp_path_factory.mktemp("full")
    runs = root / "runs"
    make_generation_run(runs, "acgan-cxr3", {2: 160.0, 4: 121.5, 6: 128.9})
    make_generation_run(runs, "cgan-pneumonia", {3: 41.0}, dataset="pneumoniamnist",
                        image_size=28, classes=["normal", "pneumonia"], n=4708, n_test=624,
                        model_kind="cgan")
    make_sr_run(runs)
    result = build_report(None, root / "reports", runs_root=runs)
    return root, result, result.index_html.read_text()


def test_run_folders_give_one_row_per_epoch_and_the_selected_epoch(full_report):
    _, result, html = full_report
    assert result.n_runs == 3 and result.n_evaluations == 6 and not result.problems
    tables = _parse(html).tables
    labels = [r[0] for r in tables[0][1:] if r]
    assert labels[:3] == ["acgan-cxr3 @ epoch 2", "acgan-cxr3 @ epoch 4 ★ selected",
                          "acgan-cxr3 @ epoch 6"]
    assert "epoch 4 (lowest FID among 3 evaluations)" in html
    assert "epoch 4 (highest PSNR-Y (dB) among 2 evaluations)" in html
    for section in ("Run: acgan-cxr3", "Run: cgan-pneumonia", "Run: srgan-cxr3",
                    "Training curves", "Metrics against epoch", "Last sample grid",
                    "Per-class intra-FID and KID", "t-SNE of real and synthetic features",
                    "Memorization: closest synthetic / training pairs", "Downstream utility",
                    "Real-vs-real floor", "Provenance", "Configuration (config.json)",
                    "sr strip", "Training diagnostics at the selected epoch"):
        assert section in html, section
    assert "1.2 %</b> of synthetic images" in html


def test_every_image_of_the_report_exists_in_its_folder(full_report):
    _, result, html = full_report
    srcs = _parse(html).img_srcs
    assert len(srcs) >= 15
    for src in srcs:
        assert not src.startswith(("/", "http")), src
        assert (result.out_dir / src).is_file(), src


def test_comparability_is_decided_from_the_data(full_report):
    _, _, html = full_report
    # the pneumoniamnist run at 28 px with a ResNet-18 and 624 test images matches MedMNIST's
    assert ("Directly comparable: same dataset, resolution, classifier, training recipe, "
            "test images") in html
    assert "Not directly comparable: different classifier (resnet50 vs ours resnet18)." in html
    assert "Not directly comparable: different resolution (224 vs ours 28)." in html
    # SR: published on Set5/Set14, ours on cxr3
    assert "Not directly comparable: different dataset (Set5 vs ours cxr3)." in html


def test_compare_states():
    baselines = {b.id: b for b in load_baselines()}
    resnet18 = baselines["medmnist-v2-pneumonia-resnet18-28"]
    same = {"dataset": {"pneumoniamnist"}, "image_size": {28}, "classifier": {"resnet18"},
            "recipe": {"medmnist"}, "n_test": {624}}
    assert compare(resnet18, same).comparable
    # medsyn's quick recipe (stride-4 stem, 10 epochs) is not MedMNIST's
    quick = compare(resnet18, dict(same, recipe={"quick"}))
    assert not quick.comparable and "different training recipe (medmnist vs ours quick)" in \
        quick.note
    mixed = dict(same, image_size={28, 64})
    result = compare(resnet18, mixed)
    assert not result.comparable and "different resolution (28 vs ours 28, 64)" in result.note
    unknown = dict(same, classifier=set())
    assert "classifier of our runs unknown" in compare(resnet18, unknown).note
    karbhari = baselines["karbhari2021-acgan"]
    note = compare(karbhari, {"dataset": {"covidx"}, "n_classes": {2}, "image_size": {112},
                              "n_fake": {500}, "extractor": {"inception-v3-compat"}}).note
    assert "resolution not stated by the source" in note and "same" not in note
    assert compare(karbhari, {}).note == "No runs in this report to compare with."


def test_baselines_file_is_complete():
    baselines = load_baselines()
    ids = {b.id for b in baselines}
    assert {"karbhari2021-acgan", "cxr-acgan-epoch288", "medmnist-v2-pneumonia-resnet18-28",
            "srgan-table2-srgan-set5", "srgan-table2-srresnet-set14"} <= ids
    for b in baselines:
        assert b.citation and b.link.startswith("https://")
        for text in (b.dataset, b.resolution, b.sample_count, b.feature_extractor, b.protocol):
            assert text.strip()
    by_id = {b.id: b for b in baselines}
    assert by_id["karbhari2021-acgan"].metrics == {"is": {"value": 2.51, "spread": 0.12},
                                                    "fid": {"value": 50.67, "spread": 8.13}}
    acgan = by_id["cxr-acgan-epoch288"]
    assert acgan.metrics["fid"]["value"] == 123.26 and acgan.metrics["tstr_acc"]["value"] == 0.63
    assert acgan.conditions["image_size"] == 112 and acgan.conditions["n_classes"] == 3
    assert by_id["srgan-table2-srgan-set14"].metrics == {"psnr_y": {"value": 26.02},
                                                        "ssim_y": {"value": 0.7397}}


def test_baselines_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('schema = 1\n[[baseline]]\nid = "x"\nkind = "generation"\n')
    with pytest.raises(ConfigError, match="baseline 'x' lacks method"):
        load_baselines(path)
    path.write_text("schema = 2\n")
    with pytest.raises(ConfigError, match="schema 2 is not supported"):
        load_baselines(path)
    raw = (REPO / "medsyn/reports/baselines.toml").read_text()
    path.write_text(raw.replace("tstr_acc = { value = 0.63 }", "tstr_accuracy = 0.63", 1))
    with pytest.raises(ConfigError, match="unknown metric column"):
        load_baselines(path)


def test_best_marking_knows_each_direction():
    def cells(*values):
        return [Cell(value=v) for v in values]

    for key, values, best in (("fid", (30.0, 12.0, 50.0), 1), ("recall", (0.2, 0.6, 0.4), 1),
                              ("density", (1.4, 0.7, 0.95), 2), ("is", (2.0, 3.1, 2.9), 1)):
        row = cells(*values)
        mark_best(row, METRICS[key])
        assert [c.best for c in row] == [i == best for i in range(3)], key
    lone = cells(5.0) + [Cell(unavailable="no weights")]
    mark_best(lone, METRICS["fid"])
    assert not any(c.best for c in lone)
    all_tied = cells(0.0, 0.0, 0.0)
    mark_best(all_tied, METRICS["recall"])
    assert not any(c.best for c in all_tied)
    some_tied = cells(0.5, 0.1, 0.5)
    mark_best(some_tied, METRICS["recall"])
    assert [c.best for c in some_tied] == [True, False, True]
    unranked = cells(4.0, 3.0)
    mark_best(unranked, METRICS["fid_floor"])
    assert not any(c.best for c in unranked)


def test_select_by_another_metric(tmp_path):
    runs = tmp_path / "runs"
    run_dir = make_generation_run(runs, "acgan", {1: 150.0, 2: 140.0}, utility=False)
    data = json.loads((run_dir / "eval/epoch001/results.json").read_text())
    data["metrics"]["kid"]["value"] = 0.001
    (run_dir / "eval/epoch001/results.json").write_text(json.dumps(data))
    problems = []
    gathered = gather_runs(sorted(run_dir.glob("eval/*/results.json")), [run_dir], problems)
    assert not problems
    select_epochs(gathered, None)
    assert gathered[0].selected.epoch == 2
    select_epochs(gathered, "kid")
    assert gathered[0].selected.epoch == 1
    assert gathered[0].selection_rule == "lowest KID among 2 evaluations"
    with pytest.raises(ConfigError, match="unknown metric 'fidd'"):
        select_epochs(gathered, "fidd")
    # a comma list is an order of fallbacks: TSTR accuracy is in no evaluation, so KID decides
    select_epochs(gathered, "tstr_acc,kid")
    assert gathered[0].selected.epoch == 1
    assert gathered[0].selection_rule == "lowest KID among 2 evaluations"
    with pytest.raises(ConfigError, match="cannot select"):
        select_epochs(gathered, "fid_floor")


def test_two_evaluations_of_one_epoch_are_told_apart(tmp_path):
    run_dir = make_generation_run(tmp_path / "runs", "acgan", {1: 90.0}, utility=False,
                                  figures=())
    other = run_dir / "eval" / "epoch001-test"
    other.mkdir()
    data = json.loads((run_dir / "eval/epoch001/results.json").read_text())
    data["metrics"]["fid"]["value"] = 95.0
    (other / "results.json").write_text(json.dumps(data))
    gathered = gather_runs(sorted(run_dir.glob("eval/*/results.json")), [run_dir], [])
    assert [e.label for e in gathered[0].evaluations] == [
        "acgan @ epoch 1 (epoch001)", "acgan @ epoch 1 (epoch001-test)"]


def test_evaluation_of_an_image_folder_has_no_run(tmp_path):
    """`medsyn evaluate --fake DIR` results: null run fields, no run folder, no epoch."""
    eval_dir = tmp_path / "diffusion-eval"
    eval_dir.mkdir()
    data = generation_results("ignored", 1, 95.0, run_dir=None, figures=("tsne",))
    assert data["run"]["epoch"] is None and data["run"]["run_dir"] is None
    data["run"]["name"] = None
    (eval_dir / "results.json").write_text(json.dumps(data))
    write_png(eval_dir / "tsne.png")
    result = build_report([eval_dir], tmp_path / "out")
    assert not result.problems and result.n_runs == 1
    html = result.index_html.read_text()
    assert "Run: diffusion-eval" in html and "Evaluation diffusion-eval" in html
    assert "Training curves" not in html and "t-SNE of real and synthetic features" in html


# ---------------------------------------------------------------- bad input


def test_unknown_schema_version_is_skipped_with_a_message_rest_still_reported(tmp_path):
    runs = tmp_path / "runs"
    good = make_generation_run(runs, "good", {1: 90.0}, utility=False)
    future = runs / "future" / "eval" / "epoch001"
    future.mkdir(parents=True)
    data = generation_results("future", 1, 80.0, run_dir=None, figures=())
    data["schema_version"] = 7
    (future / "results.json").write_text(json.dumps(data))
    result = build_report(None, tmp_path / "out", runs_root=runs)
    messages = [str(p) for p in result.problems]
    assert len(messages) == 1
    assert "schema_version 7 is not supported (this medsyn reads version 1): upgrade medsyn" \
        in messages[0] and str(future / "results.json") in messages[0]
    html = result.index_html.read_text()
    assert "good @ epoch 1" in html and "future" not in html.split("problem(s) found")[0]
    assert "schema_version 7 is not supported" in html
    assert good.name in html


def test_missing_figure_is_reported_in_place(tmp_path):
    runs = tmp_path / "runs"
    run_dir = make_generation_run(runs, "acgan", {1: 90.0}, utility=False)
    (run_dir / "eval/epoch001/tsne.png").unlink()
    result = build_report([run_dir], tmp_path / "out")
    assert len(result.problems) == 1
    message = str(result.problems[0])
    assert "figure 'tsne' is listed as 'tsne.png' but" in message and "re-run `medsyn evaluate`" \
        in message
    html = result.index_html.read_text()
    assert "Figure missing: figure &#39;tsne&#39; is listed" in html
    assert "Memorization: closest synthetic / training pairs" in html   # the rest is there
    assert "acgan @ epoch 1" in html


def test_empty_runs_folder_still_writes_a_baseline_report(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    result = build_report(None, tmp_path / "out", runs_root=runs)
    assert result.n_evaluations == 0
    assert "contains no results.json and no run folder" in str(result.problems[0])
    html = result.index_html.read_text()
    assert "No evaluation results found." in html
    assert "Published generation baselines" in html and "Karbhari et al. 2021" in html
    assert "Ledig et al. 2017, Table 2" in html
    with open(result.summary_csv, newline="") as f:
        assert {r["row_type"] for r in csv.DictReader(f)} == {"baseline"}
    missing = build_report(None, tmp_path / "out2", runs_root=tmp_path / "nope")
    assert "no such folder, so there are no results to report" in str(missing.problems[0])


def test_broken_inputs_are_skipped_and_named(tmp_path):
    runs = tmp_path / "runs"
    run_dir = make_generation_run(runs, "acgan", {1: 90.0, 2: 80.0}, utility=False)
    (run_dir / "eval/epoch001/results.json").write_text('{"schema_version": 1, "metr')
    with open(run_dir / "log.jsonl", "a") as f:
        f.write('{"step": 999, "epo')
    nan_dir = runs / "nonfinite" / "eval" / "epoch001"
    nan_dir.mkdir(parents=True)
    text = json.dumps(generation_results("nonfinite", 1, 70.0, run_dir=None, figures=()))
    (nan_dir / "results.json").write_text(text.replace('"value": 70.0', '"value": NaN', 1))
    result = build_report([run_dir, nan_dir, tmp_path / "missing.json"], tmp_path / "out")
    messages = "\n".join(map(str, result.problems))
    assert "is not valid JSON (line 1" in messages
    assert "1 malformed line(s) skipped" in messages
    assert "contains NaN (not allowed" in messages
    assert "missing.json: no such file or folder" in messages
    html = result.index_html.read_text()
    assert "acgan @ epoch 2" in html and "Training curves" in html
    assert "FID unavailable: non-finite value in results.json" in html
    cells = [c for table in _parse(html).tables for row in table for c in row]
    assert not any(re.search(r"\bnan\b", c, re.IGNORECASE) for c in cells)


def test_foreign_assets_folder_is_not_deleted(tmp_path):
    out = tmp_path / "out"
    (out / "assets").mkdir(parents=True)
    write_png(out / "assets" / "mine.png")
    with pytest.raises(ConfigError, match=r"holds files medsyn did not write \(assets\)"):
        build_report(None, out, runs_root=tmp_path)
    assert (out / "assets" / "mine.png").exists()


# ---------------------------------------------------------------- CLI and packaging


def test_cli(tmp_path):
    runs = tmp_path / "runs"
    run_dir = make_generation_run(runs, "acgan", {1: 90.0}, utility=False)
    runner = CliRunner()
    out = tmp_path / "reports"
    ok = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--best-only"])
    assert ok.exit_code == 0, ok.output
    assert f"wrote {out / 'index.html'} (1 run(s), 1 evaluation(s))" in ok.output
    (run_dir / "eval/epoch001/memorization.png").unlink()
    strict = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--strict",
                                 "--overwrite"])
    assert strict.exit_code == 1
    assert "medsyn: warning:" in strict.output and "1 input problem(s)" in strict.output
    bad = runner.invoke(app, ["report", str(run_dir), "--out", str(out), "--select-by", "x"])
    assert bad.exit_code == 1 and "unknown metric 'x'" in bad.output
    assert "Traceback" not in bad.output


def test_package_data_ships_templates_css_and_baselines():
    """Every non-Python file of medsyn/reports is matched by pyproject's package-data."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["medsyn"]
    package = REPO / "medsyn"
    files = [p for p in (package / "reports").rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert {p.name for p in files} >= {"index.html.j2", "report.css", "baselines.toml"}
    for path in files:
        rel = path.relative_to(package)
        assert any(rel.match(pattern) for pattern in patterns), f"{rel} is not package data"


def test_report_build_benchmark_runs_its_repeats():
    """bench/report_build.py rebuilds one folder per repeat: it must overwrite, not stop."""
    script = Path(__file__).resolve().parents[1] / "bench" / "report_build.py"
    done = subprocess.run([sys.executable, str(script), "--runs", "1", "--epochs", "1",
                           "--repeats", "2"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "over 2 builds" in done.stdout
