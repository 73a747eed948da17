"""medsyn's own benchmark: train the runs of a declared protocol, evaluate the chosen epochs, pick
an epoch per run by a stated rule, and build one report. Resumable: run it again (in the same or
a later session, on the same or another machine with the same data) and it continues where it
stopped.

    python bench/benchmark.py bench/protocols/cpu_tier.toml            # run / continue
    python bench/benchmark.py bench/protocols/cpu_tier.toml --plan     # print what is left
    python bench/benchmark.py bench/protocols/cpu_tier.toml --tables   # Markdown results
    python bench/benchmark.py bench/protocols/cpu_tier.toml --jobs 2   # runs side by side
    python bench/benchmark.py bench/protocols/cpu_tier.toml --only acgan-pneumoniamnist-28
    python bench/benchmark.py P.toml --executor submitit --cluster local   # submitit jobs here
    python bench/benchmark.py P.toml --executor submitit --cluster slurm --partition gpu \
        --gpus 1 --cpus 8 --mem-gb 32 --time-min 720                       # SLURM (docs/scale.md)

Every step is a ``medsyn`` command run in its own process, exactly what a user would type; the
commands, their wall times, their own CPU times (``cpu_s``: user + system of the step's process,
which on a shared machine says what the step would take alone on one core), the load average
before and after, and the exit codes are appended to ``OUT/steps.jsonl`` and every step's
output goes to ``OUT/logs/``. A step is done when its product exists: a training run when its
last epoch's checkpoint exists (a killed run resumes from ``last.pt``), an evaluation when its
``results.json`` exists (evaluations are written as one unit, so a killed one leaves nothing),
the report is always rebuilt. With ``--executor submitit`` every step is a submitit job with
stated resources (``--gpus``, ``--cpus``, ``--mem-gb``, ``--time-min``, ``--partition``, or a
protocol's ``[resources.train|evaluate|utility|report]`` tables), submitted when the steps before
it in its run are done; its job id is kept in ``OUT/jobs/`` so that a benchmark killed while a
job runs waits for that job when started again (bench/step_executors.py). ``OUT/protocol.toml``
keeps the protocol the results belong to; a
changed protocol is refused unless ``--allow-changes`` says the finished steps still apply.

Protocol file (TOML)::

    [protocol]
    name = "cpu-tier"
    out = "runs/benchmark-cpu"         # relative to the current folder
    select = "fid"                     # fid | tstr_acc | fid-then-tstr
    shortlist = 3                      # fid-then-tstr: utility on the N lowest-FID epochs

    [evaluate]                         # options of `medsyn evaluate` for every epoch
    metrics = "fid,kid,intra_fid,prdc,real_floor,memorization,discriminator"
    n_real = 1000
    bootstrap = 20

    [utility]                          # extra options when utility runs (tstr rules)
    utility_seeds = "0"

    [resources.train]                  # what a submitit job asks for (--executor submitit)
    gpus = 4
    time_min = 720
    nproc = 4                          # any executor: run the step under torchrun (4 ranks)

    [[run]]
    name = "acgan-pneumoniamnist-28"   # run folder OUT/runs/NAME
    kind = "acgan"
    evaluate_epochs = [5, 10, 20]      # the last one is the number of epochs trained
    utility = true                     # false: never a utility step for this run (default true)
    [run.train]                        # options of `medsyn train KIND`
    dataset = "pneumoniamnist"
    image_size = 28

Selection rules: ``fid`` picks the evaluated epoch with the lowest FID; ``tstr_acc`` runs the
utility protocol on every evaluated epoch and picks the highest train-on-synthetic accuracy;
``fid-then-tstr`` (the CXR-ACGAN study's way of combining both: image quality first, then
usefulness) runs the utility protocol only on the ``shortlist`` lowest-FID epochs and picks the
highest TSTR accuracy among them. An unconditional run (dcgan) has no labels to train a
classifier on: it gets no utility step and is selected by FID under every rule.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import shlex
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_executors import (  # noqa: E402 - bench/ is a folder of scripts, not a package
    CLUSTERS,
    EXECUTORS,
    LocalSteps,
    Resources,
    StepError,
    SubmititSteps,
    log_tail,
    parse_slurm_options,
    step_resources,
    under_torchrun,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RULES = ("fid", "tstr_acc", "fid-then-tstr")
KINDS = ("acgan", "cgan", "dcgan")
_print_lock = threading.Lock()


class ProtocolError(Exception):
    """A protocol file that cannot be run; the message says which entry and what to do."""


@dataclass
class RunSpec:
    name: str
    kind: str
    evaluate_epochs: list[int]
    train: dict = field(default_factory=dict)
    utility: bool = True               # false: no utility step for this run (budget)

    @property
    def epochs(self) -> int:
        return self.evaluate_epochs[-1]


@dataclass
class Protocol:
    name: str
    out: Path
    select: str
    shortlist: int
    evaluate: dict
    utility: dict
    runs: list[RunSpec]
    text: str
    resources: dict = field(default_factory=dict)


def load_protocol(path: Path, out: Path | None = None) -> Protocol:
    try:
        text = path.read_text()
    except OSError as e:
        raise ProtocolError(f"cannot read protocol {path}: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProtocolError(f"{path}: not valid TOML ({e})") from None
    head = raw.get("protocol", {})
    select = head.get("select", "fid")
    if select not in RULES:
        raise ProtocolError(f"{path}: [protocol] select = {select!r}; use one of "
                            f"{', '.join(RULES)}")
    shortlist = int(head.get("shortlist", 3))
    if shortlist < 1:
        raise ProtocolError(f"{path}: [protocol] shortlist must be >= 1, got {shortlist}")
    runs = []
    for i, r in enumerate(raw.get("run", [])):
        where = f"{path}: [[run]] #{i + 1}"
        name = r.get("name")
        if not name or "/" in name or name.startswith("."):
            raise ProtocolError(f"{where}: needs a folder-safe name (got {name!r})")
        if r.get("kind") not in KINDS:
            raise ProtocolError(f"{where} ({name}): kind {r.get('kind')!r} is not one of "
                                f"{', '.join(KINDS)}")
        epochs = r.get("evaluate_epochs")
        if (not isinstance(epochs, list) or not epochs
                or not all(isinstance(e, int) and e >= 1 for e in epochs)
                or sorted(set(epochs)) != epochs):
            raise ProtocolError(f"{where} ({name}): evaluate_epochs must be a rising list of "
                                f"positive epoch numbers, got {epochs!r}")
        train = dict(r.get("train", {}))
        for reserved in ("epochs", "out", "resume", "checkpoint_every", "keep_last"):
            if reserved in train:
                raise ProtocolError(f"{where} ({name}): [run.train] {reserved} is set by the "
                                    "benchmark (from evaluate_epochs and the run name); remove it")
        utility = r.get("utility", True)
        if not isinstance(utility, bool):
            raise ProtocolError(f"{where} ({name}): utility must be true or false, got "
                                f"{utility!r}")
        runs.append(RunSpec(name, r["kind"], epochs, train, utility))
    if not runs:
        raise ProtocolError(f"{path}: no [[run]] entries")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ProtocolError(f"{path}: run names must be unique, got {names}")
    for key in ("out", "n_samples", "overwrite", "checkpoint", "fake", "real"):
        if key in raw.get("evaluate", {}):
            raise ProtocolError(f"{path}: [evaluate] {key} is set by the benchmark; remove it")
    base = out or Path(head.get("out", f"runs/benchmark-{head.get('name', path.stem)}"))
    resources = raw.get("resources", {})
    if not isinstance(resources, dict) or not all(isinstance(v, dict)
                                                  for v in resources.values()):
        raise ProtocolError(f"{path}: [resources] holds tables [resources.train], "
                            "[resources.evaluate], [resources.utility], [resources.report]")
    try:
        step_resources(Resources(), resources, str(path))
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    return Protocol(head.get("name", path.stem), base, select, shortlist,
                    dict(raw.get("evaluate", {})), dict(raw.get("utility", {})), runs, text,
                    resources)


def cli_flags(options: dict, negate_false: bool = False) -> list[str]:
    """``{"n_real": 1000, "compile": True}`` -> ``["--n-real", "1000", "--compile"]``.

    ``negate_false``: ``False`` gives ``--no-KEY`` (training options are ``--x/--no-x`` pairs,
    and a recipe may have switched ``x`` on); otherwise ``False`` leaves the flag out."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False and negate_false:
            flags.append("--no-" + flag[2:])
        elif value is False or value is None:
            continue
        else:
            flags += [flag, str(value)]
    return flags


