"""Reference sensitivity beside a generator's score in the report (issue 30): a trust card with
--reference-sensitivity of the same dataset puts, under each run's value, how much the choice of
real reference alone moves that metric, and says when the run's distance to the floor is within
it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from report_fakes import generation_results, write_png

from medsyn.reports.content.reference_spread import (
    BEYOND,
    CLASS_MIX,
    REDRAWN,
    ReferenceSpread,
    generator_gap,
    reference_spread,
    spread_of,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _audit_block(halves, loo, full):
    return {"kind": "audit", "settings": {"n": 48},
            "spaces": {"pixels16": {"real_vs_real": {"fid": {"value": full}}}},
            "reference_sensitivity": {"spaces": {"pixels16": {"keys": {"fid": {
                "halves": {"min": min(halves), "max": max(halves)},
                "leave_one_class_out": {"a": loo[0], "b": loo[1], "min": min(loo),
                                        "max": max(loo)}}}}}}}


def test_spread_and_verdicts_by_hand():
    audit = _audit_block(halves=[10.0, 10.5, 11.0], loo=[12.0, 16.0], full=10.2)
    halves_range, shift, full = spread_of(audit, "pixels16", "fid")
    assert halves_range == pytest.approx(1.0)            # 11 - 10
    assert shift == pytest.approx(5.8)                   # |16 - 10.2|
    assert full == 10.2
    assert spread_of(audit, "pixels16", "kid") is None
    assert spread_of(audit, "inception-v3-compat", "fid") is None

    own = {"real_floor": {"fid_halves": {"value": 4.0}}}
    cases = ((4.9, REDRAWN), (3.1, REDRAWN), (9.0, CLASS_MIX), (9.9, BEYOND))
    for value, verdict in cases:                         # distances 0.9, 0.9, 5.0, 5.9
        got = reference_spread(audit, "a/audit.json", "pixels16", "fid", "FID", value, own,
                               own_space=True)
        assert got.verdict == verdict, value
        assert got.floor == 4.0 and "this evaluation's real-vs-real floor" in got.sentence
    # no floor of its own (or another space): the audit's real-vs-real score, with its n
    got = reference_spread(audit, "a/audit.json", "pixels16", "fid", "FID", 11.0, {},
                           own_space=True)
    assert got.floor == 10.2 and got.verdict == REDRAWN and "n = 48" in got.sentence
    assert got.short == "ref. range 1, class mix 5.8: within"
    got = reference_spread(audit, "a/audit.json", "pixels16", "fid", "FID", 4.9, own,
                           own_space=False)
    assert got.floor == 10.2 and got.verdict == CLASS_MIX


def test_generator_gap_against_the_spread_by_hand():
    spread = ReferenceSpread(halves_range=1.0, class_mix_shift=5.8, floor=None, floor_source="",
                             distance=None, verdict=None, sentence="", audit_path="a.json",
                             space="pixels16")
    cases = ((10.0, 10.9, REDRAWN), (10.0, 9.0, REDRAWN), (10.0, 15.7, CLASS_MIX),
             (10.0, 15.81, BEYOND))
    for best, second, verdict in cases:
        got = generator_gap("FID", "pixels16", ("A", best), ("B", second), spread)
        assert got.gap == pytest.approx(abs(second - best)) and got.verdict == verdict
    got = generator_gap("FID", "pixels16", ("A", 10.0), ("B", 10.9), spread)
    assert got.sentence == (
        "FID (pixels16): A 10 and B 10.9 differ by 0.9; redrawing the reference moves it by "
        "up to 1, a class-mix change by up to 5.8: the gap is within what redrawing the "
        "reference alone does, so it does not show that A is the better generator.")
    no_classes = ReferenceSpread(2.0, None, None, "", None, None, "", "a.json", "pixels16")
    got = generator_gap("KID", "pixels16", ("A", 0.01), ("B", 3.0), no_classes)
    assert got.verdict == BEYOND and "class-mix" not in got.sentence
    assert got.sentence.endswith("the gap is larger than the reference choice moves KID.")


@pytest.fixture(scope="module")
def audited_folder(tmp_path_factory):
    """A small two-class PNG folder (train/test) and its audit with reference sensitivity."""
    from medsyn.evaluators.audit import audit

    root = tmp_path_factory.mktemp("refspread")
    data = root / "data"
    for split, n in (("train", 40), ("test", 40)):
        for c, cls in enumerate(("dark", "bright")):
            for i in range(n // 2):
                path = write_png(data / split / cls / f"{i:03d}.png", size=(28, 28),
                                 seed=1000 * c + i + (0 if split == "train" else 500))
                img = np.asarray(Image.open(path)).astype(float) * 0.6 + 100 * c
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)
    out = root / "audit"
    result = audit(f"folder:{data}", "test", extractors="pixels", metrics="fid,prdc",
                   failures="blur", n=16, n_pool=40, n_bootstrap=3, out_dir=out,
                   reference_sensitivity=True, use_cache=False)
    return root, out, result


def test_report_shows_reference_spread_beside_each_run(audited_folder, tmp_path):
    from medsyn.reports import build_report

    _, audit_dir, audit = audited_folder
    halves_range, shift, _ = spread_of(audit, "pixels16", "fid")
    assert 0 < halves_range < shift
    floor = 5.0
    # three runs: distance to the floor inside the halves' range, between it and the
    # class-mix shift, and beyond both
    distances = {"close": 0.5 * halves_range, "mix": (halves_range + shift) / 2,
                 "far": 2 * shift}
    inputs = []
    for name, distance in distances.items():
        res = generation_results(name, 3, floor + distance, run_dir=None,
                                 dataset=audit["dataset"]["name"], image_size=28,
                                 classes=["bright", "dark"], utility=False, figures=())
        for entry in res["metrics"].values():
            if isinstance(entry, dict) and "extractor" in entry:
                entry["extractor"] = "pixels16"
        res["metrics"]["real_floor"]["fid_halves"]["value"] = floor
        res["provenance"]["extractor"] = {"name": "pixels16"}
        folder = tmp_path / "eval" / name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(res))
        inputs.append(folder)
    built = build_report([*inputs, audit_dir], tmp_path / "report")
    html = built.index_html.read_text()
    short = f"ref. range {halves_range:.3g}, class mix {shift:.3g}"
    assert f'<span class="refspread within" title="FID {floor + distances["close"]:.3g} is ' \
           in html
    assert html.count(f"{short}: within</span>") == 1
    assert html.count(f"{short}: within class mix</span>") == 1
    assert f"{short}</span>" in html                          # the far run: no 'within'
    assert "not evidence of a difference from real data" in html
    assert "larger than the reference choice moves the metric" in html
    # the PRDC columns read their floor from the audit (no floor of their own in results.json)
    assert "from the audit&#39;s real-vs-real score" in html or \
        "from the audit's real-vs-real score" in html
    assert "of 15 values here" in html      # 3 runs x FID, precision, recall, density, coverage
    md = built.summary_md.read_text()
    assert f"({short}: within)" in md


def _two_runs(tmp_path, audit, fids):
    inputs = []
    for name, fid in fids.items():
        res = generation_results(name, 3, fid, run_dir=None, dataset=audit["dataset"]["name"],
                                 image_size=28, classes=["bright", "dark"], utility=False,
                                 figures=())
        for entry in res["metrics"].values():
            if isinstance(entry, dict) and "extractor" in entry:
                entry["extractor"] = "pixels16"
        res["provenance"]["extractor"] = {"name": "pixels16"}
        folder = tmp_path / "eval" / name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(res))
        inputs.append(folder)
    return inputs


@pytest.mark.parametrize("where", ["within", "beyond"])
def test_report_says_whether_the_gap_between_generators_exceeds_the_spread(
        audited_folder, tmp_path, where):
    """Two runs whose FIDs differ by half the halves' range (within) or by twice the class-mix
    shift (beyond): the section says which, naming both runs; without the audit it says
    nothing about the reference."""
    from medsyn.reports import build_report

    _, audit_dir, audit = audited_folder
    halves_range, shift, _ = spread_of(audit, "pixels16", "fid")
    gap = 0.5 * halves_range if where == "within" else 2 * shift
    inputs = _two_runs(tmp_path, audit, {"gan-a": 20.0, "gan-b": 20.0 + gap})
    built = build_report([*inputs, audit_dir], tmp_path / "report")
    md = built.summary_md.read_text()
    head = (f"FID (pixels16): gan-a 20 and gan-b {20 + gap:.3g} differ by {gap:.3g}; "
            f"redrawing the reference moves it by up to {halves_range:.3g}, a class-mix "
            f"change by up to {shift:.3g}: ")
    reading = ("the gap is within what redrawing the reference alone does, so it does not "
               "show that gan-a is the better generator." if where == "within" else
               "the gap is larger than the reference choice moves FID.")
    assert head + reading in md
    assert "Is the best run's lead larger than the choice of reference?" in md
    html = built.index_html.read_text()
    assert "Is the best run&#39;s lead larger" in html or "Is the best run's lead larger" in html
    # precision and recall move with the FID in the fakes (recall up): a sentence each, with
    # the better run first; density and coverage are the same for both: no order, no sentence
    assert "Precision (pixels16): gan-a" in md and "Recall (pixels16): gan-b" in md
    assert "Density (pixels16)" not in md and "Coverage (pixels16)" not in md

    alone = build_report(inputs, tmp_path / "report-alone")
    text = alone.summary_md.read_text() + alone.index_html.read_text()
    assert "choice of reference" not in text and "class=\"refspread" not in text


def test_a_run_with_several_evaluations_counts_once_in_the_gap(audited_folder, tmp_path):
    """Two epochs of gan-a beat gan-b: the gap sentence compares gan-a's best epoch with
    gan-b, not gan-a with itself."""
    from medsyn.reports import build_report

    _, audit_dir, audit = audited_folder
    run_dir = tmp_path / "runs" / "gan-a"
    run_dir.mkdir(parents=True)
    inputs = []
    for name, epoch, fid, folder_run in (("gan-a", 3, 20.0, run_dir), ("gan-a", 4, 21.0, run_dir),
                                         ("gan-b", 3, 30.0, None)):
        res = generation_results(name, epoch, fid, run_dir=folder_run and str(folder_run),
                                 dataset=audit["dataset"]["name"], image_size=28,
                                 classes=["bright", "dark"], utility=False, figures=())
        for entry in res["metrics"].values():
            if isinstance(entry, dict) and "extractor" in entry:
                entry["extractor"] = "pixels16"
        res["provenance"]["extractor"] = {"name": "pixels16"}
        folder = tmp_path / "eval" / f"{name}-{epoch}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(res))
        inputs.append(folder)
    built = build_report([*inputs, audit_dir], tmp_path / "report")
    md = built.summary_md.read_text()
    assert "FID (pixels16): gan-a @ epoch 3 20 and gan-b 30 differ by 10;" in md
    assert "gan-a @ epoch 4 21" not in md
