"""The aggregated report: the results store -> ``index.html``, ``summary.md|csv|json``, ``claims.csv`` and
figure PNGs.

A pure reduction of stored results: nothing here trains or imports TensorFlow, so ``regimen report``
re-renders in seconds. The steps, one module each: :mod:`collect` reads the store, :mod:`reduce` does
the arithmetic, :mod:`figures` draws, :mod:`document` lays out the content, :mod:`render` writes text.
"""

from __future__ import annotations

import os

from jobs.report.collect import collect
from jobs.report.document import document
from jobs.report.figures import learning_curves
from jobs.report.reduce import Report, reduce
from jobs.report.render import claims_csv_text, csv_text, html, json_text, markdown
from jobs.store import Store

__all__ = ["Report", "build", "write_report"]


def build(store: Store) -> tuple[Report, dict[str, bytes]]:
    """The reduced report and each experiment's learning-curve PNG (experiments without curves have none)."""
    report = reduce(collect(store))
    figures = {s.name: png for s in report.experiments if (png := learning_curves(s)) is not None}
    return report, figures


def write_report(store: Store, out: str | os.PathLike) -> dict[str, str]:
    """Write every output into the folder or bucket ``out``, each file whole or not at all
    (:meth:`Store.write_bytes`); returns output name (``index.html``, ``figures/l1.png``) -> location."""
    report, figures = build(store)
    blocks = document(report, set(figures))
    outputs: dict[str, bytes] = {f"figures/{name}.png": png for name, png in figures.items()}
    outputs["summary.md"] = markdown(blocks).encode()
    outputs["summary.csv"] = csv_text(report).encode()
    outputs["claims.csv"] = claims_csv_text(report).encode()
    outputs["summary.json"] = json_text(report).encode()
    outputs["index.html"] = html(blocks, figures).encode()
    target = Store(os.fspath(out))
    for name, data in outputs.items():
        target.write_bytes(target.path(name), data)
    return {name: target.uri_of(name) for name in outputs}
