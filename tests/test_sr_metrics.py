"""SR metrics and MATLAB imresize, checked against independent computations.

The references below are written differently from medsyn.evaluators.sr on purpose:
- Y: BasicSR's arithmetic (RGB scaled to [0, 1], dot product) and MATLAB rounding via sign/abs;
- SSIM: a transcription of Wang's ``ssim_index.m`` (2-D ``fspecial`` window, ``filter2`` valid
  correlation with scipy.signal) instead of scikit-image;
- imresize: MATLAB's ``contributions`` evaluated tap by tap with a gather loop over output
  pixels instead of a dense resize matrix; and PIL's independent C resampler (same a = -0.5
  kernel) for pixels away from the border, where the two boundary rules cannot differ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import skimage.data
from PIL import Image
from skimage.metrics import structural_similarity

from medsyn.errors import MedsynError
from medsyn.evaluators import sr

# ----------------------------------------------------------------------------- references


def ref_matlab_round(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def ref_y(rgb_uint8, rounded=True):
    """MATLAB rgb2ycbcr Y. Rounded: exact integer arithmetic, (Y - 16) * 255000 =
    65481 R + 128553 G + 24966 B, halves rounded up. (194 of the 2^24 triples are exact
    halves; there a float implementation's rounding depends on its order of operations.)"""
    rgb = rgb_uint8.astype(np.int64)
    num = 65481 * rgb[..., 0] + 128553 * rgb[..., 1] + 24966 * rgb[..., 2]
    if rounded:
        return (16 + (num + 127500) // 255000).astype(np.float64)
    return np.dot(rgb_uint8.astype(np.float64) / 255.0, [65.481, 128.553, 24.966]) + 16.0


def y_ties(rgb_uint8):
    rgb = rgb_uint8.astype(np.int64)
    num = 65481 * rgb[..., 0] + 128553 * rgb[..., 1] + 24966 * rgb[..., 2]
    return num % 255000 == 127500


def ref_plane(img, crop, rounded=True):
    if crop:
        img = img[crop:img.shape[0] - crop, crop:img.shape[1] - crop]
    return ref_y(img, rounded) if img.ndim == 3 else img.astype(np.float64)


def ref_psnr(a, b):
    rmse = math.sqrt(np.mean((a - b) ** 2))
    return 20.0 * math.log10(255.0 / rmse)


def ref_ssim_index(a, b):
    """Wang et al.'s ssim_index.m (2004), default parameters, L = 255."""
    ax = np.arange(-5, 6, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    window = np.exp(-(xx ** 2 + yy ** 2) / (2 * 1.5 ** 2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x):
        return scipy.signal.correlate2d(x, window, mode="valid")

    mu1, mu2 = filt(a), filt(b)
    s1 = filt(a * a) - mu1 * mu1
    s2 = filt(b * b) - mu2 * mu2
    s12 = filt(a * b) - mu1 * mu2
    ssim_map = (((2 * mu1 * mu2 + c1) * (2 * s12 + c2))
                / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2)))
    return float(ssim_map.mean())


def ref_contributions(in_len, out_len, scale):
    """MATLAB imresize's contributions(): 0-based source indices and weights, tap by tap."""
    def cubic(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
        if x <= 2:
            return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
        return 0.0

    width = 4.0 / scale if scale < 1 else 4.0
    mirror = list(range(in_len)) + list(range(in_len - 1, -1, -1))
    result = []
    for k in range(1, out_len + 1):
        u = k / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        idx = [left + j for j in range(taps)]
        if scale < 1:
            w = [scale * cubic(scale * (u - i)) for i in idx]
        else:
            w = [cubic(u - i) for i in idx]
        total = sum(w)
        result.append(([mirror[(i - 1) % (2 * in_len)] for i in idx], [x / total for x in w]))
    return result


def ref_resize_axis(x, scale, axis, uint8):
    x = np.moveaxis(x.astype(np.float64), axis, 0)
    out_len = math.ceil(scale * x.shape[0])
    out = np.zeros((out_len,) + x.shape[1:])
    for k, (src, w) in enumerate(ref_contributions(x.shape[0], out_len, scale)):
        for i, wi in zip(src, w, strict=True):
            out[k] += wi * x[i]
    if uint8:
        out = np.clip(ref_matlab_round(out), 0, 255)
    return np.moveaxis(out, 0, axis)


def ref_imresize(img, scale):
    uint8 = img.dtype == np.uint8
    out = ref_resize_axis(ref_resize_axis(img, scale, 0, uint8), scale, 1, uint8)
    return out.astype(np.uint8) if uint8 else out


def ref_bicubic_sr(hr, scale, crop, rounded=True):
    """Known-answer chain: modcrop, MATLAB bicubic down and up, PSNR/SSIM on Y."""
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    up = ref_imresize(ref_imresize(hr, 1 / scale), scale)
    a, b = ref_plane(up, crop, rounded), ref_plane(hr, crop, rounded)
    return ref_psnr(a, b), ref_ssim_index(a, b)


@pytest.fixture(scope="module")
def pair_rgb():
    rng = np.random.default_rng(0)
    ref = skimage.data.astronaut()[100:164, 200:270]
    noise = rng.integers(-12, 13, size=ref.shape)
    return np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8), ref


@pytest.fixture(scope="module")
def pair_gray():
    rng = np.random.default_rng(1)
    ref = skimage.data.camera()[200:260, 150:230]
    noise = rng.integers(-20, 21, size=ref.shape)
    return np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8), ref


# ----------------------------------------------------------------------------- conventions


def test_y_is_matlab_rgb2ycbcr_rounded_or_float(pair_rgb):
    img, _ = pair_rgb
    assert not y_ties(img).any()
    np.testing.assert_array_equal(sr.rgb_to_y(img), ref_y(img, True))
    np.testing.assert_allclose(sr.rgb_to_y(img, round_y=False), ref_y(img, False), atol=1e-12)
    # Anchors of BT.601 studio swing: black -> 16, white -> 235.
    corners = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(sr.rgb_to_y(corners), [[16, 235]])


def test_y_rounding_is_exact_except_on_the_194_half_ties():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)
    np.testing.assert_array_equal(sr.rgb_to_y(rgb)[~y_ties(rgb)], ref_y(rgb)[~y_ties(rgb)])
    r, g, b = np.meshgrid(*(np.arange(256, dtype=np.int64),) * 3, indexing="ij", sparse=True)
    tie = (65481 * r + 128553 * g + 24966 * b) % 255000 == 127500
    ties = np.stack(np.nonzero(tie), axis=1).astype(np.uint8)[None]
    assert ties.shape[1] == 194
    ours = sr.rgb_to_y(ties)
    assert set(np.unique(ref_y(ties) - ours)) <= {0.0, 1.0}
    # imlincomb's order (T1 R + T2 G + T3 B + 16, T = origT / 255) rounds this tie down.
    assert sr.rgb_to_y(np.array([[[0, 204, 68]]], np.uint8))[0, 0] == 125


