"""The reduced report -> one document as a list of blocks, which render.py writes as Markdown and as HTML.

Building the content once keeps ``summary.md`` and ``index.html`` saying the same thing. Text in blocks
may use three bits of inline markup that both outputs understand: ```code```, ``**bold**`` and
``[text](#anchor)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobs.report import labels
from jobs.report.reduce import ExperimentSummary, Problem, Report, RunInfo, VariantSummary, Verdict
from jobs.spec import FULL_PRECISION
from jobs.words import count, first_line

VERSION_KEYS = ("python", "backend", "tensorflow", "jax", "keras", "ray", "numpy")
#: the dtype policy a job's model was built with: the run section says it apart from versions and hardware
PRECISION_KEY = "precision"
#: which worker process ran each job: in summary.json, not in the run's hardware line
PROCESS_KEYS = ("pid", "jobs_in_process")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str

    @property
    def anchor(self) -> str:
        return slug(self.text)


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Banner:
    """A warning that must not be missed: synthetic data, capped epochs."""

    text: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    name: str  # the figure's name: figures/<name>.png
    alt: str


Block = Heading | Paragraph | Banner | Items | Table | Image


def slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading, so that links work in both outputs."""
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def arrow(metric: str) -> str:
    return "↓" if labels.lower_is_better(metric) else "↑"


def document(report: Report, figures: set[str]) -> list[Block]:
    """Every block of the report; ``figures`` names the experiments that have a learning-curve figure."""
    blocks: list[Block] = [Heading(1, "Regimen report")]
    blocks += banners(report)
    blocks += overview(report)
    blocks += run(report.run)
    blocks += problems(report.problems)
    for summary in report.experiments:
        blocks += experiment(summary, summary.name in figures)
    return blocks


def banners(report: Report) -> list[Block]:
    found: list[Block] = []
    readable = [s for s in report.experiments if not s.error]
    synthetic = [s.name for s in readable if s.synthetic]
    if report.synthetic and synthetic and len(synthetic) < len(readable):
        found.append(
            Banner(
                f"**SYNTHETIC DATA.** {len(synthetic)} of the {len(readable)} experiments here come from "
                f"generated data with the real shapes, not from the real datasets: {', '.join(synthetic)}. Their "
                "results show that the pipeline works and say nothing about the techniques."
            )
        )
    elif report.synthetic:
        found.append(
            Banner(
                "**SYNTHETIC DATA.** These results come from generated data with the real shapes, not from the "
                "real datasets: they show that the pipeline works and say nothing about the techniques."
            )
        )
    if report.capped:
        found.append(
            Banner(
                "**EPOCHS CAPPED.** Some variants trained for fewer epochs than their spec asks (--max-epochs), "
                "so they are not the experiments their specs describe: " + "; ".join(report.capped) + "."
            )
        )
    reduced = [p for p in report.run.environment.get(PRECISION_KEY, ()) if p != FULL_PRECISION]
    if reduced:
        found.append(
            Banner(
                f"**REDUCED PRECISION.** Some jobs computed their layers in {', '.join(reduced)}, not in float32 "
                "(the default): faster where the hardware multiplies bfloat16 natively, but rounded "
                "differently, so compare their numbers with float32 runs only within seed-to-seed noise."
            )
        )
    return found


def overview(report: Report) -> list[Block]:
    rows = []
    # beside real results, each synthetic verdict is marked (the banner names them; it covers an all-synthetic report)
    mixed = len({s.synthetic for s in report.experiments if not s.error}) > 1
    for summary in report.experiments:
        title = summary.title or summary.name
        link = f"[{title}](#{slug(heading_text(summary))})"
        if summary.error:
            rows.append((link, "", f"manifest unreadable: {summary.error}", "**corrupt**"))
        else:
            synthetic = " (SYNTHETIC data)" if mixed and summary.synthetic else ""
            capped = " (epochs capped)" if summary.capped else ""
            rows.append((link, summary.question, summary.answer, f"**{summary.verdict}**{synthetic}{capped}"))
    metrics = report.metrics
    printed = any(v.seed_printed for s in report.experiments for v in s.variants)
    return [
        Heading(2, "Overview"),
        Table(("experiment", "question", "answer (mean ± std across seeds)", "verdict"), tuple(rows)),
        Paragraph(f"**How verdicts are decided.** {report.rule}"),
        *((Paragraph(f"**Many claims at once.** {report.many_claims}"),) if report.many_claims else ()),
        Paragraph(
            "**Metrics.** "
            + "; ".join(f"{labels.describe(m)} {arrow(m)}" for m in metrics)
            + ". Test metrics come from `evaluate` on the test set after the last epoch."
            + (
                " Numbers the course's own scripts printed (the seed document) are shown beside ours, under the "
                "metric they measure."
                if printed
                else ""
            )
        ),
    ]


def run(info: RunInfo) -> list[Block]:
    env = info.environment
    items = [f"Results: `{info.store_uri}`"]
    if info.planned:
        items.append("Planned: " + " to ".join(info.planned))
    if info.trained:
        items.append("Trained: " + " to ".join(info.trained))
    versions = [f"{k} {', '.join(env[k])}" for k in VERSION_KEYS if k in env]
    if versions:
        items.append("Versions: " + "; ".join(versions))
    if PRECISION_KEY in env:
        items.append("Precision: " + ", ".join(env[PRECISION_KEY]))
    shown_elsewhere = (*VERSION_KEYS, PRECISION_KEY, *PROCESS_KEYS)
    hardware = [f"{k}: {', '.join(v)}" for k, v in env.items() if k not in shown_elsewhere]
    if hardware:
        items.append("Hardware: " + "; ".join(hardware))
    for data in info.data:
        held_out = f" + {data.held_out} held out for validation" if data.held_out else ""
        sizes = f", {data.train} train{held_out} / {data.test} test examples" if data.train is not None else ""
        kind = "**SYNTHETIC**" if data.synthetic else "real"
        items.append(f"Data {data.dataset}: {kind}, from `{data.source}`{sizes}")
    return [Heading(2, "Run"), Items(tuple(items))]


