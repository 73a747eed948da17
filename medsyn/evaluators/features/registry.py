"""The registry of feature spaces: ``get_extractor(name)`` builds one by name."""

from __future__ import annotations

from collections.abc import Callable

from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor

_REGISTRY: dict[str, tuple[Callable[..., FeatureExtractor], str]] = {}


def register_extractor(name: str, factory: Callable[..., FeatureExtractor],
                       description: str = "", overwrite: bool = False) -> None:
    """Make ``get_extractor(name, **options)`` call ``factory(**options)``.

    ``factory`` receives ``device`` and any options the caller passes (``weights``, ...), and
    must accept (and may ignore) options it does not use (take ``**_``).
    """
    if not overwrite and name in _REGISTRY:
        raise ConfigError(f"feature extractor {name!r} is already registered.")
    _REGISTRY[name] = (factory, description)


def list_extractors() -> dict[str, str]:
    """Registered extractor names and their one-line descriptions."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def get_extractor(name: str, **options) -> FeatureExtractor:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; registered: "
                          f"{', '.join(sorted(_REGISTRY))}.")
    factory, _ = _REGISTRY[name]
    return factory(**options)
