"""How Regimen's messages write counts and errors, and suggest the option a user probably meant."""

from __future__ import annotations

import difflib


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: ``n`` and ``noun``, plural unless ``n`` is one (the nouns here add an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def first_line(text: str, limit: int = 200) -> str:
    """The first line of ``text`` that is not blank, cut to ``limit`` characters with an ellipsis."""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_line(error: BaseException, limit: int = 200) -> str:
    """``OSError: [Errno 28] No space left on device``: an error's type and its message's first line."""
    line = first_line(str(error), limit)
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


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
