"""Wall time and results of the train-on-synthetic utility protocol on a real dataset.

    python bench/utility_protocol.py --dataset pneumoniamnist --recipe quick --seeds 0,1,2
    python bench/utility_protocol.py --dataset pneumoniamnist --recipe medmnist --seeds 0 \
        --arms trtr                      # the TRTR arm with MedMNIST v2's full recipe

The "synthetic" images are a stand-in chosen with --synthetic: ``real`` (the real training
images themselves: TSTR must then match TRTR), ``noise`` (uniform noise: TSTR must be at
chance) or a checkpoint path (a trained conditional generator). The classifier cache is
bypassed (--no-cache is the default here) so every arm is trained and timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsyn.data import load_dataset  # noqa: E402
from medsyn.evaluators.metrics.utility.protocol import ARMS, evaluate_utility  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--recipe", default="quick")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--synthetic", default="real",
                    help="real | noise | path to a conditional generator checkpoint")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--use-cache", action="store_true", help="reuse cached TRTR classifiers")
    ap.add_argument("--json", type=Path, default=None, help="also write the block here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from medsyn.evaluators.networks.classifier import get_recipe

    recipe = get_recipe(args.recipe, epochs=args.epochs, precision=args.precision)
    t0 = time.perf_counter()
    splits = {s: load_dataset(args.dataset, s, image_size=args.image_size)
              for s in ("train", "val", "test")}
    train = splits["train"]
    sampler = None
    if args.synthetic == "real":
        images, labels = train.images, train.labels
    elif args.synthetic == "noise":
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, train.images.shape, generator=g, dtype=torch.uint8)
        labels = train.labels
    else:
        from medsyn.evaluators.inputs import sample_generator
        from medsyn.generators import load_checkpoint

        gen = load_checkpoint(args.synthetic, device=args.device if args.device != "auto"
                              else ("cuda" if torch.cuda.is_available() else "cpu"))
        images, labels = None, None

        def sampler(lab, seed):
            return sample_generator(gen, lab, seed, 256)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    block = evaluate_utility(images, labels, train=train, val=splits["val"],
                             test=splits["test"], recipe=recipe,
                             seeds=[int(s) for s in args.seeds.split(",")],
                             arms=args.arms.split(","), device=args.device, sampler=sampler,
                             use_cache=args.use_cache)
    took = time.perf_counter() - t0
    print(f"dataset {args.dataset} {train.image_size[0]}px, recipe {recipe.name} "
          f"({recipe.epochs} epochs), seeds {block['seeds']}, synthetic={args.synthetic}, "
          f"device {block['device']}, torch threads {torch.get_num_threads()}")
    print(f"load {t_load:.1f} s, protocol {took:.1f} s")
    print(f"{'arm':16s} {'accuracy':>16s} {'bal. acc':>16s} {'AUC':>16s} {'F1':>16s}")
    for arm, a in block["arms"].items():
        cells = []
        for s in ("accuracy", "balanced_accuracy", "auc_macro", "f1_macro"):
            m, sd = a[s].get("mean"), a[s].get("std")
            cells.append("n/a" if m is None else f"{m:.3f} ± {sd:.3f}")
        print(f"{arm:16s} " + " ".join(f"{c:>16s}" for c in cells))
    for c in block["classifiers"]:
        print(f"  {c['arm']:7s} seed {c['seed']}: best epoch {c['best_epoch']}, "
              f"{c['n_train']} images, {c['train_seconds']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"block": block, "seconds": took, "load_seconds": t_load,
                                         "args": vars(args) | {"json": str(args.json)},
                                         "torch": torch.__version__,
                                         "python": platform.python_version(),
                                         "cpu_count": os.cpu_count()}, indent=2, default=str))


if __name__ == "__main__":
    main()
