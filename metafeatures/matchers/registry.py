"""Name -> class registry of dataset matchers ("kmeans", "mlp", "moments"); holds classes, never state."""

from __future__ import annotations

from typing import Any

from metafeatures.errors import UnknownMatcherError
from metafeatures.matchers._base import BaseMatcher
from metafeatures.matchers.kmeans import KMeansVoteMatcher
from metafeatures.matchers.mlp import MLPVoteMatcher
from metafeatures.matchers.moments import MomentMLPMatcher

_REGISTRY: dict[str, type[BaseMatcher]] = {}


def register_matcher(name: str, cls: type[BaseMatcher]) -> type[BaseMatcher]:
    """Register matcher class ``cls`` under ``name`` so configs and saved files can refer to it by name."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"matcher name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseMatcher)):
        raise TypeError(f"a matcher must be a subclass of BaseMatcher, got {cls!r}")
    if name in _REGISTRY:
        raise ValueError(f"matcher name {name!r} is already registered (to {_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls
    return cls


def list_matchers() -> list[str]:
    """Names of all registered matchers, sorted."""
    return sorted(_REGISTRY)


def matcher_class(name: str) -> type[BaseMatcher]:
    """The class registered under ``name``; UnknownMatcherError (a ValueError) lists the known names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownMatcherError(str(name), list_matchers()) from None


def get_matcher(name: str, **params: Any) -> BaseMatcher:
    """A new, unfitted matcher of the class registered under ``name``, built with ``params``."""
    return matcher_class(name)(**params)


def matcher_name(matcher: BaseMatcher | type[BaseMatcher]) -> str:
    """The registered name of a matcher instance or class (the first one if registered twice)."""
    cls = matcher if isinstance(matcher, type) else type(matcher)
    for name, registered in _REGISTRY.items():
        if registered is cls:
            return name
    raise ValueError(f"{cls.__name__} is not a registered matcher; call register_matcher(name, cls) first")


register_matcher("kmeans", KMeansVoteMatcher)
register_matcher("mlp", MLPVoteMatcher)
register_matcher("moments", MomentMLPMatcher)
