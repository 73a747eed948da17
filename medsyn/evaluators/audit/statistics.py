"""The audit's optional statistics, run in each space after the trust card's sets:
sample-size power (power.py), reference and preprocessing sensitivity (sensitivity.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.audit import perturbations as P
from medsyn.evaluators.audit import scoring


@dataclass
class Extras:
    """The optional statistics of an audit run (power, reference and preprocessing
    sensitivity) and what they found, per space."""

    power: bool
    reference: bool
    preprocessing: bool
    sizes: list | None = None
    sizes_left_out: list | None = None
    variants: list | None = None
    power_out: dict | None = None
    reference_out: dict | None = None
    preprocessing_out: dict | None = None

    @property
    def any(self) -> bool:
        return self.power or self.reference or self.preprocessing

    def blocks(self, repeats) -> dict:
        from medsyn.evaluators.audit.power import ALPHA, TARGET_POWER

        out = {}
        if self.power:
            out["power"] = {"settings": {"sizes": self.sizes, "sizes_left_out":
                                         self.sizes_left_out, "repeats": repeats,
                                         "alpha": ALPHA, "target": TARGET_POWER},
                            "spaces": self.power_out or {}}
        if self.reference:
            out["reference_sensitivity"] = {"spaces": self.reference_out or {}}
        if self.preprocessing:
            out["preprocessing"] = {"spaces": self.preprocessing_out or {}}
        return out


def power_repeats(value, quick) -> int:
    from medsyn.evaluators.audit.power import DEFAULT_REPEATS

    repeats = (10 if quick else DEFAULT_REPEATS) if value is None else value
    if not isinstance(repeats, int) or repeats < 5:
        raise ConfigError(f"--power-repeats must be an integer >= 5 (draws per size and level), "
                          f"got {repeats!r}.")
    return repeats


def power_sizes_for(sizes, pool_size):
    from medsyn.evaluators.audit.power import power_sizes

    if sizes is not None and any(not isinstance(v, int) or v < 2 for v in sizes):
        raise ConfigError(f"--power-sizes: give integers >= 2, got {list(sizes)!r}.")
    return power_sizes(sizes, pool_size)


def stored_as(source: dict | None) -> str | None:
    """How a dataset's files are stored, in words ("PNG 8-bit", "medmnist-npz"), for the
    preprocessing rows that do not apply to them; None when the source does not say."""
    source = source or {}
    depths = (source.get("intensity") or {}).get("bit_depths") or {}
    if depths:
        return ", ".join(depths) if len(depths) > 1 else next(iter(depths))
    kind = source.get("kind")
    return f"{kind}, 8-bit arrays" if kind == "medmnist-npz" else kind


def preprocessing_inputs(dataset, split, pool_ds, base_rows, image_size, data_root,
                         identical: bool = False):
    """The base sample's images as stored, put through every alternative pipeline
    (``identical``: with the rows that repeat the default, which must read 0)."""
    from medsyn.data import load_dataset
    from medsyn.evaluators.audit.sensitivity import preprocessing_variants

    native = load_dataset(dataset, split, root=data_root)
    rows = base_rows if pool_ds.parent is None else pool_ds.parent[1][base_rows]
    rows_t = torch.from_numpy(np.asarray(rows))
    depths = ((native.source or {}).get("intensity") or {}).get("bit_depths") or {}
    has_dicom = any(k.startswith("DICOM") for k in depths)
    has_high = any(not k.startswith("DICOM") and not k.endswith(" 8-bit") for k in depths)

    def loader(rule):
        if not has_high:
            return None
        return load_dataset(dataset, split, root=data_root, bit_depth=rule).images[rows_t]

    def dicom_loader(window):
        return load_dataset(dataset, split, root=data_root, dicom_window=window).images[rows_t]

    return preprocessing_variants(native.images[rows_t], image_size, loader,
                                  identical=identical,
                                  dicom_loader=dicom_loader if has_dicom else None,
                                  stored_as=stored_as(native.source))


def _set_values(ext, ctx_args, options, specs, directions, ref_f, pool_f, batch_size):
    """The scorer of the optional statistics: a set's values (no intervals: one value per
    draw) against the reference features."""
    from dataclasses import replace

    values_args = {**ctx_args, "options": replace(options, n_bootstrap=0)}

    def set_values(s, ref=ref_f, args=values_args):
        feats = scoring.set_features(s, pool_f, ext, batch_size)
        return _values(scoring.score_set(s, feats, args, specs, directions, ref, pool_f)[0])

    return values_args, set_values


def _values(scored):
    return {k: v["value"] for k, v in scored.items()}


def run_power(extra, ext, ctx_args, options, specs, directions, ref_f, pool_f, pool, failures,
              repeats, seed, batch_size):
    """``--power`` in this space. Every torchrun rank calls it: the draws are dealt across the
    ranks (power.py) and every rank receives the curves."""
    from medsyn.evaluators.audit.power import audit_power

    _, set_values = _set_values(ext, ctx_args, options, specs, directions, ref_f, pool_f,
                                batch_size)
    extra.power_out = extra.power_out or {}
    extra.power_out[ext.name] = audit_power(failures, pool, set_values, extra.sizes, repeats,
                                            directions, seed)


def run_extras(extra, ext, ctx_args, options, specs, directions, ref_f, pool_f, pool, seed,
               batch_size, reference, class_names, variant_features=None):
    """The reference and preprocessing sensitivity in this space (rank 0 alone: no
    extraction left; ``--power`` is :func:`run_power`).

    ``variant_features``: the features of ``extra.variants``' images, in their order
    (extracted with the audit's sets, so that torchrun ranks share that work)."""
    values_args, set_values = _set_values(ext, ctx_args, options, specs, directions, ref_f,
                                          pool_f, batch_size)
    if extra.reference:
        from medsyn.evaluators.audit.sensitivity import reference_sensitivity

        base = P.real_set(pool)

        def score_rows(rows):
            sub = reference.subset(rows)
            args = {**values_args, "reference": sub, "train": sub}
            return set_values(base, ref=ref_f.take(rows), args=args)

        groups = getattr(reference, "patient_ids", None)
        extra.reference_out = extra.reference_out or {}
        extra.reference_out[ext.name] = reference_sensitivity(
            score_rows, reference.labels.numpy(), list(class_names), list(directions), seed,
            groups=None if groups is None else np.asarray(groups, str))
    if extra.preprocessing:
        from medsyn.evaluators.audit.sensitivity import preprocessing_sensitivity

        base = P.real_set(pool)
        features_of = {id(images): f for (_, images, _), f in
                       zip(extra.variants, variant_features, strict=True)}

        def score_images(images):
            feats = features_of[id(images)]
            return _values(scoring.score_set(base, feats, values_args, specs, directions,
                                             ref_f, pool_f)[0])

        extra.preprocessing_out = extra.preprocessing_out or {}
        extra.preprocessing_out[ext.name] = preprocessing_sensitivity(
            extra.variants, score_images, list(directions))
