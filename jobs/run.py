"""``regimen run``: specs -> jobs -> (skip finished) -> data preflight -> Ray -> store, as results arrive.

Every step that can refuse (specs, data, resources) does so before anything trains. Each outcome is
persisted the moment it arrives, so an interrupted run loses nothing that finished.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from jobs import checkpoint, private_network
from jobs.cpus import native_bfloat16
from jobs.data import Arrays, DataCorrupt, DataUnavailable, locate, read_dataset, synthetic
from jobs.executors import Executor, InProcessExecutor, Outcome, RayExecutor
from jobs.gpus import gpu_total_mb, local_gpus
from jobs.loading import LoadedExperiment
from jobs.plan import Job, data_key, expand, seeds_of
from jobs.progress import Progress
from jobs.resources import check
from jobs.store import JobRecord, Store, StoreBusy, StoreCorrupt, StoreUnavailable, now
from jobs.words import count, error_line

#: The last line of every refusal: a refused run writes and trains nothing.
NOTHING_TRAINED = "nothing was trained"


class RunRefused(Exception):
    """The run cannot start; ``lines`` say why, one problem each. Nothing was trained."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class StoreFailed(Exception):
    """A write to the results store failed during the run (disk full, permissions, a bucket's outage): the
    run stops as Ctrl-C stops it, keeping what the store already holds."""


class RayFailed(Exception):
    """Ray itself failed mid-run (its object store full, a Ray Client connection lost), not one job: the run
    stops as Ctrl-C stops it, keeping what the store already holds."""


@contextlib.contextmanager
def writing(store: Store, what: str):
    """Turns a failed store write of ``what`` into :class:`StoreFailed`, one line saying what to do."""
    try:
        yield
    except Exception as error:
        raise StoreFailed(
            f"results store {store.uri_of()}: cannot write {what} ({error_line(error)}); the run stopped, and "
            "the jobs it stored before are kept: run the same command again to resume once the store can be written"
        ) from None


@dataclass(frozen=True)
class RunOptions:
    address: str | None = None
    synthetic: bool = False
    max_epochs: int | None = None
    seeds: int | None = None
    data_dir: Path | None = None
    force: bool = False
    require_gpu: bool = False
    executor: str = "ray"  # or "local": in this process, no Ray
    resources: dict = field(default_factory=dict)  # overrides every spec's num_cpus / num_gpus / gpu_memory_mb
    off: frozenset[str] = frozenset()  # performance levers left off (execution.LEVERS)
    backend: str | None = None  # overrides every spec's Keras backend
    precision: str | None = None  # overrides every spec's Keras dtype policy
    gpus_per_node: int | None = None  # the user's word on the most GPUs a cluster node has (--gpus-per-node)
    #: the run is the program's own, which may restart itself in a private network (jobs.private_network)
    #: before it starts a Ray of its own; a library call goes on in its process as it is
    restartable: bool = False

    def expanding(self) -> dict:
        """Those of these options that choose the jobs: :func:`plan.expand`'s keyword arguments."""
        return {name: getattr(self, name) for name in inspect.signature(expand).parameters if name != "experiments"}


@dataclass
class RunSummary:
    planned: int
    skipped: int
    finished: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    kept: list[tuple[Job, str]] = field(default_factory=list)  # stored failures not retried (--force does)
    notices: list[str] = field(default_factory=list)


def manifest(loaded: LoadedExperiment, order: int, jobs: list[Job], options: RunOptions) -> dict:
    """What the report needs to know of an experiment: its spec, the run's options, its jobs."""
    name = loaded.experiment.name
    uses = [(use, job) for job in jobs for use in job.uses if use.experiment == name]
    first = uses[0][1]  # an experiment's jobs share the backend and precision that expand resolved
    return {
        "order": order,
        "experiment": loaded.experiment.model_dump(mode="json"),
        "spec_file": str(loaded.file),
        "spec_path": str(loaded.file.resolve()),  # the same file from another folder is the same spec
        "planned": now(),
        "run": {
            "synthetic": options.synthetic,
            "max_epochs": options.max_epochs,
            "seeds": len(seeds_of(loaded.experiment, options.seeds)),
            "resources": options.resources,
            "backend": first.backend,
            "precision": first.precision,
        },
        "jobs": [{"variant": use.variant, "seed": use.seed, "job_id": job.id} for use, job in uses],
    }


