"""The results store: round trip, atomic writes, finished means done + result, corrupt entries."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, another_run_holding

from jobs.store import Store, StoreBusy, StoreCorrupt

JOB = "0123456789abcdef"


def test_round_trip_and_layout(tmp_path):
    store = Store(str(tmp_path))
    record = store.job(JOB)
    assert record.status() is None and not record.is_done()
    assert record.start({"id": JOB}) == 1
    assert record.status()["state"] == "running" and not record.is_done()
    record.finish({"loss": [1.0, 0.5]}, {"test": {"loss": 0.5}}, "log line")
    assert record.is_done()
    assert record.history() == {"loss": [1.0, 0.5]} and record.result() == {"test": {"loss": 0.5}}
    assert (tmp_path / "jobs" / JOB / "log.txt").read_text() == "log line"
    assert store.job_ids() == [JOB]
    store.write_experiment("l1", {"jobs": []})
    assert store.experiment_names() == ["l1"] and store.read_experiment("l1") == {"jobs": []}


def test_a_second_attempt_counts_up_and_a_failure_keeps_its_traceback(tmp_path):
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    record.fail("ValueError: bad", "Traceback ...\nValueError: bad", "epoch 1")
    status = record.status()
    assert (status["state"], status["attempt"], status["error"]) == ("failed", 1, "ValueError: bad")
    assert "Traceback" in (tmp_path / "jobs" / JOB / "log.txt").read_text()
    assert record.start({}) == 2


def test_a_finished_job_trained_again_keeps_its_result_until_the_new_one_lands(tmp_path):
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    record.finish({"loss": [1.0]}, {"test": {"loss": 1.0}}, "first")
    record.drop_attempt()
    assert record.start({}) == 2 and record.is_done()  # --force: still the finished job meanwhile
    record.write_epochs({"loss": [0.9]})
    assert record.history() == {"loss": [1.0]} and record.result() == {"test": {"loss": 1.0}}
    record.fail("RuntimeError: out of memory", "Traceback ...", "second")
    assert record.is_done() and record.result() == {"test": {"loss": 1.0}}  # a failed retrain keeps it
    assert record.epochs() is None  # and its attempt is dropped: nothing would ever resume it
    log = (tmp_path / "jobs" / JOB / "log.txt").read_text()
    assert log.startswith("first") and "failed: RuntimeError: out of memory; the result above is kept" in log
    record.drop_attempt()
    record.start({})
    record.write_epochs({"loss": [0.8]})
    record.finish({"loss": [0.8]}, {"test": {"loss": 0.8}}, "third")
    assert record.history() == {"loss": [0.8]} and record.result() == {"test": {"loss": 0.8}}
    assert record.status()["attempt"] == 3 and record.epochs() is None


def test_a_crash_while_a_retrained_job_s_result_is_replaced_leaves_it_unfinished(tmp_path, monkeypatch):
    """The new history is written before the new result: a crash between the two must not leave the old
    result paired with the new history as a finished job."""
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    record.finish({"loss": [1.0]}, {"test": {"loss": 1.0}}, "first")
    record.start({})  # --force
    write_json = Store.write_json

    def crash_at_the_result(store, path, value):
        if path.endswith("result.json"):
            raise OSError("the machine went down")
        write_json(store, path, value)

    monkeypatch.setattr(Store, "write_json", crash_at_the_result)
    with pytest.raises(OSError):
        record.finish({"loss": [0.5, 0.4]}, {"test": {"loss": 0.4}}, "second")
    monkeypatch.undo()
    assert record.history() == {"loss": [0.5, 0.4]} and record.result() == {"test": {"loss": 1.0}}
    assert not record.is_done() and record.state()[0] != "done"  # the next run trains it again


def test_a_task_claiming_its_job_as_the_run_stops_leaves_the_job_interrupted(tmp_path, monkeypatch):
    """The driver marks jobs interrupted while a task may be claiming one: the interrupt lands just before
    the claim's write, and the job must still read as interrupted, owned by that task."""
    record = Store(str(tmp_path)).job("0123456789abcdef")
    record.start({"id": record.id})
    write_json = Store.write_json

    def interrupt_first(store, path, value):
        monkeypatch.setattr(Store, "write_json", write_json)
        record.interrupt()
        write_json(store, path, value)

    monkeypatch.setattr(Store, "write_json", interrupt_first)
    token = record.claim()
    assert record.status()["state"] == "interrupted"
    assert record.owned_by(token)
    record.start({"id": record.id})  # the next run takes the job over
    assert not record.owned_by(token)


