"""Reference values for the encoder protocol presets of issue 29, computed by the ORIGINAL code
of each protocol on fixed feature arrays, so that medsyn's presets can be tested against them
without downloading anything.

What runs (each repository at the pinned commit below, its files read with ``git show`` from a
local git directory, nothing of it copied into medsyn):

- CheXGenBench (Raman1121/CheXGenBench, ``metrics/fid.py``): FID and KID through
  ``torchmetrics.image.fid.FrechetInceptionDistance`` / ``torchmetrics.image.kid.
  KernelInceptionDistance`` with a custom ``nn.Module`` feature extractor, exactly as its
  ``main()`` builds them (fid.py lines 262-274, 281-331), the extractor replaced by a table
  lookup that returns the fixed features; precision / recall / density / coverage through the
  file's own ``compute_prdc_metric`` (fid.py lines 44-52, ``prdc.compute_prdc``, k = 5) on the
  concatenated torch tensors, as ``main()`` passes them (lines 335-340).
- cmmd-pytorch (sayakpaul/cmmd-pytorch, ``distance.py``): ``distance.mmd(ref, eval)`` on float32
  arrays, as ``main.compute_cmmd`` calls it (main.py lines 52-58). The JAX original
  (google-research/google-research ``cmmd/distance.py``) has the same formula line for line but
  needs JAX, which is not installed here; it is not run.
- dgm-eval (layer6ai-labs/dgm-eval, ``dgm_eval/metrics/{fd,mmd,prdc}.py``): ``compute_FD_with_reps``
  (scipy ``sqrtm``), ``compute_efficient_FD_with_reps`` (eigenvalues), ``compute_mmd`` (KD) and
  ``compute_prdc``; the sub-sampling around ``compute_prdc`` lives in ``__main__.compute_scores``
  (which imports the whole encoder zoo), so those lines (``dgm_eval/__main__.py`` 172-188) are
  transcribed below in ``dgm_eval_prdc`` and say so.

Environment: the PyPI packages those files import, at the versions CheXGenBench pins where it
pins them: ``torchmetrics==1.7.1`` and ``prdc==0.2`` (CheXGenBench requirements.txt), plus
``transformers``, ``termcolor``, ``pandas``, ``pillow`` (imported by fid.py at module level, not
used here), ``torch``, ``numpy``, ``scipy``, ``scikit-learn``, ``torch-fidelity``. medsyn's own
venv lacks torchmetrics / transformers / termcolor; the values in ``reference_values.json`` were
made in a separate venv (see its ``environment`` block):

    python bench/encoder_reference/make_reference.py \\
        --git-dir chexgenbench=/path/to/CheXGenBench/.git \\
        --git-dir cmmd_pytorch=/path/to/cmmd-pytorch/.git \\
        --git-dir dgm_eval=/path/to/dgm-eval/.git

The feature arrays (``features.npz``) come from ``numpy.random.default_rng(SEED)`` in
``make_arrays``; an existing file must equal what the script regenerates, or it stops.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20260529

SOURCES = {
    "chexgenbench": {
        "repo": "Raman1121/CheXGenBench",
        "commit": "9a201c11f61e14d88b8661c94b495ca3a4c2e523",
        "files": ["metrics/fid.py"],
        "default_git_dir": "/work/.mirror/Raman1121+CheXGenBench/repo",
    },
    "cmmd_pytorch": {
        "repo": "sayakpaul/cmmd-pytorch",
        "commit": "f7673a9f46320ac958878c19f7686e203376ad9d",
        "files": ["distance.py"],
        "default_git_dir": "/work/.mirror/sayakpaul+cmmd-pytorch/repo",
    },
    "dgm_eval": {
        "repo": "layer6ai-labs/dgm-eval",
        "commit": "74c79f7527fbf38fdccfbac51f25d759bc02ab07",
        "files": ["dgm_eval/metrics/fd.py", "dgm_eval/metrics/mmd.py",
                  "dgm_eval/metrics/prdc.py"],
        "default_git_dir": "/work/.mirror/layer6ai-labs+dgm-eval/repo",
    },
}


# ----------------------------------------------------------------------------- arrays

def _correlated(rng, n, d, mean, scale, mixing):
    return (mean + scale * rng.standard_normal((n, d)) @ mixing).astype(np.float32)


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_arrays() -> dict[str, np.ndarray]:
    """Fixed features standing in for each encoder's output (small dimensions keep the file
    small; the code paths do not depend on the dimension). ``*_real`` is the reference set,
    ``*_fake`` the evaluated one."""
    rng = np.random.default_rng(SEED)
    out = {}

    # RAD-DINO-like (CheXGenBench): post-LayerNorm CLS tokens, order-one values, correlated
    d = 32
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    mu = 0.5 * rng.standard_normal(d)
    out["cxgb_main_real"] = _correlated(rng, 160, d, mu, 1.0, mix)
    out["cxgb_main_fake"] = _correlated(rng, 128, d, mu + 0.15, 0.9, mix)   # n differ: KID draws
    out["cxgb_equal_real"] = _correlated(rng, 96, d, mu, 1.0, mix)
    out["cxgb_equal_fake"] = _correlated(rng, 96, d, mu + 0.1, 1.1, mix)    # n equal: KID exact
    d = 96                                                                   # n < d: singular
    mix = np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    out["cxgb_lowrank_real"] = _correlated(rng, 64, d, 0.0, 1.0, mix)
    out["cxgb_lowrank_fake"] = _correlated(rng, 48, d, 0.1, 1.0, mix)

    # CLIP-like (CMMD): unit-norm embeddings with a shared direction (cosine ~0.5, as CLIP's)
    d = 64
    centre = rng.standard_normal(d)
    centre *= 1.0 / np.linalg.norm(centre)
    shift = rng.standard_normal(d) / np.sqrt(d)
    out["cmmd_ref"] = _unit(centre + 0.12 * rng.standard_normal((120, d)))
    out["cmmd_eval"] = _unit(centre + 0.05 * shift + 0.12 * rng.standard_normal((100, d)))
    out["cmmd_same"] = _unit(centre + 0.12 * rng.standard_normal((120, d)))  # same distribution

    # DINOv2-like (dgm-eval): CLS tokens with a few large dimensions
    d = 48
    mix = np.eye(d) + 0.2 * rng.standard_normal((d, d)) / np.sqrt(d)
    scale = np.ones(d)
    scale[:3] = 4.0
    out["dgm_real"] = _correlated(rng, 150, d, 0.0, 1.0, mix) * scale.astype(np.float32)
    out["dgm_fake"] = _correlated(rng, 120, d, 0.2, 0.95, mix) * scale.astype(np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def load_or_write_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = make_arrays()
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        if stored.keys() != arrays.keys() or any(
                not np.array_equal(stored[k], arrays[k]) for k in arrays):
            sys.exit(f"{path} differs from what make_arrays() generates now; delete it to "
                     "regenerate deliberately (and recompute every value).")
    else:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        path.write_bytes(buf.getvalue())
    return arrays


# ----------------------------------------------------------------------------- sources

def materialise(name: str, git_dir: str, dest: Path) -> Path:
    """The pinned files of source ``name``, written under ``dest/name`` from ``git show``."""
    spec = SOURCES[name]
    root = dest / name
    for rel in spec["files"]:
        blob = subprocess.run(["git", "--git-dir", git_dir, "show", f"{spec['commit']}:{rel}"],
                              check=True, capture_output=True).stdout
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    return root


def import_file(module_name: str, path: Path):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- CheXGenBench

def chexgenbench_case(fid_py, real: np.ndarray, fake: np.ndarray, batch_size: int = 64) -> dict:
    """FID / KID / PRDC exactly as CheXGenBench's ``main()`` computes them in RAD-DINO space.

    The RAD-DINO extractor (``RadDinoFeatureExtractor``, pooler_output, float32) is replaced by
    a lookup of the fixed features; images are replaced by their row indices. Real batches go
    in first, then the synthetic ones (fid.py lines 281-324)."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    table = torch.from_numpy(np.concatenate([real, fake]))

    class Lookup(torch.nn.Module):
        num_features = table.shape[1]          # torchmetrics then skips its dummy forward

        def forward(self, idx):
            return table[idx]

    extractor = Lookup()
    fid = FrechetInceptionDistance(feature=extractor)
    kid_subset_size = min(len(fake), len(real))            # fid.py line 269
    kid = KernelInceptionDistance(subset_size=kid_subset_size, feature=extractor)
    real_feats, fake_feats = [], []
    for offset, n, is_real, store in ((0, len(real), True, real_feats),
                                      (len(real), len(fake), False, fake_feats)):
        for start in range(0, n, batch_size):
            idx = torch.arange(offset + start, offset + min(start + batch_size, n))
            fid.update(idx, real=is_real)
            kid.update(idx, real=is_real)
            with torch.inference_mode():
                store.append(extractor(idx).cpu())
    fid_value = fid.compute()
    # The original draws KID's subsets with torch's global RNG after seed_everything(42) and
    # everything main() ran before (model loading, the Inception FID/KID, ...): that state
    # cannot be recreated, so the draw here starts from torch.manual_seed(42). With equal set
    # sizes every subset is a permutation of both sets and the draw does not matter.
    torch.manual_seed(42)
    kid_mean, kid_std = kid.compute()
    prdc = fid_py.compute_prdc_metric(real_features=torch.cat(real_feats),
                                      synthetic_features=torch.cat(fake_feats))
    return {
        "n_real": len(real), "n_fake": len(fake), "dim": int(real.shape[1]),
        "fid": float(fid_value), "fid_dtype": str(fid_value.dtype),
        "fid_csv": round(fid_value.item(), 3),
        "kid_subset_size": kid_subset_size, "kid_subsets": 100,
        "kid_mean": float(kid_mean), "kid_std": float(kid_std),
        "kid_rng": "torch.manual_seed(42) immediately before compute()",
        **{k: float(v) for k, v in prdc.items()},
        "independent_float64": {
            "fid_scipy_sqrtm": fid_scipy(real, fake),
            "kid_full_sample_unbiased": kid_full(real, fake) if len(real) == len(fake) else None,
        },
    }


def fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """FID in float64 with ``scipy.linalg.sqrtm`` (TTUR / pytorch-fid / dgm-eval's formula)."""
    from scipy import linalg
    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid_full(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 (Binkowski et al.) with ``(x.y / d + 1)^3`` over all items, float64; the
    cross term averages all m*n pairs (torchmetrics / torch-fidelity / dgm-eval divide it by m^2
    with equal subsets)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = a.shape[1]
    kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
    m, n = len(a), len(b)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


# ----------------------------------------------------------------------------- CMMD

def cmmd_case(distance_py, ref: np.ndarray, ev: np.ndarray) -> dict:
    """cmmd-pytorch's ``distance.mmd`` (float32 torch, biased V-statistic, sigma 10, x1000),
    called as ``main.compute_cmmd`` does, and the same formula in float64 beside it."""
    value = distance_py.mmd(ref.astype("float32"), ev.astype("float32"))
    x, y = ref.astype(np.float64), ev.astype(np.float64)
    return {
        "n_ref": len(ref), "n_eval": len(ev), "dim": int(ref.shape[1]),
        "cmmd": float(value.numpy()), "cmmd_dtype": str(value.dtype),
        "cmmd_print_3dp": f"{float(value.numpy()):.3f}",
        "independent_float64": {
            "v_statistic_x1000": 1000 * v_statistic(x, y, 10.0),
            "u_statistic_x1000": 1000 * u_statistic(x, y, 10.0),
        },
    }


def _rbf(a, b, sigma):
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-d2 / (2 * sigma ** 2))


