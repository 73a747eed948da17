"""bench/benchmark.py: protocol validation, the selection rules' shortlist, resumption, and one
small real protocol end to end (train two epochs, evaluate both, report)."""

from __future__ import annotations

import importlib.util
import json
import sys
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