def test_an_attempt_that_ended_owns_its_job_no_more(tmp_path):
    """A process Ray gave up on (node declared lost, still running) stops at its next epoch."""
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    token = record.claim()
    record.fail("WorkerCrashedError: the worker died", "", "")
    assert not record.owned_by(token)
    record.start({})
    token = record.claim()
    record.finish({"loss": [0.5]}, {"test": {"loss": 0.5}}, "")
    assert not record.owned_by(token)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    path = store.path("experiments", "x.json")
    store.write_json(path, {"v": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.fs, "mv", crash)
    with pytest.raises(OSError):
        store.write_json(path, {"v": 2})
    assert json.loads((tmp_path / "experiments" / "x.json").read_text()) == {"v": 1}  # old file intact
    assert [p.name for p in (tmp_path / "experiments").iterdir()] == ["x.json"]  # no temporary left behind


def test_corrupt_entries_are_not_finished_and_are_named(tmp_path):
    store = Store(str(tmp_path))
    record = store.job(JOB)
    record.start({})
    record.finish({}, {"test": {}}, "")
    (tmp_path / "jobs" / JOB / "result.json").write_text('{"test": ')  # truncated
    assert not record.is_done()
    with pytest.raises(StoreCorrupt, match=f"jobs/{JOB}/result.json: not valid JSON"):
        record.result()
    (tmp_path / "jobs" / JOB / "status.json").write_text("garbage")
    assert record.status() == {"state": "corrupt"} and not record.is_done()
    (tmp_path / "jobs" / JOB / "status.json").write_text('["done"]')  # valid JSON, not an object
    assert record.status() == {"state": "corrupt"} and record.attempts() == 0
    state, _, why = record.state()
    assert state == "corrupt" and f"jobs/{JOB}/status.json is not a JSON object" in why


def finished_job(tmp_path):
    """A job stored finished after one epoch, whose files a test then damages."""
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    record.finish({"loss": [0.7]}, {"test": {"loss": 0.7}}, "")
    return record


def replace_or_remove(path, value):
    """Damage a stored file: remove it (``value`` None), or replace it with ``value`` as JSON."""
    if value is None:
        path.unlink()
    else:
        path.write_text(json.dumps(value))


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ([1, 2], "result.json is missing or has no test metrics"),
        ({"test": {"loss": 0.7}, "data": None}, "result.json: data: Input should be a valid dictionary"),
        ({"test": {"loss": 0.7}, "environment": []}, "result.json: environment: Input should be a valid dictionary"),
        ({"test": {"loss": 0.7}, "timings": {"fit_s": "x"}}, "result.json: timings.fit_s: Input should be a valid"),
        ({"test": {"loss": "low"}}, "result.json: test.loss: Input should be a valid number"),
        ({"test": {"loss": "0.5"}}, "result.json: test.loss: Input should be a valid number"),
        ({"test": {"accuracy": True}}, "result.json: test.accuracy: Input should be a valid number"),
        ({"test": {"loss": 0.7}, "params": "12"}, "result.json: params: Input should be a valid integer"),
    ],
)
def test_a_result_of_the_wrong_shape_is_corrupt(tmp_path, result, problem):
    record = finished_job(tmp_path)
    (tmp_path / "jobs" / JOB / "result.json").write_text(json.dumps(result))
    state, _, why = record.state()
    assert state == "corrupt" and f"jobs/{JOB}/{problem}" in why, why


def test_a_history_of_the_wrong_shape_and_a_garbled_attempt_are_not_a_traceback(tmp_path):
    record = finished_job(tmp_path)
    (tmp_path / "jobs" / JOB / "history.json").write_text('{"loss": ["x"]}')
    state, _, why = record.state()
    assert state == "corrupt" and f"jobs/{JOB}/history.json is missing or not per-epoch lists" in why
    (tmp_path / "jobs" / JOB / "status.json").write_text('{"state": "interrupted", "attempt": "x"}')
    assert record.attempts() == 0


@pytest.mark.parametrize("status", [None, {"state": "weird"}])
def test_a_result_whose_status_is_lost_or_unknown_is_corrupt_so_a_run_says_it_trains_it_again(tmp_path, status):
    record = finished_job(tmp_path)
    replace_or_remove(tmp_path / "jobs" / JOB / "status.json", status)
    state, _, why = record.state()
    expected = "is missing beside the job's result.json" if status is None else "unknown state 'weird'"
    assert state == "corrupt" and f"jobs/{JOB}/status.json" in why and expected in why


