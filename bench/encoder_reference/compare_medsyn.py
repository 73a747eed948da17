"""How far medsyn's current metric functions are from the protocols' reference values
(``reference_values.json``, made by ``make_reference.py`` with the original code), on the same
fixed features. Runs in medsyn's own venv, nothing downloaded:

    PYTHONPATH=$PWD python bench/encoder_reference/compare_medsyn.py

Prints one JSON object: per quantity, the reference value, medsyn's value and their relative
difference. It documents the starting point of issue 29 and the presets that followed
(``cmmd`` and ``chexgenbench`` families); the presets' tests assert equality with their own
tolerances (tests/test_protocol_presets.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medsyn.evaluators.metrics import stats  # noqa: E402
from medsyn.evaluators.metrics.distribution import chexgenbench, cmmd, mmd  # noqa: E402

HERE = Path(__file__).resolve().parent


def rel(a: float, b: float) -> float:
    """Relative difference to the reference ``b`` (absolute when ``b`` is 0)."""
    return abs(a - b) / abs(b) if b else abs(a - b)


def kid_torchmetrics_draws(real, fake, subset_size, subsets=100, seed=42) -> float:
    """KID in float64 over the subsets torchmetrics 1.7.1 draws after ``torch.manual_seed(seed)``
    (per subset: ``randperm(n_real)`` then ``randperm(n_fake)``, the first ``subset_size`` of
    each; kid.py lines 288-295); the float32 reference differs only by rounding."""
    torch.manual_seed(seed)
    x = torch.from_numpy(real).double()
    y = torch.from_numpy(fake).double()
    d = x.shape[1]
    values = []
    for _ in range(subsets):
        a = x[torch.randperm(len(x))[:subset_size]]
        b = y[torch.randperm(len(y))[:subset_size]]
        kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        m = subset_size
        values.append(float((kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum())
                            / (m * (m - 1)) - 2 * kxy.sum() / m ** 2))
    return float(np.mean(values))


def main() -> None:
    ref = json.loads((HERE / "reference_values.json").read_text())
    with np.load(HERE / "features.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    out = {}
    for case, r in ref["chexgenbench"].items():
        real, fake = arrays[f"cxgb_{case}_real"], arrays[f"cxgb_{case}_fake"]
        fid = stats.fid_value(fake, real)
        values, _ = stats.prdc(real, fake, k=5)
        x64, y64 = torch.from_numpy(fake).double(), torch.from_numpy(real).double()
        d = x64.shape[1]
        kid_medsyn, _ = stats.kid_subsets_value(
            stats.poly_kernel(x64 @ x64.T, d), stats.poly_kernel(y64 @ y64.T, d),
            stats.poly_kernel(x64 @ y64.T, d), min(len(real), len(fake)))
        kid_draws = kid_torchmetrics_draws(real, fake, r["kid_subset_size"])
        out[f"chexgenbench.{case}"] = {
            "fid": [r["fid"], fid, rel(fid, r["fid"])],
            "kid (medsyn: numpy RandomState(0) subsets)": [r["kid_mean"], kid_medsyn,
                                                           rel(kid_medsyn, r["kid_mean"])],
            "kid (torchmetrics' torch.randperm draws, float64)": [
                r["kid_mean"], kid_draws, rel(kid_draws, r["kid_mean"])],
            **{name: [r[name], values[name], rel(values[name], r[name])]
               for name in ("precision", "recall", "density", "coverage")},
        }
        preset = chexgenbench.chexgenbench_values(real, fake)
        out[f"chexgenbench.{case}"]["preset (--protocol chexgenbench)"] = {
            k: [r[ref_key], preset[k], rel(preset[k], r[ref_key])]
            for k, ref_key in (("fid", "fid"), ("kid", "kid_mean"), ("precision", "precision"),
                               ("recall", "recall"), ("density", "density"),
                               ("coverage", "coverage"))}
    for case, r in ref["cmmd"].items():
        x, y = {"ref_vs_eval": ("cmmd_ref", "cmmd_eval"),
                "ref_vs_same_distribution": ("cmmd_ref", "cmmd_same"),
                "ref_vs_itself": ("cmmd_ref", "cmmd_ref")}[case]
        u_value, _, _ = mmd.rbf_mmd(arrays[y], arrays[x], sigma=10.0)
        preset = cmmd.cmmd_value(arrays[x], arrays[y])
        out[f"cmmd.{case}"] = {"cmmd vs medsyn mmd(sigma=10, unbiased)":
                               [r["cmmd"], u_value, rel(u_value, r["cmmd"])],
                               "cmmd vs the cmmd preset (--protocol cmmd)":
                               [r["cmmd"], preset, rel(preset, r["cmmd"])]}
    r = ref["dgm_eval"]["main"]
    fid = stats.fid_value(arrays["dgm_fake"], arrays["dgm_real"])
    out["dgm_eval.main"] = {"fd": [r["fd"], fid, rel(fid, r["fd"])]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