Pending = tuple[list[Job], list[Job], list[tuple[Job, str]], list[tuple[Job, str]]]


def pending_jobs(jobs: list[Job], store: Store, force: bool) -> Pending:
    """(to run, finished, kept failures, unreadable entries with why: trained again). Neither a finished
    job nor a failure that would only repeat itself (a diverged loss) is trained again unless forced; other
    failures are retried."""
    to_run, finished, kept, unreadable = [], [], [], []
    for job in jobs:
        state, status, why = store.job(job.id).state()
        if why:
            unreadable.append((job, why))
        if not force and state == "done":
            finished.append(job)
        elif not force and state == "failed" and status.get("retry") is False:
            kept.append((job, status.get("error", "failed")))
        else:
            to_run.append(job)
    return to_run, finished, kept, unreadable


def resuming(jobs: list[Job], store: Store) -> list[str]:
    """Each of ``jobs`` whose unfinished attempt left a checkpoint that can be read, as "label (after
    epoch N of M)", so that a rerun says what it continues; the worker still checks that the checkpoint
    fits the model and the stored epochs (its log says where it did not)."""
    said = []
    for job in jobs:
        try:
            with store.fs.open(store.job(job.id).checkpoint_file, "rb") as file:
                epochs = checkpoint.epochs_done_of(file)
        except OSError:  # none (FileNotFoundError), or one that cannot be opened: trained from the start
            continue
        if epochs:
            said.append(f"{job.label} (after epoch {epochs} of {job.training.epochs})")
    return said


def replaced_in_report(store: Store, planned: dict) -> tuple[list[str], list[str]]:
    """(notices, the report's notes) of what this run's plan for an experiment (``planned``, its manifest)
    takes out of the report, which follows each experiment's latest run: an experiment of the same name
    planned from another spec file, and finished jobs the run before planned that this one does not (they
    stay stored; where they are only the run before's extra seeds, it says how to report them again). A
    rerun of the very same plan notices nothing new, and the report keeps the notes of the run before: it
    still leaves out what that one did."""
    name = planned["experiment"]["name"]
    try:
        before = store.read_experiment(name)
        uses_before = {(j["variant"], j["seed"]): j["job_id"] for j in before["jobs"]}
        seeds_before = int(before["run"]["seeds"])
        planned_ids = {j["job_id"] for j in planned["jobs"]}
        left_out = [use for use, job in uses_before.items() if job not in planned_ids and store.job(job).is_done()]
    except StoreCorrupt as error:  # nothing to compare with, and the manifest written now replaces it
        notice = f"{name}: the manifest of the run before cannot be read ({error}); this run's replaces it"
        return [notice], []
    except (KeyError, TypeError, ValueError):  # none before, or one of another shape: nothing to compare
        return [], []
    notices = []
    path_before = before.get("spec_path")  # manifests written before spec_path existed: not compared
    if path_before and path_before != planned["spec_path"]:
        notices.append(
            f"{name}: planned from {planned['spec_file']}, which replaces in the report the experiment of the same "
            f"name planned from {path_before} (a store keys experiments by name: rename one to keep both)"
        )
    if left_out:
        uses_now = {(j["variant"], j["seed"]): j["job_id"] for j in planned["jobs"]}
        variants_now = {variant for variant, _ in uses_now}
        changed = [use for use in left_out if use in uses_now]
        gone = [use for use in left_out if use[0] not in variants_now]
        unplanned_seeds = [use for use in left_out if use not in changed and use not in gone]
        why = []
        if changed:
            why.append(f"{_uses(changed)}, whose settings this run's plan changed")
        if gone:
            variants = "a variant" if len({variant for variant, _ in gone}) == 1 else "variants"
            why.append(f"{_uses(gone)}, {variants} this run does not plan")
        if unplanned_seeds:
            same_settings = all(uses_before.get(use, job_id) == job_id for use, job_id in uses_now.items())
            again = f" (--seeds {seeds_before} reports them again)" if same_settings else ""
            why.append(f"{_uses(unplanned_seeds)}, seeds this run does not plan{again}")
        notices.append(
            f"{name}: the report leaves out {count(len(left_out), 'finished job')} of the run before (they stay "
            f"stored): {'; '.join(why)}"
        )
    if notices:
        return notices, notices
    kept = before.get("report_notes")  # manifests written before it existed have none
    same_plan = set(uses_before.values()) == planned_ids
    return [], [str(note) for note in kept] if same_plan and isinstance(kept, list) else []