def test_rounded_and_float_y_give_different_psnr_each_matching_its_reference(pair_rgb):
    img, ref = pair_rgb
    rounded = sr.psnr(img, ref)
    unrounded = sr.psnr(img, ref, round_y=False)
    assert rounded == pytest.approx(ref_psnr(ref_y(img), ref_y(ref)), abs=1e-10)
    assert unrounded == pytest.approx(ref_psnr(ref_y(img, False), ref_y(ref, False)), abs=1e-10)
    assert rounded != pytest.approx(unrounded, abs=1e-3)
    assert sr.ssim(img, ref) == pytest.approx(
        ref_ssim_index(ref_y(img), ref_y(ref)), abs=1e-10)
    assert sr.ssim(img, ref, round_y=False) == pytest.approx(
        ref_ssim_index(ref_y(img, False), ref_y(ref, False)), abs=1e-10)


def test_grayscale_is_used_as_is_not_through_rgb(pair_gray):
    img, ref = pair_gray
    raw = ref_psnr(img.astype(float), ref.astype(float))
    assert sr.psnr(img, ref) == pytest.approx(raw, abs=1e-10)
    assert sr.psnr(img, ref, y_channel=False) == pytest.approx(raw, abs=1e-10)
    assert sr.psnr(img[..., None], ref[..., None]) == pytest.approx(raw, abs=1e-10)
    # The same pixels as R=G=B go through Y = 16 + 219/255 v: a different, smaller-range plane.
    as_rgb = sr.psnr(np.repeat(img[..., None], 3, 2), np.repeat(ref[..., None], 3, 2))
    assert abs(as_rgb - raw) > 1.0
    assert sr.ssim(img, ref) == pytest.approx(
        ref_ssim_index(img.astype(float), ref.astype(float)), abs=1e-10)


