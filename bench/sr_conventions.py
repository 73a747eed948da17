"""How much each SR evaluation convention moves bicubic PSNR/SSIM, on scikit-image's samples.

For every sample image and scale: modcrop, MATLAB bicubic down then up (uint8, as MATLAB does
for uint8 images), crop_border = scale, then

- rounded Y (MATLAB rgb2ycbcr on uint8, the default) vs unrounded float Y (BasicSR habit);
- uint8 resizing (rounded after each pass, MATLAB's behaviour for uint8) vs resizing in float
  and rounding once at the end.

With ``--basicsr-src DIR`` (an extracted BasicSR source tree, e.g. from
``pip download --no-deps --no-build-isolation basicsr==1.4.2``), also compares medsyn's
``imresize`` with BasicSR's ``matlab_functions.imresize`` (float32) on the same images.

    python bench/sr_conventions.py [--basicsr-src /tmp/basicsr-1.4.2]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import skimage.data

from medsyn.evaluators import sr

SAMPLES = ["camera", "moon", "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"]


def bicubic_scores(hr, scale, round_y=True, float_resize=False):
    hr = sr.modcrop(hr, scale)
    if float_resize:
        lr = sr.imresize(hr.astype(np.float64), 1 / scale)
        up = sr.imresize(lr, scale)
        up = np.floor(np.clip(up, 0, 255) + 0.5).astype(np.uint8)
    else:
        up = sr.imresize(sr.imresize(hr, 1 / scale), scale)
    return (sr.psnr(up, hr, scale, round_y=round_y), sr.ssim(up, hr, scale, round_y=round_y))


def load_basicsr_matlab_functions(src: Path):
    path = src / "basicsr" / "utils" / "matlab_functions.py"
    spec = importlib.util.spec_from_file_location("basicsr_matlab_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def basicsr_resize_matrix(module, in_len, out_len, scale):
    """BasicSR's weights/indices (computed in float64) folded into a dense matrix."""
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        w, idx, sym_s, sym_e = module.calculate_weights_indices(in_len, out_len, scale,
                                                                "cubic", 4, True)
    finally:
        torch.set_default_dtype(default)
    padded = np.concatenate([np.arange(sym_s)[::-1], np.arange(in_len),
                             np.arange(in_len - sym_e, in_len)[::-1]])
    matrix = np.zeros((out_len, in_len))
    for i in range(out_len):
        for k in range(w.shape[1]):
            matrix[i, padded[int(idx[i, k])]] += float(w[i, k])
    return matrix


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basicsr-src", type=Path, default=None)
    args = parser.parse_args()

    print("| image | size | x | PSNR-Y | SSIM-Y | float Y: dPSNR | float Y: dSSIM "
          "| float resize: dPSNR | float resize: dSSIM |")
    print("|---|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    deltas = []
    for name in SAMPLES:
        img = getattr(skimage.data, name)()
        for scale in (2, 3, 4):
            p, s = bicubic_scores(img, scale)
            pf, sf = bicubic_scores(img, scale, round_y=False)
            pr, sr_ = bicubic_scores(img, scale, float_resize=True)
            deltas.append((img.ndim, pf - p, sf - s, pr - p, sr_ - s))
            print(f"| {name} | {img.shape[0]}x{img.shape[1]} | {scale} | {p:.4f} | {s:.6f} "
                  f"| {pf - p:+.4f} | {sf - s:+.6f} | {pr - p:+.4f} | {sr_ - s:+.6f} |")
    rgb = np.array([d[1:] for d in deltas if d[0] == 3])
    alld = np.array([d[1:] for d in deltas])
    print(f"\nRGB images, float Y minus rounded Y: PSNR {rgb[:, 0].min():+.4f} .. "
          f"{rgb[:, 0].max():+.4f} dB (mean {rgb[:, 0].mean():+.4f}), SSIM "
          f"{rgb[:, 1].min():+.6f} .. {rgb[:, 1].max():+.6f} (mean {rgb[:, 1].mean():+.6f})")
    print(f"All images, float resize minus uint8 resize: PSNR {alld[:, 2].min():+.4f} .. "
          f"{alld[:, 2].max():+.4f} dB, SSIM {alld[:, 3].min():+.6f} .. {alld[:, 3].max():+.6f}")
    print(f"({time.perf_counter() - start:.1f} s)")

    if args.basicsr_src is not None:
        module = load_basicsr_matlab_functions(args.basicsr_src)
        basicsr_imresize = module.imresize
        worst_w = 0.0
        for in_len in (50, 64, 256, 300, 451):
            for scale in (1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.3):
                out_len = sr.output_size(in_len, scale)
                ours = sr.resize_matrix(in_len, out_len, scale)
                worst_w = max(worst_w, float(np.abs(
                    ours - basicsr_resize_matrix(module, in_len, out_len, scale)).max()))
        print(f"BasicSR calculate_weights_indices (run in float64) vs medsyn resize_matrix, "
              f"lengths 50..451, scales 1/4..4: max |diff| = {worst_w:.3g}")
        worst = 0.0
        for name in SAMPLES:
            img = getattr(skimage.data, name)().astype(np.float64)
            for scale in (1 / 2, 1 / 3, 1 / 4, 2, 3, 4):
                ours = sr.imresize(img, scale)
                theirs = np.asarray(basicsr_imresize(img / 255.0, scale), np.float64) * 255.0
                worst = max(worst, float(np.abs(ours - theirs).max()))
        print(f"BasicSR matlab_functions.imresize (float32) vs medsyn (float64), all samples, "
              f"scales 1/2..4: max |diff| = {worst:.5f} grey levels")


if __name__ == "__main__":
    main()
