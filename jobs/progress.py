"""What a person watching a run sees: a live table on a terminal, plain lines in CI logs."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobs.executors import Outcome
from jobs.plan import Job
from jobs.words import count


def _metrics(logs: dict, keys=("loss", "val_loss", "accuracy", "val_accuracy")) -> str:
    return " ".join(f"{k}={logs[k]:.4f}" for k in keys if k in logs)


def outcome_line(outcome: Outcome) -> str:
    job = outcome.job
    if outcome.failure is not None:
        return f"FAILED {job.label} [{job.id}]: {outcome.failure.reason}"
    result = outcome.output["result"]
    test = " ".join(f"{k}={v:.4f}" for k, v in result["test"].items())
    epochs = count(result["epochs_run"], "epoch")
    # this attempt's training, of its whole time in the worker (a resumed job's earlier attempts are in the
    # report's training time, not here)
    seconds = f"training {result['timings']['fit_s']:.1f}s of {result['timings']['total_s']:.1f}s"
    return f"done   {job.label} [{job.id}] {epochs}, test {test}, {seconds}"


class Progress:
    """Counts of done / running / failed / skipped / pending jobs, and each running job's latest epoch."""

    def __init__(self, jobs: list[Job], skipped: int, console: Console, plain_every: float = 30.0):
        self.console = console
        self.jobs = {job.id: job for job in jobs}
        self.skipped, self.done, self.failed = skipped, 0, 0
        self.running: dict[str, dict] = {}
        self.announced: set[str] = set()
        self.live = None
        self.plain_every, self.last_plain = plain_every, time.monotonic()

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(self._view(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._view())
            self.live.__exit__(*exc)

    @property
    def pending(self) -> int:
        return len(self.jobs) - self.done - self.failed - len(self.running)

    def counts(self) -> str:
        return (
            f"{self.done} done, {len(self.running)} running, {self.failed} failed, "
            f"{self.skipped} skipped, {self.pending} pending"
        )

    def refresh(self, snapshot: dict[str, dict]) -> None:
        """Take the executor's latest per-job epochs."""
        self.running = {jid: info for jid, info in snapshot.items() if jid in self.jobs and jid not in self.announced}
        if self.live is not None:
            self.live.update(self._view())
        elif time.monotonic() - self.last_plain >= self.plain_every and self.running:
            self.last_plain = time.monotonic()
            for jid, info in self.running.items():
                self.console.print(
                    f"  ...    {self.jobs[jid].label} epoch {info['epoch']}/{info['epochs']} {_metrics(info['logs'])}",
                    markup=False,
                )

    def finished(self, outcome: Outcome) -> None:
        self.announced.add(outcome.job.id)
        self.running.pop(outcome.job.id, None)
        if outcome.failure is not None:
            self.failed += 1
        else:
            self.done += 1
        line = outcome_line(outcome)
        if self.live is not None:
            self.live.update(self._view())
            self.live.console.print(line, markup=False)
        else:
            self.console.print(f"[{self.done + self.failed}/{len(self.jobs)}] {line}", markup=False)

    def _view(self) -> Group:
        table = Table(box=None, show_header=bool(self.running), pad_edge=False)
        for column in ("running job", "id", "epoch", "latest"):
            table.add_column(column)
        for jid, info in sorted(self.running.items(), key=lambda item: self.jobs[item[0]].label):
            table.add_row(self.jobs[jid].label, jid, f"{info['epoch']}/{info['epochs']}", _metrics(info["logs"]))
        return Group(Text(self.counts(), style="bold"), table)