def problems(found: tuple[Problem, ...]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Failed or missing jobs")]
    if not found:
        return [*blocks, Paragraph("None: every planned job finished.")]
    rows = tuple(
        (
            f"`{p.job_id}`" if p.job_id else "-",
            ", ".join(p.uses),
            f"**{p.state}**",
            first_line(p.error),
            f"`{p.log_uri}`" if p.log_uri else "-",
        )
        for p in found
    )
    return [
        *blocks,
        Paragraph(f"No result for {count(len(found), 'job')}; their numbers are left out below."),
        Table(("job", "used by", "state", "detail", "log"), rows),
    ]


def heading_text(summary: ExperimentSummary) -> str:
    return f"{summary.name}: {summary.title}" if summary.title != summary.name else summary.name


def experiment(summary: ExperimentSummary, has_figure: bool) -> list[Block]:
    blocks: list[Block] = [Heading(2, heading_text(summary))]
    if summary.error:
        return [*blocks, Paragraph(f"**Manifest unreadable**: {summary.error}")]
    metric = summary.headline_metric
    blocks.append(
        Paragraph(
            f"**Question.** {summary.question} **Answer.** {summary.answer} "
            f"Spec `{summary.spec_file}`; data {summary.dataset}"
            + (" (**SYNTHETIC**)" if summary.synthetic else "")
            + f"; validation on {summary.validation}; headline metric {labels.describe(metric)}."
        )
    )
    if has_figure:
        blocks.append(Image(summary.name, f"{summary.title}: learning curves of {labels.name(metric)}"))
        blocks.append(
            Paragraph(
                f"Training (solid) and validation (dashed; on {summary.validation}) {labels.name(metric)} per "
                "epoch, mean across seeds with a band of ± one standard deviation."
            )
        )
    blocks.append(variant_table(summary))
    notes = [
        f"`{v.name}` {labels.name(m)} {labels.printed(x)}: {labels.seed_note(m, v.seed_printed_as.get(m))}."
        for v in summary.variants
        for m, x in v.seed_printed.items()
        if m in v.seed_printed_as
    ]
    if notes:
        blocks.append(Paragraph("**Course labels.** " + " ".join(notes)))
    if summary.notes:
        left_out = [note.removeprefix(f"{summary.name}: ") for note in summary.notes]  # under its own heading
        blocks.append(Paragraph("**Left out.** " + " ".join(f"{note[:1].upper()}{note[1:]}." for note in left_out)))
    if summary.verdicts:
        blocks.append(Heading(3, f"Claims of {summary.name}"))
        blocks.append(Items(tuple(_claim(v) for v in summary.verdicts)))
    return blocks


def variant_table(summary: ExperimentSummary) -> Table:
    metric = summary.headline_metric
    metrics = list(dict.fromkeys(m for v in summary.variants for m in v.test))
    printed = any(v.seed_printed for v in summary.variants)  # the course's numbers; a user's study has none
    headers = (
        "variant",
        "parameters",
        "epochs",
        "batch size",
        "seeds",
        *(f"test {labels.name(m)} {arrow(m)}" for m in metrics),
        *(("course printed",) if printed else ()),
        f"best validation epoch ({labels.name(metric)})",
        f"gap: validation − training {labels.name(metric)} at the end",
        "training time",
        "device",
    )
    rows = tuple(_variant_row(v, metrics, printed) for v in summary.variants)
    return Table(headers, rows)


def _variant_row(v: VariantSummary, metrics: list[str], course_printed: bool) -> tuple[str, ...]:
    epochs = f"**{v.epochs} of {v.requested_epochs} (capped)**" if v.capped else str(v.epochs)
    seeds = str(v.seeds_done) if v.seeds_done == v.seeds_planned else f"{v.seeds_done} of {v.seeds_planned}"
    tests = tuple(_test_cell(v, m) for m in metrics)
    printed = ", ".join(f"{labels.name(m)} {labels.printed(x)}" for m, x in v.seed_printed.items()) or "-"
    best = f"{v.best_epoch} ({labels.num(v.best_value)})" if v.best_epoch else "-"
    time = labels.seconds(v.training_s.mean, v.training_s.std) if v.training_s else "-"
    if v.seconds_per_epoch:
        time += f" ({labels.seconds(v.seconds_per_epoch.mean)}/epoch)"
    return (
        f"`{v.name}`",
        f"{v.params:,}" if v.params is not None else "-",
        epochs,
        str(v.batch_size),
        seeds,
        *tests,
        *((printed,) if course_printed else ()),
        best,
        v.gap.text() if v.gap else "-",
        time,
        ", ".join(v.devices) or "-",
    )


def _test_cell(v: VariantSummary, metric: str) -> str:
    """A test metric across seeds, with its count where a finished seed has no finite value for it."""
    found = v.test.get(metric)
    if found is None:
        return "-"
    return found.text() + (f" (n = {found.n})" if found.n < v.seeds_done else "")


def _claim(verdict: Verdict) -> str:
    text = f"{verdict.claim}: **{verdict.verdict}**: {verdict.reason}."
    if verdict.values:
        what = "difference" if verdict.kind == "comparison" else "value"
        per_seed = ", ".join(f"seed {s}: {labels.num(x)}" for s, x in zip(verdict.seeds, verdict.values, strict=True))
        text += f" Per-seed {what}: {per_seed}."
    return text
