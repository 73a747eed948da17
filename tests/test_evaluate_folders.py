"""`medsyn evaluate` on plain folders: every image of a reference folder is used, skipped files
are named in the results' warnings, and 12-bit copies of real images score like the originals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsyn.cli import app

runner = CliRunner()
N_FID = 60      # images per set in the Inception test (about 0.1-0.2 s each on one CPU core)


def _pngs(folder, n, seed, size=16):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / f"{i}.png")


def _evaluate(*args):
    result = runner.invoke(app, ["evaluate", *map(str, args)])
    return result, result.output + (repr(result.exception) if result.exception else "")


def test_flat_reference_folder_of_5_gives_n_real_5_and_skipped_files_are_warned(tmp_path):
    _pngs(tmp_path / "ref", 5, seed=0)
    _pngs(tmp_path / "fake", 6, seed=1)
    (tmp_path / "fake" / "notes.txt").write_text("not an image")
    (tmp_path / "ref" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    out = tmp_path / "out"
    result, text = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "ref",
                             "--extractor", "pixels", "--metrics", "fid,kid,real_floor",
                             "--bootstrap", 0, "--out", out)
    assert result.exit_code == 0, text
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["fid"]["n_real"] == 5 and res["metrics"]["fid"]["n_fake"] == 6
    assert res["provenance"]["reference"]["split"] == "all"
    warnings = " | ".join(res["warnings"])
    assert "notes.txt" in warnings and "broken.png" in warnings
    # the floor needs a train and a test part: the automatic split, and the output says so
    assert "automatic 70/10/20 split's train part" in warnings
    assert "warning:" in text and "notes.txt" in text


def test_split_folders_reference_all_or_the_split_asked_for(tmp_path):
    for split, n in (("train", 4), ("test", 3)):
        _pngs(tmp_path / "ref" / split / "a", n, seed=n)
    _pngs(tmp_path / "fake", 4, seed=9)
    for spec, n_real in ((tmp_path / "ref", 7), (f"{tmp_path / 'ref'}:test", 3)):
        out = tmp_path / f"out{n_real}"
        result, text = _evaluate("--fake", tmp_path / "fake", "--real", spec, "--extractor",
                                 "pixels", "--metrics", "fid", "--bootstrap", 0, "--out", out)
        assert result.exit_code == 0, text
        assert json.loads((out / "results.json").read_text())["metrics"]["fid"]["n_real"] == \
            n_real


def test_bad_bit_depth_option_is_one_line(tmp_path):
    _pngs(tmp_path / "fake", 2, seed=0)
    result, text = _evaluate("--fake", tmp_path / "fake", "--real", tmp_path / "fake",
                             "--bit-depth", "11.5")
    assert result.exit_code == 1 and "--bit-depth must be" in text
    assert "Traceback" not in text


@pytest.mark.real_data
@pytest.mark.inception
def test_12_bit_copies_of_real_images_score_like_the_8_bit_originals(
        data_root, inception_weights, tmp_path, capsys):
    """FID of 12-bit PNG copies of 60 cxr3 test images against 60 other test images equals
    that of the 8-bit originals (the copies load back exactly); the old rule (top 8 of 16 bits,
    here --bit-depth 16) makes them nearly black and the FID jump."""
    import medsyn.evaluators as ev
    from medsyn.data import load_dataset
    from medsyn.evaluators.inputs import load_fake, stratified_subset

    test = stratified_subset(load_dataset("cxr3", "test", root=data_root), 2 * N_FID, seed=0)
    a, b = test.images[0::2], test.images[1::2]
    (tmp_path / "a12").mkdir()
    (tmp_path / "b8").mkdir()
    for i, img in enumerate(a):
        v8 = img[0].numpy().astype(np.int64)
        Image.fromarray(((v8 * 8190 + 255) // 510).astype(np.uint16)).save(
            tmp_path / "a12" / f"{i:03d}.png")
    for i, img in enumerate(b):
        Image.fromarray(img[0].numpy()).save(tmp_path / "b8" / f"{i:03d}.png")
    reference = load_dataset(str(tmp_path / "b8"), "all")
    assert len(reference) == N_FID
    copies = load_fake(tmp_path / "a12", reference.class_names)
    assert np.array_equal(copies.images.numpy(), a.numpy())      # the round trip is exact
    dark = load_fake(tmp_path / "a12", reference.class_names, bit_depth=16)
    assert "use only 6.2 % of the 16-bit range" in " ".join(dark.source["warnings"])

    inception = ev.get_extractor("inception", weights=inception_weights, device="cpu")
    fid = {}
    for name, images in (("12-bit copies", copies.images), ("as 16-bit", dark.images)):
        res = ev.evaluate(images, reference=reference, metrics="fid", extractor=inception,
                          n_bootstrap=0, use_cache=False)
        fid[name] = res["metrics"]["fid"]["value"]
    # the copies hold exactly the originals' pixels (checked above), so their FID is the
    # real-vs-real floor of these two halves
    floor = fid["12-bit copies"]
    with capsys.disabled():
        print(f"\nFID vs {N_FID} other 8-bit cxr3 test images: 12-bit copies (= 8-bit "
              f"originals, the real floor) {floor:.2f}; 12-bit read as 16-bit "
              f"{fid['as 16-bit']:.2f}")
    assert fid["as 16-bit"] > 1.5 * floor
