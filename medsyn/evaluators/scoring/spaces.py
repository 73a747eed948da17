"""Feature spaces by name, built with the evaluation settings each space declares in the
feature registry (``features/registry.py``): no name of a space is tested here."""

from __future__ import annotations

from collections.abc import Mapping

from medsyn.errors import ConfigError, DataError
from medsyn.evaluators.features import (
    FeatureExtractor,
    build_extractor,
    is_fitted,
    parse_extractor_names,
)
from medsyn.evaluators.features.sharding import built_by_main_first, shard_group


def space_settings(options, train=None, val=None, inception_weights=None,
                   extractor_weights=None) -> dict:
    """The settings spaces are built from (registry.py lists them), from an
    :class:`~medsyn.evaluators.metrics.EvalOptions` and the real splits at hand."""
    settings = {"use_cache": options.use_cache, "classifier_recipe": options.utility_recipe,
                "ssl_recipe": options.ssl_recipe, "inception_weights": inception_weights,
                "extractor_weights": extractor_weights}
    if train is not None:
        settings["train"] = train
        settings["val"] = val
    return settings


def build_spaces(extractor, extractor_options: Mapping | None, device,
                 settings: Mapping) -> dict[str, FeatureExtractor]:
    """``{space name: extractor}`` from a name, an extractor, a comma list, a sequence or a
    ``{space name: name or extractor}`` dict. Spaces given by name are built with the
    ``settings`` they declare; ``extractor_options`` go to every one of them and win."""
    if extractor is None:
        raise DataError("the chosen metrics need a feature extractor; pass extractor=...")
    if isinstance(extractor, Mapping):
        items = list(extractor.items())
    else:
        items = [extractor] if isinstance(extractor, FeatureExtractor) else \
            parse_extractor_names(extractor) if isinstance(extractor, str) else list(extractor)
        items = [(i.name if isinstance(i, FeatureExtractor) else str(i).strip(), i)
                 for i in items]
    if not items:
        raise ConfigError("no feature extractor given; name at least one (see list_extractors).")
    spaces: dict[str, FeatureExtractor] = {}
    for name, item in items:
        if isinstance(item, FeatureExtractor):
            ext = item
        else:
            item = parse_extractor_names([item])[0]
            # rank 0 first: it fits (a space fitted to the real data) or downloads the weights
            # into the library's cache; the other ranks then read them instead of racing it
            ext = built_by_main_first(lambda item=item: build_extractor(
                item, settings, device=device, **dict(extractor_options or {})))
        if name in spaces:
            raise ConfigError(f"feature space {name!r} is named twice; name each space once.")
        spaces[name] = ext
    return spaces


class FeatureSpaces:
    """The named spaces of a command run over several inputs: spaces that need no real data
    (Inception, pixels, wavelet) are built once, and :meth:`preload` builds them up front so
    that missing weights fail before anything slow; spaces fitted to the real training split
    (classifier, ssl, radiomics) are built once per training (and validation) split.

    ``settings``: as :func:`space_settings` without the splits; ``needed``: False when no
    chosen metric family reads features (then :meth:`get` returns None).
    """

    def __init__(self, names, device, settings: Mapping, needed: bool = True):
        self.names = parse_extractor_names(names)
        self.device, self.settings, self.needed = device, dict(settings), needed
        self.fitted_names = [n for n in self.names if is_fitted(n)]
        self._built: dict = {}

    def preload(self) -> None:
        if self.needed:
            for name in self.names:
                if name not in self.fitted_names:
                    self._fixed(name)

    def get(self, train, val) -> dict[str, FeatureExtractor] | None:
        """``{space name: extractor}`` in the order named (``None`` when no family needs one)."""
        if not self.needed:
            return None
        return {n: self._fitted(n, train, val) if n in self.fitted_names else self._fixed(n)
                for n in self.names}

    def fixed(self) -> FeatureExtractor:
        """The single space of an evaluation scored in one fixed space (super-resolution)."""
        return self._fixed(self.names[0])

    def _fixed(self, name):
        if name not in self._built:
            # every rank builds the spaces in the same order (preload, then get / fixed); rank
            # 0 downloads first, and the ranks compare the weights they ended up with
            self._built[name] = built_by_main_first(
                lambda: build_extractor(name, self.settings, device=self.device))
        return self._built[name]

    def _fitted(self, name, train, val):
        key = (name, train.fingerprint, None if val is None else val.fingerprint)
        if key not in self._built:
            # under torchrun rank 0 trains (and caches) a fitted network first, the others
            # read it: every rank then extracts with the very same weights
            if shard_group() is not None and not self.settings.get("use_cache", True):
                raise ConfigError(f"--extractor {name}: under torchrun the space fitted to the "
                                  "real training split reaches every rank through the cache; "
                                  "drop --no-cache (or evaluate in one process).")
            self._built[key] = built_by_main_first(lambda: build_extractor(
                name, {**self.settings, "train": train, "val": val}, device=self.device))
        return self._built[key]
