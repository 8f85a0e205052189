"""A run's hold on a results bucket: a lease the run keeps renewing, since a bucket has no lock.

A local results folder is held with ``flock``, which the system releases when the holder's process ends.
An object store (s3://, gs://) has nothing like it, so a run writes ``run.lease`` (who it is, a token of
its own, when it last renewed it), renews it from a thread every ``renew_every`` seconds and removes it
when it ends. A run that finds a lease renewed less than ``expires_after`` seconds ago is refused; an
older one was left by a run that was killed or lost the bucket, and the new run takes it over. Two runs
starting at the same moment could both find no lease and both write one: each reads its own back
``settle`` seconds later, and the one whose lease was overwritten is refused (the bucket keeps the last
write).

Renewal times are the writers' clocks: hosts whose clocks differ by more than ``expires_after -
renew_every`` seconds could take a live run's lease for an abandoned one.
"""

from __future__ import annotations

import json
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


class LeaseHeld(Exception):
    """Another run holds the lease; the message says who, and when its lease expires unless renewed."""


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
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.holder = f"pid {os.getpid()} on {socket.gethostname()}, since {since}"
        self._released = threading.Event()
        self._renewer = threading.Thread(target=self._keep_renewing, name="regimen-lease", daemon=True)

    def acquire(self) -> None:
        """Hold the lease, or raise :class:`LeaseHeld` naming the run that holds it."""
        found = self._read()
        if found is not None and time.time() - found["renewed"] < self.expires_after:
            raise LeaseHeld(self._describe(found))
        self._write()
        try:
            self.sleep(self.settle)
        except BaseException:  # Ctrl-C while settling: leave no lease that would refuse the next run
            self._remove_if_ours()
            raise
        found = self._read()
        if found is None or found["token"] != self.token:
            raise LeaseHeld(self._describe(found) if found else "a run that started at the same moment")
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing, and remove the lease unless another run has taken it over. A bucket that cannot
        be reached now keeps the lease until it expires."""
        self._released.set()
        self._renewer.join()
        self._remove_if_ours()

    def _remove_if_ours(self) -> None:
        try:
            found = self._read()
            if found is not None and found["token"] == self.token:
                self.store.fs.rm(self.path)
        except Exception:  # the run's own outcome matters more than its lease's tidy end
            pass

    def _keep_renewing(self) -> None:
        while not self._released.wait(self.renew_every):
            try:
                found = self._read()
                if found is None or found["token"] != self.token:
                    return  # taken over as abandoned: that run's jobs stop this one's at their next epoch
                self._write()
            except Exception:  # a moment's outage of the bucket: try again at the next renewal
                continue

    def _read(self) -> dict | None:
        """The lease as stored; None when there is none, or when it is not one (taken over like a stale one)."""
        try:
            found = json.loads(self.store.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # not JSON, not text
            return None
        valid = (
            isinstance(found, dict)
            and isinstance(found.get("token"), str)
            and isinstance(found.get("holder"), str)
            and isinstance(found.get("renewed"), int | float)
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
