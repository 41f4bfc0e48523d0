"""Overlap and repetition of texts, on lower-cased word n-grams (no model needed).

Words are runs of letters and digits (``\\w+``), lower-cased, so punctuation and spacing do
not count. Every measure is a share in [0, 1]:

- ``similarity(a, b)``: Jaccard overlap of the two texts' 4-gram sets (1 = the same text);
- ``copied_from(text, source)``: the share of ``text``'s 4-grams found in ``source`` (1 =
  every 4-gram of the text was already in the source);
- ``repetition(text)``: the share of ``text``'s 4-grams that repeat an earlier one (a text
  that loops on one sentence approaches 1).

Texts shorter than ``n`` words are compared by their word sequence instead (equal or not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

N = 4
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int = N) -> list[tuple[str, ...]]:
    w = words(text)
    if len(w) < n:
        return [tuple(w)] if w else []
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def ngram_set(texts: Iterable[str], n: int = N) -> set[tuple[str, ...]]:
    """Every n-gram of several texts (a source to test copying against)."""
    return {g for t in texts for g in ngrams(t, n)}


def similarity(a: str, b: str, n: int = N) -> float:
    sa, sb = set(ngrams(a, n)), set(ngrams(b, n))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def copied_from(text: str, source: str | set[tuple[str, ...]], n: int = N) -> float:
    grams = ngrams(text, n)
    if not grams:
        return 0.0
    pool = source if isinstance(source, set) else set(ngrams(source, n))
    return sum(g in pool for g in grams) / len(grams)


def repetition(text: str, n: int = N) -> float:
    grams = ngrams(text, n)
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)
