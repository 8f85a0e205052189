"""Collected runs -> the numbers a person reads: statistics across seeds, curves, verdicts. Pure arithmetic.

Only finished (``done``) runs contribute numbers; every other run is listed as a problem instead.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jobs.report import labels
from jobs.report.collect import Collected, ExperimentRuns, Run
from jobs.spec import FULL_PRECISION, Claim, Experiment
from jobs.words import count

#: One-sided 95% critical values of Student's t for 1..30 degrees of freedom; beyond 30 the df=30 value
#: is used, which is slightly conservative.
T_95 = (
    6.314,
    2.920,
    2.353,
    2.132,
    2.015,
    1.943,
    1.895,
    1.860,
    1.833,
    1.812,
    1.796,
    1.782,
    1.771,
    1.761,
    1.753,
    1.746,
    1.740,
    1.734,
    1.729,
    1.725,
    1.721,
    1.717,
    1.714,
    1.711,
    1.708,
    1.706,
    1.703,
    1.701,
    1.699,
    1.697,
)

RULE = (
    "A comparison claim (A lower/higher than B) is tested on the paired difference A - B of the test metric, "
    "one pair per seed (both variants trained with that seed): confirmed when a one-sided paired t-test at "
    "the 5% level says the difference goes the claimed way (t >= the critical value for n - 1 degrees of "
    "freedom), refuted when it says the difference goes the other way, inconclusive otherwise. With one "
    "seed there is no estimate of the noise, so the verdict is inconclusive (one seed: not a test) and says "
    "which way that seed went. A threshold claim (at least / at most) is confirmed when every seed meets "
    "the threshold, refuted when none does, inconclusive when the seeds split. An experiment is confirmed "
    "when every claim is, refuted when any claim is refuted, and inconclusive otherwise."
)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # sample standard deviation (n - 1); None with a single value
    n: int

    def text(self) -> str:
        return labels.pm(self.mean, self.std)


@dataclass(frozen=True)
class Curve:
    """A per-epoch metric across seeds; ``std`` is all zeros with one seed."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    n: int


@dataclass(frozen=True)
class VariantSummary:
    name: str
    description: str
    seeds_planned: int
    seeds_done: int
    params: int | None
    epochs: int  # what it trained for, after any --max-epochs cap
    requested_epochs: int
    batch_size: int
    test: dict[str, Stat]  # metric -> across seeds
    best_epoch: int | None  # 1-based epoch of the best mean validation value of the headline metric
    best_value: float | None
    gap: Stat | None  # validation - training of the headline metric at the last epoch
    training_s: Stat | None  # over every attempt that trained the job
    seconds_per_epoch: Stat | None
    devices: tuple[str, ...]
    seed_printed: dict[str, float]
    seed_printed_as: dict[str, str]
    train_curve: Curve | None
    val_curve: Curve | None

    @property
    def capped(self) -> bool:
        return self.epochs < self.requested_epochs


@dataclass(frozen=True)
class Verdict:
    claim: str
    metric: str
    kind: str  # "comparison" or "threshold"
    verdict: str  # "confirmed", "refuted" or "inconclusive"
    reason: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]  # per seed: the difference A - B, or A's value for a threshold
    agree: int  # seeds that went the claimed way
    mean: float | None = None
    std: float | None = None
    t_toward_claim: float | None = None  # positive where the paired difference goes the claimed way
    t_critical: float | None = None


@dataclass(frozen=True)
class ExperimentSummary:
    name: str
    title: str
    question: str
    spec_file: str
    dataset: str
    validation: str
    headline_metric: str
    synthetic: bool
    variants: tuple[VariantSummary, ...]
    verdicts: tuple[Verdict, ...]
    verdict: str  # all claims together: confirmed, refuted, inconclusive, or "no claim"
    answer: str
    error: str = ""  # the manifest could not be read; nothing else is filled in


@dataclass(frozen=True)
class Problem:
    """A job without a result, with every (experiment/variant/seed) that needed it."""

    job_id: str
    state: str
    error: str
    log_uri: str
    uses: tuple[str, ...]


@dataclass(frozen=True)
class DataSource:
    dataset: str
    source: str
    synthetic: bool
    train: int | None  # examples trained on
    test: int | None
    held_out: int | None = None  # training examples kept apart for validation


