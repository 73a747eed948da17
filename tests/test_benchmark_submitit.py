"""bench/benchmark.py --executor submitit (bench/step_executors.py), with submitit's local
executor: a tiny protocol whose dispatcher is killed while a job runs ends, once started again,
with the report of --executor local and without submitting the running step twice; a failing
step is reported with its log; resources are passed through per step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("submitit")

from test_benchmark import PROTOCOL, REPO, benchmark, write_protocol  # noqa: E402

ONE_EPOCH = PROTOCOL.format(select="fid").replace("evaluate_epochs = [1, 2]",
                                                  "evaluate_epochs = [1]")


def _steps(out):
    path = out / "steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _normalised(path, out):
    return path.read_text().replace(str(out), "OUT")


def test_killed_submitit_dispatch_resumes_and_ends_with_the_local_report(tmp_path, data_root,
                                                                          capsys):
    protocol = write_protocol(tmp_path, text=ONE_EPOCH)
    local_out, jobs_out = tmp_path / "local", tmp_path / "submitit"
    assert benchmark.main([str(protocol), "--out", str(local_out)]) == 0, capsys.readouterr()

    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDSYN_PROGRESS": "off"}
    state = jobs_out / "jobs" / "cgan-tiny-train.json"
    dispatcher = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "benchmark.py"), str(protocol), "--out",
         str(jobs_out), "--executor", "submitit", "--cluster", "local"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state.exists(), "the training job was never submitted"
    finally:
        dispatcher.send_signal(signal.SIGKILL)          # a dispatch killed mid-training
        dispatcher.wait()
    train_job = json.loads(state.read_text())["job_id"]
    assert not (jobs_out / "report").exists()

    capsys.readouterr()
    assert benchmark.main([str(protocol), "--out", str(jobs_out), "--executor", "submitit",
                           "--cluster", "local"]) == 0
    said = capsys.readouterr().out
    # the training job outlived its dispatcher: it was waited for, never submitted again
    assert json.loads(state.read_text())["job_id"] == train_job
    assert "submitted cgan-tiny: train" not in said
    train_records = [s for s in _steps(jobs_out) if s["step"] == "train"]
    assert len(train_records) <= 1 and all(s["job_id"] == train_job for s in train_records)
    steps = _steps(jobs_out)
    assert [s["step"] for s in steps if s["step"] != "train"] == ["evaluate epoch001", "report"]
    assert all(s["returncode"] == 0 and s["executor"] == "submitit-local" for s in steps)
    for name in ("summary.csv", "summary.md"):
        assert _normalised(jobs_out / "report" / name, jobs_out) == \
            _normalised(local_out / "report" / name, local_out)
    a, b = (json.loads((out / "runs/cgan-tiny/eval/epoch001/results.json").read_text())
            for out in (local_out, jobs_out))
    assert a["metrics"] == b["metrics"]


def test_a_failing_submitit_step_is_reported_with_its_log(tmp_path, capsys):
    text = ONE_EPOCH.replace('dataset = "pneumoniamnist"', 'dataset = "no-such-dataset"')
    out = tmp_path / "out"
    code = benchmark.main([str(write_protocol(tmp_path, text=text)), "--out", str(out),
                           "--executor", "submitit", "--cluster", "local", "--no-report"])
    captured = capsys.readouterr()
    assert code == 1
    log = out / "logs" / "cgan-tiny-train.log"
    assert "cgan-tiny: train failed (exit 1)" in captured.out
    assert f"last lines of {log}" in captured.out
    assert "no-such-dataset" in log.read_text() and "no-such-dataset" in captured.out
    assert "1 step(s) failed" in captured.err
    record = _steps(out)[0]
    assert record["returncode"] == 1 and record["executor"] == "submitit-local"


def test_resources_per_step_from_the_command_line_and_the_protocol(tmp_path, monkeypatch):
    # submitit builds a SLURM executor only where srun exists; nothing is submitted here
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    text = ONE_EPOCH.replace("[[run]]", "[resources.train]\ngpus = 2\ntime_min = 30\n\n"
                             "[resources.report]\ncpus = 1\n\n[[run]]", 1)
    protocol = benchmark.load_protocol(write_protocol(tmp_path, text=text), tmp_path / "o")
    args = benchmark.argparse.Namespace(
        gpus=1, cpus=8, mem_gb=32.0, time_min=600, partition="gpu", cluster="slurm",
        slurm_option=["constraint=a100", "qos=high"])
    steps = benchmark.submitit_steps(args, protocol)
    train, evaluate, report = (steps.resources[k] for k in ("train", "evaluate", "report"))
    assert (train.gpus, train.time_min, train.cpus, train.partition) == (2, 30, 8, "gpu")
    assert (evaluate.gpus, evaluate.time_min, evaluate.mem_gb) == (1, 600, 32.0)
    assert (report.gpus, report.cpus) == (0, 1)
    assert train.slurm_options == {"constraint": "a100", "qos": "high"}
    executor = steps._executor("cgan-tiny: train", "train")
    assert executor.cluster == "slurm"
    sbatch = executor._executor._make_submission_file_text("true", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --time=30",
                 "#SBATCH --constraint=a100", "#SBATCH --qos=high", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --mem=32GB"):
        assert line in sbatch, sbatch
    report_sbatch = steps._executor("report", "report")._executor._make_submission_file_text(
        "true", "uid")
    assert "gpus" not in report_sbatch and "--cpus-per-task=1" in report_sbatch


@pytest.mark.parametrize("change, message", [
    ("[resources.trian]\ngpus = 1\n", r"\[resources.trian\] is not a step"),
    ("[resources.train]\ngpu = 1\n", r"unknown key\(s\) gpu"),
])
def test_bad_resource_tables_are_refused(tmp_path, change, message):
    text = ONE_EPOCH.replace("[[run]]", change + "\n[[run]]", 1)
    with pytest.raises(benchmark.ProtocolError, match=message):
        benchmark.load_protocol(write_protocol(tmp_path, text=text))


def test_slurm_options_must_be_key_value():
    with pytest.raises(ValueError, match="write KEY=VALUE"):
        benchmark.parse_slurm_options(["constraint"])
    assert benchmark.parse_slurm_options(["mail-type=END"]) == {"mail_type": "END"}


def test_nproc_runs_a_step_under_torchrun(tmp_path, capsys):
    text = ONE_EPOCH.replace("[[run]]", "[resources.evaluate]\nnproc = 2\n\n[[run]]", 1)
    path = write_protocol(tmp_path, text=text)
    assert benchmark.main([str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "-m torch.distributed.run --standalone --nproc_per_node 2 -m medsyn evaluate" in said
    assert "torch.distributed.run" not in said.split("would run cgan-tiny: train")[1].split(
        "\n")[0]
    bad = ONE_EPOCH.replace("[[run]]", "[resources.report]\nnproc = 2\n\n[[run]]", 1)
    with pytest.raises(benchmark.ProtocolError, match="report runs in one process"):
        benchmark.load_protocol(write_protocol(tmp_path, text=bad))


def test_the_cluster_study_protocol_is_valid(tmp_path, capsys):
    path = REPO / "bench" / "protocols" / "cxr3_112_cluster.toml"
    protocol = benchmark.load_protocol(path, tmp_path / "o")
    assert [r.epochs for r in protocol.runs] == [388, 388, 388]
    assert benchmark.main([str(path), "--out", str(tmp_path / "o"), "--dry-run",
                           "--executor", "submitit", "--cluster", "slurm"]) == 0
    said = capsys.readouterr().out
    assert "--checkpoint-every 97" in said and "--image-size 112" in said


def test_a_job_that_dies_without_an_exit_code_is_reported_with_both_logs(tmp_path):
    """The step's process is killed with its runner (as a scheduler's OOM killer would): the
    job has no exit code, and the error names the step log and submitit's log."""
    steps = benchmark.SubmititSteps(tmp_path, "local", benchmark.step_resources(
        benchmark.Resources(time_min=5), {}, "test"), say=lambda _: None)
    log = tmp_path / "logs" / "x-train.log"
    log.parent.mkdir()
    suicide = "import os, signal; print('about to go'); os.kill(os.getppid(), signal.SIGKILL)"
    with pytest.raises(benchmark.StepError) as info:
        steps.run("x: train", "train", [sys.executable, "-c", suicide], log)
    message = str(info.value)
    assert "x: train: submitit-local job" in message and "ended without an exit code" in message
    assert f"step log {log}" in message and "about to go" in message
    assert "submitit log " in message and str(tmp_path / "jobs" / "submitit") in message
