"""Text of every output: the document's blocks as Markdown and as self-contained HTML; the report as CSV, JSON."""

from __future__ import annotations

import base64
import csv
import dataclasses
import html as htmllib
import io
import json
import math
import re
from typing import get_args

from jobs.report import labels
from jobs.report.document import Banner, Block, Heading, Image, Items, Paragraph
from jobs.report.reduce import Report
from jobs.spec import Metric

# ---------------------------------------------------------------- Markdown


def markdown(blocks: list[Block]) -> str:
    return "\n\n".join(_markdown_block(b) for b in blocks) + "\n"


def _markdown_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_no_html(block.text)}"
    if isinstance(block, Paragraph):
        return _no_html(block.text)
    if isinstance(block, Banner):
        return f"> ⚠ {_no_html(block.text)}"
    if isinstance(block, Items):
        return "\n".join(f"- {_no_html(item)}" for item in block.items)
    if isinstance(block, Image):
        return f"![{_no_html(block.alt)}](figures/{block.name}.png)"
    # a Table
    lines = [_row(block.headers), _row(("---",) * len(block.headers))]
    return "\n".join(lines + [_row(r) for r in block.rows])


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_no_html(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _no_html(text: str) -> str:
    """``text`` with nothing a Markdown renderer would turn into markup the document did not write: every
    ``<`` that could open an HTML tag or autolink (a letter, ``/``, ``!`` or ``?`` after it) as ``&lt;``,
    code spans included (the document's own never hold one; a spec's text may, and a renderer's idea of
    where a code span ends is not ours to guess), and every link target but the document's ``#anchors``
    broken, so a spec's title or question shows as written. Comparisons such as ``t < 2.78``
    stay as they are."""
    return re.sub(r"\]\((?!#)", r"]\\(", re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text))


