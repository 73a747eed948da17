"""One Canny builder (medsyn.data.transforms.edges) for MEGAN's and pix2pix's edge maps: each
convention gives, bit for bit, the maps its own builder gave before the two were merged.

The digests below are sha256 prefixes of the maps computed by the two separate builders of
commit de52ab7 (medsyn.data.transforms.edges.canny_edges for MEGAN, and
medsyn.generators.translation.data.canny_edges for pix2pix) on the same images, before the
merge; recomputing them needs that commit."""

import hashlib

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medsyn.data.transforms.edges import DEFAULT_CANNY, CannyParams, canny_edges, translation_canny
from medsyn.errors import DataError
from medsyn.generators.translation.data import canny_edges as pix2pix_edges


def _smooth_images(seed: int, channels: int) -> np.ndarray:
    """3 uint8 images of 40x48 px with structure at several scales (edges to find)."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal((3, channels, 40, 48)), sigma=(0, 0, 2, 2))
    return np.rint((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


def _digest(edges) -> str:
    arr = edges.numpy() if isinstance(edges, torch.Tensor) else edges
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


# (channels, how the maps were built) -> digest of the pre-merge builders' maps
BEFORE_MERGE = {
    (1, "pix2pix sigma 2"): "34f496a37c6d5d2f", (1, "pix2pix sigma 1"): "99f92bde35287f84",
    (1, "megan default"): "a07e0382a3d6142d", (1, "megan sigma 2"): "b3f6a74bf5a4073b",
    (3, "pix2pix sigma 2"): "27bda1ffa1ebb283", (3, "pix2pix sigma 1"): "73a6cf90b4ac66f5",
    (3, "megan default"): "cc58f72b23018d47", (3, "megan sigma 2"): "4d48dabece39aba5",
}


@pytest.mark.parametrize("channels", [1, 3])
def test_each_convention_gives_the_maps_of_its_former_builder(channels):
    x = _smooth_images(7 + channels, channels)
    built = {
        "pix2pix sigma 2": pix2pix_edges(torch.from_numpy(x)),
        "pix2pix sigma 1": pix2pix_edges(torch.from_numpy(x), 1.0),
        "megan default": canny_edges(x),
        "megan sigma 2": canny_edges(x, CannyParams(sigma=2.0, low=0.7, high=0.95)),
    }
    for how, edges in built.items():
        assert _digest(edges) == BEFORE_MERGE[(channels, how)], how
    # pix2pix repeats the map to the images' channels; MEGAN keeps one channel
    assert tuple(built["pix2pix sigma 2"].shape) == (3, channels, 40, 48)
    assert built["megan default"].shape == (3, 1, 40, 48)
    # the two conventions differ (else one of them would be a needless parameter)
    assert not np.array_equal(built["pix2pix sigma 2"].numpy()[:, :1],
                              canny_edges(x, CannyParams(sigma=2.0)))


def test_conventions_on_real_radiographs(data_root):
    from medsyn.data import load_dataset

    x = load_dataset("cxr3", "test", image_size=64, root=data_root).images[:16]
    assert _digest(pix2pix_edges(x)) == "d0b72d6b9cdc52c8"
    assert _digest(canny_edges(x)) == "c54c8fbf60d13798"
    assert np.array_equal(pix2pix_edges(x).numpy(), canny_edges(x, translation_canny(2.0)))


def test_recorded_parameters_round_trip_and_megan_keys_unchanged():
    # MEGAN checkpoints store DEFAULT_CANNY.as_dict() (arch["edges"]): the same keys as before
    assert DEFAULT_CANNY.as_dict() == {
        "method": "skimage.feature.canny", "sigma": 1.0, "low_quantile": 0.8,
        "high_quantile": 0.9, "use_quantiles": True, "gray": "mean of channels"}
    for params in (DEFAULT_CANNY, translation_canny(1.5), CannyParams(2.0, 0.5, 0.7)):
        assert CannyParams.from_dict(params.as_dict()) == params
    assert translation_canny(2.0).as_dict()["low_threshold"] == 0.1


def test_bad_parameters_are_one_line_errors():
    x = _smooth_images(0, 1)
    with pytest.raises(DataError, match="quantiles"):
        canny_edges(x, CannyParams(low=0.9, high=0.5))
    with pytest.raises(DataError, match="thresholds must satisfy"):
        canny_edges(x, CannyParams(low=0.3, high=0.2, thresholds="absolute"))
    with pytest.raises(DataError, match="gray conversion"):
        CannyParams(gray="max")
    with pytest.raises(DataError, match="luminance"):
        canny_edges(np.zeros((1, 2, 8, 8), np.uint8), translation_canny())
