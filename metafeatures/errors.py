"""Exceptions raised by metafeatures: each says what failed and carries the offending value."""

from __future__ import annotations

from pathlib import Path


class MetarecError(Exception):
    """Base class of every error metarec raises on purpose (the CLI prints these without a traceback)."""


class DatasetError(MetarecError):
    """A dataset could not be read or is not usable; ``path`` names the file or folder at fault."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnreadableImageError(DatasetError):
    """An image file is empty, truncated, corrupt, or too large to decode safely."""


class UnreadableClipError(UnreadableImageError):
    """A video clip is unreadable, has zero frames, or mixes frame sizes (skipped like an unreadable image)."""


class UnsupportedFileError(DatasetError):
    """A file has an extension metarec does not read as an image."""


class EmptyDatasetError(DatasetError):
    """A dataset has no readable images."""


class SingleClassError(DatasetError):
    """A dataset has fewer than two classes, so it cannot be a classification task."""


class ManifestError(DatasetError):
    """A CSV manifest is malformed or points outside the dataset root."""


class NpzFormatError(DatasetError):
    """A ``.npz`` dataset lacks ``x``/``y`` or has the wrong shapes or dtypes."""


class DatasetFetchError(MetarecError):
    """A public dataset could not be downloaded or converted (typically: no internet)."""


class WeightsNotFoundError(MetarecError):
    """Pretrained weights were asked for but the file is not where metarec looks for it."""


class ArtifactError(MetarecError):
    """A saved artifact (fingerprints, matcher) is malformed or has an unsupported format version."""


class SpecMismatchError(ArtifactError):
    """Two things made under different fingerprint specs were about to be compared."""

    def __init__(self, expected: dict, got: dict) -> None:
        self.expected = expected
        self.got = got
        diff = sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))
        super().__init__(
            "fingerprint spec mismatch in field(s) "
            + ", ".join(f"{k}: expected {expected.get(k)!r}, got {got.get(k)!r}" for k in diff)
        )


class NotFittedMatcherError(MetarecError):
    """A matcher was used before ``fit``."""


class UnknownMatcherError(MetarecError, ValueError):
    """A matcher name is not registered; ``known`` lists the names that are."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(f"unknown matcher {name!r}; known matchers: {', '.join(self.known) or '(none)'}")


class OutputExistsError(MetarecError):
    """An output file or folder already holds data and overwriting was not asked for."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(MetarecError):
    """A configuration value is invalid; ``field`` names the setting, ``value`` the offending input."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{field}={value!r}: {problem}")
