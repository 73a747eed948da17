"""alpha-precision of fakes that depart from the reference only where the reference is
constant (issue 26, item 14): MNIST digits at 16 px (256 pixel dimensions), 400 reference
digits of the training split, 400 other training digits as faithful fakes, and the same fakes
with every pixel that is constant on the reference set to white.

    python bench/alpha_precision_constant_dims.py [--n 400] [--size 16]

Prints the number of constant dimensions and alpha-precision / beta-recall / authenticity of
both fake sets, with medsyn's estimator and with synthcity's "naive" computation transcribed
(vanderschaarlab/synthcity, src/synthcity/metrics/eval_statistical.py at 23f322f:
scikit-learn's MinMaxScaler, then AlphaPrecision.metrics). Needs MEDSYN_DATA_ROOT.
"""

from __future__ import annotations

import argparse

import numpy as np


def synthcity_naive_alpha_precision(real: np.ndarray, fake: np.ndarray) -> float:
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(real)
    x, x_syn = scaler.transform(real), scaler.transform(fake)
    alphas = np.linspace(0, 1, 30)
    centre = x.mean(0)
    radii = np.quantile(np.sqrt(((x - centre) ** 2).sum(1)), alphas)
    to_centre = np.sqrt(((x_syn - centre) ** 2).sum(1))
    curve = np.array([np.mean(to_centre <= r) for r in radii])
    return float(1 - np.abs(alphas - curve).sum() / alphas.sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--size", type=int, default=16)
    args = parser.parse_args()

    from medsyn.data import load_dataset
    from medsyn.evaluators.metrics.distribution.alpha_precision import alpha_precision_beta_recall

    ds = load_dataset("mnist", "train", image_size=args.size)
    order = np.random.default_rng(0).permutation(len(ds))
    pixels = ds.images.numpy().reshape(len(ds), -1).astype(np.float64)
    real, fake = pixels[order[:args.n]], pixels[order[args.n:2 * args.n]]
    constant = real.min(0) == real.max(0)
    white = fake.copy()
    white[:, constant] = 255.0
    print(f"mnist/train at {args.size} px, {args.n} reference and {args.n} fake digits: "
          f"{int(constant.sum())} of {real.shape[1]} dimensions constant on the reference")
    for name, f in (("faithful fakes", fake), ("fakes white where the reference is constant",
                                                white)):
        out = alpha_precision_beta_recall(real, f)
        print(f"  {name}: alpha-precision {out['alpha_precision']:.3f}, beta-recall "
              f"{out['beta_recall']:.3f}, authenticity {out['authenticity']:.3f}; synthcity "
              f"naive alpha-precision {synthcity_naive_alpha_precision(real, f):.3f}")


if __name__ == "__main__":
    main()
