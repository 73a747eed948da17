"""Privacy audit (``--metrics privacy``): does the synthetic set leak its training images?

Three tests, each in the evaluation's feature space and in raw pixels (stats.py beside it has
the mathematics, docs/privacy.md what each can and cannot prove):

- DCR: synthetic -> train nearest distances against held-out -> train ones;
- C_T (Meehan et al. 2020): the same comparison inside k-means cells of the training features;
- membership inference: can the distance to the synthetic set tell training images from
  held-out ones (AUC, 0.5 = no)?

Each flags at one-sided level ``ALPHA``; the verdict says which flag, where. Further tests plug
in with :func:`register_privacy_test` (the hook for authenticity, Alaa et al. 2022).

The held-out baseline is chosen by ``privacy_baseline`` (baseline.py: the validation
split by default) and, in every space, an exchangeability check (exchangeability.py) tests
whether it is drawn like the training images. A baseline that is not makes every test
confounded: the verdict then rests on a control drawn like the training images and unseen by
the generator when one exists (the validation split), and on nothing otherwise.

Patients: when the datasets carry ``patient_ids``, held-out -> train distances skip
same-patient pairs, held-out images of training patients are not used as non-members, and
intervals resample patients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from medsyn.errors import ConfigError
from medsyn.evaluators.metrics import stats
from medsyn.evaluators.metrics.context import EvalContext, unavailable
from medsyn.evaluators.metrics.privacy.baseline import PrivacySets, RealSet, choose_sets
from medsyn.evaluators.metrics.privacy.exchangeability import check_exchangeable, describe_shift
from medsyn.evaluators.metrics.privacy.stats import (
    ALPHA,
    data_copying_ct,
    dcr_test,
    default_cells,
    fraction_below,
    kmeans_cells,
    membership_attack,
)
from medsyn.evaluators.metrics.stats.groups import GroupResampler

PERCENTILE = 5.0             # "closer than the 5th percentile of held-out distances"
PIXEL_MAX_SIZE = 64          # raw-pixel space: the image's own size, area-downsampled above this


@dataclass
class PrivacySpace:
    """One space the audit runs in: features of the three sets and the patients of the real
    ones (None when unknown). What every privacy test, built in or registered, receives."""

    name: str
    description: str
    fake: np.ndarray
    train: np.ndarray
    heldout: np.ndarray
    train_patients: np.ndarray | None
    heldout_patients: np.ndarray | None
    # rows of the evaluation's training split that ``train`` holds (None: all, in order)
    train_rows: np.ndarray | None = None
    heldout_label: str = "held-out"


# name -> fn(space, ctx) -> block with at least "flags" (bool or None) and "rule" (str)
_EXTRA_TESTS: dict[str, Callable[[PrivacySpace, EvalContext], dict | None]] = {}


def register_privacy_test(name: str, fn: Callable[[PrivacySpace, EvalContext], dict | None]):
    """Add a test to every space of the audit and to its verdict.

    ``fn(space, ctx)`` returns a JSON-ready block with ``"flags"`` (True: evidence of copying,
    False: none, None: could not decide) and ``"rule"`` (the threshold, in words), plus its
    numbers; or None to skip the space. Example (authenticity, Alaa et al. 2022, once
    ``medsyn.evaluators.metrics.distribution.alpha_precision.authenticity`` exists)::

        def authenticity_test(space, ctx):
            a = authenticity(space.train, space.fake)            # that module's signature
            return {"value": a, "flags": a < 0.5, "rule": "authentic fraction below 0.5"}

        register_privacy_test("authenticity", authenticity_test)
    """
    _EXTRA_TESTS[name] = fn


def _pixel_space(ctx: EvalContext):
    from medsyn.evaluators.features import PixelExtractor

    h, w = ctx.fake_images.shape[2:]
    return PixelExtractor(int(min(h, w, PIXEL_MAX_SIZE)), device=ctx.device)


class _SpaceFeatures:
    """Features of the evaluation's real datasets in one space, extracted (or read from the
    cache) once per dataset and sliced for the training, baseline and control sets."""

    def __init__(self, ctx: EvalContext, extractor, description: str):
        self.ctx, self.extractor, self.description = ctx, extractor, description
        self.name = extractor.name
        self._real: dict[str, np.ndarray] = {}
        self._fake: np.ndarray | None = None

    def fake(self) -> np.ndarray:
        if self._fake is None:
            if self.extractor is self.ctx.extractor:
                self._fake = self.ctx.fake.features
            else:
                from medsyn.evaluators.features import extract_features

                self._fake = extract_features(self.extractor, self.ctx.fake_images,
                                              self.ctx.options.batch_size, "fake pixels").features
        return self._fake

    def real(self, source: str) -> np.ndarray:
        if source not in self._real:
            if self.extractor is self.ctx.extractor:
                self._real[source] = self.ctx.features_of(source).features
            else:
                from medsyn.evaluators.features import dataset_features

                opts = self.ctx.options
                self._real[source] = dataset_features(self.ctx.split_dataset(source),
                                                      self.extractor, opts.batch_size,
                                                      opts.use_cache).features
        return self._real[source]

    def space(self, train: RealSet, held: RealSet) -> PrivacySpace:
        ids = {src: getattr(self.ctx.split_dataset(src), "patient_ids", None)
               for src in {train.source, held.source}}
        return PrivacySpace(
            self.name, self.description, self.fake(), self.real(train.source)[train.rows],
            self.real(held.source)[held.rows],
            None if ids[train.source] is None else ids[train.source][train.rows],
            None if ids[held.source] is None else ids[held.source][held.rows],
            train_rows=train.rows, heldout_label=held.label)


def _spaces(ctx: EvalContext) -> list[_SpaceFeatures]:
    """The evaluation's feature space and raw pixels (unless they are the same)."""
    out = [_SpaceFeatures(ctx, ctx.extractor, "the evaluation's feature space")]
    pix = _pixel_space(ctx)
    if pix.name != ctx.extractor.name:
        out.append(_SpaceFeatures(ctx, pix, f"raw pixels: {pix.conventions}"))
    return out


