"""Collected runs -> the numbers a person reads: statistics across seeds, curves, verdicts. Pure arithmetic.

Only finished (``done``) runs contribute numbers; every other run is listed as a problem instead.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from jobs.plan import capped_epochs
from jobs.report import labels
from jobs.report.collect import Collected, ExperimentRuns, Run
from jobs.spec import FULL_PRECISION, Claim, Experiment
from jobs.words import count, first_line

#: Each verdict's significance level, one-sided: confirmed or refuted by chance alone in 5% of claims each
#: way, so the interval that agrees with the verdicts is the 90% confidence interval of the mean difference.
LEVEL = 0.05

NO_NOISE = "no seed-to-seed noise to test it against (do the seeds train differently?)"

RULE = (
    "A comparison claim (A lower/higher than B) is tested on the paired difference A - B of the test metric, "
    "one pair per seed (both variants trained with that seed): confirmed when a one-sided paired t-test at "
    "the 5% level says the difference goes the claimed way (t >= the critical value for n - 1 degrees of "
    "freedom; each claim gives its one-sided p-value too), refuted when it says the difference goes the other "
    "way, inconclusive otherwise. How much it "
    "differs is the mean difference with its 90% confidence interval, the interval that agrees with the "
    "test: it lies wholly on the claimed side exactly when the test confirms the claim. Where every seed "
    "gives the same difference there is no noise to test against, and the verdict is inconclusive. A "
    "threshold claim (at least / at most) is confirmed when every seed meets the threshold, refuted when none "
    "does, inconclusive when the seeds split. With one seed there is no estimate of the noise, so every claim "
    "is inconclusive (one seed: not a test) and says which way that seed went; `--seeds N` trains N. A claim "
    "whose planned seeds did not all finish (failed, diverged, not yet run) is inconclusive, and says what "
    "the finished seeds alone show. An experiment is confirmed when every claim is, refuted when any claim "
    "is refuted, and inconclusive otherwise."
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
    seeds: tuple[int, ...]  # the finished seeds the verdict rests on (of both variants, for a comparison)
    values: tuple[float, ...]  # per seed: the difference A - B, or A's value for a threshold
    agree: int  # seeds that went the claimed way
    mean: float | None = None
    std: float | None = None
    t_toward_claim: float | None = None  # positive where the paired difference goes the claimed way
    t_critical: float | None = None
    p_toward_claim: float | None = None  # one-sided p-value: the chance of t this far the claimed way by noise alone
    interval: tuple[float, float] | None = None  # 90% confidence interval of the mean difference A - B
    a: Stat | None = None  # A's test metric over ``seeds``
    b: Stat | None = None  # B's, for a comparison
    missing: tuple[str, ...] = ()  # planned runs without a finite result, e.g. "`l2` seed 3 (failed: ...)"
    planned: int = 0  # seeds planned for the claim's variants


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
    verdict: str  # all claims together: confirmed, refuted, inconclusive, or "no claim"; "corrupt" with error
    answer: str
    error: str = ""  # the manifest could not be read; nothing else is filled in
    notes: tuple[str, ...] = ()  # finished results of earlier runs that this experiment's latest plan leaves out

    @property
    def capped(self) -> bool:
        """Some variant trained (or is to train) fewer epochs than its spec asks: not the experiment it describes."""
        return any(v.capped for v in self.variants)


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
    many_claims: str = ""  # what testing several claims at once means for the verdicts (:func:`many_claims`)

    @property
    def metrics(self) -> list[str]:
        """Every test metric of any variant, in alphabetical order (the columns of the tables and CSVs)."""
        return sorted({m for s in self.experiments for v in s.variants for m in v.test})


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
    """The claim as a sentence, with the metric's reader-facing name."""
    what = f"test {labels.name(claim.metric)}"
    if claim.other is not None:
        return f"`{claim.variant}` has {'lower' if claim.lower_than else 'higher'} {what} than `{claim.other}`"
    if claim.at_least is not None:
        return f"`{claim.variant}` reaches {what} ≥ {claim.at_least:g}"
    return f"`{claim.variant}` keeps {what} ≤ {claim.at_most:g}"


def t_critical(n: int) -> float:
    """The one-sided critical t at :data:`LEVEL` for ``n`` >= 2 paired differences."""
    return float(special.stdtrit(n - 1, 1 - LEVEL))