def test_crop_border_removes_that_many_pixels_on_every_side(pair_gray):
    img, ref = pair_gray
    c = 4
    expected = ref_psnr(ref_plane(img, c), ref_plane(ref, c))
    assert sr.psnr(img, ref, crop_border=c) == pytest.approx(expected, abs=1e-10)
    # Anything inside the border is ignored, and nothing else is.
    spoiled = img.copy()
    spoiled[:c] = 0
    spoiled[-c:] = 255
    spoiled[:, :c] = 0
    spoiled[:, -c:] = 255
    assert sr.psnr(spoiled, ref, crop_border=c) == sr.psnr(img, ref, crop_border=c)
    assert sr.ssim(spoiled, ref, crop_border=c) == sr.ssim(img, ref, crop_border=c)
    assert sr.psnr(spoiled, ref, crop_border=c - 1) < sr.psnr(img, ref, crop_border=c - 1)
    assert sr.ssim(img, ref, crop_border=c) == pytest.approx(
        ref_ssim_index(ref_plane(img, c), ref_plane(ref, c)), abs=1e-10)


def test_ssim_window_is_11x11_gaussian_not_scikit_image_defaults(pair_gray):
    img, ref = pair_gray
    a, b = img.astype(float), ref.astype(float)
    ours = sr.ssim(img, ref)
    assert ours == pytest.approx(ref_ssim_index(a, b), abs=1e-10)
    skimage_default = structural_similarity(a, b, data_range=255)
    assert abs(ours - skimage_default) > 1e-3
    # An 11x11 image has exactly one valid window position: SSIM is that single value.
    small_a, small_b = img[:11, :11], ref[:11, :11]
    assert sr.ssim(small_a, small_b) == pytest.approx(
        ref_ssim_index(small_a.astype(float), small_b.astype(float)), abs=1e-12)
    with pytest.raises(MedsynError, match="11x11"):
        sr.ssim(img[:10, :30], ref[:10, :30])


def test_rgb_without_y_uses_all_channels(pair_rgb):
    img, ref = pair_rgb
    a, b = img.astype(float), ref.astype(float)
    assert sr.psnr(img, ref, y_channel=False) == pytest.approx(ref_psnr(a, b), abs=1e-10)
    per_channel = [ref_ssim_index(a[..., k], b[..., k]) for k in range(3)]
    assert sr.ssim(img, ref, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-10)


def test_identical_images():
    img = skimage.data.camera()[:32, :32]
    assert sr.psnr(img, img) == math.inf
    assert sr.ssim(img, img) == pytest.approx(1.0)


@pytest.mark.parametrize("call, match", [
    (lambda a: sr.psnr(a, a[:-1]), "same shape"),
    (lambda a: sr.psnr(a.astype(np.float32), a), "uint8"),
    (lambda a: sr.psnr(np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8)), "HxWx3"),
    (lambda a: sr.psnr(a, a, crop_border=16), "crop_border=16 leaves 0x0"),
    (lambda a: sr.psnr(a, a, crop_border=-1), ">= 0"),
    (lambda a: sr.psnr(a, a, crop_border=1.5), "int"),
    (lambda a: sr.ssim(a, a, crop_border=11), "11x11"),
    (lambda a: sr.psnr(a.tolist(), a), "numpy array"),
    (lambda a: sr.imresize(a, 0), "positive"),
    (lambda a: sr.imresize(a, float("nan")), "positive finite"),
    (lambda a: sr.imresize(a[:0], 2), "HxW"),
    (lambda a: sr.imresize(a.astype(np.int32), 2), "uint8 or float"),
    (lambda a: sr.imresize_batch(a, 2), r"\[N, C, H, W\]"),
])
def test_bad_input_raises_clear_error(call, match):
    a = skimage.data.camera()[:32, :32]
    with pytest.raises(MedsynError, match=match):
        call(a)


def test_errors_are_also_value_errors():
    with pytest.raises(ValueError):
        sr.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


# ----------------------------------------------------------------------------- imresize


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.7, 1.3])
def test_imresize_matches_tap_by_tap_matlab_reference(scale):
    img = skimage.data.astronaut()[150:174, 220:250]
    out_f = sr.imresize(img.astype(np.float64), scale)
    np.testing.assert_allclose(out_f, ref_imresize(img.astype(np.float64), scale), atol=1e-9)
    out_u8 = sr.imresize(img, scale)
    assert out_u8.dtype == np.uint8
    assert out_u8.shape == (math.ceil(24 * scale), math.ceil(30 * scale), 3)
    np.testing.assert_array_equal(out_u8, ref_imresize(img, scale))


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 3, 4])
def test_imresize_interior_matches_pil_bicubic(scale):
    """PIL's resampler is an independent C implementation of the same antialiased a=-0.5
    kernel; only its border rule differs (it renormalises instead of mirroring)."""
    img = skimage.data.camera()[100:196, 120:216].astype(np.float32)
    out = sr.imresize(img, scale)
    pil = np.asarray(Image.fromarray(img, mode="F").resize(
        (out.shape[1], out.shape[0]), Image.BICUBIC))
    margin = int(math.ceil(3 * max(scale, 1))) if scale > 1 else 3
    inner = (slice(margin, -margin), slice(margin, -margin))
    np.testing.assert_allclose(out[inner], pil[inner], atol=2e-3)


