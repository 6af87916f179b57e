"""Solver configurations: one frozen dataclass per method, holding every parameter and its default.

A config's fields are the only place a method's defaults are declared: task presets (``hrdis.tasks``)
are sets of overrides checked against them, the CLI, ``bench`` and ``ablate`` build configs through
``SolverConfig.build``, and a parameter a method does not take is a one-line error.

Each config also names the settings that reproduce its method's reference code (``OFFICIAL``): the
*official* variant, the code behind the HRDIS paper's tables (deng-ai-lab/HRDIS, a fork of NVlabs/RED-diff).
Methods whose own authors published code also name the settings that reproduce that code (``AUTHORS``):
the *authors* variant (DPS, DMPlug, DAPS). Every entry of either is an ordinary field, so each difference
can be set on its own.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

VARIANTS = ("default", "official", "authors")


@dataclass(frozen=True)
class SolverConfig:
    """Base of every method's config. ``OFFICIAL``, ``AUTHORS``: the field values of the official and the
    authors' variants (empty: that variant is the default)."""

    OFFICIAL: ClassVar[dict[str, Any]] = {}
    # Which code the official variant reproduces (for docs and errors).
    OFFICIAL_SOURCE: ClassVar[str] = ""
    AUTHORS: ClassVar[dict[str, Any]] = {}
    AUTHORS_SOURCE: ClassVar[str] = ""
    # Fields whose defaults define the method, so a task's preset does not change them (RED-diff's 1000
    # steps and beta = 1 stay RED-diff's on every task).
    DEFINING: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_names(cls, method: str, params: dict) -> None:
        """A one-line error naming the first parameter ``method`` does not take, and the closest it does."""
        names = cls.names()
        for key in params:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                takes = f"its parameters: {', '.join(names)}" if names else "it takes none"
                raise ValueError(f"method {method} takes no parameter {key!r}{hint}; {takes}")

    @classmethod
    def build(cls, method: str, params: dict, variant: str = "default", preset: dict | None = None) -> "SolverConfig":
        """The config of ``method``: its defaults, then a task's ``preset`` (except the ``DEFINING`` fields),
        then the variant's fields (``OFFICIAL`` or ``AUTHORS``), then ``params``, each over the last."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        preset = {k: v for k, v in (preset or {}).items() if k not in cls.DEFINING}
        cls.check_names(method, preset)
        cls.check_names(method, params)
        fields = {"default": {}, "official": cls.OFFICIAL, "authors": cls.AUTHORS}[variant]
        return cls(**{**preset, **fields, **params})

    def replace(self, **changes) -> "SolverConfig":
        type(self).check_names(type(self).__name__, changes)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