def compare(claim: Claim, a: dict[int, float], b: dict[int, float]) -> Verdict:
    """Verdict on ``claim.variant`` lower/higher than ``claim.other`` from the per-seed values of both: a
    one-sided paired t-test at :data:`LEVEL` each way, and the two-sided interval that agrees with it."""
    seeds = tuple(sorted(set(a) & set(b)))
    diffs = tuple(a[s] - b[s] for s in seeds)
    sign = -1.0 if claim.lower_than else 1.0  # sign * diff > 0 goes the claimed way
    agree = sum(1 for d in diffs if sign * d > 0)
    base = {
        "claim": claim_text(claim),
        "metric": claim.metric,
        "kind": "comparison",
        "seeds": seeds,
        "values": diffs,
        "agree": agree,
        "a": stat([a[s] for s in seeds]),
        "b": stat([b[s] for s in seeds]),
        "planned": len(seeds),
    }
    if not diffs:
        return Verdict(**base, verdict="inconclusive", reason="no seed has both variants finished")
    if len(diffs) == 1:
        went = "the claimed way" if agree else ("the other way" if diffs[0] != 0 else "neither way (no difference)")
        reason = f"one seed: not a test; that seed went {went} (difference {labels.num(diffs[0])})"
        return Verdict(**base, verdict="inconclusive", reason=reason, mean=diffs[0])
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    numbers = {"mean": mean, "std": std}
    if std <= 1e-9 * abs(mean):  # the same difference in every seed, up to rounding (0 for identical results)
        reason = f"every seed gave the same difference, {labels.num(mean)}: {NO_NOISE}"
        return Verdict(**base, **numbers, verdict="inconclusive", reason=reason)
    # paired: the differences' mean against none (Student's t, from scipy.special: scipy.stats takes a second
    # to import, most of a rerun's time)
    critical, standard_error = t_critical(len(diffs)), std / math.sqrt(len(diffs))
    t = sign * mean / standard_error
    p = float(special.stdtr(len(diffs) - 1, -t))  # P(T >= t)
    verdict = "confirmed" if t >= critical else "refuted" if t <= -critical else "inconclusive"
    reason = (
        f"difference {labels.pm(mean, std)} over {len(diffs)} seeds, {agree} of {len(diffs)} the claimed way; "
        f"t = {labels.num(t)} vs critical {critical:.3f} (one-sided p = {labels.p_value(p)} the claimed way)"
    )
    return Verdict(
        **base,
        **numbers,
        verdict=verdict,
        reason=reason,
        t_toward_claim=t,
        t_critical=critical,
        p_toward_claim=p,
        interval=(mean - critical * standard_error, mean + critical * standard_error),  # two-sided, 1 - 2 LEVEL
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
    base = {
        "claim": claim_text(claim),
        "metric": claim.metric,
        "kind": "threshold",
        "seeds": seeds,
        "values": per_seed,
        "agree": agree,
        "a": s,
        "planned": n,
    }
    if not n:
        return Verdict(**base, verdict="inconclusive", reason="no seed finished")
    if n == 1:  # a seed that met it shows the variant can, one that missed that it does not always: not a test
        reason = f"one seed: not a test; that seed {'met' if agree else 'missed'} it (value {s.text()})"
        return Verdict(**base, verdict="inconclusive", reason=reason, mean=s.mean)
    verdict = "confirmed" if agree == n else "refuted" if agree == 0 else "inconclusive"
    reason = f"met by {agree} of {count(n, 'seed')} (value {s.text()})"
    return Verdict(**base, verdict=verdict, reason=reason, mean=s.mean, std=s.std)


def incomplete(verdict: Verdict, missing: Sequence[str], planned: int) -> Verdict:
    """``verdict`` where ``missing`` names the planned runs without a value (see :func:`unfinished`), out
    of ``planned`` seeds: inconclusive, whatever the finished seeds alone show, and saying which runs."""
    planned = max(planned, verdict.planned)
    if not missing:
        return dataclasses.replace(verdict, planned=planned)
    reason = verdict.reason
    if verdict.verdict != "inconclusive":
        reason += f"; the finished seeds alone would have it {verdict.verdict}"
    reason += f"; without {count(len(missing), 'planned run')}: {', '.join(missing)}"
    return dataclasses.replace(verdict, verdict="inconclusive", reason=reason, missing=tuple(missing), planned=planned)


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
    return timings["fit_s"] if timings.get("training_s") is None else timings["training_s"]


def summarise_variant(
    experiment: Experiment, runs: Sequence[Run], variant_name: str, max_epochs: int | None = None
) -> VariantSummary:
    """``max_epochs``: the run's --max-epochs, the epochs shown until a result says what was trained."""
    variant = experiment.variant(variant_name)
    training = experiment.resolved_training(variant)
    mine = [r for r in runs if r.variant == variant_name]
    done = [r for r in mine if r.state == "done"]
    results = [r.result for r in done]
    timings = [r.get("timings", {}) for r in results]
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
        epochs=int(first.get("epochs") or capped_epochs(training.epochs, max_epochs)),
        requested_epochs=training.epochs,  # this experiment's, whichever experiment's run trained the job
        batch_size=int(first.get("batch_size") or training.batch_size),
        test={m: stat(list(values_by_seed(done, variant_name, m).values())) for m in metrics},
        best_epoch=best[0] if best else None,
        best_value=best[1] if best else None,
        gap=stat([g for g in (generalisation_gap(h, metric) for h in histories) if g is not None]),
        training_s=stat([training_seconds(t) for t in timings if t.get("fit_s") is not None]),
        seconds_per_epoch=stat([t["seconds_per_epoch"] for t in timings if t.get("seconds_per_epoch") is not None]),
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
    planned = len({r.seed for r in runs if r.variant in (claim.variant, claim.other)})
    if claim.other is not None:
        theirs = values_by_seed(runs, claim.other, claim.metric)
        missing = unfinished(runs, claim.variant, mine, claim.metric) + unfinished(
            runs, claim.other, theirs, claim.metric
        )
        return incomplete(compare(claim, mine, theirs), missing, planned)
    return incomplete(threshold(claim, mine), unfinished(runs, claim.variant, mine, claim.metric), planned)


def unfinished(runs: Sequence[Run], variant: str, values: dict[int, float], metric: str) -> list[str]:
    """Each planned run of ``variant`` that gave no value to judge by: a failed, diverged or unfinished job,
    or a finished one without a finite test ``metric``. A verdict must not silently drop them: a technique
    that diverges on some seeds has not shown what the others do."""
    found = []
    for run in sorted((r for r in runs if r.variant == variant and r.seed not in values), key=lambda r: r.seed):
        if run.state == "done":
            stored = metric in (run.result or {}).get("test", {})
            why = f"test {labels.name(metric)} {'not finite' if stored else 'not recorded'}"
        else:
            why = "never started" if run.state == "missing" else run.state
        if run.state == "failed" and run.error.strip():  # a crash or a diverged loss: the reader must know which
            why += f": {first_line(run.error, 80)}"
        found.append(f"`{variant}` seed {run.seed} ({why})")
    return found


def answer(claim: Claim, variants: dict[str, VariantSummary], verdict: Verdict) -> str:
    """One sentence answering the question with the claim's numbers, ours beside the seed's: the means of
    the seeds the verdict rests on, so that they agree with the difference beside them."""
    if verdict.a is None or (claim.other is not None and verdict.b is None):
        lacking = [v for v in (claim.variant, claim.other) if v is not None and not variants[v].seeds_done]
        if lacking:
            return f"No result yet for `{lacking[0]}`."
        return f"{_YES_NO[verdict.verdict]}: {verdict.reason}."
    what = f"test {labels.name(claim.metric)}"
    seed = variants[claim.variant].seed_printed.get(claim.metric)
    n = len(verdict.values)
    if claim.other is not None:
        prefix = "One seed, not a test" if n == 1 else _YES_NO[verdict.verdict]
        text = f"{prefix}: `{claim.variant}` {what} {verdict.a.text()} vs {verdict.b.text()} for `{claim.other}`"
        seed_other = variants[claim.other].seed_printed.get(claim.metric)
        if seed is not None and seed_other is not None:
            text += f" (the course printed {labels.printed(seed)} vs {labels.printed(seed_other)})"
        text += _partial(verdict)
        if verdict.t_toward_claim is not None:
            text += f"; {paired(verdict)}"
        elif n > 1:
            text += f"; every seed gave the same difference: {NO_NOISE}"
        return text + "."
    bound = f"≥ {claim.at_least:g}" if claim.at_least is not None else f"≤ {claim.at_most:g}"
    prefix = "One seed, not a test" if n == 1 else _YES_NO[verdict.verdict]
    text = f"{prefix}: `{claim.variant}` {what} {verdict.a.text()}, {bound} in {verdict.agree} of {count(n, 'seed')}"
    if seed is not None:
        text += f" (the course printed {labels.printed(seed)})"
    return text + _partial(verdict) + "."


def _partial(verdict: Verdict) -> str:
    """Which planned seeds an answer leaves out, and why: its numbers are of the others only."""
    if not verdict.missing:
        return ""
    n = len(verdict.values)
    return f" (on {n} of {count(verdict.planned, 'planned seed')}; no result for {', '.join(verdict.missing)})"


def paired(verdict: Verdict) -> str:
    """How big a compared difference is and whether it stands out of the seed-to-seed noise, in words."""
    n, t, critical = len(verdict.values), verdict.t_toward_claim, verdict.t_critical
    # the interval of how much lower (or higher) A is, so that it reads in the words before it
    low, high = verdict.interval if verdict.mean >= 0 else (-verdict.interval[1], -verdict.interval[0])
    how_much = "no different on average (90% confidence interval of the difference"
    if verdict.mean:
        how_much = f"{'lower' if verdict.mean < 0 else 'higher'} by {labels.num(abs(verdict.mean))} on average "
        how_much += "(90% confidence interval"
    size = f"{how_much} {labels.num(low)} to {labels.num(high)}; std across seeds {labels.num(verdict.std)})"
    noise = {
        "confirmed": f"more than noise (t = {labels.num(t)} ≥ {critical:.3f})",
        "refuted": f"more than noise, the other way (t = {labels.num(t)} ≤ -{critical:.3f})",
        "inconclusive": f"within noise (|t| = {labels.num(abs(t))} < {critical:.3f})",
    }[verdict.verdict]
    if verdict.missing and abs(t) >= critical:
        noise = f"beyond noise on these seeds (t = {labels.num(t)}), but not every planned seed finished"
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
    cap = (entry.options or {}).get("max_epochs")
    variants = {v.name: summarise_variant(experiment, entry.runs, v.name, cap) for v in experiment.variants}
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
        notes=entry.notes,
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
    started = sorted(t["started"] for t in timings if t.get("started"))
    finished = sorted(t["finished"] for t in timings if t.get("finished"))
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


def capped(summaries: Sequence[ExperimentSummary]) -> tuple[str, ...]:
    """Every variant trained (or to train, under the run's --max-epochs) for fewer epochs than its spec asks."""
    return tuple(
        f"{s.name}/{v.name}: {v.epochs} of {count(v.requested_epochs, 'epoch')}"
        for s in summaries
        for v in s.variants
        if v.capped
    )


def reduce(collected: Collected) -> Report:
    entries = collected.experiments
    summaries = tuple(summarise_experiment(e) for e in entries)
    info = run_info(collected)
    synthetic = any(s.synthetic for s in summaries) or any(d.synthetic for d in info.data)
    many = many_claims([v for s in summaries for v in s.verdicts])
    return Report(info, summaries, problems(entries), synthetic, capped(summaries), many_claims=many)


def many_claims(verdicts: Sequence[Verdict]) -> str:
    """The chance that testing k comparisons yields at least one verdict by chance alone: each is confirmed
    or refuted by chance at 2 × :data:`LEVEL` where the variants do not differ, and nothing here corrects
    for k. Said in the report rather than corrected, since the course's claims are each a question of their
    own; the bound holds for independent claims, and claims that share runs (l1 and l2 share ``basic``)
    are not independent."""
    tested = sum(1 for v in verdicts if v.t_toward_claim is not None)
    if tested < 2:
        return ""
    chance = 1 - (1 - 2 * LEVEL) ** tested
    return (
        f"This report tests {tested} comparison claims, each on its own: were no variant to differ from what it "
        f"is compared with, each would still come out confirmed or refuted {2 * LEVEL:.0%} of the time, and at "
        f"least one of the {tested} would with probability {chance:.0%} (1 − {1 - 2 * LEVEL:g}^{tested}, for "
        "claims that share no runs). A verdict whose t is near its critical value may be one of those; more "
        "seeds (`--seeds N`) make each test stronger."
    )