def v_statistic(x, y, sigma):
    return float(_rbf(x, x, sigma).mean() + _rbf(y, y, sigma).mean() - 2 * _rbf(x, y, sigma).mean())


def u_statistic(x, y, sigma):
    kxx, kyy = _rbf(x, x, sigma), _rbf(y, y, sigma)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * _rbf(x, y, sigma).mean())


# ----------------------------------------------------------------------------- dgm-eval

def dgm_eval_prdc(prdc_py, real, fake, reduced_n=10000, nearest_k=5):
    """Transcribed from dgm_eval/__main__.py lines 174-187 (``compute_scores``, 'prdc' without
    'realism'): both sets are sub-sampled without replacement to the smaller size (at most
    ``--reduced_n`` = 10000) with numpy's global RNG, then ``compute_prdc(real, fake, k)``."""
    reduced_n = min(reduced_n, real.shape[0], fake.shape[0])
    inds0 = np.random.choice(real.shape[0], reduced_n, replace=False)
    inds1 = np.arange(fake.shape[0])
    inds1 = np.random.choice(inds1, min(inds1.shape[0], reduced_n), replace=False)
    return prdc_py.compute_prdc(real[inds0], fake[inds1], nearest_k=nearest_k, realism=False)


def dgm_eval_case(fd_py, mmd_py, prdc_py, real: np.ndarray, fake: np.ndarray) -> dict:
    # dgm-eval keeps representations in a float64 array (representations.py line 69)
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    out = {"n_real": len(real), "n_fake": len(fake), "dim": int(real.shape[1]),
           "fd": float(fd_py.compute_FD_with_reps(r64, f64)),
           "fd_eff": float(fd_py.compute_efficient_FD_with_reps(r64, f64))}
    # global numpy RNG, seeded as __main__ seeds it (--seed 13579) before data sub-sampling;
    # here nothing else draws in between, so the subsets differ from a real run's
    np.random.seed(13579)
    kd = mmd_py.compute_mmd(r64, f64)
    out.update({"kd_value": float(kd.mean()), "kd_variance_field_is_std": float(kd.std()),
                "kd_subset_size": int(min(1000, len(real), len(fake))), "kd_subsets": 100,
                "kd_rng": "np.random.seed(13579) immediately before compute_mmd"})
    np.random.seed(13579)
    prdc = dgm_eval_prdc(prdc_py, r64, f64)
    out.update({k: float(v) for k, v in prdc.items()})
    out["prdc_rng"] = "np.random.seed(13579) immediately before the sub-sampling"
    out["prdc_subsample_to"] = int(min(10000, len(real), len(fake)))
    return out