def test_a_folder_where_a_file_belongs_is_corrupt(tmp_path):
    store = Store(str(tmp_path))
    (tmp_path / "experiments" / "x.json").mkdir(parents=True)
    with pytest.raises(StoreCorrupt, match=r"experiments/x\.json: not a file"):
        store.read_experiment("x")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / JOB).write_text("")  # a file where the job's folder belongs
    assert store.job(JOB).state()[0] == "corrupt"


def test_a_folder_without_a_result_is_not_finished(tmp_path):
    os.makedirs(tmp_path / "jobs" / JOB)
    assert not Store(str(tmp_path)).job(JOB).is_done()


@pytest.mark.parametrize("history", [None, {}, {"loss": []}, {"loss": 0.5}])
def test_a_finished_job_without_the_metrics_of_its_epochs_is_not_finished(tmp_path, history):
    record = Store(str(tmp_path)).job(JOB)
    record.start({})
    record.finish({"loss": [0.7, 0.6]}, {"test": {"loss": 0.6}}, "")
    assert record.is_done()
    replace_or_remove(tmp_path / "jobs" / JOB / "history.json", history)
    state, _, why = record.state()
    assert state == "corrupt" and f"jobs/{JOB}/history.json is missing or not per-epoch lists" in why


@pytest.mark.parametrize("bad", ["../../etc", "ABCDEF0123456789", "x", "0123456789abcdef/.."])
def test_job_ids_cannot_name_paths_outside_the_store(tmp_path, bad):
    with pytest.raises(ValueError):
        Store(str(tmp_path)).job(bad)


def test_only_folders_named_as_job_ids_are_jobs(tmp_path):
    store = Store(str(tmp_path))
    store.job(JOB).start({})
    for other in ("notajob", ".tmp-1234", "ABCDEF0123456789"):  # a user's folder, a temporary file, upper case
        (tmp_path / "jobs" / other).mkdir()
    assert store.job_ids() == [JOB]


def test_experiment_names_cannot_name_paths_outside_the_store(tmp_path):
    with pytest.raises(ValueError):
        Store(str(tmp_path)).write_experiment("../x", {})


def test_a_remote_uri_goes_through_fsspec(tmp_path):
    store = Store("memory://regimen-test/results")
    record = store.job(JOB)
    record.start({"id": JOB})
    record.finish({"loss": [1.0]}, {"test": {"loss": 1.0}}, "")
    assert not store.local and record.is_done()
    assert Store("memory://regimen-test/results").job_ids() == [JOB]
    assert record.log_uri.startswith("memory://")


def test_a_results_folder_is_held_by_one_run_until_its_process_ends(tmp_path):
    results = tmp_path / "results"
    store = Store(str(results))
    with another_run_holding(results) as holder, pytest.raises(StoreBusy) as busy, store.hold_for_run():
        pass
    assert f"another `regimen run` is writing there (pid {holder.pid} on " in str(busy.value)
    # the holder was killed: the system released its lock, no stale lock is left
    second = Store(str(results))
    with store.hold_for_run(), pytest.raises(StoreBusy, match=f"pid {os.getpid()} on "), second.hold_for_run():
        pass
    with store.hold_for_run():  # released when the run ends
        pass


def test_a_run_that_restarts_itself_hands_its_hold_over_with_no_gap(tmp_path):
    """The restart into a private network is an exec, which closes every descriptor not handed over: the
    run passes its lock's on, so that no other run can take the folder between the two."""
    results = tmp_path / "results"
    store, other = Store(str(results)), Store(str(results))
    keep = (
        "import sys; from jobs.store import Store; hold = Store(sys.argv[1]).hold_for_run(); hold.__enter__(); "
        "print('held', flush=True); sys.stdin.read()"
    )
    with store.hold_for_run():
        handed = store.hand_over_hold()
        successor = subprocess.Popen(
            [sys.executable, "-c", keep, str(results)],
            cwd=ROOT,
            env={**os.environ, **handed},
            pass_fds=[int(handed["REGIMEN_HELD_RUN_LOCK"])],  # as exec keeps an inheritable descriptor open
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # while this process still holds the folder: the successor holds it through the lock handed over
        assert successor.stdout.readline().strip() == "held"
    try:
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()} on "), other.hold_for_run():
            pass  # this process let go of its descriptor; the successor's keeps the folder held
    finally:
        successor.stdin.close()
        successor.wait(timeout=60)
    with other.hold_for_run():  # and its end releases it
        pass
