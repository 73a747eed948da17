"""Evaluation at high resolution (docs/highres.md): seams of images generated in tiles, and FID
at several scales.

**Seams** (the ``seams`` family, ``--seam-patch``): is the intensity gradient of images
generated in tiles (MEGAN) larger across tile borders than inside tiles? For a grid of ``patch
x patch`` tiles, the squared differences of horizontally and vertically adjacent pixels (gray =
mean of channels, [0, 255] units) are split into *border* pairs (the two pixels lie in
different tiles: columns/rows ``k * patch - 1`` and ``k * patch``) and *interior* pairs, the
pairs one pixel either side of each border pair, inside the tiles (columns/rows ``k * patch - 2,
k * patch - 1`` and ``k * patch, k * patch + 1``). ``border_energy`` and ``interior_energy``
are their means; ``ratio = border / interior``. An image with no tile structure has a ratio
near 1 (the border columns are ordinary columns, compared with their neighbours); visible seams
raise it. The interior is local because gradient energy is not the same everywhere in a
radiograph: on cxr3 the pairs at the image's own edges carry about 6x the mean energy, and
against *all* interior pairs the real images' ratio on a 64 px grid was 0.49, not 1 (against
the neighbours: 0.99). The family reports the synthetic images' ratio over the real images' on
the same grid (:func:`seam_comparison`).

**Per-scale FID** (the ``scale_fid`` family, ``--fid-scales``): the synthetic and the real
images both downsampled to each size (the datasets' antialiased resize,
:func:`medsyn.data.resize_uint8`), then FID in the evaluation's feature space. A generator good
at coarse structure and poor at fine detail (the failure high-resolution generators are prone
to) scores well at the small sizes and badly near full size; the full-size FID is the ``fid``
family's.
"""

from __future__ import annotations

import numpy as np

from medsyn.data import resize_uint8
from medsyn.evaluators.metrics.context import EvalContext, entry, unavailable
from medsyn.evaluators.metrics.fidelity import fid_entry


