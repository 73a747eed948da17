"""Progress output: plain lines when stderr is not a terminal (logs, nohup, CI)."""

import io

import pytest
from tqdm.auto import tqdm

from medsyn import utils
from medsyn.utils import PlainProgress, progress


def test_plain_progress_prints_final_line_with_count_and_rate(monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0])
    monkeypatch.setattr(utils.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    with PlainProgress(total=4, desc="train features", unit="img", interval=100.0,
                       quiet_below=2.0, stream=out) as bar:
        for _ in range(4):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["done train features: 4/4 img in 5.0 s (0.80 img/s)"]


def test_plain_progress_prints_periodic_lines_with_eta(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(utils.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = PlainProgress(total=10, desc="fake features", unit="img", interval=30.0, stream=out)
    for _ in range(10):
        now[0] += 10.0
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    # a line every 30 s (after images 3, 6, 9) and the final one
    assert len(lines) == 4
    assert lines[0] == "fake features: 3/10 img in 30.0 s (0.10 img/s, about 70 s left)"
    assert lines[-1].startswith("done fake features: 10/10 img in 100.0 s")


def test_plain_progress_is_quiet_for_short_stages():
    out = io.StringIO()
    for _ in PlainProgress(range(3), desc="quick", stream=out, quiet_below=60.0):
        pass
    assert out.getvalue() == ""


def test_plain_progress_iterates_and_shows_postfix(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(utils.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = PlainProgress(["a", "b"], desc="epoch 1/2", unit="step", stream=out, quiet_below=1.0)
    seen = []
    for item in bar:
        seen.append(item)
        bar.set_postfix(loss_d="0.500")
        now[0] += 1.0
    assert seen == ["a", "b"]
    assert out.getvalue().strip() == "done epoch 1/2: 2/2 step in 2.0 s (1.00 step/s) loss_d=0.500"


@pytest.mark.parametrize("mode, kind", [("plain", PlainProgress), ("off", None), ("bar", None),
                                        ("nonsense", PlainProgress)])
def test_progress_mode_from_environment(monkeypatch, mode, kind):
    monkeypatch.setenv("MEDSYN_PROGRESS", mode)
    bar = progress(total=1, desc="x")
    if kind is PlainProgress:     # pytest's stderr is not a terminal, so auto means plain
        assert isinstance(bar, PlainProgress)
    else:
        assert isinstance(bar, tqdm)
        if mode == "off":
            assert bar.disable
    bar.close()
