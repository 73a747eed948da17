"""Shared fixtures.

Real-data tests read the files named by MEDSYN_DATA_ROOT and MEDSYN_INCEPTION_WEIGHTS. On a
developer machine without them those tests are skipped; under CI (CI set) they fail instead,
so a missing data set can never turn the suite green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medsyn.settings import ENV_CACHE_DIR, ENV_DATA_ROOT, ENV_INCEPTION_WEIGHTS


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
