"""Training cost of the ssl space's SimCLR encoder on this machine.

    python bench/ssl_training_cost.py --dataset pneumoniamnist --recipe quick      # full run
    python bench/ssl_training_cost.py --dataset cxr3 --size 64 --recipe standard --epochs 1 \\
        --max-images 1024                                                       # one epoch

Trains the recipe (with the overrides given) on the dataset's real training split, without
the cache, and prints wall seconds, process CPU seconds, images and the per-epoch history.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medsyn.data import load_dataset  # noqa: E402
from medsyn.evaluators.networks.ssl import get_ssl_recipe, train_ssl_encoder  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--recipe", default="quick")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    ds = load_dataset(args.dataset, "train", image_size=args.size)
    recipe = get_ssl_recipe(args.recipe, epochs=args.epochs, max_images=args.max_images)
    t0, c0 = time.perf_counter(), time.process_time()
    enc = train_ssl_encoder(ds.images, recipe, 0, args.device)
    print(json.dumps({"dataset": args.dataset, "size": list(ds.image_size),
                      "recipe": recipe.name, "epochs": recipe.epochs, "n_train": enc.n_train,
                      "wall_s": round(time.perf_counter() - t0, 1),
                      "cpu_s": round(time.process_time() - c0, 1),
                      "threads": torch.get_num_threads(), "history": enc.history}))


if __name__ == "__main__":
    main()
