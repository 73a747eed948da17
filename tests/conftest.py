"""Shared fixtures.

Real-data tests read the files named by MEDSYN_DATA_ROOT and MEDSYN_INCEPTION_WEIGHTS. On a
developer machine without them those tests are skipped; under CI (CI set) they fail instead,
so a missing data set can never turn the suite green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medsyn.settings import ENV_CACHE_DIR, ENV_DATA_ROOT, ENV_INCEPTION_WEIGHTS, ENV_OFFLINE


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep caches of the test run out of the user's cache (unless MEDSYN_CACHE_DIR is set)."""
    if os.environ.get(ENV_CACHE_DIR):
        yield Path(os.environ[ENV_CACHE_DIR])
        return
    path = tmp_path_factory.mktemp("medsyn-cache")
    os.environ[ENV_CACHE_DIR] = str(path)
    yield path
    os.environ.pop(ENV_CACHE_DIR, None)


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch):
    """Encoder sources never download in tests (MEDSYN_OFFLINE=1); the tests of the download
    path unset it and replace the libraries' download functions."""
    monkeypatch.setenv(ENV_OFFLINE, "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    value = os.environ.get(ENV_DATA_ROOT)
    if not value or not Path(value).is_dir():
        _missing(f"{ENV_DATA_ROOT} is not set to the folder with the real datasets")
    return Path(value)


@pytest.fixture(scope="session")
def inception_weights() -> Path:
    value = os.environ.get(ENV_INCEPTION_WEIGHTS)
    if not value or not Path(value).is_file():
        _missing(f"{ENV_INCEPTION_WEIGHTS} does not name the Inception weights file")
    return Path(value)


@pytest.fixture
def isolated_data_root(tmp_path, monkeypatch) -> Path:
    """An empty data root that MEDSYN_DATA_ROOT points to for one test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv(ENV_DATA_ROOT, str(root))
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny networks: on a busy 2-core machine OpenMP's
    spin-waiting costs more than a second thread gives. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- small synthetic images
# Plain functions, imported by the test modules (``from conftest import blob_images``): the
# evaluator tests build their toy datasets from them instead of each keeping a copy.


def blob_images(n: int, seed: int, *, size: int = 16, classes: int = 2, contrast: float = 160.0,
                class_step: float = 60.0, offset: float = 0.0):
    """``n`` smooth random grayscale images ("blobs") and their labels ``i % classes``.

    Uniform noise on a (size/4 x size/4) grid, seeded, bilinearly upsampled to size x size,
    times ``contrast``, plus ``class_step`` x the class (mean brightness encodes it), plus
    ``offset``; rounded and clipped to uint8. Returns ``(uint8 [n, 1, size, size], int64 [n])``.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    base = torch.rand(n, 1, size // 4, size // 4, generator=g)
    img = torch.nn.functional.interpolate(base, size=size, mode="bilinear")
    img = img * contrast + labels.view(-1, 1, 1, 1) * class_step + offset
    return img.round().clamp(0, 255).to(torch.uint8), labels


def blob_dataset(n: int, seed: int, split: str = "train", *, classes: int = 2, **image_options):
    """:func:`blob_images` as an ImageDataset named ``blobs`` with classes ``c0, c1, ...``."""
    from medsyn.data import ImageDataset

    images, labels = blob_images(n, seed, classes=classes, **image_options)
    return ImageDataset(name="blobs", split=split, images=images, labels=labels,
                        class_names=[f"c{i}" for i in range(classes)])


def with_noise(images, sigma: float, seed: int = 0):
    """``images`` plus seeded Gaussian noise of standard deviation ``sigma`` (in 0..255 units),
    rounded and clipped to uint8."""
    import torch

    g = torch.Generator().manual_seed(seed)
    noisy = images.float() + sigma * torch.randn(images.shape, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8)
