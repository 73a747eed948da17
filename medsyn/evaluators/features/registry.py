"""The registry of feature spaces: ``get_extractor(name)`` builds one by name."""

from __future__ import annotations

from collections.abc import Callable

from medsyn.errors import ConfigError
from medsyn.evaluators.features.base import FeatureExtractor

_REGISTRY: dict[str, tuple[Callable[..., FeatureExtractor], str]] = {}
_FITTED: set[str] = set()


def register_extractor(name: str, factory: Callable[..., FeatureExtractor],
                       description: str = "", overwrite: bool = False,
                       fitted: bool = False) -> None:
    """Make ``get_extractor(name, **options)`` call ``factory(**options)``.

    ``factory`` receives ``device`` and any options the caller passes (``weights``, ...), and
    must accept (and may ignore) options it does not use (take ``**_``). ``fitted``: the space
    is fitted to the reference dataset's real training split (a network trained on it, or
    statistics of it), so the factory needs ``train=`` (and takes ``val=``, ``use_cache=``).
    """
    if not overwrite and name in _REGISTRY:
        raise ConfigError(f"feature extractor {name!r} is already registered.")
    _REGISTRY[name] = (factory, description)
    _FITTED.discard(name)
    if fitted:
        _FITTED.add(name)


def list_extractors() -> dict[str, str]:
    """Registered extractor names and their one-line descriptions."""
    return {name: desc for name, (_, desc) in _REGISTRY.items()}


def is_fitted(name: str) -> bool:
    """Whether the named space is fitted to the real training split (needs ``train=``)."""
    return name in _FITTED


def parse_extractor_names(names) -> list[str]:
    """``"inception,ssl"`` or a list of names -> the validated, de-duplicated list."""
    if isinstance(names, str):
        names = names.split(",")
    out = []
    for raw in names:
        name = str(raw).strip()
        if name and name not in out:
            out.append(name)
    unknown = [n for n in out if n not in _REGISTRY]
    if unknown or not out:
        raise ConfigError(f"unknown feature extractor(s) {', '.join(unknown) or '(none given)'}; "
                          f"registered: {', '.join(sorted(_REGISTRY))}.")
    return out


def get_extractor(name: str, **options) -> FeatureExtractor:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; registered: "
                          f"{', '.join(sorted(_REGISTRY))}.")
    factory, _ = _REGISTRY[name]
    return factory(**options)
