"""Reduced curves -> PNG bytes: the seed's ``Visulaize`` plot, with a band of ± one std across seeds.

Uses matplotlib's object API on the Agg canvas, never pyplot: no global figure state, no GUI backend.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jobs.report import labels
from jobs.report.reduce import Curve, ExperimentSummary

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
SIZE = (7.0, 4.0)  # inches; at DPI this is 700 x 400 pixels
DPI = 100


def learning_curves(summary: ExperimentSummary) -> bytes | None:
    """Training (solid) and validation (dashed) headline metric per epoch, one colour per variant."""
    plotted = [v for v in summary.variants if v.train_curve or v.val_curve]
    if not plotted:
        return None
    figure = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, variant in enumerate(plotted):
        colour = COLOURS[i % len(COLOURS)]
        n = (variant.val_curve or variant.train_curve).n
        seeds = f", {n} seeds" if n > 1 else ""
        _draw(axes, variant.train_curve, colour, "-", f"{variant.name} training{seeds}")
        _draw(axes, variant.val_curve, colour, "--", f"{variant.name} validation{seeds}")
    metric = summary.headline_metric
    axes.set_title(f"{summary.title}: {labels.name(metric)}" + (" (SYNTHETIC data)" if summary.synthetic else ""))
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves = [c for v in plotted for c in (v.train_curve, v.val_curve) if c]
    if max(len(c.mean) for c in curves) == 1:  # else the locator, short of whole numbers, ticks 0.945 ... 1.05
        axes.set_xlim(0.5, 1.5)
        axes.set_xticks([1])
    axes.set_ylabel(f"{labels.name(metric)} ({labels.direction(metric)})")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _draw(axes, curve: Curve | None, colour: str, style: str, label: str) -> None:
    if curve is None:
        return
    epochs = range(1, len(curve.mean) + 1)
    if len(epochs) == 1:  # a line needs two points: one epoch (a smoke run's) is a marker, with its spread
        spread = curve.std if curve.n > 1 else None
        training = style == "-"
        axes.errorbar(
            epochs,
            curve.mean,
            yerr=spread,
            fmt="o" if training else "s",
            color=colour,
            label=label,
            markerfacecolor=colour if training else "none",
            capsize=3,
        )
        return
    axes.plot(epochs, curve.mean, style, color=colour, label=label, linewidth=1.5)
    if curve.n > 1:
        mean, std = np.array(curve.mean), np.array(curve.std)
        axes.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
