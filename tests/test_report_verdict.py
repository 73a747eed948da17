"""The report's plain-language verdict, readable raw values and like-with-like epoch selection."""

from __future__ import annotations

import json
from pathlib import Path

from report_fakes import generation_results

from medsyn.reports import build_report
from medsyn.reports.content.verdict import (
    FID_FLOOR_FAR,
    evaluation_verdict,
    memorization_details,
    plain_number,
)


def _metrics(**overrides):
    m = generation_results("r", 1, 143.7, run_dir=None)["metrics"]
    m.update(overrides)
    return m


def test_verdict_reads_fid_against_the_train_vs_test_floor_and_names_the_numbers():
    m = _metrics()
    m["real_floor"]["fid_train_vs_test"]["value"] = 31.9
    v = evaluation_verdict(m)
    assert v.sentences[0] == ("FID is 4.5x the real-vs-real floor (143.7 vs 31.9, real train vs "
                              "test): far from the real distribution.")
    assert v.levels[0] == "poor" and v.level == "poor"
    assert f"> {FID_FLOOR_FAR}x far" in v.thresholds


def test_verdict_falls_back_to_the_halves_floor_and_grades_closeness():
    m = _metrics(fid={"value": 5.0, "ci95": [4, 6]})
    del m["real_floor"]["fid_train_vs_test"]
    m["real_floor"]["fid_halves"]["value"] = 4.0
    v = evaluation_verdict(m)
    assert v.sentences[0].startswith("FID is 1.2x the real-vs-real floor (5.0 vs 4.0, two real "
                                     "halves): the synthetic images score about as real data")
    assert v.levels[0] == "good"


def test_verdict_flags_mode_collapse_and_copying():
    m = _metrics(recall={"value": 0.0, "ci95": [0, 0]}, coverage={"value": 0.02},
                 memorization={"fraction": 0.2, "ci95": [0.15, 0.25], "percentile": 1})
    text = " ".join(evaluation_verdict(m).sentences)
    assert "Recall 0.000, coverage 0.020: the samples cover almost none of the real data" in text
    assert "20.0 % of the samples are closer to a training image" in text
    assert "about 1 % expected without copying): inspect" in text


def test_verdict_does_not_flag_memorization_within_its_interval():
    m = _metrics(memorization={"fraction": 0.025, "ci95": [0.005, 0.04], "percentile": 1})
    text = " ".join(evaluation_verdict(m).sentences)
    assert "no sign of copying" in text


def test_verdict_without_numbers_is_empty_and_unknown():
    v = evaluation_verdict({"is": {"value": None, "unavailable": "no logits"}})
    assert v.sentences == [] and v.level == "unknown"


def test_plain_numbers_show_integers_as_integers():
    assert plain_number(624.0) == "624"
    assert plain_number(624) == "624"
    assert plain_number(0.8125) == "0.812"
    assert plain_number(0.00012) == "0.00012"
    assert plain_number(float("nan")) == "n/a"
    assert plain_number(True) == "yes"


def test_memorization_details_are_facts_and_a_pairs_table_not_a_dict_dump():
    mem = {"fraction": 0.01, "threshold": 11.7, "percentile": 1.0, "n_fake": 1000.0,
           "closest": [{"fake_index": 3, "train_index": 17, "distance": 5.25}]}
    d = memorization_details(mem)
    assert ("synthetic images", "1000") in d["facts"]
    assert ("percentile of held-out distances", "1") in d["facts"]
    assert d["pairs"] == [{"fake": "3", "train": "17", "distance": "5.250"}]
    assert not any("{" in v for _, v in d["facts"])


def _write(root: Path, folder: str, results: dict) -> None:
    path = root / folder / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(results))


def test_selection_compares_only_evaluations_of_the_same_sample_size(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "acgan"
    (run_dir).mkdir(parents=True)
    # epoch 2 was scored at n=200 and given the lowest FID: it must not be compared with the
    # epochs scored at n=1000
    for epoch, fid, n in ((2, 50.0, 200), (3, 140.0, 1000), (4, 120.0, 1000), (5, 130.0, 1000)):
        _write(run_dir / "eval", f"epoch{epoch:03d}",
               generation_results("acgan", epoch, fid, run_dir=str(run_dir), n=n))
    # the same epoch evaluated twice (two folders) is listed once, with both folders named
    _write(run_dir / "eval", "epoch005-again",
           generation_results("acgan", 5, 131.0, run_dir=str(run_dir), n=1000))
    result = build_report(None, tmp_path / "reports", runs_root=runs)
    html = result.index_html.read_text()
    assert "lowest FID among 4 evaluations at n_fake=1000" in html
    assert "1 evaluation(s) under other conditions (sample size or feature extractor) not " \
           "compared" in html
    assert "&#9733; selected" in html
    assert "2, 3, 4, 5 (2 evaluations: " in html
    assert "Verdicts" in html and "real-vs-real floor" in html
    assert "Fidelity and diversity (features: inception-v3-compat)" in html


def test_multi_space_evaluation_shows_every_metric_in_every_space(tmp_path):
    runs = tmp_path / "runs"
    res = generation_results("multi", 3, 80.0, run_dir=None)
    first = json.loads(json.dumps(res["metrics"]))
    wavelet = json.loads(json.dumps(res["metrics"]))
    wavelet["fid"] = {"value": 169.1, "ci95": [160.0, 175.5], "n_real": 100, "n_fake": 100,
                      "extractor": "wavelet-packet"}
    wavelet["real_floor"]["fid_halves"]["value"] = 12.25
    res["metrics"]["spaces"] = {"inception": first, "wavelet": wavelet}
    _write(runs, "multi-eval", res)
    html = build_report([runs / "multi-eval"], tmp_path / "reports").index_html.read_text()
    section = html.split("<h4>Every feature space</h4>")[1].split("</table>")[0]
    assert "<th>inception</th><th>wavelet</th>" in section
    assert "169.10" in section and "[160.00, 175.50]" in section
    assert "FD floor: two real halves" in section and "12.25" in section
    assert "Precision" in section
