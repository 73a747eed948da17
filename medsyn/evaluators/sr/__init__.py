"""Super-resolution evaluation.

- ``metrics.py``: PSNR and SSIM with the conventions of the published SR tables (Y of MATLAB's
  rgb2ycbcr, border crop, Gaussian-window SSIM), the bootstrap over images and
  :func:`evaluate_sr` (an upscaler against HR images, with the bicubic baseline);
- ``checkpoint.py``: the evaluation of an ``srresnet`` / ``srgan`` checkpoint on its dataset's
  test split (PSNR/SSIM, FID of the outputs, results.json of kind ``super-resolution``).

The MATLAB-compatible bicubic resize (:func:`imresize`, :func:`imresize_batch`,
:func:`modcrop`) lives in :mod:`medsyn.data.transforms.matlab_resize`, shared with the SR
training data; it is importable from here too.

    from medsyn.evaluators.sr import psnr, ssim, imresize, evaluate_sr, evaluate_sr_checkpoint
"""

from medsyn.evaluators.sr.checkpoint import (
    DEFAULT_SR_METRICS,
    EXAMPLES_FIGURE,
    PER_IMAGE_CSV,
    SR_BOOTSTRAP,
    SR_RESULTS_KIND,
    evaluate_sr_checkpoint,
    evaluate_sr_model,
    example_strip,
    is_sr_checkpoint,
    load_hr_reference,
)
from medsyn.evaluators.sr.metrics import (
    BICUBIC_KERNEL_WIDTH,
    PSNR_PEAK,
    SSIM_DATA_RANGE,
    SSIM_K1,
    SSIM_K2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    Y_COEFFICIENTS,
    Y_OFFSET,
    ImageInputError,
    bicubic_upscaler,
    bootstrap_mean_ci,
    convention,
    evaluate_sr,
    imresize,
    imresize_batch,
    modcrop,
    output_size,
    psnr,
    resize_matrix,
    rgb_to_y,
    ssim,
    write_per_image_csv,
)

__all__ = [
    "BICUBIC_KERNEL_WIDTH", "DEFAULT_SR_METRICS", "EXAMPLES_FIGURE", "ImageInputError",
    "PER_IMAGE_CSV", "PSNR_PEAK", "SR_BOOTSTRAP", "SR_RESULTS_KIND", "SSIM_DATA_RANGE",
    "SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_WINDOW", "Y_COEFFICIENTS", "Y_OFFSET",
    "bicubic_upscaler", "bootstrap_mean_ci", "convention", "evaluate_sr",
    "evaluate_sr_checkpoint", "evaluate_sr_model", "example_strip", "imresize",
    "imresize_batch", "is_sr_checkpoint", "load_hr_reference", "modcrop", "output_size", "psnr",
    "resize_matrix", "rgb_to_y", "ssim", "write_per_image_csv",
]
