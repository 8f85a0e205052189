"""What a user watching a run sees: a line per finished job, and where output is not a terminal, each
running job's latest epoch at most every ``plain_every`` seconds; on a terminal, a live table."""

import io

from helpers import SPECS, load_specs
from rich.console import Console

from jobs.executors import Outcome
from jobs.plan import expand
from jobs.progress import Progress
from jobs.worker import JobFailed

BASIC, DROPOUT = expand(load_specs(SPECS / "dropout.yaml"))
LOGS = {"loss": 0.61234, "val_loss": 0.65, "accuracy": 0.7}


def finished(job) -> Outcome:
    timings = {"fit_s": 9.87, "training_s": 20.5, "total_s": 12.34}  # resumed: earlier attempts trained too
    result = {"epochs_run": 20, "test": {"accuracy": 0.75}, "timings": timings}
    return Outcome(job, output={"result": result})


def test_a_log_gets_each_running_jobs_epoch_and_a_line_per_finished_job():
    out = io.StringIO()
    with Progress([BASIC, DROPOUT], skipped=1, console=Console(file=out, width=200), plain_every=0) as progress:
        progress.refresh({BASIC.id: {"epoch": 2, "epochs": 20, "logs": LOGS}})
        progress.finished(finished(BASIC))
        progress.refresh({BASIC.id: {"epoch": 20, "epochs": 20, "logs": LOGS}})  # a stale snapshot of it
        progress.finished(Outcome(DROPOUT, failure=JobFailed("diverged at epoch 3: loss is nan", "", "")))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"  ...    {BASIC.label} epoch 2/20 loss=0.6123")
    assert (
        lines[1] == f"[1/2] done   {BASIC.label} [{BASIC.id}] 20 epochs, test accuracy=0.7500, training 9.9s of 12.3s"
    )
    assert lines[2] == f"[2/2] FAILED {DROPOUT.label} [{DROPOUT.id}]: diverged at epoch 3: loss is nan"
    assert len(lines) == 3  # the finished job is not shown running again
    assert progress.counts() == "1 done, 0 running, 1 failed, 1 skipped, 0 pending"


def test_a_log_gets_the_running_epochs_no_more_often_than_asked():
    out = io.StringIO()
    with Progress([BASIC], skipped=0, console=Console(file=out), plain_every=3600) as progress:
        progress.refresh({BASIC.id: {"epoch": 2, "epochs": 20, "logs": LOGS}})
        assert progress.counts() == "0 done, 1 running, 0 failed, 0 skipped, 0 pending"
    assert out.getvalue() == ""


def test_a_terminal_gets_a_live_table_of_the_running_jobs():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with Progress([BASIC, DROPOUT], skipped=0, console=console) as progress:
        progress.refresh({DROPOUT.id: {"epoch": 7, "epochs": 20, "logs": LOGS}})
    shown = out.getvalue()
    assert "0 done, 1 running, 0 failed, 0 skipped, 1 pending" in shown
    assert DROPOUT.label in shown and DROPOUT.id in shown and "7/20" in shown