def _uses(uses: list[tuple[str, int]]) -> str:
    """``[("basic", 1), ("basic", 2), ("bn", 0)]`` as "`basic` seeds 1, 2 and `bn` seed 0"."""
    seeds: dict[str, list[int]] = {}
    for variant, seed in uses:
        seeds.setdefault(variant, []).append(seed)
    return " and ".join(
        f"`{variant}` {'seeds' if len(of) > 1 else 'seed'} {', '.join(map(str, sorted(of)))}"
        for variant, of in seeds.items()
    )


def locate_datasets(jobs: list[Job], data_dir: Path | None) -> dict[str, tuple]:
    """data key -> (dataset, its files; None for synthetic): every dataset found, or downloaded, before
    anything else happens; refuses with one line per dataset that cannot be had."""
    located: dict[str, tuple] = {}
    problems: list[str] = []
    for job in jobs:
        key = data_key(job.dataset, job.synthetic)
        if key in located:
            continue
        located[key] = (job.dataset, None)
        if not job.synthetic:
            try:
                located[key] = (job.dataset, locate(job.dataset.name, data_dir))
            except DataUnavailable as error:
                problems.append(str(error))
    if problems:
        raise RunRefused([*problems, NOTHING_TRAINED])
    return located


def read_datasets(located: dict[str, tuple]) -> dict[str, Arrays]:
    """Every located dataset read and preprocessed once (or generated, for synthetic runs)."""
    datasets: dict[str, Arrays] = {}
    problems: list[str] = []
    for key, (dataset, files) in located.items():
        try:
            datasets[key] = synthetic(dataset) if files is None else read_dataset(dataset, files)
        except DataCorrupt as error:
            problems.append(str(error))
    if problems:
        raise RunRefused([*problems, NOTHING_TRAINED])
    return datasets


def connect_ray(address: str | None) -> bool:
    """Connect to ``address`` (:func:`cluster_address`), or start a private single-node Ray where it is
    None; True when local. :class:`RunRefused` where the cluster cannot be reached or refuses the connection."""
    import ray

    if address:
        refuse_unreachable(address)
        hint = auth_hint()  # before ray.init, which may turn token authentication on in this process
        if hint and "://" not in address and address != "auto":
            refuse_unauthenticated(address, hint)
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, ray.exceptions.RayError) as error:
            why = f"cannot connect to the Ray cluster at {address}: {error_line(error)}"
            # something answers there (refuse_unreachable): a refused token reads as "Failed to connect"
            no_cluster = isinstance(error, ValueError) or "Could not find any running Ray instance" in str(error)
            raise RunRefused([why, *([] if no_cluster else hint), NOTHING_TRAINED]) from None
        return False
    # address="local": our own instance even when another cluster runs on this machine; the dashboard,
    # the only HTTP endpoint, is not started at all, nor the metrics exporter of each node's agent, which
    # would serve every metric on every interface without the token
    private_token()
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    # Ray's INFO lines ("Started a local Ray instance") are left out, and its warning that it enabled
    # token authentication by default: Regimen relies on it (README, Security)
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(not_the_token_default)
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    return True


