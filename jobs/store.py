"""The results store: one folder per job, every write atomic, local or remote through fsspec.

Layout under the root (a folder, or a URI such as ``s3://bucket/prefix``)::

    experiments/<experiment>.json   the experiment as planned: spec, run options, (variant, seed) -> job id
    jobs/<job id>/job.json          what the job trains (model, data, training, seed) and where it is used
    jobs/<job id>/status.json       {"state": "running" | "interrupted" | "done" | "failed", "attempt", ...}
    jobs/<job id>/history.json      the finished (or failed) job's metrics per epoch, {"loss": [...], ...}
    jobs/<job id>/result.json       test metrics, parameters, timings, environment, data source
    jobs/<job id>/log.txt           the job's log: progress, and the traceback if it failed
    jobs/<job id>/epochs.json       the attempt in progress: every epoch it finished, the same shape
    jobs/<job id>/checkpoint.zip    the attempt in progress: weights, epochs done, random state (jobs.checkpoint)
    jobs/<job id>/owner.json        the attempt in progress: which task trains it (:meth:`JobRecord.claim`)
    run.lock                        held by the run writing a local folder, with who it is (:meth:`Store.hold_for_run`)
    run.lease                       the same in a bucket: who, and when it last renewed it (:mod:`jobs.lease`)

The driver alone writes ``status.json``; the task training a job writes its epochs, checkpoint and
``owner.json``, so neither overwrites what the other just wrote. A job is finished when its status says ``done``
and its result (with test metrics) and history can be read; nothing else counts. An attempt in progress writes
only ``epochs.json``, the checkpoint and ``owner.json``, so a job trained again (``--force``) keeps its finished
result until the new one replaces it. JSON only: nothing read from the store is ever unpickled.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath
from typing import Annotated, Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from jobs.lease import BucketLease, LeaseHeld, now, this_process
from jobs.spec import NAME_PATTERN
from jobs.words import error_line

#: How :meth:`Store.hand_over_hold` names the held ``run.lock`` to the process a run restarts as
HANDED_LOCK = "REGIMEN_HELD_RUN_LOCK"
JOB_ID = re.compile(r"^[0-9a-f]{16}$")
EXPERIMENT_NAME = re.compile(NAME_PATTERN)


#: the states a job's status.json records
STATUS_STATES = ("running", "interrupted", "done", "failed")


class _Stored(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # strict: "12" is no number of parameters


class StoredTimings(_Stored):
    started: str | None = None
    finished: str | None = None
    fit_s: float | None = None
    training_s: float | None = None
    seconds_per_epoch: float | None = None


class StoredData(_Stored):
    source: str | None = None
    synthetic: bool = False
    train: int | None = None
    test: int | None = None
    held_out: int | None = None


class StoredRunOptions(_Stored):
    """The options of the run that planned an experiment (its manifest's ``run``), as far as the report reads
    them: checked, so that a damaged manifest is a corrupt entry rather than a traceback in the report."""

    synthetic: bool = False
    max_epochs: int | None = None
    seeds: int | None = None


class StoredResult(_Stored):
    """The parts of a job's result.json that the report reads, checked when the job is read, so that a
    damaged file is a corrupt entry named in the report rather than a traceback in it."""

    test: dict[str, float]
    params: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    timings: StoredTimings = StoredTimings()
    environment: dict[str, Any] = {}
    data: StoredData = StoredData()


#: history.json: every metric's value at each epoch, at least one epoch
STORED_HISTORY = TypeAdapter(dict[str, Annotated[list[float], Field(min_length=1)]])


def _first_problem(invalid: ValidationError) -> str:
    error = invalid.errors()[0]
    where = ".".join(map(str, error["loc"]))
    return f"{where}: {error['msg']}" if where else error["msg"]


class StoreCorrupt(Exception):
    """A store file that exists but cannot be read as JSON."""


class StoreBusy(Exception):
    """Another run holds the results folder (:meth:`Store.hold_for_run`)."""


class StoreUnavailable(Exception):
    """A results store that cannot be used at all (not a folder, no credentials, no such bucket, ...)."""


def open_store(uri: str, must_exist: bool = False, writable: bool = False) -> Store:
    """The store at ``uri``, checked usable (and ``writable``: a file written and removed there, so that a
    run fails before it starts anything), or :class:`StoreUnavailable` saying why in one line."""
    if not uri.strip():
        raise StoreUnavailable("--results is empty: give a folder or a bucket (s3://, gs://)")
    try:
        store = Store(uri)
        exists = store.fs.exists(store.root)
        if exists and not store.fs.isdir(store.root):
            raise StoreUnavailable(f"results store {uri}: not a folder")
        if not exists and store.local and (blocking := _file_on_the_way(store.root)):
            raise StoreUnavailable(f"results store {uri}: {blocking} is not a folder")
        if store.fs.exists(store.path("jobs", "__init__.py")):  # its jobs/ would be Regimen's own package
            raise StoreUnavailable(f"results store {uri}: holds Regimen's source code; give a folder of its own")
        has_results = exists and bool(store.experiment_names())
    except StoreUnavailable:
        raise
    except Exception as error:  # a missing fsspec backend, credentials, permissions: all mean "cannot use"
        raise StoreUnavailable(f"results store {uri}: {error_line(error)}") from None
    if must_exist and not has_results:
        raise StoreUnavailable(f"no results at {uri} (run `regimen run --results {uri}` first)")
    if writable:
        probe = store.path(f".write-check-{uuid.uuid4().hex}")
        try:
            store.write_bytes(probe, b"")
            store.fs.rm(probe)
        except Exception as error:  # read-only mount or bucket, no permission, not a file system at all
            raise StoreUnavailable(f"results store {uri}: cannot write there ({error_line(error)})") from None
    return store


def _file_on_the_way(path: str) -> str | None:
    """The file, if any, that stands where a folder above the local ``path`` (which does not exist) must be."""
    for above in PurePath(path).parents:
        if os.path.lexists(above):
            return None if os.path.isdir(above) else str(above)
    return None


class Store:
    """A results store rooted at a local folder or an fsspec URI; callers never build paths themselves."""

    def __init__(self, root: str):
        self.uri = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self._lease: BucketLease | None = None  # while this process's run holds a bucket
        self._lock: int | None = None  # the descriptor of run.lock, while this process's run holds a folder

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def uri_of(self, *parts: str) -> str:
        return self.path(*parts) if self.local else self.fs.unstrip_protocol(self.path(*parts))

    # -- atomic JSON --------------------------------------------------------------------------------

    def write_json(self, path: str, value: Any) -> None:
        """Write ``value`` so that readers see the old file or the new one, never half of one."""
        data = json.dumps(value, indent=1, sort_keys=True, allow_nan=True).encode()
        self.write_bytes(path, data)

    def write_bytes(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        if not self.local:  # an object store's PUT is atomic already, and it has no cheap rename
            try:  # nor folders: makedirs would ask for the bucket itself at every write
                self.fs.pipe_file(path, data)
            except FileNotFoundError:  # a remote file system that has folders (sftp, smb)
                self.fs.makedirs(parent, exist_ok=True)
                self.fs.pipe_file(path, data)
            return
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(temporary, data)
            self.fs.mv(temporary, path)
        finally:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)

    def read_json(self, path: str) -> Any | None:
        """The JSON at ``path``; None when it does not exist; :class:`StoreCorrupt` when unreadable."""
        try:
            with self.fs.open(path, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as error:
            raise StoreCorrupt(
                f"{self.uri_of(path.removeprefix(self.root).lstrip('/'))}: not valid JSON ({error})"
            ) from None
        except (IsADirectoryError, NotADirectoryError):  # a folder where the file belongs, or a file above it
            raise StoreCorrupt(f"{self.uri_of(path.removeprefix(self.root).lstrip('/'))}: not a file") from None

    # -- one run at a time ------------------------------------------------------------------------

    @contextmanager
    def hold_for_run(self) -> Iterator[None]:
        """Hold the store for one run, or raise :class:`StoreBusy` naming the run holding it
        (:class:`StoreUnavailable` when a bucket cannot be read or written).

        Two runs writing one store would each take over the other's jobs (:meth:`JobRecord.start`), so
        each would stop the other's training at its next epoch. A local folder is held with an advisory
        ``flock`` on ``run.lock``, which the operating system releases when the holder's process ends however
        it ends, so no stale lock outlives a killed run; on a network file system without ``flock`` the run
        goes on unguarded. A bucket is held with a lease the run renews (:mod:`jobs.lease`).
        """
        if not self.local:
            lease = BucketLease(self)
            try:
                lease.acquire()
            except LeaseHeld as held:
                raise StoreBusy(self._busy(str(held))) from None
            except Exception as error:  # the bucket's outage, lost credentials
                raise StoreUnavailable(f"results store {self.uri}: cannot hold it ({error_line(error)})") from None
            self._lease = lease
            try:
                yield
            finally:
                self._lease = None
                lease.release()
            return
        self.fs.makedirs(self.root, exist_ok=True)
        descriptor = self._lock_handed_over()
        if descriptor is None:
            descriptor = os.open(self.path("run.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(descriptor, 1024).decode(errors="replace").strip() or "a run that has not said who"
                os.close(descriptor)
                raise StoreBusy(self._busy(holder)) from None
            except OSError:  # a file system without flock: the run goes on unguarded
                pass
            else:
                os.ftruncate(descriptor, 0)
                os.write(descriptor, this_process().encode())
        self._lock = descriptor
        try:
            yield
        finally:
            self._lock = None
            os.close(descriptor)

    def hand_over_hold(self) -> dict[str, str]:
        """The environment through which a run that restarts itself (``exec``: :mod:`jobs.private_network`)
        keeps its hold on this folder, with no moment between where another run could take it: the lock's
        descriptor, made inheritable (an ``flock`` belongs to the open file, which the restart keeps open)."""
        if self._lock is None:
            return {}
        os.set_inheritable(self._lock, True)
        return {HANDED_LOCK: str(self._lock)}

    def _lock_handed_over(self) -> int | None:
        """The descriptor of this folder's ``run.lock`` that the process held before it restarted, if any."""
        handed = os.environ.pop(HANDED_LOCK, "")
        if not handed.isdigit():
            return None
        descriptor = int(handed)
        try:
            same = os.path.samestat(os.fstat(descriptor), os.stat(self.path("run.lock")))
        except OSError:  # closed, or no run.lock: nothing was handed over
            return None
        if not same:  # another file: not this folder's lock
            return None
        os.set_inheritable(descriptor, False)
        return descriptor

    def hold_lost(self) -> bool:
        """Whether another run took this run's hold on a bucket over, as abandoned: this run could not renew
        its lease in time (the bucket's outage, a paused machine)."""
        return self._lease is not None and self._lease.lost.is_set()

    def _busy(self, holder: str) -> str:
        return (
            f"results store {self.uri}: another `regimen run` is writing there ({holder}); wait for it to end, "
            "or give this run a --results of its own"
        )

    # -- jobs and experiments -----------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord:
        if not JOB_ID.match(job_id):
            raise ValueError(f"invalid job id {job_id!r}: expected 16 lowercase hex digits")
        return JobRecord(self, job_id)

    def job_ids(self) -> list[str]:
        try:
            names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path("jobs"), detail=False)]
        except FileNotFoundError:
            return []
        return sorted(n for n in names if JOB_ID.match(n))

    def experiment_path(self, name: str) -> str:
        if not EXPERIMENT_NAME.match(name):
            raise ValueError(f"invalid experiment name {name!r}")
        return self.path("experiments", f"{name}.json")

    def write_experiment(self, name: str, manifest: dict) -> None:
        self.write_json(self.experiment_path(name), manifest)

    def read_experiment(self, name: str) -> dict | None:
        return self.read_json(self.experiment_path(name))

    def experiment_names(self) -> list[str]:
        try:
            files = self.fs.ls(self.path("experiments"), detail=False)
        except FileNotFoundError:
            return []
        names = [f.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json") for f in files if f.endswith(".json")]
        return sorted(n for n in names if EXPERIMENT_NAME.match(n))


class JobRecord:
    """Every path of one job, and the state transitions running -> done | failed | interrupted (a finished
    job trained again stays done until its new attempt finishes)."""

    def __init__(self, store: Store, job_id: str):
        self.store = store
        self.id = job_id
        self.dir = store.path("jobs", job_id)

    def file(self, name: str) -> str:
        return f"{self.dir}/{name}"

    @property
    def checkpoint_file(self) -> str:
        return self.file("checkpoint.zip")

    def uri(self, name: str) -> str:
        """Where the job's file ``name`` is, as messages name it."""
        return self.store.uri_of("jobs", self.id, name)

    @property
    def log_uri(self) -> str:
        return self.uri("log.txt")

    def _status(self) -> tuple[dict | None, str | None]:
        """(the job's status.json, None before the job started; why it cannot be read, or None)."""
        try:
            status = self.store.read_json(self.file("status.json"))
        except StoreCorrupt as error:
            return None, str(error)
        if status is None or isinstance(status, dict):
            return status, None
        return None, f"{self.uri('status.json')} is not a JSON object"

    def status(self) -> dict | None:
        """The job's status.json; None before the job started; ``{"state": "corrupt"}`` where it is not a
        readable JSON object."""
        status, why = self._status()
        return {"state": "corrupt"} if why else status

    def result(self) -> dict | None:
        return self.store.read_json(self.file("result.json"))

    def history(self) -> dict | None:
        return self.store.read_json(self.file("history.json"))

    def epochs(self) -> dict | None:
        """The attempt in progress: the metrics of every epoch it finished."""
        return self.store.read_json(self.file("epochs.json"))

    def resumable_epochs(self) -> dict:
        """What a resuming attempt continues from: the epochs the unfinished attempt stored; {} when there
        are none or they cannot be read."""
        try:
            found = self.epochs()
        except StoreCorrupt:
            return {}
        return found if isinstance(found, dict) else {}

    def write_epochs(self, epochs: dict) -> None:
        self.store.write_json(self.file("epochs.json"), epochs)

    def checkpoint(self) -> bytes | None:
        """The attempt in progress's checkpoint (``jobs.checkpoint``), None when there is none."""
        try:
            return self.store.fs.cat_file(self.checkpoint_file)
        except FileNotFoundError:
            return None

    def write_checkpoint(self, checkpoint: bytes) -> None:
        """Replace the checkpoint, whole: a reader sees the previous one or this one."""
        self.store.write_bytes(self.checkpoint_file, checkpoint)

    def _log(self) -> str:
        path = self.file("log.txt")
        return self.store.fs.cat_file(path).decode(errors="replace") if self.store.fs.exists(path) else ""

    def spec(self) -> dict | None:
        return self.store.read_json(self.file("job.json"))

    def is_done(self) -> bool:
        """Finished, with a result and history that can be read; a corrupt or half-written entry is not."""
        return self.state()[0] == "done"

    def state(self) -> tuple[str, dict, str | None]:
        """(state, status, why the entry cannot be used): see :meth:`read`."""
        return self.read()[:3]

    def read(self) -> tuple[str, dict, str | None, dict | None, dict | None]:
        """(state, status, why the entry cannot be used, result, history): "missing", "running",
        "interrupted", "failed", "done" (a finished job's readable entry, with its result and history) or
        "corrupt" with the reason. Reads the status once, and the result and history only where it says
        done."""
        status, why = self._status()
        if why:
            return "corrupt", {}, why, None, None
        status = status or {}
        state = status.get("state", "missing")
        if state not in ("missing", *STATUS_STATES):
            return "corrupt", status, f"{self.uri('status.json')}: unknown state {state!r}", None, None
        if state == "missing" and self.store.fs.exists(self.file("result.json")):  # the status lost, not unstarted
            return "corrupt", status, f"{self.uri('status.json')} is missing beside the job's result.json", None, None
        if state != "done":
            return state, status, None, None, None
        result, history, problem = self._read_finished()
        return ("corrupt", status, problem, None, None) if problem else (state, status, None, result, history)

    def _read_finished(self) -> tuple[dict | None, dict | None, str | None]:
        """(result, history, None) of a job whose status says done; (None, None, why) where its entry is
        not a finished job's."""
        try:
            result, history = self.result(), self.history()
        except StoreCorrupt as error:
            return None, None, str(error)
        if not (isinstance(result, dict) and isinstance(result.get("test"), dict)):
            return None, None, f"{self.uri('result.json')} is missing or has no test metrics"
        try:
            StoredResult.model_validate(result)
        except ValidationError as invalid:
            return None, None, f"{self.uri('result.json')}: {_first_problem(invalid)}"
        try:
            per_epoch = bool(history) and bool(STORED_HISTORY.validate_python(history, strict=True))
        except ValidationError:
            per_epoch = False
        if not per_epoch:
            return None, None, f"{self.uri('history.json')} is missing or not per-epoch lists"
        return result, history, None

    def attempts(self) -> int:
        attempt = (self.status() or {}).get("attempt", 0)
        return attempt if isinstance(attempt, int) and attempt > 0 else 0

    def drop_attempt(self) -> None:
        """Forget the attempt in progress, its epochs, checkpoint and owner, so the next one trains from the
        first epoch (``--force``, an unusable checkpoint, an attempt that ended). A finished result stays until
        a new one replaces it (:meth:`finish`)."""
        # the checkpoint first: a crash in between must not leave a checkpoint without its epochs
        self._remove(self.checkpoint_file)
        self._remove(self.file("checkpoint"), recursive=True)  # Keras BackupAndRestore's, before jobs.checkpoint
        self._remove(self.file("epochs.json"))
        self._remove(self.file("owner.json"))

    def _remove(self, path: str, recursive: bool = False) -> None:
        if self.store.fs.exists(path):
            self.store.fs.rm(path, recursive=recursive)

    def claim(self) -> str:
        """Make the calling process the job's owner; returns its token (see :meth:`owned_by`)."""
        token = uuid.uuid4().hex
        self.store.write_json(self.file("owner.json"), {"token": token, "claimed": now()})
        return token

    def owned_by(self, token: str) -> bool:
        """Whether the process holding ``token`` still owns the job: a newer run (``start``) or another
        process (``claim``) taking the job over ends its ownership, as does the attempt ending (``finish``,
        ``fail``, ``drop_attempt``), so that a process Ray gave up on stops at its next epoch."""
        try:
            owner = self.store.read_json(self.file("owner.json"))
        except StoreCorrupt:
            return False
        return (owner or {}).get("token") == token

    def start(self, description: dict) -> int:
        """Record the job and mark it running, ending any earlier task's ownership; returns this attempt's
        number (1 for the first). A finished job trained again stays done, with its result, until the new
        attempt ends."""
        self._remove(self.file("owner.json"))
        attempt = self.attempts() + 1
        state = "done" if self.is_done() else "running"
        self.store.write_json(self.file("job.json"), description)
        self.store.write_json(self.file("status.json"), {"state": state, "attempt": attempt, "updated": now()})
        return attempt

    def interrupt(self) -> None:
        """Mark a job whose run stopped before it finished (Ctrl-C, SIGTERM): its epochs and checkpoint
        stay, and the next run resumes it. A finished job being trained again (``--force``) stays done, and
        its new attempt is dropped, as a failed one is: nothing resumes it (a plain rerun keeps the result,
        ``--force`` starts over)."""
        status = self.status() or {}
        if status.get("state") == "running":
            self.store.write_json(self.file("status.json"), {**status, "state": "interrupted", "updated": now()})
        elif self.is_done():
            self.drop_attempt()

    def finish(self, history: dict, result: dict, log: str) -> None:
        """Store a finished job; the status flips to done last, so a crash leaves it unfinished. A result
        being replaced is first marked unfinished, so no crash pairs it with the new history."""
        if self.is_done():
            self.store.write_json(self.file("status.json"), {**self.status(), "state": "running", "updated": now()})
        self.store.write_json(self.file("history.json"), history)
        self.store.write_json(self.file("result.json"), result)
        self.store.write_bytes(self.file("log.txt"), log.encode())
        self.store.write_json(self.file("status.json"), {"state": "done", "attempt": self.attempts(), "updated": now()})
        self.drop_attempt()

    def fail(self, error: str, traceback: str, log: str, history: dict | None = None, retry: bool = True) -> None:
        """Store a failure; ``retry=False`` marks one that would only repeat itself (a diverged loss). A
        finished job that failed when trained again keeps its result; the failure goes to its log."""
        if self.is_done():
            kept = f"\n\n{now()} trained again (attempt {self.attempts()}), failed: {error}; the result above is kept\n"
            self.store.write_bytes(self.file("log.txt"), (self._log() + kept + log + "\n" + traceback).encode())
            self.drop_attempt()  # nothing resumes it: later runs keep the result, --force starts over
            return
        self._remove(self.file("owner.json"))
        if history:
            self.store.write_json(self.file("history.json"), history)
        self.store.write_bytes(self.file("log.txt"), (log + "\n" + traceback).encode())
        self.store.write_json(
            self.file("status.json"),
            {
                "state": "failed",
                "attempt": self.attempts(),
                "updated": now(),
                "error": error,
                "traceback": traceback,
                "retry": retry,
            },
        )
