"""The privacy audit on sets with a known answer, for the figures in docs/privacy.md.

Training, held-out and "synthetic" images are disjoint random draws from one real split
(``--pool``), so held-out and unseen images come from exactly the training distribution:

- ``copies``: the first ``--n-fake`` training images plus Gaussian noise (sigma in grey levels):
  a leak, every test should flag;
- ``unseen``: real images of the pool never used for training: no leak, nothing should flag;
- ``val-vs-test`` (with ``--splits``): the dataset's val split as "synthetic" and its test
  split as held-out: no leak either, but the test split may differ in distribution from the
  training split; the exchangeability check (last column) tells, and the verdict then
  abstains, as no control is given here (docs/privacy.md).

    python bench/privacy_audit.py --dataset pneumoniamnist --extractor pixels
    python bench/privacy_audit.py --dataset pneumoniamnist --extractor inception --n-train 600
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from medsyn.data import load_dataset
from medsyn.evaluators import evaluate


def noised(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = images.float() + sigma * torch.randn(images.shape, generator=g)
    return x.round().clamp(0, 255).to(torch.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--pool", default="train", help="split the three sets are drawn from")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--extractor", default="pixels")
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--n-heldout", type=int, default=600)
    ap.add_argument("--n-fake", type=int, default=600)
    ap.add_argument("--sigma", type=float, default=4.0)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--splits", action="store_true", help="also run val-vs-test")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    full = load_dataset(args.dataset, split=args.pool, image_size=args.image_size)
    need = args.n_train + args.n_heldout + args.n_fake
    if need > len(full):
        raise SystemExit(f"{args.dataset}/{args.pool} has {len(full)} images, {need} needed")
    perm = np.random.default_rng(0).permutation(len(full))
    train = full.subset(perm[:args.n_train])
    held = full.subset(perm[args.n_train:args.n_train + args.n_heldout])
    unseen = full.subset(perm[args.n_train + args.n_heldout:need])
    scenarios = [("copies", noised(train.images[:args.n_fake], args.sigma, 0), held),
                 ("unseen", unseen.images, held)]
    if args.splits:
        val = load_dataset(args.dataset, split="val", image_size=args.image_size)
        test = load_dataset(args.dataset, split="test", image_size=args.image_size)
        scenarios.append(("val-vs-test", val.images, test))
    print(f"{args.dataset}/{args.pool}: train {len(train)}, held-out {len(held)}, "
          f"synthetic {args.n_fake}; extractor {args.extractor}; sigma {args.sigma}")
    print(f"{'scenario':12s} {'space':22s} {'DCR p':>9s} {'ratio':>6s} {'<p5':>6s} "
          f"{'C_T':>7s} {'z':>7s} {'AUC':>6s} {'AUC 95% CI':>16s}  flags  seconds  "
          "check p (exchangeability of training and held-out images)")
    for name, fake, heldout in scenarios:
        t0 = time.perf_counter()
        res = evaluate(fake, reference=train, train=train, heldout=heldout, metrics="privacy",
                       extractor=args.extractor, n_bootstrap=args.bootstrap,
                       device=args.device)["metrics"]["privacy"]
        took = time.perf_counter() - t0
        for space, b in res["spaces"].items():
            dcr, ct, mia = b["dcr"], b["data_copying"], b["membership_inference"]
            flags = "".join("X" if b[t]["flags"] else "." for t in
                            ("dcr", "data_copying", "membership_inference"))
            ci = mia["ci95"] or [float("nan")] * 2
            print(f"{name:12s} {space:22s} {dcr['p_value']:9.2g} {dcr['median_ratio']:6.3f} "
                  f"{dcr['fraction_below_heldout_p5']:6.3f} {ct['value']:7.2f} {ct['z']:7.2f} "
                  f"{mia['auc']:6.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  {flags}  {took:7.1f}  "
                  f"{b['exchangeability']['p_value']:.3g}")
        print(f"{'':12s} verdict: {res['verdict']['text']}")


if __name__ == "__main__":
    main()