def refuse_unreachable(address: str) -> None:
    """:class:`RunRefused` for an address that is a URL, or a ``HOST:PORT`` where nothing answers: Ray
    itself would retry such a one for about 14 minutes before its traceback."""
    scheme, _, rest = address.rpartition("://")
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        why = (
            f"--address {address} is a URL, as the dashboard's (for `ray job submit`); `regimen run` takes the "
            "cluster's GCS address, HOST:6379, or a Ray Client address, ray://HOST:10001"
        )
        raise RunRefused([why, NOTHING_TRAINED])
    host, _, port = rest.rpartition(":")
    port_note = ""
    if scheme == "ray" and not port.isdigit():  # ray://HOST: gRPC, hence Ray Client, goes to port 443
        host, port, port_note = rest, "443", " (port 443, gRPC's default; Ray Client listens on 10001)"
    if scheme == "" and address != "auto" and not (host and port.isdigit()):
        why = (  # Ray would log its own traceback for it before raising
            f"--address {address}: expected HOST:PORT (the cluster's GCS address, port 6379 by default), "
            "ray://HOST:10001 for Ray Client, auto, or local (a private Ray on this machine, as without --address)"
        )
        raise RunRefused([why, NOTHING_TRAINED])
    if scheme not in ("", "ray") or not host or not port.isdigit():
        return  # "auto", or a form Ray parses and reports itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        why = f"no Ray cluster answers at {address}{port_note} ({error.strerror or type(error).__name__}); "
        raise RunRefused(
            [why + "start one (`ray start --head`) or correct --address / RAY_ADDRESS", NOTHING_TRAINED]
        ) from None


def refuse_unauthenticated(address: str, hint: list[str]) -> None:
    """:class:`RunRefused` where the GCS at ``HOST:PORT`` refuses a caller without a token: asked once here,
    where ``ray.init`` would retry for 20 s and print a line of its own C++ logging at each try."""
    try:
        import grpc  # Ray's own dependency
    except ImportError:
        return
    with grpc.insecure_channel(address) as channel:
        ask = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            ask(b"", timeout=5)  # an empty request: the message has no fields
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                why = f"the Ray cluster at {address} wants a token (token authentication), which this run does not send"
                raise RunRefused([why, *hint, NOTHING_TRAINED]) from None
            # anything else (no GCS there, another version): ray.init says what it finds


def auth_hint() -> list[str]:
    """What to do where the cluster may want a token this process does not send."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return []
    return [
        "if the cluster uses token authentication (Ray 2.60's default): export RAY_AUTH_MODE=token, with the "
        "cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token (Ray sends it to an address given only when told)"
    ]


def not_the_token_default(record: logging.LogRecord) -> bool:
    return "authentication is enabled" not in record.getMessage()


def private_token() -> None:
    """The token that guards the local head, readable by its owner only. Ray 2.60 makes one the same way
    when there is none (256 random bits, hex, in ``~/.ray/auth_token``) but leaves it readable by every
    user of the machine; one it made earlier is made private here. A token of the user's own
    (``RAY_AUTH_TOKEN``) is left alone."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    with contextlib.suppress(OSError):  # an unwritable home: Ray reports that itself
        if token.exists():
            if token.stat().st_uid == os.getuid():
                token.chmod(0o600)
            return
        token.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_hex(32))


def alive_nodes() -> list[dict[str, float]]:
    """The resources of every alive node."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def autoscaler_node_types() -> list[dict[str, float]]:
    """The resources of every node type the cluster's autoscaler may add; none where it publishes none."""
    import ray

    try:  # published by Ray's autoscaler (v2); Ray Data reads it the same way
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # no autoscaler, or an older one that publishes nothing
        return []
    return [dict(group.resources) for group in config.node_group_configs if group.max_count != 0] if config else []


def max_gpus_per_node(shapes: list[dict[str, float]], all_known: bool, stated: int | None = None) -> float | None:
    """The most GPUs any node of the run has: any of ``shapes`` or ``stated`` (the user's word for nodes not
    seen yet, ``--gpus-per-node``), whichever is more. None where neither covers every node: ``shapes`` do
    (``all_known``) for a local run, or a cluster whose autoscaler publishes its node types; without those,
    nodes nobody has seen may still join."""
    if not all_known and stated is None:
        return None
    return max([stated or 0.0, *(shape.get("GPU", 0.0) for shape in shapes)])