def exchangeability_block(space: PrivacySpace, ctx: EvalContext) -> dict:
    """The exchangeability check of the space's training and held-out images, as a block of
    results.json (``value``: the distance AUC, 0.5 = no shift)."""
    check = check_exchangeable(space.train, space.heldout,
                               ctx.rng(f"privacy/exchangeability/{space.name}/"
                                       f"{space.heldout_label}"),
                               ctx.device, space.train_patients, space.heldout_patients)
    verdict = "SHIFT" if check["shift_detected"] else "no shift detected"
    return {**check, "value": check["distance"]["auc"], "set": space.heldout_label,
            "n_real": check["n_heldout"], "extractor": space.name,
            "rule": f"permutation test of a training probe against {space.heldout_label}: "
                    f"distance to the other training images (AUC) and RBF MMD, combined by "
                    f"min-p; shift when p < {check['alpha']}",
            "note": f"training vs {space.heldout_label} (0.5 = alike); combined p "
                    f"{_fmt(check['p_value'])}: {verdict}"}


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _note(what: str, test: dict) -> str:
    verdict = {True: "FLAGS", False: "does not flag", None: "undecided"}[test["flags"]]
    return f"{what}; one-sided p {_fmt(test['p_value'])}: {verdict}"


def _flag(p) -> bool | None:
    return None if p is None else bool(p < ALPHA)


