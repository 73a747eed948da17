"""The one uint8 input check of trained models (medsyn.generators.image_files.check_model_images),
shared by SRCheckpoint.upscale and TranslationCheckpoint.translate: each family's error class
and wording come from its parameters."""

import numpy as np
import pytest
import torch

from medsyn.errors import MedsynError
from medsyn.generators.image_files import check_model_images
from medsyn.generators.sr.checkpoint import SRInputError
from medsyn.generators.translation.checkpoint import TranslationInputError


def test_a_batch_passes_and_one_image_becomes_a_batch_of_one():
    batch = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    out, single = check_model_images(batch, 1, model="srgan")
    assert out is batch and not single
    array = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    out, single = check_model_images(array, 3, model="pix2pix")
    assert single and out.shape == (1, 3, 4, 5)
    assert torch.equal(out[0], torch.from_numpy(array))


@pytest.mark.parametrize(("images", "message"), [
    ([[0]], "LR images must be a uint8 torch tensor"),
    (torch.zeros(1, 1, 4, 4), "LR images must be uint8 \\(0..255\\), got torch.float32"),
    (torch.zeros(4, 4, dtype=torch.uint8), "LR images must be \\[N, C, H, W\\]"),
    (torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
     "LR images have 3 channel\\(s\\) but this srgan model takes grayscale \\(1 channel\\)"),
    (torch.zeros(1, 1, 0, 4, dtype=torch.uint8), "LR images are empty"),
])
def test_each_wrong_input_raises_the_family_error_with_its_noun(images, message):
    with pytest.raises(SRInputError, match=message):
        check_model_images(images, 1, model="srgan", noun="LR images", error=SRInputError)


def test_translation_wording_and_error_class():
    with pytest.raises(TranslationInputError, match="^images have 1 channel\\(s\\) but this "
                       "cyclegan model takes RGB \\(3 channels\\) images"):
        check_model_images(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 3, model="cyclegan",
                           error=TranslationInputError)
    with pytest.raises(MedsynError, match="^images must be uint8"):
        check_model_images(np.zeros((1, 1, 4, 4), np.int16), 1, model="pix2pix")
