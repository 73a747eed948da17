"""``evaluate_folder``: fake images from a folder or an npz, scored against a real dataset
given as ``DATASET[:SPLIT]`` or a folder of real images.

Imports torch only inside functions: the CLI imports this module.
"""

from __future__ import annotations

from pathlib import Path

from medsyn.errors import DataError
from medsyn.evaluators.pipeline.checkpoint import (
    feature_spaces,
    needs_validation,
    optional_split,
)


def folder_out_dir(fake, out=None) -> Path:
    """``out``, else ``eval/<name>/`` beside the fake folder or npz."""
    if out is not None:
        return Path(out)
    fake_path = Path(fake).expanduser()
    return fake_path.resolve().parent / "eval" / fake_path.stem


def evaluate_folder(fake, real: str, *, out_dir=None, metrics=None, extractor="inception",
                    n_samples: int | None = None, n_real: int | None = None,
                    n_split: int | None = None, image_size: int | None = None,
                    data_root=None, bit_depth="auto", device=None, inception_weights=None,
                    options=None, overwrite: bool = False, **settings) -> dict | None:
    """Evaluate the images of ``fake`` (a folder: flat, one sub-folder per class, or with
    split folders; or an .npz of images [+ labels]) against ``real`` (``DATASET[:SPLIT]``, or a
    folder of images: every image it holds unless ``PATH:SPLIT``); return the results dict,
    written to ``out_dir`` (default ``eval/<name>/`` beside ``fake``).

    Fakes of another size are resized to the reference's (or, without ``image_size``, a
    reference of another size to square fakes'). ``n_samples``: a random subset of the fakes;
    ``n_real``: at most this many reference images (stratified); ``n_split``: at most this
    many train and test images for the floor and memorization (default ``n_real``). The
    dataset's train and test splits serve the floor and memorization (a folder without split
    folders: its automatic 70/10/20 split). ``extractor``, ``options`` / ``settings``: as
    :func:`~medsyn.evaluators.pipeline.checkpoint.evaluate_checkpoint`.
    """
    from medsyn.data import load_dataset
    from medsyn.data.transforms.resize import RESIZE_FILTER
    from medsyn.device import resolve_device
    from medsyn.evaluators import inputs
    from medsyn.evaluators.metrics import resolve_metrics
    from medsyn.evaluators.results import check_output_folder
    from medsyn.evaluators.scoring.evaluate import evaluate, resolve_options

    if not Path(fake).expanduser().exists():
        raise DataError(f"--fake {fake}: no such file or folder.")
    opts = resolve_options(options, settings)
    specs = resolve_metrics(metrics, have_discriminator=True)
    out_dir = Path(out_dir) if out_dir is not None else folder_out_dir(fake)
    check_output_folder(out_dir, overwrite)      # before anything slow
    dev = resolve_device(device)
    spaces = feature_spaces(extractor, dev, opts, inception_weights, specs)

    name, split = inputs.parse_real(real)
    root, bits = data_root, bit_depth
    probe = load_dataset(name, split, image_size=image_size, root=root, bit_depth=bits)
    fakes = inputs.load_fake(fake, probe.class_names, image_size, bits)
    size = image_size
    resize = None
    if size is None and tuple(fakes.images.shape[2:]) != tuple(probe.image_size):
        h, w = fakes.images.shape[2:]
        if h == w:
            size = int(h)
            resize = (f"reference {name}/{split} resized from {probe.image_size[0]}px to the "
                      f"fakes' {size}px (bicubic, antialiased)")
    reference = probe if size is None or size == probe.image_size[0] else \
        load_dataset(name, split, image_size=size, root=root, bit_depth=bits)
    fakes = inputs.match_reference(fakes, reference)
    fakes = inputs.subsample(fakes, n_samples, opts.seed)
    reference = inputs.stratified_subset(reference, n_real, opts.seed)
    # the floor and memorization need a training and a held-out split: for a folder without
    # split folders these are its automatic 70/10/20 split (their warnings say so)
    train = reference if split == "train" and n_real is None else \
        optional_split(name, "train", size, root, "training split", bits)
    heldout = reference if split == "test" and n_real is None else \
        optional_split(name, "test", size, root, "held-out split", bits)
    if train is not None and heldout is not None and train.fingerprint == heldout.fingerprint:
        heldout = None
    val = optional_split(name, "val", size, root, "validation split", bits) \
        if needs_validation(spaces, specs) else None
    if resize is None and size is not None and size != probe.image_size[0]:
        resize = (f"reference {name}/{split} resized from {probe.image_size[0]}px to "
                  f"{size}px ({RESIZE_FILTER})")
    prov = {"fake": {**fakes.source, "n": len(fakes.images)},
            "resize": {"fakes": fakes.source.get("resize"), "reference": resize}}
    if spaces.fitted_names and train is None:
        raise DataError(f"--extractor {','.join(spaces.fitted_names)}: fitted to the real "
                        f"training split of {name}, which is not available here.")
    return evaluate(fakes.images, fakes.labels, reference=reference, train=train,
                    heldout=heldout, val=val, metrics=metrics, extractor=spaces.get(train, val),
                    options=opts, device=dev, n_split=n_split if n_split is not None else n_real,
                    out_dir=out_dir, overwrite=overwrite, provenance=prov,
                    warnings=fakes.source.get("warnings", ()))