def audit_space(space: PrivacySpace, ctx: EvalContext, figures: bool = True) -> dict:
    """DCR test, C_T and the membership attack in one space (+ figures when writing)."""
    opts, dev = ctx.options, ctx.device
    rng = ctx.rng(f"privacy/{space.name}")
    to_row = (lambda i: int(i)) if space.train_rows is None else \
        (lambda i: int(space.train_rows[i]))
    d_ft = stats.pairwise_distances(space.fake, space.train, dev)            # fake x train
    d_ht = stats.exclude_same_group(stats.pairwise_distances(space.heldout, space.train, dev),
                                    space.heldout_patients, space.train_patients)
    best = d_ft.min(1)
    d_fake, nn_fake = best.values.cpu().numpy(), best.indices.cpu().numpy()
    d_held_all = d_ht.min(1).values.cpu().numpy()
    has_other = np.isfinite(d_held_all)      # a held-out image with another patient in train
    d_held = d_held_all[has_other]
    held_patients = None if space.heldout_patients is None else space.heldout_patients[has_other]
    held_rs = GroupResampler(len(d_held), held_patients)

    # 1. DCR
    dcr = dcr_test(d_fake, d_held)
    fraction, threshold, frac_res = fraction_below(d_fake, d_held, PERCENTILE,
                                                   opts.n_bootstrap, rng, held_rs)
    ratio_res = []
    for _ in range(opts.n_bootstrap):
        h = np.median(d_held[held_rs.draw(rng)])
        f = np.median(d_fake[rng.integers(0, len(d_fake), len(d_fake))])
        ratio_res.append(float(f / h) if h > 0 else None)
    dcr.update({
        "median_ratio_ci95": stats.recentred_interval(dcr["median_ratio"], ratio_res, 0.0)
        if dcr["median_ratio"] is not None else None,
        "fraction_below_heldout_p5": fraction,
        "fraction_ci95": stats.recentred_interval(fraction, frac_res, 0.0, 1.0),
        "expected_fraction_without_copying": PERCENTILE / 100,
        "threshold": threshold, "percentile": PERCENTILE,
        "n_fake": len(d_fake), "n_heldout": len(d_held), "n_train": len(space.train),
        "flags": _flag(dcr["p_value"]),
        "rule": f"one-sided Mann-Whitney U p < {ALPHA} (synthetic nearer to train than "
                "held-out images)",
        "closest": [{"fake_index": int(i), "train_index": to_row(nn_fake[i]),
                     "distance": float(d_fake[i])}
                    for i in np.argsort(d_fake)[: opts.gallery_pairs]],
    })

    # 2. C_T over k-means cells of the training features
    n_cells = default_cells(len(space.train), len(d_held), len(d_fake))
    km = kmeans_cells(space.train, n_cells, opts.seed)
    ct = data_copying_ct(d_ft, d_ht[torch.from_numpy(np.flatnonzero(has_other)).to(d_ht.device)],
                         km.labels_, km.predict(space.fake.astype(np.float64)),
                         km.predict(space.heldout[has_other].astype(np.float64)), n_cells)
    ct.update({"flags": _flag(ct["p_value"]),
               "rule": f"z = sum(w Z_U) / sqrt(sum w^2) with p = Phi(z) < {ALPHA} "
                       "(C_T well below 0: copying)",
               "cells_method": f"k-means (k={n_cells}, k-means++, 3 restarts, seed "
                               f"{opts.seed}) on the training features"})

    # 3. membership inference by distance to the synthetic set
    d_member = d_ft.min(0).values.cpu().numpy()                   # each training image
    train_set = set(space.train_patients) if space.train_patients is not None else set()
    fresh = np.ones(len(space.heldout), dtype=bool) if space.heldout_patients is None else \
        np.array([p not in train_set for p in space.heldout_patients])
    d_non = stats.nearest_distances(space.heldout[fresh], space.fake, dev)[0]
    mia = membership_attack(
        d_member, d_non, opts.n_bootstrap, rng,
        GroupResampler(len(d_member), space.train_patients),
        GroupResampler(len(d_non), None if space.heldout_patients is None
                       else space.heldout_patients[fresh]))
    res = mia.pop("resamples")
    res_tpr = mia.pop("tpr_resamples")
    mia.update({"ci95": stats.recentred_interval(mia["auc"], res, 0.0, 1.0),
                "tpr_at_low_fpr_ci95": stats.recentred_interval(mia["tpr_at_low_fpr"], res_tpr,
                                                                0.0, 1.0),
                "n_members": len(d_member), "n_nonmembers": len(d_non),
                "nonmembers_dropped_same_patient": int((~fresh).sum()),
                "flags": _flag(mia["p_value"]),
                "rule": f"one-sided Mann-Whitney p < {ALPHA} that training images are nearer "
                        "to the synthetic set than held-out ones (AUC > 0.5)",
                "score": "minus the distance to the nearest synthetic image"})

    # headline value / ci95 / note of each test, for metrics.csv and the printed table
    dcr.update({"value": dcr["median_ratio"], "ci95": dcr["median_ratio_ci95"],
                "n_real": dcr["n_heldout"], "extractor": space.name,
                "note": _note("median DCR ratio synthetic / held-out", dcr)})
    ct.update({"n_real": int(has_other.sum()), "n_fake": len(d_fake), "extractor": space.name,
               "note": _note(f"C_T; z {_fmt(ct['z'])}", ct)})
    mia.update({"value": mia["auc"], "n_real": mia["n_nonmembers"], "n_fake": len(d_fake),
                "extractor": space.name, "note": _note("membership-inference AUC", mia)})
    block = {"space": space.description, "dcr": dcr, "data_copying": ct,
             "membership_inference": mia}
    for name, fn in _EXTRA_TESTS.items():
        extra = fn(space, ctx)
        if extra is not None:
            block[name] = extra
    if ctx.out_dir is not None and figures:
        from medsyn.evaluators.metrics import figures as figs

        order = np.argsort(d_fake)[: opts.gallery_pairs]
        tag = space.name.replace("/", "-")
        nn_rows = nn_fake if space.train_rows is None else space.train_rows[nn_fake]
        ctx.figures[f"privacy_pairs_{tag}"] = figs.memorization_gallery(
            ctx.out_dir / f"privacy_pairs_{tag}.png", ctx.fake_images,
            ctx.split_dataset("train").images, order,
            nn_rows, d_fake, threshold, PERCENTILE, space=space.name)
        ctx.figures[f"privacy_hist_{tag}"] = figs.distance_histogram(
            ctx.out_dir / f"privacy_hist_{tag}.png", d_fake, d_held, threshold, PERCENTILE,
            space=space.name)
    return block


