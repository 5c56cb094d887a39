"""Draws over a Random instance's ``random()``: the stdlib's choice(), sample() and randint() are
several times slower, and a document makes some fifty draws."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
Uniform = Callable[[], float]


def pick(r: Uniform, items: Sequence[T]) -> T:
    """One item, uniformly."""
    return items[int(r() * len(items))]


def between(r: Uniform, low: int, high: int) -> int:
    """An integer from low to high, both included, uniformly."""
    return low + int(r() * (high - low + 1))


def sample(r: Uniform, items: Sequence[T], k: int) -> list[T]:
    """k distinct items in random order (a partial Fisher-Yates shuffle)."""
    pool = list(items)
    n = len(pool)
    for i in range(min(k, n)):
        j = i + int(r() * (n - i))
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


def weighted(r: Uniform, items: Sequence[T], cum_weights: Sequence[int]) -> T:
    """One item, drawn with the given cumulative weights."""
    return items[bisect_right(cum_weights, r() * cum_weights[-1])]


def rank(section: tuple[str, int, tuple[str, ...]]) -> int:
    return section[1]


def clamp(value: float, low: int = 0, high: int = 100) -> int:
    return max(low, min(high, round(value)))
