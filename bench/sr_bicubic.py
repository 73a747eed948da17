"""Bicubic baseline of super-resolution on a dataset split: the row SR models are compared with.

HR = whole images (or --hr-size crops), LR = MATLAB bicubic imresize(HR, 1/scale), bicubic
upscaling back with MATLAB imresize, PSNR/SSIM on Y (grayscale as is), crop_border = scale,
mean over images with a 95% bootstrap interval, per class too.

    python bench/sr_bicubic.py --dataset cxr3 --split test --scale 4 [--out DIR]

``--out DIR`` writes DIR/results.json (metrics entries as in docs/architecture.md section 3) and
DIR/per_image_sr.csv. ``--compare-torch`` also reports the same pipeline with PyTorch's bicubic
(a = -0.75, antialiased downscale), to show what a different resize convention does.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cxr3")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--hr-size", type=int, default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare-torch", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    from medsyn.evaluators import sr
    from medsyn.generators.sr.data import load_sr_pairs
    from medsyn.utils import write_json

    t0 = time.perf_counter()
    pairs = load_sr_pairs(args.dataset, args.split, scale=args.scale, hr_size=args.hr_size,
                          root=args.data_root)
    t_pairs = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = sr.evaluate_sr(sr.bicubic_upscaler(args.scale), pairs.hr, args.scale,
                            n_boot=args.n_boot, ids=list(range(len(pairs))))
    t_eval = time.perf_counter() - t0
    table = result["per_image"]
    table.insert(1, "class", [pairs.class_names[i] for i in pairs.labels.tolist()])

    print(f"{args.dataset}/{args.split}: {len(pairs)} images, HR {pairs.hr_size}, LR "
          f"{pairs.lr_size}, {pairs.hr_mode}; pairs {t_pairs:.2f} s, evaluation {t_eval:.2f} s")
    for name in ("psnr_y_bicubic", "ssim_y_bicubic"):
        e = result["metrics"][name]
        print(f"  {name}: {e['value']:.4f}  95% CI [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]  "
              f"n={e['n']}  ({e['extractor']}, crop {e['crop_border']})")
    for cls, group in table.groupby("class"):
        print(f"  {cls}: PSNR {group['psnr_y_bicubic'].mean():.4f} dB, SSIM "
              f"{group['ssim_y_bicubic'].mean():.4f} (n={len(group)})")

    if args.compare_torch:
        hr = pairs.hr.float()
        h, w = pairs.lr_size
        lr = F.interpolate(hr, size=(h, w), mode="bicubic", antialias=True,
                           align_corners=False).round().clamp(0, 255)
        up = F.interpolate(lr, size=pairs.hr_size, mode="bicubic", align_corners=False)
        up = up.round().clamp(0, 255).to(torch.uint8)
        c = args.scale
        hr_np, up_np = pairs.hr.numpy(), up.numpy()
        p = [sr.psnr(_hwc(up_np[k]), _hwc(hr_np[k]), c) for k in range(len(pairs))]
        s = [sr.ssim(_hwc(up_np[k]), _hwc(hr_np[k]), c) for k in range(len(pairs))]
        print(f"  torch bicubic (a=-0.75) instead of MATLAB imresize: PSNR {np.mean(p):.4f} dB, "
              f"SSIM {np.mean(s):.4f}")

    if args.out is not None:
        write_json(args.out / "results.json", {
            "schema_version": 1, "kind": "super-resolution",
            "run": {"name": "bicubic", "checkpoint": None, "model_kind": "bicubic",
                    "epoch": None, "step": None, "run_dir": None},
            "metrics": result["metrics"],
            "provenance": {"dataset": pairs.describe()["dataset"],
                           "sr_convention": result["convention"], "pairs": pairs.describe()
                           | {"dataset": None}},
        })
        sr.write_per_image_csv(table, args.out / "per_image_sr.csv")
        print(f"  wrote {args.out / 'results.json'} and {args.out / 'per_image_sr.csv'}")


def _hwc(chw):
    return chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)


if __name__ == "__main__":
    main()
