"""How Regimen's messages write counts and suggest the option a user probably meant."""

from __future__ import annotations

import difflib


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: ``n`` and ``noun``, plural unless ``n`` is one (the nouns here add an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``options`` (case aside: ``ReLU`` is
    ``relu``), or else a good part of the start of just one (``acc``; not ``gpu`` for ``gpu_memory_mb``),
    else an empty string."""
    by_lower = {str(o).lower(): str(o) for o in options}
    word = str(word).lower()
    close = difflib.get_close_matches(word, list(by_lower), n=1, cutoff=0.6)
    starting = [lower for lower in by_lower if lower.startswith(word) and 3 * len(word) >= len(lower)]
    found = close or (starting if len(starting) == 1 else [])
    return f" (did you mean '{by_lower[found[0]]}'?)" if found else ""
