"""`medsyn data fetch` / fetch_dataset, offline: file:// URLs and a fake URL opener stand in for
Zenodo and Keras' bucket."""

import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
from typer.testing import CliRunner

import medsyn.data.fetch as fetch
from medsyn.cli import app
from medsyn.data import fetch_dataset, load_dataset
from medsyn.data.npz import medmnist_url_md5
from medsyn.errors import DataError

runner = CliRunner()


def _medmnist_npz(path, n=6):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def release(tmp_path):
    """A small BreastMNIST-layout file standing in for the official one on Zenodo."""
    (tmp_path / "zenodo").mkdir()
    path = _medmnist_npz(tmp_path / "zenodo" / "breastmnist.npz")
    return path, hashlib.md5(path.read_bytes()).hexdigest()


def _serve(monkeypatch, url, md5):
    monkeypatch.setattr(fetch, "medmnist_url_md5", lambda flag, size: (url, md5))


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) \
        if folder.exists() else []


class FakeResponse:
    """A urlopen response serving ``data`` in 1 KiB reads; ``on_read(i)`` runs before read i;
    ``fail_at`` makes that read raise a connection reset."""

    def __init__(self, data, on_read=None, fail_at=None):
        self.body = io.BytesIO(data)
        self.headers = {"Content-Length": str(len(data))}
        self.on_read, self.fail_at, self.reads = on_read, fail_at, 0

    def read(self, n=-1):
        if self.on_read:
            self.on_read(self.reads)
        if self.reads == self.fail_at:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.reads += 1
        return self.body.read(min(n, 1024))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_matching_download_is_saved_and_loads(tmp_path, release, monkeypatch):
    src, md5 = release
    _serve(monkeypatch, src.as_uri(), md5)
    root = tmp_path / "data"
    path = fetch_dataset("breastmnist", root=root)
    assert path == root / "medmnist" / "breastmnist.npz"
    assert path.read_bytes() == src.read_bytes()
    assert _files(root) == ["medmnist", "medmnist/breastmnist.npz"]     # no temporary left
    assert len(load_dataset("breastmnist", split="val", root=root)) == 6

    def offline(*a, **k):
        raise AssertionError("a present file must not be downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert fetch_dataset("breastmnist", root=root) == path


def test_download_is_written_atomically(tmp_path, release, monkeypatch):
    src, md5 = release
    data = src.read_bytes()
    root = tmp_path / "data"
    dest = root / "medmnist" / "breastmnist.npz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old copy")                      # replaced only once the new one is whole
    seen = []

    def on_read(i):
        if i == 3:
            seen.append((dest.read_bytes(), [p.name for p in dest.parent.iterdir()]))

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: FakeResponse(data, on_read))
    _serve(monkeypatch, "https://zenodo.example/breastmnist.npz", md5)
    fetch_dataset("breastmnist", root=root, force=True)
    (old, names), = seen
    assert old == b"old copy"                                    # mid-download: old file intact,
    assert len(names) == 2 and any(n.endswith(".tmp") for n in names)  # new one beside it
    assert dest.read_bytes() == data and _files(root) == ["medmnist", "medmnist/breastmnist.npz"]


def test_mismatching_download_is_refused_and_leaves_nothing(tmp_path, release, monkeypatch):
    src, md5 = release
    wrong = "0" * 32
    _serve(monkeypatch, src.as_uri(), wrong)
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        fetch_dataset("breastmnist", root=root)
    msg = str(err.value)
    assert src.as_uri() in msg and f"md5 {md5}, expected {wrong}" in msg
    assert "refused, nothing was saved" in msg
    assert not root.exists()                         # not even the folders made for the file

    dest = root / "medmnist" / "breastmnist.npz"     # an existing file survives --force
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old copy")
    with pytest.raises(DataError, match="refused"):
        fetch_dataset("breastmnist", root=root, force=True)
    assert dest.read_bytes() == b"old copy"
    assert _files(root) == ["medmnist", "medmnist/breastmnist.npz"]

    result = runner.invoke(app, ["data", "fetch", "breastmnist", "--data-root",
                                 str(tmp_path / "cli")])
    assert result.exit_code == 1 and "refused, nothing was saved" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "cli").exists()


def test_download_that_breaks_off_leaves_nothing(tmp_path, release, monkeypatch):
    src, md5 = release
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: FakeResponse(src.read_bytes(), fail_at=2))
    _serve(monkeypatch, "https://zenodo.example/breastmnist.npz", md5)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="broke off .*Connection reset.*nothing was saved"):
        fetch_dataset("breastmnist", root=root)
    assert not root.exists()


def test_no_network_says_how_to_get_the_data(tmp_path, monkeypatch):
    def no_network(url, timeout=None):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    root = tmp_path / "data"
    for name, url, dest in [
        ("breastmnist", medmnist_url_md5("breastmnist", 64)[0],
         root / "medmnist" / "breastmnist_64.npz"),
        ("mnist", fetch.MNIST_URL, root / "mnist" / "mnist.npz"),
    ]:
        result = runner.invoke(app, ["data", "fetch", name, "--size", "64",
                                     "--data-root", str(root)])
        assert result.exit_code == 1, result.output
        out = " ".join(result.output.split())            # undo line wrapping
        assert f"could not download {url}" in out and "name resolution" in out
        assert f"download that URL on another machine and copy the file to {dest}" in out
        assert "Traceback" not in result.output
        assert not root.exists()


def test_mnist_is_checked_with_sha256(tmp_path, monkeypatch):
    src = tmp_path / "mnist.npz"
    np.savez(src, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.array([0, 1]),
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.array([7]))
    monkeypatch.setattr(fetch, "MNIST_URL", src.as_uri())
    monkeypatch.setattr(fetch, "MNIST_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    path = fetch_dataset("mnist", root=tmp_path / "data")
    assert path == tmp_path / "data" / "mnist" / "mnist.npz"
    assert load_dataset("mnist", split="test", root=tmp_path / "data").labels.tolist() == [7]
    monkeypatch.setattr(fetch, "MNIST_SHA256", "f" * 64)
    with pytest.raises(DataError, match=r"sha256 .*expected f{64}: refused"):
        fetch_dataset("mnist", root=tmp_path / "data", force=True)
    assert path.read_bytes() == src.read_bytes()


def test_unwritable_data_root_and_unfetchable_datasets(tmp_path, release, monkeypatch):
    src, md5 = release
    _serve(monkeypatch, src.as_uri(), md5)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(DataError, match="cannot write .*Choose a writable data folder"):
        fetch_dataset("breastmnist", root=not_a_folder)
    with pytest.raises(DataError, match="cxr3 cannot be downloaded automatically.*Kaggle"):
        fetch_dataset("cxr3", root=tmp_path)
    with pytest.raises(DataError, match=r"size must be one of \[28, 64, 128, 224\]"):
        fetch_dataset("breastmnist", root=tmp_path, size=32)