@dataclass(frozen=True)
class RunInfo:
    store_uri: str
    planned: tuple[str, ...]  # earliest and latest planning date
    trained: tuple[str, ...]  # first job started, last job finished
    environment: dict[str, tuple[str, ...]]  # e.g. "tensorflow" -> every version seen
    data: tuple[DataSource, ...]


@dataclass(frozen=True)
class Report:
    run: RunInfo
    experiments: tuple[ExperimentSummary, ...]
    problems: tuple[Problem, ...]
    synthetic: bool
    capped: tuple[str, ...]  # "overfitting/overfit: 5 of 150 epochs"
    rule: str = RULE


# ---------------------------------------------------------------- arithmetic


def stat(values: Sequence[float]) -> Stat | None:
    values = [float(v) for v in values]
    if not values:
        return None
    spread = len(values) > 1 and all(math.isfinite(v) for v in values)  # stdev raises on NaN and infinities
    return Stat(statistics.fmean(values), statistics.stdev(values) if spread else None, len(values))


def curve(histories: Sequence[dict], key: str) -> Curve | None:
    """Mean and std per epoch of ``key`` across histories, over the epochs every history has."""
    series = [h[key] for h in histories if h.get(key)]
    if not series:
        return None
    length = min(len(s) for s in series)
    values = np.array([s[:length] for s in series], dtype=float)
    std = values.std(axis=0, ddof=1) if len(series) > 1 else np.zeros(length)
    return Curve(tuple(values.mean(axis=0).tolist()), tuple(std.tolist()), len(series))


def best_epoch(values: Sequence[float], lower_is_better: bool) -> tuple[int, float] | None:
    """(1-based epoch, value) of the best finite value; the first one on ties."""
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return None
    value, index = min(finite, key=lambda p: (p[0] if lower_is_better else -p[0], p[1]))
    return index + 1, value


def generalisation_gap(history: dict, metric: str) -> float | None:
    """Validation minus training of ``metric`` at the last epoch both have."""
    train, val = history.get(metric) or [], history.get(f"val_{metric}") or []
    length = min(len(train), len(val))
    return float(val[length - 1]) - float(train[length - 1]) if length else None


def claim_text(claim: Claim) -> str:
    """The claim as a sentence, with the metric's reader-facing name (``Claim.sentence`` uses the key)."""
    what = f"test {labels.name(claim.metric)}"
    if claim.other is not None:
        return f"`{claim.variant}` has {'lower' if claim.lower_than else 'higher'} {what} than `{claim.other}`"
    if claim.at_least is not None:
        return f"`{claim.variant}` reaches {what} ≥ {claim.at_least:g}"
    return f"`{claim.variant}` keeps {what} ≤ {claim.at_most:g}"


def t_critical(n: int) -> float:
    """The one-sided 5% critical t for ``n`` >= 2 paired differences."""
    return T_95[min(n - 1, len(T_95)) - 1]


def compare(claim: Claim, a: dict[int, float], b: dict[int, float]) -> Verdict:
    """Verdict on ``claim.variant`` lower/higher than ``claim.other`` from the per-seed values of both."""
    seeds = tuple(sorted(set(a) & set(b)))
    diffs = tuple(a[s] - b[s] for s in seeds)
    sign = -1.0 if claim.lower_than else 1.0  # sign * diff > 0 goes the claimed way
    agree = sum(1 for d in diffs if sign * d > 0)
    base = {"claim": claim_text(claim), "metric": claim.metric, "kind": "comparison", "seeds": seeds, "values": diffs}
    if not diffs:
        return Verdict(**base, verdict="inconclusive", reason="no seed has both variants finished", agree=0)
    if len(diffs) == 1:
        went = "the claimed way" if agree else ("the other way" if diffs[0] != 0 else "neither way (no difference)")
        reason = f"one seed: not a test; that seed went {went} (difference {labels.num(diffs[0])})"
        return Verdict(**base, verdict="inconclusive", reason=reason, agree=agree, mean=diffs[0])
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    if std == 0:
        t = math.copysign(math.inf, sign * mean) if mean else 0.0
    else:
        t = sign * mean / (std / math.sqrt(len(diffs)))
    critical = t_critical(len(diffs))
    verdict = "confirmed" if t >= critical else "refuted" if t <= -critical else "inconclusive"
    reason = (
        f"difference {labels.pm(mean, std)} over {len(diffs)} seeds, {agree} of {len(diffs)} the claimed way; "
        f"t = {labels.num(t)} vs critical {critical:g}"
    )
    return Verdict(
        **base, verdict=verdict, reason=reason, agree=agree, mean=mean, std=std, t_toward_claim=t, t_critical=critical
    )


