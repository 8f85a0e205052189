"""How jobs run fast: the rules of ``jobs/execution.py`` are pure functions of the job and its data."""

import math

import numpy as np
import pytest
from helpers import SPECS, regimen

from jobs.data import ROWS, Arrays
from jobs.execution import LEVERS, UnknownLever, execution_for, levers_off
from jobs.executors import longest_first
from jobs.loading import load_experiments
from jobs.plan import data_key, expand


@pytest.fixture(scope="module")
def suite_jobs():
    loaded, errors = load_experiments([SPECS])
    assert not errors
    return {job.uses[0].experiment + "/" + job.uses[0].variant: job for job in expand([e.experiment for e in loaded])}


def test_one_python_call_per_epoch(suite_jobs):
    for job in suite_jobs.values():
        train, _ = ROWS[job.dataset.name]
        execution = execution_for(job, train)
        assert execution.steps_per_execution == math.ceil(train / job.training.batch_size)
        assert execution.threads == max(1, math.floor(job.resources.num_cpus))


def test_each_lever_can_be_turned_off(suite_jobs):
    job = suite_jobs["overfitting/overfit"]
    assert execution_for(job, 25_000).steps_per_execution == 25
    assert execution_for(job, 25_000, levers_off(["steps"])).steps_per_execution == 1
    with pytest.raises(UnknownLever, match="expected one of: " + ", ".join(LEVERS)):
        levers_off(["steps", "turbo"])


def test_the_longest_job_is_dispatched_first(suite_jobs):
    jobs = list(suite_jobs.values())
    datasets = {
        data_key(job.dataset, False): Arrays(
            np.empty((ROWS[job.dataset.name][0], 1)), None, np.empty((ROWS[job.dataset.name][1], 1)), None, "rows"
        )
        for job in jobs
    }
    order = [job.uses[0].experiment + "/" + job.uses[0].variant for job in longest_first(jobs, datasets)]
    assert order[:2] == ["overfitting/overfit", "fashion/develop"]
    assert set(order[-2:]) == {"dropout/basic", "dropout/dropout"}  # the smallest models


def test_an_unknown_lever_is_one_line_and_exit_2():
    done = regimen("run", "specs/dropout.yaml", "--synthetic", "--off", "steps,turbo")
    assert done.returncode == 2
    assert "unknown lever 'turbo'; expected one of: steps, reuse" in done.stderr
    assert "Traceback" not in done.stderr