def test_imresize_properties():
    flat = np.full((20, 28), 77, np.uint8)
    for scale in (1 / 4, 1 / 3, 2, 4):
        assert (sr.imresize(flat, scale) == 77).all()
    img = skimage.data.camera()[:40, :52]
    np.testing.assert_array_equal(sr.imresize(img, 1), img)
    # A cubic-convolution kernel reproduces linear ramps exactly away from the border.
    ramp = np.tile(np.arange(32, dtype=np.float64) * 3.0, (8, 1))
    up = sr.imresize(ramp, 4)
    x = (np.arange(up.shape[1]) + 0.5) / 4 - 0.5
    np.testing.assert_allclose(up[4, 8:-8], 3.0 * x[8:-8], atol=1e-9)


def test_uint8_rounds_between_passes_like_matlab():
    img = skimage.data.astronaut()[200:248, 200:248]
    once = np.clip(ref_matlab_round(sr.imresize(img.astype(np.float64), 1 / 3)), 0, 255)
    per_pass = sr.imresize(img, 1 / 3)
    # Per-pass rounding differs from rounding once at the end by at most one grey level.
    diff = np.abs(per_pass.astype(int) - once.astype(int))
    assert diff.max() == 1 and diff.mean() < 0.5


def test_imresize_batch_equals_per_image_and_keeps_torch():
    import torch

    imgs = np.stack([skimage.data.astronaut()[i * 40:i * 40 + 32, :48] for i in range(3)])
    chw = np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))
    out = sr.imresize_batch(torch.from_numpy(chw), 1 / 4)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    for k in range(3):
        np.testing.assert_array_equal(out[k].numpy().transpose(1, 2, 0),
                                      sr.imresize(imgs[k], 1 / 4))


# ----------------------------------------------------------------------------- known answers

# Bicubic on scikit-image's sample images (modcrop, MATLAB bicubic down then up in uint8,
# crop_border = scale, rounded Y): (PSNR-Y dB, SSIM-Y). Computed by medsyn and, independently,
# by the reference chain above (test below), and pinned so that a change to both shows.
# Full table: docs/super_resolution.md (python bench/sr_conventions.py).
KNOWN_ANSWERS = {
    ("camera", 2): (29.886549, 0.86360962),
    ("camera", 4): (26.166600, 0.74701110),
    ("astronaut", 3): (28.671860, 0.89232857),
    ("chelsea", 4): (31.459399, 0.80524487),
    ("coffee", 2): (30.579240, 0.88451494),
}


def _sample(name):
    return getattr(skimage.data, name)()


@pytest.mark.parametrize("name, scale", sorted(KNOWN_ANSWERS))
def test_bicubic_known_answers_match_independent_chain(name, scale):
    hr = sr.modcrop(_sample(name), scale)
    up = sr.imresize(sr.imresize(hr, 1 / scale), scale)
    p, s = sr.psnr(up, hr, crop_border=scale), sr.ssim(up, hr, crop_border=scale)
    ref_p, ref_s = ref_bicubic_sr(_sample(name), scale, scale)
    # Colour images contain a few of the 194 exact-half Y colours (astronaut x3: 7 pixels), the
    # only pixels where the two Y planes may differ (by one level, ~1e-5 dB).
    tol_p, tol_s = (1e-9, 1e-12) if hr.ndim == 2 else (1e-4, 1e-6)
    if hr.ndim == 3:
        for x in (hr, up):
            assert not ((sr.rgb_to_y(x) != ref_y(x)) & ~y_ties(x)).any()
    assert p == pytest.approx(ref_p, abs=tol_p)
    assert s == pytest.approx(ref_s, abs=tol_s)
    pinned_p, pinned_s = KNOWN_ANSWERS[name, scale]
    assert p == pytest.approx(pinned_p, abs=2e-6)
    assert s == pytest.approx(pinned_s, abs=2e-8)
