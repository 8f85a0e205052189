"""A run's hold on a results bucket: a lease the run keeps renewing, since a bucket has no lock.

A local results folder is held with ``flock``, which the system releases when the holder's process ends.
An object store (s3://, gs://) has nothing like it, so a run writes ``run.lease`` (who it is, a token of
its own, when it last renewed it), renews it from a thread every ``renew_every`` seconds and removes it
when it ends. A run that finds a lease renewed less than ``expires_after`` seconds ago is refused; an
older one was left by a run that was killed or lost the bucket, and the new run takes it over, after
which the run it took over from stops at its next result (:attr:`BucketLease.lost`). Two runs starting
at the same moment could both find no lease and both write one: each reads its own back ``settle``
seconds later, and the one whose lease was overwritten is refused (the bucket keeps the last write). A
write delayed by longer than that (a PUT retried after an outage) could still let both run: the buckets'
own create-if-absent writes (S3's If-None-Match, GCS's generation match) are not used, not having been
tried through fsspec here.

Renewal times are the writers' clocks: hosts whose clocks differ by more than ``expires_after -
renew_every`` seconds could take a live run's lease for an abandoned one.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.store import Store

RENEW_EVERY_S = 30.0
EXPIRES_AFTER_S = 120.0
SETTLE_S = 2.0
#: after a renewal that failed (the bucket's outage), the next try comes this soon, not a period later
RETRY_S = 5.0


class LeaseHeld(Exception):
    """Another run holds the lease; the message says who, and when its lease expires unless renewed."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def this_process() -> str:
    """Who holds a store, as a run refused by the hold is told: this process, its host, since when."""
    return f"pid {os.getpid()} on {socket.gethostname()}, since {now()}"


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%H:%M:%S UTC")


class BucketLease:
    """``run.lease`` in ``store``, held between :meth:`acquire` and :meth:`release`."""

    def __init__(
        self,
        store: Store,
        *,
        renew_every: float = RENEW_EVERY_S,
        expires_after: float = EXPIRES_AFTER_S,
        settle: float = SETTLE_S,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.store = store
        self.path = store.path("run.lease")
        self.renew_every = renew_every
        self.expires_after = expires_after
        self.settle = settle
        self.sleep = sleep
        self.token = uuid.uuid4().hex
        self.holder = this_process()
        self._released = threading.Event()
        #: set once another run has taken this lease over (this run's renewals failed for too long)
        self.lost = threading.Event()
        self._renewer = threading.Thread(target=self._keep_renewing, name="regimen-lease", daemon=True)

    def acquire(self) -> None:
        """Hold the lease, or raise :class:`LeaseHeld` naming the run that holds it."""
        found = self._read()
        if found is not None and self._live(found):
            raise LeaseHeld(self._describe(found))
        try:
            self._write()
            self.sleep(self.settle)
            found = self._read()
        except BaseException:  # Ctrl-C, the bucket's outage: leave no lease that would refuse the next run
            self._remove_if_ours()
            raise
        if not self._ours(found):
            raise LeaseHeld(self._describe(found) if found else "a run that started at the same moment")
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing, and remove the lease unless another run has taken it over. A bucket that cannot
        be reached now keeps the lease until it expires."""
        self._released.set()
        self._renewer.join(timeout=self.renew_every)  # a renewal stuck in the bucket's retries: let it be
        self._remove_if_ours()

    def _remove_if_ours(self) -> None:
        try:
            found = self._read()
            if self._ours(found):
                self.store.fs.rm(self.path)
        except Exception:  # the run's own outcome matters more than its lease's tidy end
            pass

    def _keep_renewing(self) -> None:
        wait = self.renew_every
        while not self._released.wait(wait):
            try:
                found = self._read()
                if not self._ours(found):
                    self.lost.set()  # taken over as abandoned
                    return
                self._write()
                wait = self.renew_every
            except Exception:  # a moment's outage of the bucket: try again soon
                wait = min(RETRY_S, self.renew_every)

    def _ours(self, found: dict | None) -> bool:
        return found is not None and found["token"] == self.token

    def _live(self, found: dict) -> bool:
        """Renewed less than ``expires_after`` ago; a lease stamped further ahead than that is no clock's."""
        age = time.time() - found["renewed"]
        return -self.expires_after < age < self.expires_after

    def _read(self) -> dict | None:
        """The lease as stored; None when there is none, or when it is not one (taken over like a stale one)."""
        try:
            found = json.loads(self.store.fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):  # none, or not JSON text
            return None
        valid = (
            isinstance(found, dict)
            and isinstance(found.get("token"), str)
            and isinstance(found.get("holder"), str)
            and isinstance(found.get("renewed"), int | float)
            and math.isfinite(found["renewed"])
        )
        return found if valid else None

    def _write(self) -> None:
        self.store.write_json(self.path, {"holder": self.holder, "token": self.token, "renewed": time.time()})

    def _describe(self, found: dict) -> str:
        renewed = found["renewed"]
        ago = max(0, round(time.time() - renewed))
        return (
            f"{found['holder']}; its lease was renewed {ago} s ago and expires at "
            f"{_clock(renewed + self.expires_after)} unless renewed"
        )