TEST_NAMES = {"dcr": "DCR test", "data_copying": "C_T data-copying test",
              "membership_inference": "membership-inference attack"}


def _test_labels(spaces: dict[str, dict], against: str = "") -> tuple[list, list, list]:
    """(flagged, undecided, all) test labels of per-space blocks."""
    flagged, undecided, every = [], [], []
    for space, block in spaces.items():
        for key, test in block.items():
            if not isinstance(test, dict) or "flags" not in test:
                continue
            label = f"{TEST_NAMES.get(key, key)} ({space}{against})"
            every.append(label)
            if test["flags"] is None:
                undecided.append(label)
            elif test["flags"]:
                flagged.append(label)
    return flagged, undecided, every


def _shifts(spaces: dict[str, dict]) -> dict[str, dict]:
    return {space: block["exchangeability"] for space, block in spaces.items()
            if isinstance(block.get("exchangeability"), dict)
            and block["exchangeability"].get("shift_detected")}


def _finding(flagged: list[str], reference: str) -> str:
    if flagged:
        return ("Possible leak of training images, flagged by: " + "; ".join(flagged) + ". "
                f"The synthetic images sit closer to the training images than {reference} "
                "do; inspect the closest pairs before releasing them.")
    return ("No test flags: the synthetic images are no closer to the training images "
            f"than {reference} are, in any space tested. This is evidence against copying at "
            "these sample sizes, not proof that no patient can be re-identified.")


def verdict(spaces: dict[str, dict], baseline: dict | None = None,
            control: dict | None = None) -> dict:
    """Plain-language verdict: which tests flag, in which spaces, and the thresholds.

    ``spaces``: the tests against the baseline, each space's block with its
    ``exchangeability`` check when it ran. A shift found in any space makes those tests
    confounded: the verdict then rests on ``control`` (``{"set", "role", "spaces"}``, the same
    tests against a control drawn like the training images) when given and exchangeable,
    else it is undecided. No leak is ever stated on the basis of a shifted baseline alone."""
    flagged, undecided, every = _test_labels(spaces)
    rules = sorted({f"{TEST_NAMES.get(k, k)}: {t['rule']}" for b in spaces.values()
                    for k, t in b.items() if isinstance(t, dict) and "rule" in t
                    and k != "exchangeability"})
    name = (baseline or {}).get("set") or "the held-out images"
    checks = {s: b["exchangeability"] for s, b in spaces.items()
              if isinstance(b.get("exchangeability"), dict)}
    shifts = _shifts(spaces)
    parts, confounded, basis = [], [], "baseline"
    if not shifts:
        parts.append(_finding(flagged, "held-out real images"))
        if checks:
            smallest = min(c["p_value"] for c in checks.values())
            parts.append(f"Exchangeability check: no shift detected between the training "
                         f"images and {name} in any space (smallest combined p "
                         f"{_fmt(smallest)}).")
    else:
        confounded, flagged, basis = flagged, [], None
        parts.append(f"The exchangeability check finds the baseline {name} shifted from the "
                     "training images: "
                     + "; ".join(f"{s}: {describe_shift(c)}" for s, c in shifts.items())
                     + ". The tests against it are confounded by this shift, in either "
                       "direction, and are not read as evidence of a leak or of its absence"
                     + (f" (against it, these flag: {'; '.join(confounded)})" if confounded
                        else "") + ".")
        control_spaces = (control or {}).get("spaces") or {}
        if control_spaces and not _shifts(control_spaces):
            basis = "control"
            flagged, c_undecided, _ = _test_labels(control_spaces, f", against {control['set']}")
            undecided = c_undecided
            parts.append(f"The verdict rests on the control {control['set']} "
                         f"({control.get('role')}, exchangeable with the training images by "
                         "the same check). Against it: "
                         + _finding(flagged, "unseen real images drawn like them"))
        else:
            undecided = every
            if control_spaces:
                parts.append(f"The control {control['set']} is shifted from the training "
                             "images too: the audit cannot decide.")
            else:
                parts.append("No control drawn like the training images and unseen by the "
                             "generator is available: the audit cannot decide. Give one (a "
                             "validation split, --privacy-baseline reserve for a generator "
                             "trained without that part, or a manifest that splits patients).")
    if undecided and basis is not None:
        parts.append("Could not decide: " + "; ".join(undecided) + ".")
    if baseline:
        parts.append(f"Baseline: {name}, {baseline.get('role')}; {baseline.get('why')}.")
    text = " ".join(parts)
    return {"leak_suspected": bool(flagged), "flagged": flagged, "undecided": undecided,
            "text": text, "alpha": ALPHA, "rules": rules, "baseline": name,
            "exchangeable": not shifts if checks else None, "basis": basis,
            "confounded": confounded,
            "shift": {s: describe_shift(c) for s, c in shifts.items()}}


