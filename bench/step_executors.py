"""Where bench/benchmark.py runs a step's command: in a child process of the benchmark
(``--executor local``) or as a submitit job (``--executor submitit``) on this machine
(``--cluster local``) or on SLURM (``--cluster slurm``).

Either way the command is the ``medsyn`` command a user would type, its output goes to the
step's log under ``OUT/logs/``, and the benchmark gets back its exit code and wall time. A
submitted job is recorded in ``OUT/jobs/<step>.json`` (job id, submitit folder, command): a
benchmark killed while the job runs finds it there when started again and waits for it instead
of submitting the step twice; a finished step is recognised by its product, as with the local
executor. A job that dies without an exit code (killed, out of time or memory) is reported with
the paths and last lines of both its step log and submitit's own log.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "submitit")
CLUSTERS = ("local", "slurm")
STEP_KINDS = ("train", "evaluate", "utility", "report")

# Run inside the job: the step's command with its output appended to the step log; prints the
# exit code and wall time as JSON (the job's result). A command that fails is a job that
# succeeds with a non-zero exit code, so that the benchmark reports it with its log.
_STEP_RUNNER = r"""
import json, os, shlex, subprocess, sys, time
log, cmd = sys.argv[1], sys.argv[3:]
env = dict(os.environ, MEDSYN_PROGRESS=os.environ.get("MEDSYN_PROGRESS", "plain"))
with open(log, "a") as f:
    f.write("$ " + shlex.join(cmd) + "\n")
    f.flush()
    start = time.perf_counter()
    rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
print(json.dumps({"returncode": rc, "wall_s": round(time.perf_counter() - start, 1)}))
"""


class StepError(RuntimeError):
    """A step that failed; the message names the step, its exit and its log's last lines."""


def log_tail(path: Path, lines: int = 5) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return [f"(no log at {path})"]


@dataclass
class Resources:
    """What one job asks the scheduler for."""

    gpus: int = 0
    cpus: int = 2
    mem_gb: float = 16.0
    time_min: int = 24 * 60
    partition: str | None = None
    slurm_options: dict = field(default_factory=dict)
    # > 1: the step's medsyn command runs under torchrun with this many processes (one per GPU:
    # DDP training, sharded feature extraction; docs/scale.md)
    nproc: int = 1

    def with_overrides(self, table: dict, where: str) -> Resources:
        allowed = {"gpus", "cpus", "mem_gb", "time_min", "partition", "nproc"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; use "
                             f"{', '.join(sorted(allowed))}")
        out = Resources(**{**self.__dict__, "slurm_options": dict(self.slurm_options)})
        for key, value in table.items():
            setattr(out, key, value)
        if not isinstance(out.nproc, int) or out.nproc < 1:
            raise ValueError(f"{where}: nproc must be an integer >= 1, got {out.nproc!r}")
        return out


