"""The within-class spread of a PGGAN's images against the real images', as its training step
logs it (``g_std_class`` / ``real_std_class``, the statistic ``PgganCollapseDetector`` reads),
for a finished checkpoint: batches of 16 with random labels from the training generator and
from the EMA generator, against random real batches of the run's dataset at the checkpoint's
growth position (docs/highres.md, "Not caught during training then; caught now").

    python bench/pggan_spread_ratio.py RUN/last.pt [--batches 60]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from medsyn.data import load_dataset
from medsyn.generators.checkpoint import read_checkpoint
from medsyn.generators.highres.pggan_nets import build_pggan
from medsyn.generators.highres.pggan_training import reals_at
from medsyn.generators.stabilisers.collapse import class_spread
from medsyn.model_range import to_model_range


def spread_ratios(path: str, batches: int = 60, batch_size: int = 16, seed: int = 0) -> dict:
    payload = read_checkpoint(path)
    arch, where = payload["arch"], payload["growth"]
    k = arch["num_classes"]
    ds = load_dataset(payload["dataset"]["name"], payload["dataset"]["split"],
                      image_size=arch["image_size"], root=payload["dataset"].get("root"))
    out = {}
    for which in ("generator", "generator_ema"):
        gen = torch.Generator().manual_seed(seed)
        g, _ = build_pggan(arch)
        g.load_state_dict(payload["models"][which])
        g.eval()
        fakes, reals = [], []
        with torch.no_grad():
            for _ in range(batches):
                z = torch.randn(batch_size, arch["noise_dim"], generator=gen)
                labels = torch.randint(k, (batch_size,), generator=gen)
                fake = g(z, labels if k > 1 else None, where["level"], where["alpha"])
                idx = torch.randint(len(ds), (batch_size,), generator=gen)
                x = reals_at(to_model_range(ds.images[idx]), where["resolution"], where["alpha"])
                fakes.append(float(class_spread(fake, labels, k, fake.std(0).mean())))
                reals.append(float(class_spread(x, ds.labels[idx], k, x.std(0).mean())))
        per_batch = [f / r for f, r in zip(fakes, reals, strict=True)]
        out[which] = {"fake": statistics.mean(fakes), "real": statistics.mean(reals),
                      "ratio": statistics.mean(fakes) / statistics.mean(reals),
                      "per_batch": (min(per_batch), max(per_batch))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for which, r in spread_ratios(args.checkpoint, args.batches).items():
        print(f"{which}: fake {r['fake']:.4f} real {r['real']:.4f} ratio {r['ratio']:.3f} "
              f"per batch {r['per_batch'][0]:.3f} to {r['per_batch'][1]:.3f}")


if __name__ == "__main__":
    main()
