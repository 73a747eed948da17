"""Per-scale FID (docs/highres.md): the synthetic and the real images both downsampled to each
of ``--fid-scales`` (the datasets' antialiased resize, :func:`medsyn.data.resize_uint8`), then
FID in the evaluation's feature space. A generator good at coarse structure and poor at fine
detail (the failure high-resolution generators are prone to) scores well at the small scales
and badly near full size; the full-size FID is the ``fid`` family's.
"""

from __future__ import annotations

from medsyn.data import resize_uint8
from medsyn.evaluators.metrics.context import EvalContext, unavailable
from medsyn.evaluators.metrics.fidelity import fid_entry


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