def metric_privacy(ctx: EvalContext) -> dict:
    name = ctx.extractor.name
    if ctx.train is None or (ctx.heldout is None and ctx.val is None):
        return {"privacy": unavailable(
            "needs the training split and held-out real images (a validation or test split)",
            extractor=name)}
    train = ctx.split_dataset("train")
    try:
        sets = choose_sets(ctx.options.privacy_baseline, train, ctx.split_dataset("val"),
                           ctx.split_dataset("heldout"), ctx.fake_images, ctx.options.seed)
    except ConfigError as exc:
        return {"privacy": unavailable(str(exc), extractor=name)}
    for message in sets.warnings:
        ctx.warn(message)
    if min(len(ctx.fake_images), len(sets.baseline.rows), len(sets.train.rows)) < 2:
        return {"privacy": unavailable(
            f"needs at least 2 synthetic, 2 training and 2 held-out images (baseline "
            f"{sets.baseline.label}: {len(sets.baseline.rows)} left)", extractor=name)}
    features = _spaces(ctx)
    spaces = {}
    for feats in features:
        space = feats.space(sets.train, sets.baseline)
        spaces[space.name] = {**audit_space(space, ctx),
                              "exchangeability": exchangeability_block(space, ctx)}
    control = _control(ctx, sets, features) if _shifts(spaces) else None
    baseline = {**sets.describe(), "control_available":
                None if sets.control is None else sets.control.label}
    train_ids = getattr(train, "patient_ids", None)
    held_ids = getattr(ctx.split_dataset(sets.baseline.source), "patient_ids", None)
    patients = {
        "known": train_ids is not None and held_ids is not None,
        "n_train_patients": None if train_ids is None else len(set(train_ids[sets.train.rows])),
        "n_heldout_patients": None if held_ids is None
        else len(set(held_ids[sets.baseline.rows])),
        "bootstrap": "patients" if held_ids is not None else "images",
        "same_patient_pairs": "excluded from held-out -> train distances; held-out images of "
                              "training patients are not used as non-members"
        if held_ids is not None else "unknown (no patient ids)",
    }
    block = {"verdict": verdict(spaces, baseline, control), "spaces": spaces,
             "baseline": baseline, "patients": patients, "extractor": name,
             "n_fake": len(ctx.fake_images), "n_train": len(sets.train.rows),
             "n_heldout": len(sets.baseline.rows)}
    if control is not None:
        block["control"] = control
    return {"privacy": block}


def _control(ctx: EvalContext, sets: PrivacySets, features: list[_SpaceFeatures]) -> dict:
    """The tests against the control set, when the baseline is shifted and a control exists
    with at least 2 images (else a block saying why there is none)."""
    if sets.control is None:
        return {"set": None, "reason": "no control drawn like the training images and unseen "
                                       "by the generator (no validation split)"}
    if len(sets.control.rows) < 2:
        return {**sets.control.describe(), "reason": "fewer than 2 images left"}
    spaces = {}
    for feats in features:
        space = feats.space(sets.train, sets.control)
        spaces[space.name] = {**audit_space(space, ctx, figures=False),
                              "exchangeability": exchangeability_block(space, ctx)}
    return {**sets.control.describe(), "spaces": spaces}
