"""Translation evaluation (pix2pix, cyclegan checkpoints).

- ``metrics.py``: MAE, PSNR and SSIM on luminance with the SR conventions, per image, their
  means with bootstrap intervals, feature distances of input/output pairs;
- ``checkpoint.py``: the evaluation of a translation checkpoint (paired: vs the targets and the
  simple baselines; unpaired: distribution metrics vs the target domain, target-class rate,
  content preservation, cycle error, memorization), results.json of kind ``translation``.

    from medsyn.evaluators.translation import evaluate_translation_checkpoint
"""

from medsyn.evaluators.translation.checkpoint import (
    EXAMPLES_FIGURE,
    PER_IMAGE_CSV,
    TRANSLATION_RESULTS_KIND,
    evaluate_translation_checkpoint,
    evaluate_translation_model,
)
from medsyn.evaluators.translation.metrics import mae_y, paired_table

__all__ = [
    "EXAMPLES_FIGURE", "PER_IMAGE_CSV", "TRANSLATION_RESULTS_KIND",
    "evaluate_translation_checkpoint", "evaluate_translation_model", "mae_y", "paired_table",
]