def threshold(claim: Claim, values: dict[int, float]) -> Verdict:
    """Verdict on ``claim.variant`` reaching ``at_least`` or staying ``at_most``, seed by seed."""
    seeds = tuple(sorted(values))
    per_seed = tuple(values[s] for s in seeds)
    if claim.at_least is not None:
        agree = sum(1 for v in per_seed if v >= claim.at_least)
    else:
        agree = sum(1 for v in per_seed if v <= claim.at_most)
    n = len(per_seed)
    s = stat(per_seed)
    base = {"claim": claim_text(claim), "metric": claim.metric, "kind": "threshold", "seeds": seeds}
    if not n:
        return Verdict(**base, values=(), verdict="inconclusive", reason="no seed finished", agree=0)
    verdict = "confirmed" if agree == n else "refuted" if agree == 0 else "inconclusive"
    reason = f"met by {agree} of {count(n, 'seed')} (value {s.text()})"
    return Verdict(**base, values=per_seed, verdict=verdict, reason=reason, agree=agree, mean=s.mean, std=s.std)


def combined(verdicts: Sequence[Verdict]) -> str:
    found = {v.verdict for v in verdicts}
    if not found:
        return "no claim"
    if found == {"confirmed"}:
        return "confirmed"
    return "refuted" if "refuted" in found else "inconclusive"


# ---------------------------------------------------------------- experiments


def values_by_seed(runs: Sequence[Run], variant: str, metric: str) -> dict[int, float]:
    """seed -> the test ``metric`` of each finished run of ``variant``."""
    found = {}
    for run in runs:
        value = run.result["test"].get(metric) if run.state == "done" and run.variant == variant else None
        if isinstance(value, (int, float)) and math.isfinite(value):  # no verdict rests on a NaN or infinity
            found[run.seed] = float(value)
    return found


def training_seconds(timings: dict) -> float:
    """A job's training time over every attempt; results stored before that was recorded (``training_s``)
    have only their last attempt's (``fit_s``)."""
    return timings.get("training_s", timings["fit_s"])


def summarise_variant(experiment: Experiment, runs: Sequence[Run], variant_name: str) -> VariantSummary:
    variant = experiment.variant(variant_name)
    training = experiment.resolved_training(variant)
    mine = [r for r in runs if r.variant == variant_name]
    done = [r for r in mine if r.state == "done"]
    results = [r.result for r in done]
    histories = [r.history for r in done if r.history]
    metric = experiment.headline_metric
    lower = labels.lower_is_better(metric)
    val_curve = curve(histories, f"val_{metric}")
    best = best_epoch(val_curve.mean, lower) if val_curve else None
    metrics = sorted({m for r in results for m in r["test"]}, key=_metric_order(experiment))
    first = results[0] if results else {}
    return VariantSummary(
        name=variant_name,
        description=variant.description,
        seeds_planned=len(mine),
        seeds_done=len(done),
        params=first.get("params"),
        epochs=int(first.get("epochs", training.epochs)),
        requested_epochs=training.epochs,  # this experiment's, whichever experiment's run trained the job
        batch_size=int(first.get("batch_size", training.batch_size)),
        test={m: stat(list(values_by_seed(done, variant_name, m).values())) for m in metrics},
        best_epoch=best[0] if best else None,
        best_value=best[1] if best else None,
        gap=stat([g for g in (generalisation_gap(h, metric) for h in histories) if g is not None]),
        training_s=stat([training_seconds(r["timings"]) for r in results if "fit_s" in r.get("timings", {})]),
        seconds_per_epoch=stat(
            [r["timings"]["seconds_per_epoch"] for r in results if "seconds_per_epoch" in r.get("timings", {})]
        ),
        devices=tuple(sorted({str(r.get("environment", {}).get("device", "?")) for r in results})),
        seed_printed=dict(variant.seed_printed),
        seed_printed_as=dict(variant.seed_printed_as),
        train_curve=curve(histories, metric),
        val_curve=val_curve,
    )


