"""The training task: one job, in whatever process runs it (a Ray worker, or the driver in tests).

It selects the job's Keras backend and configures it for the resources the job was given, seeds
everything, builds and fits the model, evaluates it on the test set and returns a small result by value.
After every epoch the job's metrics so far, then its checkpoint (``jobs.checkpoint``: weights, optimizer
and random state in one file), go to its store folder, so a retried or rerun job resumes after its last
checkpointed epoch with no epoch missing or repeated, and ends as it would have uninterrupted. A
checkpoint that cannot be used is dropped, and the job trains from its first epoch.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import platform
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from jobs import checkpoint
from jobs.data import Arrays
from jobs.execution import Execution, epoch_rows, execution_for, fit_splits
from jobs.gpus import gpu_total_mb
from jobs.plan import Job
from jobs.store import JobRecord, Store, now
from jobs.words import count, error_line, first_line

#: report(job_id, epoch, epochs, logs) — how a running job tells the driver about each finished epoch.
ProgressReport = Callable[[str, int, int, dict], Any]


class JobFailed(Exception):
    """A job that raised; carries the one-line reason, the traceback text, what it logged, whether
    another try could end differently (``retry``; a diverged loss would not), and whether another process
    took the job over (``superseded``: its entry in the store is that process's now).

    Picklable (plain values), so it crosses Ray's process boundary intact.
    """

    def __init__(
        self,
        reason: str,
        details: str,
        log: str,
        history: dict | None = None,
        retry: bool = True,
        superseded: bool = False,
    ):
        super().__init__(reason)
        self.reason, self.details, self.log, self.history = reason, details, log, history
        self.retry, self.superseded = retry, superseded

    def __reduce__(self):
        return (JobFailed, (self.reason, self.details, self.log, self.history, self.retry, self.superseded))


class Diverged(Exception):
    """The loss became NaN or infinite: a result of the job, not a failure to retry."""


class CheckpointWithoutHistory(Exception):
    """The checkpoint restored more epochs than the store holds the metrics of: resuming from it would
    leave the history with epochs missing."""


class Superseded(Exception):
    """Another process now owns this job (a newer run, or Ray's retry while this one outlived its node):
    stop before writing more."""


#: ``CUDA_VISIBLE_DEVICES`` when this process's backend set up its GPUs: Ray sets it for every task, but
#: a backend reads it once, so a process cannot move to another GPU.
_gpus_set_up: str | None = None


def configure_backend(backend: str, threads: int, num_gpus: float, memory_cap_mb: int | None) -> dict:
    """Select Keras' backend for this process and configure it for the job's resources (``memory_cap_mb``:
    ``Resources.memory_cap_mb``); returns what was set. Must run before Keras is imported: a process keeps
    the backend of its first job, so Ray reuses a process only for jobs with the same backend
    (``executors.RayExecutor``)."""
    global _gpus_set_up
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise RuntimeError(
            f"this process already runs Keras on {keras.backend.backend()}; a {backend} job needs a process of its "
            "own: run it through Ray (not --in-process), or on its own"
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if num_gpus > 0 and _gpus_set_up is not None and visible != _gpus_set_up:
        raise RuntimeError(
            f"this process set up GPU {_gpus_set_up!r} for an earlier job, and Ray gave this job GPU {visible!r}; "
            "a process cannot move to another GPU: rerun with --off reuse"
        )
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        settings = configure_jax(num_gpus, memory_cap_mb)
    else:
        settings = configure_tensorflow(threads, num_gpus, memory_cap_mb)
    if num_gpus > 0:
        _gpus_set_up = visible
    return settings


def not_retracing(record: logging.LogRecord) -> bool:
    """A filter of TensorFlow's logger. Keras makes each job's train function anew, and TensorFlow warns of
    "retracing" once a process has made five: expected where one process trains job after job (a reused
    Ray worker, ``--in-process``), not a slowdown to fix."""
    return "triggered tf.function retracing" not in record.getMessage()


def configure_tensorflow(threads: int, num_gpus: float, memory_cap_mb: int | None) -> dict:
    """Threads from the task's CPUs; GPU visibility, memory cap or growth. Must run before TF computes;
    a reused worker process keeps what its first job set (Ray reuses a process only for jobs with the
    same settings, see ``executors.RayExecutor``)."""
    import tensorflow as tf

    if not_retracing not in tf.get_logger().filters:
        tf.get_logger().addFilter(not_retracing)
    settings = {"intra_op_threads": threads, "inter_op_threads": threads}
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TF already initialised in this process: keep its threads
        settings = {
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    gpus = tf.config.list_physical_devices("GPU")
    if num_gpus == 0:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return {**settings, "device": "CPU"}
    if not gpus:
        raise RuntimeError(
            f"this job was given num_gpus={num_gpus:g} but TensorFlow sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); is tensorflow[and-cuda] installed?"
        )
    # as for JAX (jax_environment): one seed, one result; measured there, not yet on a GPU with TensorFlow
    tf.config.experimental.enable_op_determinism()
    try:
        for gpu in gpus:
            if memory_cap_mb:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_cap_mb)]
                )
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # already initialised by an earlier job in this process: its settings hold, and are recorded
    details = tf.config.experimental.get_device_details(gpus[0])
    device = f"GPU: {details.get('device_name', gpus[0].name)}"
    configured = tf.config.get_logical_device_configuration(gpus[0])
    capped = configured[0].memory_limit if configured else None
    return {**settings, "device": device, "gpu_memory_mb": capped, "deterministic": True}


DETERMINISTIC_GPU_OPS = "xla_gpu_deterministic_ops"


def jax_environment(num_gpus: float, memory_cap_mb: int | None, gpu_total_mb: int | None, xla_flags: str) -> dict:
    """The environment variables JAX must start with for a job: JAX reads its platform, GPU memory and
    XLA settings once, when it starts. CPU only for a CPU job. On a GPU: memory taken as needed, up to
    ``memory_cap_mb`` when the GPU is shared (JAX's cap is a fraction of the GPU's ``gpu_total_mb``), and
    deterministic GPU kernels: without them the same job and seed ended at test accuracy 0.68, 0.82 or 0.90
    from run to run on an H200; with them at 0.9034 every time, and no slower (``BENCHMARKS.md``)."""
    if num_gpus == 0:
        return {"JAX_PLATFORMS": "cpu"}
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if xla_flag(xla_flags, DETERMINISTIC_GPU_OPS) is None:  # unless the user chose
        env["XLA_FLAGS"] = f"{xla_flags} --{DETERMINISTIC_GPU_OPS}=true".strip()
    if memory_cap_mb:  # rounded down: never above the cap asked for
        fraction = math.floor(1e6 * min(1.0, memory_cap_mb / gpu_total_mb)) / 1e6
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.6f}"
    return env


def xla_flag(xla_flags: str, name: str) -> str | None:
    """The value ``XLA_FLAGS`` gives flag ``name`` as XLA reads it (the last one wins; a bare ``--name``
    is "true"), or None when it is not set."""
    flags = (item.partition("=") for item in xla_flags.split())
    values = [value or "true" for flag, _, value in flags if flag.lstrip("-") == name]
    return values[-1] if values else None


def deterministic_gpu_ops(xla_flags: str) -> bool:
    """Whether ``XLA_FLAGS`` turns XLA's deterministic GPU kernels on."""
    return (xla_flag(xla_flags, DETERMINISTIC_GPU_OPS) or "").lower() in ("true", "1")


def configure_jax(num_gpus: float, memory_cap_mb: int | None) -> dict:
    """JAX set up for the job (``jax_environment``) unless it already started in this process.

    JAX has no thread setting on CPU (jax-ml/jax#1539): a JAX job on CPU uses every core it may run on."""
    if "jax" not in sys.modules:
        total = gpu_total_mb() if memory_cap_mb else None
        os.environ.update(jax_environment(num_gpus, memory_cap_mb, total, os.environ.get("XLA_FLAGS", "")))
    elif num_gpus > 0 and os.environ.get("JAX_PLATFORMS") == "cpu":
        raise RuntimeError(
            "JAX already started on CPU in this process (an earlier CPU job); a GPU job needs a process of its "
            "own: run it through Ray (not --in-process)"
        )
    try:
        import jax
    except ImportError:
        raise RuntimeError(
            "backend 'jax' needs JAX in the worker's environment: pip install -e '.[jax]' ('.[jax-gpu]' on NVIDIA GPUs)"
        ) from None
    settings = {"cpu_threads": "every core (JAX has no thread limit)"}
    gpus = [device for device in jax.devices() if device.platform == "gpu"]
    if num_gpus == 0:
        return {**settings, "device": "CPU"}
    if not gpus:
        raise RuntimeError(
            f"this job was given num_gpus={num_gpus:g} but JAX sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); is jax[cuda12] installed?"
        )
    limit = (gpus[0].memory_stats() or {}).get("bytes_limit")
    capped = round(limit / 2**20) if memory_cap_mb and limit else None  # the cap JAX set, as it reports it
    deterministic = deterministic_gpu_ops(os.environ.get("XLA_FLAGS", ""))
    device = f"GPU: {gpus[0].device_kind}"
    return {**settings, "device": device, "gpu_memory_mb": capped, "deterministic": deterministic}


def environment(backend: str, precision: str, num_cpus: float, num_gpus: float) -> dict:
    """Versions and settings of the process that trained the job; ``precision``: the dtype policy its
    model was built with."""
    import keras
    import numpy

    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "backend": backend,
        "precision": precision,
        backend: sys.modules[backend].__version__,  # imported by Keras by now
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "ray": importlib.metadata.version("ray"),  # without importing it: an in-process job needs no Ray
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
    }


def restored_history(stored: dict, epochs: int) -> dict:
    """The ``stored`` metrics of the first ``epochs`` epochs, which the checkpoint restored;
    :class:`CheckpointWithoutHistory` where the store lacks some."""
    have = len(stored.get("loss", []))
    if have < epochs:
        raise CheckpointWithoutHistory(
            f"the checkpoint was at epoch {epochs} but the store holds the metrics of {count(have, 'epoch')}"
        )
    return {key: values[:epochs] for key, values in stored.items()}


def resume(record: JobRecord, fresh_model: Callable, log: list[str]) -> tuple[Any, checkpoint.Restored, dict]:
    """(model, what its checkpoint restored, the history of those epochs): the job's checkpoint loaded into
    a fresh model, or a fresh model from the first epoch where there is none or it cannot be used (not
    this model's, unreadable, or ahead of the stored epochs: it is dropped). A store that cannot be read
    fails the attempt and keeps the checkpoint for the next."""
    model, nothing = fresh_model(), checkpoint.Restored(0, 0.0)
    saved = record.checkpoint()
    if saved is None:
        return model, nothing, {}
    stored_epochs = record.resumable_epochs()
    try:
        restored = checkpoint.restore(model, saved)
        history = restored_history(stored_epochs, restored.epochs_done)
    except Exception as error:
        record.drop_attempt()
        log.append(f"{now()} the checkpoint cannot be used ({error_line(error)}); trained from the start")
        return fresh_model(), nothing, {}  # the other may be half loaded
    if restored.epochs_done:
        log[:0] = restored.log  # the earlier attempts' lines, up to the epochs restored
        log.append(f"{now()} resumed after epoch {restored.epochs_done} from the checkpoint")
    return model, restored, history


def _callbacks(
    job: Job,
    record: JobRecord,
    history: dict,
    restored: checkpoint.Restored,
    report: ProgressReport | None,
    log: list[str],
):
    import keras

    owner = record.claim()

    class StoreHistory(keras.callbacks.Callback):
        """Keeps the history of every finished epoch in the store, after the epochs the checkpoint restored."""

        trained = 0  # epochs this attempt trained (a resumed job's earlier ones were another process's)

        def __init__(self):
            super().__init__()
            self.history = history

        def on_epoch_end(self, epoch, logs=None):
            if not record.owned_by(owner):
                raise Superseded("another process took this job over; this one stops")
            logs = {k: float(v) for k, v in (logs or {}).items()}
            for key, value in logs.items():
                self.history.setdefault(key, []).append(value)
            self.trained += 1
            record.write_epochs(self.history)
            shown = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
            log.append(f"{now()} epoch {epoch + 1}/{job.training.epochs} {shown}")
            infinite = [(k, v) for k, v in logs.items() if k.endswith("loss") and not math.isfinite(v)]
            if infinite:  # val_loss may be the one: name the loss that is not finite
                raise Diverged(f"diverged at epoch {epoch + 1}: {infinite[0][0]} is {infinite[0][1]}")
            if report is not None:
                report(job.id, epoch + 1, job.training.epochs, logs)

    class Checkpoint(keras.callbacks.Callback):
        """After the epoch's metrics are stored, so a checkpoint is never ahead of them. Kept after the fit:
        a process that finishes but cannot deliver its result (its driver died) leaves a checkpoint from
        which the next run evaluates at once. The store drops it once the result is in."""

        def on_train_begin(self, logs=None):
            restored.continue_numpy_random()
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = restored.fit_seconds + time.perf_counter() - self.started
            record.write_checkpoint(checkpoint.dump(self.model, epoch + 1, seconds, log))

    store_history = StoreHistory()
    return store_history, [store_history, Checkpoint()]


#: Jobs this process has run, this one included: more than 1 means Keras and its backend were already imported.
_jobs_in_process = 0


def train(
    job: Job, data: Arrays, store_uri: str, report: ProgressReport | None = None, off: frozenset[str] = frozenset()
) -> dict:
    """Train ``job`` on ``data``; returns ``{"history", "result", "log"}`` or raises :class:`JobFailed`.

    ``off`` names performance levers to leave off (``execution.LEVERS``)."""
    global _jobs_in_process
    _jobs_in_process += 1
    log: list[str] = [f"{now()} job {job.id} ({job.label}) on {socket.gethostname()}"]
    record = Store(store_uri).job(job.id)
    store_history = None
    try:
        started, clock = now(), time.perf_counter()
        resources = job.resources
        execution = execution_for(job, epoch_rows(job, len(data.x_train), len(data.x_test))[0], off)
        device = configure_backend(job.backend, execution.threads, resources.num_gpus, resources.memory_cap_mb)
        data = fit_inputs(job.backend, data)
        x_train, y_train, x_val, y_val = fit_splits(job, data)
        import keras

        from jobs.models import build_model

        def fresh_model():
            keras.backend.clear_session()  # a reused process: drop the previous job's graphs and layer names
            keras.utils.set_random_seed(job.seed)
            return build_model(
                job.dataset,
                job.layers,
                job.training,
                name=job.id,
                steps_per_execution=execution.steps_per_execution,
                precision=job.precision,
            )

        model, restored, history = resume(record, fresh_model, log)
        if restored.epochs_done and report is not None:  # the progress shows where it resumes, not epoch 0
            report(job.id, restored.epochs_done, job.training.epochs, {k: v[-1] for k, v in history.items() if v})
        store_history, callbacks = _callbacks(job, record, history, restored, report, log)
        fit_clock = time.perf_counter()
        model.fit(
            x_train,
            y_train,
            epochs=job.training.epochs,
            initial_epoch=restored.epochs_done,
            batch_size=job.training.batch_size,
            validation_data=(x_val, y_val),
            callbacks=callbacks,
            verbose=0,
        )
        fit_s = time.perf_counter() - fit_clock
        evaluate_clock = time.perf_counter()
        test = model.evaluate(data.x_test, data.y_test, batch_size=job.training.batch_size, verbose=0, return_dict=True)
        evaluate_s = time.perf_counter() - evaluate_clock
        trained = store_history.trained
        log.append(f"{now()} test " + " ".join(f"{k}={v:.4g}" for k, v in test.items()))
        timings = {
            "started": started,
            "finished": now(),
            "fit_s": round(fit_s, 3),
            # every epoch of the history, earlier attempts' included (the report's training time)
            "training_s": round(restored.fit_seconds + fit_s, 3),
            "evaluate_s": round(evaluate_s, 3),
            "total_s": round(time.perf_counter() - clock, 3),
            # this attempt's epochs only: a resumed job's earlier ones were timed by another process
            "epochs_trained": trained,
            **({"seconds_per_epoch": round(fit_s / trained, 4)} if trained else {}),
        }
        environment_now = {
            **environment(job.backend, model.layers[0].dtype_policy.name, resources.num_cpus, resources.num_gpus),
            **device,
            "pid": os.getpid(),
            "jobs_in_process": _jobs_in_process,
        }
        history = store_history.history
        result = _result(job, data, len(x_train), model, test, history, timings, environment_now, execution)
        return {"history": history, "result": result, "log": "\n".join(log)}
    except Exception as error:
        reason = first_line(str(error)) if isinstance(error, Diverged) else error_line(error)
        history = store_history.history if store_history is not None else None
        retry = not isinstance(error, Diverged)
        superseded = isinstance(error, Superseded)
        raise JobFailed(reason, traceback.format_exc(), "\n".join(log), history, retry, superseded) from None


def _result(
    job: Job,
    data: Arrays,
    train_rows: int,
    model,
    test: dict,
    history: dict,
    timings: dict,
    environment_now: dict,
    execution: Execution,
) -> dict:
    """The job's ``result.json``: its test metrics and what produced them."""
    return {
        "job_id": job.id,
        "test": {k: float(v) for k, v in test.items()},
        "params": int(model.count_params()),
        "epochs_run": len(history.get("loss", [])),
        "epochs": job.training.epochs,
        "requested_epochs": job.requested_epochs,
        "epochs_capped": job.epochs_capped,
        "batch_size": job.training.batch_size,
        "data": {**data.describe(), "train": train_rows, "held_out": len(data.x_train) - train_rows},
        "timings": timings,
        "environment": environment_now,
        "execution": execution.describe(),
    }


def fit_inputs(backend: str, data: Arrays) -> Arrays:
    """``data`` with the float32 inputs ``fit`` takes (``Arrays.for_fit``). On TensorFlow, images are
    scaled into tensors: Keras copies a numpy array into a tensor of its own, so scaling in numpy would
    hold the float32 images twice. The same float32 values either way (tested on every pixel value)."""
    if not data.pixels or backend != "tensorflow":
        return data.for_fit()
    import tensorflow as tf

    def scaled(pixels):
        with tf.device("CPU:0"):  # where Keras keeps a numpy array's tensor for tf.data, GPU job or not
            return tf.cast(tf.convert_to_tensor(pixels), tf.float32) / 255.0

    return replace(data, x_train=scaled(data.x_train), x_test=scaled(data.x_test), pixels=False)
