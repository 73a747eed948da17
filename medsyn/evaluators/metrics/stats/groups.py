"""Patient (subject) groups: resampling and splitting by patient instead of by image.

Images of one patient are correlated, so an interval that resamples images is too narrow and a
"real vs real" comparison between two halves that share patients is too close. When a dataset
carries ``patient_ids`` (medsyn.data.manifest), the evaluators resample and split patients;
without them every image is its own group and these reduce to the per-image versions.
"""

from __future__ import annotations

import numpy as np


class GroupResampler:
    """Bootstrap resamples of ``n`` items that draw whole groups with replacement."""

    def __init__(self, n: int, groups=None):
        self.n = int(n)
        self.grouped = groups is not None
        if groups is None:
            self.members = None
            return
        groups = np.asarray(groups)
        if groups.shape != (self.n,):
            raise ValueError(f"groups must have one entry per item ({self.n}), got {groups.shape}")
        _, codes = np.unique(groups, return_inverse=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        self.members = np.split(order, bounds)

    @property
    def n_groups(self) -> int:
        return self.n if self.members is None else len(self.members)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Indices of one resample (its size varies when groups differ in size)."""
        if self.members is None:
            return rng.integers(0, self.n, self.n)
        picks = rng.integers(0, len(self.members), len(self.members))
        return np.concatenate([self.members[i] for i in picks])


def disjoint_halves(rng: np.random.Generator, n: int, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of ``n`` items; with groups, no group has items in both halves.

    Without groups: a random permutation cut into ``n // 2`` and ``n // 2`` items (as before).
    With groups: groups in random order fill the first half until it holds about n / 2 items,
    the rest form the second half (sizes then differ by at most one group)."""
    if groups is None:
        perm = rng.permutation(n)
        return perm[: n // 2], perm[n // 2: 2 * (n // 2)]
    members = GroupResampler(n, groups).members
    if len(members) < 2:
        raise ValueError("two disjoint halves by patient need at least two patients")
    first, count = [], 0
    order = rng.permutation(len(members))
    for k, gi in enumerate(order):
        if count >= n / 2 or k == len(order) - 1:
            break
        first.append(gi)
        count += len(members[gi])
    chosen = set(first)
    a = np.sort(np.concatenate([members[g] for g in first]))
    b = np.sort(np.concatenate([members[g] for g in order if g not in chosen]))
    return a, b
