"""The dataset layer on the real files under MEDSYN_DATA_ROOT."""

import torch

from medsyn.data import load_dataset


def test_cxr3_counts_per_class_and_split(data_root):
    expected = {"train": 936, "val": 201, "test": 201}
    for split, per_class in expected.items():
        ds = load_dataset("cxr3", split=split, root=data_root)
        assert ds.class_names == ["COVID", "Normal", "Viral Pneumonia"]
        assert ds.class_counts() == {c: per_class for c in ds.class_names}
        assert ds.images.dtype == torch.uint8
        assert tuple(ds.images.shape[1:]) == (1, 256, 256)
        assert ds.labels.dtype == torch.int64


def test_pneumoniamnist_train_counts(data_root):
    ds = load_dataset("pneumoniamnist", split="train", root=data_root)
    assert ds.class_names == ["normal", "pneumonia"]
    assert ds.class_counts() == {"normal": 1214, "pneumonia": 3494}
    assert tuple(ds.images.shape) == (4708, 1, 28, 28)
    (entry,) = ds.source["files"]
    # the shared file is a rebuild: its MD5 is not the official one, and that is recorded
    assert entry["checksum_matches_official"] is False
    assert entry["md5"] != entry["expected_md5"]
    assert "differs" in entry["note"]


def test_breastmnist_flat_labels(data_root):
    ds = load_dataset("breastmnist", split="train", root=data_root)
    assert ds.class_counts() == {"malignant": 147, "normal, benign": 399}


def test_mnist_test_split(data_root):
    ds = load_dataset("mnist", split="test", root=data_root)
    assert len(ds) == 10_000
    assert ds.class_names == [str(d) for d in range(10)]
    assert int(ds.labels.bincount().sum()) == 10_000


def test_fingerprints_stable_and_split_specific(data_root):
    a = load_dataset("cxr3", split="val", root=data_root)
    b = load_dataset("cxr3", split="val", root=data_root)   # from the array cache (test below)
    c = load_dataset("cxr3", split="test", root=data_root)
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.images, b.images)
    assert a.fingerprint != c.fingerprint
    p1 = load_dataset("pneumoniamnist", split="val", root=data_root)
    p2 = load_dataset("pneumoniamnist", split="val", root=data_root)
    p3 = load_dataset("pneumoniamnist", split="test", root=data_root)
    assert p1.fingerprint == p2.fingerprint != p3.fingerprint


def test_second_load_comes_from_the_array_cache(data_root, tmp_path, monkeypatch):
    from medsyn.data import folder, npz
    from medsyn.settings import ENV_CACHE_DIR

    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))     # start cold
    decoded, resized = [], []
    real_decode, real_resize = folder.decode_many, npz.resize_uint8
    monkeypatch.setattr(folder, "decode_many",
                        lambda paths, **kw: decoded.append(len(paths)) or real_decode(paths, **kw))
    monkeypatch.setattr(npz, "resize_uint8",
                        lambda images, size: resized.append(size) or real_resize(images, size))

    first = load_dataset("cxr3", split="val", root=data_root)
    assert decoded == [603]                          # cold: every PNG decoded once
    assert len(list((tmp_path / "cache" / "arrays").glob("*.images.npy"))) == 1
    second = load_dataset("cxr3", split="val", root=data_root)
    assert decoded == [603]                          # warm: nothing decoded
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint
    assert first.source == second.source

    a = load_dataset("pneumoniamnist", split="val", image_size=32, root=data_root)
    b = load_dataset("pneumoniamnist", split="val", image_size=32, root=data_root)
    assert resized == [32]                           # the resized MedMNIST arrays are cached too
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint


def test_cached_fingerprint_equals_recomputed(data_root):
    from medsyn.data import fingerprint_arrays

    ds = load_dataset("cxr3", split="test", root=data_root)
    ds = load_dataset("cxr3", split="test", root=data_root)
    assert ds.fingerprint == fingerprint_arrays(ds.images, ds.labels)


def test_cxr3_resized_to_112(data_root):
    ds = load_dataset("cxr3", split="test", image_size=112, root=data_root)
    assert tuple(ds.images.shape) == (603, 1, 112, 112)
    assert ds.source["resized_to"] == 112
    full = load_dataset("cxr3", split="test", root=data_root)
    assert ds.fingerprint != full.fingerprint
    # antialiased downscaling keeps the mean grey level
    assert abs(ds.images.float().mean() - full.images.float().mean()) < 1.0


def test_medmnist_resize_records_source(data_root):
    ds = load_dataset("pneumoniamnist", split="test", image_size=32, root=data_root)
    assert tuple(ds.images.shape) == (624, 1, 32, 32)
    assert ds.source["resized_from"] == [28, 28]
