"""Known-answer checks of the metrics on this installation (``medsyn selftest``; also run,
and recorded, by every ``medsyn evaluate``).

Each check computes a metric with medsyn's own code on small fixed inputs and compares it with
an answer obtained another way:

- a closed form (FID of a set and its translate is the squared shift; Vendi of identical items
  is 1 and of k mutually orthogonal groups is k, Friedman & Dieng 2023, Sec. 3);
- a high-precision computation (FID by mpmath at 50 digits);
- the reference implementation the metric follows (KID: torch-fidelity's own
  ``kid_features_to_metric``; precision / recall / density / coverage: the ``prdc`` package of
  Naeem et al. 2020; scipy's matrix square root for FD under permutation);
- a hand computation (the RBF MMD^2 U-statistic; permutation p-values).

A check fails when the difference exceeds its tolerance or when the computation raises; a
failing check names what it expected and what it got. Nothing here reads files or networks,
so the suite runs offline in about a second.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class Check:
    name: str
    against: str                 # where the expected answer comes from
    expected: float | None = None
    got: float | None = None
    tolerance: str = ""
    passed: bool = False
    error: str | None = None


def _features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, scale, size=(n, d))


def _close(expected: float, got: float, rel: float, abs_: float = 0.0) -> bool:
    return bool(np.isfinite(got) and abs(got - expected) <= max(abs_, rel * abs(expected)))


def _fid_mpmath(a: np.ndarray, b: np.ndarray, digits: int = 50) -> float:
    """FID with every operation in mpmath at ``digits`` digits: tr sqrt(S1 S2) as
    tr sqrt(S1^1/2 S2 S1^1/2), both roots from symmetric eigendecompositions."""
    import mpmath as mp

    with mp.workdps(digits):
        def stats(x):
            m = mp.matrix([[mp.mpf(float(v)) for v in row] for row in x])
            n, d = m.rows, m.cols
            mu = [mp.fsum(m[i, j] for i in range(n)) / n for j in range(d)]
            cov = mp.matrix(d, d)
            for j in range(d):
                for k in range(d):
                    cov[j, k] = mp.fsum((m[i, j] - mu[j]) * (m[i, k] - mu[k])
                                        for i in range(n)) / (n - 1)
            return mu, cov

        def sym_sqrt(s):
            e, q = mp.eigsy(s)
            root = mp.diag([mp.sqrt(max(v, 0)) for v in e])
            return q * root * q.T

        mu1, s1 = stats(a)
        mu2, s2 = stats(b)
        r1 = sym_sqrt(s1)
        inner = sym_sqrt(r1 * s2 * r1)
        d = len(mu1)
        value = (mp.fsum((mu1[j] - mu2[j]) ** 2 for j in range(d))
                 + mp.fsum(s1[j, j] + s2[j, j] - 2 * inner[j, j] for j in range(d)))
        return float(value)


# ---------------------------------------------------------------- the checks


def check_fid_shift() -> list[Check]:
    from medsyn.evaluators.metrics import stats

    a = _features(1, 64, 8)
    shift = np.linspace(-1.0, 1.0, 8)
    expected = float((shift ** 2).sum())
    out = []
    for name, fn in (("FID (torch-fidelity path)", stats.fid_value),
                     ("FID (bootstrap Gram path)", stats.fid_from_grams)):
        got = fn(a, a + shift)
        out.append(Check(f"{name}: set vs its translate", "closed form |shift|^2", expected,
                         got, "abs 1e-4", _close(expected, got, 0, 1e-4)))
    return out


def check_fid_high_precision() -> list[Check]:
    from medsyn.evaluators.metrics import stats

    a, b = _features(2, 40, 6), _features(3, 30, 6, shift=0.3, scale=1.4)
    expected = _fid_mpmath(a, b)
    out = []
    for name, fn in (("FID (torch-fidelity path)", stats.fid_value),
                     ("FID (bootstrap Gram path)", stats.fid_from_grams)):
        got = fn(a, b)
        out.append(Check(f"{name}: fixed Gaussian features", "mpmath, 50 digits", expected,
                         got, "rel 1e-5", _close(expected, got, 1e-5)))
    return out


def check_kid() -> list[Check]:
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    from medsyn.evaluators.metrics import stats

    a, b = _features(4, 50, 16), _features(5, 40, 16, shift=0.2)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    g = stats.grams(a, b)
    k = [stats.poly_kernel(m, g.dim) for m in (g.kxx, g.kyy, g.kxy)]
    got, _ = stats.kid_subsets_value(*k, subset_size=20, subsets=10, seed=7)
    expected = kid_features_to_metric(ta, tb, kid_subsets=10, kid_subset_size=20, rng_seed=7,
                                      kid_degree=3, kid_gamma=None, kid_coef0=1,
                                      verbose=False)[KEY_METRIC_KID_MEAN]
    return [Check("KID: 10 subsets of 20, seed 7", "torch-fidelity kid_features_to_metric",
                  float(expected), got, "rel 1e-6", _close(expected, got, 1e-6, 1e-12))]


def check_mmd() -> list[Check]:
    from medsyn.evaluators.metrics.distribution.mmd import SCALE, rbf_mmd

    a, b = _features(6, 30, 5), _features(7, 25, 5, shift=0.5)
    sigma = 2.0

    def k(x, y):
        return np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * sigma ** 2))

    kaa, kbb = k(a, a), k(b, b)
    m, n = len(a), len(b)
    expected = SCALE * ((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
                        + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * k(a, b).mean())
    got, _, _ = rbf_mmd(a, b, sigma)
    return [Check("MMD: RBF U-statistic, sigma 2", "hand computation (numpy)", float(expected),
                  got, "rel 1e-9", _close(expected, got, 1e-9, 1e-12))]


def check_prdc() -> list[Check]:
    from prdc import compute_prdc

    from medsyn.evaluators.metrics import stats

    real, fake = _features(8, 120, 10), _features(9, 100, 10, shift=0.3)
    values, _ = stats.prdc(real, fake, k=5)
    with contextlib.redirect_stdout(io.StringIO()):       # the package prints the set sizes
        expected = compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    return [Check(f"PRDC {key}: fixed Gaussians, k 5", "prdc package (Naeem et al. 2020)",
                  float(expected[key]), float(values[key]), "abs 1e-9",
                  _close(float(expected[key]), float(values[key]), 0, 1e-9))
            for key in ("precision", "recall", "density", "coverage")]


def check_vendi() -> list[Check]:
    from medsyn.evaluators.metrics.distribution.vendi import vendi_score

    identical = np.tile(_features(10, 1, 6), (20, 1))
    groups = np.repeat(np.eye(6)[:4], 5, axis=0)        # 4 orthogonal directions, 5 each
    out = []
    for name, x, expected in (("20 identical items", identical, 1.0),
                              ("4 orthogonal groups of 5", groups, 4.0)):
        got = vendi_score(x)
        out.append(Check(f"Vendi: {name}", "closed form (Friedman & Dieng 2023)", expected,
                         got, "abs 1e-6", _close(expected, got, 0, 1e-6)))
    return out


def check_permutation() -> list[Check]:
    from scipy import linalg

    from medsyn.evaluators.metrics.stats.permutation import fd_permuted, permutation_p_values

    p = permutation_p_values(np.array([3.0, 1.0, 3.0, 5.0, 2.0]))
    out = [Check("permutation p-value: #(T_b >= T_obs) / (B + 1)", "hand computation", 0.6,
                 float(p[0]), "exact", bool(p[0] == 0.6))]
    pooled = np.concatenate([_features(11, 12, 3), _features(12, 10, 3, shift=0.5)])
    labels = np.zeros((22, 1), bool)
    labels[12:, 0] = True
    a, b = pooled[:12], pooled[12:]
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
                     - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    got = float(fd_permuted(pooled, labels)[0])
    out.append(Check("FD under a labelling (two-sample test)", "scipy.linalg.sqrtm", expected,
                     got, "rel 1e-6", _close(expected, got, 1e-6)))
    return out


CHECKS: dict[str, Callable[[], list[Check]]] = {
    "fid_shift": check_fid_shift, "fid_high_precision": check_fid_high_precision,
    "kid": check_kid, "mmd": check_mmd, "prdc": check_prdc, "vendi": check_vendi,
    "permutation": check_permutation,
}


_PROCESS_RESULT: dict | None = None


def installation_status() -> dict:
    """The suite's summary for this process, run once and remembered (what every evaluation
    records: the installation does not change while a process runs)."""
    global _PROCESS_RESULT
    if _PROCESS_RESULT is None:
        full = run_checks()
        _PROCESS_RESULT = {k: full[k] for k in ("status", "n_checks", "failed", "seconds")}
    return dict(_PROCESS_RESULT)


def run_checks(names=None) -> dict:
    """Run the checks (all, or those named); a check that raises fails with its error.
    Returns ``{"status": "passed" | "failed", "checks": [...], "failed": [names],
    "seconds"}``."""
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    results: list[Check] = []
    for key in names or CHECKS:
        try:
            with threadpool_limits(limits=1):
                results.extend(CHECKS[key]())
        except Exception as exc:          # a broken metric must fail the suite, not crash it
            results.append(Check(key, "", error=f"{type(exc).__name__}: {exc}",
                                 tolerance=traceback.format_exc(limit=1).strip().splitlines()[-1]))
    failed = [c.name for c in results if not c.passed]
    return {"status": "failed" if failed else "passed", "n_checks": len(results),
            "failed": failed, "checks": [asdict(c) for c in results],
            "seconds": round(time.perf_counter() - started, 3)}
