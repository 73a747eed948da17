"""One-shot GPU suite: training throughput, a slice of the 388-epoch schedule, evaluation time.

Here, where the real data are (writes a compact copy of what the suite needs, about 20 MB):

    python bench/gpu_suite.py pack --out gpu_data/

On the GPU machine, with that folder carried along (fits in 9 minutes on one H100/H200):

    MEDSYN_DATA_ROOT=gpu_data bash bench/gpu_suite.sh            # = python bench/gpu_suite.py

CPU smoke run at toy sizes (well under a minute; what tests/test_gpu_suite.py runs):

    python bench/gpu_suite.py --dry-run --data-root gpu_data/ --out /tmp/gpu_suite.json

Stages (each in its own process, with its own time budget; the JSON is rewritten, atomically,
after each stage, so a stage that fails or runs out of time loses no other stage's figures):

  throughput  medsyn's training loop (``medsyn.generators.train``: bf16 autocast, channels_last,
              data on the GPU; also with ``compile=True`` if the budget allows) vs the plain
              PyTorch loop of the same networks (fp32, DataLoader; bench/train_throughput.py's
              ``PlainLoop``), acgan then cgan / dcgan, cxr3 at 112 px, batch 64, one loop after
              the other (``train_throughput.sequential``). Goal: >= 2x the plain loop.
  schedule    ``medsyn train acgan --dataset cxr3`` with its defaults (112 px, batch 64, 388
              epochs, a checkpoint and a sample grid per epoch), stopped after a timed slice:
              steps/s between epoch ends, the cost of an epoch end, and the full schedule
              extrapolated from them. Goal: < 1 h.
  eval        ``medsyn.evaluators.evaluate`` of FID + KID (50 bootstrap resamples, the default)
              for 10,000 generated images (an untrained AC-GAN's: the time does not depend on
              what they show) against the real cxr3 training split (2,808 images, features
              not cached): extractor build, feature extraction and metrics timed separately.
              Goal: < 30 s. Without MEDSYN_INCEPTION_WEIGHTS (the 91 MB file cannot travel)
              the same Inception network runs with random weights: the timing holds, FID and
              KID values are meaningless and are not reported.
              Then, in the time the stage has left, the extraction throughput of the same
              network on this one GPU (``extract_features``, warm, synchronised; images/s at
              batch 64 and 256): what ``torchrun --nproc_per_node N -m medsyn evaluate``
              (docs/scale.md) multiplies by up to N, since each rank extracts its own shard
              and only the features (8 KB an image) are gathered.
  highres     ``medsyn train pggan`` (growth shortened so every timed step is at full size) and
              ``medsyn train megan`` (64 px U-Net, 64 px patches) on cxr3 at 256 px, batch 16:
              real images/s over 20 steps after 5; then the peak GPU memory of MEGAN's
              generation and training step against the whole-image generator
              (docs/highres.md). No goal; runs
              in what the first three stages left of the budget.

The output is ONE JSON (``$OUT/gpu_suite.json`` when ``$OUT`` is set, else ``gpu_suite.json``;
``--out`` wins) and a short table. Each stage records ``status``: ``ok``, ``skipped``
(``reason``) or ``failed`` (``error``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the medsyn of this checkout, even when another copy is pip-installed; and bench/ itself
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from medsyn.utils import write_json  # noqa: E402

SUITE_VERSION = 1
STAGES = ("throughput", "schedule", "eval", "highres")
STAGE_TITLES = {"throughput": "training throughput, medsyn vs plain loop (+ pix2pix img/s)",
                "schedule": "timed slice of the 388-epoch cxr3 AC-GAN schedule",
                "eval": "evaluation time of 10,000 images (FID + KID)",
                "highres": "pggan and megan training throughput at 256 px, MEGAN peak memory"}
GOALS = {"throughput": "medsyn >= 2x the plain PyTorch loop (acgan, cxr3, 112 px, batch 64)",
         "schedule": "the 388-epoch cxr3 AC-GAN schedule in < 1 h (3600 s)",
         "eval": "FID + KID of 10,000 images against the real reference in < 30 s",
         "highres": "none (figures for docs/highres.md: images/s, peak memory)"}
# seconds; the whole suite must fit in 9 minutes (540 s) including the Python start-ups
DEFAULT_BUDGET_S = 525
# highres runs last, in whatever the first three left of the suite's budget (at most 120 s)
DEFAULT_STAGE_BUDGETS = {"throughput": 220, "schedule": 140, "eval": 150, "highres": 120}
RANDOM_WEIGHTS = "random-init (timing only; FID values meaningless)"
PACK_SITE_PACKAGES = ("torch_fidelity", "medmnist")   # pure Python, missing on the GPU image
PACK_MANIFEST = "pack.json"
CXR3_SPLITS = ("train", "val", "test")

# full size (GPU) and toy size (--dry-run, CPU) settings of every stage
FULL = {
    "throughput": {"dataset": "cxr3", "image_size": 112, "batch_size": 64, "widths": {},
                   "kinds": ["acgan", "cgan", "dcgan"], "compile": True, "warmup": 10,
                   "steps": 30, "repeats": 2,
                   "translation": {"kind": "pix2pix", "image_size": 128, "batch_size": 16,
                                   "options": {"condition": "edges"}, "warmup": 5,
                                   "steps": 20}},
    "schedule": {"dataset": "cxr3", "options": {}, "warmup_steps": 20, "slice_s": 60.0,
                 "max_timed_steps": 100_000},
    "eval": {"dataset": "cxr3", "image_size": 112, "n": 10_000, "reference_limit": None,
             "bootstrap": 50, "batch_size": 64, "throughput_n": 5_000,
             "throughput_batches": [64, 256], "throughput_min_left_s": 25},
    "highres": {"dataset": "cxr3", "image_size": 256, "batch_size": 16, "warmup": 5,
                "steps": 20, "pggan": {"start_size": 4, "g_width": 16, "d_width": 16},
                "megan": {"low_size": 64, "patch_size": 64, "g_width": 16, "d_width": 16},
                "memory": {"n": 4, "tile_batch": 16}},
}
DRY = {
    "throughput": {"dataset": "cxr3", "image_size": 28, "batch_size": 8,
                   "widths": {"g_width": 8, "d_width": 8, "noise_dim": 16},
                   "kinds": ["acgan", "cgan", "dcgan"], "compile": False, "warmup": 1,
                   "steps": 3, "repeats": 1,
                   "translation": {"kind": "pix2pix", "image_size": 32, "batch_size": 8,
                                   "options": {"condition": "edges", "features": 8,
                                               "d_features": 8}, "warmup": 1, "steps": 2}},
    "schedule": {"dataset": "cxr3", "options": {"image_size": 28, "batch_size": 8, "g_width": 8,
                                                "d_width": 8, "noise_dim": 16},
                 "warmup_steps": 2, "slice_s": 2.0, "max_timed_steps": 14},
    "eval": {"dataset": "cxr3", "image_size": 28, "n": 16, "reference_limit": 16,
             "bootstrap": 5, "batch_size": 16, "throughput_n": 16,
             "throughput_batches": [8, 16], "throughput_min_left_s": 5},
    "highres": {"dataset": "cxr3", "image_size": 32, "batch_size": 8, "warmup": 1, "steps": 3,
                "pggan": {"start_size": 8, "g_width": 4, "d_width": 4},
                "megan": {"low_size": 16, "patch_size": 16, "g_width": 4, "d_width": 4},
                "memory": None},
}
# ranks of a sharded extraction (docs/scale.md) the one-GPU figure is extrapolated to
SHARDED_GPUS = (2, 4, 8)


class SuiteError(Exception):
    """A bad input of the suite: printed as one line, exit status 2."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def rounded(x, digits: int = 4):
    """Floats of a JSON-ready structure to ``digits`` significant digits."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    return x


# ------------------------------------------------------------------------------ data root


def cxr3_problem(root: Path) -> str | None:
    """Why ``root`` cannot serve the suite (no cxr3 in medsyn's layout), or None."""
    from medsyn.data.registry import CXR3_CLASSES

    if not root.is_dir():
        return f"the data root {root} does not exist"
    missing = [f"{s}/{c}" for s in CXR3_SPLITS for c in CXR3_CLASSES
               if not (root / "cxr3" / s / c).is_dir()]
    if missing:
        return (f"{root / 'cxr3'} is missing the folders {', '.join(missing)} (expected "
                f"{root / 'cxr3'}/{{train,val,test}}/{{{','.join(CXR3_CLASSES)}}}/*.png)")
    return None


def data_root_advice(root: Path) -> str:
    return (f"{cxr3_problem(root)}. Make the folder where the real data are with "
            f"'python bench/gpu_suite.py pack --out {root}' (it reads MEDSYN_DATA_ROOT or "
            "--data-root there), carry it to this machine, and point MEDSYN_DATA_ROOT or "
            "--data-root at it.")


def site_dir_if_needed(root: Path) -> tuple[Path | None, list[str]]:
    """``(folder to add to the import path, packages missing even so)``: pack copies the pure
    Python packages the GPU image lacks (torch-fidelity, medmnist's metadata) to ROOT/site."""
    import importlib.util

    missing = [m for m in PACK_SITE_PACKAGES if importlib.util.find_spec(m) is None]
    if not missing:
        return None, []
    site = root / "site"
    still = [m for m in missing if not (site / m / "__init__.py").is_file()]
    return (site if len(still) < len(missing) else None), still


# ------------------------------------------------------------------------------ pack


def pack(args) -> int:
    """Write cxr3 at ``--image-size`` px (medsyn's resize) as PNGs in cxr3's layout, the pure
    Python packages the GPU image lacks, and pack.json."""
    import numpy as np
    from PIL import Image

    from medsyn.data import load_dataset
    from medsyn.data.folder import list_folder_split
    from medsyn.data.registry import CXR3_CLASSES, locate
    from medsyn.errors import DataError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not (out / PACK_MANIFEST).is_file():
            raise SuiteError(f"{out} exists and is not empty (and holds no {PACK_MANIFEST} of an "
                             "earlier pack): choose a new --out folder.")
        if not args.overwrite:
            raise SuiteError(f"{out} already holds a pack ({out / PACK_MANIFEST}); pass "
                             "--overwrite to replace it, or choose another --out.")
    root = args.data_root or os.environ.get("MEDSYN_DATA_ROOT")
    try:
        source_dir, _ = locate("cxr3", root)
    except DataError as exc:
        raise SuiteError(f"pack needs the real cxr3 dataset: {exc}") from None
    for name, value in (("--limit", args.limit), ("--heldout-limit", args.heldout_limit)):
        if value is not None and value < 1:
            raise SuiteError(f"{name} must be >= 1 image per class, got {value}.")
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if
                                    out.parent.exists() else None))
    try:
        manifest = {"format": "medsyn-gpu-suite-pack", "version": 1, "created": now_iso(),
                    "source": str(source_dir.resolve()), "image_size": args.image_size,
                    "resize": "medsyn.data.load_dataset(image_size=...): bicubic, antialiased",
                    "limit_per_class": {"train": args.limit, "val": args.heldout_limit,
                                        "test": args.heldout_limit},
                    "splits": {}, "site_packages": {}}
        for split in CXR3_SPLITS:
            limit = args.limit if split == "train" else args.heldout_limit
            ds = load_dataset("cxr3", split, image_size=args.image_size, root=source_dir.parent)
            files, labels, names = list_folder_split(source_dir, split)
            if names != CXR3_CLASSES or len(files) != len(ds):
                raise SuiteError(f"{source_dir / split}: {len(files)} files listed but {len(ds)} "
                                 "images decoded (unreadable files?); fix the source first.")
            keep = []
            for c in range(len(names)):
                rows = [i for i, lab in enumerate(labels) if lab == c]
                keep += rows[:limit] if limit else rows
            for i in keep:
                target = staging / "cxr3" / split / names[labels[i]] / (Path(files[i]).stem
                                                                       + ".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                pixels = ds.images[i].numpy()
                image = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
                Image.fromarray(image).save(target, format="PNG")
            counts = {n: sum(1 for i in keep if labels[i] == c) for c, n in enumerate(names)}
            expected = ds.subset(keep).fingerprint if len(keep) < len(ds) else ds.fingerprint
            manifest["splits"][split] = {"n": len(keep), "class_counts": counts,
                                         "fingerprint": expected}
        for split in CXR3_SPLITS:       # what medsyn reads back: the same pixels and labels
            packed = load_dataset("cxr3", split, image_size=args.image_size, root=staging)
            if packed.fingerprint != manifest["splits"][split]["fingerprint"]:
                raise SuiteError(f"the packed {split} split does not read back as the same pixels "
                                 "(fingerprint mismatch); nothing was written.")
            manifest["splits"][split]["same_pixels_as_source_at_this_size"] = True
        if not args.no_site_packages:
            import importlib.util
            for module in PACK_SITE_PACKAGES:
                spec = importlib.util.find_spec(module)
                if spec is None or not spec.submodule_search_locations:
                    raise SuiteError(f"{module} is not installed here, so it cannot be packed for "
                                     "the GPU machine; pip install it, or pass "
                                     "--no-site-packages.")
                src = Path(next(iter(spec.submodule_search_locations)))
                shutil.copytree(src, staging / "site" / module,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                for info in src.parent.glob(f"{module}-*.dist-info"):
                    shutil.copytree(info, staging / "site" / info.name)
                manifest["site_packages"][module] = str(src)
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        manifest["bytes"] = size
        manifest["pack_s"] = round(time.perf_counter() - started, 2)
        write_json(staging / PACK_MANIFEST, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts = ", ".join(f"{s} {manifest['splits'][s]['n']}" for s in CXR3_SPLITS)
    site = ", ".join(manifest["site_packages"])
    print(f"packed cxr3 at {args.image_size} px ({counts} images) "
          f"{'and ' + site + ' ' if site else ''}into {out}: {size / 2**20:.1f} MiB in "
          f"{manifest['pack_s']} s")
    if size > 40 * 2**20:
        print(f"warning: {size / 2**20:.1f} MiB; the device tool carries at most 64 MiB with "
              "the checkout: use --limit", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------ stages (child)


class StageReport:
    """What a stage child writes (atomically) as it goes: the parent reads it even after a
    timeout or a crash."""

    def __init__(self, path: Path, deadline: float):
        self.path, self.deadline = path, deadline
        self.data: dict = {}

    def left(self) -> float:
        return self.deadline - time.time()

    def write(self, **update) -> None:
        self.data.update(update)
        write_json(self.path, rounded(self.data))


def device_info(device) -> dict:
    import torch

    info = {"device": str(device), "torch": str(torch.__version__),
            "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def stage_throughput(cfg: dict, device, report: StageReport) -> None:
    import train_throughput as tt

    base = {"dataset": cfg["dataset"], "image_size": cfg["image_size"],
            "batch_size": cfg["batch_size"], "data_root": cfg["data_root"], **cfg["widths"]}
    dev = str(device)
    items = [(k, False) for k in cfg["kinds"]]
    if cfg["compile"]:         # last: its first steps compile (slow), the others are quick
        items.append(("acgan", True))
    report.write(settings={
        "medsyn": "medsyn.generators.train with its defaults for the device (on a GPU: bf16 "
                  "autocast where supported, channels_last, cuDNN autotuning + TF32, dataset "
                  "held on the GPU; each row's medsyn_resolved says what ran); compile=True in "
                  "the rows that say so",
        "plain": "bench/train_throughput.py PlainLoop: fp32, DataLoader over a float "
                 "TensorDataset (shuffle), DCGAN-tutorial step, .item() of the losses each step, "
                 "PyTorch's default backend flags",
        "timing": "one loop after the other in one process (train_throughput.sequential); each "
                  "timed over its window of steps with one device synchronisation at each end",
        **base, "warmup_steps": cfg["warmup"], "timed_steps": cfg["steps"],
        "repeats": cfg["repeats"]}, rows=[])
    rows: list[dict] = []
    last_s = None
    for i, (kind, comp) in enumerate(items):
        row = {"kind": kind, "compile": comp}
        # the first row is the stage's figure; the others only if their time is likely left
        need = (90.0 if comp else (last_s or 0) * 1.2) if i else 0
        if cfg["dry_run"] and comp:
            row.update(status="skipped", reason="dry run: torch.compile is not exercised on CPU")
        elif i and report.left() < need:
            row.update(status="skipped", reason=f"not enough of the stage budget left "
                       f"({report.left():.0f} s left, about {need:.0f} s needed)")
        if "status" in row:
            rows.append(row)
            report.write(rows=rows)
            continue
        report.write(running=f"{kind}{' compile' if comp else ''}")
        t0 = time.perf_counter()
        reps = []
        try:
            for r in range(cfg["repeats"]):
                if r and report.left() < (time.perf_counter() - t0) / r * 1.2:
                    row["note"] = f"{r} of {cfg['repeats']} repeats: the stage budget ran short"
                    break
                extra = {"compile": True} if comp else {}
                got = tt.sequential(kind, base, cfg["warmup"], cfg["steps"], dev, **extra)
                reps.append(got)
                print(f"  throughput {kind}{' compile' if comp else ''} repeat {r + 1}: medsyn "
                      f"{got['medsyn_img_s']:.1f} img/s, plain {got['plain_img_s']:.1f} img/s",
                      file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - one row's failure must not lose the others
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        if reps:
            ratios = [g["medsyn_img_s"] / g["plain_img_s"] for g in reps]
            row.update(
                status="ok", medsyn_img_s=statistics.median(g["medsyn_img_s"] for g in reps),
                plain_img_s=statistics.median(g["plain_img_s"] for g in reps),
                ratio=statistics.median(ratios), ratios=ratios, repeats=len(reps),
                medsyn_resolved=reps[0]["medsyn_resolved"],
                plain_backend_flags=reps[0]["plain_settings"]["backend_flags"])
        row["wall_s"] = time.perf_counter() - t0
        last_s = row["wall_s"]
        rows.append(row)
        report.write(rows=rows, running=None)
    acgan = [r for r in rows if r["kind"] == "acgan" and r.get("status") == "ok"]
    if not acgan:
        first = rows[0] if rows else {}
        raise RuntimeError(f"the acgan measurement failed: {first.get('error', 'no figures')}")
    best = max(acgan, key=lambda r: r["ratio"])
    if cfg.get("translation"):
        report.write(translation=translation_throughput(cfg, dev, report))
    report.write(figure={"kind": "acgan", "compile": best["compile"], "ratio": best["ratio"],
                         "medsyn_img_s": best["medsyn_img_s"], "plain_img_s": best["plain_img_s"]})


def translation_throughput(cfg: dict, device: str, report: StageReport) -> dict:
    """images/s of ``medsyn train pix2pix`` (medsyn's defaults for the device) over timed steps
    after a warm-up, with a device synchronisation at each end; no plain-loop comparison."""
    import tempfile

    import torch

    from medsyn.generators.translation.training import train_translation

    t = cfg["translation"]
    row = {"kind": t["kind"], "image_size": t["image_size"], "batch_size": t["batch_size"],
           **t["options"], "warmup_steps": t["warmup"], "timed_steps": t["steps"]}
    if report.left() < 40:
        return {**row, "status": "skipped", "reason": f"not enough of the stage budget left "
                f"({report.left():.0f} s)"}
    marks: dict[str, float] = {}

    def after_step(state):
        if state.step in (t["warmup"], t["warmup"] + t["steps"]):
            if device != "cpu":
                torch.cuda.synchronize()
            marks["start" if state.step == t["warmup"] else "end"] = time.perf_counter()

    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train_translation(t["kind"], dataset=cfg["dataset"], data_root=cfg["data_root"],
                              image_size=t["image_size"], batch_size=t["batch_size"],
                              epochs=1000, max_steps=t["warmup"] + t["steps"], device=device,
                              out=str(Path(tmp) / "run"), quiet=True, step_callback=after_step,
                              **t["options"])
    except Exception as exc:  # noqa: BLE001 - recorded; the GAN figures stand
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    seconds = marks["end"] - marks["start"]
    img_s = t["steps"] * t["batch_size"] / seconds
    print(f"  throughput {t['kind']}: medsyn {img_s:.1f} img/s", file=sys.stderr, flush=True)
    return {**row, "status": "ok", "medsyn_img_s": img_s, "timed_s": seconds,
            "wall_s": time.perf_counter() - t0}


class _SliceDone(Exception):
    """Raised from the step callback to end the timed slice."""


class SliceTimer:
    """Step callback timing a slice of a run: after ``warmup`` steps, until ``slice_s`` seconds
    or ``max_steps`` timed steps (or the stage's deadline). The device is synchronised only at
    the window's ends and around each epoch end (the last step of an epoch and the first of the
    next), so epoch-end work (sample grid, checkpoint) is timed apart from the steps."""

    def __init__(self, run_dir: Path, warmup: int, slice_s: float, max_steps: int,
                 deadline: float, sync, guard_s: float = 8.0):
        self.run_dir, self.warmup, self.slice_s, self.max_steps = run_dir, warmup, slice_s, \
            max_steps
        self.deadline, self.sync, self.guard_s = deadline, sync, guard_s
        self.spe: int | None = None
        self.t0 = self.t_end = None
        self.end_step = None
        self.epoch_ends: list[float] = []      # seconds from the end of an epoch's last step
        self._last_of_epoch: float | None = None  # to the end of the next epoch's first step

    def __call__(self, state) -> None:
        s = state.step
        if self.spe is None:
            resolved = json.loads((self.run_dir / "config.json").read_text())["resolved"]
            self.spe = int(resolved["steps_per_epoch"])
        if s < self.warmup:
            return
        boundary_before = s % self.spe == 0          # an epoch end follows this step
        boundary_after = (s - 1) % self.spe == 0 and s - 1 >= self.warmup
        if s == self.warmup or boundary_before or boundary_after:
            self.sync()
            now = time.perf_counter()
            if s == self.warmup:
                self.t0 = now
            if boundary_after and self._last_of_epoch is not None:
                self.epoch_ends.append(now - self._last_of_epoch)
                self._last_of_epoch = None
            if boundary_before:
                self._last_of_epoch = now
        if s == self.warmup:
            return
        now = time.perf_counter()
        out_of_time = time.time() > self.deadline - self.guard_s
        if (now - self.t0 >= self.slice_s or s - self.warmup >= self.max_steps or out_of_time) \
                and not boundary_before:
            self.sync()
            self.t_end = time.perf_counter()
            self.end_step = s
            self.stopped_by = ("deadline" if out_of_time else "steps"
                               if s - self.warmup >= self.max_steps else "seconds")
            raise _SliceDone

    def figures(self, epochs: int) -> dict:
        timed = self.end_step - self.warmup
        window = self.t_end - self.t0
        n_ends = len(self.epoch_ends)
        step_s = (window - sum(self.epoch_ends)) / max(1, timed - n_ends)
        steps_per_s = 1 / step_s
        total_steps = self.spe * epochs
        out = {"steps_per_epoch": self.spe, "epochs": epochs, "total_steps": total_steps,
               "warmup_steps": self.warmup, "timed_steps": timed, "timed_s": window,
               "stopped_by": self.stopped_by, "steps_per_s": steps_per_s,
               "steps_per_s_with_epoch_ends": timed / window, "epoch_ends_timed": n_ends,
               "extrapolated_steps_only_s": total_steps / steps_per_s}
        if n_ends:
            end_s = max(0.0, statistics.mean(self.epoch_ends) - step_s)
            out["epoch_end_s"] = end_s
            out["extrapolated_full_s"] = epochs * (self.spe * step_s + end_s)
            out["extrapolation"] = ("epochs x (steps per epoch / steps per s + epoch-end "
                                    "seconds); epoch end = sample grid + checkpoint")
        else:
            out["extrapolated_full_s"] = out["extrapolated_steps_only_s"]
            out["extrapolation"] = ("steps per epoch x epochs / steps per s; no epoch end fell "
                                    "inside the slice, so the per-epoch sample grid and "
                                    "checkpoint are NOT included")
        return out


def stage_schedule(cfg: dict, device, report: StageReport) -> None:
    import torch

    from medsyn.generators import train
    from medsyn.generators.gan.config import resolve_config

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    options = {"dataset": cfg["dataset"], "data_root": cfg["data_root"], **cfg["options"]}
    config, _ = resolve_config("acgan", {**options, "device": str(device)}, None)
    report.write(settings={"command": "medsyn train acgan --dataset cxr3" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in cfg["options"].items()),
        "image_size": config.image_size, "batch_size": config.batch_size,
        "epochs": config.epochs, "compile": config.compile,
        "checkpoint_every": config.checkpoint_every, "slice_s": cfg["slice_s"]})
    with tempfile.TemporaryDirectory(prefix="gpu-suite-schedule-") as tmp:
        run_dir = Path(tmp) / "run"
        timer = SliceTimer(run_dir, cfg["warmup_steps"], cfg["slice_s"], cfg["max_timed_steps"],
                           report.deadline, sync)
        t0 = time.perf_counter()
        try:
            train("acgan", out=str(run_dir), device=str(device), quiet=True,
                  step_callback=timer, **options)
        except _SliceDone:
            pass
        else:
            raise RuntimeError("the run ended before the slice did (fewer steps than the "
                               "warm-up and the slice need)")
        resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    figures = timer.figures(config.epochs)
    figures["startup_and_warmup_s"] = timer.t0 - t0
    report.write(figure=figures, resolved={k: resolved[k] for k in (
        "device", "precision", "channels_last", "data_on_device", "steps_per_epoch")})
    print(f"  schedule: {figures['steps_per_s']:.2f} steps/s over {figures['timed_steps']} steps, "
          f"full schedule about {figures['extrapolated_full_s'] / 60:.1f} min",
          file=sys.stderr, flush=True)


def random_init_inception(device):
    """torch-fidelity's Inception v3 (the same network medsyn runs) with random weights: for
    timing when the weights file is not on this machine. Convolutions get variance-preserving
    (He) initialisation so activations neither vanish (denormals would slow a CPU) nor explode."""
    import torch

    from medsyn.device import resolve_device
    from medsyn.evaluators.features.inception import (
        FAST_EXECUTION,
        FastInceptionTrunk,
        InceptionExtractor,
        _inception_network,
    )

    class RandomInitInception(InceptionExtractor):
        def __init__(self, device):        # noqa: D107 - InceptionExtractor without weights
            self.device = resolve_device(device)
            torch.manual_seed(0)
            self.model = _inception_network()
            for m in self.model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            self.model.eval()
            self.weights_path = None
            self.weights_sha256 = None
            self.logits_unavailable = RANDOM_WEIGHTS
            self.model.features_list = ["2048"]
            self.model.to(self.device)
            self._fast = FastInceptionTrunk(self.model) if self.device.type == "cpu" else None
            self.conventions = {"network": "torch-fidelity FeatureExtractorInceptionV3",
                                "weights": RANDOM_WEIGHTS,
                                "execution": FAST_EXECUTION if self._fast is not None else
                                "torch-fidelity's eager forward"}

    return RandomInitInception(device)


def stage_eval(cfg: dict, device, report: StageReport) -> None:
    import torch

    import medsyn.evaluators as ev
    from medsyn.data import load_dataset
    from medsyn.evaluators.features.inception import InceptionExtractor
    from medsyn.evaluators.inputs import stratified_subset
    from medsyn.generators import engine
    from medsyn.generators.gan.checkpoint import balanced_labels, generate
    from medsyn.generators.gan.kinds import gan_kind

    weights = os.environ.get("MEDSYN_INCEPTION_WEIGHTS")
    real_weights = bool(weights) and Path(weights).is_file()
    t = time.perf_counter()
    ref = load_dataset(cfg["dataset"], "train", image_size=cfg["image_size"],
                       root=cfg["data_root"])
    ref = stratified_subset(ref, cfg["reference_limit"], 0)
    load_s = time.perf_counter() - t
    # the fakes: an untrained AC-GAN of the default architecture (the time does not depend on
    # what the images show), generated on the device
    spec = gan_kind("acgan")
    arch = spec.arch({}, ref.num_classes, ref.channels, cfg["image_size"])
    torch.manual_seed(0)
    gen, _ = spec.build(arch)
    gen = gen.to(device)
    z = torch.randn(cfg["n"], arch["noise_dim"], generator=torch.Generator().manual_seed(0))
    labels = balanced_labels(cfg["n"], ref.num_classes)
    t = time.perf_counter()
    fake = generate(gen, z, labels, device, batch_size=500,
                    precision=engine.resolve_precision("auto", device))
    sampling_s = time.perf_counter() - t
    del gen
    if device.type == "cuda":
        torch.cuda.empty_cache()
    report.write(settings={
        "metrics": ["fid", "kid"], "n_fake": len(fake), "n_real": len(ref),
        "reference": f"{ref.name}/{ref.split} at {cfg['image_size']} px",
        "fakes": "an untrained AC-GAN's samples (timing only)",
        "bootstrap_resamples": cfg["bootstrap"], "batch_size": cfg["batch_size"],
        "feature_cache": "off (the reference's features are extracted inside the timed call)",
        "weights": (f"torch-fidelity inception-v3-compat from {weights}" if real_weights
                    else RANDOM_WEIGHTS)})
    t = time.perf_counter()
    extractor = (InceptionExtractor(weights, device=str(device)) if real_weights
                 else random_init_inception(str(device)))
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    result = ev.evaluate(fake, labels, reference=ref, metrics=["fid", "kid"],
                         extractor=extractor, n_bootstrap=cfg["bootstrap"], seed=0,
                         device=str(device), batch_size=cfg["batch_size"], use_cache=False)
    evaluate_s = time.perf_counter() - t
    timings = result["provenance"]["timings"]
    figure = {"n_images": len(fake), "n_real": len(ref), "extractor_build_s": build_s,
              "evaluate_s": evaluate_s, "total_s": build_s + evaluate_s,
              "fake_features_s": timings.get("fake_features_s"),
              "real_features_s": timings.get("real_features_s"),
              "fid_s": timings.get("fid_s"), "kid_s": timings.get("kid_s"),
              "images_per_s_features": (len(fake) + len(ref)) / max(
                  1e-9, (timings.get("fake_features_s") or 0) + (timings.get("real_features_s")
                                                                  or 0)),
              "load_reference_s": load_s, "sampling_s": sampling_s,
              "weights": "torch-fidelity inception-v3-compat" if real_weights else RANDOM_WEIGHTS}
    if real_weights:
        fid, kid = result["metrics"]["fid"], result["metrics"]["kid"]
        figure["fid_untrained_generator"] = fid.get("value")
        figure["kid_untrained_generator"] = kid.get("value")
        figure["values_note"] = ("FID / KID of an untrained generator's images: a check that "
                                 "the computation ran, not a quality figure")
    report.write(figure=figure)
    print(f"  eval: {len(fake)} + {len(ref)} images, {figure['total_s']:.1f} s "
          f"(features {figure['fake_features_s']} + {figure['real_features_s']} s)",
          file=sys.stderr, flush=True)
    figure["extraction"] = extraction_throughput(
        extractor, fake[:cfg["throughput_n"]], cfg["throughput_batches"], device, report,
        cfg["throughput_min_left_s"], n_eval=len(fake) + len(ref))
    report.write(figure=figure)


def extraction_throughput(extractor, images, batch_sizes, device, report: StageReport,
                          min_left_s: float, n_eval: int) -> dict:
    """Images/s of ``extract_features`` on this one device, warm (a first pass of two batches
    at each batch size: cuDNN autotuning, allocator), timed with a synchronisation at each end;
    and what a sharded extraction over N GPUs would take at most N times that rate."""
    import torch

    from medsyn.evaluators.features import extract_features

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows = []
    for batch in batch_sizes:
        if report.left() < min_left_s:
            rows.append({"batch_size": batch, "status": "skipped",
                         "reason": f"{report.left():.0f} s of the stage budget left"})
            continue
        extract_features(extractor, images[:2 * batch], batch, desc="warm-up")
        sync()
        t = time.perf_counter()
        extract_features(extractor, images, batch, desc=f"throughput batch {batch}")
        sync()
        wall = time.perf_counter() - t
        rows.append({"batch_size": batch, "status": "ok", "n": len(images), "wall_s": wall,
                     "images_per_s": len(images) / wall})
    ok = [r for r in rows if r["status"] == "ok"]
    out = {"rows": rows, "device": str(device), "extractor": extractor.name,
           "image_size": list(images.shape[2:]), "weights": extractor.conventions.get(
               "weights", "torch-fidelity inception-v3-compat")}
    if ok:
        best = max(ok, key=lambda r: r["images_per_s"])
        rate = best["images_per_s"]
        out.update(images_per_s=rate, batch_size=best["batch_size"],
                   sharded_upper_bound_images_per_s={str(k): rate * k for k in SHARDED_GPUS},
                   eval_features_s_at={str(k): n_eval / (rate * k)
                                       for k in (1, *SHARDED_GPUS)},
                   extrapolation="linear in the number of GPUs: each torchrun rank extracts "
                                 "its shard of whole batches on its own GPU; the gather moves "
                                 "only the features (2048 float32 = 8 KB an image). An upper "
                                 "bound: data loading, rank start-up and the metrics on rank 0 "
                                 "do not shrink")
        print(f"  extraction: {rate:.0f} images/s on {device} (batch {best['batch_size']})",
              file=sys.stderr, flush=True)
    return out


class _StepsDone(Exception):
    pass


class StepTimer:
    """Step callback: the wall time of ``steps`` steps after ``warmup`` (device synchronised
    at both ends), then stops the run."""

    def __init__(self, warmup: int, steps: int, sync):
        self.warmup, self.steps, self.sync = warmup, steps, sync
        self.t0 = self.seconds = None

    def __call__(self, state) -> None:
        if state.step == self.warmup:
            self.sync()
            self.t0 = time.perf_counter()
        elif state.step == self.warmup + self.steps:
            self.sync()
            self.seconds = time.perf_counter() - self.t0
            raise _StepsDone


def stage_highres(cfg: dict, device, report: StageReport) -> None:
    """``medsyn train pggan`` (growth schedule shortened so that every timed step runs at the
    full size) and ``medsyn train megan`` at ``image_size``: real images per second over
    ``steps`` steps after ``warmup``, within the first epoch (no checkpoint or grid timed).
    On a GPU also the peak memory of MEGAN's generation against the whole-image generator."""
    import torch

    from medsyn.generators.highres.megan_training import train_megan
    from medsyn.generators.highres.pggan_training import train_pggan

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    common = {"dataset": cfg["dataset"], "data_root": cfg["data_root"],
              "image_size": cfg["image_size"], "batch_size": cfg["batch_size"],
              "device": str(device), "quiet": True}
    figure = {}
    trainers = {"pggan": (train_pggan, {"fade_images": 1, "stable_images": 1}),
                "megan": (train_megan, {"epochs": 1})}
    for kind, (train, extra) in trainers.items():
        timer = StepTimer(cfg["warmup"], cfg["steps"], sync)
        with tempfile.TemporaryDirectory(prefix=f"gpu-suite-{kind}-") as tmp:
            try:
                train(out=str(Path(tmp) / "run"), step_callback=timer, **common,
                      **cfg[kind], **extra)
            except _StepsDone:
                pass
        if timer.seconds is None:
            raise RuntimeError(f"{kind}: the run ended before {cfg['warmup'] + cfg['steps']} "
                               "steps")
        figure[f"{kind}_img_s"] = cfg["steps"] * cfg["batch_size"] / timer.seconds
        figure[f"{kind}_step_s"] = timer.seconds / cfg["steps"]
        report.write(figure=figure)
    if cfg.get("memory") and device.type == "cuda":
        from medsyn.generators.highres.config import scale_plan
        from medsyn.generators.highres.memory import (
            compare_generation_memory,
            compare_training_memory,
        )

        m = cfg["megan"]
        arch = {"image_size": cfg["image_size"], "channels": 1, "num_classes": 3,
                "scales": list(scale_plan(m["low_size"], cfg["image_size"], m["patch_size"])),
                "patch_size": m["patch_size"], "g_width": m["g_width"], "d_width": m["d_width"]}
        mem = cfg["memory"]
        figure["memory"] = {
            "generation": compare_generation_memory(arch, device, n=mem["n"],
                                                    tile_batch=mem["tile_batch"]),
            "training_step": compare_training_memory(arch, device, n=cfg["batch_size"])}
    report.write(figure=figure, settings={k: cfg[k] for k in (
        "image_size", "batch_size", "warmup", "steps", "pggan", "megan")})
    print(f"  highres: pggan {figure['pggan_img_s']:.1f} img/s, megan "
          f"{figure['megan_img_s']:.1f} img/s", file=sys.stderr, flush=True)


STAGE_FUNCTIONS = {"throughput": stage_throughput, "schedule": stage_schedule, "eval": stage_eval,
                   "highres": stage_highres}


def run_stage_child(argv: list[str]) -> int:
    """``gpu_suite.py _stage NAME CONFIG.json RESULT.json``: one stage, in its own process."""
    name, cfg_path, result_path = argv
    cfg = json.loads(Path(cfg_path).read_text())
    report = StageReport(Path(result_path), cfg["deadline"])
    try:
        import torch

        from medsyn.device import resolve_device

        if cfg["dry_run"]:
            torch.set_num_threads(1)
            torch.set_flush_denormal(True)
        device = resolve_device(cfg["device"])
        report.write(environment=device_info(device))
        STAGE_FUNCTIONS[name](cfg[name] | {k: cfg[k] for k in ("data_root", "dry_run")},
                              device, report)
        report.write(status="ok")
        return 0
    except Exception as exc:  # noqa: BLE001 - recorded in the JSON, the other stages go on
        import traceback

        traceback.print_exc()
        report.write(status="failed", error=f"{type(exc).__name__}: {exc}")
        return 1


# ------------------------------------------------------------------------------ the suite


def default_out() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu_suite.json" if out else Path("gpu_suite.json")


def run_child(name: str, cfg: dict, timeout: float, env: dict, workdir: Path) -> dict:
    """Run one stage in a child process with a hard timeout; return its report (partial after
    a timeout or crash), with status and error filled in."""
    cfg_path, result_path = workdir / f"{name}.config.json", workdir / f"{name}.result.json"
    cfg_path.write_text(json.dumps(cfg))
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_stage", name, str(cfg_path),
           str(result_path)]
    tail: deque[str] = deque(maxlen=15)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def pump():
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    report = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if timed_out:
        running = report.pop("running", None)
        what = f" while measuring {running}" if running else ""
        message = f"timed out after {timeout:.0f} s (the stage's budget){what}"
        if name == "throughput" and any(r.get("status") == "ok" and r["kind"] == "acgan"
                                        for r in report.get("rows", [])):
            # the stage's figure was measured; the row that ran out of time is marked failed
            report["rows"].append({"kind": running or "?", "status": "failed", "error": message})
            report["status"] = "ok"
            report["note"] = message + "; the rows before it are complete"
            ok = [r for r in report["rows"] if r.get("status") == "ok" and r["kind"] == "acgan"]
            best = max(ok, key=lambda r: r["ratio"])
            report["figure"] = {k: best[k] for k in ("ratio", "medsyn_img_s", "plain_img_s",
                                                     "compile")} | {"kind": "acgan"}
        else:
            report.update(status="failed", error=message)
    elif report.get("status") != "ok":
        report["status"] = "failed"
        report.setdefault("error", f"the stage process exited with status {proc.returncode}: "
                          + (" | ".join(tail) or "no output"))
    report.pop("running", None)
    return report


def goal_verdict(name: str, report: dict, dry_run: bool) -> dict:
    fig = report.get("figure") or {}
    value = {"throughput": fig.get("ratio"), "schedule": fig.get("extrapolated_full_s"),
             "eval": fig.get("total_s"), "highres": None}[name]
    met = None
    if value is not None and not dry_run:
        met = value >= 2.0 if name == "throughput" else value < (3600 if name == "schedule"
                                                                 else 30)
    out = {"goal": GOALS[name], "met": met}
    if dry_run:
        out["note"] = "dry run: toy sizes on CPU, not comparable with the goal"
    return out


def print_table(doc: dict) -> None:
    print(f"\nmedsyn GPU suite{' (DRY RUN, toy sizes)' if doc['dry_run'] else ''}: "
          f"{doc.get('environment', {}).get('gpu') or doc.get('environment', {}).get('device')}"
          f", {doc.get('wall_s', 0):.0f} s")
    for name in STAGES:
        st = doc["stages"].get(name)
        if st is None:
            continue
        fig = st.get("figure") or {}
        if st["status"] != "ok":
            text = st.get("reason") or st.get("error") or ""
            print(f"  {name:10s} {st['status'].upper():7s} {text[:200]}")
            continue
        if name == "throughput":
            for r in st.get("rows", []):
                label = f"{r['kind']}{'+compile' if r.get('compile') else ''}"
                if r.get("status") == "ok":
                    print(f"  {name:10s} {label:14s} medsyn {r['medsyn_img_s']:9.1f} img/s  "
                          f"plain {r['plain_img_s']:9.1f} img/s  ratio {r['ratio']:.2f}")
                else:
                    print(f"  {name:10s} {label:14s} {r.get('status')}: "
                          f"{r.get('reason') or r.get('error')}")
            tr = st.get("translation")
            if tr:
                label = f"{tr['kind']} {tr['image_size']}px"
                text = (f"medsyn {tr['medsyn_img_s']:9.1f} img/s  (translation, no plain loop)"
                        if tr.get("status") == "ok" else
                        f"{tr.get('status')}: {tr.get('reason') or tr.get('error')}")
                print(f"  {name:10s} {label:14s} {text}")
        elif name == "highres":
            mem = fig.get("memory") or {}
            print(f"  {name:10s} pggan {fig['pggan_img_s']:.1f} img/s, megan "
                  f"{fig['megan_img_s']:.1f} img/s")
            for what, m in mem.items():
                print(f"  {'':10s} peak memory, {what}: megan {m['megan_peak_bytes'] / 2**20:.0f} "
                      f"MiB vs whole image {m['whole_image_peak_bytes'] / 2**20:.0f} MiB")
        elif name == "schedule":
            print(f"  {name:10s} {fig['steps_per_s']:.2f} steps/s, epoch end "
                  f"{fig.get('epoch_end_s', float('nan')):.2f} s -> {fig['epochs']} epochs "
                  f"({fig['total_steps']} steps) about {fig['extrapolated_full_s'] / 60:.1f} min")
        else:
            extra = ("" if "fid_untrained_generator" not in fig else
                     f", FID {fig['fid_untrained_generator']:.1f} (untrained generator)")
            print(f"  {name:10s} {fig['n_images']} fake + {fig['n_real']} real: "
                  f"{fig['total_s']:.1f} s (features {fig['fake_features_s']} + "
                  f"{fig['real_features_s']} s, FID {fig['fid_s']} s, KID {fig['kid_s']} s; "
                  f"weights: {fig['weights']}){extra}")
            ext = fig.get("extraction") or {}
            if ext.get("images_per_s"):
                bound = ext["sharded_upper_bound_images_per_s"]
                print(f"  {'':10s} extraction {ext['images_per_s']:.0f} img/s on one "
                      f"{ext['device']} (batch {ext['batch_size']}); torchrun over "
                      + ", ".join(f"{k} GPUs <= {v:.0f}" for k, v in bound.items()))
        goal = st.get("goal", {})
        if goal:
            met = {True: "met", False: "NOT met", None: "n/a"}[goal["met"]]
            print(f"  {'':10s} goal: {goal['goal']}: {met}")


def run_suite(args) -> int:
    started = time.time()
    root = Path(args.data_root or os.environ.get("MEDSYN_DATA_ROOT") or "").expanduser()
    if not str(root) or str(root) == ".":
        raise SuiteError("no data root: set MEDSYN_DATA_ROOT or pass --data-root (a folder made "
                         "by 'python bench/gpu_suite.py pack --out gpu_data/', or the real data)."
                         )
    if cxr3_problem(root):
        raise SuiteError(data_root_advice(root))
    root = root.resolve()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise SuiteError(f"unknown stage(s) {bad or args.stages!r}; choose from "
                         f"{', '.join(STAGES)}.")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or kinds[0] != "acgan" or any(k not in ("acgan", "cgan", "dcgan") for k in kinds):
        raise SuiteError(f"--kinds must start with acgan and name only acgan, cgan, dcgan; got "
                         f"{args.kinds!r}.")
    import torch

    if not args.dry_run and args.device in ("auto", "cuda") and not torch.cuda.is_available():
        raise SuiteError("no CUDA GPU is visible: this suite measures GPU figures. Run it on "
                         "the GPU machine, or use --dry-run for the CPU smoke run at toy sizes.")
    device = "cpu" if args.dry_run and args.device == "auto" else args.device
    site, missing = site_dir_if_needed(root)
    if missing:
        raise SuiteError(f"the Python package(s) {', '.join(missing)} are not installed and "
                         f"{root / 'site'} does not hold them: pip install them, or make the data "
                         "folder with 'python bench/gpu_suite.py pack' (it copies them there).")
    env = dict(os.environ, PYTHONUNBUFFERED="1", MEDSYN_DATA_ROOT=str(root))
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(site)) if p)
    if args.dry_run:
        env["OMP_NUM_THREADS"] = "1"
    sizes = json.loads(json.dumps(DRY if args.dry_run else FULL))
    sizes["throughput"]["kinds"] = kinds
    if args.no_compile:
        sizes["throughput"]["compile"] = False
    if args.slice_s is not None:
        sizes["schedule"]["slice_s"] = args.slice_s
    if args.eval_n is not None:
        sizes["eval"]["n"] = args.eval_n
    budgets = dict(DEFAULT_STAGE_BUDGETS)
    for name in STAGES:
        value = getattr(args, f"{name}_s")
        if value is not None:
            budgets[name] = value
    out = Path(args.out) if args.out else default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    weights = os.environ.get("MEDSYN_INCEPTION_WEIGHTS")
    doc = {"suite": "medsyn GPU suite (bench/gpu_suite.py)", "version": SUITE_VERSION,
           "dry_run": bool(args.dry_run), "started": now_iso(), "finished": None,
           "command": [Path(sys.argv[0]).name, *sys.argv[1:]], "data_root": str(root),
           "budget_s": args.budget_s, "stage_budgets_s": budgets,
           "inception_weights": weights if weights and Path(weights).is_file() else None,
           "environment": {"device": device, "torch": str(torch.__version__),
                           "python": platform.python_version(), "host_cpus": os.cpu_count()},
           "stages": {}}
    if torch.cuda.is_available() and device != "cpu":
        doc["environment"]["gpu"] = torch.cuda.get_device_name(0)
    write_json(out, rounded(doc))
    print(f"GPU suite{' (dry run)' if args.dry_run else ''}: stages {', '.join(stages)}, "
          f"budget {args.budget_s:.0f} s, data {root}, JSON {out}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        for name in STAGES:
            if name not in stages:
                doc["stages"][name] = {"title": STAGE_TITLES[name], "status": "skipped",
                                       "reason": f"not chosen (--stages {args.stages})"}
                write_json(out, rounded(doc))
                continue
            left = args.budget_s - (time.time() - started)
            timeout = min(budgets[name], left)
            entry = {"title": STAGE_TITLES[name], "budget_s": round(timeout, 1)}
            if timeout < 20:
                entry.update(status="skipped", reason=f"the suite's budget ({args.budget_s:.0f} "
                             f"s) is spent: {left:.0f} s left")
            else:
                print(f"[{name}] {STAGE_TITLES[name]} (budget {timeout:.0f} s)", file=sys.stderr,
                      flush=True)
                # what the JSON says if the whole suite is killed while this stage runs
                doc["stages"][name] = {**entry, "status": "failed", "error": "the suite was "
                                       "stopped while this stage ran; no figures recorded"}
                write_json(out, rounded(doc))
                t0 = time.time()
                cfg = {"device": device, "data_root": str(root), "dry_run": bool(args.dry_run),
                       "deadline": t0 + timeout, name: sizes[name]}
                report = run_child(name, cfg, timeout, env, Path(tmp))
                entry.update(report)
                entry["wall_s"] = round(time.time() - t0, 2)
                if entry["status"] == "ok":
                    entry["goal"] = goal_verdict(name, entry, args.dry_run)
                if "environment" in report and "gpu" in report["environment"]:
                    doc["environment"].update(report["environment"])
            doc["stages"][name] = entry
            doc["wall_s"] = round(time.time() - started, 2)
            write_json(out, rounded(doc))
    doc["finished"] = now_iso()
    doc["wall_s"] = round(time.time() - started, 2)
    write_json(out, rounded(doc))
    print_table(doc)
    print(f"figures: {out}")
    failed = [n for n, st in doc["stages"].items() if st["status"] == "failed"]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_stage"]:
        return run_stage_child(argv[1:])
    if argv[:1] == ["pack"]:
        ap = argparse.ArgumentParser(prog="gpu_suite.py pack",
                                     description="Write the compact data folder the suite reads "
                                     "on the GPU machine (carry it along; it is git-ignored).")
        ap.add_argument("--out", required=True, help="folder to write, e.g. gpu_data/")
        ap.add_argument("--data-root", help="where the real cxr3 is (default MEDSYN_DATA_ROOT)")
        ap.add_argument("--image-size", type=int, default=112)
        ap.add_argument("--limit", type=int, default=None,
                        help="at most this many training images per class (default: all)")
        ap.add_argument("--heldout-limit", type=int, default=8,
                        help="val / test images per class (default 8: the suite reads only "
                             "train; these keep cxr3's layout complete)")
        ap.add_argument("--no-site-packages", action="store_true",
                        help="do not copy torch-fidelity and medmnist's metadata to OUT/site")
        ap.add_argument("--overwrite", action="store_true", help="replace an earlier pack")
        args = ap.parse_args(argv[1:])
        runner = pack
    else:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="'gpu_suite.py pack --help': the data folder.")
        ap.add_argument("--out", help="the JSON (default $OUT/gpu_suite.json when OUT is set, "
                                      "else gpu_suite.json)")
        ap.add_argument("--data-root", help="folder holding cxr3/ (default MEDSYN_DATA_ROOT)")
        ap.add_argument("--dry-run", action="store_true",
                        help="every stage on CPU at toy sizes (a smoke test, not figures)")
        ap.add_argument("--device", default="auto", help="auto (GPU; CPU for --dry-run), cuda, "
                                                         "cuda:N, cpu")
        ap.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma list of {', '.join(STAGES)}")
        ap.add_argument("--kinds", default="acgan,cgan,dcgan",
                        help="throughput: kinds, acgan first (the others if time allows)")
        ap.add_argument("--no-compile", action="store_true",
                        help="throughput: skip the compile=True row")
        ap.add_argument("--slice-s", type=float, help="schedule: timed seconds (default 60)")
        ap.add_argument("--eval-n", type=int, help="eval: generated images (default 10000)")
        ap.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"the whole suite's seconds (default {DEFAULT_BUDGET_S})")
        for name in STAGES:
            ap.add_argument(f"--{name}-s", type=float, default=None,
                            help=f"{name} stage's seconds (default {DEFAULT_STAGE_BUDGETS[name]})")
        args = ap.parse_args(argv)
        if args.eval_n is not None and args.eval_n < 2:
            ap.error("--eval-n must be >= 2")
        runner = run_suite
    try:
        return runner(args)
    except SuiteError as exc:
        print(f"gpu_suite: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
