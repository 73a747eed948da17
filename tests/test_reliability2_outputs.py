"""Faults and attacks, round 2 (issue 26; docs/reliability.md): what medsyn writes. Output
folders holding files medsyn did not write, kills while an audit, a report or samples are
written, long and symlinked --out folders, figures named outside their evaluation folder,
spreadsheet formulas in summary.csv and a full disk under the report.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
from pathlib import Path

import pytest
from faults import TINY, make_image_folder, one_line_error
from PIL import Image
from report_fakes import make_generation_run, write_png
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.generators import train

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """2 x 60 images: the automatic test split holds 24, enough for a small audit."""
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=60)


@pytest.fixture(scope="module")
def dataset(image_folder) -> str:
    return f"folder:{image_folder}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cgan"
    return train("cgan", dataset=dataset, out=str(out), epochs=1, **TINY)


def _evaluate(image_folder, out, *extra, fake: Path | None = None):
    fake = fake if fake is not None else image_folder / "calm"
    return runner.invoke(app, ["evaluate", "--fake", str(fake), "--real",
                               f"folder:{image_folder}:train", "--extractor", "pixels",
                               "--metrics", "fid", "--bootstrap", "0", "--device", "cpu",
                               "--out", str(out), *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*") if re.search(r"\.(staging|replaced)$", p.name)]


# ---------------------------------------------------------------- 1. never delete others' files


def test_evaluate_overwrite_never_deletes_files_medsyn_did_not_write(tmp_path, image_folder):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "results.json").write_text("{}")
    (project / "src" / "train.py").write_text("print('my thesis code')")
    before = _snapshot(project)
    refused = one_line_error(_evaluate(image_folder, project), str(project))
    assert "--overwrite" not in refused          # no advice to destroy the user's files
    one_line_error(_evaluate(image_folder, project, "--overwrite"), str(project),
                   "did not write")
    assert _snapshot(project) == before
    # an evaluation medsyn wrote, beside which the user put a file of their own
    mine = tmp_path / "eval"
    assert _evaluate(image_folder, mine).exit_code == 0
    (mine / "notes.txt").write_text("my reading of these numbers")
    before = _snapshot(mine)
    one_line_error(_evaluate(image_folder, mine, "--overwrite"), "notes.txt")
    assert _snapshot(mine) == before
    (mine / "notes.txt").unlink()
    replaced = _evaluate(image_folder, mine, "--overwrite", "--seed", "3")
    assert replaced.exit_code == 0, replaced.output
    assert not _leftovers(tmp_path)


def test_report_overwrite_never_deletes_files_medsyn_did_not_write(tmp_path, trained):
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "index.html").write_text("my own home page")
    (mine / "blog").mkdir()
    (mine / "blog" / "post.md").write_text("a post")
    before = _snapshot(mine)
    for extra in ([], ["--overwrite"]):
        one_line_error(runner.invoke(app, ["report", str(trained), "--out", str(mine), *extra]),
                       str(mine))
        assert _snapshot(mine) == before
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(trained), "--out", str(out)]).exit_code == 0
    again = runner.invoke(app, ["report", str(trained), "--out", str(out), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert (out / "index.html").is_file() and not _leftovers(tmp_path)


# ---------------------------------------------------------------- 2. audit


def _audit(dataset, out, failures, *extra):
    return runner.invoke(app, ["audit", "--dataset", f"{dataset}:test", "--extractor", "pixels",
                               "--metrics", "fid", "--failures", failures, "-n", "8",
                               "--bootstrap", "2", "--device", "cpu", "--out", str(out),
                               *extra])


def test_audit_refuses_to_overwrite_and_replaces_a_whole_audit_when_asked(tmp_path, dataset):
    out = tmp_path / "audit"
    first = _audit(dataset, out, "blur,noise")
    assert first.exit_code == 0, first.output
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert len(figures) == 2
    before = _snapshot(out)
    one_line_error(_audit(dataset, out, "blur"), str(out), "--overwrite")
    assert _snapshot(out) == before
    second = _audit(dataset, out, "blur", "--overwrite")
    assert second.exit_code == 0, second.output
    assert [p.name for p in (out / "figures").iterdir()] == [f for f in figures if "blur" in f]
    assert list(json.loads((out / "audit.json").read_text())["failures"]) == ["blur"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "audit.json").write_text("{}")
    (foreign / "card.md").write_text("my notes")
    one_line_error(_audit(dataset, foreign, "blur", "--overwrite"), "did not write")
    assert (foreign / "card.md").read_text() == "my notes"
    assert not _leftovers(tmp_path)


def _kill_when_writing(monkeypatch, name: str):
    """The process dies (KeyboardInterrupt) at the moment a file called ``name`` is put in
    place, after whatever was written before it."""
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            raise KeyboardInterrupt
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_a_kill_while_an_audit_is_written_leaves_the_previous_audit_whole(
        tmp_path, monkeypatch, dataset):
    out = tmp_path / "audit"
    assert _audit(dataset, out, "blur,noise").exit_code == 0
    before = _snapshot(out)
    # (medsyn before --overwrite existed replaced an audit silently)
    replace = ["--overwrite"] if "--overwrite" in runner.invoke(app, ["audit", "--help"]).output \
        else []
    with monkeypatch.context() as m:
        _kill_when_writing(m, "audit.json")
        killed = _audit(dataset, out, "blur", *replace)
    assert killed.exit_code != 0
    assert _snapshot(out) == before


# ---------------------------------------------------------------- 3. report


def _assets_named(index: Path) -> list[str]:
    return re.findall(r'(?:src|href)="(assets/[^"]+)"', index.read_text())


def test_a_kill_during_report_overwrite_leaves_the_previous_report_whole(
        tmp_path, monkeypatch, trained):
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(trained), "--out", str(out)]).exit_code == 0
    before = _snapshot(out)
    assert _assets_named(out / "index.html")
    other = make_generation_run(tmp_path / "runs", "other", {1: 80.0})
    with monkeypatch.context() as m:
        _kill_when_writing(m, "index.html")
        killed = runner.invoke(app, ["report", str(other), "--out", str(out), "--overwrite"])
    assert killed.exit_code != 0
    assert _snapshot(out) == before
    assert all((out / rel).is_file() for rel in _assets_named(out / "index.html"))


# ---------------------------------------------------------------- 4. sample


def test_a_killed_sample_is_not_taken_for_a_complete_set_of_fakes(
        tmp_path, monkeypatch, trained, image_folder):
    out = tmp_path / "samples"
    real_save = Image.Image.save
    saved = []

    def save(self, fp, *args, **kwargs):
        saved.append(1)
        if len(saved) == 5:
            raise KeyboardInterrupt       # killed while the fifth image is encoded
        return real_save(self, fp, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Image.Image, "save", save)
        runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n", "12",
                            "--batch-size", "4", "--out", str(out), "--device", "cpu"])
    assert list(out.rglob("*.png")) and not (out / "labels.csv").exists()
    line = one_line_error(_evaluate(image_folder, tmp_path / "eval", fake=out), str(out))
    assert "interrupted" in line or "incomplete" in line
    assert not (tmp_path / "eval" / "results.json").exists()
    again = runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n", "12",
                                "--out", str(out), "--device", "cpu"])
    one_line_error(again, str(out))
    complete = tmp_path / "complete"
    assert runner.invoke(app, ["sample", "--checkpoint", str(trained / "last.pt"), "-n", "12",
                               "--out", str(complete), "--device", "cpu"]).exit_code == 0
    scored = _evaluate(image_folder, tmp_path / "eval2", fake=complete)
    assert scored.exit_code == 0, scored.output


# ---------------------------------------------------------------- 13. smaller ones


def test_an_output_folder_name_of_245_characters_is_written(tmp_path, image_folder):
    out = tmp_path / ("e" * 245)
    for extra in ([], ["--overwrite"]):
        result = _evaluate(image_folder, out, *extra)
        assert result.exit_code == 0, result.output
        assert (out / "results.json").is_file()
    assert not _leftovers(tmp_path)


def test_a_symlinked_output_folder_stays_a_link_after_overwrite(tmp_path, image_folder):
    target = tmp_path / "real" / "eval"
    target.parent.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    assert _evaluate(image_folder, link).exit_code == 0
    first = (target / "results.json").read_bytes()
    result = _evaluate(image_folder, link, "--overwrite", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (target / "results.json").read_bytes() != first
    assert not _leftovers(tmp_path) and not [p for p in tmp_path.rglob("*replaced*")]


def test_a_figure_named_outside_its_evaluation_folder_is_not_copied(tmp_path):
    runs = tmp_path / "runs"
    run = make_generation_run(runs, "run", {1: 90.0})
    secret = write_png(tmp_path / "private" / "scan.png", (40, 40), seed=7)
    results = run / "eval" / "epoch001" / "results.json"
    data = json.loads(results.read_text())
    data["figures"] = {"tsne": str(secret), "memorization": "../../../private/scan.png"}
    results.write_text(json.dumps(data))
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--runs-root", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    copied = [p for p in (out / "assets").rglob("*") if p.is_file()
              and p.read_bytes() == secret.read_bytes()]
    assert not copied
    assert "outside" in (out / "index.html").read_text()


def test_summary_csv_cells_cannot_start_a_spreadsheet_formula(tmp_path):
    runs = tmp_path / "runs"
    make_generation_run(runs, "=HYPERLINK(\"http://x.test\",\"open\")", {1: 90.0},
                        dataset="@SUM(A1)", classes=["+cmd", "-2+3"])
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", "--runs-root", str(runs), "--out", str(out)]
                         ).exit_code == 0
    with open(out / "summary.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert any("HYPERLINK" in c for c in cells)

    def number(text):
        try:
            float(text)
            return True
        except ValueError:
            return False

    formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
                and not number(c)]
    assert not formulas


def test_a_full_disk_under_the_report_names_the_output_folder(tmp_path, monkeypatch, trained):
    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "report"
    monkeypatch.setattr(os, "sendfile", full)
    result = runner.invoke(app, ["report", str(trained), "--out", str(out)])
    line = one_line_error(result, "disk full", str(out))
    assert f"(in {trained}" not in line and f"in {trained}/" not in line
    assert not out.exists() or not any(out.iterdir())