def _say(text: str) -> None:
    with _print_lock:
        print(f"[{dt.datetime.now():%H:%M:%S}] {text}", flush=True)


class Benchmark:
    def __init__(self, protocol: Protocol, *, python: str = sys.executable,
                 dry: bool = False, steps: LocalSteps | SubmititSteps | None = None):
        self.p, self.python, self.dry = protocol, python, dry
        self.steps = steps or LocalSteps()
        # processes per step under torchrun ([resources.KIND] nproc), whatever the executor
        self.nproc = {kind: res.nproc for kind, res in
                      step_resources(Resources(), protocol.resources, "protocol").items()}
        self.root = protocol.out
        self.steps_log = self.root / "steps.jsonl"
        self._log_lock = threading.Lock()

    # ------------------------------------------------------------ paths
    def run_dir(self, run: RunSpec) -> Path:
        return self.root / "runs" / run.name

    def checkpoint(self, run: RunSpec, epoch: int) -> Path:
        return self.run_dir(run) / f"epoch{epoch:03d}.pt"

    def eval_dir(self, run: RunSpec, epoch: int) -> Path:
        return self.run_dir(run) / "eval" / f"epoch{epoch:03d}"

    # ------------------------------------------------------------ steps
    def train_command(self, run: RunSpec) -> list[str]:
        every = math.gcd(*run.evaluate_epochs)
        cmd = [self.python, "-m", "medsyn", "train", run.kind,
               *cli_flags(run.train, negate_false=True),
               "--epochs", str(run.epochs), "--checkpoint-every", str(every),
               "--keep-last", "0", "--out", str(self.run_dir(run))]
        last = self.run_dir(run) / "last.pt"
        if last.exists():
            cmd += ["--resume", str(last)]
        return cmd

    def evaluate_command(self, run: RunSpec, epoch: int, *, utility: bool) -> list[str]:
        options = dict(self.p.evaluate)
        if utility:
            metrics = options.get("metrics")
            if metrics and "utility" not in metrics.split(","):
                options["metrics"] = metrics + ",utility"
            options.update(self.p.utility)
        cmd = [self.python, "-m", "medsyn", "evaluate", "--checkpoint",
               str(self.checkpoint(run, epoch)), "--out", str(self.eval_dir(run, epoch)),
               *cli_flags(options)]
        if utility and (self.eval_dir(run, epoch) / "results.json").exists():
            cmd.append("--overwrite")
        return cmd

    def execute(self, step: str, run: RunSpec | None, cmd: list[str]) -> None:
        label = f"{run.name}: {step}" if run else step
        cmd = under_torchrun(cmd, self.nproc[step.split()[0]])
        if self.dry:
            _say(f"would run {label}: {shlex.join(cmd)}")
            return
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{(run.name + '-') if run else ''}{step.replace(' ', '-')}.log"
        _say(f"start {label} (log {log_path})")
        load_before = os.getloadavg()[0]
        outcome = self.steps.run(label, step.split()[0], cmd, log_path)
        rc, wall = outcome["returncode"], outcome["wall_s"]
        record = {"date": dt.datetime.now().isoformat(timespec="seconds"),
                  "run": run.name if run else None, "step": step, "command": shlex.join(cmd),
                  "wall_s": wall, "returncode": rc}
        if "cpu_s" in outcome:      # a local step's own CPU time (not known for a cluster job)
            record.update(cpu_s=outcome["cpu_s"], load_before=round(load_before, 2),
                          load_after=round(os.getloadavg()[0], 2))
        if "job_id" in outcome:
            record.update(executor=outcome["executor"], job_id=outcome["job_id"])
        with self._log_lock, open(self.steps_log, "a") as f:
            f.write(json.dumps(record) + "\n")
        if rc != 0:
            raise StepError(f"{label} failed (exit {rc}) after {wall:.0f} s; last lines of "
                            f"{log_path}:\n  " + "\n  ".join(log_tail(log_path)))
        _say(f"done  {label} in {wall:.0f} s")

    def fid_of(self, run: RunSpec, epoch: int) -> float | None:
        path = self.eval_dir(run, epoch) / "results.json"
        if not path.exists():
            return None
        fid = json.loads(path.read_text()).get("metrics", {}).get("fid", {})
        value = fid.get("value") if isinstance(fid, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    def has_utility(self, run: RunSpec, epoch: int) -> bool:
        path = self.eval_dir(run, epoch) / "results.json"
        return path.exists() and "utility" in json.loads(path.read_text()).get("metrics", {})

    def utility_epochs(self, run: RunSpec) -> list[int]:
        if self.p.select == "fid" or not self._has_utility_step(run):
            return []
        if self.p.select == "tstr_acc":
            return list(run.evaluate_epochs)
        scored = [(f, e) for e in run.evaluate_epochs if (f := self.fid_of(run, e)) is not None]
        return sorted(e for _, e in sorted(scored)[:self.p.shortlist])

    def _has_utility_step(self, run: RunSpec) -> bool:
        return run.kind != "dcgan" and run.utility         # dcgan: no labels, no TSTR

    def pending(self, run: RunSpec) -> list[str]:
        left = []
        if not self.checkpoint(run, run.epochs).exists():
            left.append(f"train to epoch {run.epochs}")
        left += [f"evaluate epoch {e}" for e in run.evaluate_epochs
                 if not (self.eval_dir(run, e) / "results.json").exists()]
        if self.p.select != "fid" and self._has_utility_step(run):
            done = [e for e in run.evaluate_epochs if self.has_utility(run, e)]
            left.append(f"utility ({self.p.select}; done for epochs {done or 'none'})")
        return left

    def run_one(self, run: RunSpec) -> None:
        if not self.checkpoint(run, run.epochs).exists():
            self.execute("train", run, self.train_command(run))
        utility_now = self.p.select == "tstr_acc" and self._has_utility_step(run)
        for epoch in run.evaluate_epochs:
            if not (self.eval_dir(run, epoch) / "results.json").exists():
                self.execute(f"evaluate epoch{epoch:03d}", run,
                             self.evaluate_command(run, epoch, utility=utility_now))
        for epoch in self.utility_epochs(run):
            if not self.has_utility(run, epoch):
                self.execute(f"utility epoch{epoch:03d}", run,
                             self.evaluate_command(run, epoch, utility=True))

    def report_command(self) -> list[str]:
        # runs without utility (unconditional DCGAN: no labels to train a classifier on) fall
        # back to FID
        select_by = "fid" if self.p.select == "fid" else "tstr_acc,fid"
        return [self.python, "-m", "medsyn", "report",
                *[str(self.run_dir(r)) for r in self.p.runs
                  if self.dry or (self.run_dir(r) / "eval").is_dir()],
                "--out", str(self.root / "report"), "--select-by", select_by, "--overwrite",
                "--title", f"medsyn benchmark: {self.p.name}"]

    # ------------------------------------------------------------ protocol bookkeeping
    def check_protocol(self, allow_changes: bool) -> None:
        stored = self.root / "protocol.toml"
        if stored.exists() and stored.read_text() != self.p.text and not allow_changes:
            raise ProtocolError(
                f"{stored} holds a different protocol than the one given: the finished steps "
                f"in {self.root} belong to it. Use another out folder (--out), or pass "
                "--allow-changes if the finished steps still apply (e.g. you only added runs "
                "or epochs).")
        if not self.dry:
            self.root.mkdir(parents=True, exist_ok=True)
            stored.write_text(self.p.text)


TABLE_COLUMNS = ("fid", "fid_floor", "intra_fid", "kid", "precision", "recall", "density",
                 "coverage", "memorization", "tstr_acc", "trtr_acc", "class_fidelity")


def _cell_text(spec, cell, with_interval: bool) -> str:
    if cell is None or not cell.available:
        return "-"
    text = spec.format_number(cell.value)
    if with_interval and cell.lo is not None and cell.hi is not None:
        text += f" [{spec.format_number(cell.lo)}, {spec.format_number(cell.hi)}]"
    return text


def markdown_tables(bench: Benchmark, runs: list[RunSpec]) -> str:
    """Every evaluated epoch of every run (the selection curve), and the wall time of each
    kind of step, as Markdown; the selected epoch is the report's (OUT/report/summary.csv)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from medsyn.reports.content.metrics import get_metric

    specs = [get_metric(k) for k in TABLE_COLUMNS]
    lines = []
    for run in runs:
        header = ["epoch", *(f"{s.label}" for s in specs)]
        lines += [f"**{run.name}** ({run.kind}, {run.train.get('dataset', '?')} at "
                  f"{run.train.get('image_size', '?')} px)", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for epoch in run.evaluate_epochs:
            path = bench.eval_dir(run, epoch) / "results.json"
            if not path.exists():
                lines.append(f"| {epoch} | " + " | ".join("not evaluated" if i == 0 else ""
                                                         for i in range(len(specs))) + " |")
                continue
            metrics = json.loads(path.read_text()).get("metrics", {})
            cells = [_cell_text(s, s.extract(metrics), s.key in ("fid", "intra_fid", "recall",
                                                                 "coverage", "tstr_acc"))
                     for s in specs]
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
        lines.append("")
    walls: dict[str, dict[str, float]] = {}
    if bench.steps_log.exists():
        for line in bench.steps_log.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("returncode") != 0 or rec.get("run") is None:
                continue
            kind = rec["step"].split()[0]
            walls.setdefault(rec["run"], {}).setdefault(kind, 0.0)
            walls[rec["run"]][kind] += rec["wall_s"]
            if kind == "train" and rec.get("cpu_s") is not None:
                walls[rec["run"]]["train_cpu"] = walls[rec["run"]].get("train_cpu", 0.0) \
                    + rec["cpu_s"]
    lines += ["| run | train | train CPU time | evaluations | utility re-evaluations | total |",
              "|---|---|---|---|---|---|"]
    for run in runs:
        w = walls.get(run.name, {})
        cols = [w.get("train", 0.0), w.get("evaluate", 0.0), w.get("utility", 0.0)]
        cpu = f"{w['train_cpu'] / 60:.1f} min" if "train_cpu" in w else "-"
        lines.append(f"| {run.name} | {cols[0] / 60:.1f} min | {cpu} | "
                     + " | ".join(f"{c / 60:.1f} min" for c in cols[1:])
                     + f" | {sum(cols) / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("protocol", type=Path, help="protocol TOML file")
    ap.add_argument("--out", type=Path, help="output folder (default: [protocol] out)")
    ap.add_argument("--only", help="comma-separated run names to work on (default: all)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="runs worked on side by side (default 1 with --executor local, every "
                    "run with submitit); on a small CPU give training runs threads = 1 in the "
                    "protocol")
    ap.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local: each step a child process of this command; submitit: each "
                    "step a submitit job on --cluster")
    ap.add_argument("--cluster", choices=CLUSTERS, default="local",
                    help="where submitit runs the jobs: this machine or SLURM")
    ap.add_argument("--partition", help="SLURM partition of every job")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs per job (not the report's)")
    ap.add_argument("--cpus", type=int, default=2, help="CPU cores per job")
    ap.add_argument("--mem-gb", type=float, default=16.0, help="memory per job, GB")
    ap.add_argument("--time-min", type=int, default=24 * 60,
                    help="time limit per job, minutes (submitit's local jobs too)")
    ap.add_argument("--slurm-option", action="append", metavar="KEY=VALUE",
                    help="any other sbatch option, e.g. constraint=a100 or qos=high "
                    "(repeatable)")
    ap.add_argument("--plan", action="store_true", help="print what is left and exit")
    ap.add_argument("--tables", action="store_true",
                    help="print Markdown tables of every evaluated epoch and the wall times of "
                    "the steps, and exit")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the commands that would run, run nothing")
    ap.add_argument("--no-report", action="store_true", help="skip building the report")
    ap.add_argument("--allow-changes", action="store_true",
                    help="continue although the protocol differs from OUT/protocol.toml")
    args = ap.parse_args(argv)
    try:
        protocol = load_protocol(args.protocol, args.out)
        steps = None
        if args.executor == "submitit" and not (args.plan or args.tables or args.dry_run):
            steps = submitit_steps(args, protocol)
        bench = Benchmark(protocol, dry=args.dry_run, steps=steps)
        runs = protocol.runs
        if args.only:
            wanted = args.only.split(",")
            unknown = sorted(set(wanted) - {r.name for r in runs})
            if unknown:
                raise ProtocolError(f"--only: no run named {', '.join(unknown)} in "
                                    f"{args.protocol} (runs: {', '.join(r.name for r in runs)})")
            runs = [r for r in runs if r.name in wanted]
        if args.tables:
            print(markdown_tables(bench, runs), end="")
            return 0
        if args.plan:
            for run in runs:
                left = bench.pending(run)
                print(f"{run.name}: {'; '.join(left) if left else 'done'}")
            return 0
        bench.check_protocol(args.allow_changes)
    except ProtocolError as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    failures = []
    # One thread per run in flight: it submits the run's steps in the protocol's order (its
    # utility shortlist depends on the FIDs of its evaluations) and waits for each; at most
    # --jobs runs, so at most --jobs steps, at a time. This stays here rather than in
    # submitit's local executor (issue 32 asked for it where that does the same job): submitit
    # 1.5's LocalExecutor starts every submitted job at once (a controller process per
    # submit), with no cap on jobs in flight and no dependencies between jobs (array
    # parallelism and --dependency are SLURM parameters), and a step list decided as results
    # come in cannot be submitted up front anyway. The same threads drive either executor
    # (docs/scale.md, "--jobs").
    jobs = args.jobs if args.jobs is not None else \
        (len(runs) if args.executor == "submitit" else 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(bench.run_one, run): run for run in runs}
        for future in concurrent.futures.as_completed(futures):
            try:
                future.result()
            except RuntimeError as e:
                failures.append(str(e))
                _say(f"FAILED {e}")
    if not args.no_report:
        try:
            bench.execute("report", None, bench.report_command())
        except RuntimeError as e:
            failures.append(str(e))
            _say(f"FAILED {e}")
    if failures:
        print(f"benchmark: {len(failures)} step(s) failed; fix the cause and run the same "
              "command again to continue", file=sys.stderr)
        return 1
    if args.dry_run:
        _say("dry run: nothing was run")
    else:
        _say(f"benchmark {protocol.name} complete: {bench.root / 'report' / 'index.html'}")
    return 0


def submitit_steps(args, protocol: Protocol) -> SubmititSteps:
    """The submitit executor of ``--executor submitit``, or a ProtocolError saying why not."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ProtocolError("--executor submitit needs submitit: pip install "
                            "'medsyn[cluster]' (or pip install submitit)") from None
    if args.cluster == "local" and args.partition:
        raise ProtocolError("--partition applies to --cluster slurm only")
    try:
        base = Resources(gpus=args.gpus, cpus=args.cpus, mem_gb=args.mem_gb,
                         time_min=args.time_min, partition=args.partition,
                         slurm_options=parse_slurm_options(args.slurm_option))
        resources = step_resources(base, protocol.resources, "protocol")
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    return SubmititSteps(protocol.out, args.cluster, resources, say=_say)


if __name__ == "__main__":
    sys.exit(main())
