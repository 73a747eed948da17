"""Cost of the distribution metrics (FD-infinity, RBF-MMD, alpha-precision / beta-recall /
authenticity, Vendi) on extracted features, with their bootstrap, beside FID's bootstrap.

The cost depends on the shapes only, so the features are random: n fakes and n reals of
dimension d (2048 = Inception, 512 = the classifier / ssl spaces). One BLAS thread, as in
medsyn's metric phase. Prints one JSON line per (n, d) with seconds per family.

    python bench/metric_cost.py --n 500 2808 --d 2048 --bootstrap 50 --costly-bootstrap 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from medsyn.evaluators.metrics import stats  # noqa: E402
from medsyn.evaluators.metrics.distribution import alpha_precision, fd_infinity, mmd  # noqa: E402
from medsyn.evaluators.metrics.distribution.vendi import vendi_resamples, vendi_score  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 2)


def measure(fake, real, b: int, bc: int) -> dict:
    with threadpool_limits(1):
        return {
            "fid_bootstrap_s": timed(lambda: stats.fid_resamples(
                fake, real, b, np.random.default_rng(1))),
            "fd_infinity_s": timed(lambda: fd_infinity.fd_infinity(
                fake, real, n_bootstrap=bc, rng=np.random.default_rng(1))),
            "mmd_s": timed(lambda: mmd.rbf_mmd(fake, real, n_bootstrap=b)),
            "alpha_precision_s": timed(lambda: alpha_precision.alpha_precision_beta_recall(
                real, fake, n_bootstrap=b)),
            "vendi_real_and_fake_s": timed(lambda: [
                (vendi_score(x), vendi_resamples(x, bc, np.random.default_rng(1)))
                for x in (real, fake)])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[500, 2808])
    p.add_argument("--d", type=int, nargs="+", default=[2048])
    p.add_argument("--bootstrap", type=int, default=50)
    p.add_argument("--costly-bootstrap", type=int, default=20,
                   help="resamples for FD-infinity and Vendi (medsyn's default cap)")
    args = p.parse_args()
    torch.set_num_threads(1)
    b, bc = args.bootstrap, min(args.bootstrap, args.costly_bootstrap)
    for d in args.d:
        for n in args.n:
            rng = np.random.default_rng(0)
            fake = np.abs(rng.normal(size=(n, d))).astype(np.float32)
            real = np.abs(rng.normal(size=(n, d))).astype(np.float32) + 0.05
            row = {"n": n, "d": d, "bootstrap": b, "costly_bootstrap": bc,
                   **measure(fake, real, b, bc)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
