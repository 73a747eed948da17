"""The recipe ablation table of docs/benchmark.md from one or more benchmark protocols.

    python bench/recipe_table.py bench/protocols/recipes_28px.toml [more.toml ...]

For each run of each protocol it takes the selected epoch (the evaluated epoch with utility
and the highest TSTR accuracy, else the lowest FID), reads its ``results.json`` and prints one
Markdown row: FID with its 95 % interval, the train-vs-test floor at the same n, FID / floor,
recall, the smallest per-class recall, coverage, intra-FID, TSTR / TRTR, memorised fraction,
and the training step's wall time, CPU time and machine load (from ``steps.jsonl``).

The evaluator reports recall over all classes together; a class the generator misses can hide
in it. The per-class recall is computed here (Naeem et al. 2020, k = 5, medsyn's own PRDC):
for every class, the real images of the evaluation's stratified subset of that class against
as many generated images of that class, in Inception space. It is stored next to the
evaluation as ``class_recall.json``, computed once with ``--class-recall`` (it costs another
pass of the generated images through Inception, ~2 min of one loaded core at n 500); without
it, the column shows what is stored, or "-".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark import Benchmark, RunSpec, load_protocol  # noqa: E402

K = 5


def class_recall(checkpoint: Path, n_real: int, seed: int = 0) -> dict:
    """Per-class precision / recall / density / coverage of ``checkpoint`` against a
    stratified subset of ``n_real`` training images (the evaluation's reference set)."""
    import torch

    from medsyn.data import load_dataset
    from medsyn.data.subsets import stratified_subset
    from medsyn.evaluators.features import dataset_features, extract_features, get_extractor
    from medsyn.evaluators.metrics.stats import prdc
    from medsyn.generators import load_checkpoint

    gen = load_checkpoint(checkpoint)
    meta = gen.metadata["dataset"]
    real = load_dataset(meta["name"], meta["split"], image_size=meta["image_size"])
    subset = stratified_subset(real, n_real, seed)
    extractor = get_extractor("inception", device=torch.device("cpu"))
    real_features = dataset_features(subset, extractor).features
    out = {}
    for c, name in enumerate(real.class_names):
        rows = (subset.labels == c).numpy()
        n = int(rows.sum())
        fakes = gen.sample(n, labels=torch.full((n,), c), seed=seed + c) if gen.conditional \
            else None
        if fakes is None:
            return {}
        fake_features = extract_features(extractor, fakes, desc=f"fakes {name}").features
        values, _ = prdc(real_features[rows], fake_features, K)
        out[name] = {"n": n, **{k: float(v) for k, v in values.items()}}
    return out


def _selected_epoch(bench: Benchmark, run: RunSpec) -> int | None:
    scored = []
    for epoch in run.evaluate_epochs:
        path = bench.eval_dir(run, epoch) / "results.json"
        if path.exists():
            m = json.loads(path.read_text())["metrics"]
            tstr = (m.get("utility") or {}).get("arms", {}).get("tstr", {}).get("accuracy", {})
            fid = (m.get("fid") or {}).get("value")
            scored.append((tstr.get("mean") is None, -(tstr.get("mean") or 0.0),
                           fid if fid is not None else float("inf"), epoch))
    return min(scored)[-1] if scored else None


def _train_step(bench: Benchmark, run: RunSpec) -> dict:
    wall = cpu = 0.0
    loads = []
    if bench.steps_log.exists():
        for line in bench.steps_log.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("run") == run.name and rec["step"] == "train" and rec["returncode"] == 0:
                wall += rec["wall_s"]
                cpu += rec.get("cpu_s") or 0.0
                loads += [rec[k] for k in ("load_before", "load_after") if k in rec]
    return {"wall": wall, "cpu": cpu, "load": sum(loads) / len(loads) if loads else None}


def _fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def row(bench: Benchmark, run: RunSpec, n_real: int, compute_class_recall: bool) -> str:
    epoch = _selected_epoch(bench, run)
    if epoch is None:
        return f"| {run.name} | not evaluated |"
    eval_dir = bench.eval_dir(run, epoch)
    m = json.loads((eval_dir / "results.json").read_text())["metrics"]
    fid = m["fid"]
    floor = m.get("real_floor", {}).get("fid_train_vs_test", {}).get("value")
    per_class_path = eval_dir / "class_recall.json"
    if compute_class_recall and run.kind != "dcgan" and not per_class_path.exists():
        per_class_path.write_text(json.dumps(class_recall(bench.checkpoint(run, epoch), n_real),
                                             indent=1))
    per_class = json.loads(per_class_path.read_text()) if per_class_path.exists() else {}
    min_recall = min((v["recall"] for v in per_class.values()), default=None)
    utility = m.get("utility") or {}
    ratio = (utility.get("tstr_over_trtr") or {}).get("accuracy", {}).get("mean")
    memorised = (m.get("memorization") or {}).get("fraction")
    intra = (m.get("intra_fid") or {}).get("value")
    train = _train_step(bench, run)
    lo, hi = fid.get("ci95") or (None, None)
    cells = [f"{run.name} (epoch {epoch})", f"{fid['value']:.1f} [{lo:.1f}, {hi:.1f}]",
             _fmt(floor, 1), f"{fid['value'] / floor:.2f}x" if floor else "-",
             _fmt(m["recall"]["value"]), _fmt(min_recall), _fmt(m["coverage"]["value"]),
             _fmt(intra, 1), _fmt(ratio, 2),
             "-" if memorised is None else f"{100 * memorised:.1f} %",
             f"{train['wall'] / 60:.1f} / {train['cpu'] / 60:.1f} min",
             _fmt(train["load"], 1)]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| run (selected epoch) | FID [95 % CI] | floor | FID / floor | recall | min class "
          "recall | coverage | intra-FID | TSTR / TRTR | memorised | train wall / CPU | load |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("protocols", nargs="+", type=Path)
    ap.add_argument("--class-recall", action="store_true",
                    help="compute the per-class recall where it is not stored yet")
    ap.add_argument("--out", type=Path, action="append",
                    help="output folder of each protocol, in order (default: its [protocol] "
                         "out)")
    args = ap.parse_args(argv)
    outs = args.out or []
    for i, path in enumerate(args.protocols):
        protocol = load_protocol(path, out=outs[i] if i < len(outs) else None)
        bench = Benchmark(protocol)
        n_real = int(protocol.evaluate.get("n_real", 500))
        print(f"**{protocol.name}**\n\n{HEADER}")
        for run in protocol.runs:
            print(row(bench, run, n_real, args.class_recall))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
