"""bench/benchmark.py: protocol validation, the selection rules' shortlist, resumption, and one
small real protocol end to end (train two epochs, evaluate both, report)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("medsyn_bench_benchmark",
                                                  REPO / "bench" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()

PROTOCOL = """
[protocol]
name = "tiny"
select = "{select}"
shortlist = 1

[evaluate]
metrics = "fid,prdc,real_floor"
extractor = "pixels"
n_real = 64
bootstrap = 0
device = "cpu"

[utility]
utility_seeds = "0"

[[run]]
name = "cgan-tiny"
kind = "cgan"
evaluate_epochs = [1, 2]
[run.train]
dataset = "pneumoniamnist"
image_size = 28
g_width = 8
d_width = 8
threads = 1
device = "cpu"
"""


def write_protocol(tmp_path, select="fid", text=None) -> Path:
    path = tmp_path / "protocol.toml"
    path.write_text(text if text is not None else PROTOCOL.format(select=select))
    return path


@pytest.mark.parametrize("change, message", [
    (("select = \"fid\"", "select = \"best\""), "select = 'best'; use one of"),
    (("kind = \"cgan\"", "kind = \"vae\""), "kind 'vae' is not one of"),
    (("evaluate_epochs = [1, 2]", "evaluate_epochs = [2, 1]"), "rising list"),
    (("g_width = 8", "epochs = 8"), "epochs is set by the benchmark"),
    (("bootstrap = 0", "out = \"x\""), r"\[evaluate\] out is set by the benchmark"),
    (("name = \"cgan-tiny\"", "name = \"a/b\""), "folder-safe name"),
    (("evaluate_epochs = [1, 2]", "evaluate_epochs = [1, 2]\nutility = \"no\""),
     "utility must be true or false"),
])
def test_bad_protocols_are_refused_with_the_entry_named(tmp_path, change, message):
    text = PROTOCOL.format(select="fid").replace(*change)
    with pytest.raises(benchmark.ProtocolError, match=message):
        benchmark.load_protocol(write_protocol(tmp_path, text=text))


def test_bad_protocol_exits_2_with_one_line(tmp_path, capsys):
    path = write_protocol(tmp_path, text="[protocol\n")
    assert benchmark.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "Traceback" not in err


def test_commands_follow_the_protocol(tmp_path):
    p = benchmark.load_protocol(write_protocol(tmp_path), out=tmp_path / "out")
    bench = benchmark.Benchmark(p, python="python")
    run = p.runs[0]
    train = bench.train_command(run)
    assert train[:5] == ["python", "-m", "medsyn", "train", "cgan"]
    assert "--resume" not in train
    i = train.index("--epochs")
    assert train[i + 1] == "2" and train[train.index("--checkpoint-every") + 1] == "1"
    assert train[train.index("--keep-last") + 1] == "0"
    (bench.run_dir(run)).mkdir(parents=True)
    (bench.run_dir(run) / "last.pt").write_bytes(b"")
    assert bench.train_command(run)[-2:] == ["--resume", str(bench.run_dir(run) / "last.pt")]
    ev = bench.evaluate_command(run, 2, utility=True)
    assert ev[ev.index("--metrics") + 1] == "fid,prdc,real_floor,utility"
    assert ev[ev.index("--utility-seeds") + 1] == "0"
    assert "--overwrite" not in ev
    assert benchmark.cli_flags({"compile": True, "quiet": False, "n_real": 5}) == [
        "--compile", "--n-real", "5"]
    # training options are --x/--no-x pairs: false switches off what a recipe switched on
    assert benchmark.cli_flags({"spectral_norm": False, "ema_decay": 0.0},
                               negate_false=True) == ["--no-spectral-norm", "--ema-decay", "0.0"]


def _fake_result(bench, run, epoch, fid, utility=False):
    folder = bench.eval_dir(run, epoch)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"fid": {"value": fid}}
    if utility:
        metrics["utility"] = {"arms": {}}
    (folder / "results.json").write_text(json.dumps({"metrics": metrics}))


def test_fid_then_tstr_shortlists_the_lowest_fid_epochs(tmp_path):
    text = PROTOCOL.format(select="fid-then-tstr").replace("[1, 2]", "[1, 2, 3, 4]").replace(
        "shortlist = 1", "shortlist = 2")
    p = benchmark.load_protocol(write_protocol(tmp_path, text=text), out=tmp_path / "out")
    bench = benchmark.Benchmark(p, python="python")
    run = p.runs[0]
    for epoch, fid in {1: 90.0, 2: 40.0, 3: 55.0, 4: 41.0}.items():
        _fake_result(bench, run, epoch, fid)
    assert bench.utility_epochs(run) == [2, 4]
    _fake_result(bench, run, 2, 40.0, utility=True)
    assert bench.has_utility(run, 2) and not bench.has_utility(run, 4)
    # a re-evaluation with utility replaces the folder's evaluation
    assert bench.evaluate_command(run, 4, utility=True)[-1] == "--overwrite"
    assert bench.report_command()[bench.report_command().index("--select-by") + 1] == (
        "tstr_acc,fid")
    dcgan = benchmark.RunSpec("d", "dcgan", [1, 2])
    assert bench.utility_epochs(dcgan) == []


def test_a_run_can_opt_out_of_utility(tmp_path):
    text = PROTOCOL.format(select="fid-then-tstr").replace(
        "evaluate_epochs = [1, 2]", "evaluate_epochs = [1, 2]\nutility = false")
    p = benchmark.load_protocol(write_protocol(tmp_path, text=text), out=tmp_path / "out")
    bench = benchmark.Benchmark(p, python="python")
    run = p.runs[0]
    assert run.utility is False
    for epoch, fid in {1: 90.0, 2: 40.0}.items():
        _fake_result(bench, run, epoch, fid)
    assert bench.utility_epochs(run) == []
    assert not any(step.startswith("utility") for step in bench.pending(run))
    assert benchmark.load_protocol(write_protocol(tmp_path, "fid-then-tstr")).runs[0].utility


def test_a_changed_protocol_is_refused_unless_allowed(tmp_path):
    out = tmp_path / "out"
    p = benchmark.load_protocol(write_protocol(tmp_path), out=out)
    benchmark.Benchmark(p).check_protocol(False)
    changed = benchmark.load_protocol(
        write_protocol(tmp_path, text=PROTOCOL.format(select="fid").replace("[1, 2]", "[1, 3]")),
        out=out)
    with pytest.raises(benchmark.ProtocolError, match="different protocol"):
        benchmark.Benchmark(changed).check_protocol(False)
    benchmark.Benchmark(changed).check_protocol(True)


def test_tiny_protocol_end_to_end_and_resumed(tmp_path, data_root, capsys):
    """Trains 2 epochs, evaluates both in pixel space, builds the report; a second call finds
    everything done and only rebuilds the report."""
    out = tmp_path / "out"
    path = write_protocol(tmp_path)
    assert benchmark.main([str(path), "--out", str(out)]) == 0, capsys.readouterr()
    run_dir = out / "runs" / "cgan-tiny"
    for epoch in (1, 2):
        result = json.loads((run_dir / f"eval/epoch{epoch:03d}/results.json").read_text())
        assert result["metrics"]["fid"]["extractor"].startswith("pixels")
        assert result["metrics"]["fid"]["value"] > 0
    assert (out / "report" / "index.html").is_file()
    summary = (out / "report" / "summary.md").read_text()
    assert "lowest FID among 2 evaluations" in summary
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == ["train", "evaluate epoch001", "evaluate epoch002",
                                          "report"]
    assert all(s["returncode"] == 0 and s["wall_s"] >= 0 for s in steps)
    # each step's own CPU time (wait4), and the machine's load around it
    assert all(0 < s["cpu_s"] and s["load_before"] >= 0 and s["load_after"] >= 0
               for s in steps)

    assert benchmark.main([str(path), "--out", str(out)]) == 0
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps[4:]] == ["report"]
    assert benchmark.main([str(path), "--out", str(out), "--plan"]) == 0
    assert "cgan-tiny: done" in capsys.readouterr().out
    assert benchmark.main([str(path), "--out", str(out), "--tables"]) == 0
    tables = capsys.readouterr().out
    assert "| epoch | FID |" in tables and "not evaluated" not in tables
    fid = json.loads((run_dir / "eval/epoch002/results.json").read_text())["metrics"]["fid"]
    assert f"| 2 | {fid['value']:.2f} |" in tables
    assert "| cgan-tiny | " in tables


class _StepsInFlight:
    """Stands in for the local executor: each step takes a moment and leaves its product (a
    checkpoint; results.json with the FID of ``fids``), counting the steps in flight."""

    name = "local"

    def __init__(self, fids):
        self.fids, self.lock = fids, threading.Lock()
        self.now = self.most = 0
        self.labels: list[str] = []

    def run(self, label, kind, cmd, log_path):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.labels.append(label)
        time.sleep(0.2)
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        if kind == "train":
            (out / f"epoch{int(cmd[cmd.index('--epochs') + 1]):03d}.pt").write_bytes(b"")
        else:
            metrics = {"fid": {"value": self.fids[out.parents[1].name][int(out.name[5:])]}}
            if kind == "utility":
                metrics["utility"] = {"arms": {}}
            (out / "results.json").write_text(json.dumps({"metrics": metrics}))
        with self.lock:
            self.now -= 1
        return {"returncode": 0, "wall_s": 0.2, "cpu_s": 0.1}


def test_jobs_caps_the_steps_in_flight_and_keeps_each_runs_order(tmp_path, monkeypatch):
    """--jobs 2 over three runs: never more than two steps at a time, two at some time, and
    each run's steps in the protocol's order, its utility shortlist from its own FIDs."""
    fids = {"r1": {1: 50.0, 2: 40.0}, "r2": {1: 30.0, 2: 60.0}, "r3": {1: 45.0, 2: 44.0}}
    head, run_block = PROTOCOL.format(select="fid-then-tstr").split("[[run]]")
    text = head + "".join("[[run]]" + run_block.replace('"cgan-tiny"', f'"{name}"')
                          for name in fids)
    steps = _StepsInFlight(fids)
    monkeypatch.setattr(benchmark, "LocalSteps", lambda: steps)
    assert benchmark.main([str(write_protocol(tmp_path, text=text)), "--out",
                           str(tmp_path / "out"), "--jobs", "2", "--no-report"]) == 0
    assert steps.most == 2
    for name, utility_epoch in (("r1", 2), ("r2", 1), ("r3", 2)):
        assert [label.split(": ")[1] for label in steps.labels if label.startswith(name)] == \
            ["train", "evaluate epoch001", "evaluate epoch002",
             f"utility epoch{utility_epoch:03d}"]


def test_jobs_2_gives_the_report_of_jobs_1(tmp_path, data_root, capsys):
    """Two tiny runs side by side (--jobs 2) end with the same report and results as one after
    the other."""
    one_epoch = PROTOCOL.format(select="fid").replace("evaluate_epochs = [1, 2]",
                                                      "evaluate_epochs = [1]")
    _, run_block = one_epoch.split("[[run]]")
    text = one_epoch + "\n[[run]]" + run_block.replace('"cgan-tiny"', '"cgan-tiny-seed1"') \
        + "seed = 1\n"
    path = write_protocol(tmp_path, text=text)
    outs = {jobs: tmp_path / f"jobs{jobs}" for jobs in (1, 2)}
    for jobs, out in outs.items():
        assert benchmark.main([str(path), "--out", str(out), "--jobs", str(jobs)]) == 0, \
            capsys.readouterr()
    starts = {}
    for rec in (json.loads(line) for line in (outs[2] / "steps.jsonl").read_text().splitlines()):
        if rec["step"] == "train":
            end = dt.datetime.fromisoformat(rec["date"]).timestamp()
            starts[rec["run"]] = (end - rec["wall_s"], end)
    (a0, a1), (b0, b1) = starts.values()
    # the two trainings ran side by side (the log's dates are whole seconds)
    assert min(a1, b1) - max(a0, b0) > 2, starts
    for name in ("summary.csv", "summary.md"):
        assert (outs[1] / "report" / name).read_text().replace(str(outs[1]), "OUT") == \
            (outs[2] / "report" / name).read_text().replace(str(outs[2]), "OUT")
    for run in ("cgan-tiny", "cgan-tiny-seed1"):
        a, b = (json.loads((out / "runs" / run / "eval/epoch001/results.json").read_text())
                for out in outs.values())
        assert a["metrics"] == b["metrics"]
