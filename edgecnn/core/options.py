"""Frozen options objects: the defaults of a stage in one place, validated once, passed down whole.

A stage's options (``ExportOptions``, ``BenchmarkOptions``, ``TrainOptions``, ...) are a frozen
dataclass deriving from ``Options``. ``Cls.make(options, **overrides)`` is the library's door
(defaults, or a given object, with keyword overrides; an unknown name is refused with a
did-you-mean); ``Cls.from_cli(**flags)`` is the CLI's, after which errors name the flags the user
typed. ``check()`` holds the range and combination checks and runs when the object is made.
"""
from __future__ import annotations

import dataclasses

from edgecnn.errors import InvalidConfigError, did_you_mean


class Options:
    """Shared behaviour of the frozen options objects (export, benchmark, train, ...)."""

    def __post_init__(self):
        self.check()

    def check(self) -> None:  # overridden: range and combination checks
        pass

    @classmethod
    def make(cls, options=None, **overrides):
        """``options`` (or the defaults) with ``overrides`` applied; unknown names are refused."""
        base = options if options is not None else None
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InvalidConfigError(f"{cls.__name__}: no option {unknown[0]!r}.{did_you_mean(unknown[0], names)}")
        if base is None:
            return cls(**overrides)
        return dataclasses.replace(base, **overrides) if overrides else base

    @classmethod
    def from_cli(cls, **values):
        """Made from a command's flags: errors name the flags (``--max-drop``)."""
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_cli", True)
        names = {f.name for f in dataclasses.fields(cls)}
        cls.__init__(obj, **{k: v for k, v in values.items() if k in names})
        return obj

    def _bad(self, field: str, requirement: str):
        value = getattr(self, field)
        if getattr(self, "_cli", False):
            name = next((f.metadata.get("flag") for f in dataclasses.fields(self) if f.name == field), None)
            name = name or "--" + field.replace("_", "-")
            raise InvalidConfigError(f"{name} {value!r}: {requirement}.")
        raise InvalidConfigError(f"{field}={value!r}: {requirement}.")

    def _needs(self, field: str, other: str):
        flag = (lambda f: "--" + f.replace("_", "-")) if getattr(self, "_cli", False) else (lambda f: f)
        raise InvalidConfigError(f"{flag(field)} needs {flag(other)}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