def _per_image(images, patch: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per image: the sums of squared differences over border pairs and interior pairs, and
    the number of pairs of each kind (the same for every image)."""
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if arr.ndim != 4:
        raise ValueError("images must be [N, C, H, W]")
    h, w = arr.shape[2:]
    if patch < 2 or h % patch or w % patch or patch >= max(h, w):
        raise ValueError(f"patch size {patch} must be at least 2, smaller than the image and "
                         f"divide its size {h}x{w}")
    gray = arr.astype(np.float64).mean(axis=1)
    dx = np.diff(gray, axis=2) ** 2          # pair (j, j + 1) along a row
    dy = np.diff(gray, axis=1) ** 2
    across_x, beside_x = _border_and_neighbours(w, patch)
    across_y, beside_y = _border_and_neighbours(h, patch)
    border = dx[:, :, across_x].sum(axis=(1, 2)) + dy[:, across_y, :].sum(axis=(1, 2))
    interior = dx[:, :, beside_x].sum(axis=(1, 2)) + dy[:, beside_y, :].sum(axis=(1, 2))
    n_border = h * int(across_x.sum()) + w * int(across_y.sum())
    n_interior = h * int(beside_x.sum()) + w * int(beside_y.sum())
    return border, interior, n_border, n_interior


def _border_and_neighbours(size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks over the ``size - 1`` adjacent pairs ``(j, j + 1)`` of a row: the pairs across a
    tile border, and the pairs right beside them inside a tile."""
    j = np.arange(size - 1)
    across = (j + 1) % patch == 0
    beside = np.zeros_like(across)
    beside[1:] |= across[:-1]
    beside[:-1] |= across[1:]
    return across, beside & ~across


def _ratio(border: np.ndarray, interior: np.ndarray, nb: int, ni: int) -> tuple[float, ...]:
    b = float(border.sum()) / (len(border) * nb)
    i = float(interior.sum()) / (len(interior) * ni)
    return b, i, (b / i if i > 0 else float("inf"))


def seam_statistics(images, patch: int) -> dict:
    """``{"border_energy", "interior_energy", "ratio", "n"}`` of uint8 images [N, C, H, W]."""
    border, interior, nb, ni = _per_image(images, patch)
    b, i, ratio = _ratio(border, interior, nb, ni)
    return {"border_energy": b, "interior_energy": i, "ratio": ratio, "n": len(border)}


def seam_comparison(fake, real, patch: int, n_bootstrap: int = 0,
                    rng: np.random.Generator | None = None) -> dict:
    """Seam statistics of synthetic and real images on the same grid; ``ratio_excess`` = fake
    ratio / real ratio (about 1: no more seam than the real images have), and with
    ``n_bootstrap`` its values over resamples of both sets (``resamples``)."""
    f, r = _per_image(fake, patch), _per_image(real, patch)
    fb, fi, fr = _ratio(*f)
    rb, ri, rr = _ratio(*r)
    resamples = []
    rng = rng if rng is not None else np.random.default_rng(0)
    for _ in range(n_bootstrap):
        a = rng.integers(0, len(f[0]), len(f[0]))
        b = rng.integers(0, len(r[0]), len(r[0]))
        ratio_f = _ratio(f[0][a], f[1][a], f[2], f[3])[2]
        ratio_r = _ratio(r[0][b], r[1][b], r[2], r[3])[2]
        resamples.append(ratio_f / ratio_r if ratio_r > 0 else float("inf"))
    return {"patch": patch,
            "fake": {"border_energy": fb, "interior_energy": fi, "ratio": fr, "n": len(f[0])},
            "real": {"border_energy": rb, "interior_energy": ri, "ratio": rr, "n": len(r[0])},
            "ratio_excess": fr / rr if rr > 0 else float("inf"), "resamples": resamples}


def metric_seams(ctx) -> dict:
    """The ``seams`` family: ``fake ratio / real ratio`` on the grid of ``--seam-patch``, with
    a bootstrap interval over both image sets; unavailable without a patch size."""
    patch = ctx.options.seam_patch
    if patch is None:
        return {"seams": unavailable("no tile size given: pass --seam-patch N (the generator's "
                                     "patch size, e.g. 64 for a MEGAN with --patch-size 64)")}
    fake, real = ctx.fake_images, ctx.reference.images
    size = tuple(fake.shape[2:])
    if size != tuple(real.shape[2:]) or size[0] % patch or size[1] % patch or patch >= size[0]:
        return {"seams": unavailable(f"--seam-patch {patch} does not tile the {size[0]}x"
                                     f"{size[1]} images (it must divide their size and be "
                                     "smaller)")}
    res = seam_comparison(fake, real, patch, ctx.options.n_bootstrap, ctx.rng("seams"))
    return {"seams": entry(res["ratio_excess"], res["resamples"], len(real), len(fake),
                           "pixels", patch=patch, fake_ratio=res["fake"]["ratio"],
                           real_ratio=res["real"]["ratio"],
                           fake_border_energy=res["fake"]["border_energy"],
                           fake_interior_energy=res["fake"]["interior_energy"],
                           real_border_energy=res["real"]["border_energy"],
                           real_interior_energy=res["real"]["interior_energy"])}

def metric_scale_fid(ctx: EvalContext) -> dict:
    """``fid_<S>px`` for each scale S of ``ctx.options.fid_scales`` below the image size."""
    from medsyn.evaluators.features import extract_features

    scales = ctx.options.fid_scales
    if not scales:
        return {"scale_fid": unavailable("no scales given: pass --fid-scales, e.g. 32,64,128")}
    size = int(ctx.fake_images.shape[-1])
    out = {}
    for s in sorted(set(scales)):
        key = f"fid_{s}px"
        if s >= size:
            out[key] = unavailable(f"{s} px is not below the images' {size} px (the full-size "
                                   "FID is the 'fid' family)")
            continue
        fake = extract_features(ctx.extractor, resize_uint8(ctx.fake_images, s),
                                ctx.options.batch_size, desc=f"fake features at {s} px")
        real = extract_features(ctx.extractor, resize_uint8(ctx.reference.images, s),
                                ctx.options.batch_size, desc=f"real features at {s} px")
        out[key] = fid_entry(ctx, fake.features, real.features, f"scale_fid_{s}", scale=s)[0]
    return out
