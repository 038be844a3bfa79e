"""Declarative value constraints of a method's Config fields.

A Config class lists its constraints in a ``CONSTRAINTS`` table (field name -> :class:`Bound`);
tables add up along the class hierarchy, so a subclass that changes a default (``lr: float =
1e-4``) keeps its parent's constraint on ``lr``. Every numeric field must also be finite.

Why a table rather than checks in ``__post_init__``: the pipeline checks each value where the
config sets it and names that place (``experiments.X.overrides.tb.lr: must be > 0``), before any
job runs; ``__post_init__`` applies the same table, so a notebook's ``Config(lr=-1)`` fails too.
Checks that relate several fields (``num_elites < population_size``) stay in ``__post_init__``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Bound:
    """An interval (``lo``/``hi``, open or closed; None = unbounded) or a set of choices."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (None if nothing). Types are checked elsewhere: a value
        of another type is not this check's business."""
        if self.choices:
            return None if value in self.choices else f"must be one of {list(self.choices)} (got {value!r})"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if not (below or above):
            return None
        if self.lo is not None and self.hi is not None:
            return (
                f"must be in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}"
                f"{')' if self.hi_open else ']'} (got {value!r})"
            )
        if below:
            return f"must be {'>' if self.lo_open else '>='} {_num(self.lo)} (got {value!r})"
        return f"must be {'<' if self.hi_open else '<='} {_num(self.hi)} (got {value!r})"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def positive() -> Bound:
    """> 0: learning rates, temperatures, exponents."""
    return Bound(lo=0, lo_open=True)


def at_least(n: float) -> Bound:
    """>= n: sizes and counts (n = 1), or counts where 0 means "off" (n = 0)."""
    return Bound(lo=n)


def at_most(n: float) -> Bound:
    return Bound(hi=n)


def within(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Bound:
    """An interval; ``within(0, 1)`` for probabilities, fractions and discount factors."""
    return Bound(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


def one_of(*choices: Any) -> Bound:
    return Bound(choices=tuple(choices))


class Constrained:
    """Mixin of the Config base classes: the merged constraint table and the checks."""

    CONSTRAINTS: ClassVar[dict[str, Bound]] = {}

    @classmethod
    def constraints(cls) -> dict[str, Bound]:
        """Field -> Bound, merged along the MRO (a subclass's entry wins)."""
        merged: dict[str, Bound] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("CONSTRAINTS", {}))
        return merged

    @classmethod
    def value_problem(cls, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` as field ``name`` (None if nothing)."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be finite (got {value!r})"
        bound = cls.constraints().get(name)
        return bound.problem(value) if bound is not None else None

    def check_values(self) -> None:
        """Raise ValueError naming the first field whose value breaks its constraint."""
        for f in fields(self):  # type: ignore[arg-type]  (mixed into dataclasses only)
            problem = self.value_problem(f.name, getattr(self, f.name))
            if problem is not None:
                raise ValueError(f"{f.name}: {problem}")