def _metric_order(experiment: Experiment):
    known = experiment.metric_names()
    return lambda m: (known.index(m) if m in known else len(known), m)


def judge(runs: Sequence[Run], claim: Claim) -> Verdict:
    mine = values_by_seed(runs, claim.variant, claim.metric)
    if claim.other is not None:
        return compare(claim, mine, values_by_seed(runs, claim.other, claim.metric))
    return threshold(claim, mine)


def answer(claim: Claim, variants: dict[str, VariantSummary], verdict: Verdict) -> str:
    """One sentence answering the question with the claim's numbers, ours beside the seed's."""
    mine = variants[claim.variant].test.get(claim.metric)
    if mine is None:
        return f"No result yet for `{claim.variant}`."
    what = f"test {labels.name(claim.metric)}"
    seed = variants[claim.variant].seed_printed.get(claim.metric)
    if claim.other is not None:
        theirs = variants[claim.other].test.get(claim.metric)
        if theirs is None:
            return f"No result yet for `{claim.other}`."
        prefix = "One seed, not a test" if len(verdict.values) == 1 else _YES_NO[verdict.verdict]
        text = f"{prefix}: `{claim.variant}` {what} {mine.text()} vs {theirs.text()} for `{claim.other}`"
        seed_other = variants[claim.other].seed_printed.get(claim.metric)
        if seed is not None and seed_other is not None:
            text += f" (the course printed {labels.printed(seed)} vs {labels.printed(seed_other)})"
        return text + (f"; {paired(verdict)}." if verdict.t_toward_claim is not None else ".")
    bound = f"≥ {claim.at_least:g}" if claim.at_least is not None else f"≤ {claim.at_most:g}"
    text = f"{_YES_NO[verdict.verdict]}: `{claim.variant}` {what} {mine.text()}, {bound} in {verdict.agree} of "
    text += count(len(verdict.values), "seed")
    if seed is not None:
        text += f" (the course printed {labels.printed(seed)})"
    return text + "."


def paired(verdict: Verdict) -> str:
    """How big a compared difference is and whether it stands out of the seed-to-seed noise, in words."""
    n, t, critical = len(verdict.values), verdict.t_toward_claim, verdict.t_critical
    size = f"{'lower' if verdict.mean < 0 else 'higher'} by {labels.pm(abs(verdict.mean), verdict.std)}"
    if verdict.mean == 0:
        size = "no different on average"
    noise = {
        "confirmed": f"more than noise (t = {labels.num(t)} ≥ {critical:g})",
        "refuted": f"more than noise, the other way (t = {labels.num(t)} ≤ −{critical:g})",
        "inconclusive": f"within noise (|t| = {labels.num(abs(t))} < {critical:g})",
    }[verdict.verdict]
    return f"paired per seed, {size}, the claimed way in {verdict.agree} of {n} seeds: {noise}"


_YES_NO = {"confirmed": "Yes", "refuted": "No", "inconclusive": "Inconclusive"}


def summarise_experiment(entry: ExperimentRuns) -> ExperimentSummary:
    experiment = entry.experiment
    if experiment is None:
        return ExperimentSummary(
            name=entry.name,
            title=entry.name,
            question="",
            spec_file="",
            dataset="",
            validation="",
            headline_metric="",
            synthetic=False,
            variants=(),
            verdicts=(),
            verdict="corrupt",
            answer="",
            error=entry.error,
        )
    variants = {v.name: summarise_variant(experiment, entry.runs, v.name) for v in experiment.variants}
    verdicts = tuple(judge(entry.runs, c) for c in experiment.claims)
    answers = [answer(c, variants, v) for c, v in zip(experiment.claims, verdicts, strict=True)]
    if not answers:
        metric = experiment.headline_metric
        answers = [
            "; ".join(
                f"`{v.name}` test {labels.name(metric)} {v.test[metric].text() if v.test[metric] else 'not finite'}"
                for v in variants.values()
                if metric in v.test
            )
            or "No results yet."
        ]
    synthetic = bool((entry.options or {}).get("synthetic")) or any(
        r.result.get("data", {}).get("synthetic") for r in entry.runs if r.state == "done"
    )
    validation = experiment.training.validation
    return ExperimentSummary(
        name=entry.name,
        title=experiment.title,
        question=experiment.question,
        spec_file=entry.spec_file,
        dataset=describe_dataset(experiment),
        validation="the test set" if validation == "test" else f"{validation.held_out:.0%} of the training set",
        headline_metric=experiment.headline_metric,
        synthetic=synthetic,
        variants=tuple(variants.values()),
        verdicts=verdicts,
        verdict=combined(verdicts),
        answer=" ".join(answers),
    )


