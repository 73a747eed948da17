"""Size and power of the real-vs-synthetic permutation test on real features
(metrics/distribution/two_sample.py; docs/statistics.md).

- size: ``--draws`` pairs of disjoint random sets of ``--n`` training images each (real vs
  real, exchangeable by construction): the share of draws the test calls distinguishable
  should be about 5 %;
- power on a known shift: the same, but the second set's class mix is moved (``--shift``: the
  share of the first class is raised by that many points), the kind of shift a generator
  that over-produces one class makes; and the training set against the test split (MedMNIST's
  test split is another collection).

    python bench/two_sample_tests.py --dataset pneumoniamnist --extractor inception --n 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from medsyn.data import load_dataset
from medsyn.data.subsets import split_counts
from medsyn.evaluators.features import PixelExtractor, dataset_features, get_extractor
from medsyn.evaluators.metrics.distribution.two_sample import two_sample_test


def _mixed(labels, n, first_share, rng, exclude=None):
    """``n`` rows with the first class at ``first_share`` of them, the rest as the data."""
    quotas = [round(n * first_share)]
    rest = split_counts(n - quotas[0], np.bincount(labels)[1:])
    quotas += rest
    rows = []
    for c, q in enumerate(quotas):
        pool = np.flatnonzero(labels == c)
        if exclude is not None:
            pool = np.setdiff1d(pool, exclude)
        rows.append(rng.choice(pool, q, replace=False))
    return np.concatenate(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--extractor", default="inception",
                    help="a registered extractor, or pixelsN")
    ap.add_argument("--n", type=int, default=100, help="images per set")
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--permutations", type=int, default=199)
    ap.add_argument("--shift", type=float, default=0.2,
                    help="points added to the first class's share in the shifted set")
    args = ap.parse_args()

    size = args.extractor[len("pixels"):]
    ext = PixelExtractor(int(size)) if size.isdigit() else get_extractor(args.extractor)
    train = load_dataset(args.dataset, "train")
    test = load_dataset(args.dataset, "test")
    t0 = time.perf_counter()
    f_train = dataset_features(train, ext, 64, True).features.astype(np.float64)
    f_test = dataset_features(test, ext, 64, True).features.astype(np.float64)
    labels = train.labels.numpy()
    share = float(np.mean(labels == 0))
    print(f"{args.dataset} in {ext.name}: train {len(f_train)}, test {len(f_test)}; class 0 "
          f"share {share:.3f}; features {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1):
        for name, draw in (
            ("real vs real (size)", lambda: np.split(rng.permutation(len(f_train))[:2 * args.n],
                                                     2)),
            (f"class mix +{args.shift:.2f} (power)", None),
            ("train vs test split", None),
        ):
            t0 = time.perf_counter()
            hits = {"combined": 0, "fd": 0, "mmd": 0}
            for _ in range(args.draws):
                if draw is not None:
                    a, b = draw()
                    x, y = f_train[a], f_train[b]
                elif name.startswith("class"):
                    a = rng.permutation(len(f_train))[:args.n]
                    b = _mixed(labels, args.n, min(1.0, share + args.shift), rng, exclude=a)
                    x, y = f_train[a], f_train[b]
                else:
                    x = f_train[rng.permutation(len(f_train))[:args.n]]
                    y = f_test[rng.permutation(len(f_test))[:args.n]]
                t = two_sample_test(x, y, rng, args.permutations)
                hits["combined"] += t["distinguishable"]
                hits["fd"] += t["fd"]["p_value"] <= 0.05
                hits["mmd"] += t["mmd"]["p_value"] <= 0.05
            took = time.perf_counter() - t0
            print(f"{name}: n = {args.n} per set, {args.draws} draws, {args.permutations} "
                  "permutations: rejected " + ", ".join(
                      f"{k} {v / args.draws:.3f}" for k, v in hits.items())
                  + f" ({took:.0f} s)")


if __name__ == "__main__":
    main()
