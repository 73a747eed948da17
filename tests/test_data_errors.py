"""Bad input gets a clear error naming the problem, never a traceback."""

import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app
from medsyn.data import load_dataset
from medsyn.errors import DataError
from medsyn.settings import ENV_CACHE_DIR

runner = CliRunner()


def _png(path, size=(16, 16), value=100, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 0)).save(path)


def _folder(root, classes=("a", "b"), per_class=10, size=(16, 16)):
    for c in classes:
        for i in range(per_class):
            _png(root / c / f"{i}.png", size, value=10 * i)
    return root


def test_unknown_dataset_lists_known():
    with pytest.raises(DataError) as err:
        load_dataset("chestxray14")
    msg = str(err.value)
    assert "unknown dataset 'chestxray14'" in msg
    for known in ("cxr3", "mnist", "pneumoniamnist", "breastmnist", "folder:<path>"):
        assert known in msg


def test_missing_dataset_names_paths_tried_and_howto(isolated_data_root):
    with pytest.raises(DataError) as err:
        load_dataset("pneumoniamnist")
    msg = str(err.value)
    assert str(isolated_data_root / "medmnist" / "pneumoniamnist.npz") in msg
    assert "medsyn data fetch pneumoniamnist" in msg


def test_missing_cxr3_explains_the_kaggle_layout(isolated_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        load_dataset("cxr3")
    msg = str(err.value)
    assert "dataset 'cxr3' not found" in msg
    assert f"{isolated_data_root / 'cxr3'} (MEDSYN_DATA_ROOT)" in msg
    assert f"{tmp_path / 'cache' / 'data' / 'cxr3'} (default cache)" in msg
    assert "Kaggle 'COVID-19 Radiography Database'" in msg and "Kaggle login" in msg
    assert "<data root>/cxr3/{train,val,test}/{COVID,Normal,Viral Pneumonia}/*.png" in msg
    assert "MEDSYN_DATA_ROOT (or --data-root)" in msg

    (isolated_data_root / "cxr3" / "train" / "COVID").mkdir(parents=True)   # half laid out
    with pytest.raises(DataError) as err:
        load_dataset("cxr3")
    msg = str(err.value)
    assert "is not laid out as cxr3: missing folders train/Normal" in msg
    assert "test/Viral Pneumonia" in msg and "{COVID,Normal,Viral Pneumonia}" in msg

    result = runner.invoke(app, ["data", "info", "cxr3", "--data-root", str(tmp_path / "none")])
    assert result.exit_code == 1 and "Kaggle" in result.output
    assert "Traceback" not in result.output


def test_missing_mnist_names_paths_tried_and_fetch(isolated_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", split="test")
    msg = str(err.value)
    assert "dataset 'mnist' not found" in msg
    for path in (isolated_data_root / "mnist" / "mnist.npz", isolated_data_root / "mnist.npz",
                 tmp_path / "cache" / "data" / "mnist" / "mnist.npz"):
        assert str(path) in msg
    assert "medsyn data fetch mnist (needs internet)" in msg


def _skipped(ds):
    return {item["path"]: item["reason"] for item in ds.source.get("skipped", [])}


def test_truncated_png_is_skipped_and_named(tmp_path, caplog):
    root = _folder(tmp_path / "imgs" / "train").parent
    bad = root / "train" / "a" / "3.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:-60])   # header intact, pixel data cut short
    ds = load_dataset(f"folder:{root}", split="train")
    assert len(ds) == 19 and ds.class_counts() == {"a": 9, "b": 10}
    assert "truncated, corrupt or not an image" in _skipped(ds)[str(bad)]
    assert any("1 file(s) not used" in w and "train/a/3.png" in w for w in ds.source["warnings"])
    assert "train/a/3.png" in caplog.text
    again = load_dataset(f"folder:{root}", split="train")       # from the array cache
    assert again.source["skipped"] == ds.source["skipped"]
    assert again.source["warnings"] == ds.source["warnings"]


def test_non_image_file_with_image_extension_is_skipped(tmp_path):
    root = _folder(tmp_path / "imgs" / "train", per_class=3).parent
    bad = root / "train" / "b" / "notes.png"
    bad.write_text("this is not a picture")
    ds = load_dataset(f"folder:{root}", split="train")
    assert len(ds) == 6
    assert "cannot be read as an image" in _skipped(ds)[str(bad)]


def test_stray_non_image_file_is_named(tmp_path):
    root = _folder(tmp_path / "imgs" / "train", per_class=2).parent
    (root / "train" / "a" / "labels.csv").write_text("x,y\n")
    (root / "train" / "a" / "scan.nii.gz").write_bytes(b"\x1f\x8b")
    (root / "train" / "a" / ".DS_Store").write_bytes(b"")            # ignored: not data
    ds = load_dataset(f"folder:{root}", split="train")
    assert len(ds) == 4
    skipped = _skipped(ds)
    assert "not an image file (extension '.csv'" in skipped[str(root / "train/a/labels.csv")]
    assert "NIfTI volumes are not supported" in skipped[str(root / "train/a/scan.nii.gz")]
    assert len(skipped) == 2
    result = runner.invoke(app, ["data", "info", f"folder:{root}"])
    assert result.exit_code == 0, result.output
    assert "labels.csv" in result.output and "NIfTI" in result.output


def test_only_unreadable_files_is_an_error(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.png").write_text("not a picture")
    with pytest.raises(DataError, match=r"none of the 1 image files .* a.png"):
        load_dataset(f"folder:{root}", split="all")


def test_empty_class_folder(tmp_path):
    root = _folder(tmp_path / "imgs" / "train", per_class=2).parent
    (root / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*c contains no images"):
        load_dataset(f"folder:{root}", split="train")


def test_empty_split_folder(tmp_path):
    root = _folder(tmp_path / "imgs" / "train", per_class=2).parent
    (root / "test").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(f"folder:{root}", split="test")
    msg = str(err.value)
    assert f"no class folders / no images in {root / 'test'}" in msg
    assert "choose another split (train)" in msg
    assert len(load_dataset(f"folder:{root}", split="train")) == 4     # the others still load
    result = runner.invoke(app, ["data", "info", f"folder:{root}", "--split", "test"])
    assert result.exit_code == 1 and "no images in" in result.output
    assert "Traceback" not in result.output and "ValueError" not in result.output


def test_automatic_split_without_images(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=1)          # 1 image per class: all in train
    assert len(load_dataset(f"folder:{root}", split="train")) == 2
    with pytest.raises(DataError, match="too few images for an automatic test split"):
        load_dataset(f"folder:{root}", split="test")


def test_mixed_sizes_need_image_size(tmp_path):
    root = tmp_path / "imgs" / "train"
    _png(root / "a" / "0.png", (16, 16))
    _png(root / "a" / "1.png", (20, 12))
    _png(root / "b" / "0.png", (16, 16))
    with pytest.raises(DataError, match="different sizes") as err:
        load_dataset(f"folder:{root.parent}", split="train")
    assert "--image-size" in str(err.value)
    ds = load_dataset(f"folder:{root.parent}", split="train", image_size=8)
    assert tuple(ds.images.shape) == (3, 1, 8, 8)


def test_labels_out_of_range(isolated_data_root):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (6, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array([[0], [1], [0], [1], [7], [0]], dtype=np.uint8)
    (isolated_data_root / "medmnist").mkdir()
    path = isolated_data_root / "medmnist" / "breastmnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as err:
        load_dataset("breastmnist", split="train")
    msg = str(err.value)
    assert str(path.resolve()) in msg or str(path) in msg
    assert "out of range" in msg and "0..1" in msg and "7" in msg


@pytest.mark.parametrize("name, relpath, split", [
    ("breastmnist", "medmnist/breastmnist.npz", "train"),
    ("mnist", "mnist/mnist.npz", "test"),
])
def test_truncated_npz_is_named(tmp_path, data_root, name, relpath, split):
    full = (data_root / relpath).read_bytes()
    bad = tmp_path / "data" / relpath
    bad.parent.mkdir(parents=True)
    bad.write_bytes(full[:len(full) // 2])          # an interrupted copy or download
    with pytest.raises(DataError) as err:
        load_dataset(name, split=split, root=tmp_path / "data")
    msg = str(err.value)
    assert str(bad) in msg and "truncated, corrupt" in msg
    assert f"medsyn data fetch {name} --force" in msg

    result = runner.invoke(app, ["data", "info", name, "--split", split,
                                 "--data-root", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert str(bad) in result.output and "truncated, corrupt" in result.output
    assert "Traceback" not in result.output and "BadZipFile" not in result.output


def test_damaged_npz_member_is_named(tmp_path, data_root):
    """Central directory intact, but an array's bytes damaged (bad CRC or zlib stream)."""
    src = data_root / "medmnist" / "breastmnist.npz"
    with zipfile.ZipFile(src) as z:
        member = z.getinfo("train_images.npy")
    full = bytearray(src.read_bytes())
    mid = member.header_offset + 100 + member.compress_size // 2     # inside its data
    full[mid:mid + 64] = bytes(b ^ 0xFF for b in full[mid:mid + 64])
    bad = tmp_path / "medmnist" / "breastmnist.npz"
    bad.parent.mkdir()
    bad.write_bytes(bytes(full))
    with pytest.raises(DataError, match="truncated, corrupt") as err:
        load_dataset("breastmnist", split="train", root=tmp_path)
    assert str(bad) in str(err.value)


def test_bad_split_and_bad_size(data_root):
    with pytest.raises(DataError, match="mnist has no split 'val'"):
        load_dataset("mnist", split="val", root=data_root)
    with pytest.raises(DataError, match="image_size must be an integer"):
        load_dataset("mnist", split="test", image_size=0, root=data_root)


def test_3d_medmnist_refused():
    with pytest.raises(DataError, match="3D"):
        load_dataset("organmnist3d")


def test_folder_without_splits_is_split_deterministically(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("x", "y", "z"), per_class=20)
    parts = {s: load_dataset(f"folder:{root}", split=s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 42, "val": 6, "test": 12}
    for d in parts.values():
        assert d.class_counts() == {c: len(d) // 3 for c in ("x", "y", "z")}   # stratified
    again = load_dataset(f"folder:{root}", split="test")
    assert again.fingerprint == parts["test"].fingerprint


def test_rgb_folder_loads_three_channels(tmp_path):
    root = tmp_path / "rgb" / "train"
    for i in range(3):
        _png(root / "a" / f"{i}.png", mode="RGB", value=50 + i)
        _png(root / "b" / f"{i}.png", mode="L", value=20 + i)  # grey replicated to RGB
    ds = load_dataset(f"folder:{root.parent}", split="train")
    assert tuple(ds.images.shape) == (6, 3, 16, 16)



def test_cli_error_is_one_line_and_nonzero():
    result = runner.invoke(app, ["data", "info", "nosuchset"])
    assert result.exit_code != 0
    assert "unknown dataset 'nosuchset'" in result.output
    assert "Traceback" not in result.output


def test_cli_truncated_file(tmp_path):
    root = _folder(tmp_path / "imgs" / "train", per_class=2).parent
    bad = root / "train" / "a" / "0.png"
    bad.write_bytes(bad.read_bytes()[:30])
    result = runner.invoke(app, ["data", "info", f"folder:{root}"])
    assert result.exit_code == 0, result.output          # the other 3 images still load
    assert "not used:" in result.output and "0.png" in result.output
    assert "truncated, corrupt" in result.output


def test_cli_info_and_list_on_real_data(data_root):
    result = runner.invoke(app, ["data", "info", "breastmnist", "--data-root", str(data_root),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert '"fingerprint"' in result.output and '"malignant": 147' in result.output
    result = runner.invoke(app, ["data", "list", "--data-root", str(data_root)])
    assert result.exit_code == 0
    assert "cxr3" in result.output and "yes" in result.output