# ---------------------------------------------------------------- HTML

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f0f0f0; padding: 0 .2em; border-radius: 3px; font-size: 90%; overflow-wrap: anywhere; }
td:first-child code { overflow-wrap: normal; white-space: nowrap; }
.banner { background: #fff3cd; border: 2px solid #e0a800; padding: .8em 1em; margin: 1em 0; font-size: 16px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def html(blocks: list[Block], figures: dict[str, bytes]) -> str:
    """One file that opens offline: inline CSS, figures as base64 ``data:`` URIs, no script."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Regimen report")
    body = "\n".join(_html_block(b, figures) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{htmllib.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html_block(block: Block, figures: dict[str, bytes]) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{block.anchor}">{inline(block.text)}</h{block.level}>'
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Banner):
        return f'<div class="banner" role="alert">⚠ {inline(block.text)}</div>'
    if isinstance(block, Items):
        return "<ul>\n" + "\n".join(f"<li>{inline(i)}</li>" for i in block.items) + "\n</ul>"
    if isinstance(block, Image):
        data = base64.b64encode(figures[block.name]).decode()
        return f'<p><img src="data:image/png;base64,{data}" alt="{htmllib.escape(block.alt)}"></p>'
    # a Table
    head = "".join(f"<th>{inline(h)}</th>" for h in block.headers)
    rows = "\n".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def inline(text: str) -> str:
    """Escape ``text`` for HTML, then turn the document's ```code```, ``**bold**`` and links into tags."""
    parts = re.split(r"(`[^`]*`)", text)  # code spans first, so nothing inside them is touched
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{htmllib.escape(part[1:-1])}</code>")
            continue
        part = htmllib.escape(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"\[([^\]]+)\]\(#([\w-]+)\)", r'<a href="#\2">\1</a>', part)
        out.append(part)
    return "".join(out)


# ---------------------------------------------------------------- CSV and JSON

#: every metric a spec can track, in the CSV's column order
CSV_METRICS = ("loss", *get_args(Metric))


def csv_text(report: Report) -> str:
    """One row per (experiment, variant): the variant table plus the experiment's verdict, machine-readable."""
    metrics = list(CSV_METRICS)
    metrics += [m for m in report.metrics if m not in metrics]
    columns = [
        "experiment",
        "variant",
        "synthetic",
        "seeds_done",
        "seeds_planned",
        "params",
        "epochs",
        "requested_epochs",
        "batch_size",
        "headline_metric",
    ]
    for m in metrics:
        columns += [f"test_{m}_mean", f"test_{m}_std", f"seed_printed_{m}"]
    columns += [
        "best_val_epoch",
        "best_val_value",
        "gap_mean",
        "gap_std",
        "training_s_mean",
        "seconds_per_epoch_mean",
        "device",
        "experiment_verdict",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for s in report.experiments:
        for v in s.variants:
            row = {
                "experiment": s.name,
                "variant": v.name,
                "synthetic": s.synthetic,
                "seeds_done": v.seeds_done,
                "seeds_planned": v.seeds_planned,
                "params": v.params,
                "epochs": v.epochs,
                "requested_epochs": v.requested_epochs,
                "batch_size": v.batch_size,
                "headline_metric": s.headline_metric,
                "best_val_epoch": v.best_epoch,
                "best_val_value": v.best_value,
                "gap_mean": v.gap.mean if v.gap else None,
                "gap_std": v.gap.std if v.gap else None,
                "training_s_mean": v.training_s.mean if v.training_s else None,
                "seconds_per_epoch_mean": v.seconds_per_epoch.mean if v.seconds_per_epoch else None,
                "device": ";".join(v.devices),
                "experiment_verdict": s.verdict,
            }
            for m in metrics:
                stat = v.test.get(m)
                row[f"test_{m}_mean"] = stat.mean if stat else None
                row[f"test_{m}_std"] = stat.std if stat else None
                row[f"seed_printed_{m}"] = v.seed_printed.get(m)
            writer.writerow({k: _csv_value(x) for k, x in row.items()})
    return buffer.getvalue()


CLAIM_COLUMNS = (
    "experiment",
    "claim",
    "metric",
    "kind",
    "verdict",
    "synthetic",
    "epochs_capped",
    "seeds",
    "seeds_planned",
    "seeds_the_claimed_way",
    "per_seed",
    "mean",
    "std",
    "interval_90_low",
    "interval_90_high",
    "t_toward_claim",
    "t_critical",
    "p_toward_claim",
    "reason",
)


def claims_csv_text(report: Report) -> str:
    """One row per claim: its verdict, whether its experiment ran on SYNTHETIC data or capped epochs, and
    the numbers behind it. ``per_seed``, ``mean`` and ``std`` are of
    the paired difference A - B for a comparison, of A's value for a threshold; ``t_toward_claim`` is
    positive where the difference goes the claimed way (so a "lower than" claim with a negative mean has a
    positive t), and the test confirms the claim at ``t_critical`` or above, exactly when the 90% confidence
    interval of the mean difference (``interval_90_low`` to ``interval_90_high``) lies wholly on the claimed
    side, and ``p_toward_claim`` (the one-sided p-value the claimed way) is 0.05 or less; refutes it where
    that p is 0.95 or more (the verdict is still inconclusive where planned seeds have no result)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CLAIM_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for s in report.experiments:
        for v in s.verdicts:
            row = {"experiment": s.name, **{k: getattr(v, k) for k in ("claim", "metric", "kind", "verdict")}}
            row |= {"synthetic": s.synthetic, "epochs_capped": s.capped}
            row |= {"seeds": len(v.values), "seeds_planned": v.planned, "seeds_the_claimed_way": v.agree}
            row |= {"per_seed": " ".join(map(repr, v.values)), "mean": v.mean, "std": v.std}
            row |= dict(zip(("interval_90_low", "interval_90_high"), v.interval or (None, None), strict=True))
            row |= {k: getattr(v, k) for k in ("t_toward_claim", "t_critical", "p_toward_claim", "reason")}
            writer.writerow({k: _csv_value(x) for k, x in row.items()})
    return buffer.getvalue()


def _csv_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def json_text(report: Report) -> str:
    """The whole reduced report, strict JSON (NaN and infinities as null), with metric descriptions."""
    value = dataclasses.asdict(report)
    metrics = report.metrics
    value["metrics"] = {
        m: {"label": labels.name(m), "description": labels.describe(m), "lower_is_better": labels.lower_is_better(m)}
        for m in metrics
    }
    return json.dumps(_finite(value), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
