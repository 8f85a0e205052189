"""What each metric is called, measured in and which way is better, so every table and figure says the same."""

from __future__ import annotations

import math

from jobs.spec import LOWER_IS_BETTER

#: metric -> (name a reader sees, unit)
METRICS = {
    "loss": ("loss", "the training objective, nats, including any L1/L2 penalty"),
    "accuracy": ("accuracy", "fraction of examples classified correctly, 0 to 1"),
    "binary_crossentropy": ("binary cross-entropy", "nats per example"),
    "sparse_categorical_crossentropy": ("categorical cross-entropy", "nats per example"),
}


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def name(metric: str) -> str:
    return METRICS.get(metric, (metric.replace("_", " "), ""))[0]


def direction(metric: str) -> str:
    return "lower is better" if lower_is_better(metric) else "higher is better"


def describe(metric: str) -> str:
    """``binary cross-entropy (nats per example; lower is better)``."""
    unit = METRICS.get(metric, ("", ""))[1]
    return f"{name(metric)} ({unit}; {direction(metric)})" if unit else f"{name(metric)} ({direction(metric)})"


def seed_note(metric: str, printed_as: str | None) -> str:
    """A warning to print beside a number that the course's script printed under another metric's label."""
    return f'the course printed this {name(metric)} under the label "{printed_as}"' if printed_as else ""


def decimals(value: float) -> int:
    """Decimal places that show ``value`` to four significant digits."""
    if not math.isfinite(value) or value == 0:
        return 4
    return min(8, max(0, 3 - math.floor(math.log10(abs(value)))))


def num(value: float | None) -> str:
    """A number as the report prints it: four significant digits, ``-`` when there is none."""
    if value is None:
        return "-"
    if math.isfinite(value) and value != 0 and not 1e-6 <= abs(value) < 1e7:
        return f"{value:.3e}"
    return f"{value:.{decimals(value)}f}"


def pm(mean: float, std: float | None) -> str:
    """``0.4283 ± 0.0100``: the mean to four significant digits, the std to the same decimal places, so that
    the two line up; the mean alone when there is no spread to show (one seed)."""
    if std is None:
        return num(mean)
    if not (math.isfinite(mean) and math.isfinite(std)) or not 1e-6 <= abs(mean) < 1e7:
        return f"{num(mean)} ± {num(std)}"
    return f"{num(mean)} ± {std:.{decimals(mean)}f}"


def p_value(p: float) -> str:
    """A p-value to two significant digits, ``< 0.001`` below that."""
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def printed(value: float) -> str:
    """A number the course's script printed, as it printed it (up to four significant digits, no padding)."""
    return f"{value:.4g}"


def seconds(mean: float, std: float | None = None) -> str:
    """A duration to a tenth of a second above ten seconds, to a hundredth below."""
    places = 1 if abs(mean) >= 10 else 2
    return f"{mean:.{places}f} s" if std is None else f"{mean:.{places}f} ± {std:.{places}f} s"