def describe_dataset(experiment: Experiment) -> str:
    extra = experiment.dataset.model_dump(exclude={"name"})
    options = ", ".join(f"{k}={v}" for k, v in extra.items())
    return f"{experiment.dataset.name} ({options})" if options else experiment.dataset.name


# ---------------------------------------------------------------- the whole store


def problems(entries: Sequence[ExperimentRuns]) -> tuple[Problem, ...]:
    """Every job without a result, once, with all its uses; corrupt manifests as jobs without an id."""
    by_job: dict[str, tuple[Run, list[str]]] = {}
    found = []
    for entry in entries:
        if entry.experiment is None:
            found.append(Problem("", "corrupt", entry.error, "", (f"{entry.name} (manifest)",)))
        for run in entry.runs:
            if run.state != "done":
                by_job.setdefault(run.job_id, (run, []))[1].append(f"{entry.name}/{run.variant}/s{run.seed}")
    found += [Problem(r.job_id, r.state, r.error, r.log_uri, tuple(uses)) for r, uses in by_job.values()]
    return tuple(found)


def run_info(collected: Collected) -> RunInfo:
    entries = [e for e in collected.experiments if e.experiment is not None]
    done = [r for e in entries for r in e.runs if r.state == "done"]
    environment: dict[str, set[str]] = {}
    for run in done:
        # results stored before precision was selectable computed in float32
        for key, value in {"precision": FULL_PRECISION, **run.result.get("environment", {})}.items():
            environment.setdefault(key, set()).add(str(value))
    timings = [r.result.get("timings", {}) for r in done]
    started = sorted(t["started"] for t in timings if "started" in t)
    finished = sorted(t["finished"] for t in timings if "finished" in t)
    planned = sorted(e.planned for e in entries if e.planned)
    sources = set()
    for entry in entries:
        for run in entry.runs:
            if run.state == "done":
                data = run.result.get("data", {})
                sources.add(
                    DataSource(
                        describe_dataset(entry.experiment),
                        str(data.get("source", "?")),
                        bool(data.get("synthetic", False)),
                        data.get("train"),
                        data.get("test"),
                        data.get("held_out") or None,
                    )
                )
    return RunInfo(
        store_uri=collected.store_uri,
        planned=tuple(dict.fromkeys(planned[:1] + planned[-1:])),
        trained=(started[0], finished[-1]) if started and finished else (),
        environment={k: tuple(sorted(v)) for k, v in sorted(environment.items())},
        data=tuple(sorted(sources, key=lambda d: (d.dataset, d.source))),
    )


def capped(summaries: Sequence[ExperimentSummary], entries: Sequence[ExperimentRuns]) -> tuple[str, ...]:
    """Every variant trained for fewer epochs than its spec asks, found in results or in the run options."""
    found = []
    for summary, entry in zip(summaries, entries, strict=True):
        cap = (entry.options or {}).get("max_epochs")
        for v in summary.variants:
            epochs = min(v.epochs, cap or v.epochs)
            if epochs < v.requested_epochs:
                found.append(f"{summary.name}/{v.name}: {epochs} of {count(v.requested_epochs, 'epoch')}")
    return tuple(found)


def reduce(collected: Collected) -> Report:
    entries = collected.experiments
    summaries = tuple(summarise_experiment(e) for e in entries)
    info = run_info(collected)
    synthetic = any(s.synthetic for s in summaries) or any(d.synthetic for d in info.data)
    return Report(info, summaries, problems(entries), synthetic, capped(summaries, entries))
