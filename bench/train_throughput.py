"""Training throughput (images/s) of medsyn's loop vs a minimal plain PyTorch loop of the same nets.

    python bench/train_throughput.py                       # all kinds, 112 px and 28 px configs
    python bench/train_throughput.py --kinds cgan --configs cpu28 --repeats 5 --steps 20

Configs:
    default112  each kind's defaults (the source material's networks) on cxr3 at 112 px, batch 64
    cpu28       PneumoniaMNIST at 28 px, batch 64, widths 32 (a CPU-sized run)

"medsyn" is ``medsyn.generators.train`` (everything included: data on the device, per-step JSON
log, NaN guard, progress bookkeeping; AMP / channels_last / cuDNN autotuning on a GPU). "plain"
is what a minimal script does with the same networks and losses: fp32, a ``DataLoader`` over a
float ``TensorDataset`` with shuffling, the DCGAN-tutorial step (D on real, D on fake, G through D
without freezing it), ``.item()`` of the losses each step.

The two loops run in one process with their steps interleaved: after each medsyn step (its
``step_callback``) one plain step runs. A medsyn step's time is everything between two
callbacks (step, logging, bookkeeping); a plain step's time is the plain step. Interleaving
makes both see the same machine load, which matters on a shared machine. The first ``warmup``
steps of each are not counted; the timed steps lie inside one epoch (no checkpoint or sample
grid among them). Figures are medians over repeats; the ratio is the median of per-repeat
ratios of medsyn / plain images/s.

``--mode sequential`` (for GPUs) runs medsyn's loop first and then the plain loop, each timed
over its window of steps with one synchronisation at each end, so that neither pays a per-step
synchronisation the other imposes; the plain loop runs with PyTorch's default backend flags
(medsyn's cuDNN autotuning / TF32 settings are undone first). ``--compile`` passes
``compile=True`` to medsyn's loop. ``bench/gpu_suite.py`` imports :func:`sequential`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the medsyn of this checkout, even when another copy is pip-installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {
    "default112": {"dataset": "cxr3", "image_size": 112, "batch_size": 64},
    "cpu28": {"dataset": "pneumoniamnist", "image_size": 28, "batch_size": 64, "g_width": 32,
              "d_width": 32},
}


class PlainLoop:
    """What a minimal script does with the same networks and losses (one step per call)."""

    def __init__(self, kind: str, config: dict, device: str):
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        from medsyn.data import load_dataset
        from medsyn.generators.gan.kinds import GAN_KINDS

        self.torch, self.device = torch, device
        self.spec = spec = GAN_KINDS[kind]
        ds = load_dataset(config["dataset"], "train", image_size=config["image_size"],
                          root=config.get("data_root"))
        options = {k: config.get(k) for k in spec.arch_defaults}
        arch = spec.arch(options, ds.num_classes, ds.channels, config["image_size"])
        torch.manual_seed(0)
        self.netG, self.netD = (m.to(device) for m in spec.build(arch))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        data = TensorDataset(ds.images.float() / 127.5 - 1, ds.labels)
        self.loader = DataLoader(data, batch_size=config["batch_size"], shuffle=True,
                                 drop_last=True)
        self.batches = iter(self.loader)
        self.nz, self.k = arch["noise_dim"], arch["num_classes"]
        self.bce = torch.nn.BCEWithLogitsLoss()
        self.real_target = 0.9 if kind == "acgan" else 1.0

    def step(self) -> None:
        torch, spec, device = self.torch, self.spec, self.device
        import torch.nn.functional as F

        try:
            x, y = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            x, y = next(self.batches)
        x, y = x.to(device), y.to(device)
        n = x.size(0)
        z = torch.randn(n, self.nz, device=device)
        yf = torch.randint(self.k, (n,), device=device) if spec.conditional else None
        d_real_y = y if spec.label_input_to_d else None
        d_fake_y = yf if spec.label_input_to_d else None
        self.netD.zero_grad()
        src, cls = self.netD(x, d_real_y)
        err_real = self.bce(src, torch.full((n,), self.real_target, device=device))
        if spec.aux_classifier:
            err_real = err_real + F.cross_entropy(cls, y)
        err_real.backward()
        fake = self.netG(z, yf)
        src, cls = self.netD(fake.detach(), d_fake_y)
        err_fake = self.bce(src, torch.zeros(n, device=device))
        if spec.aux_classifier:
            err_fake = err_fake + F.cross_entropy(cls, yf)
        err_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        src, cls = self.netD(fake, d_fake_y)
        err_g = self.bce(src, torch.ones(n, device=device))
        if spec.aux_classifier:
            err_g = err_g + F.cross_entropy(cls, yf)
        err_g.backward()
        self.optG.step()
        _ = ((err_real + err_fake).item(), err_g.item())


def interleaved(kind: str, config: dict, warmup: int, steps: int, device: str,
                **medsyn_options):
    """images/s of (medsyn, plain), their steps alternating in one process.

    ``medsyn_options``: more options of medsyn's run only (``compile=True``, ...)."""
    from medsyn.generators import train

    plain = PlainLoop(kind, config, device)
    ours_t, plain_t = [], []
    last = [None]

    def sync():
        if device != "cpu":
            plain.torch.cuda.synchronize()

    def after_medsyn_step(state):
        sync()
        now = time.perf_counter()
        if state.step > warmup:
            ours_t.append(now - last[0])
        t0 = time.perf_counter()
        plain.step()
        sync()
        t1 = time.perf_counter()
        if state.step > warmup:
            plain_t.append(t1 - t0)
        last[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        train(kind, out=str(Path(out) / "run"), epochs=1000, max_steps=warmup + steps,
              device=device, quiet=True, step_callback=after_medsyn_step, keep_last=1,
              **config, **medsyn_options)
    batch = config["batch_size"]
    return steps * batch / sum(ours_t), steps * batch / sum(plain_t)


def _backend_flags() -> dict:
    import torch

    return {"cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}


def _restore_backend_flags(flags: dict) -> None:
    import torch

    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = flags["cudnn_deterministic"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_allow_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_allow_tf32"]


def sequential(kind: str, config: dict, warmup: int, steps: int, device: str,
               **medsyn_options) -> dict:
    """images/s of medsyn's loop, then of the plain loop, each over ``steps`` timed steps.

    Each is timed from the end of its ``warmup``-th step to the end of its last step, with a
    device synchronisation only at those two points (a GPU keeps its queue between steps, as in
    real training). The timed steps must lie inside medsyn's first epoch (no sample grid or
    checkpoint among them). The plain loop runs with the backend flags as they were before
    medsyn's run (PyTorch's defaults in a fresh process). Returns a dict with ``medsyn_img_s``,
    ``plain_img_s``, the seconds and steps of each, and what medsyn's run resolved (precision,
    channels_last, data on device, steps per epoch).
    """
    import json as _json

    import torch

    from medsyn.generators import train

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    if warmup < 1 or steps < 1:
        raise ValueError(f"sequential timing needs warmup >= 1 and steps >= 1, got {warmup}, "
                         f"{steps}.")
    flags = _backend_flags()
    marks: dict[str, float] = {}

    def after_medsyn_step(state):
        if state.step == warmup:
            sync()
            marks["start"] = time.perf_counter()
        elif state.step == warmup + steps:
            sync()
            marks["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        run_dir = Path(out) / "run"
        train(kind, out=str(run_dir), epochs=1000, max_steps=warmup + steps, device=device,
              quiet=True, step_callback=after_medsyn_step, keep_last=1,
              **config, **medsyn_options)
        resolved = _json.loads((run_dir / "config.json").read_text())["resolved"]
    spe = resolved["steps_per_epoch"]
    if warmup + steps > spe:
        raise ValueError(
            f"warm-up + timed steps ({warmup} + {steps}) exceed one epoch ({spe} steps of "
            f"{config['dataset']} at batch {config['batch_size']}): the timed window would "
            "include a sample grid and a checkpoint. Use fewer steps or a smaller batch.")
    run_info = {k: resolved[k] for k in ("device", "precision", "channels_last",
                                         "data_on_device", "steps_per_epoch")}
    medsyn_s = marks["end"] - marks["start"]
    if device != "cpu":
        torch.cuda.empty_cache()
    _restore_backend_flags(flags)
    plain = PlainLoop(kind, config, device)
    for _ in range(warmup):
        plain.step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        plain.step()
    sync()
    plain_s = time.perf_counter() - t0
    del plain
    batch = config["batch_size"]
    return {"medsyn_img_s": steps * batch / medsyn_s, "plain_img_s": steps * batch / plain_s,
            "medsyn_s": medsyn_s, "plain_s": plain_s, "steps": steps, "warmup": warmup,
            "medsyn_resolved": run_info,
            "plain_settings": {"precision": "fp32", "loader": "DataLoader(shuffle=True)",
                               "backend_flags": flags}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["acgan", "cgan", "dcgan"])
    parser.add_argument("--configs", nargs="+", default=["default112", "cpu28"],
                        choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default: 3 for default112, 20 for cpu28)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    parser.add_argument("--mode", choices=["interleaved", "sequential"], default="interleaved",
                        help="interleaved steps (default; CPU) or one loop after the other "
                             "(GPU; see the module docstring)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile medsyn's networks (compile=True)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    for config_name in args.configs:
        config = CONFIGS[config_name]
        steps = args.steps or (3 if config["image_size"] >= 64 else 20)
        for kind in args.kinds:
            ours, plain, ratios = [], [], []
            for r in range(args.repeats):
                extra = {"compile": True} if args.compile else {}
                if args.mode == "sequential":
                    got = sequential(kind, config, args.warmup, steps, args.device, **extra)
                    m, p = got["medsyn_img_s"], got["plain_img_s"]
                else:
                    m, p = interleaved(kind, config, args.warmup, steps, args.device, **extra)
                got = {"medsyn": m, "plain": p}
                ours.append(got["medsyn"])
                plain.append(got["plain"])
                ratios.append(got["medsyn"] / got["plain"])
                print(f"  {config_name} {kind} repeat {r + 1}: medsyn {got['medsyn']:.1f} "
                      f"plain {got['plain']:.1f} img/s", file=sys.stderr)
            row = {"config": config_name, "kind": kind, "device": args.device,
                   "threads": torch.get_num_threads(), "steps": steps, "warmup": args.warmup,
                   "repeats": args.repeats, "medsyn_img_s": statistics.median(ours),
                   "plain_img_s": statistics.median(plain), "ratio": statistics.median(ratios),
                   "ratios": ratios}
            if args.mode != "interleaved" or args.compile:
                row.update(mode=args.mode, compile=args.compile)
            print(f"{config_name:10s} {kind:5s}  medsyn {row['medsyn_img_s']:8.1f} img/s  "
                  f"plain {row['plain_img_s']:8.1f} img/s  ratio {row['ratio']:.3f} "
                  f"(per repeat {', '.join(f'{x:.2f}' for x in ratios)})")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
