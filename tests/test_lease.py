"""A run's hold on a bucket (fsspec's memory:// standing in for s3://): refused while another run renews
its lease, taken over once that lease expires, and the later of two runs starting together refused."""

import json
import re
import time

import pytest

from jobs.lease import BucketLease, LeaseHeld
from jobs.store import Store, StoreBusy, StoreUnavailable


def lease_in(store: Store) -> dict | None:
    path = store.path("run.lease")
    return json.loads(store.fs.cat_file(path)) if store.fs.exists(path) else None


def write_lease(store: Store, holder: str, renewed: float) -> None:
    store.write_json(store.path("run.lease"), {"holder": holder, "token": "theirs", "renewed": renewed})


def test_a_bucket_held_by_a_run_refuses_a_second_until_the_first_ends(bucket):
    second = Store(bucket.uri)
    with bucket.hold_for_run():
        held = lease_in(bucket)
        assert held["holder"].startswith("pid ") and time.time() - held["renewed"] < 60
        with pytest.raises(StoreBusy) as busy, second.hold_for_run():
            pass
        message = str(busy.value)
        assert f"results store {bucket.uri}: another `regimen run` is writing there ({held['holder']}; " in message
        assert re.search(r"its lease was renewed [0-3] s ago and expires at \d\d:\d\d:\d\d UTC unless renewed", message)
        assert message.endswith("wait for it to end, or give this run a --results of its own")
    assert lease_in(bucket) is None  # the run that ended removed its lease
    with second.hold_for_run():
        assert lease_in(bucket) is not None


def test_a_lease_that_was_not_renewed_in_time_is_taken_over(bucket):
    write_lease(bucket, "pid 1 on a-killed-driver, since then", renewed=time.time() - 121)
    with bucket.hold_for_run():
        assert lease_in(bucket)["holder"] != "pid 1 on a-killed-driver, since then"


FAR_AHEAD = f'{{"holder": "pid 1", "token": "t", "renewed": {time.time() + 10**6}}}'.encode()


@pytest.mark.parametrize(
    "left",
    [
        b"{half a lease",
        b'{"holder": "pid 1"}',
        b"\xff\xfe",
        b'{"holder": "pid 1", "token": "t", "renewed": Infinity}',
        FAR_AHEAD,
    ],
)
def test_a_lease_that_is_not_one_is_taken_over(bucket, left):
    bucket.write_bytes(bucket.path("run.lease"), left)
    with bucket.hold_for_run():
        assert lease_in(bucket)["holder"].startswith("pid ")


def test_of_two_runs_starting_together_the_one_whose_lease_was_overwritten_is_refused(bucket):
    def another_run_writes_its_lease(seconds):
        write_lease(bucket, "pid 2 on the-other-driver, since now", renewed=time.time())

    lease = BucketLease(bucket, sleep=another_run_writes_its_lease)
    with pytest.raises(LeaseHeld, match="pid 2 on the-other-driver, since now; its lease was renewed 0 s ago"):
        lease.acquire()
    assert lease_in(bucket)["token"] == "theirs"


def test_a_held_lease_is_renewed_until_released_and_never_removed_once_taken_over(bucket):
    lease = BucketLease(bucket, renew_every=0.05, settle=0)
    lease.acquire()
    first = lease_in(bucket)["renewed"]
    time.sleep(0.3)
    assert lease_in(bucket)["renewed"] > first and not lease.lost.is_set()  # renewed from its thread
    write_lease(bucket, "pid 3 on a-later-driver, since now", renewed=time.time())  # taken over as abandoned
    time.sleep(0.3)
    assert lease.lost.is_set()  # the run it held for stops at its next result (test_run_into_a_bucket_taken_over)
    lease.release()
    assert lease_in(bucket)["holder"] == "pid 3 on a-later-driver, since now"  # neither renewed over nor removed


def test_a_bucket_that_cannot_be_read_is_unavailable_not_busy(bucket, monkeypatch):
    def outage(path):
        raise ConnectionError("the bucket is unreachable")

    monkeypatch.setattr(bucket.fs, "cat_file", outage)
    with pytest.raises(StoreUnavailable, match=r"cannot hold it \(.*unreachable\)"), bucket.hold_for_run():
        pass


def test_a_run_stopped_while_its_lease_settles_leaves_no_lease(bucket):
    def interrupted(seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BucketLease(bucket, sleep=interrupted).acquire()
    assert lease_in(bucket) is None


def test_a_run_whose_lease_cannot_be_read_back_leaves_no_lease(bucket, monkeypatch):
    read = bucket.fs.cat_file

    def the_bucket_fails_once(seconds):
        def failing(path):
            monkeypatch.setattr(bucket.fs, "cat_file", read)
            raise ConnectionError("the bucket is unreachable")

        monkeypatch.setattr(bucket.fs, "cat_file", failing)

    with pytest.raises(ConnectionError):
        BucketLease(bucket, sleep=the_bucket_fails_once).acquire()
    assert lease_in(bucket) is None