# ----------------------------------------------------------------------------- cross-checks

def cross_fid(real: np.ndarray, fake: np.ndarray) -> dict:
    """FID of one pair of arrays by each implementation, to size their disagreement."""
    import torch
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
    s1 = fid_features_to_statistics(torch.from_numpy(fake))
    s2 = fid_features_to_statistics(torch.from_numpy(real))
    tf_value = fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID]
    return {"torch_fidelity_eigvals_float32_stats": float(tf_value),
            "scipy_sqrtm_float64": fid_scipy(real, fake)}


def environment() -> dict:
    import importlib.metadata as md
    versions = {}
    for pkg in ("torch", "numpy", "scipy", "scikit-learn", "torchmetrics", "prdc",
                "torch-fidelity", "transformers"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "machine": platform.machine(), **versions}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", action="append", default=[], metavar="NAME=PATH",
                        help="git directory of a source (chexgenbench, cmmd_pytorch, dgm_eval); "
                             "defaults to the session mirrors under /work/.mirror")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    git_dirs = {name: spec["default_git_dir"] for name, spec in SOURCES.items()}
    for item in args.git_dir:
        name, _, path = item.partition("=")
        if name not in SOURCES or not path:
            parser.error(f"--git-dir {item!r}: expected NAME=PATH with NAME in {list(SOURCES)}")
        git_dirs[name] = path

    import torch
    torch.set_num_threads(1)                 # float32 reductions: one order, one answer

    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / "features.npz"
    arrays = load_or_write_arrays(npz)
    result = {
        "about": "values computed by each protocol's original code on features.npz; see "
                 "make_reference.py and docs/encoders_research.md",
        "environment": environment(),
        "sources": {name: {k: spec[k] for k in ("repo", "commit", "files")}
                    for name, spec in SOURCES.items()},
        "arrays": {"file": npz.name, "sha256": hashlib.sha256(npz.read_bytes()).hexdigest(),
                   "seed": SEED, "dtype": "float32",
                   "shapes": {k: list(v.shape) for k, v in arrays.items()}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {name: materialise(name, git_dirs[name], tmp) for name in SOURCES}
        fid_py = import_file("chexgenbench_fid", roots["chexgenbench"] / "metrics/fid.py")
        distance_py = import_file("cmmd_distance", roots["cmmd_pytorch"] / "distance.py")
        metrics = roots["dgm_eval"] / "dgm_eval/metrics"
        fd_py = import_file("dgm_fd", metrics / "fd.py")
        mmd_py = import_file("dgm_mmd", metrics / "mmd.py")
        prdc_py = import_file("dgm_prdc", metrics / "prdc.py")

        result["chexgenbench"] = {
            case: chexgenbench_case(fid_py, arrays[f"cxgb_{case}_real"],
                                    arrays[f"cxgb_{case}_fake"])
            for case in ("main", "equal", "lowrank")}
        result["cmmd"] = {
            "ref_vs_eval": cmmd_case(distance_py, arrays["cmmd_ref"], arrays["cmmd_eval"]),
            "ref_vs_same_distribution": cmmd_case(distance_py, arrays["cmmd_ref"],
                                                  arrays["cmmd_same"]),
            "ref_vs_itself": cmmd_case(distance_py, arrays["cmmd_ref"], arrays["cmmd_ref"]),
        }
        result["dgm_eval"] = {"main": dgm_eval_case(fd_py, mmd_py, prdc_py, arrays["dgm_real"],
                                                    arrays["dgm_fake"])}
    result["cross_fid"] = {
        "cxgb_main": cross_fid(arrays["cxgb_main_real"], arrays["cxgb_main_fake"]),
        "cxgb_lowrank": cross_fid(arrays["cxgb_lowrank_real"], arrays["cxgb_lowrank_fake"]),
        "dgm": cross_fid(arrays["dgm_real"], arrays["dgm_fake"]),
    }
    out = args.out / "reference_values.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