def persist(store: Store, outcome: Outcome) -> None:
    """Store a job's outcome; :class:`StoreFailed` where the store does not take it."""
    record, failure = store.job(outcome.job.id), outcome.failure
    if failure is None:
        history, result, log = (outcome.output[key] for key in ("history", "result", "log"))
        with writing(store, f"the outcome of {outcome.job.label}"):
            record.finish(history, result, log)
    elif not failure.superseded:  # else the process that took the job over owns its entry
        log = failure.log or lost_process_log(record)
        with writing(store, f"the outcome of {outcome.job.label}"):
            record.fail(failure.reason, failure.details, log, failure.history, retry=failure.retry)


def lost_process_log(record: JobRecord) -> str:
    """The log of a job whose process was lost (Ray gives only its own error): its lines up to the last
    checkpoint, where there is one."""
    try:
        saved = record.checkpoint()
    except Exception:  # best effort, whatever the store's backend raises: the failure is stored without them
        return ""
    lines = checkpoint.log_of(saved) if saved else ()
    if not lines:
        return ""
    return "\n".join([*lines, f"{now()} the process was lost; the lines above end at its last checkpoint"])


def cluster_address(options: RunOptions) -> str | None:
    """The Ray cluster the run connects to; None where it starts a private one of its own, for Ray's address
    "local" too (a new Ray on this machine), which then gets the private Ray's settings and checks."""
    address = options.address or os.environ.get("RAY_ADDRESS")  # RAY_ADDRESS="" is no address
    return None if address in ("", "local") else address


def wants_private_network(options: RunOptions, store: Store) -> bool:
    """Whether the run should restart in a private network now: it is the program itself, about to start
    a Ray of its own for jobs that write to local files only, and has not restarted yet."""
    return (
        options.restartable
        and options.executor == "ray"
        and not cluster_address(options)
        and store.local
        and private_network.state() is None
        and private_network.possible_here()
    )


def exposure(options: RunOptions, store: Store, local: bool) -> list[str]:
    """The notice for a private Ray head that listens beyond loopback, and why it does."""
    if not options.restartable or options.executor != "ray" or not local:
        return []
    why = private_network.state()
    if why == private_network.INSIDE:
        return []
    if not store.local:
        why = "its jobs write to a bucket, over the network"
    elif why is None:
        why = private_network.NOT_LINUX
    return [f"the private Ray head listens on every network interface, guarded by its token: {why} (README, Security)"]


def where(options: RunOptions) -> str:
    """What the run starts on, said before Ray's start-up, which takes seconds to tens of seconds."""
    if options.executor == "local":
        return "training in this process"
    address = cluster_address(options)
    if address:
        return f"connecting to the Ray cluster at {address}"
    if private_network.state() == private_network.INSIDE:  # README, Security: how to look at it from outside
        return f"starting a private Ray on this machine, in a network of its own (pid {os.getpid()})"
    return "starting a private Ray on this machine"


def how_to_look_inside() -> str:
    """Where the private Ray's head listens, and the command that shows its state from another shell: Ray's
    tools on the host cannot reach it, and without an address they pick from every Ray on the machine."""
    import ray

    address = ray.get_runtime_context().gcs_address
    beside = Path(sys.executable).with_name("ray")  # this interpreter's environment's (a venv, conda, pipx)
    tool = shlex.quote(str(beside) if beside.exists() else shutil.which("ray") or "ray")
    join = private_network.join_command(os.getpid())
    return f"Ray's head: {address}; from another shell: RAY_AUTH_MODE=token {join} {tool} status --address {address}"


def start_executor(options: RunOptions) -> tuple[Executor, list[dict[str, float]], bool]:
    """The executor, the resources of the nodes it runs on, and whether those are this machine."""
    if options.executor == "ray":
        local = connect_ray(cluster_address(options))
        node_types = autoscaler_node_types()
        shapes = alive_nodes() + node_types
        most_gpus = max_gpus_per_node(shapes, all_known=local or bool(node_types), stated=options.gpus_per_node)
        return RayExecutor(off=options.off, max_gpus_per_node=most_gpus), shapes, local
    this_machine = {"CPU": float(os.cpu_count() or 1), "GPU": local_gpus()}
    return InProcessExecutor(options.off), [this_machine], True


