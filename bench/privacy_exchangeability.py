"""Size and power of the privacy audit's exchangeability check on real features (docs/privacy.md).

- size: ``--draws`` random splits of the training split into a "training set" and a
  "held-out set" of the validation split's size (exchangeable by construction): the share of
  draws in which the check reports a shift should be about its level, 5 %;
- the validation split and the test split against the whole training split, with ``--seeds``
  different probes each: MedMNIST's val split is drawn from the training pool, its test split
  is another collection.

    python bench/privacy_exchangeability.py --dataset pneumoniamnist --extractor pixels28
    python bench/privacy_exchangeability.py --dataset pneumoniamnist --extractor inception
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from medsyn.data import load_dataset
from medsyn.evaluators.features import PixelExtractor, dataset_features, get_extractor
from medsyn.evaluators.metrics.privacy.exchangeability import SHIFT_ALPHA, check_exchangeable


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--extractor", default="pixels28",
                    help="a registered extractor, or pixelsN (raw pixels at N x N, as the audit)")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--permutations", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    splits = {s: load_dataset(args.dataset, split=s) for s in ("train", "val", "test")}
    size = args.extractor[len("pixels"):]
    ext = PixelExtractor(int(size), device=args.device) if size.isdigit() else \
        get_extractor(args.extractor, device=args.device)
    t0 = time.perf_counter()
    feats = {s: dataset_features(ds, ext, 64, True).features.astype(np.float64)
             for s, ds in splits.items()}
    print(f"{args.dataset} in {ext.name}: train {len(feats['train'])}, val {len(feats['val'])}, "
          f"test {len(feats['test'])}; features {time.perf_counter() - t0:.1f} s")
    train = feats["train"]
    n_held = len(feats["val"])
    with threadpool_limits(limits=1):
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        rejected = {"combined": 0, "distance": 0, "mmd": 0}
        for _ in range(args.draws):
            perm = rng.permutation(len(train))
            c = check_exchangeable(train[perm[n_held:]], train[perm[:n_held]], rng,
                                   n_permutations=args.permutations)
            rejected["combined"] += c["shift_detected"]
            rejected["distance"] += c["distance"]["p_value"] < SHIFT_ALPHA
            rejected["mmd"] += c["mmd"]["p_value"] < SHIFT_ALPHA
        took = time.perf_counter() - t0
        rates = ", ".join(f"{k} {v}/{args.draws} ({100 * v / args.draws:.1f} %)"
                          for k, v in rejected.items())
        print(f"size, train split into {len(train) - n_held} + {n_held}: shift reported in "
              f"{rates}; {took / args.draws:.2f} s per check")
        for split in ("val", "test"):
            for seed in range(args.seeds):
                c = check_exchangeable(train, feats[split], np.random.default_rng(seed),
                                       n_permutations=args.permutations)
                d, m = c["distance"], c["mmd"]
                print(f"{split:5s} vs train, probe seed {seed}: combined p {c['p_value']:.3g} "
                      f"({'SHIFT' if c['shift_detected'] else 'no shift'}); distance AUC "
                      f"{d['auc']:.3f} p {d['p_value']:.3g}, median ratio "
                      f"{d['median_ratio']:.3f}; MMD^2 {m['mmd2']:.3g} p {m['p_value']:.3g}")


if __name__ == "__main__":
    main()