class LocalSteps:
    """Each step a child process of the benchmark (the default)."""

    name = "local"

    def run(self, label: str, kind: str, cmd: list[str], log_path: Path) -> dict:
        with open(log_path, "a") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            env = dict(os.environ,
                       MEDSYN_PROGRESS=os.environ.get("MEDSYN_PROGRESS", "plain"))
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                # wait4: this step's own CPU time, also when other steps run side by side
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:           # as subprocess.call: never leave the step running
                proc.kill()
                proc.wait()
                raise
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
        return {"returncode": rc, "wall_s": round(time.perf_counter() - start, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


class SubmititSteps:
    """Each step a submitit job: on this machine (``cluster="local"``) or SLURM."""

    def __init__(self, root: Path, cluster: str, resources: dict[str, Resources],
                 say=print, poll_s: float = 1.0):
        import submitit  # noqa: F401 - fail here, with the install hint, not in a thread

        if cluster not in CLUSTERS:
            raise ValueError(f"--cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
        self.root, self.cluster, self.resources = root, cluster, resources
        self.name = f"submitit-{cluster}"
        self.jobs = root / "jobs"
        self.say, self.poll_s = say, poll_s

    # ------------------------------------------------------------ the job of a step
    def state_path(self, label: str) -> Path:
        return self.jobs / (re.sub(r"[^A-Za-z0-9._-]+", "-", label) + ".json")

    def _executor(self, label: str, kind: str):
        import submitit

        res = self.resources[kind]
        executor = submitit.AutoExecutor(folder=self.jobs / "submitit" / "%j",
                                         cluster=self.cluster)
        params = {"name": f"medsyn-{label}"[:100], "timeout_min": int(res.time_min),
                  "cpus_per_task": int(res.cpus), "mem_gb": float(res.mem_gb),
                  "tasks_per_node": 1, "nodes": 1}
        if res.gpus:        # a GPU line that asks for 0 is refused by some SLURM setups
            params["gpus_per_node"] = int(res.gpus)
        if self.cluster == "slurm":
            if res.partition:
                params["slurm_partition"] = res.partition
            if res.slurm_options:
                params["slurm_additional_parameters"] = dict(res.slurm_options)
        executor.update_parameters(**params)
        return executor

    def run(self, label: str, kind: str, cmd: list[str], log_path: Path) -> dict:
        import submitit

        state_path = self.state_path(label)
        job = self._running_job(state_path, cmd)
        if job is None:
            function = submitit.helpers.CommandFunction(
                [sys.executable, "-c", _STEP_RUNNER, str(log_path.resolve()), "--", *cmd],
                verbose=False, cwd=os.getcwd())
            job = self._executor(label, kind).submit(function)
            self.jobs.mkdir(parents=True, exist_ok=True)
            state_path.write_text(json.dumps({
                "label": label, "job_id": str(job.job_id), "folder": str(job.paths.folder),
                "cluster": self.cluster, "command": shlex.join(cmd),
                "submitted": dt.datetime.now().isoformat(timespec="seconds")}, indent=1))
            self.say(f"submitted {label} as {self.name} job {job.job_id}")
        else:
            self.say(f"waiting for {label}: {self.name} job {job.job_id} is still running "
                     "(submitted before this benchmark was restarted)")
        try:
            outcome = self._result(job)
        except Exception as exc:  # noqa: BLE001 - killed, timed out, out of memory, ...
            paths = job.paths
            tail = [line for p in (paths.stderr, paths.stdout) for line in log_tail(p, 3)]
            why = (str(exc).strip().splitlines() or [""])[-1].strip()
            raise StepError(
                f"{label}: {self.name} job {job.job_id} ended without an exit code "
                f"({type(exc).__name__}{': ' + why if why else ''}); "
                f"step log {log_path}:\n  " + "\n  ".join(log_tail(log_path)) +
                f"\n  submitit log {paths.stderr}:\n  " + "\n  ".join(tail)) from None
        return {**outcome, "executor": self.name, "job_id": str(job.job_id)}

    def _result(self, job) -> dict:
        if self.cluster == "local" and getattr(job, "_process", None) is None:
            # a job this process did not start: wait for its controller to exit
            while _alive(int(job.job_id)):
                time.sleep(self.poll_s)
        return json.loads(job.result())

    def _running_job(self, state_path: Path, cmd: list[str]):
        """The job a killed benchmark left running for this step, or None."""
        import submitit

        if not state_path.exists():
            return None
        state = json.loads(state_path.read_text())
        if state.get("cluster") != self.cluster or state.get("command") != shlex.join(cmd):
            return None
        folder = Path(state["folder"])
        if self.cluster == "local":
            job = submitit.local.local.LocalJob(folder=folder, job_id=state["job_id"])
            running = _alive(int(state["job_id"])) and not job.paths.result_pickle.exists()
        else:
            job = submitit.SlurmJob(folder=folder, job_id=state["job_id"])
            running = not job.done()
        return job if running else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:          # a reused pid is not our job controller
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()
        return b"submitit" in cmdline and stat[0] != "Z"
    except OSError:
        return True


def parse_slurm_options(items: list[str] | None) -> dict:
    """``["constraint=a100", "qos=high"]`` -> ``{"constraint": "a100", "qos": "high"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-option {item!r}: write KEY=VALUE (e.g. constraint=a100)")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def step_resources(base: Resources, protocol_tables: dict, where: str) -> dict[str, Resources]:
    """Resources per step kind: the command line's, with a protocol's ``[resources.KIND]``
    tables on top; the report never asks for a GPU unless its table says so."""
    unknown = sorted(set(protocol_tables) - set(STEP_KINDS))
    if unknown:
        raise ValueError(f"{where}: [resources.{unknown[0]}] is not a step; use "
                         f"{', '.join(STEP_KINDS)}")
    out = {}
    for kind in STEP_KINDS:
        start = base if kind != "report" else Resources(
            **{**base.__dict__, "gpus": 0, "slurm_options": dict(base.slurm_options)})
        out[kind] = start.with_overrides(dict(protocol_tables.get(kind, {})),
                                         f"{where} [resources.{kind}]")
    if out["report"].nproc > 1:
        raise ValueError(f"{where} [resources.report]: the report runs in one process (nproc)")
    return out


def under_torchrun(cmd: list[str], nproc: int) -> list[str]:
    """``python -m medsyn ...`` as ``python -m torch.distributed.run --standalone
    --nproc_per_node N -m medsyn ...`` (unchanged for ``nproc`` 1)."""
    if nproc <= 1:
        return cmd
    if cmd[1:3] != ["-m", "medsyn"]:
        raise ValueError(f"not a medsyn command: {shlex.join(cmd)}")
    return [cmd[0], "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            str(nproc), *cmd[1:]]