def local_gpu_memory_mb(jobs: list[Job], nodes: list[dict[str, float]]) -> int | None:
    """The memory of this machine's GPU where jobs cap theirs and it has one that nvidia-smi can read;
    None otherwise (a cluster's nodes do not say what their GPUs hold)."""
    if not any(job.resources.memory_cap_mb for job in jobs) or not any(node.get("GPU") for node in nodes):
        return None
    try:
        return gpu_total_mb()
    except RuntimeError:
        return None


def select_driver_backend(jobs: list[Job]) -> None:
    """In-process jobs train in this process, which can run Keras on one backend only, chosen before
    anything imports Keras (a dataset download does)."""
    backends = sorted({job.backend for job in jobs})
    if len(backends) > 1:
        raise RunRefused(
            [
                f"--in-process: these jobs train on {' and '.join(backends)}, and one process runs one Keras "
                "backend; run without --in-process (Ray gives each backend its own processes), or one backend "
                "at a time",
                NOTHING_TRAINED,
            ]
        )
    os.environ["KERAS_BACKEND"] = backends[0]


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, ``timeout``, ``docker stop``), handled as Ctrl-C is."""


def execute(experiments: list[LoadedExperiment], store: Store, options: RunOptions, console: Console) -> RunSummary:
    """Plan, check, dispatch and persist into ``store``; raises :class:`RunRefused` before training when it
    cannot start, and KeyboardInterrupt (:class:`Terminated` on SIGTERM) when stopped, with every job that
    did not finish marked interrupted."""
    on_main_thread = threading.current_thread() is threading.main_thread()  # the only one that gets signals
    previous_handler = signal.getsignal(signal.SIGTERM)
    terminated = threading.Event()

    def terminate(signum, frame):
        terminated.set()
        raise KeyboardInterrupt  # what Ray raises from inside a wait anyway, whatever a handler raised

    def handle_sigterm() -> None:
        if on_main_thread:
            signal.signal(signal.SIGTERM, terminate)

    # before the hold: a run its options refuse leaves no run.lock behind
    jobs = expand([e.experiment for e in experiments], **options.expanding())
    try:
        handle_sigterm()  # from the start, so that a run stopped while it takes its hold leaves none behind
        with store.hold_for_run():
            return _execute(experiments, jobs, store, options, console, handle_sigterm)
    except (StoreBusy, StoreUnavailable) as busy:
        raise RunRefused([str(busy), NOTHING_TRAINED]) from None
    except KeyboardInterrupt:
        if terminated.is_set():
            raise Terminated from None
        raise
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)


def _execute(
    experiments: list[LoadedExperiment],
    jobs: list[Job],
    store: Store,
    options: RunOptions,
    console: Console,
    handle_sigterm: Callable[[], None],
) -> RunSummary:
    to_run, finished, kept, unreadable = pending_jobs(jobs, store, options.force)
    summary = RunSummary(planned=len(jobs), skipped=len(finished), kept=kept)
    summary.notices += [f"{job.label}: {why}; trained again" for job, why in unreadable]
    if to_run:
        to_run, executor, datasets = _prepare(to_run, summary, store, options, console, handle_sigterm)
    for order, loaded in enumerate(experiments):
        planned = manifest(loaded, order, jobs, options)
        notices, planned["report_notes"] = replaced_in_report(store, planned)  # the report says so too
        summary.notices += notices
        with writing(store, f"the manifest of {loaded.experiment.name}"):
            store.write_experiment(loaded.experiment.name, planned)
    for notice in summary.notices:
        console.print(f"notice: {notice}", markup=False)
    if not to_run:
        return summary
    started, delivered = [], set()
    try:
        for job in to_run:
            record = store.job(job.id)
            with writing(store, f"the status of {job.label}"):
                if options.force:
                    record.drop_attempt()
                record.start(job.describe())
            started.append(job)
        with Progress(to_run, summary.skipped, console) as progress:
            outcomes = executor.run(to_run, datasets, store.uri_of(), progress.refresh)
            del datasets  # the executor owns them now: Ray keeps them in its object store, not twice here
            for outcome in outcomes:
                if store.hold_lost():
                    raise StoreFailed(
                        f"results store {store.uri_of()}: another run took it over, this run having not renewed "
                        "its lease in time; the run stopped, and the jobs it stored before are kept"
                    )
                persist(store, outcome)
                delivered.add(outcome.job.id)
                progress.finished(outcome)
                if outcome.failure is None:
                    summary.finished.append(outcome.job)
                else:
                    summary.failed.append((outcome.job, outcome.failure.reason))
    except BaseException as error:  # Ctrl-C, SIGTERM, the store or Ray failing: no job is left "running"
        with stop_signals_ignored():  # a second Ctrl-C here would leave jobs running and Ray's processes behind
            _stop_unfinished(executor, store, [job for job in started if job.id not in delivered])
        # Ray's own errors, and the builtin ConnectionError that Ray Client raises for a lost cluster (not a
        # closed console's BrokenPipeError)
        client = (cluster_address(options) or "").startswith("ray://")
        if type(error).__module__.partition(".")[0] == "ray" or (client and isinstance(error, ConnectionError)):
            raise RayFailed(f"Ray failed mid-run ({error_line(error)}); the run stopped") from None
        raise
    return summary


def _prepare(
    to_run: list[Job],
    summary: RunSummary,
    store: Store,
    options: RunOptions,
    console: Console,
    handle_sigterm: Callable[[], None],
) -> tuple[list[Job], Executor, dict[str, Arrays]]:
    """(the jobs to run as the checks leave them, the executor, their datasets): every check before
    anything is written or trained, cheap ones first; :class:`RunRefused` where one fails."""
    if options.executor == "local":
        select_driver_backend(to_run)
    located = locate_datasets(to_run, options.data_dir)  # downloads, while the network is there
    if wants_private_network(options, store):
        private_network.restart_inside(store.hand_over_hold())  # returns only where it cannot
    stored = "stored ones included (--force)" if options.force else f"{summary.skipped} already stored"
    console.print(f"{count(len(to_run), 'job')} to train, {stored}; {where(options)}", markup=False)
    if not options.force:  # --force drops every checkpoint
        for line in resuming(to_run, store):
            console.print(f"resuming from its checkpoint: {line}", markup=False)
    executor, nodes, local = start_executor(options)
    if private_network.state() == private_network.INSIDE:
        console.print(how_to_look_inside(), markup=False)
    handle_sigterm()  # after ray.init, which sets a handler of its own
    side_by_side = options.executor == "ray"
    bfloat16 = native_bfloat16() if local else None  # only a local run's CPU is the one the jobs will use
    gpu_memory = local_gpu_memory_mb(to_run, nodes) if local else None
    feasibility = check(to_run, nodes, local, options.require_gpu, bfloat16, side_by_side, gpu_memory)
    if feasibility.errors:
        raise RunRefused([*feasibility.errors, NOTHING_TRAINED])
    summary.notices += feasibility.notices + executor.notices(feasibility.jobs) + exposure(options, store, local)
    return feasibility.jobs, executor, read_datasets(located)


def _stop_unfinished(executor: Executor, store: Store, unfinished: list[Job]) -> None:
    """Best effort, as Ray or the store may be what stopped the run: cancel the executor's tasks, and mark
    the jobs this run started and did not finish interrupted (unless another run holds the store now, and
    owns them)."""
    with contextlib.suppress(Exception):
        executor.cancel()
    for job in [] if store.hold_lost() else unfinished:
        with contextlib.suppress(Exception):
            store.job(job.id).interrupt()


@contextlib.contextmanager
def stop_signals_ignored():
    """SIGINT and SIGTERM ignored while a stopped run cleans up (on the main thread, the only one that
    gets signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {stop: signal.signal(stop, signal.SIG_IGN) for stop in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
