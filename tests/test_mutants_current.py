"""The hand-written mutants of tests/mutants.py still point at code that exists: a refactor that
moves a mechanism must move its mutant with it (three QMIX mutants went stale unnoticed when the
QMIX value blocks moved to methods/marl/value/value_blocks.py)."""

from __future__ import annotations

from conftest import REPO
from mutants import MUTANTS


def test_every_mutant_finds_its_snippet_exactly_once():
    stale = [f"{m.name} ({m.path})" for m in MUTANTS if (REPO / m.path).read_text(encoding="utf-8").count(m.old) != 1]
    assert not stale, "update tests/mutants.py: " + "; ".join(stale)
